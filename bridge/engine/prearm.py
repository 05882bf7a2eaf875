"""Scheduled posts taken and prepared before their time.

Each threaded worker's `Armer` takes the posts due within `Settings.prearm_seconds` that nobody
holds from MySQL, a batch per statement, and a scheduled RQ wake-up that runs early (`wake`) takes
one; either way the post is prepared without changing its status: rows, token (refreshed if due),
caption, quota, media probe and the platform's read-only first steps (TikTok's creator info),
under an advisory lease the sweeper respects, and left to the dispatcher (`dispatch.py`), which
claims it a moment before its instant and whose first call at the instant is the publishing call.
A reschedule or cancel before the claim wins: the claim is conditional on the post still being
scheduled for that time under that lease. A forked job woken early asks RQ to wake it again at
its time.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timedelta

from bridge import queue
from bridge.engine.dispatch import Prepared, dispatcher
from bridge.engine.driver import Driver
from bridge.engine.leases import lease_until, leases, new_owner
from bridge.engine.run import run_post
from bridge.logs import post_id_var
from bridge.runtime import Runtime
from bridge.store import posts as post_rows
from bridge.store.db import utcnow
from bridge.timefmt import epoch, parse_iso_z

log = logging.getLogger("bridge.engine")


def wake(rt: Runtime, post_id: int, expected_scheduled_at: str, platform: str | None = None) -> str:
    """A scheduled wake-up, possibly before its time (`Settings.prearm_seconds` early).

    Due (or less than a moment early): claims and publishes now. Early, in a process with a
    dispatcher (the threaded worker): prepares the post and leaves it to the dispatcher, which
    claims it and makes its publishing call at its time without holding a job slot meanwhile.
    Early elsewhere (a forked job): asks RQ to wake it again at its time."""
    post_id_var.set(post_id)
    expected = parse_iso_z(expected_scheduled_at)
    if expected is None:
        return run_post(rt, post_id, expected_scheduled_at)
    ahead = epoch(expected) - time.time()
    if ahead <= 0.05:
        return run_post(rt, post_id, expected_scheduled_at)
    if not dispatcher.available():
        if ahead <= 1.0:  # the claim allows a second early; the driver waits for the instant itself
            return run_post(rt, post_id, expected_scheduled_at)
        queue.wake_exactly(rt, post_id, expected, platform, expected_scheduled_at)
        return "deferred"
    return prepare(rt, post_id, expected, expected_scheduled_at)


def prepare(rt: Runtime, post_id: int, expected: datetime, expected_scheduled_at: str) -> str:
    """Prepare a post still scheduled for `expected` and arm it in this process's dispatcher."""
    owner = new_owner()
    with rt.engine.begin() as conn:
        # The sweeper leaves a post alone while a live process holds it for its time.
        taken = post_rows.hold_scheduled(conn, rt.tables, post_id, expected, owner, lease_until(rt), utcnow())
        post, account = post_rows.load(conn, rt.tables, post_id) if taken else (None, None)
    if post is None:
        log.info("post not armed: held by a worker, or no longer scheduled for %s", expected_scheduled_at,
                 extra={"post_id": post_id})
        return "not_armed"
    _prepare_held(rt, post, account, owner)
    return "armed"


def _prepare_held(rt: Runtime, post: dict, account: dict | None, owner: str) -> None:
    """Prepare a post this process holds for its time and arm it in the dispatcher."""
    post_id = int(post["id"])
    post_id_var.set(post_id)
    leases.hold(rt, post_id, owner)
    driver = Driver(rt, post_id, owner)
    try:
        driver.prepare(post, account)
    except Exception as exc:  # whatever went wrong shows again, and is handled, when it runs
        log.info("preparing the post failed (%s); it is prepared again at its time", type(exc).__name__,
                 extra={"post_id": post_id})
        driver = Driver(rt, post_id, owner)
    expected = post["scheduled_at"]
    dispatcher.arm(Prepared(rt, post_id, owner, epoch(expected), expected, post, account, driver))


class Armer:
    """Scheduled posts due within the pre-arm time, taken from MySQL a batch at a time by each
    threaded worker (an advisory lease on each, in one UPDATE) and prepared on its threads: a burst
    of thousands costs a few statements instead of a job each, and a wiped Redis cannot keep a post
    from its time. Their early RQ wake-ups, the fallback for forking workers, are dropped."""

    BATCH = 200  # posts taken and not yet prepared in this process, at most
    ROUND = 50  # posts taken per statement: the workers of a fleet take turns, each holding a share
    EVERY = 1.0
    PRIORITY = 1  # beside queued jobs, after first calls

    def __init__(self):
        self._lock = threading.Lock()
        self._rt = self._pool = self._pid = None
        self._preparing = 0

    def start(self, rt: Runtime, pool) -> None:
        """Arm posts of `rt` on `pool`'s threads (the thread starts once per process)."""
        with self._lock:
            start = self._pid != os.getpid()
            self._rt, self._pool, self._pid = rt, pool, os.getpid()
            if start:
                self._preparing = 0
        if start:
            threading.Thread(target=self._run, name="armer", daemon=True).start()

    def _run(self) -> None:
        pid = os.getpid()
        while pid == os.getpid():
            try:
                full = self.round() >= self.ROUND
            except Exception as exc:  # MySQL away: the next round goes on
                log.warning("arming round failed: %s", type(exc).__name__)
                full = False
            if not full:
                time.sleep(self.EVERY)

    def round(self) -> int:
        """Take and start preparing the posts due soon that nobody holds. Returns how many."""
        rt, pool = self._rt, self._pool
        if rt is None or rt.settings.scheduler != "rq" or rt.settings.prearm_seconds <= 0 \
                or not dispatcher.available():
            return 0
        room = min(self.ROUND, self.BATCH - self._preparing)
        if room <= 0:
            return 0
        now = utcnow()
        with rt.engine.begin() as conn:
            # due ones nobody holds are taken too (sent at once), unless missed: their wake-up fails them
            taken = post_rows.hold_due_soon(conn, rt.tables, now - rt.settings.missed_after,
                                            now + timedelta(seconds=rt.settings.prearm_seconds), now, room,
                                            lambda _: new_owner(), lease_until(rt))
        queue.forget_wake_ups(rt, [int(post["id"]) for post, _, _ in taken])
        for post, account, owner in taken:
            with self._lock:
                self._preparing += 1
            try:
                pool.submit(lambda p=post, a=account, o=owner: self._prepare(rt, p, a, o), self.PRIORITY)
            except RuntimeError:  # the worker is leaving: the post goes back to RQ for its time
                self._done()
                self._give_back(rt, post, owner)
        return len(taken)

    def _prepare(self, rt: Runtime, post: dict, account: dict | None, owner: str) -> None:
        try:
            _prepare_held(rt, post, account, owner)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._preparing -= 1

    @staticmethod
    def _give_back(rt: Runtime, post: dict, owner: str) -> None:
        try:
            with rt.engine.begin() as conn:
                post_rows.let_go_scheduled(conn, rt.tables, int(post["id"]), owner)
            queue.wake_exactly(rt, int(post["id"]), post["scheduled_at"], post["platform"])
        except Exception as exc:  # the sweeper finds it once the lease ran out
            log.warning("could not hand back a post: %s", type(exc).__name__, extra={"post_id": post["id"]})


armer = Armer()
