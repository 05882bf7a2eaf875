"""The one way out to the network for every platform call.

`PlatformHttp` sets timeouts and the User-Agent, rewrites hosts named in `AURAREELS_HOST_MAP`,
sends everything else to the emulators when `AURAREELS_SANDBOX=1` (the world every process of
the deployment shares, `bridge.sandbox.shared`), logs each call with tokens redacted, and turns
transport failures into the error taxonomy: a failure before the request was sent is
`Transient`; a timeout or a dropped connection after a non-idempotent request was sent is
`UnknownOutcome`.
"""
from __future__ import annotations

import http.cookiejar
import logging
import os
import threading
import time
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import httpx

from bridge import __version__
from bridge.config import Settings
from bridge.logs import redact
from bridge.platforms.errors import Transient, UnknownOutcome
from bridge.sandbox.shared import scope_key

log = logging.getLogger("bridge.platforms.http")

USER_AGENT = f"AuraReelsSocialBridge/{__version__} (+https://aurareels.example/bridge)"

_ssl_context = None
# Connections per shared client: a threaded worker runs a hundred or more posts of one platform at
# once through it (httpx's default of 100 would make the rest wait for a free connection, and
# keeping only 20 alive opens a new connection for most calls).
LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=30.0)


def ssl_context():
    """One verified TLS context for every client (building one costs tens of milliseconds)."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def sandbox_transport(settings: Settings) -> httpx.BaseTransport:
    """The transport to the emulators: this process's own, or the sandbox server every process of
    the deployment shares (`bridge.sandbox.shared`)."""
    from bridge.sandbox.shared import transport_for

    return transport_for(settings)


def map_url(url: str, host_map: dict[str, str]) -> str:
    """Rewrite `url` when its host is named in the host map: the mapped base URL (scheme, host,
    port and any path prefix) replaces scheme and host; path and query are kept."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    target = host_map.get(host) or (host_map.get(f"{host}:{parts.port}") if parts.port else None)
    if not target:
        return url
    base = urlsplit(target)
    path = base.path.rstrip("/") + (parts.path or "/")
    return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


_NO_COOKIES = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])


class _SharedClients:
    """One `httpx.Client` per platform, kind (sandbox or network) and timeout in a process,
    shared by every `PlatformHttp` of that platform and by all threads (httpx clients are
    thread-safe). Building a client costs about a millisecond and a new connection per post; a
    shared one keeps its connections alive across posts. A forked child never uses its parent's
    clients (their sockets belong to the parent): the table starts empty after a fork."""

    def __init__(self):
        self._lock = threading.Lock()
        self._clients: dict[tuple, httpx.Client] = {}
        self._pid = os.getpid()

    def get(self, key: tuple, make) -> httpx.Client:
        client = self._clients.get(key)
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._pid != os.getpid():
                self._forget()
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = make()
            return client

    def _forget(self) -> None:
        # the parent's clients stay open for the parent; the child only drops its references
        self._clients = {}
        self._pid = os.getpid()

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork time stays held in the child
        self._forget()


_shared = _SharedClients()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_shared.after_fork)


class PlatformHttp:
    """HTTP for one platform. Create with `PlatformHttp(settings, "tiktok")`."""

    def __init__(self, settings: Settings, platform: str, *, timeout: httpx.Timeout | None = None):
        self.settings = settings
        self.platform = platform
        self.timeout = timeout or httpx.Timeout(connect=10.0, read=settings.http_timeout,
                                                write=max(settings.http_timeout, 120.0), pool=10.0)

    def url(self, url: str) -> str:
        """The URL as it will be called (host map applied)."""
        return map_url(url, dict(self.settings.host_map))

    def browser_url(self, url: str) -> str:
        """A URL a browser opens (the authorize page). The host map applies; in sandbox mode the
        emulators' consent pages are served by the bridge itself under `/_sandbox/`."""
        mapped = self.url(url)
        if mapped != url or not self.settings.sandbox:
            return mapped
        parts = urlsplit(url)
        return f"{self.settings.public_url}/_sandbox/{parts.hostname}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    def _client_for(self, url: str) -> httpx.Client:
        host = (urlsplit(url).hostname or "").lower()
        in_sandbox = self.settings.sandbox and url == self.url(url) and not _is_loopback_host(host)
        t = self.timeout
        kind = scope_key(self.settings) if in_sandbox else "net"
        key = (self.platform, kind, t.connect, t.read, t.write, t.pool)
        return _shared.get(key, lambda: httpx.Client(
            # one client serves every account of the platform: it must keep no cookies, or one
            # creator's platform cookies would ride along with another's calls
            cookies=http.cookiejar.CookieJar(policy=_NO_COOKIES),
            timeout=self.timeout,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            verify=ssl_context(),
            limits=LIMITS,
            transport=sandbox_transport(self.settings) if in_sandbox else None,
        ))

    def request(self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any) -> httpx.Response:
        """Send one request and return the response, whatever its status.

        `idempotent` says whether repeating the request is harmless; it defaults to True for GET,
        HEAD, PUT of a byte range, DELETE and OPTIONS, and False for POST and PATCH. It decides
        whether a failure after sending is `Transient` or `UnknownOutcome`.
        """
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "OPTIONS", "DELETE", "PUT")
        target = self.url(url)
        client = self._client_for(url)
        started = time.perf_counter()
        try:
            response = client.request(method, target, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self._log(method, url, None, started, type(exc).__name__)
            raise Transient(f"Could not reach {self.platform}; it will be tried again.",
                            platform=self.platform, code="connect_failed") from None
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                httpx.WriteError) as exc:
            self._log(method, url, None, started, type(exc).__name__)
            if idempotent:
                raise Transient(f"{self.platform} did not answer in time; it will be tried again.",
                                platform=self.platform, code="timeout") from None
            raise UnknownOutcome(
                f"{self.platform} did not answer after the request was sent; checking whether it took effect.",
                platform=self.platform, code="timeout") from None
        self._log(method, url, response.status_code, started)
        return response

    def stream(self, method: str, url: str, **kwargs: Any):
        """A streaming response context (media downloads)."""
        return self._client_for(url).stream(method, self.url(url), **kwargs)

    def _log(self, method: str, url: str, status: int | None, started: float, error: str | None = None) -> None:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        log.info(
            "%s %s -> %s in %sms", method, redact(url.split("?", 1)[0]), status if status is not None else error,
            elapsed, extra={"platform": self.platform},
        )

    def close(self) -> None:
        """Nothing to free: the clients are shared by the process and live as long as it does."""


def _is_loopback_host(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def iter_chunks(data: bytes, size: int = 65536) -> Iterable[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
