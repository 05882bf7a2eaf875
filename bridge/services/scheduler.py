"""Handing posts to whatever wakes them: RQ (now, or at the scheduled time) or n8n.

Every hand-over is best effort and idempotent: the job ids are deterministic, a job re-checks the
post in MySQL before it does anything, and the sweeper re-enqueues what a wiped Redis lost. So a
queue that is down at scheduling time delays nothing beyond one sweep.

A scheduled wake-up runs `prearm_seconds()` (AURAREELS_PREARM_SECONDS, default 60; 0 turns it
off) before the post's time: the worker prepares the post and makes its first platform call at
the instant itself (see `bridge.engine.wake`). Preparing costs about 10 ms of CPU per post across
worker, MariaDB and Redis, so a burst of 10,000 posts due in one second needs most of a minute of
two cores ahead of its time; 20 s covers bursts of about 4,000 on such a machine. Jobs carry the post's platform when it is known,
so the engine can take the platform's concurrency slot before it touches MySQL.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone

import redis as redis_lib
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job

from bridge.runtime import Runtime
from bridge.timefmt import iso_z

log = logging.getLogger(__name__)

PUBLISH_QUEUE = "publish"
DEFAULT_QUEUE = "default"
JOB_TIMEOUT = 900  # shorter than the post lease, so a job never outlives its claim


def prearm_seconds() -> float:
    """How long before its time a scheduled post's wake-up runs (0: at its time)."""
    try:
        return max(0.0, float(os.environ.get("AURAREELS_PREARM_SECONDS", "60")))
    except ValueError:
        return 60.0


def publish_job_id(post_id: int) -> str:
    return f"publish-{post_id}"


def wake_job_id(post_id: int) -> str:
    return f"wake-{post_id}"


def due_wake_job_id(post_id: int, scheduled: datetime | str) -> str:
    """A wake-up at the exact time, for an early one that could not wait in its process. Its id
    carries the time it is for, so a step-back chain for an old time never overwrites the wake-up
    of the time the post was moved to."""
    if isinstance(scheduled, str):
        scheduled = datetime.strptime(scheduled, "%Y-%m-%dT%H:%M:%SZ")
    return f"wake-{post_id}-due-{int(scheduled.replace(tzinfo=timezone.utc).timestamp())}"


def queue(rt: Runtime, name: str = PUBLISH_QUEUE) -> Queue:
    return Queue(name, connection=rt.redis, default_timeout=JOB_TIMEOUT)


def _at(q: Queue, when: datetime, func, *args, **kwargs) -> None:
    """Enqueue at `when` (naive UTC) through RQ's scheduler, also when that has passed: the
    scheduler moves it on its next round, and the sweeper knows such a job is not moving if no
    scheduler runs."""
    q.enqueue_at(when.replace(tzinfo=timezone.utc), func, *args, **kwargs)


def enqueue_now(rt: Runtime, post_id: int, platform: str | None = None) -> None:
    from bridge import jobs

    queue(rt).enqueue(jobs.publish_post, post_id, platform, job_id=publish_job_id(post_id), result_ttl=3600,
                      failure_ttl=86400)


def enqueue_step_at(rt: Runtime, post_id: int, when: datetime, platform: str | None = None) -> None:
    """The next step of a publishing post (processing wait, rate limit, retry)."""
    from bridge import jobs

    queue(rt).enqueue_at(when.replace(tzinfo=timezone.utc), jobs.publish_post, post_id, platform,
                         job_id=publish_job_id(post_id), result_ttl=3600, failure_ttl=86400)


def wake_exactly(rt: Runtime, post_id: int, when: datetime, platform: str | None = None,
                 expected: str | None = None) -> None:
    """Wake a scheduled post at `when` (its time, or a moment later), not early."""
    from bridge import jobs

    _at(queue(rt), when, jobs.wake_post, post_id, expected or iso_z(when), platform,
        job_id=due_wake_job_id(post_id, expected or iso_z(when)), result_ttl=3600)


def hand_over(rt: Runtime, post_id: int, scheduled_at: datetime | None, user_id: int | None = None,
              platform: str | None = None) -> None:
    try:
        if scheduled_at is None:
            enqueue_now(rt, post_id, platform)
        elif rt.settings.scheduler == "n8n":
            from bridge import jobs

            queue(rt, DEFAULT_QUEUE).enqueue(
                jobs.notify_n8n, post_id, job_id=f"n8n-{post_id}-{int(scheduled_at.timestamp())}",
                retry=Retry(max=6, interval=[5, 15, 60, 120, 300, 600]))
        else:
            from bridge import jobs

            _at(queue(rt), scheduled_at - timedelta(seconds=prearm_seconds()), jobs.wake_post, post_id,
                iso_z(scheduled_at), platform, job_id=wake_job_id(post_id), result_ttl=3600)
    except (redis_lib.exceptions.RedisError, OSError) as exc:
        # MySQL holds the post; the sweeper enqueues it when Redis is back.
        log.warning("queue unavailable while handing over post %s: %s", post_id, type(exc).__name__,
                    extra={"post_id": post_id})


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


def n8n_payload(post_id: int, scheduled_at: datetime, user_id: int) -> dict:
    return {"post_id": post_id, "scheduled_at": iso_z(scheduled_at), "user_id": user_id}
