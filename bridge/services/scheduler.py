"""Handing posts to whatever wakes them: RQ (now, or at the scheduled time) or n8n.

Every hand-over is best effort and idempotent: the job ids are deterministic, a job re-checks the
post in MySQL before it does anything, and the sweeper re-enqueues what a wiped Redis lost. So a
queue that is down at scheduling time delays nothing beyond one sweep.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

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


def publish_job_id(post_id: int) -> str:
    return f"publish-{post_id}"


def wake_job_id(post_id: int) -> str:
    return f"wake-{post_id}"


def queue(rt: Runtime, name: str = PUBLISH_QUEUE) -> Queue:
    return Queue(name, connection=rt.redis, default_timeout=JOB_TIMEOUT)


def enqueue_now(rt: Runtime, post_id: int) -> None:
    from bridge import jobs

    queue(rt).enqueue(jobs.publish_post, post_id, job_id=publish_job_id(post_id), result_ttl=3600,
                      failure_ttl=86400)


def enqueue_step_at(rt: Runtime, post_id: int, when: datetime) -> None:
    """The next step of a publishing post (processing wait, rate limit, retry)."""
    from bridge import jobs

    queue(rt).enqueue_at(when.replace(tzinfo=timezone.utc), jobs.publish_post, post_id,
                         job_id=publish_job_id(post_id), result_ttl=3600, failure_ttl=86400)


def hand_over(rt: Runtime, post_id: int, scheduled_at: datetime | None, user_id: int | None = None) -> None:
    try:
        if scheduled_at is None:
            enqueue_now(rt, post_id)
        elif rt.settings.scheduler == "n8n":
            from bridge import jobs

            queue(rt, DEFAULT_QUEUE).enqueue(
                jobs.notify_n8n, post_id, job_id=f"n8n-{post_id}-{int(scheduled_at.timestamp())}",
                retry=Retry(max=6, interval=[5, 15, 60, 120, 300, 600]))
        else:
            from bridge import jobs

            queue(rt).enqueue_at(scheduled_at.replace(tzinfo=timezone.utc), jobs.wake_post, post_id,
                                 iso_z(scheduled_at), job_id=wake_job_id(post_id), result_ttl=3600)
    except (redis_lib.exceptions.RedisError, OSError) as exc:
        # MySQL holds the post; the sweeper enqueues it when Redis is back.
        log.warning("queue unavailable while handing over post %s: %s", post_id, type(exc).__name__,
                    extra={"post_id": post_id})


def drop(rt: Runtime, post_id: int) -> None:
    """Drop a scheduled wake-up (cancel). Harmless if missing: a stale wake-up finds the post no
    longer scheduled and does nothing."""
    try:
        job = Job.fetch(wake_job_id(post_id), connection=rt.redis)
        job.cancel()
        job.delete()
    except NoSuchJobError:
        pass
    except (redis_lib.exceptions.RedisError, OSError):
        pass


def n8n_payload(post_id: int, scheduled_at: datetime, user_id: int) -> dict:
    return {"post_id": post_id, "scheduled_at": iso_z(scheduled_at), "user_id": user_id}
