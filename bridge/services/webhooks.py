"""Inbound webhooks from TikTok and Meta.

Signatures are checked on the raw body before anything is parsed; a repeated delivery (same raw
body) is recorded once and ignored after. Events never write a post's status directly: they wake
the post so the engine reads the platform's status (one writer of status), and they mark an
account whose authorization was removed as needing reconnection.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from bridge.errors import ApiError, Unauthorized
from bridge.runtime import Runtime
from bridge.services import scheduler
from bridge.store.db import utcnow

log = logging.getLogger(__name__)


def _first_time(rt: Runtime, source: str, body: bytes) -> bool:
    key = hashlib.sha256(body).hexdigest()
    try:
        with rt.engine.begin() as conn:
            conn.execute(insert(rt.tables.webhook_events).values(source=source, event_key=key, received_at=utcnow()))
        return True
    except IntegrityError:
        return False


def _require_json(content_type: str | None) -> None:
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError("Webhook bodies must be application/json.", status=415, code="unsupported_media_type")


def _mark_reconnect(rt: Runtime, platform: str, account_id: str, reason: str) -> int:
    a = rt.tables.accounts
    with rt.engine.begin() as conn:
        return conn.execute(update(a).where(a.c.platform == platform, a.c.account_id == account_id,
                                            a.c.is_active == 1)
                            .values(needs_reconnect=1, reconnect_reason=reason[:255], updated_at=utcnow())).rowcount


def _wake_by_checkpoint(rt: Runtime, platform: str, key: str, value: str) -> list[int]:
    """Wake the posts whose checkpoint holds `key: value` (e.g. a TikTok publish_id)."""
    p = rt.tables.posts
    needle = json.dumps({key: value})[1:-1]  # '"publish_id": "v_pub..."' as json.dumps writes it
    with rt.engine.connect() as conn:
        ids = conn.execute(select(p.c.id).where(p.c.platform == platform, p.c.status == "publishing",
                                                p.c.metadata.contains(needle, autoescape=True))).scalars().all()
    for post_id in ids:
        with rt.engine.begin() as conn:
            conn.execute(update(p).where(p.c.id == post_id, p.c.status == "publishing")
                         .values(next_attempt_at=utcnow()))
        scheduler.enqueue_now(rt, post_id)
    return list(ids)


def tiktok(rt: Runtime, headers, body: bytes) -> dict:
    from bridge.platforms.tiktok import verify_webhook

    _require_json(headers.get("Content-Type"))
    secret = rt.settings.credentials["tiktok"].client_secret or (
        "sandbox-tiktok-secret" if rt.settings.sandbox else None)
    if not secret or not verify_webhook(secret, headers.get("TikTok-Signature") or "", body, time.time()):
        raise Unauthorized("The webhook signature is missing, wrong or too old.", code="invalid_signature")
    if not _first_time(rt, "tiktok", body):
        return {"success": True, "message": "Already handled"}
    try:
        event = json.loads(body)
        content = json.loads(event.get("content") or "{}") if isinstance(event.get("content"), str) else (
            event.get("content") or {})
    except ValueError:
        raise ApiError("The webhook body is not valid JSON.", status=400, code="invalid_json") from None
    name = event.get("event", "")
    woken: list[int] = []
    if name.startswith("post.publish.") and content.get("publish_id"):
        woken = _wake_by_checkpoint(rt, "tiktok", "publish_id", str(content["publish_id"]))
    elif name == "authorization.removed" and event.get("user_openid"):
        if _mark_reconnect(rt, "tiktok", str(event["user_openid"]),
                           "TikTok removed the authorization; connect the account again."):
            log.info("tiktok authorization removed")
    return {"success": True, "message": "Handled", "event": name, "posts": woken}


def meta_verify(rt: Runtime, params) -> str:
    from bridge.platforms.meta import verify_subscription

    expected = rt.settings.meta_webhook_verify_token
    challenge = verify_subscription(params, expected) if expected else None
    if challenge is None:
        raise ApiError("The verify token does not match.", status=403, code="invalid_verify_token")
    return challenge


def meta(rt: Runtime, headers, body: bytes) -> dict:
    from bridge.platforms.meta import verify_signature

    _require_json(headers.get("Content-Type"))
    signature = headers.get("X-Hub-Signature-256") or ""
    secrets = {c.client_secret for p, c in rt.settings.credentials.items()
               if p in ("instagram", "facebook") and c.client_secret}
    if rt.settings.sandbox:
        secrets |= {"sandbox-instagram-secret", "sandbox-facebook-secret"}
    if not any(verify_signature(secret, signature, body) for secret in secrets):
        raise Unauthorized("The webhook signature is missing or wrong.", code="invalid_signature")
    if not _first_time(rt, "meta", body):
        return {"success": True, "message": "Already handled"}
    try:
        payload = json.loads(body)
    except ValueError:
        raise ApiError("The webhook body is not valid JSON.", status=400, code="invalid_json") from None
    platform = "instagram" if payload.get("object") == "instagram" else "facebook"
    marked = 0
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            if change.get("field") == "permissions" and value.get("verb") == "revoke":
                marked += _mark_reconnect(rt, platform, str(entry.get("id")),
                                          "The permission was removed on Meta; connect the account again.")
    return {"success": True, "message": "Handled", "accounts_marked": marked}
