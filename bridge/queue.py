"""Handing posts to whatever wakes them: RQ (now, or at a time) or n8n, and the fleet's Redis keys.

This module sits below the services and the engine: it names the jobs it enqueues by their dotted
path (`bridge.jobs.*`), so nothing that hands a post over imports the code that runs it.

Every hand-over is best effort and idempotent: the job ids are deterministic, a job re-checks the
post in MySQL before it does anything, and the sweeper re-enqueues what a wiped Redis lost. So a
queue that is down at scheduling time delays nothing beyond one sweep.

A scheduled wake-up runs `Settings.prearm_seconds` (AURAREELS_PREARM_SECONDS, default 60; 0 turns
it off) before the post's time: a threaded worker prepares the post then and makes its publishing
call at the instant itself (see `bridge.engine.prearm`). Jobs carry the post's platform when it is
known.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import redis as redis_lib
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from bridge.runtime import Runtime
from bridge.timefmt import iso_z

log = logging.getLogger(__name__)

PUBLISH_QUEUE = "publish"
DEFAULT_QUEUE = "default"
QUEUES = (PUBLISH_QUEUE, DEFAULT_QUEUE)
JOB_TIMEOUT = 900  # shorter than the post lease, so a job never outlives its claim

# The jobs, by dotted path (bridge/jobs.py).
PUBLISH_JOB = "bridge.jobs.publish_post"
WAKE_JOB = "bridge.jobs.wake_post"
NOTIFY_N8N_JOB = "bridge.jobs.notify_n8n"
DELIVER_EVENT_JOB = "bridge.jobs.deliver_event"
FIRST_COMMENT_JOB = "bridge.jobs.post_first_comment"
NOOP_JOB = "bridge.jobs.noop"

# Redis keys the fleet shares: each worker's heartbeat, the RQ scheduler's and the sweeper's
# stamps (what /health reads), and the key whose absence says Redis was wiped.
HEARTBEAT_PREFIX = "bridge:worker:"
HEARTBEAT_TTL = 30
SCHEDULER_KEY = "bridge:scheduler:alive"
# Every worker's last beat (name -> time) in one sorted set, so /health counts live workers with
# one ZCOUNT instead of scanning the keyspace for heartbeat keys.
BEATS_KEY = "bridge:workers:beats"
LAST_SWEEP = "bridge:sweeper:last"
SENTINEL = "bridge:epoch"


def publish_job_id(post_id: int) -> str:
    return f"publish-{post_id}"


def wake_job_id(post_id: int) -> str:
    return f"wake-{post_id}"


def first_comment_job_id(post_id: int) -> str:
    return f"first-comment-{post_id}"


def due_wake_job_id(post_id: int, scheduled: datetime | str) -> str:
    """A wake-up at the exact time, for an early one that could not wait in its process. Its id
    carries the time it is for, so a step-back chain for an old time never overwrites the wake-up
    of the time the post was moved to."""
    if isinstance(scheduled, str):
        scheduled = datetime.strptime(scheduled, "%Y-%m-%dT%H:%M:%SZ")
    return f"wake-{post_id}-due-{int(scheduled.replace(tzinfo=timezone.utc).timestamp())}"


def queue(rt: Runtime, name: str = PUBLISH_QUEUE) -> Queue:
    return Queue(name, connection=rt.redis, default_timeout=JOB_TIMEOUT)


def _at(q: Queue, when: datetime, func: str, *args, **kwargs) -> None:
    """Enqueue at `when` (naive UTC) through RQ's scheduler, also when that has passed: the
    scheduler moves it on its next round, and the sweeper knows such a job is not moving if no
    scheduler runs."""
    q.enqueue_at(when.replace(tzinfo=timezone.utc), func, *args, **kwargs)


def enqueue_now(rt: Runtime, post_id: int, platform: str | None = None) -> None:
    queue(rt).enqueue(PUBLISH_JOB, post_id, platform, job_id=publish_job_id(post_id), result_ttl=3600,
                      failure_ttl=86400)


def enqueue_step_at(rt: Runtime, post_id: int, when: datetime, platform: str | None = None) -> None:
    """The next step of a publishing post (processing wait, rate limit, retry)."""
    _at(queue(rt), when, PUBLISH_JOB, post_id, platform, job_id=publish_job_id(post_id), result_ttl=3600,
        failure_ttl=86400)


def wake_exactly(rt: Runtime, post_id: int, when: datetime, platform: str | None = None,
                 expected: str | None = None) -> None:
    """Wake a scheduled post at `when` (its time, or a moment later), not early."""
    _at(queue(rt), when, WAKE_JOB, post_id, expected or iso_z(when), platform,
        job_id=due_wake_job_id(post_id, expected or iso_z(when)), result_ttl=3600)


def hand_over(rt: Runtime, post_id: int, scheduled_at: datetime | None, user_id: int | None = None,
              platform: str | None = None) -> None:
    """Wake the post now (`scheduled_at` None), or at its time through RQ or n8n."""
    try:
        if scheduled_at is None:
            enqueue_now(rt, post_id, platform)
        elif rt.settings.scheduler == "n8n":
            queue(rt, DEFAULT_QUEUE).enqueue(
                NOTIFY_N8N_JOB, post_id, job_id=f"n8n-{post_id}-{int(scheduled_at.timestamp())}",
                retry=Retry(max=6, interval=[5, 15, 60, 120, 300, 600]))
        else:
            _at(queue(rt), scheduled_at - timedelta(seconds=rt.settings.prearm_seconds), WAKE_JOB, post_id,
                iso_z(scheduled_at), platform, job_id=wake_job_id(post_id), result_ttl=3600)
    except (redis_lib.exceptions.RedisError, OSError) as exc:
        # MySQL holds the post; the sweeper enqueues it when Redis is back.
        log.warning("queue unavailable while handing over post %s: %s", post_id, type(exc).__name__,
                    extra={"post_id": post_id})


def enqueue_first_comment(rt: Runtime, post_id: int, when: datetime | None = None) -> None:
    """The first comment of a published post, now or at `when` (naive UTC)."""
    if when is None:
        queue(rt).enqueue(FIRST_COMMENT_JOB, post_id, job_id=first_comment_job_id(post_id), result_ttl=3600,
                          failure_ttl=86400)
    else:
        _at(queue(rt), when, FIRST_COMMENT_JOB, post_id, job_id=first_comment_job_id(post_id), result_ttl=3600,
            failure_ttl=86400)


def drop(rt: Runtime, post_id: int, scheduled_at: datetime | None = None) -> None:
    """Drop a scheduled wake-up (cancel). Harmless if missing: a stale wake-up finds the post no
    longer scheduled and does nothing."""
    ids = [wake_job_id(post_id)] + ([due_wake_job_id(post_id, scheduled_at)] if scheduled_at is not None else [])
    for job_id in ids:
        try:
            job = Job.fetch(job_id, connection=rt.redis)
            job.cancel()
            job.delete()
        except NoSuchJobError:
            pass
        except (redis_lib.exceptions.RedisError, OSError):
            return


def forget_wake_ups(rt: Runtime, post_ids: list[int]) -> None:
    """Drop the early wake-ups of posts a threaded worker took from MySQL to hold for their time, in
    one round trip (a wake-up already on its way finds the post held and does nothing; RQ skips a
    queued job whose data is gone)."""
    if not post_ids:
        return
    ids = [wake_job_id(post_id) for post_id in post_ids]
    try:
        pipe = rt.redis.pipeline(transaction=False)
        pipe.zrem(ScheduledJobRegistry(PUBLISH_QUEUE, connection=rt.redis).key, *ids)
        pipe.delete(*[Job.key_for(job_id) for job_id in ids])
        pipe.execute()
    except (redis_lib.exceptions.RedisError, OSError):
        pass  # each one finds its post held when it runs


def deliver_later(rt: Runtime, event: str, post_id: int, event_id: str) -> None:
    """An outbound webhook delivery, retried with backoff for about four hours."""
    queue(rt, DEFAULT_QUEUE).enqueue(DELIVER_EVENT_JOB, event, post_id, event_id, job_id=f"event-{event_id}",
                                     retry=Retry(max=8, interval=[10, 30, 60, 300, 900, 1800, 3600, 7200]))
