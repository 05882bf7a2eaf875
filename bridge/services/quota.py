"""Each account's rolling 24-hour publishing quota, and the app-wide limits some platforms add.

Instagram reports its own (`content_publishing_limit`); elsewhere the bridge counts the posts it
published (or is publishing) for the account in the last 24 hours from MySQL, against the
platform's declared `daily_limit` (`AURAREELS_QUOTA_<PLATFORM>` overrides it). A platform may also
declare a `project_limit`, counted over every account of the platform since midnight in the
platform's zone (YouTube's daily upload bucket of the whole app). A post over either waits for the
next free slot.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bridge.config import Settings
from bridge.platforms.base import ProjectLimit
from bridge.platforms.registry import client_class
from bridge.runtime import Runtime
from bridge.store.db import utcnow
from bridge.timefmt import fmt

WINDOW = timedelta(hours=24)
ACTIVE = ["published", "publishing"]


def limit_for(settings: Settings, platform: str) -> int:
    """Posts per account per rolling 24 h: `AURAREELS_QUOTA_<PLATFORM>` where set, else the client's
    `daily_limit`."""
    return settings.quota_limits.get(platform, client_class(platform).daily_limit)


def project_limit_for(platform: str) -> ProjectLimit | None:
    declared = client_class(platform).project_limit
    if declared is None:
        return None
    raw = os.environ.get(declared.env)
    return ProjectLimit(int(raw), declared.zone, declared.env) if raw and raw.isdigit() else declared


def day_start(zone: str, now: datetime | None = None) -> datetime:
    """The last midnight in `zone`, as naive UTC."""
    local = (now or utcnow()).replace(tzinfo=timezone.utc).astimezone(ZoneInfo(zone))
    midnight = datetime.combine(local.date(), time.min, tzinfo=ZoneInfo(zone))
    return midnight.astimezone(timezone.utc).replace(tzinfo=None)


def next_day_start(zone: str, now: datetime | None = None) -> datetime:
    local = (now or utcnow()).replace(tzinfo=timezone.utc).astimezone(ZoneInfo(zone))
    midnight = datetime.combine(local.date() + timedelta(days=1), time.min, tzinfo=ZoneInfo(zone))
    return midnight.astimezone(timezone.utc).replace(tzinfo=None)


@dataclass
class QuotaView:
    limit: int
    used: int
    next_slot_at: datetime | None
    source: str
    # when the oldest post counted leaves the window (the count goes down), None when none counts
    resets_at: datetime | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


def usage(rt: Runtime, account_id: int, platform: str, *, exclude_post: int | None = None) -> QuotaView:
    """Bridge-side count of the last 24 h for an account; where the platform also limits the
    whole app (`project_limit`), the tighter of the two."""
    p = rt.tables.posts
    since = utcnow() - WINDOW
    published_at = func.coalesce(p.c.published_at, p.c.updated_at)
    query = select(published_at).where(
        p.c.social_account_id == account_id,
        p.c.status.in_(ACTIVE),
        published_at >= since,
    ).order_by(published_at)
    if exclude_post is not None:
        query = query.where(p.c.id != exclude_post)
    with rt.engine.connect() as conn:
        times = [t for t in conn.execute(query).scalars().all() if t is not None]
    limit = limit_for(rt.settings, platform)
    next_slot = None
    if len(times) >= limit:
        # the oldest post inside the window leaves it first
        next_slot = times[len(times) - limit] + WINDOW
    view = QuotaView(limit=limit, used=len(times), next_slot_at=next_slot, source="bridge",
                     resets_at=times[0] + WINDOW if times else None)
    project = project_usage(rt, platform, exclude_post=exclude_post)
    if project is not None and project.remaining < view.remaining:
        return project
    return view


def project_usage(rt: Runtime, platform: str, *, exclude_post: int | None = None) -> QuotaView | None:
    """The app-wide count since midnight in the platform's zone, over every account of the
    platform (an indexed count, bounded by the day), or None when the platform has no such limit."""
    declared = project_limit_for(platform)
    if declared is None:
        return None
    p = rt.tables.posts
    published_at = func.coalesce(p.c.published_at, p.c.updated_at)
    query = select(func.count()).select_from(p).where(
        p.c.platform == platform, p.c.status.in_(ACTIVE), published_at >= day_start(declared.zone))
    if exclude_post is not None:
        query = query.where(p.c.id != exclude_post)
    with rt.engine.connect() as conn:
        used = int(conn.execute(query).scalar() or 0)
    next_slot = next_day_start(declared.zone) if used >= declared.limit else None
    return QuotaView(limit=declared.limit, used=used, next_slot_at=next_slot, source="project",
                     resets_at=next_day_start(declared.zone) if used else None)


def usage_when(rt: Runtime, account_id: int, platform: str, when: datetime) -> QuotaView:
    """The account's count as a post due at `when` (naive UTC, in the future) will find it: what
    went out in the 24 h before it, and what is scheduled before it within them. A post over the
    count is not refused: it waits for `next_slot_at`."""
    p = rt.tables.posts
    since = when - WINDOW
    gone = func.coalesce(p.c.published_at, p.c.updated_at)
    with rt.engine.connect() as conn:
        times = [t for t in conn.execute(select(gone).where(
            p.c.social_account_id == account_id, p.c.status.in_(ACTIVE), gone >= since)).scalars() if t is not None]
        times += [t for t in conn.execute(select(p.c.scheduled_at).where(
            p.c.social_account_id == account_id, p.c.status == "scheduled", p.c.scheduled_at >= since,
            p.c.scheduled_at <= when)).scalars() if t is not None]
    times.sort()
    limit = limit_for(rt.settings, platform)
    next_slot = times[len(times) - limit] + WINDOW if len(times) >= limit else None
    return QuotaView(limit=limit, used=len(times), next_slot_at=next_slot, source="bridge",
                     resets_at=times[0] + WINDOW if times else None)


def summary(view: QuotaView) -> dict:
    """`{limit, used, remaining, resets_at}` as the composer shows it."""
    return {"limit": view.limit, "used": view.used, "remaining": view.remaining, "resets_at": fmt(view.resets_at)}


def account_usage(rt: Runtime, row) -> QuotaView:
    """The account's quota now: the platform's own report where it has one (Instagram), else the
    bridge's count."""
    from bridge.platforms.errors import PlatformError
    from bridge.platforms.registry import get_client
    from bridge.services.oauth import account_ref

    view = usage(rt, int(row["id"]), row["platform"])
    try:
        reported = get_client(rt.settings, row["platform"]).quota(account_ref(rt, row))
    except PlatformError:
        reported = None
    if reported is not None and reported.limit is not None and reported.used is not None:
        view = QuotaView(limit=reported.limit, used=reported.used,
                         next_slot_at=view.next_slot_at if reported.used >= reported.limit else None, source="platform",
                         resets_at=view.resets_at)
    return view


def quota_view(rt: Runtime, user_id: int, account_id: int) -> dict:
    from bridge.services.oauth import owned_account

    row = owned_account(rt, user_id, account_id)
    view = account_usage(rt, row)
    return {
        "success": True,
        "account_id": int(row["id"]),
        "platform": row["platform"],
        "limit": view.limit,
        "used": view.used,
        "remaining": view.remaining,
        "window_hours": 24,
        "next_slot_at": fmt(view.next_slot_at),
        "source": view.source,
    }
