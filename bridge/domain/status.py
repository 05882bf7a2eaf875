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

from sqlalchemy import update
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
