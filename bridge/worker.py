"""`aurareels-bridge worker`: an RQ worker with RQ's scheduler, plus a maintenance thread.

The maintenance thread writes this worker's heartbeat (what `/health` reads), checks every second
whether Redis was wiped (then sweeps at once), sweeps every `AURAREELS_SWEEP_SECONDS`, and runs
the periodic jobs (token refresh) under a Redis lock so one worker in the fleet does each.

By default one process runs many jobs at once in threads (`ThreadedWorker`, `DEFAULT_THREADS`
unless `--concurrency N`): a publish spends its time waiting on the platforms, so one process
overlaps hundreds of them where forking would need a process each. The threaded worker also hosts
the engine's dispatcher: scheduled posts woken early are prepared and wait there, in no job slot,
and make their publishing call on the same threads at their due instant, ahead of queued jobs.
`--fork` runs each job in a forked child instead (RQ's Worker), one at a time. In the embedded
run (`up`) the worker is a SimpleWorker: the in-process Redis stand-in cannot be shared with
forked children. Either way a post is published once: the engine claims it in MySQL first.
"""
from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

from rq import Queue, SimpleWorker, Worker
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus
from sqlalchemy import and_, select

from bridge import jobs
from bridge.engine import armer, dispatcher
from bridge.engine.sweeper import sweep
from bridge.platforms.errors import PlatformError
from bridge.queue import BEATS_KEY, HEARTBEAT_PREFIX, HEARTBEAT_TTL, QUEUES, SCHEDULER_KEY, SENTINEL
from bridge.runtime import Runtime
from bridge.services.analytics import sync_due
from bridge.services.oauth import refresh_account
from bridge.store.db import utcnow

log = logging.getLogger(__name__)

DEFAULT_THREADS = 100  # jobs at once in one worker process, unless --concurrency says otherwise
REFRESH_EVERY = 600
# How often RQ's scheduler moves due jobs to their queues: RQ's 1 s loop is up to a second of
# lateness for every scheduled post. Its heartbeat and lock renewal stay at once a second.
SCHEDULER_INTERVAL = 0.2


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
        every = self.rt.settings.sweep_seconds
        next_sweep = 0.0
        next_refresh = time.monotonic() + 30
        while not self.stop.is_set():
            try:
                self.rt.redis.set(HEARTBEAT_PREFIX + self.worker_name, str(time.time()), ex=HEARTBEAT_TTL)
                self.rt.redis.zadd(BEATS_KEY, {self.worker_name: time.time()})
                if self.in_thread_scheduler is not None:
                    self.in_thread_scheduler.acquire_locks()
                    self.in_thread_scheduler.enqueue_scheduled_jobs()
                if self.scheduler_alive():
                    self.rt.redis.set(SCHEDULER_KEY, self.worker_name, ex=HEARTBEAT_TTL)
                now = time.monotonic()
                wiped = not self.rt.redis.exists(SENTINEL)
                if now >= next_sweep or wiped:
                    # one sweep per interval for the whole fleet: the lock expires, it is not released
                    ttl = max(1, int(every) - 1)
                    if wiped or self.rt.redis.set("bridge:lock:sweep", self.worker_name, nx=True, ex=ttl):
                        sweep(self.rt)
                    next_sweep = now + every
                if now >= next_refresh:
                    next_refresh = now + REFRESH_EVERY
                    if self.rt.redis.set("bridge:lock:refresh", self.worker_name, nx=True, ex=REFRESH_EVERY - 60):
                        refresh_expiring_tokens(self.rt)
                        sync_due(self.rt)
            except Exception as exc:  # Redis or MySQL down: keep trying, the worker stays up
                log.warning("maintenance: %s", type(exc).__name__)
            self.stop.wait(1.0)


def refresh_expiring_tokens(rt: Runtime, within: timedelta = timedelta(hours=6)) -> int:
    """Refresh tokens expiring within `within` (one at a time per account, under its row lock)."""
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


