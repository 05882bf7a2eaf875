"""Every route of seed 000's "REST API Endpoints" answers in the seed's shape.

The seed's example answers are copied below verbatim. Each route is called in the situation its
example shows (a connected account, a published post, a scheduled one, a failed one) and our JSON
is compared key by key: every seed key is present with the seed's JSON type (a seed `null` must
be `null` in that same situation). Keys the bridge adds are allowed.
"""
from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from bridge.store.db import utcnow
from tests.conftest import auth
from tests.oauth_flow import finish
from tests.factories import add_account, add_post, add_video

P = "/wp-json/aurareels/v1/social"
USER = 808

SEED = {
    "accounts": {
        "success": True,
        "accounts": [
            {"id": 1, "platform": "tiktok", "account_name": "MyTikTokAccount", "account_username": "@mytiktok",
             "profile_picture_url": "https://...", "is_active": True, "token_expires_at": "2024-12-31 23:59:59",
             "created_at": "2024-01-01 00:00:00"},
            {"id": 2, "platform": "instagram", "account_name": "MyInstagram", "account_username": "@myinsta",
             "profile_picture_url": "https://...", "is_active": True, "token_expires_at": "2024-12-31 23:59:59",
             "created_at": "2024-01-15 00:00:00"},
        ],
    },
    "connect": {"success": True, "auth_url": "https://www.tiktok.com/v2/auth/authorize/?client_key=...",
                "state": "random-csrf-state-token"},
    "refresh": {"success": True, "message": "Token refreshed successfully", "expires_at": "2024-12-31 23:59:59"},
    "disconnect": {"success": True, "message": "Account disconnected successfully"},
    "publish": {
        "success": True, "message": "Publishing initiated",
        "posts": [
            {"id": 123, "platform": "tiktok", "status": "publishing", "account_name": "MyTikTokAccount"},
            {"id": 124, "platform": "instagram", "status": "publishing", "account_name": "MyInstagram"},
        ],
    },
    "schedule": {
        "success": True, "message": "Posts scheduled successfully",
        "posts": [
            {"id": 125, "platform": "tiktok", "status": "scheduled", "scheduled_at": "2024-12-25 18:00:00"},
            {"id": 126, "platform": "instagram", "status": "scheduled", "scheduled_at": "2024-12-25 18:00:00"},
        ],
    },
    "list_posts": {
        "success": True, "total": 42,
        "posts": [
            {"id": 123, "platform": "tiktok", "status": "published", "caption": "Check out this video!",
             "platform_post_url": "https://www.tiktok.com/@user/video/123", "published_at": "2024-12-16 10:00:00",
             "video_job_id": "uuid-123", "account_name": "MyTikTokAccount"},
        ],
    },
    "get_post": {
        "success": True,
        "post": {
            "id": 123, "platform": "tiktok", "status": "published", "caption": "Full caption text...",
            "hashtags": ["#tag1", "#tag2"], "platform_post_id": "tiktok-post-id",
            "platform_post_url": "https://www.tiktok.com/@user/video/123",
            "video_url": "https://cloudflare.com/video.mp4", "thumbnail_url": "https://cloudflare.com/thumb.jpg",
            "scheduled_at": None, "published_at": "2024-12-16 10:00:00", "error_message": None, "retry_count": 0,
            "account": {"id": 1, "account_name": "MyTikTokAccount", "account_username": "@mytiktok"},
        },
    },
    "reschedule": {"success": True, "message": "Post rescheduled successfully",
                   "post": {"id": 125, "scheduled_at": "2024-12-26 12:00:00"}},
    "cancel": {"success": True, "message": "Post cancelled successfully"},
    "retry": {"success": True, "message": "Retrying publication",
              "post": {"id": 127, "status": "publishing", "retry_count": 1}},
}

SEED_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _kind(value) -> str:
    for name, kind in (("null", type(None)), ("bool", bool), ("int", int), ("float", float), ("str", str),
                       ("list", list), ("dict", dict)):
        if type(value) is kind:
            return name
    return type(value).__name__


