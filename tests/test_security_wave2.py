"""Security, second round: what held when the bridge was tried as an attacker would, and what did not.

Each finding is reproduced as the attack first, then shown refused, with the defaults as shipped:

1. OAuth connect could attach a victim's account to an attacker (the pending-link flow);
2. media downloads had no bound (size, time, decoding, Range ignored);
4. no rate limits (create routes, `scheduled_at` years ahead, a `/health` that scanned Redis);
5. the smaller ones: the queue dashboard's CSRF and framing, webhook signatures that were not
   ASCII, times that overflow, secrets in the access log, the platform's text in the callback's
   redirect, JSONP on the WordPress routes, tokens left after a disconnect, the sandbox's control
   API without a key.

(Finding 3, options that broke the worker, is the platforms' and the engine's.)
"""
from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

import bridge.platforms.media as media
from bridge.platforms.base import TokenSet
from bridge.platforms.errors import RateLimited, Reauthorize, Transient
from bridge.platforms.media import MediaError, MediaSource
from bridge.services import oauth
from bridge.services.oauth import LINK_TTL, _link_key
from bridge.store.db import utcnow
from tests.conftest import INTERNAL_KEY, auth, wait_for
from tests.factories import add_account, add_post, add_video, later
from tests.hostile_media import HostileMediaServer
from tests.oauth_flow import confirm, finish, landed
from tests.test_security import _accounts_of, _callback, _consent, _params, _start

P = "/wp-json/aurareels/v1/social"
ATTACKER, VICTIM, OTHER = 811, 812, 813
ROOT = Path(__file__).resolve().parents[1]


def count_accounts(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(rt.tables.accounts)).scalar()


def count_posts(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(rt.tables.posts)).scalar()


def app_with(rt, **overrides):
    """An app on the test database and Redis with some settings changed."""
    from bridge.app import create_app
    from bridge.runtime import Runtime

    runtime = Runtime.from_settings(rt.settings.with_overrides(**overrides), engine=rt.engine)
    runtime._redis = rt.redis
    application = create_app(runtime=runtime)
    application.testing = True
    return application


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    body = response.get_json()
    assert body["success"] is False and body["code"] == code and body["message"], body
    return body


# ======================================================================= 1. OAuth: pending links
def test_attack_with_confirmation_off_the_creators_account_lands_on_the_attacker(client, rt, monkeypatch):
    """The attack as found, with the seed's immediate flow (`AURAREELS_OAUTH_CONFIRM=0`): the
    attacker starts a connect with their own login and sends the consent link to a creator; the
    creator approves; the creator's account is stored on the attacker's user. This is the risk a
    deployment accepts with 0."""
    monkeypatch.setattr(rt, "settings", rt.settings.with_overrides(oauth_confirm=False))
    start = _start(client, "tiktok", ATTACKER)
    victim_browser = _consent(client, start["auth_url"], user="victim-creator")
    assert _callback(client, "tiktok", _params(victim_browser))["status"] == "success"
    assert len(_accounts_of(rt, ATTACKER)) == 1 and _accounts_of(rt, VICTIM) == []


def test_attack_with_the_defaults_attaches_nothing_to_anyone(client, rt):
    """The same attack with the defaults: the callback keeps a pending link and sends the creator's
    browser to the creator's dashboard, which confirms it with the creator's own login: 404, since
    the creator did not call connect. The attacker never sees the link, and nothing is stored."""
    start = _start(client, "tiktok", ATTACKER)
    victim_browser = _consent(client, start["auth_url"], user="victim-creator")
    arrived = _callback(client, "tiktok", _params(victim_browser))
    assert arrived["status"] == "pending" and arrived["platform"] == "tiktok" and len(arrived["link"]) >= 40
    assert count_accounts(rt) == 0  # the callback attached nothing
    assert_envelope(confirm(client, arrived["link"], VICTIM), 404, "link_not_found")
    assert count_accounts(rt) == 0
    assert client.get(f"{P}/accounts", headers=auth(ATTACKER)).get_json()["accounts"] == []
    assert client.get(f"{P}/accounts", headers=auth(VICTIM)).get_json()["accounts"] == []


def test_the_user_who_connected_confirms_once(client, rt):
    start = _start(client, "tiktok", VICTIM)
    arrived = _callback(client, "tiktok", _params(_consent(client, start["auth_url"], user="creator-own")))
    assert 0 < rt.redis.ttl(_link_key(arrived["link"])) <= LINK_TTL == 900
    assert_envelope(confirm(client, arrived["link"], OTHER), 404, "link_not_found")  # not theirs: it stays
    answer = confirm(client, arrived["link"], VICTIM)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["success"] is True and [a["platform"] for a in body["accounts"]] == ["tiktok"]
    assert body["accounts"] == client.get(f"{P}/accounts", headers=auth(VICTIM)).get_json()["accounts"]
    assert set(body["accounts"][0]) >= {"id", "platform", "account_name", "is_active", "token_expires_at"}
    assert_envelope(confirm(client, arrived["link"], VICTIM), 404, "link_not_found")  # once
    assert len(_accounts_of(rt, VICTIM)) == 1 and _accounts_of(rt, OTHER) == []


