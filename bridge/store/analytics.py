"""Queries of the analytics tables: a post's latest figures and history, the sync's due list and
its writes, and the user-wide reads (summary, best times).

The seed's `{prefix}aurareels_social_analytics` keeps one row per post, the latest figures; every
fetch adds a row to `{prefix}aurareels_social_analytics_history`. Each read here is one index
range (sql/*/0009): a post's history by (social_post_id, synced_at), a user's published posts in
a window by (wp_user_id, status, published_at, platform, social_account_id), the due list by
next_sync_at, posts never synced by (status, published_at).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError

from bridge.platforms.base import Metrics
from bridge.store.tables import Tables


# ----------------------------------------------------------------------------- one post
def owned_post(conn: Connection, t: Tables, user_id: int, post_id: int):
    p = t.posts
    return conn.execute(
        select(p.c.id, p.c.wp_user_id, p.c.platform, p.c.status, p.c.platform_post_id, p.c.published_at,
               p.c.social_account_id)
        .where(p.c.id == post_id, p.c.wp_user_id == user_id)
    ).mappings().first()


def latest(conn: Connection, t: Tables, post_id: int):
    return conn.execute(select(t.analytics).where(t.analytics.c.social_post_id == post_id)).mappings().first()


def history(conn: Connection, t: Tables, post_id: int, limit: int) -> list:
    """The post's last `limit` fetches, oldest first."""
    h = t.analytics_history
    rows = conn.execute(
        select(h.c.synced_at, h.c.views, h.c.likes, h.c.comments, h.c.shares, h.c.saves, h.c.reach)
        .where(h.c.social_post_id == post_id).order_by(h.c.synced_at.desc(), h.c.id.desc()).limit(limit)
    ).mappings().all()
    return list(reversed(rows))


def claim_fetch(conn: Connection, t: Tables, post_id: int, now: datetime, spacing: timedelta) -> float | None:
    """Record a fetch attempt at `now` unless another was made within `spacing`. Returns None when
    this caller may fetch, else the seconds until it may. Commit right after: the row (or its
    insert) is what a concurrent caller waits on and then sees."""
    an = t.analytics
    claimed = conn.execute(
        update(an).where(an.c.social_post_id == post_id,
                         or_(an.c.last_attempt_at.is_(None), an.c.last_attempt_at <= now - spacing))
        .values(last_attempt_at=now)
    ).rowcount
    if claimed:
        return None
    last = conn.execute(select(an.c.last_attempt_at).where(an.c.social_post_id == post_id)).first()
    if last is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(an).values(social_post_id=post_id, last_attempt_at=now, created_at=now,
                                               updated_at=now))
            return None
        except IntegrityError:  # a concurrent first fetch inserted it
            last = conn.execute(select(an.c.last_attempt_at).where(an.c.social_post_id == post_id)).first()
    attempted = last[0] if last is not None and last[0] is not None else now
    return max(1.0, (attempted + spacing - now).total_seconds())


def record_metrics(conn: Connection, t: Tables, post_id: int, metrics: Metrics, *, now: datetime,
                   next_sync_at: datetime | None, engagement_rate: Decimal | None) -> None:
    """The latest figures (one row per post) and one history row, in the caller's transaction."""
    values = {"views": metrics.views, "likes": metrics.likes, "comments": metrics.comments,
              "shares": metrics.shares, "saves": metrics.saves, "reach": metrics.reach,
              "engagement_rate": engagement_rate, "last_synced_at": now, "last_attempt_at": now,
              "next_sync_at": next_sync_at, "sync_error": None, "sync_message": None, "updated_at": now}
    _upsert(conn, t, post_id, values)
    conn.execute(insert(t.analytics_history).values(
        social_post_id=post_id, synced_at=now, views=metrics.views, likes=metrics.likes, comments=metrics.comments,
        shares=metrics.shares, saves=metrics.saves, reach=metrics.reach))


def record_failure(conn: Connection, t: Tables, post_id: int, *, now: datetime, next_sync_at: datetime | None,
                   code: str, message: str) -> None:
    """Why this fetch failed; `next_sync_at` None: the sync stops asking for this post."""
    _upsert(conn, t, post_id, {"last_attempt_at": now, "next_sync_at": next_sync_at, "sync_error": code[:64],
                               "sync_message": message[:255], "updated_at": now})


def _upsert(conn: Connection, t: Tables, post_id: int, values: dict[str, Any]) -> None:
    an = t.analytics
    row = {"social_post_id": post_id, "created_at": values.get("updated_at"), **values}
    if conn.dialect.name == "sqlite":
        statement = sqlite.insert(an).values(**row).on_conflict_do_update(index_elements=["social_post_id"],
                                                                         set_=values)
    else:
        statement = mysql.insert(an).values(**row).on_duplicate_key_update(**values)
    conn.execute(statement)


# ------------------------------------------------------------------------------- the sync
_DUE_COLUMNS = ("id", "wp_user_id", "platform", "platform_post_id", "published_at", "social_account_id")


def never_fetched(conn: Connection, t: Tables, since: datetime, *, limit: int) -> list:
    """Published posts of `since` or later that the bridge never fetched (no analytics row, or
    one the WordPress side wrote), newest first: one range of bridge_published."""
    p, an = t.posts, t.analytics
    return conn.execute(
        select(*(p.c[name] for name in _DUE_COLUMNS)).select_from(p.outerjoin(an, an.c.social_post_id == p.c.id))
        .where(p.c.status == "published", p.c.published_at >= since, p.c.platform_post_id.isnot(None),
               an.c.last_attempt_at.is_(None))
        .order_by(p.c.published_at.desc()).limit(limit)
    ).mappings().all()