class PromptScheduler(RQScheduler):
    """RQ's scheduler, moving due jobs every `SCHEDULER_INTERVAL` instead of every second (RQ's
    loop, with the heartbeat kept at its one-second interval: its lock TTLs are whole seconds).
    It stops with its worker: a scheduler left behind by a killed worker would keep the lock."""

    def work(self):
        self._install_signal_handlers()
        getattr(self, "register_birth", lambda: None)()  # RQ 3
        parent = os.getppid()
        next_beat = 0.0
        while True:
            if self._stop_requested or os.getppid() != parent:
                self.stop()
                break
            if self.should_reacquire_locks:
                self.acquire_locks()
            if time.monotonic() >= next_beat:
                self.heartbeat()
                next_beat = time.monotonic() + self.interval
            self.enqueue_scheduled_jobs()
            time.sleep(SCHEDULER_INTERVAL)


class _PromptScheduler:
    """Starts `PromptScheduler` where RQ would start its own scheduler (RQ's start-up steps)."""

    def _start_scheduler(self, burst=False, logging_level="INFO", date_format=None, log_format=None):
        formats = {k: v for k, v in (("date_format", date_format), ("log_format", log_format)) if v is not None}
        self.scheduler = PromptScheduler(self.queues, connection=self.connection,
                                         logging_level=logging_level if logging_level is not None else self.log.level,
                                         serializer=self.serializer, **formats)
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                getattr(self.scheduler, "register_birth", lambda: None)()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                getattr(self.scheduler, "register_death", lambda: None)()
        else:
            self.scheduler.start()


class ForkingWorker(_PromptScheduler, Worker):
    """RQ's Worker (each job in a forked child)."""


