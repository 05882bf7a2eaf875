"""The post status machine. `transition()` is the only code that writes `status`.

    draft ──► scheduled ──► publishing ──► published
      │           │  ▲          │  ▲
      │           │  └ resched. │  └──── retry (failed, outcome known)
      │           ▼             ▼
      └──────► cancelled      failed

A transition is one conditional UPDATE (`... WHERE id = :id AND status IN (:from)`): of two
workers, or a worker and an API call, racing for the same post exactly one wins, and the loser
learns it from the row count. That is how a post is claimed for publishing exactly once.
"""
from __future__ import annotations

import enum
from typing import Iterable

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from bridge.store.db import utcnow
from bridge.store.tables import Tables


class Status(str, enum.Enum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"


ALLOWED: dict[Status, frozenset[Status]] = {
    Status.DRAFT: frozenset({Status.SCHEDULED, Status.PUBLISHING, Status.CANCELLED}),
    Status.SCHEDULED: frozenset({Status.SCHEDULED, Status.PUBLISHING, Status.CANCELLED, Status.FAILED}),
    Status.PUBLISHING: frozenset({Status.PUBLISHED, Status.FAILED}),
    Status.FAILED: frozenset({Status.PUBLISHING, Status.SCHEDULED}),
    Status.PUBLISHED: frozenset(),
    Status.CANCELLED: frozenset(),
}

FINAL = frozenset({Status.PUBLISHED, Status.FAILED, Status.CANCELLED})


class IllegalTransition(ValueError):
    pass


def transition(conn: Connection, tables: Tables, post_id: int, from_: Status | Iterable[Status], to: Status,
               *, where: dict | None = None, **values) -> bool:
    """Move post `post_id` from one of `from_` to `to`, setting `values` in the same UPDATE.

    Returns True when this call made the change, False when the post was not in `from_` (or did
    not match `where`, extra column equalities such as a lease owner or a scheduled time).
    Raises IllegalTransition for a move the machine does not allow.
    """
    sources = {Status(from_)} if isinstance(from_, (str, Status)) else {Status(s) for s in from_}
    for source in sources:
        if to not in ALLOWED[source]:
            raise IllegalTransition(f"{source.value} -> {to.value} is not allowed")
    t = tables.posts
    statement = (
        update(t)
        .where(t.c.id == post_id, t.c.status.in_([s.value for s in sources]))
        .values(status=to.value, updated_at=utcnow(), **values)
    )
    for column, value in (where or {}).items():
        statement = statement.where(t.c[column] == value)
    return conn.execute(statement).rowcount == 1


def transition_many(conn: Connection, tables: Tables, pairs: Iterable[tuple[int, str]], from_: Status, to: Status,
                    *, where: dict | None = None, **values) -> set[int]:
    """`transition` for many posts in one UPDATE (a burst of a thousand pre-armed posts claims in a
    few statements instead of a thousand). `pairs` are (post id, lease owner): each post moves only
    under its own owner (owners are unique per run, so `id IN` and `lease_owner IN` match
    pairwise). Returns the ids this call moved."""
    if to not in ALLOWED[Status(from_)]:
        raise IllegalTransition(f"{Status(from_).value} -> {to.value} is not allowed")
    pairs = list(pairs)
    if not pairs:
        return set()
    t = tables.posts
    ids, owners = [i for i, _ in pairs], [o for _, o in pairs]
    statement = (update(t).where(t.c.id.in_(ids), t.c.status == Status(from_).value, t.c.lease_owner.in_(owners))
                 .values(status=to.value, updated_at=utcnow(), **values))
    for column, value in (where or {}).items():
        statement = statement.where(t.c[column] == value)
    moved = conn.execute(statement).rowcount
    if moved == 0:
        return set()
    if moved == len(ids):
        return set(ids)
    return set(conn.execute(select(t.c.id).where(t.c.id.in_(ids), t.c.status == to.value,
                                                 t.c.lease_owner.in_(owners))).scalars().all())
