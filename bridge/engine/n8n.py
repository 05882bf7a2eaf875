"""n8n scheduling mode: tell n8n about a schedule, and answer n8n's wake-up call.

n8n holds the wake-up (a Wait node until the time) and calls the internal endpoint; the bridge
claims the post there, so a duplicate call gets 409, and hands the upload to a worker.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime

import httpx
from sqlalchemy import select

from bridge import queue
from bridge.engine.claim import claim
from bridge.errors import Conflict, NotFound, ValidationFailed
from bridge.runtime import Runtime
from bridge.store import posts as post_rows
from bridge.store.db import utcnow
from bridge.timefmt import fmt, iso_z, parse_request_time

log = logging.getLogger(__name__)


def notify(rt: Runtime, post_id: int) -> str:
    """POST {post_id, scheduled_at, user_id} to N8N_SCHEDULER_WEBHOOK. Raises on failure so RQ
    retries; a post no longer scheduled is not sent."""
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        row = conn.execute(select(p.c.status, p.c.scheduled_at, p.c.wp_user_id).where(p.c.id == post_id)).first()
    if row is None or row.status != "scheduled" or row.scheduled_at is None:
        return "skipped"
    url = rt.settings.n8n_scheduler_webhook
    if not url:
        log.warning("AURAREELS_SCHEDULER=n8n but N8N_SCHEDULER_WEBHOOK is not set; the sweeper will publish",
                    extra={"post_id": post_id})
        return "no_webhook"
    response = httpx.post(url, json=payload(post_id, row.scheduled_at, int(row.wp_user_id)),
                          headers={"X-API-Key": rt.settings.n8n_api_key or ""}, timeout=10)
    if response.status_code >= 300:
        raise RuntimeError(f"n8n answered {response.status_code}")
    return "sent"


def publish_scheduled(rt: Runtime, post_id: int, scheduled_at: str) -> dict:
    """The internal endpoint: publish post `post_id` only if it is still scheduled for exactly
    `scheduled_at` (to the second). Idempotent: a second call finds it claimed or done."""
    try:
        expected = iso_z(parse_request_time(scheduled_at, rt.settings.tz))
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="invalid_scheduled_at", errors={"scheduled_at": [str(exc)]}) from None
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        row = conn.execute(select(p.c.status, p.c.scheduled_at).where(p.c.id == post_id)).first()
    if row is None:
        raise NotFound("This post was not found.", code="post_not_found")
    if row.status == "scheduled" and row.scheduled_at is not None and iso_z(row.scheduled_at) != expected:
        raise Conflict(f"The post was rescheduled to {fmt(row.scheduled_at)} UTC; this wake-up is stale.",
                       code="post_rescheduled")
    if row.status == "cancelled":
        raise Conflict("The post was cancelled.", code="post_cancelled")
    if row.status == "published":
        raise Conflict("The post is already published.", code="post_already_published")
    if row.status == "publishing":
        raise Conflict("The post is already being published.", code="post_publishing")
    if row.status == "failed":
        raise Conflict("The post has failed; retry it from the dashboard.", code="post_failed")
    if row.status == "draft":
        raise Conflict("The post is a draft.", code="post_draft")
    owner = f"internal:{uuid.uuid4().hex[:12]}"
    outcome = claim(rt, post_id, owner, expected)
    if outcome == "stale":
        raise Conflict("The post was rescheduled; this wake-up is stale.", code="post_rescheduled")
    if outcome == "not_due":
        raise Conflict("The post is not due yet.", code="post_not_due")
    if outcome == "busy":
        raise Conflict("The post is already being published.", code="post_publishing")
    if outcome == "missed":
        raise Conflict("The post missed its publishing window and was marked failed.", code="post_missed")
    if outcome != "claimed":
        raise Conflict("The post is no longer scheduled.", code="post_not_scheduled")
    # Claimed here, so a duplicate call gets 409; the upload itself runs on a worker.
    with rt.engine.begin() as conn:
        post_rows.release(conn, rt.tables, post_id, owner, next_attempt_at=utcnow())
    try:
        queue.enqueue_now(rt, post_id)
    except Exception as exc:  # the sweeper starts it from MySQL
        log.warning("queue unavailable: %s", type(exc).__name__, extra={"post_id": post_id})
    return {"success": True, "message": "Publishing started", "post": {"id": post_id, "status": "publishing"}}


def payload(post_id: int, scheduled_at: datetime, user_id: int) -> dict:
    """What n8n's scheduler workflow receives."""
    return {"post_id": post_id, "scheduled_at": iso_z(scheduled_at), "user_id": user_id}
