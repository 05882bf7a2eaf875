"""Inbound webhooks: TikTok's signed events and Meta's handshake and signed events.

The app runs with production settings (no sandbox): the TikTok app's client secret and the Meta
app secrets are configured, and bodies are signed the way the platforms sign them (TikTok's
signature comes from the TikTok emulator, so emulator and bridge are checked against each other).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from rq import Queue
from sqlalchemy import select, update

from bridge.app import create_app
from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.sandbox.core import Sandbox
from tests.conftest import APP_SECRETS, base_env
from tests.factories import add_account, add_post

P = "/wp-json/aurareels/v1/social"
USER = 515
# The suite's known fake app secrets: the secrets watch fails the run if one shows in a response or a log.
TIKTOK_KEY, (TIKTOK_SECRET, INSTAGRAM_SECRET, FACEBOOK_SECRET) = "aw-tiktok-client-key", APP_SECRETS[:3]
VERIFY_TOKEN = "meta-verify-token-3e8a"


@pytest.fixture
def hooks(rt, database_url):
    """A client of an app with the platforms' secrets set and sandbox mode off."""
    settings = Settings.from_env(base_env(
        AURAREELS_DATABASE_URL=database_url, AURAREELS_SANDBOX="0",
        TIKTOK_CLIENT_ID=TIKTOK_KEY, TIKTOK_CLIENT_SECRET=TIKTOK_SECRET,
        INSTAGRAM_APP_ID="ig-app", INSTAGRAM_APP_SECRET=INSTAGRAM_SECRET,
        FACEBOOK_APP_ID="fb-app", FACEBOOK_APP_SECRET=FACEBOOK_SECRET,
        META_WEBHOOK_VERIFY_TOKEN=VERIFY_TOKEN,
    ))
    runtime = Runtime.from_settings(settings, engine=rt.engine)
    return create_app(runtime=runtime).test_client()


@pytest.fixture(scope="module")
def tiktok_emulator():
    emulator = Sandbox(["tiktok"]).emulators["tiktok"]
    emulator.register_app(TIKTOK_KEY, TIKTOK_SECRET)
    return emulator


def account_row(rt, account_id: int):
    a = rt.tables.accounts
    with rt.engine.connect() as conn:
        return conn.execute(select(a).where(a.c.id == account_id)).mappings().first()


def post_row(rt, post_id: int):
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        return conn.execute(select(p).where(p.c.id == post_id)).mappings().first()


def publish_jobs(redis_client) -> list[str]:
    return Queue("publish", connection=redis_client).job_ids


# ------------------------------------------------------------------------------------- TikTok
def tiktok_event(event: str, **fields) -> bytes:
    content = fields.pop("content", {})
    body = {"client_key": TIKTOK_KEY, "event": event, "create_time": int(time.time()),
            "user_openid": fields.pop("user_openid", "openid-nobody"), "content": json.dumps(content), **fields}
    return json.dumps(body).encode()


def send_tiktok(client, emulator, body: bytes, *, signature: str | None = None, timestamp: float | None = None,
                content_type: str = "application/json"):
    signature = signature if signature is not None else emulator.sign_webhook(body, timestamp, TIKTOK_KEY)
    return client.post(f"{P}/webhooks/tiktok", data=body,
                       headers={"Content-Type": content_type, "TikTok-Signature": signature})


