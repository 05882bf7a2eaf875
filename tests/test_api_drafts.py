"""Drafts: saved under one group id without going anywhere, then published now or scheduled with
every check of /publish and /schedule at that moment."""
from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job
from sqlalchemy import func, select

from bridge import queue
from bridge.services import quota
from bridge.store.db import utcnow
from tests.conftest import INTERNAL_KEY, auth
from tests.factories import add_account, add_post, add_video

P = "/wp-json/aurareels/v1/social"
USER, OTHER = 515, 516


@pytest.fixture
def accounts(rt):
    return {platform: add_account(rt, USER, platform) for platform in ("tiktok", "instagram", "twitter")}


@pytest.fixture
def video(rt):
    return add_video(rt, USER)


def rows(rt):
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        return {r["id"]: r for r in conn.execute(select(p)).mappings()}


def queued_jobs(rt) -> int:
    return queue.queue(rt).count + len(queue.queue(rt).scheduled_job_registry.get_job_ids())


def when(**delta) -> str:
    return (utcnow() + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def save(client, video, accounts, **extra):
    body = {"video_job_id": video, "accounts": accounts, "caption": "Work in progress #draft", **extra}
    return client.post(f"{P}/drafts", headers=auth(USER), json=body)


def test_drafts_are_stored_under_one_group_and_nothing_is_queued_or_counted(client, rt, accounts, video):
    answer = save(client, video, [accounts["tiktok"], accounts["instagram"]], first_comment="More in bio")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["success"] is True and len(body["group_id"]) == 32
    assert [p["status"] for p in body["posts"]] == ["draft", "draft"]
    assert {p["group_id"] for p in body["posts"]} == {body["group_id"]}
    # the TikTok draft has no audience yet: reported, not refused
    tiktok, instagram = body["posts"]
    assert [i["code"] for i in tiktok["issues"]] == ["privacy_level_required"] and instagram["issues"] == []
    stored = rows(rt)
    assert {r["status"] for r in stored.values()} == {"draft"}
    assert {r["group_id"] for r in stored.values()} == {body["group_id"]}
    assert all(r["next_attempt_at"] is None for r in stored.values())
    assert queued_jobs(rt) == 0
    assert quota.usage(rt, accounts["instagram"], "instagram").used == 0
    # TikTok takes no first comment: its draft carries none, Instagram's does
    detail = client.get(f"{P}/posts/{instagram['id']}", headers=auth(USER)).get_json()["post"]
    assert detail["first_comment"] == {"status": "waiting", "platform_comment_id": None, "text": "More in bio",
                                       "error_message": None}
    assert client.get(f"{P}/posts/{tiktok['id']}", headers=auth(USER)).get_json()["post"]["first_comment"] is None


@pytest.mark.parametrize("extra, key, code", [
    ({"options": {"thumb_offset": "abc"}}, "instagram.options.thumb_offset", "invalid_option"),
    ({"options": {"no_such_option": 1}}, "options.no_such_option", "unknown_option"),
])
def test_a_draft_may_not_hold_options_no_platform_reads(client, rt, accounts, video, extra, key, code):
    answer = save(client, video, [accounts["instagram"]], **extra)
    assert answer.status_code == 422 and answer.get_json()["code"] == code
    assert key in answer.get_json()["errors"] and rows(rt) == {}


def test_a_first_comment_no_selected_platform_takes_is_refused(client, rt, accounts, video):
    answer = save(client, video, [accounts["tiktok"]], first_comment="Nobody reads this")
    assert answer.status_code == 422 and answer.get_json()["code"] == "first_comment_unsupported"
    assert rows(rt) == {}


def test_drafts_of_another_users_video_or_account_are_404(client, rt, accounts, video):
    foreign_video = add_video(rt, OTHER)
    assert save(client, foreign_video, [accounts["instagram"]]).status_code == 404
    foreign_account = add_account(rt, OTHER, "instagram", account_id="someone-else")
    assert save(client, video, [foreign_account]).status_code == 404
    assert rows(rt) == {}


def test_a_draft_is_published_now_with_every_check(client, rt, accounts, video):
    [draft] = save(client, video, [accounts["instagram"]]).get_json()["posts"]
    answer = client.post(f"{P}/posts/{draft['id']}/publish", headers=auth(USER))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    post = answer.get_json()["post"]
    assert post["status"] == "publishing" and post["group_id"] == draft["group_id"]
    assert Job.exists(queue.publish_job_id(draft["id"]), connection=rt.redis)
    again = client.post(f"{P}/posts/{draft['id']}/publish", headers=auth(USER))
    assert again.status_code == 409 and again.get_json()["code"] == "post_publishing"


def test_a_draft_that_does_not_fit_its_platform_stays_a_draft(client, rt, accounts, video):
    [draft] = save(client, video, [accounts["tiktok"]]).get_json()["posts"]
    answer = client.post(f"{P}/posts/{draft['id']}/publish", headers=auth(USER))
    assert answer.status_code == 422 and answer.get_json()["code"] == "privacy_level_required"
    assert "tiktok.privacy_level" in answer.get_json()["errors"]
    assert rows(rt)[draft["id"]]["status"] == "draft" and queued_jobs(rt) == 0


def test_a_draft_is_scheduled_and_only_a_draft(client, rt, accounts, video):
    [draft] = save(client, video, [accounts["twitter"]], media_type="text").get_json()["posts"]
    for bad, code in ((when(minutes=-5), "scheduled_in_past"), (when(days=400), "scheduled_too_far")):
        refused = client.post(f"{P}/posts/{draft['id']}/schedule", headers=auth(USER), json={"scheduled_at": bad})
        assert refused.status_code == 422 and refused.get_json()["code"] == code
    at = when(hours=3)
    answer = client.post(f"{P}/posts/{draft['id']}/schedule", headers=auth(USER), json={"scheduled_at": at})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["post"]["status"] == "scheduled"
    assert answer.get_json()["post"]["scheduled_at"] == at.replace("T", " ").rstrip("Z")
    assert Job.exists(queue.wake_job_id(draft["id"]), connection=rt.redis)
    again = client.post(f"{P}/posts/{draft['id']}/schedule", headers=auth(USER), json={"scheduled_at": at})
    assert again.status_code == 409 and again.get_json()["code"] == "post_scheduled"


def test_moving_a_draft_needs_a_usable_account(client, rt, accounts, video):
    [draft] = save(client, video, [accounts["instagram"]]).get_json()["posts"]
    a = rt.tables.accounts
    with rt.engine.begin() as conn:
        conn.execute(a.update().where(a.c.id == accounts["instagram"]).values(
            needs_reconnect=1, reconnect_reason="Instagram ended this login"))
    answer = client.post(f"{P}/posts/{draft['id']}/publish", headers=auth(USER))
    assert answer.status_code == 409 and answer.get_json()["code"] == "account_needs_reconnect"
    assert "Reconnect the Instagram account" in answer.get_json()["message"]


def test_moving_another_users_draft_is_404(client, rt, accounts, video):
    [draft] = save(client, video, [accounts["instagram"]]).get_json()["posts"]
    for route, body in (("publish", None), ("schedule", {"scheduled_at": when(hours=1)})):
        answer = client.post(f"{P}/posts/{draft['id']}/{route}", headers=auth(OTHER), json=body)
        assert answer.status_code == 404
    assert rows(rt)[draft["id"]]["status"] == "draft"


def test_n8n_waking_a_draft_gets_409(client, rt, accounts):
    draft = add_post(rt, USER, accounts["instagram"], platform="instagram", status="draft",
                     scheduled_at=utcnow() + timedelta(minutes=1))
    answer = client.post(f"{P}/internal/publish-scheduled", headers={"X-API-Key": INTERNAL_KEY},
                         json={"post_id": draft, "scheduled_at": when(minutes=1)})
    assert answer.status_code == 409 and answer.get_json()["code"] == "post_draft"


def test_repeated_draft_request_with_the_same_key_creates_once(client, rt, accounts, video):
    headers = {**auth(USER), "Idempotency-Key": "draft-1"}
    body = {"video_job_id": video, "accounts": [accounts["instagram"]], "caption": "once"}
    first = client.post(f"{P}/drafts", headers=headers, json=body).get_json()
    second = client.post(f"{P}/drafts", headers=headers, json=body).get_json()
    assert first == second
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(p)).scalar() == 1