def test_a_link_older_than_15_minutes_is_gone(client, rt):
    start = _start(client, "tiktok", VICTIM)
    arrived = _callback(client, "tiktok", _params(_consent(client, start["auth_url"])))
    rt.redis.pexpire(_link_key(arrived["link"]), 1)
    time.sleep(0.05)
    assert_envelope(confirm(client, arrived["link"], VICTIM), 404, "link_not_found")
    assert count_accounts(rt) == 0


@pytest.mark.parametrize("link", ["x", "..%2F..%2Faccounts", "a" * 300, "bridge:oauth:state:abc", "%00" * 30])
def test_forged_links_are_404(client, rt, link):
    response = client.post(f"{P}/accounts/links/{link}/confirm", headers=auth(VICTIM))
    # a link that breaks the path out of the route is the router's 404, in the envelope as well
    assert_envelope(response, 404, "not_found" if "%2F" in link else "link_not_found")


def test_a_pending_link_holds_its_tokens_encrypted(client, rt, secret_watch):
    start = _start(client, "tiktok", VICTIM)
    arrived = _callback(client, "tiktok", _params(_consent(client, start["auth_url"])))
    raw = rt.redis.get(_link_key(arrived["link"])).decode()
    assert raw.startswith("ar2:")
    assert not any(token in raw for token in secret_watch.issued)
    assert "victim" not in raw and "tiktok" not in raw


def test_a_confirmation_the_database_refuses_is_503_and_can_be_retried(client, rt):
    start = _start(client, "tiktok", VICTIM)
    arrived = _callback(client, "tiktok", _params(_consent(client, start["auth_url"])))

    def deadlock(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT INTO WP_AURAREELS_SOCIAL_ACCOUNTS",
                                                  "UPDATE WP_AURAREELS_SOCIAL_ACCOUNTS")):
            raise OperationalError(statement, parameters, Exception("(1213, 'Deadlock found when trying to get lock')"))

    event.listen(rt.engine, "before_cursor_execute", deadlock)
    try:
        assert_envelope(confirm(client, arrived["link"], VICTIM), 503, "database_unavailable")
    finally:
        event.remove(rt.engine, "before_cursor_execute", deadlock)
    assert count_accounts(rt) == 0
    assert [a["platform"] for a in finish(client, f"/?{urlencode(arrived)}", VICTIM)] == ["tiktok"]


# ==================================================================================== 2. media
@pytest.fixture(scope="module")
def hostile():
    server = HostileMediaServer()
    yield server
    server.close()


def test_probe_of_a_2gb_body_without_range_reads_only_its_head(settings, hostile):
    """Found: a server that ignores Range made the 'small' probe read the whole body (3 GB drove the
    API to 8.8 GB). Now the probe streams its head and hangs up."""
    url = hostile.url("/norange.mp4", size=2_000_000_000)
    info = MediaSource(settings, url).probe()
    assert info.size == 2_000_000_000 and info.duration_sec == 20.0
    # what the server managed to push into the sockets' buffers before the probe closed them
    assert hostile.sent["/norange.mp4"] < 64 * 1024 * 1024
    asked = [r for r in hostile.requests if r["path"] == "/norange.mp4"]
    assert asked and all(r["accept_encoding"] == "identity" and r["range"] == "bytes=0-65535" for r in asked)


def test_probe_of_a_body_without_length_reads_only_its_head(settings, hostile):
    info = MediaSource(settings, hostile.url("/nolength.mp4", size=1_500_000_000)).probe()
    assert info.size is None and info.duration_sec == 20.0
    assert hostile.sent["/nolength.mp4"] < 64 * 1024 * 1024


def test_gzip_bomb_is_refused_and_never_inflated(settings, hostile):
    """Found: gzip was decoded (300 KB became ~600 MB). Now identity is asked for, and an encoded
    body is refused unread."""
    with pytest.raises(MediaError) as caught:
        MediaSource(settings, hostile.url("/gzip.mp4", inflated=100_000_000)).probe()
    assert caught.value.code == "media_encoded"
    source = MediaSource(settings, hostile.url("/gzip.mp4", inflated=100_000_000))
    with pytest.raises(MediaError) as caught:
        b"".join(source.iter_range(0, 1_000_000))
    assert caught.value.code == "media_encoded"


