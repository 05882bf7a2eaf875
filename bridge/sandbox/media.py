"""The sandbox media host: synthetic MP4 files of any size, served with Range support.

`https://media.sandbox.aurareels.test/videos/<name>.mp4?size=300000000&duration=42` is a valid
MP4 header (ftyp, moov/mvhd with the duration) followed by an `mdat` of deterministic filler up
to `size` bytes. Nothing is held in memory: any byte range is computed on the fly. `?status=404`
answers that status; `/redirect?to=<url>` redirects (for the SSRF guard's tests).
`/videos/aurareels-demo.mp4` is the one real, playable file: the demo video of `up`
(`bridge.sandbox.demo_video`).
"""
from __future__ import annotations

import struct
from typing import Iterator

from werkzeug.wrappers import Request, Response

from bridge.platforms.media import SANDBOX_MEDIA_HOST
from bridge.sandbox.core import Emulator, route
from bridge.sandbox.demo_video import DEMO_PATH, demo_mp4

_PATTERN = bytes((i * 31 + 7) & 0xFF for i in range(4096))


def mp4_header(size: int, duration: float, timescale: int = 1000) -> bytes:
    ftyp = struct.pack(">I4s4sI8s", 24, b"ftyp", b"isom", 0x200, b"isomiso2")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd_body = struct.pack(">B3xIIII", 0, 0, 0, timescale, int(duration * timescale)) + struct.pack(
        ">IH10x", 0x10000, 0x100) + matrix + b"\x00" * 24 + struct.pack(">I", 2)
    mvhd = struct.pack(">I4s", 8 + len(mvhd_body), b"mvhd") + mvhd_body
    moov = struct.pack(">I4s", 8 + len(mvhd), b"moov") + mvhd
    head = ftyp + moov
    mdat = struct.pack(">I4s", max(8, size - len(head)), b"mdat")
    return head + mdat


def synthetic_bytes(size: int, duration: float, start: int, end: int, piece: int = 65536) -> Iterator[bytes]:
    """Bytes start..end (inclusive) of the synthetic file."""
    header = mp4_header(size, duration)
    position = start
    while position <= end:
        if position < len(header):
            block = header[position:min(len(header), end + 1)]
        else:
            length = min(piece, end + 1 - position)
            offset = position % len(_PATTERN)
            block = (_PATTERN[offset:] + _PATTERN * (length // len(_PATTERN) + 1))[:length]
        position += len(block)
        yield block


class MediaEmulator(Emulator):
    platform = "media"
    hosts = (SANDBOX_MEDIA_HOST,)
    defaults = {"max_size": 8 * 1024 ** 3}

    @route("GET", r"/videos/(?P<name>[^/]+)")
    def video(self, request: Request, name: str) -> Response:
        status = request.args.get("status", type=int)
        if status:
            return Response("", status=status)
        if request.path == DEMO_PATH:
            data = demo_mp4()
            return Response(data, content_type="video/mp4").make_conditional(
                request, accept_ranges=True, complete_length=len(data))
        size = min(request.args.get("size", default=2_000_000, type=int), self.config["max_size"])
        duration = request.args.get("duration", default=15.0, type=float)
        content_type = request.args.get("type", "video/mp4")
        start, end = 0, size - 1
        range_header = request.headers.get("Range")
        status_code = 200
        if range_header and range_header.startswith("bytes="):
            first, _, last = range_header[6:].partition("-")
            try:
                start = int(first) if first else max(0, size - int(last))
                end = min(int(last), size - 1) if first and last else size - 1
            except ValueError:
                return Response("", status=416, headers={"Content-Range": f"bytes */{size}"})
            if start >= size or start > end:
                return Response("", status=416, headers={"Content-Range": f"bytes */{size}"})
            status_code = 206
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
        if status_code == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(synthetic_bytes(size, duration, start, end), status=status_code, headers=headers,
                        content_type=content_type, direct_passthrough=True)

    @route("GET", r"/images/(?P<name>[^/]+)")
    def image(self, request: Request, name: str) -> Response:
        png = (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        return Response(png, content_type="image/jpeg" if name.endswith(".jpg") else "image/png")

    @route("GET", r"/redirect")
    def redirect_to(self, request: Request) -> Response:
        return Response("", status=302, headers={"Location": request.args.get("to", "/")})
