"""The sweeper: MySQL is the truth, the queue a cache; this makes the cache right again.

Every `AURAREELS_SWEEP_SECONDS` (and at worker start, and at once when Redis was wiped) it:
* enqueues due posts that are still `scheduled` (their wake-up was lost, or n8n never called),
  unless a live lease says a worker holds them pre-armed for their time; run_post fails the ones
  overdue beyond the missed window with code `missed`;
* enqueues `publishing` posts whose lease ran out and whose next step is due (a killed worker,
  a lost follow-up job): they resume from their checkpoint;
* re-arms the wake-ups of posts due soon, and of every future post after Redis was wiped (a
  sentinel key that is gone tells), so scheduled posts still go out on time;
* queues the pending first comments of published posts whose job was lost.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import or_, select

from bridge import queue
from bridge.queue import HEARTBEAT_PREFIX, LAST_SWEEP, SENTINEL
from bridge.runtime import Runtime
from bridge.services import first_comments
from bridge.store.db import utcnow
from bridge.store.posts import lease_free

log = logging.getLogger(__name__)

BATCH = 2000


def _grace(rt: Runtime) -> timedelta:
    # n8n gets the first chance to wake its posts; RQ's scheduler is due within a second.
    return timedelta(seconds=30 if rt.settings.scheduler == "n8n" else 5)


def redis_was_wiped(rt: Runtime) -> bool:
    """True once after Redis lost its data (the sentinel is gone); sets it again."""
    return bool(rt.redis.set(SENTINEL, str(time.time()), nx=True))


def rearm(rt: Runtime, horizon: timedelta | None) -> int:
    """Make sure scheduled posts due within `horizon` (all, when None) have a wake-up."""
    p = rt.tables.posts
    now = utcnow()
    # a post held by a worker for its time (pre-armed) needs no wake-up
    query = select(p.c.id, p.c.scheduled_at, p.c.wp_user_id, p.c.platform).where(
        p.c.status == "scheduled", p.c.scheduled_at > now, lease_free(rt.tables, now))
    if horizon is not None:
        query = query.where(p.c.scheduled_at <= now + horizon)
    with rt.engine.connect() as conn:
        rows = conn.execute(query.order_by(p.c.scheduled_at).limit(50_000)).all()
    armed = 0
    for row in rows:
        if rt.settings.scheduler == "rq" and Job.exists(queue.wake_job_id(row.id), connection=rt.redis):
            continue
        if rt.settings.scheduler == "n8n" and horizon is not None:
            continue  # n8n holds its own wake-ups; the sweep after the due time is the safety net
        queue.hand_over(rt, row.id, row.scheduled_at, int(row.wp_user_id), row.platform)
        armed += 1
    return armed


STARTED_FRESH = timedelta(seconds=90)


def job_live(rt: Runtime, job_id: str, *, started_counts: bool = True) -> bool:
    """Whether a job of that id will run without help: queued (and really in its queue's list: a
    killed worker may have taken it out), or, with `started_counts`, running with a fresh
    heartbeat. A scheduled or deferred job does not count: the sweeper only asks about posts
    already past due, so such a job is overdue and nobody may be moving it."""
    try:
        job = Job.fetch(job_id, connection=rt.redis)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED:
        return rt.redis.lpos(f"rq:queue:{job.origin}", job_id) is not None
    if started_counts and status == JobStatus.STARTED:
        if job.worker_name and not rt.redis.exists(HEARTBEAT_PREFIX + job.worker_name):
            return False  # its worker stopped beating (killed): nobody runs it any more
        beat = job.last_heartbeat or job.started_at
        if beat is not None:
            now = datetime.now(timezone.utc)
            beat = beat if beat.tzinfo else beat.replace(tzinfo=timezone.utc)
            return now - beat < STARTED_FRESH
    return False


def sweep(rt: Runtime) -> dict:
    p = rt.tables.posts
    now = utcnow()
    grace = _grace(rt)
    with rt.engine.connect() as conn:
        # a scheduled post under a live lease is pre-armed in a worker that sends it at its time
        due = conn.execute(select(p.c.id, p.c.platform, p.c.scheduled_at).where(
            p.c.status == "scheduled", p.c.scheduled_at <= now - grace, lease_free(rt.tables, now),
        ).order_by(p.c.scheduled_at).limit(BATCH)).all()
        stuck = conn.execute(select(p.c.id, p.c.platform).where(
            p.c.status == "publishing", lease_free(rt.tables, now),
            or_(p.c.next_attempt_at.is_(None), p.c.next_attempt_at <= now - grace),
        ).limit(BATCH)).all()
    enqueued = 0
    for post_id, platform, scheduled_at in due:
        if job_live(rt, queue.wake_job_id(post_id)) \
                or job_live(rt, queue.due_wake_job_id(post_id, scheduled_at)) \
                or job_live(rt, queue.publish_job_id(post_id)):
            continue
        queue.enqueue_now(rt, post_id, platform)
        enqueued += 1
    for post_id, platform in stuck:
        # the lease ran out, so a started job for this post is dead: only a waiting one counts
        if job_live(rt, queue.publish_job_id(post_id), started_counts=False):
            continue
        queue.enqueue_now(rt, post_id, platform)
        enqueued += 1
    comments = 0
    for post_id in first_comments.due(rt):
        if not job_live(rt, queue.first_comment_job_id(post_id), started_counts=False):
            first_comments.hand_over(rt, post_id)
            comments += 1
    wiped = redis_was_wiped(rt)
    armed = rearm(rt, None if wiped else timedelta(seconds=2 * rt.settings.sweep_seconds + 60))
    rt.redis.set(LAST_SWEEP, str(time.time()))
    if enqueued or armed:
        log.info("sweep: %d due or stuck, %d enqueued, %d wake-ups re-armed%s", len(due) + len(stuck), enqueued,
                 armed, " (redis was wiped)" if wiped else "")
    return {"due": len(due), "resumed": len(stuck), "enqueued": enqueued, "rearmed": armed, "redis_wiped": wiped,
            "first_comments": comments}