def test_a_file_over_the_default_cap_is_refused_unread(settings, hostile):
    assert settings.media_max_bytes == 4 * 1024 ** 3
    sent_before = hostile.sent["/norange.mp4"]
    with pytest.raises(MediaError) as caught:
        MediaSource(settings, hostile.url("/norange.mp4", size=5_000_000_000)).probe()
    assert caught.value.code == "media_too_large"
    assert hostile.sent["/norange.mp4"] - sent_before < 64 * 1024 * 1024
    with pytest.raises(MediaError) as caught:
        next(MediaSource(settings, hostile.url("/nolength.mp4")).iter_range(4 * 1024 ** 3, 4 * 1024 ** 3 + 10))
    assert caught.value.code == "media_too_large"


def test_the_cap_setting_lowers_the_cap(settings, hostile):
    small = settings.with_overrides(media_max_bytes=1_000_000)
    with pytest.raises(MediaError) as caught:
        MediaSource(small, hostile.url("/ranged.mp4", size=2_000_000)).probe()
    assert caught.value.code == "media_too_large"


@pytest.fixture
def quick_bounds(monkeypatch):
    """The same rules with shorter times, so a slow server is dropped within the test's patience."""
    monkeypatch.setattr(media, "GRACE_SECONDS", 1.0)
    monkeypatch.setattr(media, "PROBE_SECONDS", 3.0)
    monkeypatch.setattr(media, "RANGE_SECONDS", 3.0)


def test_a_server_sending_a_byte_a_second_is_dropped_after_the_grace(settings, hostile, quick_bounds):
    """Found: one byte a second held a worker for 15 minutes, again and again. Now the minimum
    rate drops it once the grace has passed, for the probe and for an upload's range alike."""
    started = time.monotonic()
    with pytest.raises(Transient) as caught:
        MediaSource(settings, hostile.url("/slow.mp4", size=10_000, interval=0.2)).probe()
    assert caught.value.code == "media_too_slow"
    assert time.monotonic() - started < 15
    started = time.monotonic()
    with pytest.raises(Transient) as caught:
        b"".join(MediaSource(settings, hostile.url("/slow.mp4", size=10_000, interval=0.2)).iter_range(0, 9_999))
    assert caught.value.code == "media_too_slow"
    assert time.monotonic() - started < 15


def test_a_transfer_past_its_deadline_is_dropped_even_above_the_minimum_rate(settings, hostile, quick_bounds,
                                                                             monkeypatch):
    monkeypatch.setattr(media, "MIN_RATE", 1)
    started = time.monotonic()
    with pytest.raises(Transient) as caught:
        b"".join(MediaSource(settings, hostile.url("/slow.mp4", size=10_000, interval=0.05)).iter_range(0, 9_999))
    assert caught.value.code == "media_too_slow" and "within 3 s" in caught.value.message
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("path", ["/norange.mp4", "/nolength.mp4", "/ranged.mp4"])
def test_a_range_is_read_exactly_whether_or_not_the_server_serves_ranges(settings, hostile, path):
    from bridge.sandbox.media import synthetic_bytes

    size = 3_000_000
    source = MediaSource(settings, hostile.url(path, size=size))
    for start, end in ((0, 99), (1_000_000, 1_999_999), (2_999_000, 2_999_999)):
        pieces = list(source.iter_range(start, end, piece=100_000))
        assert all(len(p) <= 100_000 for p in pieces)
        assert b"".join(pieces) == b"".join(synthetic_bytes(size, 20.0, start, end))


def test_publish_of_a_video_over_the_cap_is_422_and_creates_nothing(client, rt, hostile):
    account = add_account(rt, VICTIM, "tiktok")
    for url, code in ((hostile.url("/norange.mp4", size=5_000_000_000), "media_too_large"),
                      (hostile.url("/gzip.mp4", inflated=100_000_000), "media_encoded")):
        video = add_video(rt, VICTIM, mp4_url=url)
        response = client.post(f"{P}/publish", headers=auth(VICTIM),
                               json={"video_job_id": video, "accounts": [account], "privacy_level": "PUBLIC"})
        assert_envelope(response, 422, code)
    assert count_posts(rt) == 0


