"""The one error taxonomy every platform maps into.

    PlatformError
    ├── TokenExpired      the access token is expired or invalid: refresh once, then continue
    ├── Reauthorize       the grant is gone (refresh refused, app removed): the creator must reconnect
    ├── RateLimited       wait `retry_after` seconds (from Retry-After or a reset time), then continue
    ├── Rejected          the platform refused the request or the content: final, with a stable code
    ├── Transient         nothing was created (connect error, 5xx on a read or an idempotent call): retry
    └── UnknownOutcome    the request may have taken effect (timeout or 5xx after sending a
                          non-idempotent call): ask the platform before anything is retried

Each carries `platform`, a stable snake_case `code` (ours, or the platform's own where it is
specific), a `message` a creator can act on, and `platform_code`/`http_status` for operators.
Messages never include tokens: they are built from the platform's error fields only.
"""
from __future__ import annotations

import math


class PlatformError(Exception):
    retryable = False
    default_code = "platform_error"

    def __init__(self, message: str, *, platform: str = "", code: str | None = None,
                 platform_code: str | int | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.code = code or self.default_code
        self.platform_code = platform_code
        self.http_status = http_status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.platform}:{self.code}: {self.message!r})"


class TokenExpired(PlatformError):
    retryable = True
    default_code = "token_expired"


class Reauthorize(PlatformError):
    default_code = "reauthorize"


class RateLimited(PlatformError):
    retryable = True
    default_code = "rate_limited"

    # the longest wait believed: a wait becomes a time later on, and a platform's (or a hostile
    # proxy's) infinity or centuries would overflow it
    MAX_WAIT = 7 * 86400.0

    def __init__(self, message: str, *, retry_after: float = 60.0, **kw):
        super().__init__(message, **kw)
        wait = float(retry_after)
        self.retry_after = 60.0 if math.isnan(wait) else min(max(0.0, wait), self.MAX_WAIT)


class Rejected(PlatformError):
    default_code = "rejected"


class Transient(PlatformError):
    retryable = True
    default_code = "transient"


class UnknownOutcome(PlatformError):
    default_code = "unknown_outcome"
