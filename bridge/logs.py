"""JSON log lines with secrets scrubbed.

Every record passes `redact()`, which masks bearer and basic credentials, and the value of any
`*_token` (`hub.verify_token`, `access_token`, ...), `token`, `code`, `code_verifier`, `client_secret`,
key or password, as a `name=value` pair (query strings, form bodies, the access log) or as a JSON
or Python dict field, wherever the line comes from. Lines that servers write through their own
loggers (werkzeug's and gunicorn's access and error logs) are scrubbed by `RedactFilter`.
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

# `[\w.-]*_token` covers every token name, dotted ones (Meta's `hub.verify_token`) and a percent-encoded
# underscore included: the server decodes `%5F` before the bridge reads the name.
_SECRET_KEYS = (r"(?:[\w.\-]*(?:_|%5f)token|token|client_secret|secret|code_verifier|code|password|api_key|x-api-key"
                r"|appsecret_proof)")
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


class RedactFilter(logging.Filter):
    """Scrubs a record's message in place, for loggers whose lines our formatter never sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is left for its handler to report
            return True
        record.msg, record.args = redact(message), ()
        return True


# Servers that log requests (full paths with their query strings) through loggers of their own.
SERVER_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")


def redact_server_logs() -> None:
    """Put `RedactFilter` on the servers' loggers (once)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactFilter) for f in logger.filters):
            logger.addFilter(RedactFilter())


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs full request URLs at INFO; they can carry OAuth codes.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    redact_server_logs()