def test_publish_of_a_2gb_video_without_range_reads_its_head_only(client, rt, hostile):
    account = add_account(rt, VICTIM, "tiktok")
    before = hostile.sent["/norange.mp4"]
    video = add_video(rt, VICTIM, mp4_url=hostile.url("/norange.mp4", size=2_000_000_000))
    response = client.post(f"{P}/publish", headers=auth(VICTIM), json={"video_job_id": video, "accounts": [account], "privacy_level": "PUBLIC"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert hostile.sent["/norange.mp4"] - before < 64 * 1024 * 1024


def test_a_platform_limit_below_the_cap_still_refuses(client, rt, hostile):
    """Never more than the platform takes: Instagram reels stop at 300 MB, under the 4 GiB cap."""
    account = add_account(rt, VICTIM, "instagram")
    video = add_video(rt, VICTIM, mp4_url=hostile.url("/norange.mp4", size=600_000_000))
    response = client.post(f"{P}/publish", headers=auth(VICTIM), json={"video_job_id": video, "accounts": [account], "privacy_level": "PUBLIC"})
    assert_envelope(response, 422, "video_too_large")


def test_a_server_that_ignores_range_still_uploads_through_the_engine(engine_rt, hostile):
    """A YouTube upload goes in 8 MB chunks: each chunk, from a server that ignores Range, is read
    from the stream skipping to its offset, and the video is published (a real worker process)."""
    from tests.test_engine import USER, connect, final

    account = connect(engine_rt, "youtube")
    video = add_video(engine_rt, USER, mp4_url=hostile.url("/norange.mp4", size=20_000_000))
    response = app_with(engine_rt).test_client().post(f"{P}/publish", headers=auth(USER), json={
        "video_job_id": video, "accounts": [account], "privacy_level": "PUBLIC", "caption": "No Range", "title": "No Range",
        "privacy_level": "PUBLIC"})
    assert response.status_code == 200, response.get_data(as_text=True)
    row = final(engine_rt, response.get_json()["posts"][0]["id"], timeout=90)
    assert row["status"] == "published", (row["error_code"], row["error_message"])


# ========================================================== 4. rate limits, time horizon, /health
def test_a_user_flooding_create_routes_gets_429_with_retry_after(client, rt):
    """Found: one user with 4 threads created ~4,600 scheduled posts in 10 s. Now 60 creates a
    minute per user (connect, publish and schedule share the budget)."""
    assert rt.settings.rate_limit == 60
    for _ in range(60):
        assert client.post(f"{P}/accounts/connect/tiktok", headers=auth(ATTACKER), json={}).status_code == 200
    refused = client.post(f"{P}/accounts/connect/tiktok", headers=auth(ATTACKER), json={})
    body = assert_envelope(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and "60 a minute" in body["message"]
    account = add_account(rt, ATTACKER, "tiktok")
    video = add_video(rt, ATTACKER)
    schedule = client.post(f"{P}/schedule", headers=auth(ATTACKER),
                           json={"video_job_id": video, "accounts": [account], "privacy_level": "PUBLIC", "scheduled_at": later(3)})
    assert_envelope(schedule, 429, "rate_limited")
    assert count_posts(rt) == 0
    # others are not held back, and a bad token is still a 401
    assert client.post(f"{P}/accounts/connect/tiktok", headers=auth(OTHER), json={}).status_code == 200
    assert_envelope(client.post(f"{P}/accounts/connect/tiktok", headers={"Authorization": "Bearer x"}, json={}),
                    401, "invalid_token")


def test_the_rate_limit_setting(rt):
    strict = app_with(rt, rate_limit=2).test_client()
    answers = [strict.post(f"{P}/accounts/connect/tiktok", headers=auth(ATTACKER), json={}).status_code
               for _ in range(3)]
    assert answers == [200, 200, 429]
    off = app_with(rt, rate_limit=0).test_client()
    assert all(off.post(f"{P}/accounts/connect/tiktok", headers=auth(OTHER), json={}).status_code == 200
               for _ in range(70))


def test_a_redis_outage_lets_requests_past_the_limiter(rt, caplog):
    """Fail open: the limiter lets a request through (and says so in the log) when Redis is away;
    a route that needs Redis itself answers its own 503, never a 500."""
    import redis

    from bridge.api.ratelimit import _Limiter

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="bridge.api.ratelimit"):
        assert _Limiter(dead, 1).wait("create", ATTACKER) is None
        assert _Limiter(dead, 1).wait("create", ATTACKER) is None
    assert any("rate limit not applied" in r.getMessage() for r in caplog.records)
    application = app_with(rt)
    application.extensions["bridge"]._redis = dead
    assert_envelope(application.test_client().post(f"{P}/accounts/connect/tiktok", headers=auth(ATTACKER), json={}),
                    503, "queue_unavailable")


def test_scheduled_at_more_than_365_days_ahead_is_422(client, rt):
    """Found: a `scheduled_at` in year 9999 was accepted and parked a Redis job forever."""
    account = add_account(rt, VICTIM, "tiktok")
    video = add_video(rt, VICTIM)
    for when in ("9998-01-01T00:00:00Z", later(366)):
        body = assert_envelope(client.post(f"{P}/schedule", headers=auth(VICTIM), json={
            "video_job_id": video, "accounts": [account], "privacy_level": "PUBLIC", "scheduled_at": when}), 422, "scheduled_too_far")
        assert "scheduled_at" in body["errors"]
    assert count_posts(rt) == 0
    ok = client.post(f"{P}/schedule", headers=auth(VICTIM), json={
        "video_job_id": video, "accounts": [account], "privacy_level": "PUBLIC", "scheduled_at": later(364)})
    assert ok.status_code == 200
    post = ok.get_json()["posts"][0]["id"]
    assert_envelope(client.patch(f"{P}/posts/{post}/reschedule", headers=auth(VICTIM),
                                 json={"scheduled_at": later(400)}), 422, "scheduled_too_far")


def test_health_scans_nothing(client, rt):
    """Found: /health scanned the Redis keyspace for heartbeats (0.6 s at 300k keys, no login
    needed). Now: one ZCOUNT of the workers' beats; no SCAN or KEYS, however many keys there are."""
    from bridge.queue import BEATS_KEY

    with rt.redis.pipeline(transaction=False) as pipe:
        for index in range(20_000):
            pipe.set(f"filler:{index}", "x")
        pipe.execute()
    rt.redis.zadd(BEATS_KEY, {"alive-worker": time.time(), "dead-worker": time.time() - 120,
                              "long-gone": time.time() - 3 * 86400})

    def calls() -> dict:
        stats = rt.redis.info("commandstats")
        return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("scan", "keys", "zcount")}

    before = calls()
    report = client.get(f"{P}/health").get_json()
    after = calls()
    assert report["checks"]["workers"] == {"ok": True, "alive": 1, "ms": report["checks"]["workers"]["ms"]}
    assert after["scan"] == before["scan"] and after["keys"] == before["keys"]
    assert after["zcount"] == before["zcount"] + 1
    assert rt.redis.zscore(BEATS_KEY, "long-gone") is None  # old beats are dropped on the way


# ==================================================================================== 5. smaller
BASIC = {"Authorization": "Basic " + base64.b64encode(f"ops:{INTERNAL_KEY}".encode()).decode()}
RQ = "/aurareels/v1/social/internal/rq"


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"},
    {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"},
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/page"},
], ids=["sec-fetch cross-site", "sec-fetch same-site", "origin", "null origin", "referer"])
def test_queue_dashboard_refuses_cross_site_actions(client, rt, headers):
    """Found: browsers resend Basic credentials by themselves, and the dashboard's actions had no
    CSRF or Origin check: another site could make an operator's browser requeue or delete jobs."""
    response = client.post(f"{RQ}/requeue/publish", headers={**BASIC, **headers})
    assert_envelope(response, 403, "cross_site_request")
    assert response.headers["X-Frame-Options"] == "DENY"