def shape_problems(ours, seed, where: str = "$") -> list[str]:
    """Where our JSON lacks a seed key or holds another JSON type than the seed's example."""
    if _kind(ours) != _kind(seed):
        return [f"{where}: seed has {_kind(seed)} ({seed!r}), we answer {_kind(ours)} ({ours!r})"]
    problems: list[str] = []
    if isinstance(seed, dict):
        for key, value in seed.items():
            if key not in ours:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += shape_problems(ours[key], value, f"{where}.{key}")
    elif isinstance(seed, list) and seed:
        if not ours:
            problems.append(f"{where}: seed shows items, we answer an empty list")
        for index, item in enumerate(ours):
            problems += shape_problems(item, seed[0], f"{where}[{index}]")
    elif isinstance(seed, str) and SEED_TIME.fullmatch(seed) and not SEED_TIME.fullmatch(ours):
        problems.append(f"{where}: seed time format is YYYY-MM-DD HH:MM:SS, we answer {ours!r}")
    return problems


def assert_seed_shape(answer, name: str) -> dict:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    problems = shape_problems(body, SEED[name])
    assert not problems, f"{name}: " + "; ".join(problems)
    return body


# ---------------------------------------------------------------------------------- fixtures
def connect_tiktok(client, user_id: int = USER) -> int:
    """Connect a TikTok account through the sandbox's consent page (the real OAuth flow) and
    return its id."""
    start = client.post(f"{P}/accounts/connect/tiktok", headers=auth(user_id), json={}).get_json()
    path = "/" + start["auth_url"].split("://", 1)[1].split("/", 1)[1]
    page = client.get(path)
    fields = {unescape(n): unescape(v) for n, v in re.findall(
        r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page.get_data(as_text=True))}
    consent = client.post(path, data={**fields, "decision": "allow", "sandbox_user": "creator-seed"})
    back = urlsplit(consent.headers["Location"])
    done = client.get(f"{back.path}?{back.query}")
    # the pending link of the callback, confirmed as the dashboard does (AURAREELS_OAUTH_CONFIRM=1)
    accounts = finish(client, done.headers["Location"], user_id)
    assert [a["platform"] for a in accounts] == ["tiktok"]
    return accounts[0]["id"]


@pytest.fixture
def world(client, rt):
    tiktok = connect_tiktok(client)
    instagram = add_account(rt, USER, "instagram", profile_picture_url="https://cdn.sandbox.test/ig.jpg")
    video = add_video(rt, USER)
    return {"tiktok": tiktok, "instagram": instagram, "video": video}


def published_post(rt, world) -> int:
    return add_post(rt, USER, world["tiktok"], status="published", scheduled_at=None, video_job_id=world["video"],
                    published_at=utcnow() - timedelta(hours=1), platform_post_id="7400000000000000001",
                    platform_post_url="https://www.tiktok.com/@creator-seed/video/7400000000000000001",
                    thumbnail_url="https://media.sandbox.aurareels.test/images/t.jpg", caption="Full caption text",
                    hashtags='["#tag1", "#tag2"]')