def due_again(conn: Connection, t: Tables, now: datetime, *, limit: int) -> list:
    """Published posts whose next fetch time has come, the most overdue first: one range of
    bridge_next_sync."""
    p, an = t.posts, t.analytics
    return conn.execute(
        select(*(p.c[name] for name in _DUE_COLUMNS)).select_from(an.join(p, p.c.id == an.c.social_post_id))
        .where(an.c.next_sync_at <= now, p.c.status == "published", p.c.platform_post_id.isnot(None))
        .order_by(an.c.next_sync_at).limit(limit)
    ).mappings().all()


# --------------------------------------------------------------------------- user-wide reads
def _window(t: Tables, user_id: int, start: datetime, end: datetime | None, platform: str | None,
            account_id: int | None) -> list:
    p = t.posts
    conditions = [p.c.wp_user_id == user_id, p.c.status == "published", p.c.published_at >= start]
    if end is not None:
        conditions.append(p.c.published_at <= end)
    if platform:
        conditions.append(p.c.platform == platform)
    if account_id:
        conditions.append(p.c.social_account_id == account_id)
    return conditions


def _engagements(an):
    return an.c.likes + an.c.comments + an.c.shares + func.coalesce(an.c.saves, 0)


def summary_groups(conn: Connection, t: Tables, user_id: int, start: datetime, end: datetime, *,
                   platform: str | None = None, account_id: int | None = None) -> list:
    """Totals per (platform, account) of the user's posts published in [start, end], with the
    account's names (joined once per group, after grouping). The sums are made by MariaDB: a
    month of a busy creator is hundreds of rows, which cost more to carry to Python than to add."""
    p, an, a = t.posts, t.analytics, t.accounts
    groups = (
        select(p.c.platform, p.c.social_account_id, func.count().label("posts"),
               func.count(an.c.last_synced_at).label("synced_posts"),
               func.coalesce(func.sum(an.c.views), 0).label("views"),
               func.coalesce(func.sum(an.c.likes), 0).label("likes"),
               func.coalesce(func.sum(an.c.comments), 0).label("comments"),
               func.coalesce(func.sum(an.c.shares), 0).label("shares"),
               func.sum(an.c.saves).label("saves"), func.sum(an.c.reach).label("reach"))
        .select_from(p.outerjoin(an, an.c.social_post_id == p.c.id))
        .where(*_window(t, user_id, start, end, platform, account_id))
        .group_by(p.c.platform, p.c.social_account_id)
    ).subquery("g")
    return conn.execute(
        select(groups, a.c.account_name, a.c.account_username)
        .select_from(groups.outerjoin(a, a.c.id == groups.c.social_account_id))
    ).mappings().all()


def top_posts(conn: Connection, t: Tables, user_id: int, start: datetime, end: datetime, *, limit: int,
              platform: str | None = None, account_id: int | None = None) -> list:
    """The `limit` posts of the window with the most engagements (likes, comments, shares, saves),
    with their figures and what the dashboard shows of them, best first. The ranking reads the
    index and the figures; only the `limit` winners are read whole."""
    p, an, a = t.posts, t.analytics, t.accounts
    engagements = _engagements(an)
    ranked = (
        select(p.c.id.label("post_id"), engagements.label("engaged"), an.c.views.label("seen"))
        .select_from(p.join(an, an.c.social_post_id == p.c.id))
        .where(*_window(t, user_id, start, end, platform, account_id), an.c.last_synced_at.isnot(None))
        .order_by(engagements.desc(), an.c.views.desc(), p.c.id.desc()).limit(limit)
    ).subquery("r")
    rows = conn.execute(
        select(p.c.id, p.c.platform, p.c.social_account_id, p.c.caption, p.c.platform_post_url, p.c.published_at,
               a.c.account_name, an.c.views, an.c.likes, an.c.comments, an.c.shares, an.c.saves, an.c.reach,
               an.c.engagement_rate, an.c.last_synced_at, ranked.c.engaged, ranked.c.seen)
        .select_from(ranked.join(p, p.c.id == ranked.c.post_id).join(an, an.c.social_post_id == p.c.id)
                     .join(a, a.c.id == p.c.social_account_id))
    ).mappings().all()
    return sorted(rows, key=lambda r: (-int(r["engaged"]), -int(r["seen"] or 0), -int(r["id"])))


def owned_account(conn: Connection, t: Tables, user_id: int, account_id: int):
    a = t.accounts
    return conn.execute(select(a.c.id, a.c.platform).where(a.c.id == account_id, a.c.wp_user_id == user_id)
                        ).mappings().first()


def published_figures(conn: Connection, t: Tables, user_id: int, since: datetime, *, platform: str | None = None,
                      account_id: int | None = None, limit: int) -> list:
    """(published_at, platform, engaged, seen) of the user's synced posts published since `since`
    (the newest `limit`): engagements, and views (reach where a platform gives no views). What best
    times are learned from; the sums are made here so only four columns travel."""
    p, an = t.posts, t.analytics
    seen = func.coalesce(func.nullif(an.c.views, 0), an.c.reach, 0)
    return conn.execute(
        select(p.c.published_at, p.c.platform, _engagements(an).label("engaged"), seen.label("seen"))
        .select_from(p.join(an, an.c.social_post_id == p.c.id))
        .where(*_window(t, user_id, since, None, platform, account_id), an.c.last_synced_at.isnot(None))
        .order_by(p.c.published_at.desc()).limit(limit)
    ).all()
