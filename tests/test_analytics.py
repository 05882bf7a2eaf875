"""Analytics: cadence by age, engagement rate, and a sync from a real emulator."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from bridge.services.analytics import engagement_rate, interval_for, sync_due
from bridge.store.db import utcnow
from tests.test_engine import api, connect, final, publish, sandbox  # noqa: F401


def test_cadence_by_age():
    assert interval_for(timedelta(hours=3)) == timedelta(hours=1)
    assert interval_for(timedelta(days=3)) == timedelta(hours=6)
    assert interval_for(timedelta(days=20)) == timedelta(days=1)
    assert interval_for(timedelta(days=60)) == timedelta(days=7)
    assert interval_for(timedelta(days=91)) is None


def test_engagement_rate():
    assert engagement_rate(1000, 50, 20, 30) == Decimal("10.00")
    assert engagement_rate(0, 5, 0, 0) is None
    assert engagement_rate(1, 5000, 0, 0) == Decimal("999.99")


def test_published_post_metrics_are_synced_then_wait_for_their_interval(engine_rt, api, sandbox):  # noqa: F811
    account = connect(engine_rt, "tiktok")
    post_id = publish(api, engine_rt, account, caption="metrics")
    row = final(engine_rt, post_id)
    assert row["status"] == "published"
    sandbox.emulator("tiktok").set_metrics(row["platform_post_id"], view_count=2000, like_count=150,
                                           comment_count=30, share_count=20)
    assert sync_due(engine_rt) == 1
    an = engine_rt.tables.analytics
    with engine_rt.engine.connect() as conn:
        stored = conn.execute(select(an).where(an.c.social_post_id == post_id)).mappings().one()
    assert (stored["views"], stored["likes"], stored["comments"], stored["shares"]) == (2000, 150, 30, 20)
    assert stored["engagement_rate"] == Decimal("10.00")
    assert sync_due(engine_rt) == 0  # synced a moment ago: not due for an hour
    assert sync_due(engine_rt, now=utcnow() + timedelta(hours=1, minutes=1)) == 1
