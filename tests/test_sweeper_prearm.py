"""The sweeper and pre-armed posts: a scheduled post under a live advisory lease is held by a
worker for its time and left alone; once the lease ran out (its worker died) it is sent."""
from __future__ import annotations

from datetime import timedelta

from rq import Queue

from bridge import queue
from bridge.engine import sweeper
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


def test_hand_over_wakes_a_scheduled_post_early_by_the_prearm_time(rt):
    import dataclasses

    from rq.registry import ScheduledJobRegistry

    account = add_account(rt, USER, "tiktok")
    when = utcnow() + timedelta(minutes=10)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=when)
    early = dataclasses.replace(rt, settings=rt.settings.with_overrides(prearm_seconds=15))
    queue.hand_over(early, post, when, USER, "tiktok")
    registry = ScheduledJobRegistry("publish", connection=rt.redis)
    at = registry.get_scheduled_time(queue.wake_job_id(post)).replace(tzinfo=None)
    assert at == when - timedelta(seconds=15)
    on_time = dataclasses.replace(rt, settings=rt.settings.with_overrides(prearm_seconds=0))
    queue.hand_over(on_time, post, when, USER, "tiktok")
    assert registry.get_scheduled_time(queue.wake_job_id(post)).replace(tzinfo=None) == when


def test_cancel_drops_both_wake_ups(rt):
    account = add_account(rt, USER, "tiktok")
    when = utcnow() + timedelta(minutes=10)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=when)
    queue.hand_over(rt, post, when, USER, "tiktok")
    queue.wake_exactly(rt, post, when, "tiktok")
    queue.drop(rt, post, when)
    from rq.job import Job

    assert not Job.exists(queue.wake_job_id(post), connection=rt.redis)
    assert not Job.exists(queue.due_wake_job_id(post, when), connection=rt.redis)


def test_an_expired_lease_on_a_scheduled_post_does_not_block_its_claim(rt):
    """The advisory lease is only a hint to the sweeper: a wake-up at the time claims the post."""
    from bridge.engine import claim
    from bridge.timefmt import iso_z

    account = add_account(rt, USER, "tiktok")
    due = utcnow() - timedelta(seconds=2)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=due, lease_owner="host:1:gone",
                    lease_until=utcnow() + timedelta(seconds=60))
    assert claim(rt, post, "me", iso_z(due)) == "claimed"


def test_a_step_back_for_the_old_time_never_overwrites_the_wake_up_of_the_new_time(rt):
    """A wake-up that stepped back (its platform at its cap) keeps coming for the time it was for;
    after a reschedule it must not replace the wake-up of the new time (which would then find the
    post `stale` and leave it to the sweeper, late)."""
    from rq.job import Job

    from bridge.timefmt import iso_z

    account = add_account(rt, USER, "tiktok")
    old = (utcnow() + timedelta(minutes=1)).replace(microsecond=0)
    new = old + timedelta(minutes=5)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=new)
    queue.wake_exactly(rt, post, new, "tiktok")
    queue.wake_exactly(rt, post, old + timedelta(seconds=2), "tiktok", expected=iso_z(old))  # the old chain
    assert Job.fetch(queue.due_wake_job_id(post, new), connection=rt.redis).args[1] == iso_z(new)
    assert Job.fetch(queue.due_wake_job_id(post, old), connection=rt.redis).args[1] == iso_z(old)
