"""How processes of a sandbox deployment find one emulated world (`bridge.sandbox.shared`), on the
real Redis. Separate processes are stood for by separate `World`s (each its own view, as every
process has); the end-to-end runs with real processes are in `tests/test_multiprocess_sandbox.py`."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest
import redis as redis_lib

import bridge
from bridge.config import Settings
from bridge.platforms.errors import Transient
from bridge.platforms.http import PlatformHttp
from bridge.sandbox import shared
from bridge.sandbox.core import Sandbox, shared_sandbox, start_server
from bridge.sandbox.shared import REGISTRY_KEY, World, _Scope
from tests.conftest import REDIS_URL, base_env, wait_for

SHARED_REDIS = REDIS_URL.rsplit("/", 1)[0] + "/9"
CREATOR_INFO = "https://open.tiktokapis.com/v2/post/publish/creator_info/query/"


@pytest.fixture
def registry():
    client = redis_lib.Redis.from_url(SHARED_REDIS)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def worlds():
    made: list[World] = []

    def make(sandbox_url: str | None = None) -> World:
        made.append(World(_Scope(sandbox_url, SHARED_REDIS)))
        return made[-1]

    yield make
    for world in made:
        world.close()


def call(world: World, url: str = CREATOR_INFO) -> httpx.Response:
    with httpx.Client(transport=shared.SandboxTransport(world), timeout=5) as client:
        return client.post(url, headers={"Authorization": "Bearer act.unknown"}, json={})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_first_process_serves_its_emulators_and_the_next_one_uses_them(registry, worlds):
    first, second = worlds(), worlds()
    assert first.target() is None and first.serving  # nothing registered: this process serves
    url = json.loads(registry.get(REGISTRY_KEY))["url"]
    assert 0 < registry.ttl(REGISTRY_KEY) <= shared.TTL
    assert second.target() == url and not second.serving
    before = len(shared_sandbox().requests("tiktok"))
    answer = call(second)
    assert answer.status_code == 401  # the emulator's own refusal of an unknown token, over HTTP
    seen = shared_sandbox().requests("tiktok")[before:]
    assert [r["path"] for r in seen] == ["/v2/post/publish/creator_info/query/"]  # in the first one's world


def test_a_process_forked_from_a_bridge_process_never_serves(registry, worlds, monkeypatch):
    monkeypatch.setattr(bridge, "STARTED_PID", -1)  # as in an RQ job's work horse
    world = worlds()
    with pytest.raises(shared.SandboxUnavailable):
        world.target()
    assert registry.get(REGISTRY_KEY) is None
    with pytest.raises(httpx.ConnectError):
        call(world)


def test_a_platform_call_without_a_world_is_a_transient_failure(registry, monkeypatch):
    from bridge.platforms import http

    monkeypatch.setattr(bridge, "STARTED_PID", -1)
    # nothing this process learnt in earlier tests (worlds, transports, clients) may answer for it
    monkeypatch.setattr(shared, "_worlds", {})
    monkeypatch.setattr(shared, "_transports", {})
    monkeypatch.setattr(http, "_shared", http._SharedClients())
    settings = Settings.from_env(base_env(AURAREELS_REDIS_URL=SHARED_REDIS.rsplit("/", 1)[0] + "/8",
                                          AURAREELS_DATABASE_URL="sqlite://"))
    redis_lib.Redis.from_url(settings.redis_url).delete(REGISTRY_KEY)
    with pytest.raises(Transient) as raised:
        PlatformHttp(settings, "tiktok").request("POST", CREATOR_INFO, json={})
    assert raised.value.code == "connect_failed"


def test_a_registered_server_that_is_gone_is_forgotten_and_replaced(registry, worlds):
    dead = f"http://127.0.0.1:{free_port()}"
    registry.set(REGISTRY_KEY, json.dumps({"url": dead, "owner": "gone"}), ex=shared.TTL)
    world = worlds()
    assert world.target() == dead
    assert call(world).status_code == 401  # refused connection: forgotten, then served here
    assert world.serving and json.loads(registry.get(REGISTRY_KEY))["url"] != dead


def test_a_lost_registration_stops_this_server(registry, worlds, monkeypatch):
    monkeypatch.setattr(shared, "BEAT", 0.05)
    first = worlds()
    first.target()
    registry.set(REGISTRY_KEY, json.dumps({"url": "http://127.0.0.1:1", "owner": "other"}))
    wait_for(lambda: not first.serving, timeout=5)
    assert first.target() == "http://127.0.0.1:1"


def test_after_redis_forgets_the_registration_the_world_stays_one(registry, worlds, monkeypatch):
    monkeypatch.setattr(shared, "BEAT", 0.05)
    monkeypatch.setattr(shared, "RECHECK", 0)
    owner, other = worlds(), worlds()
    owner.target()
    url = other.target()
    beats = CountingRedis(owner._registration.client)
    owner._registration.client = beats
    registry.flushdb()  # a Redis restart or FLUSHALL
    assert other.target() == url and not other.serving  # written back, not a second world
    seen = beats.calls
    wait_for(lambda: beats.calls >= seen + 3, timeout=10)  # the owner's heartbeat ran on it
    assert owner.serving and json.loads(registry.get(REGISTRY_KEY))["url"] == url


class CountingRedis:
    """A Redis client that counts the scripts run through it (the heartbeat's)."""

    def __init__(self, client):
        self.client, self.calls = client, 0

    def eval(self, *args):
        self.calls += 1
        return self.client.eval(*args)


def test_the_configured_sandbox_url_wins_and_redis_is_not_asked(registry, worlds):
    server, sandbox, url = start_server()
    try:
        world = worlds(sandbox_url=url)
        assert world.target() == url
        call(world)
        assert [r["path"] for r in sandbox.requests("tiktok")] == ["/v2/post/publish/creator_info/query/"]
        assert registry.get(REGISTRY_KEY) is None
    finally:
        server.shutdown()


def test_the_browser_mount_forwards_to_the_shared_server(registry, worlds):
    server, sandbox, url = start_server(sandbox=Sandbox())
    try:
        settings = Settings.from_env(base_env(AURAREELS_SANDBOX_URL=url, AURAREELS_DATABASE_URL="sqlite://"))
        app = shared.browser_app(settings)
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://bridge.test") as client:
            sandbox.emulator("tiktok").configure(processing_seconds=3)
            state = client.get("/_sandbox/control/state/tiktok")
            assert state.status_code == 200 and state.json()["state"]["config"]["processing_seconds"] == 3
            page = client.get("/_sandbox/www.tiktok.com/v2/auth/authorize/", params={
                "client_key": "sandbox-tiktok-client", "response_type": "code", "scope": "user.info.basic",
                "redirect_uri": "http://bridge.test/cb", "state": "s"})
            assert page.status_code == 200 and 'id="allow"' in page.text
            big = client.post("/_sandbox/control/reset", content=b"x" * (2 << 20))
            assert big.status_code == 413
    finally:
        server.shutdown()


def test_the_sandbox_command_registers_and_unregisters_on_sigterm(registry):
    env = dict(os.environ, AURAREELS_REDIS_URL=SHARED_REDIS)
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "sandbox", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("sandbox serving at http://127.0.0.1:") and "registered" in line, line
        url = line.split()[3]
        assert json.loads(registry.get(REGISTRY_KEY))["url"] == url
        assert httpx.get(f"{url}/_sandbox/control/state/youtube", timeout=5).json()["ok"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    wait_for(lambda: registry.get(REGISTRY_KEY) is None, timeout=5)


def test_the_browser_mount_passes_a_large_media_file_through_whole(registry):
    server, sandbox, url = start_server(sandbox=Sandbox())
    try:
        settings = Settings.from_env(base_env(AURAREELS_SANDBOX_URL=url, AURAREELS_DATABASE_URL="sqlite://"))
        size = 64 * 1024 * 1024
        received, first = 0, None
        with httpx.Client(transport=httpx.WSGITransport(app=shared.browser_app(settings)),
                          base_url="http://bridge.test") as client:
            with client.stream("GET", f"/_sandbox/media.sandbox.aurareels.test/videos/big.mp4?size={size}") as answer:
                assert answer.status_code == 200 and answer.headers["content-length"] == str(size)
                for piece in answer.iter_raw():
                    first = first or piece
                    received += len(piece)
        assert received == size and first[4:8] == b"ftyp"
    finally:
        server.shutdown()