def test_queue_dashboard_actions_are_post_only(client, rt):
    """Found: `/requeue/<queue>` answered GET: an <img> tag anywhere could requeue every failed job."""
    response = client.get(f"{RQ}/requeue/publish", headers=BASIC)
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"
    for action in ("/job/abc/delete", "/job/abc/requeue", "/queue/publish/failed/empty", "/queue/publish/compact"):
        assert client.get(f"{RQ}{action}", headers=BASIC).status_code == 405


def test_queue_dashboard_works_from_its_own_pages_and_is_never_framed(client, rt):
    same_origin = client.post(f"{RQ}/requeue/publish", headers={**BASIC, "Origin": "http://localhost",
                                                                 "Sec-Fetch-Site": "same-origin"})
    assert same_origin.status_code == 200, same_origin.get_data(as_text=True)[:200]
    page = client.get(f"{RQ}/", headers=BASIC)
    assert page.status_code == 200 and b"<html" in page.data.lower()
    linked = client.get(f"{RQ}/", headers={**BASIC, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                          "Sec-Fetch-Dest": "document"})
    assert linked.status_code == 200  # a link from elsewhere may open the page in a tab...
    framed = client.get(f"{RQ}/", headers={**BASIC, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                          "Sec-Fetch-Dest": "iframe"})
    assert framed.status_code == 403  # ...never in a frame
    for response in (same_origin, page, linked, framed, client.get(f"{RQ}/")):
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


@pytest.mark.parametrize("signature", ["t=1700000000,s=\xe9\xe9", "t=\xb2\xb3,s=abc", "t=1,s=" + "a" * 5000,
                                       "t=" + "9" * 5000 + ",s=abc", "\xff"])
def test_tiktok_webhook_with_a_hostile_signature_is_401(client, rt, signature):
    """Found: a non-ASCII TikTok-Signature answered 500 with two tracebacks."""
    response = client.post(f"{P}/webhooks/tiktok", data=b'{"event": "x"}',
                           headers={"Content-Type": "application/json", "TikTok-Signature": signature})
    assert_envelope(response, 401, "invalid_signature")


