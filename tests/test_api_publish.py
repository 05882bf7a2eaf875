"""Publish, schedule and connect through the API, on the in-process sandbox."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from bridge.store.db import utcnow
from tests.conftest import auth
from tests.factories import add_account, add_video
from tests.oauth_flow import finish

P = "/wp-json/aurareels/v1/social"
ALICE, BOB = 301, 302


def count_posts(rt):
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(rt.tables.posts)).scalar()


@pytest.fixture
def setup(rt):
    return {"video": add_video(rt, ALICE), "tiktok": add_account(rt, ALICE, "tiktok"),
            "instagram": add_account(rt, ALICE, "instagram"), "bob_video": add_video(rt, BOB),
            "bob_account": add_account(rt, BOB, "tiktok")}


def body(setup, **extra):
    data = {"video_job_id": setup["video"], "accounts": [setup["tiktok"], setup["instagram"]],
            "caption": "Check out this amazing video!", "hashtags": ["#video", "content"],
            "privacy_level": "PUBLIC", "allow_comments": True, "allow_duet": True, "allow_stitch": True}
    data.update(extra)
    return data


def test_publish_creates_one_post_per_account_and_queues_them(client, rt, setup, redis_client):
    response = client.post(f"{P}/publish", headers=auth(ALICE), json=body(setup))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["success"] is True and answer["message"] == "Publishing initiated"
    assert [(p["platform"], p["status"]) for p in answer["posts"]] == [("tiktok", "publishing"),
                                                                        ("instagram", "publishing")]
    for post in answer["posts"]:  # seed keys and types
        assert isinstance(post["id"], int) and isinstance(post["account_name"], str)
    queued = Queue("publish", connection=redis_client).job_ids
    assert sorted(queued) == sorted(f"publish-{p['id']}" for p in answer["posts"])
    detail = client.get(f"{P}/posts/{answer['posts'][0]['id']}", headers=auth(ALICE)).get_json()["post"]
    assert detail["hashtags"] == ["#video", "content"] and detail["video_url"].startswith("https://media.sandbox")


def test_schedule_stores_utc_and_arms_a_wake_up(client, rt, setup, redis_client):
    when = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    response = client.post(f"{P}/schedule", headers=auth(ALICE),
                           json=body(setup, scheduled_at=when.strftime("%Y-%m-%dT%H:%M:%S") + "+02:00"))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    expected = (when - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    assert answer["message"] == "Posts scheduled successfully"
    assert [p["scheduled_at"] for p in answer["posts"]] == [expected, expected]
    assert all(p["status"] == "scheduled" for p in answer["posts"])
    registry = ScheduledJobRegistry("publish", connection=redis_client)
    assert sorted(registry.get_job_ids()) == sorted(f"wake-{p['id']}" for p in answer["posts"])
    job = Job.fetch(f"wake-{answer['posts'][0]['id']}", connection=redis_client)
    assert job.args[1] == (when - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_schedule_naive_time_is_read_in_site_zone(app, rt, setup):
    from bridge.runtime import Runtime

    zoned = Runtime.from_settings(rt.settings.with_overrides(timezone="America/New_York"), engine=rt.engine)
    from bridge.app import create_app

    client = create_app(runtime=zoned).test_client()
    today = utcnow().date()
    july = today.replace(month=7, day=4) if today < today.replace(month=7, day=4) else today.replace(
        year=today.year + 1, month=7, day=4)  # the next 4 July: summer time, within the year ahead
    answer = client.post(f"{P}/schedule", headers=auth(ALICE),
                         json=body(setup, scheduled_at=f"{july} 18:00:00")).get_json()
    assert answer["posts"][0]["scheduled_at"] == f"{july} 22:00:00"  # EDT is UTC-4


def test_schedule_in_the_past_is_refused(client, rt, setup):
    response = client.post(f"{P}/schedule", headers=auth(ALICE), json=body(setup, scheduled_at="2020-01-01 00:00:00"))
    assert response.status_code == 422 and response.get_json()["code"] == "scheduled_in_past"
    assert count_posts(rt) == 0


def test_idempotency_key_returns_first_answer(client, rt, setup):
    headers = {**auth(ALICE), "Idempotency-Key": "dialog-42"}
    first = client.post(f"{P}/publish", headers=headers, json=body(setup)).get_json()
    second = client.post(f"{P}/publish", headers=headers, json=body(setup)).get_json()
    assert first == second and count_posts(rt) == 2
    other = client.post(f"{P}/publish", headers=headers, json=body(setup, caption="something else"))
    assert other.status_code == 422 and other.get_json()["code"] == "idempotency_key_reused"
    bob = client.post(f"{P}/publish", headers={**auth(BOB), "Idempotency-Key": "dialog-42"},
                      json={"video_job_id": setup["bob_video"], "accounts": [setup["bob_account"]],
                            "privacy_level": "FRIENDS"})
    assert bob.status_code == 200 and count_posts(rt) == 3  # keys are per user


def test_caption_too_long_for_one_platform_stores_nothing(client, rt, setup):
    response = client.post(f"{P}/publish", headers=auth(ALICE), json=body(setup, caption="é" * 2300, hashtags=[]))
    assert response.status_code == 422
    answer = response.get_json()
    assert answer["code"] == "caption_too_long" and "tiktok.caption" in answer["errors"]
    assert count_posts(rt) == 0


@pytest.mark.parametrize("change,status,code", [
    ({"video_job_id": "nope"}, 404, "video_not_found"),
    ({"accounts": [999999]}, 404, "account_not_found"),
    ({"accounts": []}, 422, "validation_error"),
    ({"privacy_level": "EVERYONE!"}, 422, "validation_error"),
    ({"hashtags": ["#x"] * 500}, 422, "validation_error"),
    ({"caption": "x" * 50000}, 422, "validation_error"),
])
def test_bad_publish_input(client, rt, setup, change, status, code):
    response = client.post(f"{P}/publish", headers=auth(ALICE), json=body(setup, **change))
    assert response.status_code == status and response.get_json()["code"] == code
    assert count_posts(rt) == 0


def test_other_users_video_and_account_are_404(client, rt, setup):
    theirs = client.post(f"{P}/publish", headers=auth(ALICE), json=body(setup, video_job_id=setup["bob_video"]))
    assert theirs.status_code == 404 and theirs.get_json()["code"] == "video_not_found"
    account = client.post(f"{P}/publish", headers=auth(ALICE), json=body(setup, accounts=[setup["bob_account"]]))
    assert account.status_code == 404 and account.get_json()["code"] == "account_not_found"
    assert count_posts(rt) == 0


def test_video_without_mp4_and_account_needing_reconnect(client, rt, setup):
    pending = add_video(rt, ALICE, mp4_url=None)
    response = client.post(f"{P}/publish", headers=auth(ALICE), json=body(setup, video_job_id=pending))
    assert response.status_code == 422 and response.get_json()["code"] == "video_not_ready"
    stale = add_account(rt, ALICE, "youtube", needs_reconnect=1)
    response = client.post(f"{P}/publish", headers=auth(ALICE), json=body(setup, accounts=[stale]))
    assert response.status_code == 409 and response.get_json()["code"] == "account_needs_reconnect"
    assert count_posts(rt) == 0


@pytest.mark.parametrize("url", ["http://10.0.0.7/v.mp4", "http://169.254.169.254/latest/meta-data",
                                 "file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL", "http://[fd00::1]/v.mp4"])
def test_media_urls_to_internal_addresses_are_refused(client, rt, setup, url):
    video = add_video(rt, ALICE, mp4_url=url)
    response = client.post(f"{P}/publish", headers=auth(ALICE), json=body(setup, video_job_id=video))
    assert response.status_code == 422 and response.get_json()["code"] == "media_url_forbidden"
    assert count_posts(rt) == 0


# ------------------------------------------------------------------------------------ connect
def _consent(client, auth_url: str, decision: str) -> str:
    """Drive the sandbox consent page through the bridge's /_sandbox mount; return the callback URL."""
    import re
    from html import unescape

    path = auth_url.split("://", 1)[1].split("/", 1)[1]
    page = client.get("/" + path)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    fields = {unescape(n): unescape(v) for n, v in re.findall(
        r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page.get_data(as_text=True))}
    fields.update({"decision": decision, "sandbox_user": "creator-a"})
    answer = client.post("/" + path, data=fields)
    assert answer.status_code == 302
    return answer.headers["Location"]


