"""Watches the whole test session for secrets that leave the bridge.

Every log record (formatted by `bridge.logs.JsonFormatter`, exactly as production writes it) and
every response the Flask test client receives (body and headers) is scanned for the suite's known
fake secrets and for every access or refresh token an emulator has issued so far. Worker processes
write their logs to files, which are scanned when the session ends. Leaks are collected, not
raised where they happen, so the session-finish check can list them all.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field

from bridge.logs import JsonFormatter

# Runs of characters a token can be made of; tokens are delimited by anything else (quotes,
# spaces, `=`, `&`), so an issued token shows up as one whole run.
_RUN = re.compile(r"[A-Za-z0-9._~-]{12,}")


@dataclass
class Leak:
    where: str  # "log", "response" or a log file path
    secret: str  # which secret (masked)
    context: str  # a masked excerpt

    def __str__(self) -> str:
        return f"{self.where}: {self.secret} in {self.context!r}"


def _mask(secret: str) -> str:
    return secret[:4] + "…" + f"({len(secret)} chars)"


@dataclass
class SecretWatch:
    fixed: tuple[str, ...]
    issued: set[str] = field(default_factory=set)
    leaks: list[Leak] = field(default_factory=list)
    scanned_logs: int = 0
    scanned_responses: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_issued(self, token: str) -> None:
        if isinstance(token, str) and len(token) >= 12:
            with self._lock:
                self.issued.add(token)

    def find(self, text: str) -> list[str]:
        found = [s for s in self.fixed if s and s in text]
        with self._lock:
            issued = self.issued
            if issued:
                found.extend(run for run in set(_RUN.findall(text)) if run in issued)
        return found

    def scan(self, text: str, where: str) -> list[Leak]:
        new = []
        for secret in self.find(text):
            at = text.find(secret)
            excerpt = text[max(0, at - 60): at].replace(secret, "<S>") + "<SECRET>" + \
                text[at + len(secret): at + len(secret) + 30]
            new.append(Leak(where, _mask(secret), excerpt))
        if new:
            with self._lock:
                self.leaks.extend(new)
        return new

    # --- sources
    def scan_response(self, response) -> None:
        try:
            body = response.get_data(as_text=True)
        except Exception:  # a streamed or binary body: check what can be read
            body = ""
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.scanned_responses += 1
        self.scan(headers + "\n" + body, f"response {getattr(response, 'request', None) and response.request.path}")

    def scan_file(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return
        self.scan(text, path)


class CaptureHandler(logging.Handler):
    """Formats every record as production does and hands the line to the watch."""

    def __init__(self, watch: SecretWatch):
        super().__init__(level=logging.DEBUG)
        self.watch = watch
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted is the formatter's problem, not a leak
            return
        self.watch.scanned_logs += 1
        self.watch.scan(line, f"log {record.name}")


def install(watch: SecretWatch):
    """Hook the watch into logging, the Flask test client and the emulators' token issuing.
    Returns an undo callable."""
    from flask.testing import FlaskClient

    from bridge.sandbox.core import TokenRecord

    handler = CaptureHandler(watch)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    # production levels (bridge.logs.setup_logging): INFO, httpx quiet
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)

    original_open = FlaskClient.open

    def open_and_scan(self, *args, **kwargs):
        response = original_open(self, *args, **kwargs)
        try:
            watch.scan_response(response)
        except Exception:
            pass
        return response

    FlaskClient.open = open_and_scan

    original_init = TokenRecord.__init__

    def init_and_record(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if getattr(self, "kind", "access") != "app":
            watch.add_issued(self.token)

    TokenRecord.__init__ = init_and_record

    def undo() -> None:
        FlaskClient.open = original_open
        TokenRecord.__init__ = original_init
        for h in [h for h in root.handlers if isinstance(h, CaptureHandler)]:
            root.removeHandler(h)
        root.setLevel(old_level)

    return undo


def ensure_handler(watch: SecretWatch) -> None:
    """A test that calls `bridge.logs.setup_logging()` replaces the root handlers: attach again."""
    root = logging.getLogger()
    if not any(isinstance(h, CaptureHandler) for h in root.handlers):
        root.addHandler(CaptureHandler(watch))
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
