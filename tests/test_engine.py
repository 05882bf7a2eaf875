"""The publishing engine against real MariaDB, Redis, worker processes and the emulators."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bridge.app import create_app
from bridge.platforms.registry import get_client
from bridge.services import oauth
from bridge.store.db import utcnow
from tests.conftest import INTERNAL_KEY, auth, wait_for
from tests.factories import add_video
from tests.platforms.oauth_driver import consent

P = "/wp-json/aurareels/v1/social"
USER = 501


def connect(rt, platform: str, user_id: int = USER, sandbox_user: str = "creator1") -> int:
    """Connect an account through the real OAuth flow against the shared sandbox."""
    client = get_client(rt.settings, platform)
    verifier, challenge = client.new_pkce()
    params = consent(client.authorization_url("state-x", challenge), user=sandbox_user)
    tokens = client.exchange_code(params["code"], verifier)
    return oauth.upsert_account(rt, user_id, platform, client.fetch_accounts(tokens)[0])


def post_row(rt, post_id):
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        return conn.execute(select(p).where(p.c.id == post_id)).mappings().first()


def final(rt, post_id, timeout=40):
    return wait_for(lambda: (row := post_row(rt, post_id))["status"] in ("published", "failed", "cancelled") and row,
                    timeout=timeout)


def published_on(sandbox, platform: str) -> list:
    return list(sandbox.emulator(platform).published)


@pytest.fixture
def api(engine_rt):
    return create_app(runtime=engine_rt).test_client()


@pytest.fixture
def sandbox(engine_sandbox):
    return engine_sandbox[0]


def publish(api, rt, account_id, **extra):
    video = add_video(rt, USER)
    body = {"video_job_id": video, "accounts": [account_id], "caption": "Engine test", "hashtags": ["#bridge"],
            "privacy_level": "PUBLIC", **extra}
    route = "schedule" if "scheduled_at" in extra else "publish"
    response = api.post(f"{P}/{route}", headers=auth(USER), json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["posts"][0]["id"]


def test_publish_now_reaches_tiktok_once(engine_rt, api, sandbox):
    account = connect(engine_rt, "tiktok")
    post_id = publish(api, engine_rt, account)
    row = final(engine_rt, post_id)
    assert row["status"] == "published", row["error_message"]
    assert row["platform_post_id"] and row["published_at"] is not None
    records = published_on(sandbox, "tiktok")
    assert len(records) == 1
    metadata = json.loads(row["metadata"])
    assert "in_flight" not in metadata and metadata["checkpoint"]


def test_scheduled_post_goes_out_at_its_time(engine_rt, api, sandbox):
    account = connect(engine_rt, "tiktok")
    when = utcnow() + timedelta(seconds=4)
    post_id = publish(api, engine_rt, account, scheduled_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert post_row(engine_rt, post_id)["status"] == "scheduled"
    row = final(engine_rt, post_id)
    assert row["status"] == "published", row["error_message"]
    first_call = min(r["at"] for r in sandbox.requests("tiktok") if "video/init" in r["path"])
    lateness = first_call - when.replace(tzinfo=__import__("datetime").timezone.utc).timestamp()
    assert 0 <= lateness < 3.0, lateness


def test_two_triggers_at_once_publish_once(engine_rt, api, sandbox):
    account = connect(engine_rt, "tiktok")
    when = utcnow() + timedelta(seconds=3)
    post_id = publish(api, engine_rt, account, scheduled_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    wait_for(lambda: utcnow() >= when, timeout=10)
    answers = []

    def call():
        answers.append(api.post(f"{P}/internal/publish-scheduled", headers={"X-API-Key": INTERNAL_KEY},
                                json={"post_id": post_id, "scheduled_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = final(engine_rt, post_id)
    assert row["status"] == "published"
    assert len(published_on(sandbox, "tiktok")) == 1
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) <= 1 and all(c in (200, 409) for c in codes)


def test_rate_limited_step_waits_then_continues(engine_rt, api, sandbox):
    account = connect(engine_rt, "tiktok")
    sandbox.inject("tiktok", kind="rate_limit", path="video/init", retry_after=2, times=1)
    post_id = publish(api, engine_rt, account)
    row = final(engine_rt, post_id, timeout=60)
    assert row["status"] == "published", row["error_message"]
    assert len(published_on(sandbox, "tiktok")) == 1
    assert any(r["fault"] == "rate_limit" for r in sandbox.requests("tiktok"))


def test_rejected_fails_at_once_with_platform_reason(engine_rt, api, sandbox):
    account = connect(engine_rt, "tiktok")
    sandbox.inject("tiktok", kind="error", path="video/init", error="spam_risk_user_banned_from_posting", times=1)
    post_id = publish(api, engine_rt, account)
    row = final(engine_rt, post_id)
    assert row["status"] == "failed" and row["error_code"] and row["error_message"]
    assert "TikTok" in row["error_message"]
    assert published_on(sandbox, "tiktok") == []


def test_transient_before_anything_was_created_is_retried_later(engine_rt, api, sandbox):
    account = connect(engine_rt, "tiktok")
    sandbox.inject("tiktok", kind="status", status=503, path="creator_info", times=1)
    post_id = publish(api, engine_rt, account)
    row = wait_for(lambda: (r := post_row(engine_rt, post_id))["error_message"] and r, timeout=20)
    assert row["status"] == "publishing" and row["next_attempt_at"] > utcnow() + timedelta(seconds=30)
    assert "Retrying" in row["error_message"] and json.loads(row["metadata"])["transient_attempts"] == 1
    assert row["retry_count"] == 0  # the engine's own retries leave the creator's three
    # time passes: make the retry due now
    with engine_rt.engine.begin() as conn:
        conn.execute(update(engine_rt.tables.posts).where(engine_rt.tables.posts.c.id == post_id)
                     .values(next_attempt_at=utcnow()))
    from bridge.queue import enqueue_now

    enqueue_now(engine_rt, post_id)
    row = final(engine_rt, post_id)
    assert row["status"] == "published" and len(published_on(sandbox, "tiktok")) == 1


def test_expired_token_is_refreshed_once_then_published(engine_rt, api, sandbox):
    account = connect(engine_rt, "tiktok")
    sandbox.clock.advance(3 * 3600)  # the 2 h access token expired on the platform
    post_id = publish(api, engine_rt, account)
    row = final(engine_rt, post_id)
    assert row["status"] == "published", row["error_message"]
    refreshes = [r for r in sandbox.requests("tiktok") if r["path"].endswith("/oauth/token/")]
    assert len(refreshes) == 2  # the connect's exchange and one refresh


def test_lost_init_response_is_reconciled_not_resent(engine_rt, api, sandbox):
    account = connect(engine_rt, "tiktok")
    sandbox.inject("tiktok", kind="lost", path="video/init", times=1)
    post_id = publish(api, engine_rt, account, options={"tiktok_source": "PULL_FROM_URL"})
    row = final(engine_rt, post_id)
    records = published_on(sandbox, "tiktok")
    # exactly once, or visibly unconfirmed: never twice
    assert len(records) <= 1
    assert row["status"] == "published" or row["error_code"] == "unconfirmed"


@pytest.mark.parametrize("step", [1, 2, 3])
def test_worker_killed_at_a_step_boundary_publishes_once(engine_rt, api, sandbox, engine_database_url,
                                                         engine_sandbox, worker, tmp_path, step):
    """SIGKILL after the platform answered step N but before the database write: a second worker
    resumes from the last checkpoint (reconciling the in-flight step) and never publishes twice."""
    from tests.conftest import WorkerProcess, engine_env

    import signal

    account = connect(engine_rt, "tiktok")
    when = utcnow() + timedelta(seconds=3)
    marker = tmp_path / "fired"
    worker.proc.send_signal(signal.SIGSTOP)  # only the crashing worker takes jobs now
    crashing = WorkerProcess(engine_env(engine_database_url, engine_sandbox,
                                        AURAREELS_FAILPOINT=f"after_step:{step}:{marker}")).start()
    try:
        post_id = publish(api, engine_rt, account, scheduled_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          options={"tiktok_source": "PULL_FROM_URL"})
        wait_for(marker.exists, timeout=30)  # the crashing worker took the post and died mid-run
    finally:
        worker.proc.send_signal(signal.SIGCONT)  # the rest of the fleet carries on
    try:
        row = final(engine_rt, post_id, timeout=60)
    finally:
        crashing.stop()
    records = published_on(sandbox, "tiktok")
    assert len(records) <= 1
    assert row["status"] == "published" or row["error_code"] == "unconfirmed", row["error_message"]


# Each platform's "create" call: the one whose effect must never happen twice.
CREATE_CALLS = {
    "tiktok": ("video/init", {}),
    "instagram": ("media_publish", {}),
    "facebook": ("video_reels", {}),
    "youtube": ("upload/youtube/v3/videos", {}),
    "twitter": ("/2/tweets$", {}),
    "linkedin": ("/rest/posts$", {}),
}


@pytest.mark.parametrize("platform", list(CREATE_CALLS))
def test_every_platform_publishes_once_through_the_engine(engine_rt, api, sandbox, platform):
    account = connect(engine_rt, platform)
    post_id = publish(api, engine_rt, account, caption=f"Engine {platform}")
    row = final(engine_rt, post_id, timeout=60)
    assert row["status"] == "published", (row["error_code"], row["error_message"])
    assert row["platform_post_id"]
    assert len(published_on(sandbox, platform)) == 1


@pytest.mark.parametrize("platform", list(CREATE_CALLS))
def test_lost_create_response_never_publishes_twice(engine_rt, api, sandbox, platform):
    account = connect(engine_rt, platform)
    path, _ = CREATE_CALLS[platform]
    sandbox.inject(platform, kind="lost", method="POST", path=path, times=1)
    post_id = publish(api, engine_rt, account, caption=f"Lost {platform}")
    row = final(engine_rt, post_id, timeout=60)
    assert any(r["fault"] == "lost" for r in sandbox.requests(platform)), "the fault did not fire"
    assert len(published_on(sandbox, platform)) <= 1
    assert row["status"] == "published" or row["error_code"] == "unconfirmed", (row["error_code"],
                                                                                 row["error_message"])


def _stopped(worker):
    """Pause the session worker (SIGSTOP) for a test that runs its own workers or threads."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def paused():
        worker.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            worker.proc.send_signal(signal.SIGCONT)

    return paused()


