"""The dispatcher: prepared posts of this process, claimed a moment before their instant and
started on the worker's threads, their publishing calls first.

A burst is claimed 250 posts per UPDATE, each post's write-ahead intent in the same statement (a
claim may come a second early, as any wake-up's); its runs wait on their threads for the instant.
A run that made its publishing call steps aside while posts of its burst, in this worker or any
other (`FleetFirsts`), still wait for theirs, for at most 10 s.
"""
from __future__ import annotations

import heapq
import logging
import os
import random
import threading
import time

from bridge import queue
from bridge.engine.claim import EARLY, claim_armed
from bridge.engine.driver import Outcome
from bridge.engine.leases import leases
from bridge.engine.run import drive
from bridge.logs import post_id_var
from bridge.runtime import Runtime
from bridge.store import posts as post_rows
from bridge.store.db import utcnow

log = logging.getLogger("bridge.engine")


class Prepared:
    """A pre-armed post: what its run needs, loaded before its time."""

    __slots__ = ("rt", "post_id", "owner", "due", "expected", "post", "account", "platform", "driver", "claimed")

    def __init__(self, rt, post_id, owner, due, expected, post, account, driver):
        self.rt, self.post_id, self.owner, self.due, self.expected = rt, post_id, owner, due, expected
        self.post, self.account, self.platform, self.driver = post, account, post["platform"], driver
        self.claimed = False


def _first(run: Prepared) -> None:
    """A claimed pre-armed post's first step, on a pool thread: its publishing call. After that
    call it steps aside while other posts of the burst wait for theirs."""
    post_id_var.set(run.post_id)
    counted = [True]

    def pause() -> bool:
        if counted[0]:
            counted[0] = False
            dispatcher.first_done(run)
        return dispatcher.firsts_pending(run)

    try:
        outcome = drive(run.driver, post=run.post, account=run.account, quota_checked=run.driver.prepared,
                        pause=pause)
    finally:
        if counted[0]:
            dispatcher.first_done(run)
    _after_step(run, outcome)


def _resume(run: Prepared) -> None:
    post_id_var.set(run.post_id)
    _after_step(run, drive(run.driver))


def _after_step(run: Prepared, outcome: Outcome) -> None:
    if outcome is Outcome.PAUSED:
        leases.hold(run.rt, run.post_id, run.owner)  # the lease stays with this process while it waits
        dispatcher.park(run)
    elif outcome is Outcome.CAPPED:  # the platform's uploads are at their cap: again in a moment
        leases.hold(run.rt, run.post_id, run.owner)
        dispatcher.arm(run, delay=random.uniform(0.2, 1), resume=True)


class FleetFirsts:
    """Publishing calls of a burst (posts due at one instant) still to be made, across the fleet:
    a Redis counter per instant, raised by each worker's claim and lowered by each call. Read at
    most every 50 ms per instant; without Redis nothing waits for other workers."""

    TTL = 30  # a worker that dies mid-burst leaves a count that expires (PARK_MAX bounds any wait)
    FRESH = 0.05

    def __init__(self):
        self._read: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()
        self._done: dict[tuple[int, float], tuple[Runtime, int]] = {}

    @staticmethod
    def _key(due: float) -> str:
        return f"bridge:firsts:{int(due)}"

    def add(self, rt: Runtime, due: float, count: int) -> None:
        try:
            pipe = rt.redis.pipeline(transaction=False)
            pipe.incrby(self._key(due), count)
            pipe.expire(self._key(due), self.TTL)
            pipe.execute()
        except Exception:
            pass

    def done(self, rt: Runtime, due: float) -> None:
        """Counted here; `flush` lowers the fleet's count (one command for many calls)."""
        with self._lock:
            _, count = self._done.get((id(rt), due), (rt, 0))
            self._done[(id(rt), due)] = (rt, count + 1)

    def flush(self) -> None:
        with self._lock:
            done, self._done = self._done, {}
        for (_, due), (rt, count) in done.items():
            try:
                rt.redis.decrby(self._key(due), count)
            except Exception:
                pass

    def pending(self, rt: Runtime, due: float) -> bool:
        key, now = self._key(due), time.monotonic()
        seen = self._read.get(key)
        if seen is not None and now - seen[0] < self.FRESH:
            return seen[1]
        try:
            waiting = int(rt.redis.get(key) or 0) > 0
        except Exception:
            waiting = False
        self._read[key] = (now, waiting)
        if len(self._read) > 1000:
            self._read.clear()
        return waiting