def _callback(client, location: str):
    parts = urlsplit(location)
    assert parts.path.endswith("/callback/tiktok")
    return client.get(f"{parts.path}?{parts.query}")


def test_connect_allow_lists_the_account(client, rt):
    start = client.post(f"{P}/accounts/connect/tiktok", headers=auth(ALICE), json={}).get_json()
    assert start["success"] is True and start["state"] and "client_key=" in start["auth_url"]
    back = _callback(client, _consent(client, start["auth_url"], "allow"))
    assert back.status_code == 302
    target = urlsplit(back.headers["Location"])
    assert target.netloc == "frontend.example" and target.path == "/dashboard/social-accounts"
    query = parse_qs(target.query)
    assert query["status"] == ["pending"] and query["platform"] == ["tiktok"] and len(query["link"][0]) >= 40
    # nothing is attached until the dashboard confirms the link with the user's token
    assert client.get(f"{P}/accounts", headers=auth(ALICE)).get_json()["accounts"] == []
    confirmed = finish(client, back.headers["Location"], ALICE)
    accounts = client.get(f"{P}/accounts", headers=auth(ALICE)).get_json()["accounts"]
    assert confirmed == accounts
    assert [a["platform"] for a in accounts] == ["tiktok"] and accounts[0]["token_expires_at"]
    # the stored token is encrypted, not the platform's value
    with rt.engine.connect() as conn:
        stored = conn.execute(select(rt.tables.accounts.c.access_token)).scalar()
    assert stored.startswith("ar2:")


