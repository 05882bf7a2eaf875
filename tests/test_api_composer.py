"""What the composer reads before anything is created: POST /validate (every rule of /publish and
/schedule, for every account at once, against the sandbox platforms with real connected
accounts), GET /platforms (from the clients' declarations) and GET /accounts/{id}/options."""
from __future__ import annotations

from datetime import timedelta

import dataclasses

import pytest
from sqlalchemy import func, select

from bridge.app import create_app
from bridge.platforms.registry import PLATFORMS, client_classes
from bridge.store.db import utcnow
from tests.conftest import auth
from tests.factories import add_account, add_post, add_video
from tests.test_engine import connect

P = "/wp-json/aurareels/v1/social"
USER, OTHER = 818, 819
LONG_VIDEO = "https://media.sandbox.aurareels.test/videos/long.mp4?size=3000000&duration=400"


@pytest.fixture
def api(live_rt):
    return create_app(runtime=live_rt).test_client()


@pytest.fixture
def tiktok(live_rt, engine_sandbox):
    return connect(live_rt, "tiktok", USER)


def count_posts(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(rt.tables.posts)).scalar()


def validate(api, rt, accounts, **extra):
    body = {"video_job_id": extra.pop("video", None) or add_video(rt, USER), "accounts": accounts,
            "caption": "Hello", **extra}
    answer = api.post(f"{P}/validate", headers=auth(USER), json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def by_platform(report) -> dict:
    return {a["platform"]: a for a in report["accounts"]}


# ------------------------------------------------------------------------------ POST /validate
def test_every_account_is_checked_at_once_and_counted_its_platforms_way(api, live_rt):
    accounts = [add_account(live_rt, USER, p) for p in ("instagram", "youtube", "twitter", "linkedin")]
    caption = "Launch 🚀 https://aurareels.com/launch/" + "x" * 40 + " " + "é" * 250
    report = validate(api, live_rt, accounts, caption=caption, privacy_level="PUBLIC",
                      captions={"linkedin": "A short one for LinkedIn"})
    assert report["success"] is True and report["valid"] is False and report["errors"] == []
    seen = by_platform(report)
    # X: the URL counts 23, the emoji 2; 250 accented letters push it over 280
    assert seen["twitter"]["caption_length"] == 7 + 2 + 1 + 23 + 1 + 250 and seen["twitter"]["caption_limit"] == 280
    assert [e["code"] for e in seen["twitter"]["errors"]] == ["caption_too_long"]
    assert seen["twitter"]["caption_counting"] == "weighted"
    # YouTube counts bytes of its 5,000; Instagram code points of its 2,200; LinkedIn its own caption
    assert seen["youtube"]["caption_length"] == len(caption.encode("utf-8")) and seen["youtube"]["ok"] is True
    assert seen["instagram"]["caption_length"] == len(caption) and seen["instagram"]["ok"] is True
    assert seen["linkedin"]["caption_length"] == len("A short one for LinkedIn")
    assert count_posts(live_rt) == 0


def test_privacy_is_checked_against_what_the_tiktok_account_offers_now(api, live_rt, tiktok, engine_sandbox):
    sandbox, _ = engine_sandbox
    sandbox.emulator("tiktok").set_creator("creator1", private=True)
    report = validate(api, live_rt, [tiktok], privacy_level="PUBLIC")
    [account] = report["accounts"]
    assert account["ok"] is False and [e["code"] for e in account["errors"]] == ["privacy_level_not_offered"]
    assert "only me (PRIVATE)" in account["errors"][0]["message"]
    assert validate(api, live_rt, [tiktok], privacy_level="PRIVATE")["valid"] is True


def test_the_video_against_the_creators_longest_post(api, live_rt, tiktok, engine_sandbox):
    sandbox, _ = engine_sandbox
    sandbox.emulator("tiktok").set_creator("creator1", max_video_post_duration_sec=300)
    video = add_video(live_rt, USER, mp4_url=LONG_VIDEO)
    [account] = validate(api, live_rt, [tiktok], video=video, privacy_level="PRIVATE")["accounts"]
    assert [e["code"] for e in account["errors"]] == ["video_too_long_for_account"]


def test_missing_tiktok_privacy_and_a_first_comment_tiktok_does_not_take(api, live_rt, tiktok):
    instagram = add_account(live_rt, USER, "instagram")
    report = validate(api, live_rt, [tiktok, instagram], first_comment="Link in bio")
    seen = by_platform(report)
    assert [e["code"] for e in seen["tiktok"]["errors"]] == ["privacy_level_required"]
    assert [w["code"] for w in seen["tiktok"]["warnings"]] == ["first_comment_unsupported"]
    assert seen["tiktok"]["first_comment"] is False and seen["instagram"]["first_comment"] is True
    assert seen["instagram"]["ok"] is True


def test_request_level_problems(api, live_rt):
    instagram = add_account(live_rt, USER, "instagram")
    past = (utcnow() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = validate(api, live_rt, [instagram], options={"nonsense": 1}, scheduled_at=past)
    assert report["valid"] is False
    assert {e["code"] for e in report["errors"]} == {"unknown_option", "scheduled_in_past"}


def with_quota(rt, platform: str, limit: int):
    """The API of `rt` as started with AURAREELS_QUOTA_<PLATFORM>=limit (settings are read once)."""
    rt.settings = dataclasses.replace(rt.settings, quota_limits={platform: limit})
    return create_app(runtime=rt).test_client()


def test_quota_the_post_will_meet(live_rt, tiktok):
    api = with_quota(live_rt, "tiktok", 2)
    for minutes in (30, 10):
        add_post(live_rt, USER, tiktok, status="published", published_at=utcnow() - timedelta(minutes=minutes))
    [account] = validate(api, live_rt, [tiktok], privacy_level="PRIVATE")["accounts"]
    assert account["ok"] is True  # a post over the quota waits, it is not refused
    assert account["quota"]["limit"] == 2 and account["quota"]["used"] == 2 and account["quota"]["remaining"] == 0
    assert [w["code"] for w in account["warnings"]] == ["quota_wait"]
    # a day later the window is free again
    tomorrow = (utcnow() + timedelta(days=1, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    [later] = validate(api, live_rt, [tiktok], privacy_level="PRIVATE", scheduled_at=tomorrow)["accounts"]
    assert later["quota"]["used"] == 0 and later["warnings"] == []


def test_an_account_to_reconnect_and_an_unreadable_video_are_reported(api, live_rt):
    instagram = add_account(live_rt, USER, "instagram", needs_reconnect=1, reconnect_reason="Password changed")
    video = add_video(live_rt, USER, mp4_url="https://media.sandbox.aurareels.test/videos/x.mp4?status=404")
    [account] = validate(api, live_rt, [instagram], video=video)["accounts"]
    assert "account_needs_reconnect" in {e["code"] for e in account["errors"]}
    assert [e["field"] for e in account["errors"] if e["field"] == "video"] == ["video"]


def test_videos_and_accounts_of_others_are_404(api, live_rt):
    mine = add_account(live_rt, USER, "instagram")
    body = {"video_job_id": add_video(live_rt, OTHER), "accounts": [mine]}
    assert api.post(f"{P}/validate", headers=auth(USER), json=body).status_code == 404
    theirs = add_account(live_rt, OTHER, "instagram", account_id="theirs")
    body = {"video_job_id": add_video(live_rt, USER), "accounts": [theirs]}
    assert api.post(f"{P}/validate", headers=auth(USER), json=body).status_code == 404


# ------------------------------------------------------------------------------ GET /platforms
def test_platforms_come_from_the_clients_declarations(live_rt):
    api = with_quota(live_rt, "tiktok", 7)
    answer = api.get(f"{P}/platforms", headers=auth(USER))
    assert answer.status_code == 200
    platforms = answer.get_json()["platforms"]
    assert list(platforms) == list(PLATFORMS)
    for name, cls in client_classes().items():
        entry = platforms[name]
        assert entry["caption_limit"] == cls.requirements.caption_max
        assert entry["caption_counting"] == cls.requirements.caption_counting
        assert entry["first_comment"] is (cls.first_comment is not None)
        assert entry["media_types"] == list(cls.requirements.media_types)
    assert platforms["tiktok"]["daily_limit"] == 7 and platforms["tiktok"]["privacy_required"] is True
    assert platforms["tiktok"]["first_comment"] is False and platforms["twitter"]["first_comment_kind"] == "reply"
    assert platforms["youtube"]["project_daily_limit"] == 100
    assert platforms["youtube"]["caption_counting"] == "utf8_bytes"
    assert platforms["instagram"]["hashtag_limit"] == 30


# ------------------------------------------------------------------------------ GET /accounts/{id}/options
def test_tiktok_options_are_the_creators_now_with_the_quota(api, live_rt, tiktok, engine_sandbox):
    sandbox, _ = engine_sandbox
    sandbox.emulator("tiktok").set_creator("creator1", max_video_post_duration_sec=180, stitch_disabled=True)
    add_post(live_rt, USER, tiktok, status="published", published_at=utcnow() - timedelta(hours=1))
    answer = api.get(f"{P}/accounts/{tiktok}/options", headers=auth(USER))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    options = answer.get_json()["options"]
    assert options["privacy_level_options"] == ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    assert options["max_video_post_duration_sec"] == 180 and options["stitch_disabled"] is True
    assert options["first_comment"] is False and options["caption_limit"] == 2200
    quota = options["quota"]
    assert (quota["limit"], quota["used"], quota["remaining"]) == (15, 1, 14) and quota["resets_at"]
    reads = [r for r in sandbox.requests("tiktok") if r["path"].endswith("/creator_info/query/")]
    api.get(f"{P}/accounts/{tiktok}/options", headers=auth(USER))
    again = [r for r in sandbox.requests("tiktok") if r["path"].endswith("/creator_info/query/")]
    assert len(again) == len(reads)  # kept a minute: TikTok allows about 20 reads a minute


def test_options_of_other_platforms_and_their_errors(api, live_rt):
    instagram = add_account(live_rt, USER, "twitter")
    options = api.get(f"{P}/accounts/{instagram}/options", headers=auth(USER)).get_json()["options"]
    assert options["platform"] == "twitter" and options["first_comment"] is True
    assert options["quota"] == {"limit": 100, "used": 0, "remaining": 100, "resets_at": None}
    assert api.get(f"{P}/accounts/{instagram}/options", headers=auth(OTHER)).status_code == 404
    stale = add_account(live_rt, USER, "linkedin", needs_reconnect=1, reconnect_reason="Access removed")
    answer = api.get(f"{P}/accounts/{stale}/options", headers=auth(USER))
    assert answer.status_code == 409 and answer.get_json()["code"] == "account_needs_reconnect"
    assert "Reconnect the LinkedIn account" in answer.get_json()["message"]


def test_tiktok_down_is_503_and_a_dead_login_409(api, live_rt, tiktok, engine_sandbox):
    sandbox, _ = engine_sandbox
    sandbox.inject("tiktok", kind="status", status=503, path="creator_info", times=0)
    answer = api.get(f"{P}/accounts/{tiktok}/options", headers=auth(USER))
    assert answer.status_code == 503 and answer.get_json()["code"] == "platform_unavailable"
    sandbox.reset("tiktok")
    answer = api.get(f"{P}/accounts/{tiktok}/options", headers=auth(USER))  # the sandbox forgot the login
    assert answer.status_code == 409 and answer.get_json()["code"] == "account_needs_reconnect"


def test_the_composers_routes_are_documented(api):
    paths = api.get("/openapi.json").get_json()["paths"]
    prefix = "/aurareels/v1/social"
    for method, path in (("patch", "/posts/{post_id}"), ("post", "/drafts"), ("post", "/posts/{post_id}/publish"),
                         ("post", "/posts/{post_id}/schedule"), ("post", "/validate"), ("get", "/platforms"),
                         ("get", "/accounts/{account_id}/options")):
        operation = paths[prefix + path][method]
        assert operation["summary"] and "200" in operation["responses"] and "401" in operation["responses"], path
    query = {p["name"] for p in paths[prefix + "/posts"]["get"]["parameters"] if p["in"] == "query"}
    assert {"group_id", "video_job_id"} <= query