class PriorityPool:
    """A fixed set of threads taking tasks lowest priority first, in order within a priority.
    `waiting(priority)` counts queued tasks at that priority or more urgent; `idle()` threads
    with nothing to do. `shutdown()` lets the queued and running tasks finish. A new task wakes
    one thread; a finished one wakes only whoever waits for an idle thread (the dequeuer)."""

    def __init__(self, threads: int, name: str = "job"):
        lock = threading.Lock()
        self._work = threading.Condition(lock)
        self._freed = threading.Condition(lock)
        self._heap: list = []
        self._seq = 0
        self._busy = 0
        self._by_priority: dict[int, int] = {}
        self._closing = False
        self._threads = [threading.Thread(target=self._run, name=f"{name}_{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, priority: int = 1) -> None:
        with self._work:
            if self._closing:  # its threads may be gone: the caller hands the task back instead
                raise RuntimeError("the pool is shut down")
            self._seq += 1
            heapq.heappush(self._heap, (priority, self._seq, fn))
            self._by_priority[priority] = self._by_priority.get(priority, 0) + 1
            self._work.notify()

    def waiting(self, priority: int = 1_000_000) -> int:
        return sum(n for p, n in list(self._by_priority.items()) if p <= priority)

    def idle(self) -> int:
        return len(self._threads) - self._busy - len(self._heap)

    def _run(self) -> None:
        while True:
            with self._work:
                while not self._heap:
                    if self._closing:
                        return
                    self._work.wait()
                priority, _, fn = heapq.heappop(self._heap)
                self._by_priority[priority] -= 1
                self._busy += 1
            try:
                fn()
            except Exception:
                log.exception("task failed")
            finally:
                with self._work:
                    self._busy -= 1
                    self._freed.notify()

    def wait_idle_thread(self, timeout: float) -> bool:
        with self._work:
            if self.idle() > 0:
                return True
            self._freed.wait(timeout)
            return self.idle() > 0

    def shutdown(self, wait: bool = True) -> None:
        with self._work:
            self._closing = True
            self._work.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()


class ThreadedWorker(_PromptScheduler, SimpleWorker):
    """An RQ worker that runs up to `concurrency` jobs at once, each in a thread of this process.

    One thread dequeues, and only when a job thread is free, so a taken job never waits here; each
    running job is one RQ execution of this worker. Job timeouts use a timer thread (SIGALRM only
    reaches the main thread). `drain()` waits for the running jobs (warm shutdown). The same
    threads run the engine's pre-armed posts at their due time, ahead of jobs (`pool`).
    """

    death_penalty_class = TimerDeathPenalty
    JOB_PRIORITY = 1  # the engine's pre-armed first steps (0) go first

    def __init__(self, *args, concurrency: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        self.concurrency = max(1, int(concurrency))
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self.pool = PriorityPool(self.concurrency)
        self._beat_at = 0.0
        self._shown_state = None

    def heartbeat(self, timeout=None, pipeline=None):
        # RQ beats three times per job outside a pipeline; at hundreds of jobs a second once a
        # second is plenty (the worker's key lives for minutes)
        if pipeline is None and timeout is None:
            if time.monotonic() - self._beat_at < 1.0:
                return
            self._beat_at = time.monotonic()
        super().heartbeat(timeout, pipeline)

    def set_state(self, state, pipeline=None):
        # RQ keeps the state in memory (shutdown reads it) and in Redis (for dashboards); here the
        # one shown is busy while any job runs, written only when it changes
        self._state = state
        shown = WorkerStatus.BUSY if self.executions else state
        if pipeline is None and shown == self._shown_state:
            return
        self._shown_state = shown
        (pipeline if pipeline is not None else self.connection).hset(self.key, "state", shown)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        while not self._slots.acquire(timeout=1.0):  # every job thread busy
            if self._stop_requested:
                return None
            self.heartbeat()
        while not self.pool.wait_idle_thread(timeout=1.0):  # the threads run pre-armed posts
            if self._stop_requested:
                self._slots.release()
                return None
            self.heartbeat()
        try:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except BaseException:
            self._slots.release()
            raise
        if result is None:
            self._slots.release()
        return result

    def execute_job(self, job, queue):
        execution = self.prepare_execution(job)
        self.pool.submit(lambda: self._perform(job, queue, execution), self.JOB_PRIORITY)

    def _perform(self, job, queue, execution) -> None:
        try:
            self.perform_job(job, queue, execution)
        except Exception:  # perform_job records job failures itself; this is RQ's own bookkeeping
            log.exception("job %s: worker bookkeeping failed", job.id)
        finally:
            self._slots.release()
            if not self.executions:
                try:
                    self.set_state(self._state)  # shown as idle again
                except Exception:
                    pass

    def drain(self) -> None:
        dispatcher.hand_back()  # posts pre-armed here go back to RQ, to be woken elsewhere at their time
        self.pool.shutdown(wait=True)

    def teardown(self):
        self.drain()  # warm shutdown: the running jobs finish before the worker leaves the registry
        super().teardown()

    def request_force_stop(self, signum, frame):
        """Second signal: leave now. The running jobs are abandoned mid-run, as a killed forked
        job would be; their leases run out and the sweeper resumes them from their checkpoints."""
        began = getattr(self, "_shutdown_requested_date", None)
        if began is not None and (datetime.now(timezone.utc) - began).total_seconds() < 1:
            return  # the same stop, signalled twice (RQ ignores such a repeat too)
        log.warning("worker %s: cold shut down, abandoning %d running job(s)", self.name, len(self.executions))
        try:
            if self.scheduler is not None:
                self.stop_scheduler()
            self.connection.delete(HEARTBEAT_PREFIX + self.name)
        except Exception:
            pass
        os._exit(1)


def pool_settings(concurrency: int, processes: int = 1) -> dict:
    """SQLAlchemy pool for a worker process running `concurrency` jobs at once, one of `processes`
    of one `worker` command. A job holds a connection only between its statements' begin and
    commit, never across a platform call, so a fraction suffices: at most 25 per command keeps five
    workers (and the API) under MariaDB's default max_connections of 151."""
    size = max(2, min(concurrency // 5, 20) // processes)
    return {"pool_size": size, "max_overflow": max(1, 5 // processes), "pool_timeout": 60}


def default_processes() -> int:
    """One process per two cores: a process runs Python on one core at a time, and MariaDB, Redis
    and the API on the same machine want the others."""
    return max(1, (os.cpu_count() or 1) // 2)


def run_processes(count: int, work) -> int:
    """Run `work` (a whole worker) in `count` forked processes and wait for them. A stop signal is
    passed on to each; a child whose parent died stops too (it is left with no one to supervise
    it). The first child to end ends the others: the command is restarted whole by its supervisor."""
    import signal

    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            _die_with_parent(signal.SIGTERM)
            code = 1
            try:
                code = work()
            finally:
                os._exit(code or 0)
        children.append(pid)

    def pass_on(signum, frame):
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, pass_on)
    worst, stopping = 0, False
    left = set(children)
    while left:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in left:
            continue
        left.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        worst = max(worst, code if code >= 0 else 1)
        if left and not stopping:  # once: a second signal would make the others leave cold
            stopping = True
            pass_on(signal.SIGTERM, None)
    return worst


def _die_with_parent(signum: int) -> None:
    """Linux: this process gets `signum` when its parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signum, 0, 0, 0)
    except Exception:  # elsewhere the maintenance thread's checks are all there is
        pass


def _preload() -> None:
    """Import what jobs use before the first fork, so each forked job does not import it again
    (httpx imports its transport, hundreds of milliseconds, only when a first client is made)."""
    import _strptime  # noqa: F401
    import certifi  # noqa: F401
    import httpcore  # noqa: F401

    from bridge import metrics  # noqa: F401
    from bridge.platforms.http import ssl_context
    from bridge.platforms.registry import available

    available()
    ssl_context()


_fork_hook_installed = False


def _fresh_pool_in_child() -> None:
    """A forked job must not share the parent's pooled MySQL connections (the maintenance thread
    uses them meanwhile): the child gets an empty pool and leaves the parent's sockets alone."""
    rt = jobs._runtime
    if rt is not None:
        rt.engine.dispose(close=False)


def worker_name() -> str:
    """This process's worker name in RQ and in its heartbeat key."""
    return f"{socket.gethostname()}.{os.getpid()}"


def run_worker(rt: Runtime, *, burst: bool = False, embedded: bool = False, fork: bool = False,
               concurrency: int = DEFAULT_THREADS) -> int:
    """Run a worker until it is stopped (or, with `burst`, until the queues are empty): threaded
    with `concurrency` jobs at once by default, each job in a forked child with `fork`, one job at
    a time in this process when `embedded`."""
    global _fork_hook_installed
    jobs.set_runtime(rt)
    _preload()
    if not _fork_hook_installed:
        os.register_at_fork(after_in_child=_fresh_pool_in_child)
        _fork_hook_installed = True
    embedded = embedded or rt.redis_is_embedded
    name = worker_name()
    threaded = not (embedded or fork)
    if threaded:
        worker = ThreadedWorker(queues(rt), connection=rt.redis, name=name, concurrency=concurrency)
        dispatcher.attach(worker.pool)
        if not burst:
            armer.start(rt, worker.pool)
    else:
        worker = (SimpleWorker if embedded else ForkingWorker)(queues(rt), connection=rt.redis, name=name)
    in_thread = None
    if embedded:
        in_thread = RQScheduler(QUEUES, connection=rt.redis)
    maintenance = Maintenance(rt, name, worker, in_thread)
    maintenance.start()
    log.info("worker %s starting on queues %s (%s)", name, ",".join(QUEUES),
             f"{concurrency} jobs at once" if threaded else "one job at a time" + (", forked" if fork else ""))
    try:
        worker.work(burst=burst, with_scheduler=not embedded, logging_level="WARNING")
        if isinstance(worker, ThreadedWorker):
            worker.drain()
    finally:
        maintenance.stop.set()
        try:
            rt.redis.delete(HEARTBEAT_PREFIX + name)
            rt.redis.zrem(BEATS_KEY, name)
        except Exception:
            pass
    return 0
