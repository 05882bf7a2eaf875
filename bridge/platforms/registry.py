"""The platforms, one line each: value -> (client class, emulator class)."""
from __future__ import annotations

from importlib import import_module

from bridge.config import PLATFORMS, Settings

REGISTRY: dict[str, tuple[str, str]] = {
    "tiktok": ("bridge.platforms.tiktok:TikTokClient", "bridge.sandbox.tiktok:TikTokEmulator"),
    "instagram": ("bridge.platforms.instagram:InstagramClient", "bridge.sandbox.instagram:InstagramEmulator"),
    "facebook": ("bridge.platforms.facebook:FacebookClient", "bridge.sandbox.facebook:FacebookEmulator"),
    "youtube": ("bridge.platforms.youtube:YouTubeClient", "bridge.sandbox.youtube:YouTubeEmulator"),
    "twitter": ("bridge.platforms.twitter:TwitterClient", "bridge.sandbox.twitter:TwitterEmulator"),
    "linkedin": ("bridge.platforms.linkedin:LinkedInClient", "bridge.sandbox.linkedin:LinkedInEmulator"),
}
assert tuple(REGISTRY) == PLATFORMS


def _load(path: str):
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)


def client_class(platform: str):
    return _load(REGISTRY[platform][0])


def emulator_class(platform: str):
    return _load(REGISTRY[platform][1])


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


def get_client(settings: Settings, platform: str):
    return client_class(platform)(settings)
