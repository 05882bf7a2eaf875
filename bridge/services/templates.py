"""The user's post templates: a name, a caption, hashtags, target platforms and per-platform
options, to start a post from. Only their owner sees or changes them (404 for anyone else)."""
from __future__ import annotations

import json

from bridge.errors import Conflict, NotFound
from bridge.runtime import Runtime
from bridge.store import user_items
from bridge.store.db import utcnow
from bridge.timefmt import fmt

MAX_PER_USER = 500


def _loads(raw, kind: type):
    try:
        value = json.loads(raw) if raw else kind()
    except ValueError:
        return kind()
    return value if isinstance(value, kind) else kind()


def template_view(row) -> dict:
    return {"id": int(row["id"]), "name": row["name"], "caption": row["caption"],
            "hashtags": _loads(row["hashtags"], list), "platforms": _loads(row["platforms"], list),
            "options": _loads(row["options"], dict), "created_at": fmt(row["created_at"]),
            "updated_at": fmt(row["updated_at"])}


def _columns(body: dict) -> dict:
    values = {}
    if "name" in body:
        values["name"] = body["name"].strip()
    if "caption" in body:
        values["caption"] = body["caption"]
    for field in ("hashtags", "platforms", "options"):
        if field in body:
            values[field] = json.dumps(body[field]) if body[field] is not None else None
    return values


def _owned(conn, rt: Runtime, user_id: int, template_id: int):
    row = user_items.get(conn, rt.tables.templates, user_id, template_id)
    if row is None:
        raise NotFound("This template was not found.", code="template_not_found")
    return row


def list_templates(rt: Runtime, user_id: int) -> dict:
    with rt.engine.connect() as conn:
        rows = user_items.list_for(conn, rt.tables.templates, user_id, MAX_PER_USER)
    return {"success": True, "templates": [template_view(r) for r in rows]}


def create_template(rt: Runtime, user_id: int, body: dict) -> dict:
    t = rt.tables.templates
    now = utcnow()
    with rt.engine.begin() as conn:
        if user_items.count_for(conn, t, user_id) >= MAX_PER_USER:
            raise Conflict(f"You already have {MAX_PER_USER} templates; delete one before adding another.",
                           code="template_limit_reached")
        template_id = user_items.add(conn, t, user_id, {**_columns(body), "created_at": now, "updated_at": now})
        row = _owned(conn, rt, user_id, template_id)
    return {"success": True, "template": template_view(row)}


def update_template(rt: Runtime, user_id: int, template_id: int, body: dict) -> dict:
    t = rt.tables.templates
    with rt.engine.begin() as conn:
        _owned(conn, rt, user_id, template_id)
        values = _columns(body)
        if values:
            user_items.change(conn, t, user_id, template_id, {**values, "updated_at": utcnow()})
        row = _owned(conn, rt, user_id, template_id)
    return {"success": True, "template": template_view(row)}


def delete_template(rt: Runtime, user_id: int, template_id: int) -> dict:
    with rt.engine.begin() as conn:
        if not user_items.remove(conn, rt.tables.templates, user_id, template_id):
            raise NotFound("This template was not found.", code="template_not_found")
    return {"success": True, "message": "Template deleted", "id": template_id}