def test_connect_deny_lands_on_error(client, rt):
    start = client.post(f"{P}/accounts/connect/tiktok", headers=auth(ALICE), json={}).get_json()
    back = _callback(client, _consent(client, start["auth_url"], "deny"))
    query = parse_qs(urlsplit(back.headers["Location"]).query)
    assert query["status"] == ["error"] and query["message"][0]
    assert client.get(f"{P}/accounts", headers=auth(ALICE)).get_json()["accounts"] == []


def test_callback_state_rules(client, rt):
    start = client.post(f"{P}/accounts/connect/tiktok", headers=auth(ALICE), json={}).get_json()
    location = _consent(client, start["auth_url"], "allow")
    parts = urlsplit(location)
    params = parse_qs(parts.query)
    cases = {
        "missing state": f"{P}/callback/tiktok?code={params['code'][0]}",
        "unknown state": f"{P}/callback/tiktok?code={params['code'][0]}&state=forged",
        "other platform": f"{P}/callback/instagram?code={params['code'][0]}&state={params['state'][0]}",
    }
    for name, url in cases.items():
        back = client.get(url)
        assert parse_qs(urlsplit(back.headers["Location"]).query)["status"] == ["error"], name
    # the state was spent by the wrong-platform attempt: single use
    replay = client.get(f"{parts.path}?{parts.query}")
    assert parse_qs(urlsplit(replay.headers["Location"]).query)["status"] == ["error"]
    assert client.get(f"{P}/accounts", headers=auth(ALICE)).get_json()["accounts"] == []


def test_connect_unknown_platform_is_404(client):
    response = client.post(f"{P}/accounts/connect/myspace", headers=auth(ALICE), json={})
    assert response.status_code == 404 and response.get_json()["code"] == "unknown_platform"
