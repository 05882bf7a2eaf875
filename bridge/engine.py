"""The publishing engine: a post reaches its platform once, or visibly not at all.

`run_post()` is what every wake-up calls (RQ's scheduler, the internal endpoint n8n calls, the
sweeper, a retry). It:

1. takes a slot of the platform's fleet-wide concurrency cap (none free: the job steps back
   without writing anything), then claims the post with one conditional UPDATE (scheduled ->
   publishing, or a publishing post whose lease is free and whose next step is due) and takes a
   lease in MySQL, renewed by one thread per process while it works. Two wake-ups for one post:
   one claims, the other returns.
2. drives the platform's steps. Before a step that may change something on the platform
   (`step_has_effect`) the intent (`in_flight`) is written with the checkpoint; after it, the
   new checkpoint (publish id, container id, upload session and offset, ...). A step that only
   reads writes nothing and is done again after a crash. A worker killed at any point leaves
   the checkpoint of the last effect; the sweeper resumes from it once the lease has run out.
3. on a processing wait, a rate limit or a transient error it releases the lease with
   `next_attempt_at` and enqueues a follow-up job for that time: no sleeping in a worker.
4. on an unknown outcome (timeout or 5xx after a non-idempotent call) it asks the platform
   (`reconcile`) before anything is sent again; if that cannot settle it, the post fails with
   code `unconfirmed` and is never retried automatically.

`wake()` is what a scheduled wake-up calls; RQ runs it `scheduler.prearm_seconds()` early. In a
threaded worker it prepares the post before its time (rows, token check, caption, quota, media
probe; no platform call, no status change) and the process's `Dispatcher` claims it and makes
the first platform call at the due instant, never before. A reschedule or cancel meanwhile wins:
the claim at the due time is conditional on the post still being scheduled for that time.

MySQL is the truth: Redis only carries wake-ups, and the sweeper rebuilds them from MySQL.
"""
from __future__ import annotations

import heapq
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, bindparam, or_, select, update

from bridge.domain.status import Status, transition, transition_many
from bridge.platforms.base import PostContent, PublishJob
from bridge.platforms.errors import (
    PlatformError,
    RateLimited,
    Reauthorize,
    Rejected,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.registry import get_client
from bridge.runtime import Runtime
from bridge.services import events, first_comments, oauth, quota, scheduler
from bridge.store.db import utcnow
from bridge.timefmt import fmt, iso_z

log = logging.getLogger("bridge.engine")

TRANSIENT_DELAYS = (60, 300, 900)  # 1, 5 and 15 minutes, with jitter
# A token refused right after this run refreshed it: runs (each refreshing again) before giving up,
# more of them while an earlier step's outcome is unknown, and the wait before each.
AUTH_RETRIES, AUTH_RETRIES_UNKNOWN, AUTH_RETRY_SECONDS = 2, 5, 10
# A pre-armed post trusts the quota count it took before its instant unless fewer slots than this
# were left then (other posts of the account armed for the same instant were not counted yet).
QUOTA_RECHECK_ROOM = 10
MAX_STEPS_PER_RUN = 5000
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}"


def lease_seconds() -> int:
    return int(os.environ.get("AURAREELS_LEASE_SECONDS", "90"))


def missed_after() -> timedelta:
    return timedelta(hours=float(os.environ.get("AURAREELS_MISSED_AFTER_HOURS", "24")))


# Atomic "take a slot if fewer than cap are held": slots are sorted-set members scored by expiry,
# so a slot of a killed worker frees itself.
_SLOT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  return 1
end
return 0
"""
DEFAULT_CONCURRENCY = 20


def concurrency_cap(platform: str) -> int:
    raw = os.environ.get(f"AURAREELS_CONCURRENCY_{platform.upper()}")
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else DEFAULT_CONCURRENCY


class _PlatformSlot:
    """At most `concurrency_cap(platform)` posts of one platform are driven at once, fleet-wide."""

    def __init__(self, rt: Runtime, platform: str, owner: str):
        self.rt, self.key, self.owner = rt, f"bridge:conc:{platform}", owner
        self.cap = concurrency_cap(platform)

    _script = None

    def acquire(self) -> bool:
        now = time.time()
        try:
            if _PlatformSlot._script is None:  # EVALSHA, not the script's text on every call
                _PlatformSlot._script = self.rt.redis.register_script(_SLOT_SCRIPT)
            return bool(_PlatformSlot._script(keys=[self.key], args=[now, now + 4 * lease_seconds(), self.cap,
                                                                     self.owner], client=self.rt.redis))
        except Exception:  # no Redis, no cap: MySQL's claim still guarantees one publisher per post
            return True

    def release(self) -> None:
        try:
            self.rt.redis.zrem(self.key, self.owner)
        except Exception:
            pass


class _LeaseKeeper:
    """Renews the leases this process holds, with one thread and one UPDATE per round for all of
    them (a thread per post costs a thread start and a connection per post). A post's own writes
    renew its lease too; this covers long steps (uploads) and pre-armed posts waiting for their time.
    A forked child starts with nothing held and a thread of its own."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[int, tuple[Runtime, str]] = {}
        self._pid = None
        self._wake = threading.Event()

    def hold(self, rt: Runtime, post_id: int, owner: str) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._held, self._pid = {}, os.getpid()
                threading.Thread(target=self._run, name="leases", daemon=True).start()
            self._held[post_id] = (rt, owner)

    def drop(self, post_id: int, owner: str) -> None:
        with self._lock:
            if self._held.get(post_id, (None, None))[1] == owner:
                del self._held[post_id]

    def held(self, rt: Runtime, post_id: int, owner: str):
        keeper = self

        class _Held:
            def __enter__(self):
                keeper.hold(rt, post_id, owner)

            def __exit__(self, *exc):
                keeper.drop(post_id, owner)

        return _Held()

    def renew(self) -> int:
        """One round: every held lease runs `lease_seconds()` from now. Returns rows renewed."""
        with self._lock:
            by_runtime: dict[int, tuple[Runtime, list[int], list[str]]] = {}
            for post_id, (rt, owner) in self._held.items():
                entry = by_runtime.setdefault(id(rt), (rt, [], []))
                entry[1].append(post_id)
                entry[2].append(owner)
        renewed = 0
        for rt, ids, owners in by_runtime.values():
            p = rt.tables.posts
            until = utcnow() + timedelta(seconds=lease_seconds())
            for i in range(0, len(ids), 500):
                try:
                    with rt.engine.begin() as conn:
                        # owners are unique per run, so id IN and owner IN match pairwise
                        renewed += conn.execute(update(p).where(p.c.id.in_(ids[i:i + 500]),
                                                                p.c.lease_owner.in_(owners[i:i + 500]))
                                                .values(lease_until=until)).rowcount
                except Exception as exc:  # the next step's write finds out if a lease is gone
                    log.warning("lease renewal failed: %s", type(exc).__name__)
        return renewed

    def _run(self) -> None:
        pid = os.getpid()
        while pid == os.getpid():
            self._wake.wait(max(1.0, lease_seconds() / 3))
            self._wake.clear()
            if pid != os.getpid():
                return
            self.renew()


