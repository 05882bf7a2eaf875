"""Metrics of published posts, synced into `{prefix}aurareels_social_analytics` on a cadence by
age: hourly on day 1, every 6 h to day 7, daily to day 30, weekly to day 90, then never."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, select, update

from bridge.platforms.errors import PlatformError
from bridge.platforms.registry import get_client
from bridge.runtime import Runtime
from bridge.store.db import utcnow

log = logging.getLogger(__name__)

CADENCE = ((timedelta(days=1), timedelta(hours=1)), (timedelta(days=7), timedelta(hours=6)),
           (timedelta(days=30), timedelta(days=1)), (timedelta(days=90), timedelta(days=7)))


def interval_for(age: timedelta) -> timedelta | None:
    """How often a post of this age is synced; None once it is older than 90 days."""
    for limit, every in CADENCE:
        if age <= limit:
            return every
    return None


def engagement_rate(views: int, likes: int, comments: int, shares: int) -> Decimal | None:
    """(likes + comments + shares) / views, in percent, two decimals (the column is DECIMAL(5,2))."""
    if not views:
        return None
    rate = Decimal(likes + comments + shares) * 100 / Decimal(views)
    return min(rate, Decimal("999.99")).quantize(Decimal("0.01"))


def due_posts(rt: Runtime, now: datetime | None = None, limit: int = 200) -> list:
    now = now or utcnow()
    p, an = rt.tables.posts, rt.tables.analytics
    rows = []
    with rt.engine.connect() as conn:
        candidates = conn.execute(
            select(p.c.id, p.c.platform, p.c.platform_post_id, p.c.published_at, p.c.social_account_id,
                   an.c.last_synced_at)
            .select_from(p.outerjoin(an, an.c.social_post_id == p.c.id))
            .where(p.c.status == "published", p.c.platform_post_id.isnot(None),
                   p.c.published_at >= now - timedelta(days=90))
            .order_by(an.c.last_synced_at.is_(None).desc(), an.c.last_synced_at)
            .limit(limit * 5)
        ).mappings().all()
    for row in candidates:
        every = interval_for(now - row["published_at"])
        if every is None:
            continue
        if row["last_synced_at"] is None or now - row["last_synced_at"] >= every:
            rows.append(row)
        if len(rows) >= limit:
            break
    return rows


def sync_due(rt: Runtime, now: datetime | None = None) -> int:
    from bridge.services.oauth import account_ref

    a, an = rt.tables.accounts, rt.tables.analytics
    synced = 0
    for row in due_posts(rt, now):
        with rt.engine.connect() as conn:
            account = conn.execute(select(a).where(a.c.id == row["social_account_id"],
                                                   a.c.is_active == 1)).mappings().first()
        if account is None or account["needs_reconnect"]:
            continue
        try:
            metrics = get_client(rt.settings, row["platform"]).fetch_metrics(account_ref(rt, account),
                                                                             row["platform_post_id"])
        except (PlatformError, NotImplementedError) as exc:
            log.info("metrics not synced: %s", getattr(exc, "code", type(exc).__name__), extra={"post_id": row["id"]})
            continue
        values = {"views": metrics.views, "likes": metrics.likes, "comments": metrics.comments,
                  "shares": metrics.shares, "last_synced_at": utcnow(), "updated_at": utcnow(),
                  "engagement_rate": engagement_rate(metrics.views, metrics.likes, metrics.comments, metrics.shares)}
        with rt.engine.begin() as conn:
            changed = conn.execute(update(an).where(an.c.social_post_id == row["id"]).values(**values)).rowcount
            if not changed:
                conn.execute(insert(an).values(social_post_id=row["id"], created_at=utcnow(), **values))
        synced += 1
    return synced
