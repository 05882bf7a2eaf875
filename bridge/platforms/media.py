"""Reading the creator's media from its URL, bounded in size, time and form.

`MediaSource` learns size, type and duration from the head of the file (the MP4 `mvhd` box holds
the duration, at the head of a fast-start file or at its tail), then streams any byte range in
small pieces for chunked uploads. Whoever serves the file, every read is bounded:

* no content decoding: `Accept-Encoding: identity` is asked for, and a body sent encoded anyway is
  refused (`media_encoded`), never decompressed: a small gzip body can inflate to gigabytes;
* a byte cap: nothing past `AURAREELS_MEDIA_MAX_BYTES` of a file is read, and a file announced
  larger is refused unread (`media_too_large`). A platform's own, lower limit is checked against
  the probed size before anything is queued, and every chunked upload declares that size to the
  platform before a byte is read, so no read goes past what the platform takes;
* time: a whole-transfer deadline, and a minimum average rate once a short grace has passed,
  counted on the time spent waiting for the media server (`media_too_slow`): a server dripping a
  byte a second holds a worker for the grace, not for the job's whole timeout;
* the probe reads at most its head (and tail), streaming and then closing the connection, even
  from a server that ignores `Range` and sends the whole file; a range read from such a server
  reads the stream once, skipping to the offset, instead of failing.

Every URL, and every redirect hop, passes the SSRF guard: only http(s), and no loopback, private,
link-local or reserved address unless the host is listed in `AURAREELS_MEDIA_HOSTS_ALLOWED`
(sandbox mode also allows loopback and the sandbox media host).
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
import time
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from bridge.config import Settings
from bridge.platforms.base import MediaInfo
from bridge.platforms.errors import Rejected, Transient
from bridge.logs import redact
from bridge.platforms.http import PlatformHttp

log = logging.getLogger("bridge.platforms.media")

SANDBOX_MEDIA_HOST = "media.sandbox.aurareels.test"
PIECE = 256 * 1024
_HEAD = 64 * 1024
_TAIL = 1024 * 1024
_MAX_REDIRECTS = 5
# Time bounds of every media read, counted on the time spent waiting for the media server.
PROBE_SECONDS = 20.0  # whole-transfer deadline of the head (or tail) of a probe
RANGE_SECONDS = 300.0  # whole-transfer deadline of one range read (an upload chunk is at most 64 MB)
SKIP_RATE = 8 * 1024 * 1024  # bytes a second allowed on top for skipping to a range a server would not serve
MIN_RATE = 64 * 1024  # bytes a second, on average, once the grace has passed
GRACE_SECONDS = 10.0
READ_TIMEOUT = 20.0  # the longest silence between two reads


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
        backend = getattr(pool, "_network_backend", None)
        # the client is shared by the process: its guard follows the settings of the caller (one
        # set in a deployment; tests switch between sandbox and production rules)
        if pool is not None and not (isinstance(backend, _CheckedConnections) and backend.settings == http.settings):
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


class _Pace:
    """The time one transfer may keep us waiting on a media server: a whole-transfer deadline, and
    once the grace has passed a minimum average rate. Only time spent waiting for the server
    counts (connecting, headers, each read), not the time the reader spends elsewhere (sending the
    bytes on to a platform)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.waited = 0.0
        self.received = 0

    def count(self, seconds: float, nbytes: int) -> None:
        self.waited += seconds
        self.received += nbytes
        if self.waited > self.deadline:
            raise Transient(f"The video server did not finish sending within {self.deadline:.0f} s.",
                            code="media_too_slow")
        if self.waited > GRACE_SECONDS and self.received < MIN_RATE * self.waited:
            raise Transient(f"The video server sends slower than {MIN_RATE // 1024} KiB/s; the bridge gave up on it.",
                            code="media_too_slow")