_leases = _LeaseKeeper()


# ------------------------------------------------------------------------------------ claim
def claim(rt: Runtime, post_id: int, owner: str, expected_scheduled_at: str | None = None) -> str:
    """Try to take the post. Returns "claimed", or why not: "not_found", "stale", "not_due",
    "missed", "busy", "final:<status>"."""
    with rt.engine.begin() as conn:
        return _claim(conn, rt, post_id, owner, expected_scheduled_at)


def _claim(conn, rt: Runtime, post_id: int, owner: str, expected_scheduled_at: str | None) -> str:
    p = rt.tables.posts
    now = utcnow()
    lease_until = now + timedelta(seconds=lease_seconds())
    # The common cases take one conditional UPDATE: a wake-up for a post still scheduled for
    # exactly that time, or the next step of a publishing post whose lease is free and step due.
    if expected_scheduled_at:
        expected = _parse_iso_z(expected_scheduled_at)
        if expected is not None and expected <= now + timedelta(seconds=1) and now - expected <= missed_after():
            if transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.PUBLISHING,
                          where={"scheduled_at": expected}, lease_owner=owner, lease_until=lease_until,
                          next_attempt_at=None):
                return "claimed"
    else:
        result = conn.execute(
            update(p).where(
                p.c.id == post_id, p.c.status == Status.PUBLISHING.value,
                or_(p.c.lease_until.is_(None), p.c.lease_until < now),
                or_(p.c.next_attempt_at.is_(None), p.c.next_attempt_at <= now + timedelta(seconds=1)),
            ).values(lease_owner=owner, lease_until=lease_until, updated_at=now))
        if result.rowcount == 1:
            return "claimed"
    # Otherwise find out why (or claim a due scheduled post a publish job was sent for).
    row = conn.execute(select(p.c.status, p.c.scheduled_at, p.c.next_attempt_at, p.c.lease_until)
                       .where(p.c.id == post_id)).mappings().first()
    if row is None:
        return "not_found"
    status = row["status"]
    if status == Status.SCHEDULED.value:
        scheduled_at = row["scheduled_at"]
        if expected_scheduled_at and (scheduled_at is None or iso_z(scheduled_at) != expected_scheduled_at):
            return "stale"
        if scheduled_at is not None and scheduled_at > now + timedelta(seconds=1):
            return "not_due"
        if scheduled_at is not None and now - scheduled_at > missed_after():
            transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.FAILED, error_code="missed",
                       error_message=f"Not published: it was due at {fmt(scheduled_at)} UTC and the bridge could "
                                     f"not send it within {missed_after()}; schedule it again.",
                       next_attempt_at=None)
            events.emit(rt, "post.failed", post_id)
            return "missed"
        # still for the time just read: a reschedule that commits in between wins
        won = transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.PUBLISHING,
                         where={"scheduled_at": scheduled_at}, lease_owner=owner, lease_until=lease_until,
                         next_attempt_at=None)
        return "claimed" if won else "busy"
    if status == Status.PUBLISHING.value:
        if expected_scheduled_at:
            return "busy"
        return "not_due" if row["next_attempt_at"] and row["next_attempt_at"] > now else "busy"
    return f"final:{status}"


def _load(conn, rt: Runtime, post_id: int):
    """The post and its account (None if gone), in one query."""
    p, a = rt.tables.posts, rt.tables.accounts
    key = (p.name, a.name)  # by name: the same SQL for every Tables object of one prefix
    statement = _LOAD_STATEMENTS.get(key)
    if statement is None:
        statement = (select(p, *[c.label(f"account__{c.name}") for c in a.c])
                     .select_from(p.outerjoin(a, a.c.id == p.c.social_account_id)).where(p.c.id == bindparam("pid")))
        _LOAD_STATEMENTS[key] = statement
    row = conn.execute(statement, {"pid": post_id}).mappings().first()
    if row is None:
        return None, None
    post = {c.name: row[c.name] for c in p.c}
    account = None
    if row["account__id"] is not None:
        account = {c.name: row[f"account__{c.name}"] for c in a.c}
    return post, account


_LOAD_STATEMENTS: dict[tuple, object] = {}
_PERSIST_STATEMENTS: dict[str, object] = {}


def _persist_statement(tables):
    """The checkpoint write under the lease, built once (SQLAlchemy then reuses its cache key and
    compiled form; building it per step cost more than running it)."""
    p = tables.posts
    statement = _PERSIST_STATEMENTS.get(p.name)
    if statement is None:
        statement = update(p).where(
            p.c.id == bindparam("pid"), p.c.status == Status.PUBLISHING.value, p.c.lease_owner == bindparam("owner"),
        ).values(metadata=bindparam("md"), lease_until=bindparam("lease"), updated_at=bindparam("now"))
        _PERSIST_STATEMENTS[p.name] = statement
    return statement