@pytest.mark.parametrize("signature", ["sha256=\xe9" * 3, "sha256=" + "\xff" * 64, "sha256=" + "a" * 5000])
def test_meta_webhook_with_a_hostile_signature_is_401(client, rt, signature):
    response = client.post(f"{P}/webhooks/meta", data=b'{"object": "page"}',
                           headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature})
    assert_envelope(response, 401, "invalid_signature")


OVERFLOWING = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]


@pytest.mark.parametrize("when", OVERFLOWING)
def test_times_that_overflow_in_utc_are_422_everywhere(client, rt, when):
    """Found: `scheduled_at "9999-12-31T23:59:59-14:00"` answered 500: in UTC it is in year 10000."""
    account = add_account(rt, VICTIM, "tiktok")
    video = add_video(rt, VICTIM)
    post = add_post(rt, VICTIM, account)
    assert_envelope(client.post(f"{P}/schedule", headers=auth(VICTIM), json={
        "video_job_id": video, "accounts": [account], "privacy_level": "PUBLIC", "scheduled_at": when}), 422, "invalid_datetime")
    assert_envelope(client.patch(f"{P}/posts/{post}/reschedule", headers=auth(VICTIM), json={"scheduled_at": when}),
                    422, "invalid_datetime")
    assert_envelope(client.get(f"{P}/posts?{urlencode({'from': when})}", headers=auth(VICTIM)), 422,
                    "invalid_datetime")
    assert_envelope(client.post(f"{P}/internal/publish-scheduled", headers={"X-API-Key": INTERNAL_KEY},
                                json={"post_id": post, "scheduled_at": when}), 422, "invalid_scheduled_at")
    youtube = add_account(rt, VICTIM, "youtube")
    assert_envelope(client.post(f"{P}/publish", headers=auth(VICTIM), json={
        "video_job_id": video, "accounts": [youtube], "title": "t", "options": {"publish_at": when}}),
        422, "invalid_publish_at")


def test_naive_times_that_overflow_in_the_site_zone_are_422(rt):
    zoned = app_with(rt, timezone="America/Los_Angeles").test_client()
    assert_envelope(zoned.get(f"{P}/posts?{urlencode({'to': '9999-12-31 23:59:59'})}", headers=auth(VICTIM)), 422,
                    "invalid_datetime")


def test_platform_answers_that_would_overflow_a_time_are_bounded():
    """Lifetimes and waits from a platform become datetimes later on: absurd ones are bounded."""
    assert TokenSet.expiry(10 ** 30) is None and TokenSet.expiry("9" * 5000) is None
    assert TokenSet.expiry(3600) is not None
    assert RateLimited("x", retry_after=float("inf")).retry_after == RateLimited.MAX_WAIT
    assert RateLimited("x", retry_after=1e300).retry_after == RateLimited.MAX_WAIT
    assert RateLimited("x", retry_after=float("nan")).retry_after == 60.0
    assert utcnow() + timedelta(seconds=RateLimited("x", retry_after=1e300).retry_after)


def test_the_access_log_never_shows_a_verify_token_or_a_code(rt, caplog):
    """Found: Meta's `hub.verify_token` was written to the access log. Every server log line now
    passes the redactor: `*_token`, `code`, `client_secret` values are masked."""
    import threading

    import httpx
    from werkzeug.serving import make_server

    from bridge.logs import JsonFormatter

    verify = "verify-me-Zk29xQ-unique"
    application = app_with(rt, meta_webhook_verify_token=verify)
    server = make_server("127.0.0.1", 0, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}{P}"
    try:
        with caplog.at_level(logging.INFO):
            answer = httpx.get(f"{base}/webhooks/meta", params={"hub.mode": "subscribe", "hub.verify_token": verify,
                                                                "hub.challenge": "4242"})
            assert answer.status_code == 200 and answer.text == "4242"
            httpx.get(f"{base}/callback/tiktok", params={"code": "code-Qw81-secret", "state": "s",
                                                         "client_secret": "cs-Lm40-secret", "id_token": "idt-Hh20"})

            def access_lines():
                return [r for r in caplog.records if r.name == "werkzeug" and f"GET {P}/" in r.getMessage()]

            access = wait_for(lambda: len(access_lines()) == 2 and access_lines())  # written after the answer
    finally:
        server.shutdown()
        server.server_close()
    for record in caplog.records:
        for text in (record.getMessage(), JsonFormatter().format(record)):
            for secret in (verify, "code-Qw81-secret", "cs-Lm40-secret", "idt-Hh20"):
                assert secret not in text, text
    assert "hub.verify_token=[redacted]" in access[0].getMessage()


