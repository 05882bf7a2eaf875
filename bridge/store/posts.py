"""Queries on `{prefix}aurareels_social_posts` that the publishing engine runs: loading a post with
its account, writing its checkpoint under the lease, and taking, renewing and letting go of leases.

A lease (`lease_owner`, `lease_until`) says which worker holds a post. The rule for "free" is
written once, here: no owner's lease runs any more (`lease_free`). Status changes go through
`bridge.domain.status`, never through this module.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import bindparam, case, or_, select, update

from bridge.store.tables import Tables
from bridge.timefmt import fmt

WAIT_REASONS = ("quota", "rate_limit", "processing", "retry")


def waiting(row) -> dict:
    """What a post waits for, as the API shows it: `next_attempt_at` (UTC, None when nothing waits:
    a scheduled post waits for its time, a publishing one only while released with a reason) and
    `wait_reason` (one of WAIT_REASONS, or None)."""
    status, reason = row["status"], row["wait_reason"]
    waits = status == "scheduled" or (status == "publishing" and reason is not None)
    return {"next_attempt_at": fmt(row["next_attempt_at"]) if waits else None,
            "wait_reason": reason if status == "publishing" else None}


def lease_free(tables: Tables, now: datetime):
    """SQL condition: nobody holds the post (no lease, or one that ran out)."""
    p = tables.posts
    return or_(p.c.lease_until.is_(None), p.c.lease_until < now)


def platform_of(conn, tables: Tables, post_id: int) -> str | None:
    p = tables.posts
    return conn.execute(select(p.c.platform).where(p.c.id == post_id)).scalar()


_LOAD: dict[tuple, object] = {}


def load(conn, tables: Tables, post_id: int) -> tuple[dict | None, dict | None]:
    """The post and its account (None if gone), in one query."""
    p, a = tables.posts, tables.accounts
    key = (p.name, a.name)  # by name: the same SQL for every Tables object of one prefix
    statement = _LOAD.get(key)
    if statement is None:
        statement = (select(p, *[c.label(f"account__{c.name}") for c in a.c])
                     .select_from(p.outerjoin(a, a.c.id == p.c.social_account_id)).where(p.c.id == bindparam("pid")))
        _LOAD[key] = statement
    row = conn.execute(statement, {"pid": post_id}).mappings().first()
    if row is None:
        return None, None
    post = {c.name: row[c.name] for c in p.c}
    account = None
    if row["account__id"] is not None:
        account = {c.name: row[f"account__{c.name}"] for c in a.c}
    return post, account


def metadata_of(raw) -> dict:
    """A post's `metadata` column as a dict (empty when unset or not a JSON object)."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


_CHECKPOINT: dict[str, object] = {}


def write_checkpoint(conn, tables: Tables, post_id: int, owner: str, metadata: dict, lease_until: datetime,
                     now: datetime) -> bool:
    """Store a claimed post's metadata (checkpoint, intent, progress) and renew its lease, only
    while `owner` holds it. False: the lease is gone (another worker has the post)."""
    p = tables.posts
    statement = _CHECKPOINT.get(p.name)
    if statement is None:  # built once: building it per step cost more than running it
        # by primary key and owner only (owners are unique per run and held only by a claimed
        # post): a status condition lets the optimizer scan the status index instead
        statement = update(p).where(p.c.id == bindparam("pid"), p.c.lease_owner == bindparam("owner")).values(
            metadata=bindparam("md"), lease_until=bindparam("lease"), updated_at=bindparam("now"))
        _CHECKPOINT[p.name] = statement
    result = conn.execute(statement, {"pid": post_id, "owner": owner, "md": json.dumps(metadata),
                                      "lease": lease_until, "now": now})
    return result.rowcount == 1


def release(conn, tables: Tables, post_id: int, owner: str, **values) -> bool:
    """Let go of a claimed post held by `owner`, setting `values` (next_attempt_at, metadata, ...)."""
    p = tables.posts
    return conn.execute(update(p).where(p.c.id == post_id, p.c.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None, **values)).rowcount == 1


def take_next_step(conn, tables: Tables, post_id: int, owner: str, now: datetime, lease_until: datetime,
                   early: datetime) -> bool:
    """Take a publishing post whose lease is free and whose next step is due by `early`."""
    p = tables.posts
    return conn.execute(update(p).where(
        p.c.id == post_id, p.c.status == "publishing", lease_free(tables, now),
        or_(p.c.next_attempt_at.is_(None), p.c.next_attempt_at <= early),
    ).values(lease_owner=owner, lease_until=lease_until, wait_reason=None, updated_at=now)).rowcount == 1


def hold_scheduled(conn, tables: Tables, post_id: int, scheduled_at: datetime, owner: str,
                   lease_until: datetime, now: datetime) -> bool:
    """An advisory lease on a post still scheduled for `scheduled_at` that nobody holds (a worker
    holds it ready for its time). Its status is untouched, so a reschedule or a cancel still wins."""
    p = tables.posts
    return conn.execute(update(p).where(
        p.c.id == post_id, p.c.status == "scheduled", p.c.scheduled_at == scheduled_at, lease_free(tables, now),
    ).values(lease_owner=owner, lease_until=lease_until)).rowcount == 1


def hold_due_soon(conn, tables: Tables, since: datetime, until: datetime, now: datetime, limit: int,
                  owner_of, lease_until: datetime) -> list[tuple[dict, dict | None, str]]:
    """Take an advisory lease on up to `limit` scheduled posts due between `since` and `until` that
    nobody holds, soonest first, and load them. `owner_of(post_id)` names each one's owner. Returns
    (post, account, owner) for each post taken (another worker may have taken some meanwhile)."""
    p = tables.posts
    found = conn.execute(select(p.c.id).where(
        p.c.status == "scheduled", p.c.scheduled_at >= since, p.c.scheduled_at <= until, lease_free(tables, now),
    ).order_by(p.c.scheduled_at, p.c.id).limit(limit)).scalars().all()
    if not found:
        return []
    owners = {post_id: owner_of(post_id) for post_id in found}
    conn.execute(update(p).where(p.c.id.in_(found), p.c.status == "scheduled", lease_free(tables, now))
                 .values(lease_owner=case(owners, value=p.c.id), lease_until=lease_until))
    a = tables.accounts
    rows = conn.execute(select(p, *[c.label(f"account__{c.name}") for c in a.c])
                        .select_from(p.outerjoin(a, a.c.id == p.c.social_account_id))
                        .where(p.c.id.in_(found), p.c.lease_owner.in_(list(owners.values())))).mappings().all()
    taken = []
    for row in rows:
        post = {c.name: row[c.name] for c in p.c}
        account = {c.name: row[f"account__{c.name}"] for c in a.c} if row["account__id"] is not None else None
        taken.append((post, account, post["lease_owner"]))
    return taken


def let_go_scheduled(conn, tables: Tables, post_id: int, owner: str) -> None:
    """Drop the advisory lease `owner` holds on a scheduled post."""
    p = tables.posts
    conn.execute(update(p).where(p.c.id == post_id, p.c.lease_owner == owner)
                 .values(lease_owner=None, lease_until=None))


def renew(conn, tables: Tables, ids: list[int], owners: list[str], lease_until: datetime) -> int:
    """Renew the leases of `ids`, each only under its own owner (owners are unique per run, so
    `id IN` and `lease_owner IN` match pairwise). Returns rows renewed."""
    p = tables.posts
    return conn.execute(update(p).where(p.c.id.in_(ids), p.c.lease_owner.in_(owners))
                        .values(lease_until=lease_until)).rowcount