# ------------------------------------------------------------------------------------- run
def new_owner() -> str:
    return f"{PROCESS_ID}:{uuid.uuid4().hex[:8]}"


def run_post(rt: Runtime, post_id: int, expected_scheduled_at: str | None = None, platform: str | None = None) -> str:
    """Wake a post: claim it, then drive it until it is done, waits, or fails. Returns the outcome.

    `platform` (the post's, when the caller knows it) lets the platform's concurrency slot be
    taken before the claim: a post whose platform is at its cap steps back without any write."""
    from bridge.logs import post_id_var

    post_id_var.set(post_id)
    owner = new_owner()
    if platform is None:
        platform = _platform_of(rt, post_id)
        if platform is None:
            log.info("post not claimed: not_found", extra={"post_id": post_id})
            return "not_found"
    slot = _PlatformSlot(rt, platform, owner)
    if not slot.acquire():
        # the platform has its share of posts in flight: step back for a moment, nothing written
        _step_back(rt, post_id, platform, expected_scheduled_at)
        return "platform_busy"
    try:
        with rt.engine.begin() as conn:
            claimed = _claim(conn, rt, post_id, owner, expected_scheduled_at)
            post, account = _load(conn, rt, post_id) if claimed == "claimed" else (None, None)
        if claimed != "claimed":
            if claimed == "not_due":
                _requeue_when_due(rt, post_id)
            log.info("post not claimed: %s", claimed, extra={"post_id": post_id})
            return claimed
        return _drive(rt, post_id, owner, post, account)
    finally:
        slot.release()


def _drive(rt: Runtime, post_id: int, owner: str, post, account, *, quota_checked: bool = False,
           pause=None, driver: "_Driver | None" = None) -> str:
    """Drive a claimed post under its lease; an unexpected error leaves it to be tried again."""
    with _leases.held(rt, post_id, owner):
        driver = driver or _Driver(rt, post_id, owner)
        try:
            if driver.started:
                return driver.loop(pause=pause)
            return driver.run(post, account, quota_checked=quota_checked, pause=pause)
        except Exception:
            # An unexpected bug: keep the post publishing with its checkpoint, free the lease and
            # try again later rather than lose it or resend blindly.
            log.exception("unexpected error while publishing", extra={"post_id": post_id})
            _Driver(rt, post_id, owner).release(utcnow() + timedelta(seconds=300), note="internal error; retrying")
            return "error"


def _platform_of(rt: Runtime, post_id: int) -> str | None:
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        return conn.execute(select(p.c.platform).where(p.c.id == post_id)).scalar()


def _step_back(rt: Runtime, post_id: int, platform: str, expected_scheduled_at: str | None) -> None:
    at = utcnow() + timedelta(seconds=random.uniform(1, 3))
    try:
        if expected_scheduled_at:
            scheduler.wake_exactly(rt, post_id, at, platform, expected_scheduled_at)
        else:
            scheduler.enqueue_step_at(rt, post_id, at, platform)
    except Exception as exc:  # the sweeper finds it from MySQL
        log.warning("could not step back: %s", type(exc).__name__, extra={"post_id": post_id})


def _requeue_when_due(rt: Runtime, post_id: int) -> None:
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        row = conn.execute(select(p.c.status, p.c.scheduled_at, p.c.next_attempt_at, p.c.platform)
                           .where(p.c.id == post_id)).mappings().first()
    if row is None:
        return
    when = row["scheduled_at"] if row["status"] == "scheduled" else row["next_attempt_at"]
    if when is not None and rt.settings.scheduler == "rq" or row["status"] == "publishing":
        try:
            if row["status"] == "scheduled":
                # at its time exactly: it was woken early already
                scheduler.wake_exactly(rt, post_id, when, row["platform"])
            elif when is not None:
                scheduler.enqueue_step_at(rt, post_id, when, row["platform"])
        except Exception:
            pass


# -------------------------------------------------------------------------------- pre-armed
def wake(rt: Runtime, post_id: int, expected_scheduled_at: str, platform: str | None = None) -> str:
    """A scheduled wake-up, possibly before its time (`scheduler.prearm_seconds()` early).

    Due (or less than a moment early): claims and publishes now. Early, in a process with a
    dispatcher (the threaded worker): prepares the post (rows, token check, caption, media probe,
    quota) without any platform call and without changing its status, and leaves it to the
    dispatcher, which claims it and makes the first platform call at its time without holding a
    job slot meanwhile. Early elsewhere (a forked job): asks RQ to wake it again at its time."""
    from bridge.logs import post_id_var

    post_id_var.set(post_id)
    expected = _parse_iso_z(expected_scheduled_at)
    if expected is None:
        return run_post(rt, post_id, expected_scheduled_at, platform)
    ahead = _epoch(expected) - time.time()
    if ahead <= 0.05:
        return run_post(rt, post_id, expected_scheduled_at, platform)
    if not dispatcher.available():
        if ahead <= 1.0:  # the claim allows a second early; the driver waits for the instant itself
            return run_post(rt, post_id, expected_scheduled_at, platform)
        scheduler.wake_exactly(rt, post_id, expected, platform, expected_scheduled_at)
        return "deferred"
    return _prepare(rt, post_id, expected, expected_scheduled_at)


class _Prepared:
    """A pre-armed post: what its run needs, loaded before its time."""

    __slots__ = ("rt", "post_id", "owner", "due", "expected", "post", "account", "platform", "driver")

    def __init__(self, rt, post_id, owner, due, expected, post, account, driver):
        self.rt, self.post_id, self.owner, self.due, self.expected = rt, post_id, owner, due, expected
        self.post, self.account, self.platform, self.driver = post, account, post["platform"], driver