def test_gunicorns_access_log_is_redacted_too():
    from bridge.logs import redact_server_logs

    redact_server_logs()
    logger = logging.getLogger("gunicorn.access")
    record = logger.makeRecord("gunicorn.access", logging.INFO, __file__, 1, '%(h)s "%(r)s" %(s)s',
                               ({"h": "10.0.0.1", "r": "GET /webhooks/meta?hub.verify_token=abcdef123 HTTP/1.1",
                                 "s": "200"},), None)
    assert all(f.filter(record) for f in logger.filters)
    assert record.getMessage() == '10.0.0.1 "GET /webhooks/meta?hub.verify_token=[redacted] HTTP/1.1" 200'


def test_callback_error_redirect_carries_a_fixed_message_not_the_platforms_text(client, rt):
    """Found: the callback put the platform's `error_description` in the dashboard's URL: anyone with
    a state of their own can craft a callback link that shows their text on the site."""
    phishing = "Your account is suspended. Call +1 555 0100 now"
    for error, expected in (("access_denied", "You declined the connection."),
                            ("server_error", "The platform could not complete the sign-in right now; try again in "
                                             "a moment."),
                            ("anything_else", "The platform refused the connection; start connecting again.")):
        start = _start(client, "tiktok", ATTACKER)
        response = client.get(f"{P}/callback/tiktok?" + urlencode({
            "error": error, "error_description": phishing, "error_reason": phishing, "state": start["state"]}))
        assert response.status_code == 302
        assert "suspended" not in response.headers["Location"] and "555" not in response.headers["Location"]
        assert landed(response.headers["Location"]) == {"status": "error", "platform": "tiktok", "message": expected}


