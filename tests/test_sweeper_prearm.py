"""The sweeper and pre-armed posts: a scheduled post under a live advisory lease is held by a
worker for its time and left alone; once the lease ran out (its worker died) it is sent."""
from __future__ import annotations

from datetime import timedelta

from rq import Queue
from bridge.services import scheduler, sweeper
from bridge.store.db import utcnow
from tests.factories import add_account, add_post

USER = 971


def test_a_due_post_under_a_live_lease_is_left_to_its_worker(rt):
    account = add_account(rt, USER, "tiktok")
    due = utcnow() - timedelta(seconds=30)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=due, next_attempt_at=due,
                    lease_owner="host:1:armed", lease_until=utcnow() + timedelta(seconds=60))
    sweeper.sweep(rt)
    assert f"publish-{post}" not in Queue("publish", connection=rt.redis).job_ids


def test_a_due_post_whose_lease_ran_out_is_sent(rt):
    account = add_account(rt, USER, "tiktok")
    due = utcnow() - timedelta(seconds=30)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=due, next_attempt_at=due,
                    lease_owner="host:1:armed", lease_until=utcnow() - timedelta(seconds=1))
    sweeper.sweep(rt)
    job = Queue("publish", connection=rt.redis).fetch_job(f"publish-{post}")
    assert job is not None and job.args == (post, "tiktok")


def test_hand_over_wakes_a_scheduled_post_early_by_the_prearm_time(rt, monkeypatch):
    from rq.registry import ScheduledJobRegistry

    monkeypatch.setenv("AURAREELS_PREARM_SECONDS", "15")
    account = add_account(rt, USER, "tiktok")
    when = utcnow() + timedelta(minutes=10)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=when)
    scheduler.hand_over(rt, post, when, USER, "tiktok")
    registry = ScheduledJobRegistry("publish", connection=rt.redis)
    at = registry.get_scheduled_time(scheduler.wake_job_id(post)).replace(tzinfo=None)
    assert at == when - timedelta(seconds=15)
    monkeypatch.setenv("AURAREELS_PREARM_SECONDS", "0")
    scheduler.hand_over(rt, post, when, USER, "tiktok")
    assert registry.get_scheduled_time(scheduler.wake_job_id(post)).replace(tzinfo=None) == when


def test_cancel_drops_both_wake_ups(rt):
    account = add_account(rt, USER, "tiktok")
    when = utcnow() + timedelta(minutes=10)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=when)
    scheduler.hand_over(rt, post, when, USER, "tiktok")
    scheduler.wake_exactly(rt, post, when, "tiktok")
    scheduler.drop(rt, post)
    from rq.job import Job

    assert not Job.exists(scheduler.wake_job_id(post), connection=rt.redis)
    assert not Job.exists(scheduler.due_wake_job_id(post), connection=rt.redis)


def test_an_expired_lease_on_a_scheduled_post_does_not_block_its_claim(rt):
    """The advisory lease is only a hint to the sweeper: a wake-up at the time claims the post."""
    from bridge.engine import claim
    from bridge.timefmt import iso_z

    account = add_account(rt, USER, "tiktok")
    due = utcnow() - timedelta(seconds=2)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=due, lease_owner="host:1:gone",
                    lease_until=utcnow() + timedelta(seconds=60))
    assert claim(rt, post, "me", iso_z(due)) == "claimed"