def _prepare(rt: Runtime, post_id: int, expected: datetime, expected_scheduled_at: str) -> str:
    p = rt.tables.posts
    owner = new_owner()
    with rt.engine.begin() as conn:
        # An advisory lease on the still-scheduled row: the sweeper leaves a post alone while a
        # live process holds it for its time. The status is untouched, so a reschedule or a cancel
        # still wins; the claim at the due time checks the row again.
        taken = conn.execute(update(p).where(
            p.c.id == post_id, p.c.status == Status.SCHEDULED.value, p.c.scheduled_at == expected,
        ).values(lease_owner=owner, lease_until=utcnow() + timedelta(seconds=lease_seconds()))).rowcount
        post, account = _load(conn, rt, post_id) if taken == 1 else (None, None)
    if post is None:
        log.info("post not armed: no longer scheduled for %s", expected_scheduled_at, extra={"post_id": post_id})
        return "stale"
    _leases.hold(rt, post_id, owner)
    driver = _Driver(rt, post_id, owner)
    try:
        driver.prepare(post, account)
    except Exception as exc:  # whatever went wrong shows again, and is handled, when it runs
        log.info("preparing the post failed (%s); it is prepared again at its time", type(exc).__name__,
                 extra={"post_id": post_id})
        driver = _Driver(rt, post_id, owner)
    dispatcher.arm(_Prepared(rt, post_id, owner, _epoch(expected), expected, post, account, driver))
    return "armed"


def _claim_prepared(conn, run: _Prepared) -> bool:
    """The due-time claim of a pre-armed post: still scheduled for that time, still under the
    lease taken when it was prepared (a newer preparation or a reschedule or cancel wins)."""
    return transition(conn, run.rt.tables, run.post_id, Status.SCHEDULED, Status.PUBLISHING,
                      where={"scheduled_at": run.expected, "lease_owner": run.owner}, lease_owner=run.owner,
                      lease_until=utcnow() + timedelta(seconds=lease_seconds()), next_attempt_at=None)


def _claim_prepared_together(conn, runs: list[_Prepared]) -> set[int]:
    """`_claim_prepared` for posts due at the same instant, in one UPDATE: still scheduled for
    exactly that time under each run's own lease."""
    now = utcnow()
    return transition_many(conn, runs[0].rt.tables, [(r.post_id, r.owner) for r in runs], Status.SCHEDULED,
                           Status.PUBLISHING, where={"scheduled_at": runs[0].expected}, next_attempt_at=None,
                           lease_until=now + timedelta(seconds=lease_seconds()))


def _first(run: _Prepared, pool) -> None:
    """A claimed pre-armed post's first step (on a pool thread): slot, then the first platform
    call. After its first call it steps aside while other posts of the burst wait for theirs."""
    from bridge.logs import post_id_var

    rt, post_id, owner = run.rt, run.post_id, run.owner
    post_id_var.set(post_id)
    counted = [True]

    def pause() -> bool:
        if counted[0]:
            counted[0] = False
            dispatcher.first_done()
        return dispatcher.firsts_pending() > 0

    slot = _PlatformSlot(rt, run.platform, owner)
    if not slot.acquire():
        pause()
        dispatcher.arm(run, delay=random.uniform(1, 3), resume=True)  # claimed and leased: waits here
        return
    try:
        outcome = _drive(rt, post_id, owner, run.post, run.account, quota_checked=run.driver.prepared,
                         pause=pause, driver=run.driver)
    finally:
        slot.release()
        if counted[0]:
            dispatcher.first_done()
    if outcome == "paused":
        _leases.hold(rt, post_id, owner)  # the lease stays with this process while it waits
        dispatcher.park(run)


def _resume(run: _Prepared, pool) -> None:
    from bridge.logs import post_id_var

    rt, post_id, owner = run.rt, run.post_id, run.owner
    post_id_var.set(post_id)
    slot = _PlatformSlot(rt, run.platform, owner)
    if not slot.acquire():
        dispatcher.arm(run, delay=random.uniform(0.2, 1), resume=True)
        return
    try:
        _drive(rt, post_id, owner, run.post, run.account, quota_checked=run.driver.prepared, driver=run.driver)
    finally:
        _leases.drop(post_id, owner)
        slot.release()


