"""A media server that misbehaves on purpose, on loopback, for the media-bounds tests and benchmark.

Paths (query `size` in bytes, default 2,000,000):

* `/norange.mp4`: ignores `Range`, always 200 with the whole file (a valid MP4 of `size` bytes);
* `/ranged.mp4`: serves byte ranges (206), like a well-behaved server;
* `/gzip.mp4?inflated=N`: `Content-Encoding: gzip` whatever was asked, a body that inflates to N
  zero bytes (a gzip bomb: about 1,000 times smaller than what it inflates to);
* `/slow.mp4?interval=S`: 200 with the whole length announced, then one byte every S seconds;
* `/nolength.mp4`: ignores `Range`, no `Content-Length`, the body ends when the connection closes.

Bodies are produced as they are sent, never held. `sent[path]` counts the bytes each path wrote
to its sockets (what the kernel accepted: the reader's socket buffers hold a few MB of it).
"""
from __future__ import annotations

import gzip
import io
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from bridge.sandbox.media import synthetic_bytes

PIECE = 64 * 1024


def _video(size: int, start: int, end: int):
    """Bytes start..end of a valid MP4 of `size` bytes (past 4 GiB, whose boxes take 64-bit sizes,
    a 4 GiB MP4 header followed by filler: only its length matters there)."""
    if size < 2 ** 32:
        return synthetic_bytes(size, 20.0, start, end, piece=PIECE)
    return (bytes(min(PIECE, end + 1 - at)) for at in range(start, end + 1, PIECE))


def _gzip_of_zeros(size: int) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as packed:
        zeros = bytes(1024 * 1024)
        left = size
        while left > 0:
            packed.write(zeros[:min(left, len(zeros))])
            left -= len(zeros)
    return buffer.getvalue()


class HostileMediaServer:
    def __init__(self):
        self.sent: Counter = Counter()
        self.requests: list[dict] = []
        self._bombs: dict[int, bytes] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner._serve(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # readers hang up mid-body on purpose

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, name="hostile-media", daemon=True).start()

    def url(self, path: str, **query) -> str:
        return f"{self.base}{path}" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")

    def bomb(self, inflated: int) -> bytes:
        with self._lock:
            if inflated not in self._bombs:
                self._bombs[inflated] = _gzip_of_zeros(inflated)
            return self._bombs[inflated]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------------------- serving
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        size = int(query.get("size", 2_000_000))
        path = parts.path
        with self._lock:
            self.requests.append({"path": path, "range": handler.headers.get("Range"),
                                  "accept_encoding": handler.headers.get("Accept-Encoding")})
        if path == "/ranged.mp4" and handler.headers.get("Range", "").startswith("bytes="):
            first, _, last = handler.headers["Range"][6:].partition("-")
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
            self._head(handler, 206, end - start + 1, {"Content-Range": f"bytes {start}-{end}/{size}"})
            self._write(handler, path, _video(size, start, end))
        elif path in ("/norange.mp4", "/ranged.mp4"):
            self._head(handler, 200, size)
            self._write(handler, path, _video(size, 0, size - 1))
        elif path == "/nolength.mp4":
            self._head(handler, 200, None, {"Connection": "close"})
            self._write(handler, path, _video(size, 0, size - 1))
            handler.close_connection = True
        elif path == "/gzip.mp4":
            body = self.bomb(int(query.get("inflated", 100_000_000)))
            self._head(handler, 200, len(body), {"Content-Encoding": "gzip"})
            self._write(handler, path, (body[i:i + PIECE] for i in range(0, len(body), PIECE)))
        elif path == "/slow.mp4":
            interval = float(query.get("interval", 1.0))
            self._head(handler, 200, size)
            self._write(handler, path, self._drip(size, interval))
        else:
            self._head(handler, 404, 0)

    @staticmethod
    def _head(handler, status: int, length: int | None, extra: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "video/mp4")
        if length is not None:
            handler.send_header("Content-Length", str(length))
        for name, value in (extra or {}).items():
            handler.send_header(name, value)
        handler.end_headers()

    def _write(self, handler, path: str, pieces) -> None:
        try:
            for piece in pieces:
                handler.wfile.write(piece)
                handler.wfile.flush()
                with self._lock:
                    self.sent[path] += len(piece)
        except (BrokenPipeError, ConnectionResetError, OSError):
            handler.close_connection = True  # the reader hung up: what it did not want is never produced

    @staticmethod
    def _drip(size: int, interval: float):
        for index in range(size):
            yield b"\x00"
            time.sleep(interval)
