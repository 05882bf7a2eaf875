"""Per-user rate limits on the routes that create things (`AURAREELS_RATE_LIMIT` a minute).

A view wrapped with `rate_limited()` counts each request of its signed-in user in a one-minute
moving window kept in Redis (the `limits` library: the same window for every API process, with the
embedded `up` run's in-process Redis as with a real one). Over the limit it answers 429 in the
envelope with `Retry-After`: the seconds until the oldest request of the window leaves it. The
create routes (`/publish`, `/schedule`, `/drafts`, `/validate`, `connect`) share one group,
`create`, so the limit holds per user across all of them; a new create route adds
`rate_limited()` to its view's decorators (and `RATE_LIMITED` to its documented answers).

When Redis does not answer, requests go through and a warning is logged (at most once a minute
per process): the limit protects the service from one user and must not refuse everyone while
Redis is away. Routes that need Redis themselves still answer 503 then.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from functools import wraps

import redis as redis_lib
from flask import current_app
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from bridge.api.deps import current_user_id, runtime
from bridge.errors import ApiError
from bridge.schemas.common import ErrorSchema

log = logging.getLogger(__name__)

CREATE = "create"
RATE_LIMITED = {"schema": ErrorSchema, "description": "Too many requests of this user; see Retry-After"}
_WARN_EVERY = 60.0


class _Limiter:
    """One process's view of the windows (built once per app, on first use)."""

    def __init__(self, client: redis_lib.Redis, per_minute: int):
        storage = RedisStorage("redis://", connection_pool=client.connection_pool, key_prefix="bridge:ratelimit",
                               wrap_exceptions=True)
        self.windows = MovingWindowRateLimiter(storage)
        self.item = RateLimitItemPerMinute(per_minute)
        self._warned = 0.0
        self._lock = threading.Lock()

    def wait(self, group: str, user_id: int) -> int | None:
        """Count one request; None when allowed, else the whole seconds to wait."""
        try:
            if self.windows.hit(self.item, group, str(user_id)):
                return None
            reset = self.windows.get_window_stats(self.item, group, str(user_id)).reset_time
        except (StorageError, redis_lib.exceptions.RedisError) as exc:
            self._warn(type(getattr(exc, "storage_error", exc)).__name__)
            return None
        return max(1, math.ceil(reset - time.time()))

    def _warn(self, reason: str) -> None:
        with self._lock:
            if time.monotonic() - self._warned < _WARN_EVERY:
                return
            self._warned = time.monotonic()
        log.warning("rate limit not applied: Redis did not answer (%s); requests go through", reason)


def _limiter() -> _Limiter | None:
    extensions = current_app.extensions
    if "bridge_rate_limiter" not in extensions:
        rt = runtime()
        per_minute = rt.settings.rate_limit
        extensions["bridge_rate_limiter"] = _Limiter(rt.redis, per_minute) if per_minute else None
    return extensions["bridge_rate_limiter"]


def rate_limited(group: str = CREATE):
    """Decorate a view (or put it in a MethodView's `decorators`): its signed-in user's requests
    count against `group`'s window; over the limit, 429 `rate_limited` with `Retry-After`. The user
    is authenticated first, so a bad token is still a 401, whatever the decorators' order."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user_id = current_user_id()
            limiter = _limiter()
            wait = limiter.wait(group, user_id) if limiter else None
            if wait is not None:
                raise ApiError(f"Too many requests: at most {limiter.item.amount} a minute; try again in {wait} s.",
                               status=429, code="rate_limited", headers={"Retry-After": str(wait)})
            return view(*args, **kwargs)

        return wrapper

    return decorate