class Dispatcher:
    """Pre-armed posts of this process, started at their due instants.

    A heap ordered by due time and one timer thread. At the instant (never before) it claims the
    due posts, up to a hundred per UPDATE, and hands each to the worker's pool as a first step,
    ahead of everything queued there. A run that has made its first platform call steps aside
    (parked) while other posts of the burst still wait for theirs; the parked runs continue when
    every first call is out. Nothing waits in a job slot. Posts of a process that dies are found
    by the sweeper once their lease runs out."""

    FIRST, NEXT = 0, 1
    CLAIM_BATCH = 100
    PARK_MAX = 10.0  # seconds a parked run waits at most (posts due every second would starve it)

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list = []
        self._seq = 0
        self._pool = None
        self._pid = None
        self._firsts = 0
        self._parked: list[tuple[float, _Prepared]] = []
        self._closed = False
        self._thread_pid = None

    def attach(self, pool) -> None:
        """Use `pool` (`submit(fn, priority)`) for the runs; starts the timer thread (once per
        process: a worker that starts over after losing Redis attaches its new pool again)."""
        with self._cond:
            fresh = self._pid != os.getpid()
            self._pool, self._pid, self._closed = pool, os.getpid(), False
            if fresh:
                self._heap, self._firsts, self._parked = [], 0, []
            start = self._thread_pid != os.getpid()
            self._thread_pid = os.getpid()
        if start:
            threading.Thread(target=self._run, name="dispatcher", daemon=True).start()

    def available(self) -> bool:
        return self._pool is not None and self._pid == os.getpid() and not self._closed

    def armed(self) -> int:
        return len(self._heap)

    def arm(self, run: _Prepared, *, delay: float = 0.0, resume: bool = False) -> None:
        at = max(run.due, time.time() + delay)
        with self._cond:
            if not self._closed:
                self._seq += 1
                heapq.heappush(self._heap, (at, self._seq, run, resume))
                self._cond.notify()
                return
        self._give_back(run, resume)  # handing back: nothing may stay parked in a leaving worker

    # --- first steps of a burst go before the rest of any run
    def firsts_pending(self) -> int:
        return self._firsts

    def first_done(self) -> None:
        with self._cond:
            self._firsts -= 1
            if self._firsts > 0 or not self._parked:
                return
            parked, self._parked = self._parked, []
        pool = self._pool
        for _, run in parked:
            self._submit(pool, lambda r=run: _resume(r, pool), self.NEXT, run)

    def park(self, run: _Prepared) -> None:
        with self._cond:
            if self._firsts > 0 and not self._closed:
                self._parked.append((time.monotonic(), run))
                return
        pool = self._pool
        self._submit(pool, lambda: _resume(run, pool), self.NEXT, run)

    def _unpark_old(self) -> None:
        limit = time.monotonic() - self.PARK_MAX
        with self._cond:
            if not self._parked or self._parked[0][0] > limit:
                return
            old = [run for at, run in self._parked if at <= limit]
            self._parked = [(at, run) for at, run in self._parked if at > limit]
        pool = self._pool
        for run in old:
            self._submit(pool, lambda r=run: _resume(r, pool), self.NEXT, run)

    def hand_back(self) -> int:
        """A worker leaving warm: the posts armed here go back to RQ for their time (their advisory
        lease freed), and claimed runs waiting between steps release their lease for the next step."""
        with self._cond:
            waiting = [(run, resume) for _, _, run, resume in self._heap] + [(run, True) for _, run in self._parked]
            self._heap, self._parked, self._closed = [], [], True
        for run, resume in waiting:
            self._give_back(run, resume)
        return len(waiting)

    def _give_back(self, run: _Prepared, resume: bool) -> None:
        try:
            _leases.drop(run.post_id, run.owner)
            if resume:
                run.driver.release(utcnow(), metadata=run.driver.metadata if run.driver.started else None)
                return
            p = run.rt.tables.posts
            with run.rt.engine.begin() as conn:
                conn.execute(update(p).where(p.c.id == run.post_id, p.c.lease_owner == run.owner)
                             .values(lease_owner=None, lease_until=None))
            scheduler.wake_exactly(run.rt, run.post_id, run.expected, run.platform)
        except Exception as exc:  # the sweeper finds it once the lease ran out
            log.warning("could not hand back a pre-armed post: %s", type(exc).__name__,
                        extra={"post_id": run.post_id})

    def _run(self) -> None:
        pid = os.getpid()
        while pid == os.getpid():
            try:
                self._round()
            except Exception as exc:  # a pool shut down under it, MySQL away: the next round goes on
                log.warning("dispatcher round failed: %s", type(exc).__name__)
                time.sleep(0.5)

    def _round(self) -> None:
        self._unpark_old()
        with self._cond:
            if not self._heap or self._heap[0][0] > time.time():
                self._cond.wait(timeout=min(0.5, self._heap[0][0] - time.time()) if self._heap else 0.5)
            now = time.time()
            due = []
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap))
        if self._closed:  # the worker is leaving: what came due goes back to RQ
            for _, _, run, resume in due:
                self._give_back(run, resume)
            return
        pool = self._pool
        fresh = []
        for _, _, run, resume in due:
            if resume:
                self._submit(pool, lambda r=run: _resume(r, pool), self.NEXT, run)
            else:
                fresh.append(run)
        # batches of one runtime and one due instant, in one lock order (ids ascending)
        fresh.sort(key=lambda r: (id(r.rt), r.expected, r.post_id))
        batch: list[_Prepared] = []
        for run in fresh:
            if batch and (len(batch) >= self.CLAIM_BATCH or run.rt is not batch[0].rt
                          or run.expected != batch[0].expected):
                self._claim_and_start(batch)
                batch = []
            batch.append(run)
        if batch:
            self._claim_and_start(batch)

    def _claim_and_start(self, runs: list[_Prepared]) -> None:
        """Claim runs of one runtime due at one instant, together, then start each as a first step."""
        won: list[_Prepared] = []
        try:
            with runs[0].rt.engine.begin() as conn:
                ids = _claim_prepared_together(conn, runs)
            won = [run for run in runs if run.post_id in ids]
        except Exception as exc:  # MySQL away, a deadlock: nothing was claimed in this batch
            log.warning("claiming %d pre-armed posts failed (%s); each claims alone", len(runs), type(exc).__name__)
            for run in runs:
                try:
                    with run.rt.engine.begin() as conn:
                        if _claim_prepared(conn, run):
                            won.append(run)
                except Exception:  # the sweeper sends it once this process's lease ran out
                    pass
        for run in runs:
            if run not in won:
                _leases.drop(run.post_id, run.owner)
                log.info("pre-armed post not claimed: rescheduled, cancelled or taken", extra={"post_id": run.post_id})
        pool = self._pool
        with self._cond:
            self._firsts += len(won)
        for run in won:
            run.post["status"] = Status.PUBLISHING.value
            self._submit(pool, lambda r=run: _first(r, pool), self.FIRST, run)

    def _submit(self, pool, fn, priority: int, run: _Prepared) -> None:
        """Hand a run to the pool; a pool that was shut down meanwhile (the worker leaving) gets
        nothing, and the run goes back to RQ instead of staying leased here for ever."""
        try:
            pool.submit(fn, priority)
        except RuntimeError:
            with self._cond:
                if self._firsts > 0 and priority == self.FIRST:
                    self._firsts -= 1
            self._give_back(run, resume=run.post.get("status") == Status.PUBLISHING.value)


dispatcher = Dispatcher()


