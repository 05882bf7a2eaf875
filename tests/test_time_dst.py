"""Scheduled times across daylight-saving changes of AURAREELS_TIMEZONE (America/New_York, 2026).

Naive request times are wall-clock time in the site's zone: an ambiguous one (fall back) is its
first occurrence, a non-existent one (spring forward) lands past the gap, as WordPress reads them.
ISO times with an offset or `Z` are instants. What is stored, answered and armed in the queue is
the same UTC instant.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from bridge.app import create_app
from bridge.runtime import Runtime
from bridge.timefmt import parse_request_time
from tests.conftest import auth
from tests.factories import add_account, add_video

P = "/wp-json/aurareels/v1/social"
NY = ZoneInfo("America/New_York")
USER = 811

# (request value, the UTC instant it means)
CASES = [
    # spring forward: 2026-03-08 02:00 EST -> 03:00 EDT
    ("2026-03-08 01:59:59", "2026-03-08 06:59:59"),
    ("2026-03-08 02:00:00", "2026-03-08 07:00:00"),  # does not exist: 03:00 EDT
    ("2026-03-08 02:30:00", "2026-03-08 07:30:00"),  # does not exist: 03:30 EDT
    ("2026-03-08 02:59:59", "2026-03-08 07:59:59"),
    ("2026-03-08 03:00:00", "2026-03-08 07:00:00"),
    ("2026-03-08 03:30:00", "2026-03-08 07:30:00"),
    ("2026-03-08T02:30:00-05:00", "2026-03-08 07:30:00"),
    ("2026-03-08T06:30:00Z", "2026-03-08 06:30:00"),
    # fall back: 2026-11-01 02:00 EDT -> 01:00 EST; 01:00-01:59 happens twice
    ("2026-11-01 00:59:59", "2026-11-01 04:59:59"),
    ("2026-11-01 01:00:00", "2026-11-01 05:00:00"),  # first occurrence (EDT)
    ("2026-11-01 01:30:00", "2026-11-01 05:30:00"),
    ("2026-11-01 01:59:59", "2026-11-01 05:59:59"),
    ("2026-11-01 02:00:00", "2026-11-01 07:00:00"),
    ("2026-11-01T01:30:00-04:00", "2026-11-01 05:30:00"),  # the first 01:30, named by its offset
    ("2026-11-01T01:30:00-05:00", "2026-11-01 06:30:00"),  # the second 01:30
    ("2026-11-01T06:30:00.000Z", "2026-11-01 06:30:00"),  # what a browser's toISOString() sends
]


@pytest.mark.parametrize("raw,utc", CASES)
def test_parse_request_time_across_dst(raw, utc):
    assert parse_request_time(raw, NY) == datetime.strptime(utc, "%Y-%m-%d %H:%M:%S")


def test_a_time_in_the_spring_gap_goes_out_after_the_gap_not_before_it():
    """Regression: a non-existent time was moved back by the gap (02:00 -> 06:00Z, 01:00 EST), so a
    post scheduled at 02:00 went out an hour before one scheduled at 01:59."""
    before_gap = parse_request_time("2026-03-08 01:59:59", NY)
    for minute in range(0, 60, 7):
        assert parse_request_time(f"2026-03-08 02:{minute:02d}:00", NY) > before_gap
    for raw in ("2026-03-08 02:00:00", "2026-03-08 02:30:00", "2026-03-08 02:59:59"):
        local = parse_request_time(raw, NY).replace(tzinfo=timezone.utc).astimezone(NY)
        assert local.hour == 3 and local.utcoffset().total_seconds() == -4 * 3600


@pytest.fixture
def ny_client(rt):
    zoned = Runtime.from_settings(rt.settings.with_overrides(timezone="America/New_York"), engine=rt.engine)
    return create_app(runtime=zoned).test_client()


def test_schedule_and_reschedule_store_and_arm_the_utc_instant(ny_client, rt, redis_client, monkeypatch):
    import bridge.services.posts as post_service

    # the 2026 changes are in the past or future depending on when this runs: pin "now" before them
    monkeypatch.setattr(post_service, "utcnow", lambda: datetime(2026, 1, 1))
    account = add_account(rt, USER, "tiktok")
    video = add_video(rt, USER)
    from rq.job import Job

    from bridge.timefmt import iso_z

    registry = ScheduledJobRegistry("publish", connection=redis_client)
    p = rt.tables.posts
    for raw, utc in CASES:
        answer = ny_client.post(f"{P}/schedule", headers=auth(USER), json={
            "video_job_id": video, "accounts": [account], "caption": raw, "privacy_level": "PUBLIC",
            "scheduled_at": raw})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        post = answer.get_json()["posts"][0]
        assert post["scheduled_at"] == utc, raw
        with rt.engine.connect() as conn:
            stored = conn.execute(select(p.c.scheduled_at).where(p.c.id == post["id"])).scalar()
        assert stored == datetime.strptime(utc, "%Y-%m-%d %H:%M:%S"), raw
        armed = registry.get_scheduled_time(f"wake-{post['id']}")
        # the wake-up runs AURAREELS_PREARM_SECONDS early and carries the instant it is for
        assert armed.replace(tzinfo=None) == stored - timedelta(seconds=rt.settings.prearm_seconds), raw
        assert Job.fetch(f"wake-{post['id']}", connection=redis_client).args[1] == iso_z(stored), raw
        # moving it to the same wall time again gives the same instant
        moved = ny_client.patch(f"{P}/posts/{post['id']}/reschedule", headers=auth(USER), json={"scheduled_at": raw})
        assert moved.status_code == 200 and moved.get_json()["post"]["scheduled_at"] == utc, raw


def test_calendar_window_in_naive_site_time_across_fall_back(ny_client, rt, monkeypatch):
    import bridge.services.posts as post_service

    monkeypatch.setattr(post_service, "utcnow", lambda: datetime(2026, 1, 1))
    account = add_account(rt, USER, "tiktok")
    video = add_video(rt, USER)
    for raw in ("2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-01 02:30:00"):
        assert ny_client.post(f"{P}/schedule", headers=auth(USER), json={
            "video_job_id": video, "accounts": [account], "caption": raw, "privacy_level": "PUBLIC",
            "scheduled_at": raw}).status_code == 200
    # 01:00-01:59 local (first occurrence) to 02:00 local: 05:00Z to 07:00Z, all three
    window = ny_client.get(f"{P}/posts?from=2026-11-01 01:00:00&to=2026-11-01 02:30:00",
                           headers=auth(USER)).get_json()
    assert window["total"] == 3
    first_hour = ny_client.get(f"{P}/posts?from=2026-11-01T05:00:00Z&to=2026-11-01T05:59:59Z",
                               headers=auth(USER)).get_json()
    assert [p["caption"] for p in first_hour["posts"]] == ["2026-11-01T01:30:00-04:00"]
