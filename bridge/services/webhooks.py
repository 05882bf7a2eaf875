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


class _SaneHeaders:
    """The delivery's headers as the platforms' signature checks read them: a value that is not
    ASCII or is far too long reads as empty. Signatures are short runs of hex and digits, and the
    comparisons (and `int()`) raise on anything else."""

    def __init__(self, headers):
        self._headers = headers

    def get(self, name: str, default=None):
        value = self._headers.get(name)
        if value is None:
            return default
        return value if value.isascii() and len(value) <= 512 else ""


def _clients(rt: Runtime, source: str) -> list:
    """The platform clients whose events arrive at /webhooks/<source> (each declares `webhook`)."""
    from bridge.platforms.registry import client_classes

    return [cls(rt.settings) for cls in client_classes().values() if cls.webhook == source]


def receive(rt: Runtime, source: str, headers, body: bytes) -> dict:
    """A delivery to /webhooks/<source>: checked against the signatures of the platforms that
    use that source, then each platform says what it asks (posts to wake, accounts to mark)."""
    clients = _clients(rt, source)
    _require_json(headers.get("Content-Type"))
    now, signed = time.time(), _SaneHeaders(headers)
    if not clients or not any(client.webhook_signed(signed, body, now) for client in clients):
        raise Unauthorized("The webhook signature is missing, wrong or too old.", code="invalid_signature")
    payload = _json_object(body)
    events = [(client.name, client.read_webhook(payload)) for client in clients]
    events = [(platform, event) for platform, event in events if event is not None]

    def handle() -> dict:
        woken: list[int] = []
        marked = 0
        for platform, event in events:
            for key, value in event.wake:
                woken += _wake_by_checkpoint(rt, platform, key, value)
            for account_id, reason in event.reconnect:
                marked += _mark_reconnect(rt, platform, account_id, reason)
        if marked:
            log.info("%s webhook: %d account(s) need reconnecting", source, marked)
        names = [event.name for _, event in events if event.name]
        return {"success": True, "message": "Handled", "event": names[0] if names else "", "posts": woken,
                "accounts_marked": marked}

    return _handle_once(rt, source, body, handle)


def meta_verify(rt: Runtime, params) -> str:
    from bridge.platforms.meta import verify_subscription

    expected = rt.settings.meta_webhook_verify_token
    challenge = verify_subscription(params, expected) if expected else None
    if challenge is None:
        raise ApiError("The verify token does not match.", status=403, code="invalid_verify_token")
    return challenge
