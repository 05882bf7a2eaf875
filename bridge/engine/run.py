"""A woken post's run: claim it, then drive it under its lease until it is done, waits or fails.

`run_post` is what a queued wake-up calls (a publish now, a follow-up step, the sweeper, the n8n
hand-over). An unexpected exception (a bug, a malformed stored option) is logged with its type and
where it was raised; the post is tried again after 1 and 5 minutes and then fails with
`internal_error`, instead of being retried for ever. The database or Redis going away is not
counted: the post is simply tried again.
"""
from __future__ import annotations

import logging
import os
import random
from datetime import timedelta

import redis as redis_lib
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

from bridge import queue
from bridge.engine.claim import CLAIMED, claim_in
from bridge.engine.driver import Driver, Outcome
from bridge.engine.leases import leases, new_owner
from bridge.logs import post_id_var
from bridge.runtime import Runtime
from bridge.store import posts as post_rows
from bridge.store.db import utcnow

log = logging.getLogger("bridge.engine")

INTERNAL_ATTEMPTS = 3
INTERNAL_DELAYS = (60, 300)  # before the second and the third attempt
OUTAGE_DELAY = 30  # the database or Redis went away mid-run
OUTAGES = (OperationalError, InterfaceError, redis_lib.exceptions.ConnectionError, redis_lib.exceptions.TimeoutError)


def run_post(rt: Runtime, post_id: int, expected_scheduled_at: str | None = None) -> str:
    """Wake a post: claim it, then drive it until it is done, waits, or fails. Returns the outcome
    ("published", "waiting", "failed", ...) or why it was not claimed ("busy", "stale", ...)."""
    post_id_var.set(post_id)
    owner = new_owner()
    with rt.engine.begin() as conn:
        claimed = claim_in(conn, rt, post_id, owner, expected_scheduled_at)
        post, account = post_rows.load(conn, rt.tables, post_id) if claimed == CLAIMED else (None, None)
    if claimed != CLAIMED:
        if claimed == "not_due":
            _requeue_when_due(rt, post_id)
        log.info("post not claimed: %s", claimed, extra={"post_id": post_id})
        return claimed
    driver = Driver(rt, post_id, owner)
    outcome = drive(driver, post=post, account=account)
    if outcome is Outcome.CAPPED:  # nothing was sent; the post goes on in a moment
        outcome = driver.release(utcnow() + timedelta(seconds=random.uniform(1, 3)), reason="rate_limit",
                                 metadata=driver.metadata)
    return outcome.value


def drive(driver: Driver, *, post=None, account=None, quota_checked: bool = False, pause=None) -> Outcome:
    """Drive a claimed post under its lease (kept renewed meanwhile)."""
    rt, post_id, owner = driver.rt, driver.post_id, driver.owner
    with leases.held(rt, post_id, owner):
        try:
            if driver.started:
                return driver.loop(pause=pause)
            return driver.run(post, account, quota_checked=quota_checked, pause=pause)
        except Exception as exc:
            return _unexpected(driver, exc)


def _unexpected(driver: Driver, exc: Exception) -> Outcome:
    """The post keeps its checkpoint and intent (a step may have gone out: the next run asks the
    platform first); it is tried again later, a bounded number of times."""
    rt, post_id = driver.rt, driver.post_id
    where = raised_at(exc)
    if isinstance(exc, OUTAGES):
        log.warning("publishing interrupted: %s at %s; trying again", type(exc).__name__, where,
                    extra={"post_id": post_id})
        closing = Driver(rt, post_id, driver.owner)
        closing.platform = driver.platform
        return closing.release(utcnow() + timedelta(seconds=OUTAGE_DELAY), reason="retry")
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        metadata = post_rows.metadata_of(conn.execute(select(p.c.metadata).where(p.c.id == post_id)).scalar())
    attempts = int(metadata.get("internal_errors", 0)) + 1
    log.error("unexpected %s at %s while publishing (attempt %d of %d)", type(exc).__name__, where, attempts,
              INTERNAL_ATTEMPTS, extra={"post_id": post_id}, exc_info=exc)
    metadata["internal_errors"] = attempts
    if metadata.get("in_flight") is not None:
        metadata["reconcile_first"] = True  # the step in flight may have taken effect
    closing = Driver(rt, post_id, driver.owner)
    closing.platform = driver.platform
    if attempts >= INTERNAL_ATTEMPTS:
        return closing.fail("internal_error", (
            f"The bridge met an internal error while publishing this post, {attempts} times ({type(exc).__name__}). "
            f"Check the post's options and press Retry; Retry checks with the platform before anything is sent "
            f"again."), metadata=metadata)
    at = utcnow() + timedelta(seconds=INTERNAL_DELAYS[attempts - 1])
    return closing.release(at, reason="retry", metadata=metadata,
                           note=f"An internal error interrupted publishing; trying again at {at:%H:%M:%S} UTC.")


def raised_at(exc: BaseException) -> str:
    """Where an exception was raised: "bridge/platforms/instagram.py:185 in _stage_container"."""
    tb = exc.__traceback__
    if tb is None:
        return "unknown"
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = tb.tb_frame.f_code.co_filename
    marker = os.sep + "bridge" + os.sep
    short = "bridge" + os.sep + path.rsplit(marker, 1)[1] if marker in path else os.path.basename(path)
    return f"{short}:{tb.tb_lineno} in {tb.tb_frame.f_code.co_name}"


def _requeue_when_due(rt: Runtime, post_id: int) -> None:
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        row = conn.execute(select(p.c.status, p.c.scheduled_at, p.c.next_attempt_at, p.c.platform)
                           .where(p.c.id == post_id)).mappings().first()
    if row is None:
        return
    try:
        if row["status"] == "scheduled" and row["scheduled_at"] is not None and rt.settings.scheduler == "rq":
            # at its time exactly: it was woken early already
            queue.wake_exactly(rt, post_id, row["scheduled_at"], row["platform"])
        elif row["status"] == "publishing" and row["next_attempt_at"] is not None:
            queue.enqueue_step_at(rt, post_id, row["next_attempt_at"], row["platform"])
    except Exception as exc:  # the sweeper finds it from MySQL
        log.warning("could not enqueue the post for its time: %s", type(exc).__name__, extra={"post_id": post_id})