def test_wordpress_plugin_refuses_jsonp_on_its_routes():
    """Found: `?_jsonp=cb` on the proxied routes answered JavaScript on the site's origin. The plugin
    turns JSONP off for its namespace (WordPress then answers 400 rest_callback_disabled)."""
    source = (ROOT / "wordpress" / "aurareels-social-bridge.php").read_text()
    assert "add_filter( 'rest_jsonp_enabled', 'aurareels_social_bridge_jsonp_enabled'" in source
    php = shutil.which("php")
    if php is None:
        pytest.fail("php-cli is needed to run the plugin's filter: apt-get install -y php-cli", pytrace=False)
    harness = """<?php
define('ABSPATH', '/tmp/');
class WP_REST_Response {}
function register_activation_hook($f, $c) {}
function add_action(...$a) {}
function add_filter($name, $cb, ...$rest) { $GLOBALS['filters'][$name] = $cb; }
function wp_unslash($v) { return $v; }
require $argv[1];
$GLOBALS['wp'] = new stdClass();
$answers = array();
foreach (array_slice($argv, 2) as $route) {
  $GLOBALS['wp']->query_vars = array('rest_route' => $route);
  $answers[$route] = call_user_func($GLOBALS['filters']['rest_jsonp_enabled'], true);
}
echo json_encode($answers);
"""
    script = Path(__import__("tempfile").mkdtemp()) / "jsonp.php"
    script.write_text(harness)
    routes = ["/aurareels/v1/social/accounts", "/AuraReels/V1/Social/posts/7", "//aurareels/v1/social",
              "/aurareels/v1/social", "/wp/v2/posts", "/aurareels/v1/socialite"]
    ran = subprocess.run([php, str(script), str(ROOT / "wordpress" / "aurareels-social-bridge.php"), *routes],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {routes[0]: False, routes[1]: False, routes[2]: False, routes[3]: False,
                                      routes[4]: True, routes[5]: True}


def test_disconnect_revokes_then_removes_the_tokens(client, rt):
    """Found: disconnect left the encrypted tokens in the row (the seed says 'disconnect and remove')."""
    from bridge.sandbox.core import shared_sandbox
    from bridge.services.vault import reencrypt_all

    start = _start(client, "tiktok", VICTIM)
    account_id = finish(client, _consent_and_callback(client, start), VICTIM)[0]["id"]
    a = rt.tables.accounts
    with rt.engine.connect() as conn:
        row = conn.execute(select(a).where(a.c.id == account_id)).mappings().one()
    assert row["access_token"].startswith("ar2:") and row["refresh_token"]
    sandbox = shared_sandbox()
    seen = len(sandbox.requests("tiktok"))
    answer = client.delete(f"{P}/accounts/{account_id}", headers=auth(VICTIM)).get_json()
    assert answer["success"] is True and answer["revoked"] is True
    assert any(r["path"] == "/v2/oauth/revoke/" for r in sandbox.requests("tiktok")[seen:])
    with rt.engine.connect() as conn:
        row = conn.execute(select(a).where(a.c.id == account_id)).mappings().one()
    assert (row["access_token"], row["refresh_token"], row["is_active"]) == ("", None, 0)
    # every reader copes with a row without tokens
    with pytest.raises(Reauthorize):
        oauth.account_ref(rt, row)
    calls = len(sandbox.requests("tiktok"))
    assert oauth.refresh_account(rt, account_id, force=True)["access_token"] == ""
    assert len(sandbox.requests("tiktok")) == calls
    assert reencrypt_all(rt)["failed"] == 0
    assert_envelope(client.post(f"{P}/accounts/{account_id}/refresh", headers=auth(VICTIM), json={}), 404,
                    "account_not_found")
    # connecting the same account again brings the row back with new tokens
    again = finish(client, _consent_and_callback(client, _start(client, "tiktok", VICTIM)), VICTIM)
    assert again[0]["id"] == account_id and again[0]["is_active"] is True
    with rt.engine.connect() as conn:
        row = conn.execute(select(a).where(a.c.id == account_id)).mappings().one()
    assert oauth.account_ref(rt, row).access_token


def _consent_and_callback(client, start: dict) -> str:
    response = client.get(f"{P}/callback/tiktok?" + urlencode(_params(_consent(client, start["auth_url"],
                                                                                user="creator-disc"))))
    return response.headers["Location"]


@pytest.mark.parametrize("method,path", [("POST", "/_sandbox/control/reset"), ("GET", "/_sandbox/control/state/tiktok"),
                                         ("POST", "/_sandbox/control/faults")])
def test_sandbox_control_needs_the_internal_key_unless_from_loopback(client, rt, method, path):
    """Found: `AURAREELS_SANDBOX=1` exposed `/_sandbox/control/*` to anyone who could reach the bridge."""
    outside = {"REMOTE_ADDR": "203.0.113.7"}
    body = {"platform": "tiktok", "kind": "status", "times": 0} if path.endswith("faults") else None
    refused = client.open(path, method=method, json=body, environ_base=outside)
    assert_envelope(refused, 401, "invalid_api_key")
    assert_envelope(client.open(path, method=method, json=body, environ_base=outside,
                                headers={"X-API-Key": "wrong"}), 401, "invalid_api_key")
    proxied = client.open(path, method=method, json=body, headers={"X-Forwarded-For": "203.0.113.7"})
    assert_envelope(proxied, 401, "invalid_api_key")  # from loopback, but on behalf of someone else
    for headers, environ in (({"X-API-Key": INTERNAL_KEY}, outside),
                             ({"Authorization": f"Bearer {INTERNAL_KEY}"}, outside),
                             ({}, {"REMOTE_ADDR": "127.0.0.1"}), ({}, {"REMOTE_ADDR": "::1"})):
        allowed = client.open(path, method=method, json=body, headers=headers, environ_base=environ)
        assert allowed.status_code == 200 and allowed.get_json()["ok"] is True
    from bridge.sandbox.core import shared_sandbox

    shared_sandbox().faults.clear()


def test_sandbox_consent_pages_stay_open_to_browsers(client, rt):
    """Only the control API is guarded: the emulators' consent pages are for anyone's browser."""
    start = _start(client, "tiktok", VICTIM)
    path = "/" + start["auth_url"].split("://", 1)[1].split("/", 1)[1]
    assert client.get(path, environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 200


def test_stand_alone_sandbox_server_uses_the_same_check():
    import httpx

    from bridge.sandbox.core import start_server

    server, _, base = start_server(control_key="standalone-key-123")
    try:
        assert httpx.post(f"{base}/_sandbox/control/reset").status_code == 200  # loopback
        proxied = {"X-Forwarded-For": "198.51.100.1"}
        assert httpx.post(f"{base}/_sandbox/control/reset", headers=proxied).status_code == 401
        assert httpx.post(f"{base}/_sandbox/control/reset", headers={
            "X-Forwarded-For": "198.51.100.1", "X-API-Key": "standalone-key-123"}).status_code == 200
    finally:
        server.shutdown()


def test_sandbox_dashboard_page_escapes_what_the_address_carries(rt):
    from bridge.app import create_app
    from bridge.runtime import Runtime

    # the page the bridge serves when it is its own front end (as in `up`)
    own = rt.settings.with_overrides(frontend_url=rt.settings.public_url)
    client = create_app(runtime=Runtime.from_settings(own, engine=rt.engine)).test_client()
    hostile_link = '"><script>alert(1)</script>'
    page = client.get("/dashboard/social-accounts?" + urlencode({"status": "pending", "platform": "<b>x</b>",
                                                                 "link": hostile_link}))
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "<script>alert(1)" not in text and "<b>x</b>" not in text
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["X-Frame-Options"] == "DENY"
    error = client.get("/dashboard/social-accounts?" + urlencode({"status": "error", "message": "<img src=x>"}))
    assert "<img src=x>" not in error.get_data(as_text=True)
