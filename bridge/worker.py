"""`aurareels-bridge worker`: an RQ worker with RQ's scheduler, plus a maintenance thread.

The maintenance thread writes this worker's heartbeat (what `/health` reads), checks every second
whether Redis was wiped (then sweeps at once), sweeps every `AURAREELS_SWEEP_SECONDS`, and runs
the periodic jobs (token refresh) under a Redis lock so one worker in the fleet does each. In the
embedded run (`up`) the worker is a SimpleWorker: the in-process Redis stand-in cannot be shared
with forked children.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from rq import Queue, SimpleWorker, Worker
from sqlalchemy import and_, select

from bridge.runtime import Runtime

log = logging.getLogger(__name__)

QUEUES = ("publish", "default")
HEARTBEAT_PREFIX = "bridge:worker:"
HEARTBEAT_TTL = 30
SCHEDULER_KEY = "bridge:scheduler:alive"
REFRESH_EVERY = 600


def queues(rt: Runtime) -> list[Queue]:
    return [Queue(name, connection=rt.redis) for name in QUEUES]


class Maintenance(threading.Thread):
    def __init__(self, rt: Runtime, name: str, worker=None, in_thread_scheduler=None):
        super().__init__(name="maintenance", daemon=True)
        self.rt, self.worker_name, self.worker = rt, name, worker
        # The embedded run cannot fork RQ's scheduler (its Redis lives in this process): this
        # thread moves due scheduled jobs to their queues itself.
        self.in_thread_scheduler = in_thread_scheduler
        self.stop = threading.Event()

    def scheduler_alive(self) -> bool:
        """Whether this worker runs RQ's scheduler now (one worker of the fleet holds it)."""
        if self.in_thread_scheduler is not None:
            return self.is_alive()
        scheduler = getattr(self.worker, "scheduler", None)
        process = getattr(scheduler, "_process", None)
        if process is not None:
            return process.is_alive()
        return bool(scheduler) and getattr(scheduler, "_status", None) == "started"

    def run(self) -> None:
        from bridge.services.sweeper import SENTINEL, sweep, sweep_seconds

        next_sweep = 0.0
        next_refresh = time.monotonic() + 30
        while not self.stop.is_set():
            try:
                self.rt.redis.set(HEARTBEAT_PREFIX + self.worker_name, str(time.time()), ex=HEARTBEAT_TTL)
                if self.in_thread_scheduler is not None:
                    self.in_thread_scheduler.acquire_locks()
                    self.in_thread_scheduler.enqueue_scheduled_jobs()
                if self.scheduler_alive():
                    self.rt.redis.set(SCHEDULER_KEY, self.worker_name, ex=HEARTBEAT_TTL)
                now = time.monotonic()
                if now >= next_sweep or not self.rt.redis.exists(SENTINEL):
                    if self.rt.redis.set("bridge:lock:sweep", self.worker_name, nx=True, ex=10):
                        sweep(self.rt)
                        self.rt.redis.delete("bridge:lock:sweep")
                    next_sweep = now + sweep_seconds()
                if now >= next_refresh:
                    next_refresh = now + REFRESH_EVERY
                    if self.rt.redis.set("bridge:lock:refresh", self.worker_name, nx=True, ex=REFRESH_EVERY - 60):
                        refresh_expiring_tokens(self.rt)
            except Exception as exc:  # Redis or MySQL down: keep trying, the worker stays up
                log.warning("maintenance: %s", type(exc).__name__)
            self.stop.wait(1.0)


def refresh_expiring_tokens(rt: Runtime, within: timedelta = timedelta(hours=6)) -> int:
    """Refresh tokens expiring within `within` (one at a time per account, under its row lock)."""
    from bridge.platforms.errors import PlatformError
    from bridge.services.oauth import refresh_account
    from bridge.store.db import utcnow

    a = rt.tables.accounts
    with rt.engine.connect() as conn:
        ids = conn.execute(select(a.c.id).where(and_(
            a.c.is_active == 1, a.c.needs_reconnect == 0, a.c.refresh_token.isnot(None),
            a.c.token_expires_at.isnot(None), a.c.token_expires_at <= utcnow() + within))).scalars().all()
    refreshed = 0
    for account_id in ids:
        try:
            refresh_account(rt, account_id, early=within)
            refreshed += 1
        except PlatformError as exc:
            log.warning("periodic refresh failed: %s", exc.code, extra={"account_id": account_id})
    return refreshed


def run_worker(rt: Runtime, *, burst: bool = False, embedded: bool = False) -> int:
    from bridge import jobs

    jobs.set_runtime(rt)
    embedded = embedded or rt.redis_is_embedded
    worker_cls = SimpleWorker if embedded else Worker
    name = f"{socket.gethostname()}.{os.getpid()}"
    worker = worker_cls(queues(rt), connection=rt.redis, name=name)
    in_thread = None
    if embedded:
        from rq.scheduler import RQScheduler

        in_thread = RQScheduler(QUEUES, connection=rt.redis)
    maintenance = Maintenance(rt, name, worker, in_thread)
    maintenance.start()
    log.info("worker %s starting on queues %s", name, ",".join(QUEUES))
    try:
        worker.work(burst=burst, with_scheduler=not embedded, logging_level="WARNING")
    finally:
        maintenance.stop.set()
        try:
            rt.redis.delete(HEARTBEAT_PREFIX + name)
        except Exception:
            pass
    return 0
