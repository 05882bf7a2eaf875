"""Metrics of published posts: fetched from each platform on a cadence by post age (hourly on
day 1, every 6 h to day 7, daily to day 30, weekly to day 90, then never) or on the user's request
(at most once a minute a post), kept as the latest figures in `{prefix}aurareels_social_analytics`
(one row per post, the seed's) and one history row per fetch.

A platform that cannot give a post's metrics (an app without the permission, a post that is not
public, a post deleted on the platform) answers `Rejected`: that is recorded once on the post's
analytics and the periodic sync stops asking; a user's refresh asks again. Anything else that
fails (rate limits, outages, an expired login that cannot be refreshed) is tried again later.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bridge.errors import ApiError, Conflict, NotFound
from bridge.platforms.errors import PlatformError, RateLimited, Reauthorize, Rejected, TokenExpired
from bridge.platforms.registry import get_client
from bridge.runtime import Runtime
from bridge.store import analytics as store
from bridge.store.db import utcnow
from bridge.timefmt import fmt

log = logging.getLogger(__name__)

CADENCE = ((timedelta(days=1), timedelta(hours=1)), (timedelta(days=7), timedelta(hours=6)),
           (timedelta(days=30), timedelta(days=1)), (timedelta(days=90), timedelta(days=7)))
MAX_AGE = timedelta(days=90)
# A user's refresh, and any fetch, of one post at most this often (platform read quotas).
REFRESH_SPACING = timedelta(minutes=1)
# A failed fetch is tried again at its cadence, but never later than this.
RETRY_CAP = timedelta(hours=6)
HISTORY_POINTS = 500
SYNC_BATCH = 200
# sync_due runs in a worker's maintenance thread, which also writes the worker's heartbeat: it
# stops taking new posts after this long and leaves the rest to the next round.
SYNC_BUDGET_SECONDS = 20.0


def interval_for(age: timedelta) -> timedelta | None:
    """How often a post of this age is synced; None once it is older than 90 days."""
    for limit, every in CADENCE:
        if age <= limit:
            return every
    return None


def next_sync_at(published_at: datetime | None, now: datetime) -> datetime | None:
    """When a post fetched at `now` is due again; None when its cadence has ended."""
    if published_at is None:
        return None
    every = interval_for(now - published_at)
    if every is None:
        return None
    return min(now + every, max(published_at + MAX_AGE, now + timedelta(hours=1)))


def engagements(likes: int, comments: int, shares: int, saves: int | None = None) -> int:
    return int(likes) + int(comments) + int(shares) + int(saves or 0)


def engagement_rate(views: int, likes: int, comments: int, shares: int, saves: int | None = None) -> Decimal | None:
    """(likes + comments + shares + saves) / views, in percent, two decimals (the column is
    DECIMAL(5,2)); None without views."""
    if not views:
        return None
    rate = Decimal(engagements(likes, comments, shares, saves)) * 100 / Decimal(views)
    return min(rate, Decimal("999.99")).quantize(Decimal("0.01"))


# ------------------------------------------------------------------------------- fetching
@dataclass
class Fetched:
    """How one fetch went. `kind`: ok | too_soon | unavailable | rate_limited | reconnect | retry."""

    kind: str
    code: str | None = None
    message: str | None = None
    wait: float | None = None  # seconds (too_soon, rate_limited)


def fetch(rt: Runtime, post, now: datetime) -> Fetched:
    """Fetch one published post's metrics now and record the outcome (figures and a history row,
    or why not). `post` carries id, platform, platform_post_id, published_at, social_account_id."""
    t = rt.tables
    wait = _claim(rt, post["id"], now)
    if wait is not None:
        return Fetched("too_soon", wait=wait)
    client = get_client(rt.settings, post["platform"])
    account = _account(rt, post["social_account_id"])
    if account is None or account["needs_reconnect"]:
        outcome = Fetched("reconnect", "account_needs_reconnect",
                          f"The {client.display_name} account of this post must be connected again before its "
                          f"metrics can be read.")
    else:
        outcome = _read(rt, client, account, post, now)
    if outcome.kind != "ok":
        log.info("metrics not synced: %s", outcome.code, extra={"post_id": post["id"]})
        with rt.engine.begin() as conn:
            store.record_failure(conn, t, post["id"], now=now, next_sync_at=_retry_at(post, now, outcome),
                                 code=outcome.code or "metrics_failed", message=outcome.message or "")
    return outcome


def _claim(rt: Runtime, post_id: int, now: datetime) -> float | None:
    for attempt in range(3):
        try:
            with rt.engine.begin() as conn:
                return store.claim_fetch(conn, rt.tables, post_id, now, REFRESH_SPACING)
        except OperationalError as exc:
            # Several first fetches of one post at once gap-lock the missing row and InnoDB picks a
            # deadlock victim (1213): again, the row exists now and says who claimed it.
            code = exc.orig.args[0] if getattr(exc, "orig", None) is not None and exc.orig.args else None
            if code not in (1213, 1205) or attempt == 2:
                raise
    raise RuntimeError("unreachable")


def _read(rt: Runtime, client, account, post, now: datetime) -> Fetched:
    try:
        metrics = _metrics_with_refresh(rt, client, account, post["platform_post_id"])
    except NotImplementedError:
        return Fetched("unavailable", "metrics_unavailable", f"{client.display_name} gives no metrics to this app.")
    except Rejected as exc:
        return Fetched("unavailable", exc.code, exc.message)
    except Reauthorize as exc:
        return Fetched("reconnect", "account_needs_reconnect", exc.message)
    except RateLimited as exc:
        return Fetched("rate_limited", exc.code, exc.message, wait=exc.retry_after)
    except PlatformError as exc:
        return Fetched("retry", exc.code, exc.message)
    with rt.engine.begin() as conn:
        store.record_metrics(conn, rt.tables, post["id"], metrics, now=now,
                             next_sync_at=next_sync_at(post["published_at"], now),
                             engagement_rate=engagement_rate(metrics.views, metrics.likes, metrics.comments,
                                                             metrics.shares, metrics.saves))
    return Fetched("ok")


def _metrics_with_refresh(rt: Runtime, client, account, platform_post_id: str):
    from bridge.services.oauth import account_ref, refresh_account

    try:
        return client.fetch_metrics(account_ref(rt, account), platform_post_id)
    except TokenExpired:
        # Refreshed once under the account's row lock, as a publish does, then asked again.
        fresh = refresh_account(rt, int(account["id"]), force=True)
        return client.fetch_metrics(account_ref(rt, fresh), platform_post_id)


def _retry_at(post, now: datetime, outcome: Fetched) -> datetime | None:
    if outcome.kind == "unavailable":
        return None
    every = interval_for(now - post["published_at"]) if post["published_at"] else None
    if every is None:
        return None
    later = now + min(every, RETRY_CAP)
    if outcome.wait:
        later = max(later, now + timedelta(seconds=outcome.wait))
    return later


def _account(rt: Runtime, account_id: int):
    a = rt.tables.accounts
    with rt.engine.connect() as conn:
        return conn.execute(select(a).where(a.c.id == account_id, a.c.is_active == 1)).mappings().first()


# ---------------------------------------------------------------------------- the sync
# Where the search for posts never fetched may start (Redis): the time of the last search that
# saw them all. Without it (first run, Redis wiped) the search covers the whole 90 days.
NEW_SINCE_KEY = "bridge:analytics:new-since"
# A post's published_at may be a little older than the moment it became visible as published.
NEW_MARGIN = timedelta(hours=1)


def _new_since(rt: Runtime, now: datetime) -> datetime:
    oldest = now - MAX_AGE
    try:
        raw = rt.redis.get(NEW_SINCE_KEY)
    except RedisError:  # Redis away: the search covers the whole window instead
        return oldest
    try:
        since = datetime.strptime(raw.decode(), "%Y-%m-%d %H:%M:%S") - NEW_MARGIN if raw else oldest
    except ValueError:
        return oldest
    return oldest if since > now else max(since, oldest)


def _saw_all_new(rt: Runtime, now: datetime, fresh: list) -> None:
    """The next search may start at the oldest post found now (this round may stop before it is
    fetched), or now when none was found; never later than the real clock, so a sync asked about
    a simulated future (tests) does not make the next real one skip what is published meanwhile."""
    since = min([now, utcnow(), *(p["published_at"] for p in fresh)])
    try:
        rt.redis.set(NEW_SINCE_KEY, fmt(since), ex=int(MAX_AGE.total_seconds()))
    except RedisError:
        pass


def due_posts(rt: Runtime, now: datetime | None = None, limit: int = SYNC_BATCH) -> list:
    """Published posts whose metrics are due at `now` (at most `limit`): those never fetched
    first (newest first), then those whose next fetch time has come."""
    now = now or utcnow()
    with rt.engine.connect() as conn:
        fresh = store.never_fetched(conn, rt.tables, _new_since(rt, now), limit=limit)
        if len(fresh) < limit:
            _saw_all_new(rt, now, fresh)
            return [*fresh, *store.due_again(conn, rt.tables, now, limit=limit - len(fresh))]
    return list(fresh)


def sync_due(rt: Runtime, now: datetime | None = None) -> int:
    """Fetch the metrics of the posts due at `now` (default: the current time); returns how many
    were synced. Bounded in time (SYNC_BUDGET_SECONDS): what is left waits for the next round."""
    now = now or utcnow()
    deadline = time.monotonic() + SYNC_BUDGET_SECONDS
    synced = 0
    for post in due_posts(rt, now):
        if time.monotonic() > deadline:
            break
        try:
            synced += fetch(rt, post, now).kind == "ok"
        except Exception as exc:  # one post's surprise must not starve the posts after it
            log.warning("metrics sync failed: %s", type(exc).__name__, extra={"post_id": post["id"]})
            with rt.engine.begin() as conn:
                store.record_failure(conn, rt.tables, post["id"], now=now,
                                     next_sync_at=_retry_at(post, now, Fetched("retry")), code="metrics_failed",
                                     message="The metrics could not be read; they will be tried again.")
    return synced


# ------------------------------------------------------------------------------- the routes
def _number(value) -> int | None:
    return None if value is None else int(value)


def figures_view(row) -> dict:
    return {
        "views": int(row["views"] or 0), "likes": int(row["likes"] or 0), "comments": int(row["comments"] or 0),
        "shares": int(row["shares"] or 0), "saves": _number(row["saves"]), "reach": _number(row["reach"]),
        "engagement_rate": float(row["engagement_rate"]) if row["engagement_rate"] is not None else None,
        "synced_at": fmt(row["last_synced_at"]),
    }


def _sync_view(post, row) -> dict:
    if post["status"] != "published":
        status = "not_published"
    elif row is not None and row["sync_error"]:
        status = "retrying" if row["next_sync_at"] is not None else "unavailable"
    elif row is not None and row["last_synced_at"] is not None:
        status = "synced"
    else:
        status = "pending"
    failed = status in ("retrying", "unavailable")
    return {"status": status, "code": row["sync_error"] if failed else None,
            "message": row["sync_message"] if failed else None,
            "last_attempt_at": fmt(row["last_attempt_at"]) if row is not None else None,
            "next_sync_at": fmt(row["next_sync_at"]) if row is not None else None}


def post_analytics(rt: Runtime, user_id: int, post_id: int) -> dict:
    """The post's latest figures (None before its first sync), its history (the last
    HISTORY_POINTS fetches, oldest first) and the state of its sync."""
    t = rt.tables
    with rt.engine.connect() as conn:
        post = store.owned_post(conn, t, user_id, post_id)
        if post is None:
            raise NotFound("This post was not found.", code="post_not_found")
        row = store.latest(conn, t, post_id)
        points = store.history(conn, t, post_id, HISTORY_POINTS) if row is not None else []
    analytics = figures_view(row) if row is not None and row["last_synced_at"] is not None else None
    history = [{"synced_at": fmt(p["synced_at"]), "views": int(p["views"]), "likes": int(p["likes"]),
                "comments": int(p["comments"]), "shares": int(p["shares"]), "saves": _number(p["saves"]),
                "reach": _number(p["reach"])} for p in points]
    return {"success": True, "analytics": analytics, "history": history, "sync": _sync_view(post, row)}


def refresh(rt: Runtime, user_id: int, post_id: int) -> dict:
    """Fetch the post's metrics now (at most once a minute a post) and answer as `post_analytics`.
    A platform that cannot give them answers 200 with `sync.status` "unavailable"."""
    with rt.engine.connect() as conn:
        post = store.owned_post(conn, rt.tables, user_id, post_id)
    if post is None:
        raise NotFound("This post was not found.", code="post_not_found")
    if post["status"] != "published" or not post["platform_post_id"]:
        raise Conflict(f"Only published posts have metrics; this post is {post['status']}.",
                       code="post_not_published")
    outcome = fetch(rt, post, utcnow())
    if outcome.kind == "too_soon":
        seconds = math.ceil(outcome.wait or 60)
        raise ApiError(f"The metrics of this post were fetched less than a minute ago; try again in {seconds} s.",
                       status=429, code="refresh_too_soon", headers={"Retry-After": str(seconds)})
    if outcome.kind == "rate_limited":
        seconds = max(1, math.ceil(outcome.wait or 60))
        raise ApiError(outcome.message or "The platform is limiting requests; try again later.", status=429,
                       code="platform_rate_limited", headers={"Retry-After": str(seconds)})
    if outcome.kind == "reconnect":
        raise Conflict(outcome.message or "Connect the account again.", code="account_needs_reconnect")
    if outcome.kind == "retry":
        raise ApiError(outcome.message or "The platform did not answer; try again shortly.", status=503,
                       code="platform_unavailable", headers={"Retry-After": "60"})
    return post_analytics(rt, user_id, post_id)