def test_tiktok_publish_event_wakes_the_matching_post_once(hooks, rt, tiktok_emulator, redis_client):
    account = add_account(rt, USER, "tiktok")
    checkpoint = {"checkpoint": {"stage": "status", "publish_id": "v_pub_url~v2-1.7401"}}
    post = add_post(rt, USER, account, status="publishing", metadata=json.dumps(checkpoint),
                    next_attempt_at=None)
    other = add_post(rt, USER, account, status="publishing",
                     metadata=json.dumps({"checkpoint": {"stage": "status", "publish_id": "v_pub_url~v2-1.9999"}}))
    body = tiktok_event("post.publish.complete", content={"publish_id": "v_pub_url~v2-1.7401",
                                                          "publish_type": "DIRECT_PUBLISH"})
    answer = send_tiktok(hooks, tiktok_emulator, body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["success"] is True and answer.get_json()["posts"] == [post]
    assert publish_jobs(redis_client) == [f"publish-{post}"]
    woken = post_row(rt, post)
    # the event wakes the engine; it never writes the status itself
    assert woken["status"] == "publishing" and woken["next_attempt_at"] is not None
    assert post_row(rt, other)["next_attempt_at"] is None

    Queue("publish", connection=redis_client).empty()
    replay = send_tiktok(hooks, tiktok_emulator, body)  # same body, freshly signed
    assert replay.status_code == 200 and replay.get_json() == {"success": True, "message": "Already handled"}
    assert publish_jobs(redis_client) == []


def test_tiktok_event_for_a_finished_post_changes_nothing(hooks, rt, tiktok_emulator, redis_client):
    account = add_account(rt, USER, "tiktok")
    post = add_post(rt, USER, account, status="published",
                    metadata=json.dumps({"checkpoint": {"publish_id": "v_pub_done"}}))
    answer = send_tiktok(hooks, tiktok_emulator,
                         tiktok_event("post.publish.complete", content={"publish_id": "v_pub_done"}))
    assert answer.status_code == 200 and answer.get_json()["posts"] == []
    assert publish_jobs(redis_client) == [] and post_row(rt, post)["status"] == "published"


def test_tiktok_authorization_removed_marks_the_account(hooks, rt, tiktok_emulator):
    account = add_account(rt, USER, "tiktok", account_id="openid-creator-1")
    bystander = add_account(rt, USER + 1, "tiktok", account_id="openid-creator-2")
    body = tiktok_event("authorization.removed", user_openid="openid-creator-1", content={"reason": 1})
    answer = send_tiktok(hooks, tiktok_emulator, body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    row = account_row(rt, account)
    assert row["needs_reconnect"] == 1 and "TikTok" in row["reconnect_reason"]
    assert account_row(rt, bystander)["needs_reconnect"] == 0

    a = rt.tables.accounts
    with rt.engine.begin() as conn:  # the creator reconnects; a replayed event must not undo that
        conn.execute(update(a).where(a.c.id == account).values(needs_reconnect=0, reconnect_reason=None))
    replay = send_tiktok(hooks, tiktok_emulator, body)
    assert replay.status_code == 200 and replay.get_json()["message"] == "Already handled"
    assert account_row(rt, account)["needs_reconnect"] == 0


@pytest.mark.parametrize("case", ["wrong secret", "tampered body", "no header", "garbage header", "old timestamp",
                                  "future timestamp"])
def test_tiktok_bad_signatures_are_401(hooks, rt, tiktok_emulator, case):
    account = add_account(rt, USER, "tiktok", account_id="openid-victim")
    body = tiktok_event("authorization.removed", user_openid="openid-victim")
    now = time.time()
    signature = {
        "wrong secret": lambda: _tiktok_signature("not-the-secret", body, now),
        "tampered body": lambda: tiktok_emulator.sign_webhook(body.replace(b"victim", b"victin"), now, TIKTOK_KEY),
        "no header": lambda: "",
        "garbage header": lambda: "t=abc,s=zz",
        "old timestamp": lambda: tiktok_emulator.sign_webhook(body, now - 301, TIKTOK_KEY),
        "future timestamp": lambda: tiktok_emulator.sign_webhook(body, now + 301, TIKTOK_KEY),
    }[case]()
    answer = send_tiktok(hooks, tiktok_emulator, body, signature=signature)
    assert answer.status_code == 401
    assert answer.get_json() == {"success": False, "code": "invalid_signature", "message": answer.get_json()["message"]}
    assert account_row(rt, account)["needs_reconnect"] == 0
    # a refused delivery is not remembered: the genuine one that follows is handled
    assert send_tiktok(hooks, tiktok_emulator, body).get_json()["message"] == "Handled"


def test_tiktok_timestamp_inside_five_minutes_is_accepted(hooks, tiktok_emulator):
    body = tiktok_event("post.publish.inbox_delivered", content={"publish_id": "v_inbox"})
    assert send_tiktok(hooks, tiktok_emulator, body, timestamp=time.time() - 240).status_code == 200


def test_tiktok_sandbox_secret_is_refused_outside_sandbox(hooks):
    body = tiktok_event("authorization.removed", user_openid="openid-x")
    answer = send_tiktok(hooks, None, body, signature=_tiktok_signature("sandbox-tiktok-secret", body, time.time()))
    assert answer.status_code == 401


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_tiktok_wrong_content_type_is_415(hooks, tiktok_emulator, content_type):
    body = tiktok_event("post.publish.complete", content={"publish_id": "v_x"})
    answer = send_tiktok(hooks, tiktok_emulator, body, content_type=content_type)
    assert answer.status_code == 415 and answer.get_json()["code"] == "unsupported_media_type"


def test_tiktok_json_charset_is_accepted(hooks, tiktok_emulator):
    body = tiktok_event("post.publish.complete", content={"publish_id": "v_charset"})
    answer = send_tiktok(hooks, tiktok_emulator, body, content_type="application/json; charset=utf-8")
    assert answer.status_code == 200


@pytest.mark.parametrize("body", [b"not json", b"[]", b'"text"', b'{"event": 5, "content": "[1]"}',
                                  b'{"event": "post.publish.complete", "content": "{not json"}',
                                  b'{"event": "authorization.removed", "user_openid": {"a": 1}}'])
def test_tiktok_signed_but_malformed_body_is_never_a_500(hooks, tiktok_emulator, body):
    answer = send_tiktok(hooks, tiktok_emulator, body)
    assert answer.status_code in (200, 400), answer.get_data(as_text=True)
    assert answer.get_json()["success"] is (answer.status_code == 200)


def test_tiktok_malformed_body_is_not_remembered(hooks, tiktok_emulator):
    """A body refused as malformed is not recorded as handled (a redelivery gets the same answer)."""
    body = b"[1, 2]"
    assert send_tiktok(hooks, tiktok_emulator, body).status_code == 400
    assert send_tiktok(hooks, tiktok_emulator, body).status_code == 400


def test_tiktok_delivery_that_failed_is_handled_when_redelivered(hooks, rt, tiktok_emulator, monkeypatch):
    from bridge.services import webhooks

    account = add_account(rt, USER, "tiktok", account_id="openid-flaky")
    real = webhooks._mark_reconnect

    def database_hiccup(*args, **kwargs):
        monkeypatch.setattr(webhooks, "_mark_reconnect", real)
        raise RuntimeError("connection dropped")

    monkeypatch.setattr(webhooks, "_mark_reconnect", database_hiccup)
    body = tiktok_event("authorization.removed", user_openid="openid-flaky")
    assert send_tiktok(hooks, tiktok_emulator, body).status_code == 500
    again = send_tiktok(hooks, tiktok_emulator, body)  # TikTok retries a delivery that was not answered 200
    assert again.status_code == 200 and again.get_json()["message"] == "Handled"
    assert account_row(rt, account)["needs_reconnect"] == 1


def _tiktok_signature(secret: str, body: bytes, stamp: float) -> str:
    stamp_text = str(int(stamp))
    return f"t={stamp_text},s=" + hmac.new(secret.encode(), stamp_text.encode() + b"." + body,
                                           hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------- Meta
def meta_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_meta(client, body: bytes, secret: str = INSTAGRAM_SECRET, *, signature: str | None = None,
              content_type: str = "application/json"):
    return client.post(f"{P}/webhooks/meta", data=body, headers={
        "Content-Type": content_type,
        "X-Hub-Signature-256": meta_signature(secret, body) if signature is None else signature})


def revoke_event(obj: str, entry_id: str) -> bytes:
    return json.dumps({"object": obj, "entry": [{"id": entry_id, "time": int(time.time()), "changes": [
        {"field": "permissions", "value": {"verb": "revoke", "target_ids": [entry_id]}}]}]}).encode()


def test_meta_handshake_echoes_the_challenge(hooks):
    answer = hooks.get(f"{P}/webhooks/meta?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"
                       f"&hub.challenge=1158201444")
    assert answer.status_code == 200
    assert answer.mimetype == "text/plain" and answer.get_data(as_text=True) == "1158201444"
    # the same through the route without the WordPress prefix
    plain = hooks.get(f"/aurareels/v1/social/webhooks/meta?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"
                      f"&hub.challenge=42")
    assert plain.status_code == 200 and plain.get_data(as_text=True) == "42"


@pytest.mark.parametrize("query", [
    "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
    f"hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1",
    "hub.mode=subscribe&hub.challenge=1",
    f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}",
    "",
])
def test_meta_handshake_refused_is_403_envelope(hooks, query):
    answer = hooks.get(f"{P}/webhooks/meta?{query}")
    assert answer.status_code == 403
    body = answer.get_json()
    assert body["success"] is False and body["code"] == "invalid_verify_token" and body["message"]


def test_meta_handshake_without_configured_token_is_refused(rt, database_url):
    settings = Settings.from_env(base_env(AURAREELS_DATABASE_URL=database_url))  # no META_WEBHOOK_VERIFY_TOKEN
    client = create_app(runtime=Runtime.from_settings(settings, engine=rt.engine)).test_client()
    answer = client.get(f"{P}/webhooks/meta?hub.mode=subscribe&hub.verify_token=&hub.challenge=1")
    assert answer.status_code == 403


@pytest.mark.parametrize("platform,obj,secret", [("instagram", "instagram", INSTAGRAM_SECRET),
                                                 ("facebook", "page", FACEBOOK_SECRET)])
def test_meta_permission_revoke_marks_the_account_once(hooks, rt, platform, obj, secret):
    account = add_account(rt, USER, platform, account_id="17841400000000001")
    other_platform = add_account(rt, USER, "facebook" if platform == "instagram" else "instagram",
                                 account_id="17841400000000001")
    body = revoke_event(obj, "17841400000000001")
    answer = send_meta(hooks, body, secret)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["success"] is True and answer.get_json()["accounts_marked"] == 1
    assert account_row(rt, account)["needs_reconnect"] == 1
    assert account_row(rt, other_platform)["needs_reconnect"] == 0

    a = rt.tables.accounts
    with rt.engine.begin() as conn:
        conn.execute(update(a).where(a.c.id == account).values(needs_reconnect=0))
    replay = send_meta(hooks, body, secret)
    assert replay.status_code == 200 and replay.get_json()["message"] == "Already handled"
    assert account_row(rt, account)["needs_reconnect"] == 0


def test_meta_other_events_are_acknowledged(hooks, rt):
    body = json.dumps({"object": "instagram", "entry": [{"id": "1784", "time": 1, "changes": [
        {"field": "comments", "value": {"id": "c1", "text": "nice"}}]}]}).encode()
    answer = send_meta(hooks, body)
    assert answer.status_code == 200 and answer.get_json()["accounts_marked"] == 0


@pytest.mark.parametrize("case", ["wrong secret", "no header", "sha1 header", "tampered body", "sandbox secret"])
def test_meta_bad_signature_is_401(hooks, rt, case):
    account = add_account(rt, USER, "instagram", account_id="1784-victim")
    body = revoke_event("instagram", "1784-victim")
    signature = {
        "wrong secret": meta_signature("not-the-secret", body),
        "no header": "",
        "sha1 header": "sha1=" + hmac.new(INSTAGRAM_SECRET.encode(), body, hashlib.sha1).hexdigest(),
        "tampered body": meta_signature(INSTAGRAM_SECRET, body.replace(b"victim", b"victin")),
        "sandbox secret": meta_signature("sandbox-instagram-secret", body),
    }[case]
    answer = send_meta(hooks, body, signature=signature)
    assert answer.status_code == 401
    assert answer.get_json()["success"] is False and answer.get_json()["code"] == "invalid_signature"
    assert account_row(rt, account)["needs_reconnect"] == 0
    assert send_meta(hooks, body).get_json()["message"] == "Handled"


def test_meta_wrong_content_type_is_415(hooks):
    body = revoke_event("instagram", "1784")
    answer = send_meta(hooks, body, content_type="text/plain")
    assert answer.status_code == 415 and answer.get_json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize("body", [b"not json", b"[]", b"null", b'{"object": "page", "entry": "x"}',
                                  b'{"object": "page", "entry": [1, null, {"changes": "x"}]}',
                                  b'{"object": "page", "entry": [{"id": 1, "changes": [null, {"value": 3}]}]}'])
def test_meta_signed_but_malformed_body_is_never_a_500(hooks, body):
    answer = send_meta(hooks, body)
    assert answer.status_code in (200, 400), answer.get_data(as_text=True)
    assert answer.get_json()["success"] is (answer.status_code == 200)