class Dispatcher:
    """Pre-armed posts of this process, started at their due instants.

    A heap ordered by due time and one timer thread. A moment before the instant it claims the due
    posts, up to 250 per UPDATE, and hands each to the worker's pool as a first step, ahead
    of everything queued there; the run waits for the instant before its first call. A run that has made its first platform call steps aside
    (parked) while other posts of the burst still wait for theirs; the parked runs continue when
    every first call is out. Nothing waits in a job slot. Posts of a process that dies are found
    by the sweeper once their lease runs out."""

    FIRST, NEXT = 0, 1
    CLAIM_BATCH = 250
    CLAIM_AHEAD = EARLY.total_seconds()
    PARK_MAX = 10.0  # seconds a parked run waits at most (posts due every second would starve it)

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list = []
        self._seq = 0
        self._pool = None
        self._pid = None
        self._firsts = 0
        self._parked: list[tuple[float, Prepared]] = []
        self._closed = False
        self._thread_pid = None
        self._fleet = FleetFirsts()

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

    def arm(self, run: Prepared, *, delay: float = 0.0, resume: bool = False) -> None:
        # a burst is claimed a moment ahead of its instant (as any wake-up may be), so its runs are
        # on their threads, waiting for the instant, when it comes; no call leaves before it
        at = max(run.due - (0.0 if resume else self.CLAIM_AHEAD), time.time() + delay)
        with self._cond:
            if not self._closed:
                self._seq += 1
                heapq.heappush(self._heap, (at, self._seq, run, resume))
                self._cond.notify()
                return
        self._give_back(run, resume)  # handing back: nothing may stay parked in a leaving worker

    # --- publishing calls of a burst go before the rest of any run, in this process and fleet-wide
    def firsts_pending(self, run: Prepared) -> bool:
        """Whether posts of `run`'s burst still wait for their publishing call, here or in another
        worker (whose uploads would otherwise compete with them for the machine)."""
        return self._firsts > 0 or self._fleet.pending(run.rt, run.due)

    def first_done(self, run: Prepared) -> None:
        self._fleet.done(run.rt, run.due)
        with self._cond:
            self._firsts -= 1
            if self._firsts <= 0:
                self._cond.notify()  # the timer thread tells the fleet and lets the parked runs go on

    def park(self, run: Prepared) -> None:
        pending = self.firsts_pending(run)
        with self._cond:
            if not self._closed and pending:
                self._parked.append((time.monotonic(), run))
                return
        self._submit(lambda: _resume(run), self.NEXT, run)

    def _unpark(self) -> None:
        """Parked runs go on once their burst's publishing calls are all made (or after PARK_MAX)."""
        limit = time.monotonic() - self.PARK_MAX
        with self._cond:
            if not self._parked or (self._firsts > 0 and self._parked[0][0] > limit):
                return
            parked = list(self._parked)
        go = {id(run) for at, run in parked if at <= limit or not self.firsts_pending(run)}
        if not go:
            return
        with self._cond:
            leaving = [run for _, run in self._parked if id(run) in go]
            self._parked = [(at, run) for at, run in self._parked if id(run) not in go]
        for run in leaving:
            self._submit(lambda r=run: _resume(r), self.NEXT, run)

    def hand_back(self) -> int:
        """A worker leaving warm: the posts armed here go back to RQ for their time (their advisory
        lease freed), and claimed runs waiting between steps release their lease for the next step."""
        with self._cond:
            waiting = [(run, resume) for _, _, run, resume in self._heap] + [(run, True) for _, run in self._parked]
            self._heap, self._parked, self._closed = [], [], True
        for run, resume in waiting:
            self._give_back(run, resume)
        return len(waiting)

    def _give_back(self, run: Prepared, resume: bool) -> None:
        try:
            leases.drop(run.post_id, run.owner)
            if resume:
                driver = run.driver
                known = driver.started or driver.prepared  # else its metadata was never loaded
                driver.release(utcnow(), metadata=driver.metadata if known else None)
                return
            with run.rt.engine.begin() as conn:
                post_rows.let_go_scheduled(conn, run.rt.tables, run.post_id, run.owner)
            queue.wake_exactly(run.rt, run.post_id, run.expected, run.platform)
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
        self._fleet.flush()
        self._unpark()
        with self._cond:
            longest = 0.05 if self._parked else 0.5
            if not self._heap or self._heap[0][0] > time.time():
                self._cond.wait(timeout=min(longest, self._heap[0][0] - time.time()) if self._heap else longest)
            now = time.time()
            due = []
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap))
        if self._closed:  # the worker is leaving: what came due goes back to RQ
            for _, _, run, resume in due:
                self._give_back(run, resume)
            return
        fresh = []
        for _, _, run, resume in due:
            if resume:
                self._submit(lambda r=run: _resume(r), self.NEXT, run)
            else:
                fresh.append(run)
        # batches of one runtime and one due instant, in one lock order (ids ascending); each
        # batch's runs start as soon as it is claimed (they wait for the instant on their threads)
        fresh.sort(key=lambda r: (id(r.rt), r.expected, r.post_id))
        batches: list[list[Prepared]] = []
        for run in fresh:
            if not batches or len(batches[-1]) >= self.CLAIM_BATCH or run.rt is not batches[-1][0].rt \
                    or run.expected != batches[-1][0].expected:
                batches.append([])
            batches[-1].append(run)
        for batch in batches:
            started = self._claim(batch)
            if not started:
                continue
            with self._cond:
                self._firsts += len(started)
            self._fleet.add(started[0].rt, started[0].due, len(started))
            for run in started:
                self._submit(lambda r=run: _first(r), self.FIRST, run)

    def _claim(self, runs: list[Prepared]) -> list[Prepared]:
        """Claim runs of one runtime due at one instant, together. Returns the runs claimed."""
        rt, expected = runs[0].rt, runs[0].expected
        ahead = {run.post_id: run.driver.write_ahead() for run in runs}
        won: set[int] = set()
        try:
            with rt.engine.begin() as conn:
                won = claim_armed(conn, rt, expected, [(r.post_id, r.owner, ahead[r.post_id]) for r in runs])
        except Exception as exc:  # MySQL away, a deadlock: nothing was claimed in this batch
            log.warning("claiming %d pre-armed posts failed (%s); each claims alone", len(runs), type(exc).__name__)
            for run in runs:
                try:
                    with rt.engine.begin() as conn:
                        won |= claim_armed(conn, rt, expected, [(run.post_id, run.owner, ahead[run.post_id])])
                except Exception:  # the sweeper sends it once this process's lease ran out
                    pass
        started = []
        for run in runs:
            if run.post_id in won:
                run.claimed = True
                run.driver.ahead_written = ahead[run.post_id] is not None
                started.append(run)
            else:
                leases.drop(run.post_id, run.owner)
                log.info("pre-armed post not claimed: rescheduled, cancelled or taken", extra={"post_id": run.post_id})
        return started

    def _submit(self, fn, priority: int, run: Prepared) -> None:
        """Hand a run to the pool; a pool that was shut down meanwhile (the worker leaving) gets
        nothing, and the run goes back to RQ instead of staying leased here for ever."""
        try:
            self._pool.submit(fn, priority)
        except RuntimeError:
            if priority == self.FIRST:
                self.first_done(run)
            self._give_back(run, resume=run.claimed)


dispatcher = Dispatcher()
