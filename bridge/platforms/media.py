"""Reading the creator's video from its URL without holding it in memory.

`MediaSource` learns size, type and duration with two small Range reads (the MP4 `mvhd` box holds
the duration, at the head of a fast-start file or at its tail), then streams any byte range in
small pieces for chunked uploads. Every URL, and every redirect hop, passes the SSRF guard: only
http(s), and no loopback, private, link-local or reserved address unless the host is listed in
`AURAREELS_MEDIA_HOSTS_ALLOWED` (sandbox mode also allows loopback and the sandbox media host).
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from bridge.config import Settings
from bridge.platforms.base import MediaInfo
from bridge.platforms.errors import Rejected, Transient
from bridge.platforms.http import PlatformHttp

SANDBOX_MEDIA_HOST = "media.sandbox.aurareels.test"
PIECE = 256 * 1024
_HEAD = 64 * 1024
_TAIL = 1024 * 1024
_MAX_REDIRECTS = 5


class MediaError(Rejected):
    default_code = "media_unavailable"


def check_media_url(url: str, settings: Settings) -> None:
    """Raise `MediaError` (code `media_url_forbidden`) for a URL the bridge must not fetch."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise MediaError("The video address must start with http:// or https://.", code="media_url_forbidden")
    host = (parts.hostname or "").lower()
    if not host:
        raise MediaError("The video address has no host.", code="media_url_forbidden")
    allowed = set(settings.media_hosts_allowed)
    if host in allowed or (parts.port and f"{host}:{parts.port}" in allowed):
        return
    if settings.sandbox and host == SANDBOX_MEDIA_HOST:
        return
    if host in settings.host_map:
        return
    _public_addresses(host, parts.port or (443 if parts.scheme == "https" else 80), settings)


def _public_addresses(host: str, port: int, settings: Settings) -> list[str]:
    """Every address `host` resolves to, all of them public (else `MediaError`)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise MediaError(f"The video host {host} does not resolve; check the video address.",
                         code="media_unreachable") from None
    addresses = []
    for info in infos:
        raw = info[4][0].split("%")[0]
        address = _embedded_ipv4(ipaddress.ip_address(raw))
        addresses.append(raw)
        if address.is_loopback and settings.sandbox:
            continue
        # not is_global also covers shared (100.64.0.0/10), documentation and benchmarking ranges
        if (address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
                or address.is_multicast or address.is_unspecified or not address.is_global):
            raise MediaError(f"The video address points at an internal network address ({host}); the bridge only "
                             f"fetches public media.", code="media_url_forbidden")
    return addresses


class _CheckedConnections(httpcore.SyncBackend):
    """Connects only to addresses that pass the SSRF rules, resolved at connect time: a name that
    answered with a public address when the URL was checked and with an internal one a moment
    later (DNS rebinding) is refused, not fetched. Hosts the settings allow (listed media hosts,
    host-map targets) connect as they are."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.trusted = set(settings.media_hosts_allowed)
        for target in settings.host_map.values():
            parts = urlsplit(target)
            if parts.hostname:
                self.trusted.add(f"{parts.hostname.lower()}:{parts.port or (443 if parts.scheme == 'https' else 80)}")

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        name = host.decode() if isinstance(host, bytes) else str(host)
        name = name.strip("[]").lower()
        if name not in self.trusted and f"{name}:{port}" not in self.trusted:
            name = _public_addresses(name, port, self.settings)[0]
        return super().connect_tcp(name, port, timeout=timeout, local_address=local_address,
                                   socket_options=socket_options)


