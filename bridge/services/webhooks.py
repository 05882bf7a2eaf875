"""Inbound webhooks from TikTok and Meta.

Signatures are checked on the raw body before anything is parsed; a repeated delivery (same raw
body) is recorded once and ignored after, unless handling it failed (then the platform's
redelivery is handled). A signed body that is not a JSON object is a 400, never a 500. Events
never write a post's status directly: they wake the post so the engine reads the platform's status
(one writer of status), and they mark an account whose authorization was removed as needing
reconnection.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bridge.errors import ApiError, Unauthorized
from bridge import queue
from bridge.runtime import Runtime
from bridge.store.accounts import mark_needs_reconnect
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


def _forget(rt: Runtime, source: str, body: bytes) -> None:
    """Un-record a delivery whose handling failed, so the platform's redelivery is handled."""
    e = rt.tables.webhook_events
    with rt.engine.begin() as conn:
        conn.execute(delete(e).where(e.c.source == source, e.c.event_key == hashlib.sha256(body).hexdigest()))


def _handle_once(rt: Runtime, source: str, body: bytes, handle) -> dict:
    if not _first_time(rt, source, body):
        return {"success": True, "message": "Already handled"}
    try:
        return handle()
    except Exception:
        _forget(rt, source, body)
        raise


def _json_object(raw) -> dict:
    """A JSON object from bytes or text; anything else (a list, a string, broken JSON) is a 400.
    Signed bodies come from the platform, but a malformed one still never becomes a 500."""
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise ApiError("The webhook body is not a JSON object.", status=400, code="invalid_json")
    return value


def _dicts(value) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _require_json(content_type: str | None) -> None:
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError("Webhook bodies must be application/json.", status=415, code="unsupported_media_type")


def _mark_reconnect(rt: Runtime, platform: str, account_id: str, reason: str) -> int:
    with rt.engine.begin() as conn:
        return mark_needs_reconnect(conn, rt.tables, reason, platform=platform, platform_account_id=account_id)


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
        queue.enqueue_now(rt, post_id)
    return list(ids)


def tiktok(rt: Runtime, headers, body: bytes) -> dict:
    from bridge.platforms.tiktok import verify_webhook

    _require_json(headers.get("Content-Type"))
    secret = rt.settings.credentials["tiktok"].client_secret or (
        "sandbox-tiktok-secret" if rt.settings.sandbox else None)
    if not secret or not verify_webhook(secret, headers.get("TikTok-Signature") or "", body, time.time()):
        raise Unauthorized("The webhook signature is missing, wrong or too old.", code="invalid_signature")
    event = _json_object(body)
    # TikTok sends `content` as a JSON-encoded string; a decoded object is accepted too.
    content = event.get("content")
    if isinstance(content, str):
        try:
            content = json.loads(content) if content else {}
        except ValueError:
            content = {}
    content = content if isinstance(content, dict) else {}
    name = event.get("event") if isinstance(event.get("event"), str) else ""
    publish_id, open_id = content.get("publish_id"), event.get("user_openid")

    def handle() -> dict:
        woken: list[int] = []
        if name.startswith("post.publish.") and isinstance(publish_id, str) and publish_id:
            woken = _wake_by_checkpoint(rt, "tiktok", "publish_id", publish_id)
        elif name == "authorization.removed" and isinstance(open_id, str) and open_id:
            if _mark_reconnect(rt, "tiktok", open_id, "TikTok removed the authorization; connect the account again."):
                log.info("tiktok authorization removed")
        return {"success": True, "message": "Handled", "event": name, "posts": woken}

    return _handle_once(rt, "tiktok", body, handle)


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
    payload = _json_object(body)
    platform = "instagram" if payload.get("object") == "instagram" else "facebook"
    revoked = [str(entry["id"]) for entry in _dicts(payload.get("entry"))
               if isinstance(entry.get("id"), (str, int)) and any(
                   change.get("field") == "permissions" and isinstance(change.get("value"), dict)
                   and change["value"].get("verb") == "revoke" for change in _dicts(entry.get("changes")))]

    def handle() -> dict:
        marked = sum(_mark_reconnect(rt, platform, account_id,
                                     "The permission was removed on Meta; connect the account again.")
                     for account_id in revoked)
        return {"success": True, "message": "Handled", "accounts_marked": marked}

    return _handle_once(rt, "meta", body, handle)
