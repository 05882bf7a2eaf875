"""Queries on `{prefix}aurareels_social_accounts`."""
from __future__ import annotations

from sqlalchemy import select, update

from bridge.runtime import Runtime
from bridge.store.db import utcnow


def list_for_user(rt: Runtime, user_id: int, platform: str | None = None) -> list:
    t = rt.tables.accounts
    query = select(t).where(t.c.wp_user_id == user_id, t.c.is_active == 1).order_by(t.c.id)
    if platform:
        query = query.where(t.c.platform == platform)
    with rt.engine.connect() as conn:
        return list(conn.execute(query).mappings())


def get_for_user(rt: Runtime, user_id: int, account_id: int):
    t = rt.tables.accounts
    with rt.engine.connect() as conn:
        return conn.execute(select(t).where(t.c.id == account_id, t.c.wp_user_id == user_id)).mappings().first()



def mark_needs_reconnect(conn, tables, reason: str, *, account_id: int | None = None,
                         platform: str | None = None, platform_account_id: str | None = None) -> int:
    """The one rule for an account a platform refuses for good: it must be connected again, and
    why (shown to its creator). By row id, or every active row of one platform account (a
    platform's deauthorization notice). Returns rows marked."""
    t = tables.accounts
    if account_id is not None:
        statement = update(t).where(t.c.id == account_id)
    else:
        statement = update(t).where(t.c.platform == platform, t.c.account_id == platform_account_id,
                                    t.c.is_active == 1)
    return conn.execute(statement.values(needs_reconnect=1, reconnect_reason=reason[:255],
                                         updated_at=utcnow())).rowcount
