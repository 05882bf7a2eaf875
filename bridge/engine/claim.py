"""Claiming a post: the one conditional UPDATE that makes a worker its only publisher.

A wake-up for a post still scheduled for exactly that time moves it to `publishing` under a lease;
the next step of a publishing post is taken when its lease is free and the step is due. Of two
wake-ups for one post one claims and the other learns why not. A burst of posts prepared for one
instant is claimed 250 per UPDATE (`claim_armed`).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, select

from bridge.domain.status import Status, transition, transition_many
from bridge.engine.leases import lease_until
from bridge.runtime import Runtime
from bridge.services import events
from bridge.store import posts as post_rows
from bridge.store.db import utcnow
from bridge.timefmt import fmt, iso_z, parse_iso_z

CLAIMED = "claimed"
# A claim may come up to a second early: RQ's and n8n's clocks are whole seconds. The driver
# still makes no platform call before the instant itself.
EARLY = timedelta(seconds=1)


def claim(rt: Runtime, post_id: int, owner: str, expected_scheduled_at: str | None = None) -> str:
    """Try to take the post. Returns "claimed", or why not: "not_found", "stale", "not_due",
    "missed", "busy", "final:<status>"."""
    with rt.engine.begin() as conn:
        return claim_in(conn, rt, post_id, owner, expected_scheduled_at)


def claim_in(conn, rt: Runtime, post_id: int, owner: str, expected_scheduled_at: str | None) -> str:
    """`claim` inside the caller's transaction."""
    now = utcnow()
    until = lease_until(rt)
    # The common cases take one conditional UPDATE: a wake-up for a post still scheduled for
    # exactly that time, or the next step of a publishing post whose lease is free and step due.
    if expected_scheduled_at:
        expected = parse_iso_z(expected_scheduled_at)
        if expected is not None and expected <= now + EARLY and now - expected <= rt.settings.missed_after:
            if transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.PUBLISHING,
                          where={"scheduled_at": expected}, lease_owner=owner, lease_until=until,
                          next_attempt_at=None, wait_reason=None):
                return CLAIMED
    elif post_rows.take_next_step(conn, rt.tables, post_id, owner, now, until, now + EARLY):
        return CLAIMED
    return _why_not(conn, rt, post_id, owner, expected_scheduled_at, now, until)


def _why_not(conn, rt: Runtime, post_id: int, owner: str, expected_scheduled_at: str | None, now: datetime,
             until: datetime) -> str:
    """Why the post was not claimed, or claim a due scheduled post a publish job was sent for."""
    p = rt.tables.posts
    row = conn.execute(select(p.c.status, p.c.scheduled_at, p.c.next_attempt_at)
                       .where(p.c.id == post_id)).mappings().first()
    if row is None:
        return "not_found"
    status = row["status"]
    if status == Status.SCHEDULED.value:
        scheduled_at = row["scheduled_at"]
        if expected_scheduled_at and (scheduled_at is None or iso_z(scheduled_at) != expected_scheduled_at):
            return "stale"
        if scheduled_at is not None and scheduled_at > now + EARLY:
            return "not_due"
        missed_after = rt.settings.missed_after
        if scheduled_at is not None and now - scheduled_at > missed_after:
            transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.FAILED, error_code="missed",
                       error_message=f"Not published: it was due at {fmt(scheduled_at)} UTC and the bridge could "
                                     f"not send it within {missed_after}; schedule it again.",
                       next_attempt_at=None, wait_reason=None)
            events.emit(rt, "post.failed", post_id)
            return "missed"
        # still for the time just read: a reschedule that commits in between wins
        won = transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.PUBLISHING,
                         where={"scheduled_at": scheduled_at}, lease_owner=owner, lease_until=until,
                         next_attempt_at=None, wait_reason=None)
        return CLAIMED if won else "busy"
    if status == Status.PUBLISHING.value:
        if expected_scheduled_at:
            return "busy"
        return "not_due" if row["next_attempt_at"] and row["next_attempt_at"] > now else "busy"
    return f"final:{status}"


def claim_armed(conn, rt: Runtime, scheduled_at: datetime, runs: list[tuple[int, str, str | None]]) -> set[int]:
    """Claim posts prepared for the instant `scheduled_at`, in one UPDATE: each still scheduled for
    exactly that time under the advisory lease its preparation took (a newer preparation, a
    reschedule or a cancel wins). `runs` are (post id, lease owner, metadata JSON to store with the
    claim or None): a run whose first call has an effect writes its intent with the claim. Returns
    the ids claimed."""
    p = rt.tables.posts
    ahead = {post_id: metadata for post_id, _, metadata in runs if metadata is not None}
    values = {}
    if ahead:
        values["metadata"] = case(ahead, value=p.c.id, else_=p.c.metadata)
    return transition_many(conn, rt.tables, [(post_id, owner) for post_id, owner, _ in runs], Status.SCHEDULED,
                           Status.PUBLISHING, where={"scheduled_at": scheduled_at}, next_attempt_at=None,
                           wait_reason=None, lease_until=lease_until(rt), **values)
