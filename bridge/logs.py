"""JSON log lines with secrets scrubbed.

Every record passes `redact()`, which masks bearer tokens, `access_token=`/`refresh_token=`/
`client_secret=` style pairs and JSON fields of those names, wherever they come from.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

# Set for the duration of an HTTP request or a job; every log line carries them.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
post_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("post_id", default=None)

_SECRET_KEYS = r"(?:access_token|refresh_token|client_secret|code_verifier|fb_exchange_token|input_token|id_token|password|api_key|x-api-key|appsecret_proof|code)"
_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]+"), r"\1[redacted]"),
    (re.compile(rf"(?i)({_SECRET_KEYS}=)[^&\s\"']+"), r"\1[redacted]"),
    (re.compile(rf"(?i)(\"{_SECRET_KEYS}\"\s*:\s*\")[^\"]*(\")"), r"\1[redacted]\2"),
    (re.compile(rf"(?i)('{_SECRET_KEYS}'\s*:\s*')[^']*(')"), r"\1[redacted]\2"),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key in ("request_id", "post_id", "account_id", "platform", "job_id"):
            value = getattr(record, key, None)
            if value is None and key == "request_id":
                value = request_id_var.get()
            if value is None and key == "post_id":
                value = post_id_var.get()
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs full request URLs at INFO; they can carry OAuth codes.
    logging.getLogger("httpx").setLevel(logging.WARNING)