class MediaSource:
    """One media file behind a URL. `probe()` reads its head (and tail); `iter_range()` streams a
    byte range. Both are bounded as the module describes; failures are `MediaError` (the file or its
    server is unusable: don't retry) or `Transient` (it may work later)."""

    def __init__(self, settings: Settings, url: str, http: PlatformHttp | None = None):
        self.settings = settings
        self.url = url
        self.http = _checked(http or PlatformHttp(settings, "media"))
        self.max_bytes = settings.media_max_bytes
        self.timeout = httpx.Timeout(connect=10.0, read=min(settings.http_timeout, READ_TIMEOUT), write=10.0,
                                     pool=10.0)
        self._resolved: str | None = None
        self.info: MediaInfo | None = None

    def resolve(self) -> str:
        """Follow redirects by hand, checking every hop; return the final URL."""
        if self._resolved:
            return self._resolved
        with self._follow(0, 0, _Pace(PROBE_SECONDS)):
            pass
        return self._resolved

    @contextmanager
    def _get(self, url: str, first: int, last: int, pace: _Pace) -> Iterator[httpx.Response]:
        """An open, unread answer to a GET of bytes first..last of `url`; transport failures become
        `Transient`. The body is read only through `_read`, so nothing is ever decoded or buffered."""
        started = time.monotonic()
        try:
            headers = {"Range": f"bytes={first}-{last}", "Accept-Encoding": "identity"}
            with self.http.stream("GET", url, timeout=self.timeout, headers=headers) as response:
                log.info("GET %s -> %s in %sms", redact(url.split("?", 1)[0]), response.status_code,
                         round((time.monotonic() - started) * 1000, 1), extra={"platform": "media"})
                pace.count(time.monotonic() - started, 0)
                yield response
        except httpx.TimeoutException:
            raise Transient("The video server did not answer in time.", code="media_timeout") from None
        except httpx.TransportError:
            raise Transient("The video server could not be reached or dropped the connection.",
                            code="media_unreachable") from None

    @contextmanager
    def _follow(self, first: int, last: int, pace: _Pace) -> Iterator[httpx.Response]:
        """`_get` of the video, following redirects by hand and checking every hop; remembers the
        final URL and yields its (successful) answer."""
        url = self.url
        for _ in range(_MAX_REDIRECTS + 1):
            check_media_url(url, self.settings)
            with self._get(url, first, last, pace) as response:
                location = response.headers.get("Location")
                if not (response.status_code in (301, 302, 303, 307, 308) and location):
                    _raise_for_status(response)
                    self._resolved = url
                    yield response
                    return
            url = urljoin(url, location)
        raise MediaError("The video address redirects too many times.", code="media_url_forbidden")

    def probe(self, ahead: bool = False) -> MediaInfo:
        """Size, type and duration of the video; the read of its head also resolves the address.
        Reads at most the head (and, for a file whose `mvhd` box is at its end, the tail) whatever
        the server sends. With `ahead` the result is kept for one later probe of the same URL in
        this process (within `PROBE_TTL` seconds), which then reads nothing."""
        if self.info is not None and not ahead:
            return self.info
        key = self._cache_key()
        cached = None if ahead else _probes.take(key)
        if cached is not None:
            self._resolved, self.info = cached
            return self.info
        pace = _Pace(PROBE_SECONDS)
        opened = self._get(self._resolved, 0, _HEAD - 1, pace) if self._resolved else self._follow(0, _HEAD - 1, pace)
        with opened as response:
            _raise_for_status(response)
            ranged = response.status_code == 206
            size = _total_size(response)
            self._check(response, size)
            content_type = response.headers.get("Content-Type")
            head = b"".join(_read(response, pace, 0, _HEAD))
        url = self._resolved
        duration = mp4_duration(head)
        # a server that ignores Range would send the whole file again for its tail: not read
        if duration is None and ranged and size and size > len(head):
            start = max(0, size - _TAIL)
            tail_pace = _Pace(PROBE_SECONDS)
            with self._get(url, start, size - 1, tail_pace) as tail:
                if tail.status_code == 206 and _range_start(tail) == start and _identity(tail):
                    duration = mp4_duration(b"".join(_read(tail, tail_pace, 0, size - start)), search_anywhere=True)
        self.info = MediaInfo(size=size, content_type=content_type, duration_sec=duration)
        if ahead:
            _probes.put(key, (url, self.info))
        return self.info

    def _check(self, response: httpx.Response, size: int | None) -> None:
        """Refuse an encoded body (never decoded here) and a file larger than the cap."""
        if not _identity(response):
            raise MediaError(f"The video server sent the file compressed "
                             f"({response.headers.get('Content-Encoding', '')[:40]}); serve it as it is.",
                             code="media_encoded")
        if size is not None and size > self.max_bytes:
            raise MediaError(f"The file is {size / 1e6:,.0f} MB; the bridge reads media files of up to "
                             f"{self.max_bytes / 1e6:,.0f} MB.", code="media_too_large")

    def _cache_key(self) -> tuple:
        # what was fetchable under one set of rules says nothing about another
        s = self.settings
        return self.url, s.sandbox, tuple(s.media_hosts_allowed), tuple(sorted(dict(s.host_map).items()))

    def iter_range(self, start: int, end: int, piece: int = PIECE) -> Iterator[bytes]:
        """Stream bytes start..end (inclusive) in pieces of at most `piece` bytes. From a server
        that ignores `Range` the stream is read once from its beginning, skipping to `start`."""
        if end >= self.max_bytes:
            raise MediaError(f"The file is larger than the {self.max_bytes / 1e6:,.0f} MB the bridge reads.",
                             code="media_too_large")
        url = self.resolve()
        pace = _Pace(RANGE_SECONDS)
        with self._get(url, start, end, pace) as response:
            if response.status_code == 200:
                pace.deadline += start / SKIP_RATE  # the bytes before `start` come first
            _raise_for_status(response)
            self._check(response, _total_size(response))
            if response.status_code == 206:
                if _range_start(response) != start:
                    raise MediaError("The video server answered with other bytes than the ones asked for.",
                                     code="media_range_mismatch")
                skip = 0
            else:
                skip = start
            for block in _read(response, pace, skip, end - start + 1):
                for offset in range(0, len(block), piece):
                    yield block[offset:offset + piece]


def _read(response: httpx.Response, pace: _Pace, skip: int, length: int) -> Iterator[bytes]:
    """Up to `length` raw body bytes after the first `skip`, never decoded, each read paced;
    stops reading (the connection is then closed, not drained) once they are in."""
    stream = response.iter_raw()
    position, stop = 0, skip + length
    while position < stop:
        started = time.monotonic()
        block = next(stream, None)
        if block is None:
            return
        pace.count(time.monotonic() - started, len(block))
        low, high = max(skip - position, 0), min(len(block), stop - position)
        position += len(block)
        if low < high:
            yield block[low:high]


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status >= 500:
        raise Transient("The video server had a temporary problem.", code="media_unavailable", http_status=status)
    if status >= 400 or status not in (200, 206):
        raise MediaError(f"The video could not be read (HTTP {status}); check that it is public.", http_status=status)


def _identity(response: httpx.Response) -> bool:
    return response.headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")


def _range_start(response: httpx.Response) -> int | None:
    unit, _, spec = response.headers.get("Content-Range", "").partition(" ")
    first = spec.partition("-")[0]
    return int(first) if unit.strip().lower() == "bytes" and first.isascii() and first.isdigit() else None


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
