"""Queries on `{prefix}aurareels_social_accounts`."""
from __future__ import annotations

from sqlalchemy import select

from bridge.runtime import Runtime


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
