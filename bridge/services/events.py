"""Outbound webhooks: `post.published`, `post.failed`, `account.needs_reconnect`.

Sent to `AURAREELS_WEBHOOK_URL` when it is set, signed with `AURAREELS_WEBHOOK_SECRET`:
`X-AuraReels-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, with a unique
`X-AuraReels-Event-Id` (also in the body) so a receiver can drop repeats. Delivery is an RQ job
retried with backoff; an emit never blocks or fails the publish that caused it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
import uuid

from bridge import queue

log = logging.getLogger(__name__)


def webhook_target() -> tuple[str | None, str | None]:
    return os.environ.get("AURAREELS_WEBHOOK_URL") or None, os.environ.get("AURAREELS_WEBHOOK_SECRET") or None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def emit(rt, event: str, post_id: int) -> None:
    url, _ = webhook_target()
    if not url:
        return
    try:
        queue.deliver_later(rt, event, post_id, uuid.uuid4().hex)
    except Exception as exc:
        log.warning("could not queue webhook %s: %s", event, type(exc).__name__, extra={"post_id": post_id})


def build_payload(rt, event: str, post_id: int, event_id: str) -> dict:
    from sqlalchemy import select

    from bridge.timefmt import fmt

    p = rt.tables.posts
    with rt.engine.connect() as conn:
        row = conn.execute(select(p).where(p.c.id == post_id)).mappings().first()
    post = None
    if row is not None:
        post = {"id": int(row["id"]), "wp_user_id": int(row["wp_user_id"]), "platform": row["platform"],
                "status": row["status"], "social_account_id": int(row["social_account_id"]),
                "video_job_id": row["video_job_id"], "platform_post_id": row["platform_post_id"],
                "platform_post_url": row["platform_post_url"], "published_at": fmt(row["published_at"]),
                "error_code": row["error_code"], "error_message": row["error_message"]}
    return {"id": event_id, "type": event, "created_at": int(time.time()), "post": post}


def deliver(rt, event: str, post_id: int, event_id: str) -> int:
    import httpx

    url, secret = webhook_target()
    if not url:
        return 0
    body = json.dumps(build_payload(rt, event, post_id, event_id)).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "X-AuraReels-Event": event, "X-AuraReels-Event-Id": event_id}
    if secret:
        headers["X-AuraReels-Signature"] = sign(secret, timestamp, body)
    response = httpx.post(url, content=body, headers=headers, timeout=10)
    if response.status_code >= 300:
        raise RuntimeError(f"webhook receiver answered {response.status_code}")  # RQ retries with backoff
    return response.status_code