def future(days: int = 3) -> str:
    return (utcnow() + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------------- routes
def test_list_accounts(client, world):
    body = assert_seed_shape(client.get(f"{P}/accounts", headers=auth(USER)), "accounts")
    assert {a["platform"] for a in body["accounts"]} == {"tiktok", "instagram"}


def test_connect(client):
    body = assert_seed_shape(client.post(f"{P}/accounts/connect/tiktok", headers=auth(USER), json={}), "connect")
    assert "client_key=" in body["auth_url"] and body["state"]


def test_callback_redirects_as_the_seed_shows(client):
    start = client.post(f"{P}/accounts/connect/tiktok", headers=auth(USER), json={}).get_json()
    denied = client.get(f"{P}/callback/tiktok?error=access_denied&state={start['state']}")
    assert denied.status_code == 302
    target = urlsplit(denied.headers["Location"])
    assert target.path == "/dashboard/social-accounts"
    query = parse_qs(target.query)
    assert query["status"] == ["error"] and query["message"][0]
    connect_tiktok(client)  # asserts status=pending (and its confirmation) on the way


def test_refresh(client, world):
    body = assert_seed_shape(client.post(f"{P}/accounts/{world['tiktok']}/refresh", headers=auth(USER), json={}),
                             "refresh")
    assert body["message"] == SEED["refresh"]["message"]


def test_disconnect(client, world):
    body = assert_seed_shape(client.delete(f"{P}/accounts/{world['tiktok']}", headers=auth(USER)), "disconnect")
    assert body["message"] == SEED["disconnect"]["message"]


def test_publish_with_the_seed_request(client, world):
    request = {"video_job_id": world["video"], "accounts": [world["tiktok"], world["instagram"]],
               "caption": "Check out this amazing video! #awesome", "hashtags": ["#video", "#content", "#viral"],
               "privacy_level": "PUBLIC", "allow_comments": True, "allow_duet": True, "allow_stitch": True}
    body = assert_seed_shape(client.post(f"{P}/publish", headers=auth(USER), json=request), "publish")
    assert body["message"] == SEED["publish"]["message"]
    assert [(p["platform"], p["status"]) for p in body["posts"]] == [("tiktok", "publishing"),
                                                                      ("instagram", "publishing")]


def test_schedule_with_the_seed_request(client, world):
    request = {"video_job_id": world["video"], "accounts": [world["tiktok"], world["instagram"]],
               "scheduled_at": future(), "caption": "Merry Christmas! 🎄", "hashtags": ["#christmas", "#holiday"],
               "privacy_level": "PUBLIC", "allow_comments": True}
    body = assert_seed_shape(client.post(f"{P}/schedule", headers=auth(USER), json=request), "schedule")
    assert body["message"] == SEED["schedule"]["message"]
    assert {p["scheduled_at"] for p in body["posts"]} == {request["scheduled_at"]}


def test_list_posts(client, rt, world):
    published_post(rt, world)
    body = assert_seed_shape(client.get(f"{P}/posts?status=published", headers=auth(USER)), "list_posts")
    assert body["total"] == 1


def test_get_post(client, rt, world):
    post = published_post(rt, world)
    body = assert_seed_shape(client.get(f"{P}/posts/{post}", headers=auth(USER)), "get_post")
    assert body["post"]["hashtags"] == ["#tag1", "#tag2"] and body["post"]["account"]["id"] == world["tiktok"]


def test_reschedule(client, rt, world):
    post = add_post(rt, USER, world["tiktok"], status="scheduled", video_job_id=world["video"])
    when = future(5)
    body = assert_seed_shape(client.patch(f"{P}/posts/{post}/reschedule", headers=auth(USER),
                                          json={"scheduled_at": when}), "reschedule")
    assert body["post"] == {"id": post, "scheduled_at": when}


def test_cancel(client, rt, world):
    post = add_post(rt, USER, world["tiktok"], status="scheduled", video_job_id=world["video"])
    body = assert_seed_shape(client.delete(f"{P}/posts/{post}", headers=auth(USER)), "cancel")
    assert body["message"] == SEED["cancel"]["message"]


def test_retry(client, rt, world):
    post = add_post(rt, USER, world["tiktok"], status="failed", video_job_id=world["video"], error_code="transient",
                    error_message="TikTok was unavailable.")
    body = assert_seed_shape(client.post(f"{P}/posts/{post}/retry", headers=auth(USER), json={}), "retry")
    assert body["post"] == {"id": post, "status": "publishing", "retry_count": 1}


def test_shape_comparison_catches_what_it_should():
    """The comparer itself: a missing key, a wrong type, a bool for an int, a non-null for null."""
    seed = {"a": 1, "b": "2024-01-01 00:00:00", "c": None, "d": [{"e": True}]}
    assert shape_problems({"a": 1, "b": "2024-01-01 00:00:00", "c": None, "d": [{"e": False}], "x": 0}, seed) == []
    problems = shape_problems({"a": True, "b": "2024-01-01T00:00:00Z", "c": "x", "d": [{}]}, seed)
    assert len(problems) == 4, problems
