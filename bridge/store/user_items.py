"""Queries of the rows a user owns outright, templates and hashtag groups: listed by
(wp_user_id, id), read, changed and deleted only with the owner's id in the WHERE clause."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select, update


def list_for(conn: Connection, table: Table, user_id: int, limit: int) -> list:
    return conn.execute(select(table).where(table.c.wp_user_id == user_id).order_by(table.c.id).limit(limit)
                        ).mappings().all()


def count_for(conn: Connection, table: Table, user_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(table.c.wp_user_id == user_id)).scalar())


def get(conn: Connection, table: Table, user_id: int, item_id: int):
    return conn.execute(select(table).where(table.c.id == item_id, table.c.wp_user_id == user_id)).mappings().first()


def add(conn: Connection, table: Table, user_id: int, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(table).values(wp_user_id=user_id, **values)).inserted_primary_key[0])


def change(conn: Connection, table: Table, user_id: int, item_id: int, values: dict[str, Any]) -> bool:
    return bool(conn.execute(update(table).where(table.c.id == item_id, table.c.wp_user_id == user_id)
                             .values(**values)).rowcount)


def remove(conn: Connection, table: Table, user_id: int, item_id: int) -> bool:
    return bool(conn.execute(delete(table).where(table.c.id == item_id, table.c.wp_user_id == user_id)).rowcount)