def _checked(http: PlatformHttp) -> PlatformHttp:
    """`http` with its network connections made through `_CheckedConnections` (once per instance)."""
    if getattr(http, "_connections_checked", False):
        return http
    client_for = http._client_for

    def checked_client_for(url: str) -> httpx.Client:
        client = client_for(url)
        pool = getattr(getattr(client, "_transport", None), "_pool", None)
        if pool is not None and not isinstance(getattr(pool, "_network_backend", None), _CheckedConnections):
            pool._network_backend = _CheckedConnections(http.settings)
        return client

    http._client_for = checked_client_for  # type: ignore[method-assign]
    http._connections_checked = True  # type: ignore[attr-defined]
    return http


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address):
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64), else itself:
    `::ffff:127.0.0.1` or `2002:7f00:1::` reach 127.0.0.1 and are judged as that address."""
    if address.version != 6:
        return address
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


PROBE_TTL = 120.0


class _ProbeCache:
    """Probes made ahead of time (`MediaSource.probe(ahead=True)`, a pre-armed post before its
    due time), each good for one later probe of the same URL within `PROBE_TTL` seconds. Only
    those are answered from memory: a probe at publishing time otherwise always reads the video."""

    def __init__(self, size: int = 20_000):
        self.size = size
        self._lock = threading.Lock()
        self._items: dict[tuple, list] = {}  # key -> [expires, (url, info), uses left]

    def take(self, key: tuple):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                del self._items[key]
                return None
            item[2] -= 1
            if item[2] <= 0:
                del self._items[key]
            return item[1]

    def put(self, key: tuple, value: tuple[str, MediaInfo]) -> None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                item[0], item[1], item[2] = time.monotonic() + PROBE_TTL, value, item[2] + 1
                return
            if len(self._items) >= self.size:
                now = time.monotonic()
                self._items = {k: v for k, v in self._items.items() if v[0] >= now}
                while len(self._items) >= self.size:
                    self._items.pop(next(iter(self._items)))
            self._items[key] = [time.monotonic() + PROBE_TTL, value, 1]


_probes = _ProbeCache()


class MediaSource:
    def __init__(self, settings: Settings, url: str, http: PlatformHttp | None = None):
        self.settings = settings
        self.url = url
        self.http = _checked(http or PlatformHttp(settings, "media"))
        self._resolved: str | None = None
        self.info: MediaInfo | None = None

    def resolve(self) -> str:
        """Follow redirects by hand, checking every hop; return the final URL."""
        if self._resolved:
            return self._resolved
        self._follow("bytes=0-0")
        return self._resolved

    def _follow(self, byte_range: str) -> httpx.Response:
        """GET `byte_range` of the video, following redirects by hand and checking every hop;
        remembers the final URL and returns its answer."""
        url = self.url
        for _ in range(_MAX_REDIRECTS + 1):
            check_media_url(url, self.settings)
            response = self.http.request("GET", url, headers={"Range": byte_range})
            if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                url = urljoin(url, response.headers["Location"])
                continue
            if response.status_code >= 400:
                if response.status_code >= 500:
                    raise Transient("The video server had a temporary problem.", code="media_unavailable",
                                    http_status=response.status_code)
                raise MediaError(f"The video could not be read (HTTP {response.status_code}); check that it is "
                                 f"public.", http_status=response.status_code)
            self._resolved = url
            return response
        raise MediaError("The video address redirects too many times.", code="media_url_forbidden")

    def probe(self, ahead: bool = False) -> MediaInfo:
        """Size, type and duration of the video; the read of its head also resolves the address.
        With `ahead` the result is kept for one later probe of the same URL in this process
        (within `PROBE_TTL` seconds), which then reads nothing."""
        if self.info is not None and not ahead:
            return self.info
        key = self._cache_key()
        cached = None if ahead else _probes.take(key)
        if cached is not None:
            self._resolved, self.info = cached
            return self.info
        if self._resolved:
            response = self.http.request("GET", self._resolved, headers={"Range": f"bytes=0-{_HEAD - 1}"})
        else:
            response = self._follow(f"bytes=0-{_HEAD - 1}")
        url = self._resolved
        if response.status_code not in (200, 206):
            raise MediaError(f"The video could not be read (HTTP {response.status_code}).",
                             http_status=response.status_code)
        head = response.content[:_HEAD]
        size = _total_size(response)
        content_type = response.headers.get("Content-Type")
        duration = mp4_duration(head)
        if duration is None and size and size > len(head):
            start = max(0, size - _TAIL)
            tail = self.http.request("GET", url, headers={"Range": f"bytes={start}-{size - 1}"})
            if tail.status_code == 206:
                duration = mp4_duration(tail.content, search_anywhere=True)
        self.info = MediaInfo(size=size, content_type=content_type, duration_sec=duration)
        if ahead:
            _probes.put(key, (url, self.info))
        return self.info

    def _cache_key(self) -> tuple:
        # what was fetchable under one set of rules says nothing about another
        s = self.settings
        return self.url, s.sandbox, tuple(s.media_hosts_allowed), tuple(sorted(dict(s.host_map).items()))

    def iter_range(self, start: int, end: int, piece: int = PIECE) -> Iterator[bytes]:
        """Stream bytes start..end (inclusive) in pieces of at most `piece` bytes."""
        url = self.resolve()
        with self.http.stream("GET", url, headers={"Range": f"bytes={start}-{end}"}) as response:
            if response.status_code != 206:
                raise MediaError(f"The video server does not serve byte ranges (HTTP {response.status_code}).",
                                 code="media_range_unsupported")
            for block in response.iter_bytes(piece):
                yield block


def _total_size(response) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    length = response.headers.get("Content-Length")
    if response.status_code == 200 and length and length.isdigit():
        return int(length)
    return None


def mp4_duration(data: bytes, search_anywhere: bool = False) -> float | None:
    """Duration in seconds from the `mvhd` box, if `data` holds it."""
    index = data.find(b"mvhd")
    if index < 4:
        return None
    body = index + 4
    try:
        version = data[body]
        if version == 1:
            timescale, duration = struct.unpack(">IQ", data[body + 20: body + 32])
        else:
            timescale, duration = struct.unpack(">II", data[body + 12: body + 20])
    except (IndexError, struct.error):
        return None
    if not timescale:
        return None
    return duration / timescale
