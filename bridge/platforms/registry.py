"""The platforms, one line each: value -> (client class, emulator class).

This is the one list of platforms. Everything else that names them derives from it: the platform
values of the settings (`bridge.config.PLATFORMS`), the credential variables (each client declares
its own), the daily limits, the privacy values, the request schemas and the OpenAPI enums. The
SQL ENUM and the WordPress plugin's list stay literal (they are data definitions); a test checks
that they name exactly these platforms.

The module imports nothing of the bridge at load time, so `bridge.config` can read it.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.config import Settings
    from bridge.platforms.base import PlatformClient

REGISTRY: dict[str, tuple[str, str]] = {
    "tiktok": ("bridge.platforms.tiktok:TikTokClient", "bridge.sandbox.tiktok:TikTokEmulator"),
    "instagram": ("bridge.platforms.instagram:InstagramClient", "bridge.sandbox.instagram:InstagramEmulator"),
    "facebook": ("bridge.platforms.facebook:FacebookClient", "bridge.sandbox.facebook:FacebookEmulator"),
    "youtube": ("bridge.platforms.youtube:YouTubeClient", "bridge.sandbox.youtube:YouTubeEmulator"),
    "twitter": ("bridge.platforms.twitter:TwitterClient", "bridge.sandbox.twitter:TwitterEmulator"),
    "linkedin": ("bridge.platforms.linkedin:LinkedInClient", "bridge.sandbox.linkedin:LinkedInEmulator"),
}

PLATFORMS: tuple[str, ...] = tuple(REGISTRY)


def _load(path: str):
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)


def client_class(platform: str) -> type[PlatformClient]:
    return _load(REGISTRY[platform][0])


def emulator_class(platform: str):
    return _load(REGISTRY[platform][1])


def client_classes() -> dict[str, type[PlatformClient]]:
    """Every platform's client class, in registry order."""
    return {platform: client_class(platform) for platform in REGISTRY}


def available() -> list[str]:
    """Platforms whose modules are present (all six once the platform layer is complete)."""
    found = []
    for platform, (client, emulator) in REGISTRY.items():
        try:
            _load(client), _load(emulator)
        except (ImportError, AttributeError):
            continue
        found.append(platform)
    return found


def get_client(settings: Settings, platform: str) -> PlatformClient:
    return client_class(platform)(settings)


def privacy_values() -> tuple[str, ...]:
    """Every privacy value some platform accepts, in registry order without repeats (what a
    request may carry; each platform then checks its own)."""
    values: dict[str, None] = {}
    for cls in client_classes().values():
        values.update(dict.fromkeys(cls.privacy_values()))
    return tuple(values)


def option_names() -> dict[str, tuple[str, ...]]:
    """Option name -> the platforms that accept it."""
    names: dict[str, list[str]] = {}
    for platform, cls in client_classes().items():
        for name in cls.options:
            names.setdefault(name, []).append(platform)
    return {name: tuple(platforms) for name, platforms in names.items()}
