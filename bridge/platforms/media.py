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
from typing import Iterator
from urllib.parse import urljoin, urlsplit

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
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise MediaError(f"The video host {host} does not resolve; check the video address.",
                         code="media_unreachable") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if getattr(address, "ipv4_mapped", None):
            address = address.ipv4_mapped
        if address.is_loopback and settings.sandbox:
            continue
        if (address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
                or address.is_multicast or address.is_unspecified):
            raise MediaError(f"The video address points at an internal network address ({host}); the bridge only "
                             f"fetches public media.", code="media_url_forbidden")


class MediaSource:
    def __init__(self, settings: Settings, url: str, http: PlatformHttp | None = None):
        self.settings = settings
        self.url = url
        self.http = http or PlatformHttp(settings, "media")
        self._resolved: str | None = None
        self.info: MediaInfo | None = None

    def resolve(self) -> str:
        """Follow redirects by hand, checking every hop; return the final URL."""
        if self._resolved:
            return self._resolved
        url = self.url
        for _ in range(_MAX_REDIRECTS + 1):
            check_media_url(url, self.settings)
            response = self.http.request("GET", url, headers={"Range": "bytes=0-0"})
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
            return url
        raise MediaError("The video address redirects too many times.", code="media_url_forbidden")

    def probe(self) -> MediaInfo:
        if self.info is not None:
            return self.info
        url = self.resolve()
        response = self.http.request("GET", url, headers={"Range": f"bytes=0-{_HEAD - 1}"})
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
        return self.info

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
