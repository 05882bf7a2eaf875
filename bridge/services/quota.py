"""Each account's rolling 24-hour publishing quota.

Instagram reports its own (`content_publishing_limit`); elsewhere the bridge counts the posts it
published (or is publishing) for the account in the last 24 hours from MySQL, against the
platform's documented or configured cap. A post over quota waits for the next free slot.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.store.db import utcnow
from bridge.timefmt import fmt

WINDOW = timedelta(hours=24)

# Posts per rolling 24 h. TikTok's cap is unconfirmed (~15); Facebook reels 30 per page; YouTube:
# 10,000 quota units a day at 1,600 per upload is 6 uploads; X and LinkedIn are configurable.
DEFAULT_LIMITS = {"tiktok": 15, "instagram": 100, "facebook": 30, "youtube": 6, "twitter": 100, "linkedin": 150}


def limit_for(settings: Settings, platform: str) -> int:
    """Posts per rolling 24 h: `AURAREELS_QUOTA_<PLATFORM>` where set, else the platform's default."""
    return settings.quota_limits.get(platform, DEFAULT_LIMITS[platform])


@dataclass
class QuotaView:
    limit: int
    used: int
    next_slot_at: datetime | None
    source: str

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


def usage(rt: Runtime, account_id: int, platform: str, *, exclude_post: int | None = None) -> QuotaView:
    """Bridge-side count of the last 24 h for an account."""
    p = rt.tables.posts
    since = utcnow() - WINDOW
    published_at = func.coalesce(p.c.published_at, p.c.updated_at)
    query = select(published_at).where(
        p.c.social_account_id == account_id,
        p.c.status.in_(["published", "publishing"]),
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
    return QuotaView(limit=limit, used=len(times), next_slot_at=next_slot, source="bridge")


def quota_view(rt: Runtime, user_id: int, account_id: int) -> dict:
    from bridge.platforms.errors import PlatformError
    from bridge.platforms.registry import get_client
    from bridge.services.oauth import account_ref, owned_account

    row = owned_account(rt, user_id, account_id)
    view = usage(rt, account_id, row["platform"])
    try:
        reported = get_client(rt.settings, row["platform"]).quota(account_ref(rt, row))
    except PlatformError:
        reported = None
    if reported is not None and reported.limit is not None and reported.used is not None:
        view = QuotaView(limit=reported.limit, used=reported.used,
                         next_slot_at=view.next_slot_at if reported.used >= reported.limit else None, source="platform")
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