class _Driver:
    def __init__(self, rt: Runtime, post_id: int, owner: str):
        self.rt, self.post_id, self.owner = rt, post_id, owner
        self.p = rt.tables.posts
        self.refreshed = False
        self.started = False
        self.prepared = False
        self._last_progress = 0.0
        self._ref = None  # (account row, AccountRef): tokens decrypted once per row
        self.client = None  # the platform client, once the post is loaded
        self.quota_recheck = False  # prepared early with little daily room: count again at the instant

    # --- storage under the lease
    def _owned(self):
        return and_(self.p.c.id == self.post_id, self.p.c.status == Status.PUBLISHING.value,
                    self.p.c.lease_owner == self.owner)

    def persist(self, metadata: dict) -> bool:
        now = utcnow()
        with self.rt.engine.begin() as conn:
            result = conn.execute(_persist_statement(self.rt.tables), {
                "pid": self.post_id, "owner": self.owner, "md": json.dumps(metadata),
                "lease": now + timedelta(seconds=lease_seconds()), "now": now})
        return result.rowcount == 1

    def release(self, next_at: datetime, *, metadata: dict | None = None, note: str | None = None) -> str:
        if metadata is not None and not metadata.get("reconcile_first"):
            # the step answered (an error that says nothing was done): nothing is in flight
            metadata.pop("in_flight", None)
        values = {"lease_owner": None, "lease_until": None, "next_attempt_at": next_at, "updated_at": utcnow()}
        if metadata is not None:
            values["metadata"] = json.dumps(metadata)
        if note is not None:
            values["error_message"] = note
        with self.rt.engine.begin() as conn:
            conn.execute(update(self.p).where(self._owned()).values(**values))
        try:
            scheduler.enqueue_step_at(self.rt, self.post_id, next_at, getattr(self, "_platform", None))
        except Exception as exc:  # the sweeper finds it from next_attempt_at
            log.warning("could not enqueue the next step: %s", type(exc).__name__, extra={"post_id": self.post_id})
        return "waiting"

    def fail(self, code: str, message: str, *, metadata: dict | None = None) -> str:
        values = {"error_code": code[:64], "error_message": message, "lease_owner": None, "lease_until": None,
                  "next_attempt_at": None}
        if metadata is not None:
            values["metadata"] = json.dumps(metadata)
        with self.rt.engine.begin() as conn:
            changed = transition(conn, self.rt.tables, self.post_id, Status.PUBLISHING, Status.FAILED,
                                 where={"lease_owner": self.owner}, **values)
        if changed:
            log.warning("post failed: %s", code, extra={"post_id": self.post_id})
            events.emit(self.rt, "post.failed", self.post_id)
            _observe("failed", self._platform)
        return "failed"

    def succeed(self, result, metadata: dict) -> str:
        metadata.pop("progress", None)
        with self.rt.engine.begin() as conn:
            changed = transition(
                conn, self.rt.tables, self.post_id, Status.PUBLISHING, Status.PUBLISHED,
                where={"lease_owner": self.owner},
                platform_post_id=result.platform_post_id, platform_post_url=result.platform_post_url,
                published_at=utcnow(), error_code=None, error_message=None, lease_owner=None, lease_until=None,
                next_attempt_at=None, metadata=json.dumps(metadata))
            # in the same transaction: a published post with a first comment always has it pending
            commented = changed and first_comments.on_published(conn, self.rt, self.post_id, self._platform,
                                                                metadata)
        if changed:
            log.info("post published", extra={"post_id": self.post_id})
            events.emit(self.rt, "post.published", self.post_id)
            _observe("published", self._platform)
        if commented:
            first_comments.hand_over(self.rt, self.post_id)
        return "published" if changed else "lost_lease"

    # --- the loop
    def _setup(self, post, account) -> None:
        self.post, self.account = post, account
        self._platform = post["platform"]
        self.metadata = _metadata(post["metadata"])
        self.client = get_client(self.rt.settings, post["platform"])
        self.content = _content(post, self.metadata)
        self.caption = self.client.compose_caption(self.content)
        scheduled_at = post["scheduled_at"]
        self.not_before = _epoch(scheduled_at) if scheduled_at is not None else 0.0

    def prepare(self, post, account) -> None:
        """Before the due time (a pre-armed post): everything the first step needs that asks no
        platform anything: the rows, the decrypted token, the caption, the daily quota and the
        media probe (a read of the creator's video, not of the platform)."""
        self._setup(post, account)
        if account is not None and account["is_active"]:
            self._account_ref()
        self.quota_wait = self._quota_wait(post)
        # Posts of one account armed for one instant do not see each other yet: when the room
        # left is small, the count is taken again at the instant (one query) so they can't overrun it.
        self.quota_recheck = self.quota_room is not None and self.quota_room <= QUOTA_RECHECK_ROOM
        if self.content.video_url and self.content.media_type == "video":
            try:
                from bridge.platforms.media import MediaSource

                MediaSource(self.rt.settings, self.content.video_url).probe(ahead=True)
            except Exception:  # the step probes again and handles what it finds
                pass
        self.prepared = True

    def _account_ref(self):
        if self._ref is None or self._ref[0] is not self.account:
            self._ref = (self.account, oauth.account_ref(self.rt, self.account))
        return self._ref[1]

    def run(self, post, account, *, quota_checked: bool = False, pause=None) -> str:
        if not self.prepared:
            self._setup(post, account)
            self.quota_wait = None
        self.post, self.account = post, account
        self.started = True
        if account is None or not account["is_active"]:
            return self.fail("account_disconnected", "The account was disconnected; connect it again and retry.")
        self.quota_checked = quota_checked
        return self.loop(pause=pause)

    def loop(self, pause=None) -> str:
        """Drive the steps. With `pause` (a pre-armed post), after a platform call whose result
        needs no write the run returns "paused" when `pause()` says others wait for their first
        call; `loop()` again continues from the same state."""
        post, client, metadata = self.post, self.client, self.metadata
        for _ in range(MAX_STEPS_PER_RUN):
            checkpoint = metadata.get("checkpoint") or {}
            if not checkpoint and not metadata.get("reconcile_first"):
                trusted = self.quota_checked and not self.quota_recheck
                wait = self.quota_wait if trusted else self._quota_wait(post)
                self.quota_checked = False
                if wait is not None:
                    return self.release(wait, metadata=metadata, note=(
                        f"Waiting for {client.display_name}'s daily limit to free a slot at {fmt(wait)} UTC."))
            # The token is refreshed when the row says it is due; a refusal of the platform
            # (TokenExpired below) forces a refresh whatever the row says.
            if oauth.due_for_refresh(self.account, oauth.REFRESH_EARLY):
                try:
                    self.account = oauth.refresh_account(self.rt, self.account["id"])
                except Reauthorize as exc:
                    events.emit(self.rt, "account.needs_reconnect", self.post_id)
                    return self.fail("account_needs_reconnect", exc.message, metadata=metadata)
                except RateLimited as exc:
                    return self.release(_after(exc.retry_after), metadata=metadata, note=exc.message)
                except Transient as exc:
                    return self._transient(exc, metadata)
                except PlatformError as exc:
                    return self.fail(exc.code, exc.message, metadata=metadata)

            job = PublishJob(post_id=self.post_id, account=self._account_ref(), content=self.content,
                             caption=self.caption, checkpoint=dict(checkpoint), progress=self._progress(metadata))
            # A step that was in flight when its worker died may have taken effect: ask first.
            if metadata.get("in_flight") is not None:
                metadata["reconcile_first"] = True
            reconciling = bool(metadata.get("reconcile_first"))
            effect = False
            try:
                if reconciling:
                    self._not_early()
                    result = client.reconcile(job)
                    metadata.pop("reconcile_first", None)
                    metadata.pop("in_flight", None)
                else:
                    effect = client.step_has_effect(job)
                    if effect:
                        # Write-ahead: the intent is stored before the platform call, the result
                        # after. A step that only reads is simply done again after a crash.
                        metadata["in_flight"] = checkpoint.get("stage", "start")
                        if not self.persist(metadata):
                            return "lost_lease"
                    failpoint("before_step")
                    self._not_early()
                    result = client.publish_step(job)
                    failpoint("after_step")
            except TokenExpired:
                if self.refreshed:
                    return self._refused_after_refresh(client, metadata)
                self.refreshed = True
                try:
                    self.account = oauth.refresh_account(self.rt, self.account["id"], force=True)
                except Reauthorize as again:
                    events.emit(self.rt, "account.needs_reconnect", self.post_id)
                    return self.fail("account_needs_reconnect", again.message, metadata=metadata)
                except PlatformError as again:
                    return self._transient(Transient(again.message, platform=again.platform), metadata)
                continue
            except RateLimited as exc:
                _observe_call(post["platform"], "rate_limited")
                return self.release(_after(exc.retry_after), metadata=metadata, note=exc.message)
            except UnknownOutcome as exc:
                _observe_call(post["platform"], "unknown_outcome")
                settled = self._settle(client, job, metadata, exc)
                if isinstance(settled, str):
                    return settled
                result = settled
                effect = True  # what the platform said is written before anything else is sent
            except Transient as exc:
                _observe_call(post["platform"], "transient")
                return self._transient(exc, metadata)
            except Reauthorize as exc:
                self._mark_reconnect(self.account["id"], exc.message)
                return self.fail("account_needs_reconnect", exc.message, metadata=metadata)
            except Rejected as exc:
                _observe_call(post["platform"], "rejected")
                return self.fail(exc.code, exc.message, metadata=metadata)

            _observe_call(post["platform"], "ok")
            metadata["checkpoint"] = result.checkpoint
            metadata.pop("in_flight", None)
            if not reconciling:
                metadata.pop("auth_retries", None)
            metadata.pop("transient_attempts", None)
            if result.done:
                return self.succeed(result, metadata)
            if result.wait is not None:
                return self.release(_after(result.wait), metadata=metadata)
            if effect or reconciling:
                if not self.persist(metadata):
                    log.warning("lease lost; another worker has the post", extra={"post_id": self.post_id})
                    return "lost_lease"
            if pause is not None and pause():
                return "paused"
        return self.release(utcnow(), metadata=metadata)

    def _not_early(self) -> None:
        """Nothing reaches a platform before the post's scheduled time: a claim may come up to a
        second early (RQ's and n8n's clocks are whole seconds); the first call waits for the instant."""
        left = self.not_before - time.time()
        if left > 2.0:  # never expected (the claim checks the time): wait for the time as data
            raise RateLimited("Not due yet.", platform=self._platform, retry_after=left)
        if left > 0:
            time.sleep(left)
        self.not_before = 0.0

    def _settle(self, client, job: PublishJob, metadata: dict, original: UnknownOutcome):
        """Ask the platform what happened; never resend before it answers."""
        try:
            return client.reconcile(job)
        except TokenExpired:
            # The read that checks what happened needs a fresh token; the step may well have gone
            # out, so ask again after refreshing, never fail or resend on this.
            metadata["reconcile_first"] = True
            try:
                oauth.refresh_account(self.rt, job.account.id, force=True)
            except Reauthorize as exc:
                events.emit(self.rt, "account.needs_reconnect", self.post_id)
                return self.fail("account_needs_reconnect", exc.message, metadata=metadata)
            except PlatformError:
                pass
            return self.release(_after(5), metadata=metadata, note=original.message)
        except UnknownOutcome:
            return self.fail("unconfirmed", (
                f"We could not confirm whether {client.display_name} published this post. Check the account on "
                f"{client.display_name}; Retry checks again before anything is sent."), metadata=metadata)
        except (Transient, RateLimited) as exc:
            # The platform cannot be asked right now: check again later, still without resending.
            metadata["reconcile_first"] = True
            delay = exc.retry_after if isinstance(exc, RateLimited) else 60
            return self.release(_after(delay), metadata=metadata, note=original.message)
        except PlatformError as exc:
            return self.fail(exc.code, exc.message, metadata=metadata)

    def _refused_after_refresh(self, client, metadata: dict) -> str:
        """The platform refused a token this run had just refreshed. That is sometimes a passing
        glitch (a new token not yet known to every server), so the post waits and tries again
        before it gives up. While an earlier step's outcome is unknown the post may well be live:
        it keeps asking longer and, if it must stop, ends `unconfirmed` (Retry asks before it
        sends anything), never as a plain failure."""
        unknown = bool(metadata.get("reconcile_first")) or client.may_be_live(metadata.get("checkpoint"))
        tries = int(metadata.get("auth_retries", 0)) + 1
        if tries < (AUTH_RETRIES_UNKNOWN if unknown else AUTH_RETRIES):
            metadata["auth_retries"] = tries
            at = _after(AUTH_RETRY_SECONDS * tries)
            return self.release(at, metadata=metadata, note=(
                f"{client.display_name} refused the freshly refreshed login; trying again at {fmt(at)} UTC."))
        metadata.pop("auth_retries", None)
        if unknown:
            return self.fail("unconfirmed", (
                f"We could not confirm whether {client.display_name} published this post: it kept refusing the "
                f"saved login while we checked. Reconnect the account, then Retry; Retry checks before anything "
                f"is sent."), metadata=metadata)
        return self.fail("token_rejected", f"{client.display_name} refused the saved login even after refreshing "
                                           f"it; connect the account again.", metadata=metadata)

    def _transient(self, exc: PlatformError, metadata: dict) -> str:
        attempts = int(metadata.get("transient_attempts", 0)) + 1
        client = self.client
        if attempts > len(TRANSIENT_DELAYS) and client is not None and (
                metadata.get("reconcile_first") or client.may_be_live(metadata.get("checkpoint"))):
            # the publishing call took effect: the post may be live, so it is not "failed"
            return self.fail("unconfirmed", (
                f"{client.display_name} may already have published this post, but it did not answer when we "
                f"asked how it went ({exc.message}). Check the account on {client.display_name}; Retry asks "
                f"{client.display_name} first and sends nothing again if the post is there."), metadata=metadata)
        if attempts > len(TRANSIENT_DELAYS):
            return self.fail(exc.code or "transient", f"{exc.message} It failed {attempts} times; press Retry to try "
                                                      f"again.", metadata=metadata)
        metadata["transient_attempts"] = attempts
        delay = TRANSIENT_DELAYS[attempts - 1] * random.uniform(0.8, 1.2)
        # not counted in retry_count: that counts the creator's retries (seed: retry while < 3)
        return self.release(_after(delay), metadata=metadata,
                            note=f"{exc.message} Retrying at {fmt(_after(delay))} UTC (attempt {attempts + 1}).")

    def _quota_wait(self, post) -> datetime | None:
        view = quota.usage(self.rt, post["social_account_id"], post["platform"], exclude_post=self.post_id)
        self.quota_room = None if view.limit is None else view.limit - view.used
        if view.used >= view.limit and view.next_slot_at is not None:
            return view.next_slot_at
        return None

    def _mark_reconnect(self, account_id: int, reason: str) -> None:
        a = self.rt.tables.accounts
        with self.rt.engine.begin() as conn:
            conn.execute(update(a).where(a.c.id == account_id).values(
                needs_reconnect=1, reconnect_reason=reason[:255], updated_at=utcnow()))
        events.emit(self.rt, "account.needs_reconnect", self.post_id)

    def _progress(self, metadata: dict):
        def report(sent: int, total: int) -> None:
            metadata["progress"] = {"sent": int(sent), "total": int(total),
                                    "percent": round(100.0 * sent / total, 1) if total else None}
            now = time.monotonic()
            if now - self._last_progress >= 2 or sent >= total:
                self._last_progress = now
                self.persist(metadata)

        return report


