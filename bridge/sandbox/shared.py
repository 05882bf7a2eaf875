"""One emulated world for every process of a sandbox deployment.

With `AURAREELS_SANDBOX=1` the platform calls and the browser's `/_sandbox/...` pages go to the
emulators. The emulators keep their state (tokens, uploads, containers, published posts) in
memory, so a deployment of several processes (`serve` or gunicorn, and one or more `worker`s)
must send them all to the same emulators: the token the API's consent page issued is the one a
worker publishes with. Every process finds that world in the same order:

1. `AURAREELS_SANDBOX_URL`: the sandbox server at that address (`aurareels-bridge sandbox`; what
   docker compose uses, where processes share no loopback).
2. A real Redis (`AURAREELS_REDIS_URL`): the sandbox server registered there under
   `REGISTRY_KEY`, which its process keeps alive with a heartbeat. When none is registered, the
   first process that needs one serves its own emulators on a free loopback port and registers
   them with `SET NX`, so of several processes one wins and the others use it. A process forked
   from a bridge process (an RQ job's work horse) never serves: the world would end with its job.
   A server that refuses connections is forgotten (its entry dropped) and another takes over; an
   entry Redis lost (a restart, a FLUSHALL) is written back by a process that knew it, so a wipe
   never splits the world in two.
3. Neither (the embedded `up`, one process): the emulators in this process.

Hosts named in `AURAREELS_HOST_MAP` never come here: the map wins over the sandbox.
`World` is a process's view (`world_for`); `SandboxTransport` is the httpx transport of sandbox
calls; `browser_app` is the WSGI app behind the bridge's `/_sandbox/` mount; `Registration` is a
server's entry in Redis (`aurareels-bridge sandbox` and a process that serves its own).
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import redis as redis_lib

import bridge
from bridge.config import Settings

log = logging.getLogger("bridge.sandbox.shared")

REGISTRY_KEY = "bridge:sandbox:server"
TTL = 15  # seconds a registration outlives its last heartbeat
BEAT = 5  # seconds between heartbeats
RECHECK = 10  # seconds a process trusts the registration it read
_MAX_BODY = 1 << 20  # browser-side requests (consent forms, control calls) are small

# Keep the registration while it names this server (whoever wrote it back after Redis lost it),
# take it if nobody holds it; 0 when another server holds it.
_KEEP = """
local current = redis.call('GET', KEYS[1])
if not current then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end
if cjson.decode(current)['url'] == ARGV[3] then redis.call('EXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
# Drop the registration only if it still names this server (a stale one, or ours at shutdown).
_DROP = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['url'] == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""


class SandboxUnavailable(Exception):
    """No shared sandbox answers and this process may not serve one."""


def _redis(url: str) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def _entry(url: str) -> str:
    return json.dumps({"url": url, "by": f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"})


def registered_url(client: redis_lib.Redis) -> str | None:
    """The URL of the sandbox server registered in this Redis, if any."""
    raw = client.get(REGISTRY_KEY)
    return json.loads(raw)["url"] if raw else None


class Registration:
    """A sandbox server's entry in Redis, kept alive by a heartbeat thread until `close()`."""

    def __init__(self, client: redis_lib.Redis, url: str, on_lost=None):
        self.client, self.url, self.on_lost = client, url, on_lost
        self.value = _entry(url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self) -> bool:
        """Register if no server is registered; False when another one is."""
        return bool(self.client.set(REGISTRY_KEY, self.value, nx=True, ex=TTL))

    def start(self) -> "Registration":
        self._thread = threading.Thread(target=self._beat, name="sandbox-registration", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        failing_since, warned = None, False
        while not self._stop.wait(BEAT):
            try:
                held = self.client.eval(_KEEP, 1, REGISTRY_KEY, self.value, TTL, self.url)
            except redis_lib.exceptions.RedisError as exc:
                # a blip is retried quietly; once the entry has expired, say so (once)
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > TTL and not warned:
                    log.warning("the sandbox registration could not be renewed for %d s (%s); it is written "
                                "again when Redis answers", TTL, type(exc).__name__)
                    warned = True
                continue
            failing_since, warned = None, False
            if not held:
                log.warning("another sandbox server took the registration; this one stops serving the deployment")
                self._stop.set()
                if self.on_lost:
                    self.on_lost()

    def close(self) -> None:
        self._stop.set()
        try:
            self.client.eval(_DROP, 1, REGISTRY_KEY, self.url)
        except redis_lib.exceptions.RedisError:
            pass  # the entry expires on its own


@dataclass(frozen=True)
class _Scope:
    sandbox_url: str | None
    redis_url: str | None


class World:
    """Where this process's sandbox calls go: `target()` is a server's base URL, or None for the
    emulators of this process."""

    def __init__(self, scope: _Scope):
        self.scope = scope
        self._lock = threading.Lock()
        self._client = _redis(scope.redis_url) if scope.redis_url and not scope.sandbox_url else None
        self._cached: str | None = None
        self._cached_until = 0.0
        self._known: str | None = None  # the last server this process used, kept past the cache
        self._server = None
        self._registration: Registration | None = None

    @property
    def explicit(self) -> bool:
        return bool(self.scope.sandbox_url)

    @property
    def serving(self) -> bool:
        return self._registration is not None

    def target(self) -> str | None:
        if self.scope.sandbox_url:
            return self.scope.sandbox_url
        if self._client is None or self.serving:
            return None
        if self._cached and time.monotonic() < self._cached_until:
            return self._cached
        with self._lock:
            if self.serving:
                return None
            try:
                url = registered_url(self._client)
                if url is None and self._known:
                    # Redis lost the entry (a restart, a FLUSHALL) while the server may still run:
                    # write it back rather than start a second, empty world beside it
                    url = self._known if self._client.set(REGISTRY_KEY, _entry(self._known), nx=True, ex=TTL) \
                        else registered_url(self._client)
                if url is None:
                    url = self._serve()
            except redis_lib.exceptions.RedisError as exc:
                if self._cached:
                    return self._cached  # Redis is away for a moment: the server we knew still answers
                raise SandboxUnavailable(
                    f"the sandbox registry in Redis is unreachable ({type(exc).__name__})") from None
            self._cached, self._cached_until = url, time.monotonic() + RECHECK
            self._known = url
            return url

    def forget(self, url: str) -> None:
        """`url` did not accept a connection: its server is gone. Drop its registration (only if it
        still names it) so the next call finds or starts another."""
        with self._lock:
            if self._cached == url:
                self._cached, self._cached_until = None, 0.0
            if self._known == url:
                self._known = None
            if self._client is not None:
                try:
                    self._client.eval(_DROP, 1, REGISTRY_KEY, url)
                except redis_lib.exceptions.RedisError:
                    pass

    def _serve(self) -> str | None:
        """Serve this process's emulators to the deployment and register them; None when this
        process won, else the URL of the server that registered first."""
        if os.getpid() != bridge.STARTED_PID:
            raise SandboxUnavailable("no shared sandbox is running (start `aurareels-bridge sandbox` or the API)")
        from bridge.sandbox.core import shared_sandbox, start_server

        server, _, url = start_server("127.0.0.1", 0, shared_sandbox())
        registration = Registration(self._client, url, on_lost=self._lost)
        if not registration.claim():
            server.shutdown()
            server.server_close()
            return registered_url(self._client)
        self._server, self._registration = server, registration.start()
        log.info("serving the sandbox to the other processes of this deployment at %s", url)
        return None

    def _lost(self) -> None:
        server, self._server, self._registration = self._server, None, None
        self._cached, self._cached_until = None, 0.0
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        """Stop serving (if this process serves) and drop the registration."""
        registration, server = self._registration, self._server
        self._registration = self._server = None
        if registration is not None:
            registration.close()
        if server is not None:
            server.shutdown()
            server.server_close()


_worlds: dict[tuple[int, _Scope], World] = {}
_transports: dict[tuple[int, _Scope], "SandboxTransport"] = {}
_worlds_lock = threading.Lock()


def _scope(settings: Settings) -> _Scope:
    return _Scope(settings.sandbox_url, settings.redis_url)


def world_for(settings: Settings) -> World:
    """This process's view of the sandbox world of `settings` (one per process and scope)."""
    key = (os.getpid(), _scope(settings))
    with _worlds_lock:
        if key not in _worlds:
            _worlds[key] = World(key[1])
        return _worlds[key]


def transport_for(settings: Settings) -> "SandboxTransport":
    """The process's sandbox transport for `settings` (shared by every client of the scope)."""
    key = (os.getpid(), _scope(settings))
    world = world_for(settings)
    with _worlds_lock:
        if key not in _transports:
            _transports[key] = SandboxTransport(world)
        return _transports[key]


def scope_key(settings: Settings) -> tuple:
    """What tells two settings' sandbox worlds apart (part of a shared HTTP client's key)."""
    return ("sandbox", settings.sandbox_url, settings.redis_url)


def _after_fork() -> None:
    global _worlds_lock
    _worlds_lock = threading.Lock()  # a lock held by another thread at fork time stays held in the child


def _at_exit() -> None:
    """A process that ends normally (a recycled gunicorn worker) drops its registration at once,
    so the others find or start another server without waiting for it to expire."""
    for (pid, _), world in list(_worlds.items()):
        if pid == os.getpid():
            world.close()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)


def warm_up(settings: Settings) -> None:
    """Find (or start serving) the shared world now rather than at the first platform call, so the
    API process is the one that serves it when nothing else does. Never raises."""
    if not settings.sandbox:
        return
    try:
        world_for(settings).target()
    except SandboxUnavailable as exc:
        log.warning("the shared sandbox is not available yet: %s", exc)


class SandboxTransport(httpx.BaseTransport):
    """The transport of sandbox calls: this process's emulators, or the shared server (the request
    goes to `{server}/{host}{path}`, the stand-alone server's path routing)."""

    def __init__(self, world: World):
        self.world = world
        self._local: httpx.BaseTransport | None = None
        self._remote = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))

    def _in_process(self) -> httpx.BaseTransport:
        if self._local is None:
            from bridge.sandbox.core import sandbox_app

            self._local = httpx.WSGITransport(app=sandbox_app())
        return self._local

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(2):
            try:
                base = self.world.target()
            except SandboxUnavailable as exc:
                raise httpx.ConnectError(f"sandbox: {exc}", request=request) from None
            if base is None:
                return self._in_process().handle_request(request)
            url = httpx.URL(f"{base.rstrip('/')}/{request.url.host}{request.url.raw_path.decode('ascii')}")
            headers = [(b"Host", url.netloc)] + [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
            forwarded = httpx.Request(request.method, url, headers=headers, stream=request.stream,
                                      extensions=request.extensions)
            try:
                return self._remote.handle_request(forwarded)
            except httpx.ConnectError:
                # nothing was sent: safe to ask again once the dead server is forgotten
                if attempt or self.world.explicit:
                    raise
                self.world.forget(base)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._remote.close()


# --- the browser side: the bridge's /_sandbox/ mount
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
               "proxy-authenticate", "host"}
_proxy_client: httpx.Client | None = None


def browser_app(settings: Settings):
    """The WSGI app behind the bridge's `/_sandbox/...` (consent pages, control API, media): this
    process's emulators, or the shared server, forwarded as they are."""
    world = world_for(settings)
    # The bridge's mount has already let this caller use the control API (`guarded`); the shared
    # server, which may run in another container, is told so with the internal key.
    control_headers = {"x-api-key": settings.n8n_api_key} if settings.n8n_api_key else {}

    def app(environ, start_response):
        try:
            base = world.target()
        except SandboxUnavailable as exc:
            return _plain(start_response, "503 Service Unavailable", f"The sandbox is not available: {exc}.")
        if base is None:
            from bridge.sandbox.core import sandbox_app

            return sandbox_app()(environ, start_response)
        extra = control_headers if environ.get("PATH_INFO", "").startswith("/_sandbox/control") else {}
        return _forward(base, environ, start_response, extra)

    return app


def _forward(base: str, environ, start_response, extra_headers: dict | None = None):
    """Send the browser's request to the sandbox server and stream its answer back (a media file
    may be large: nothing is held whole)."""
    global _proxy_client
    if _proxy_client is None:
        _proxy_client = httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0), follow_redirects=False, trust_env=False)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 <= length <= _MAX_BODY:
        return _plain(start_response, "413 Request Entity Too Large", "The request body is too large.")
    body = environ["wsgi.input"].read(length) if length else b""
    path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
    query = environ.get("QUERY_STRING", "")
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in _HOP_BY_HOP}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    headers.update(extra_headers or {})
    request = _proxy_client.build_request(environ["REQUEST_METHOD"], f"{base.rstrip('/')}{path}"
                                          + (f"?{query}" if query else ""), headers=headers, content=body)
    try:
        answer = _proxy_client.send(request, stream=True)
    except httpx.HTTPError as exc:
        return _plain(start_response, "502 Bad Gateway", f"The sandbox server did not answer ({type(exc).__name__}).")
    start_response(f"{answer.status_code} {answer.reason_phrase}",
                   [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _HOP_BY_HOP])
    return _Streamed(answer)


class _Streamed:
    """A WSGI body read from an upstream answer as it arrives; closing it frees the connection."""

    def __init__(self, answer: httpx.Response):
        self.answer = answer

    def __iter__(self):
        yield from self.answer.iter_raw(65536)

    def close(self) -> None:
        self.answer.close()


def _plain(start_response, status: str, text: str):
    data = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]
