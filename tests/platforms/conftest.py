"""Contract-test fixtures: a stand-alone sandbox server on loopback, reached through
AURAREELS_HOST_MAP exactly as outside checks reach their own servers (real HTTP, no in-process
shortcut). Every platform's contract tests use these."""
from __future__ import annotations

import json

import pytest

from bridge.config import Settings
from bridge.sandbox.core import host_map_for, start_server
from tests.conftest import JWT_SECRET, VAULT_KEY, WP_URL, fake_app_credentials

# every platform's app credentials, under the variables each client declares
CREDENTIALS = fake_app_credentials()


@pytest.fixture(scope="session")
def sandbox_server():
    server, sandbox, base_url = start_server()
    yield sandbox, base_url
    server.shutdown()


@pytest.fixture
def sandbox(sandbox_server):
    """The stand-alone sandbox, reset before each test."""
    sb, _ = sandbox_server
    sb.reset()
    return sb


@pytest.fixture
def sandbox_url(sandbox_server) -> str:
    return sandbox_server[1]


@pytest.fixture
def platform_env(sandbox_server) -> dict[str, str]:
    """The environment of `platform_settings` (child processes build their settings from it)."""
    sb, base_url = sandbox_server
    return {
        "AURAREELS_DATABASE_URL": "sqlite:///:memory:",
        "JWT_AUTH_SECRET_KEY": JWT_SECRET,
        "AURAREELS_WP_URL": WP_URL,
        "AURAREELS_SOCIAL_ENCRYPTION_KEY": VAULT_KEY,
        "AURAREELS_PUBLIC_URL": "https://bridge.example",
        "AURAREELS_SANDBOX": "0",
        "AURAREELS_HOST_MAP": json.dumps(host_map_for(base_url, sb)),
        "AURAREELS_HTTP_TIMEOUT": "1",
        **CREDENTIALS,
    }


@pytest.fixture
def platform_settings(platform_env) -> Settings:
    """Settings whose platform hosts all point at the stand-alone sandbox (sandbox mode off)."""
    return Settings.from_env(platform_env)


@pytest.fixture
def control_url(sandbox_url) -> str:
    return f"{sandbox_url}/_sandbox/control"


def media_url(size: int = 2_000_000, duration: float = 15.0, name: str = "clip.mp4", **extra) -> str:
    from urllib.parse import urlencode

    return f"https://media.sandbox.aurareels.test/videos/{name}?" + urlencode({"size": size, "duration": duration, **extra})