def failpoint(name: str) -> None:
    """Crash tests: `AURAREELS_FAILPOINT=after_step:3:/tmp/marker` kills this process (SIGKILL)
    the third time it passes `after_step`, once: the marker file records that it fired (jobs run
    in forked children, which do not share a counter). Unset in production: one lookup."""
    spec = os.environ.get("AURAREELS_FAILPOINT")
    if not spec:
        return
    target, _, rest = spec.partition(":")
    count, _, marker = rest.partition(":")
    if target != name or (marker and os.path.exists(marker)):
        return
    key = f"{name}:{os.getpid()}"
    _FAILPOINT_HITS[key] = _FAILPOINT_HITS.get(key, 0) + 1
    if _FAILPOINT_HITS[key] >= int(count or 1):
        import signal

        if marker:
            with open(marker, "w") as handle:
                handle.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


_FAILPOINT_HITS: dict[str, int] = {}


def _epoch(naive_utc: datetime) -> float:
    return naive_utc.replace(tzinfo=timezone.utc).timestamp()


def _parse_iso_z(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ") if text else None
    except ValueError:
        return None


def _after(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=max(0.0, float(seconds)))


def _metadata(raw) -> dict:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def _content(post, metadata: dict) -> PostContent:
    def as_list(raw):
        try:
            value = json.loads(raw) if raw else []
        except ValueError:
            return []
        return value if isinstance(value, list) else []

    return PostContent(
        caption=post["caption"] or "", hashtags=as_list(post["hashtags"]), mentions=as_list(post["mentions"]),
        title=metadata.get("title"), privacy_level=post["privacy_level"],
        allow_comments=bool(post["allow_comments"]), allow_duet=bool(post["allow_duet"]),
        allow_stitch=bool(post["allow_stitch"]), video_url=post["video_url"], thumbnail_url=post["thumbnail_url"],
        media_type=metadata.get("media_type") or "video", extra=dict(metadata.get("options") or {}),
    )


def _observe(outcome: str, platform: str) -> None:
    try:
        from bridge.metrics import POSTS_FINISHED

        POSTS_FINISHED.labels(platform=platform, outcome=outcome).inc()
    except Exception:
        pass


def _observe_call(platform: str, outcome: str) -> None:
    try:
        from bridge.metrics import PLATFORM_STEPS

        PLATFORM_STEPS.labels(platform=platform, outcome=outcome).inc()
    except Exception:
        pass
