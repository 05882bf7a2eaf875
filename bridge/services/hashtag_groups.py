"""The user's hashtag groups: a name and the hashtags to add together. Only their owner sees or
changes them (404 for anyone else)."""
from __future__ import annotations

import json

from bridge.errors import Conflict, NotFound
from bridge.runtime import Runtime
from bridge.store import user_items
from bridge.store.db import utcnow
from bridge.timefmt import fmt

MAX_PER_USER = 500


def group_view(row) -> dict:
    try:
        hashtags = json.loads(row["hashtags"]) if row["hashtags"] else []
    except ValueError:
        hashtags = []
    return {"id": int(row["id"]), "name": row["name"], "hashtags": hashtags if isinstance(hashtags, list) else [],
            "created_at": fmt(row["created_at"]), "updated_at": fmt(row["updated_at"])}


def _columns(body: dict) -> dict:
    values = {}
    if "name" in body:
        values["name"] = body["name"].strip()
    if "hashtags" in body:
        values["hashtags"] = json.dumps(body["hashtags"])
    return values


def _owned(conn, rt: Runtime, user_id: int, group_id: int):
    row = user_items.get(conn, rt.tables.hashtag_groups, user_id, group_id)
    if row is None:
        raise NotFound("This hashtag group was not found.", code="hashtag_group_not_found")
    return row


def list_groups(rt: Runtime, user_id: int) -> dict:
    with rt.engine.connect() as conn:
        rows = user_items.list_for(conn, rt.tables.hashtag_groups, user_id, MAX_PER_USER)
    return {"success": True, "hashtag_groups": [group_view(r) for r in rows]}


def create_group(rt: Runtime, user_id: int, body: dict) -> dict:
    t = rt.tables.hashtag_groups
    now = utcnow()
    with rt.engine.begin() as conn:
        if user_items.count_for(conn, t, user_id) >= MAX_PER_USER:
            raise Conflict(f"You already have {MAX_PER_USER} hashtag groups; delete one before adding another.",
                           code="hashtag_group_limit_reached")
        group_id = user_items.add(conn, t, user_id, {**_columns(body), "created_at": now, "updated_at": now})
        row = _owned(conn, rt, user_id, group_id)
    return {"success": True, "hashtag_group": group_view(row)}


def update_group(rt: Runtime, user_id: int, group_id: int, body: dict) -> dict:
    t = rt.tables.hashtag_groups
    with rt.engine.begin() as conn:
        _owned(conn, rt, user_id, group_id)
        values = _columns(body)
        if values:
            user_items.change(conn, t, user_id, group_id, {**values, "updated_at": utcnow()})
        row = _owned(conn, rt, user_id, group_id)
    return {"success": True, "hashtag_group": group_view(row)}


def delete_group(rt: Runtime, user_id: int, group_id: int) -> dict:
    with rt.engine.begin() as conn:
        if not user_items.remove(conn, rt.tables.hashtag_groups, user_id, group_id):
            raise NotFound("This hashtag group was not found.", code="hashtag_group_not_found")
    return {"success": True, "message": "Hashtag group deleted", "id": group_id}