def test_redis_wiped_while_50_posts_are_scheduled_all_go_out_on_time(engine_rt, api, sandbox, worker,
                                                                     engine_database_url, engine_sandbox):
    """FLUSHDB of the bridge's Redis (every wake-up and job gone) shortly before 50 posts are due:
    the sweeper sees the wipe, re-arms every wake-up from MySQL, and all of them go out on time."""
    import datetime as dt

    from tests.conftest import WorkerProcess, engine_env

    # TikTok allows 6 inits a minute per token: 25 creators with two posts each
    accounts = [connect(engine_rt, "tiktok", sandbox_user=f"wipe{i}") for i in range(25)]
    when = utcnow() + timedelta(seconds=15)
    ids = [publish(api, engine_rt, accounts[i % 25], caption=f"wipe post {i}", privacy_level="PRIVATE",
                   scheduled_at=when.strftime("%Y-%m-%dT%H:%M:%SZ")) for i in range(50)]
    helpers = [WorkerProcess(engine_env(engine_database_url, engine_sandbox)).start() for _ in range(3)]
    try:
        engine_rt.redis.flushdb()
        rows = [final(engine_rt, post_id, timeout=90) for post_id in ids]
    finally:
        for helper in helpers:
            helper.stop()
    assert [r["status"] for r in rows] == ["published"] * 50, {r["error_code"] for r in rows}
    records = published_on(sandbox, "tiktok")
    assert len(records) == 50 and len({r["caption"] if "caption" in r else r.get("title") for r in records}) == 50
    due = when.replace(tzinfo=dt.timezone.utc).timestamp()
    inits = sorted(r["at"] for r in sandbox.requests("tiktok") if "video/init" in r["path"])
    lateness = [t - due for t in inits]
    print(f"\nredis wipe: 50 posts, first-call lateness p50 {lateness[25]:.2f}s max {lateness[-1]:.2f}s")
    assert min(lateness) >= 0 and lateness[-1] < 20


def test_20_concurrent_publishes_on_an_expiring_rotating_token_refresh_once(engine_rt, api, sandbox, worker,
                                                                            monkeypatch):
    import dataclasses

    from bridge.engine import run_post

    rt = dataclasses.replace(engine_rt, settings=engine_rt.settings.with_overrides(quota_limits={"tiktok": 100}))
    # this test is about the refresh: lift TikTok's per-token call rates for the one account
    sandbox.emulator("tiktok").configure(daily_post_cap=100, rate_init_per_min=1000, rate_creator_info_per_min=1000,
                                         rate_status_per_min=1000)
    account = connect(engine_rt, "tiktok")
    a = engine_rt.tables.accounts
    with engine_rt.engine.begin() as conn:  # the 2 h token has 5 minutes left
        conn.execute(update(a).where(a.c.id == account).values(
            token_expires_at=utcnow() + timedelta(minutes=5), last_token_refresh=utcnow() - timedelta(hours=2)))
    with _stopped(worker):
        ids = [publish(api, engine_rt, account, caption=f"concurrent {i}", privacy_level="PRIVATE")
               for i in range(20)]
        before = len([r for r in sandbox.requests("tiktok") if r["path"].endswith("/oauth/token/")])
        threads = [threading.Thread(target=run_post, args=(rt, post_id)) for post_id in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    rows = [final(engine_rt, post_id, timeout=60) for post_id in ids]
    refreshes = len([r for r in sandbox.requests("tiktok") if r["path"].endswith("/oauth/token/")]) - before
    assert refreshes == 1
    assert [r["status"] for r in rows] == ["published"] * 20
    assert len(published_on(sandbox, "tiktok")) == 20


def test_platform_concurrency_cap_holds_back_extra_posts(engine_rt):
    import dataclasses

    from bridge.engine.caps import PlatformCap

    rt = dataclasses.replace(engine_rt, settings=engine_rt.settings.with_overrides(concurrency_caps={"linkedin": 2}))
    cap = PlatformCap(rt, "linkedin")
    assert cap.acquire("owner-0") and cap.acquire("owner-1")
    assert not cap.acquire("owner-2")
    cap.release("owner-0")
    assert cap.acquire("owner-2")
    assert PlatformCap(rt, "tiktok").acquire("other")  # caps are per platform
