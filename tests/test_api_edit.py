"""PATCH /posts/{id}: a draft or scheduled post is edited, validated as /schedule validates, and a
wake-up armed with the old row can never publish it (its claim needs the lease the edit clears)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from rq.job import Job
from sqlalchemy import select, update

from bridge import queue
from bridge.domain.status import Status, transition
from bridge.store.db import utcnow
from tests.conftest import auth
from tests.factories import add_account, add_post

P = "/wp-json/aurareels/v1/social"
USER, OTHER = 717, 718


@pytest.fixture
def accounts(rt):
    return {platform: add_account(rt, USER, platform) for platform in ("tiktok", "instagram", "twitter")}


def row(rt, post_id):
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        return conn.execute(select(p).where(p.c.id == post_id)).mappings().first()


def scheduled(rt, account, platform="instagram", **extra):
    return add_post(rt, USER, account, platform=platform, status="scheduled",
                    scheduled_at=(utcnow() + timedelta(hours=2)).replace(microsecond=0),
                    privacy_level="PUBLIC", metadata=json.dumps({"media_type": "video", "options": {}}), **extra)


def edit(client, post_id, user=USER, **body):
    return client.patch(f"{P}/posts/{post_id}", headers=auth(user), json=body)


def test_a_scheduled_post_is_edited_and_moved(client, rt, accounts):
    post_id = scheduled(rt, accounts["instagram"])
    later = (utcnow() + timedelta(hours=5)).replace(microsecond=0)
    answer = edit(client, post_id, caption="New words", hashtags=["fresh"], first_comment="Link in bio",
                  scheduled_at=later.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    post = answer.get_json()["post"]
    assert post["caption"] == "New words" and post["hashtags"] == ["fresh"] and post["status"] == "scheduled"
    assert post["first_comment"]["status"] == "waiting" and post["first_comment"]["text"] == "Link in bio"
    stored = row(rt, post_id)
    assert stored["scheduled_at"] == later and stored["next_attempt_at"] == later
    assert Job.exists(queue.wake_job_id(post_id), connection=rt.redis)


def test_captions_for_its_platform_win_over_caption(client, rt, accounts):
    post_id = scheduled(rt, accounts["instagram"])
    answer = edit(client, post_id, caption="for everyone", captions={"instagram": "for Instagram", "twitter": "x"})
    assert answer.status_code == 200 and answer.get_json()["post"]["caption"] == "for Instagram"


def test_an_edit_clears_the_lease_of_an_armed_wake_up_so_its_claim_fails(client, rt, accounts):
    """The armed run claims on its own lease and the time it loaded: an edit at the same time
    must still make that claim fail."""
    post_id = scheduled(rt, accounts["instagram"])
    at = row(rt, post_id)["scheduled_at"]
    p = rt.tables.posts
    with rt.engine.begin() as conn:  # as a worker pre-arming the post holds it
        conn.execute(update(p).where(p.c.id == post_id).values(lease_owner="armed-run",
                                                               lease_until=utcnow() + timedelta(seconds=90)))
    assert edit(client, post_id, caption="the new text").status_code == 200
    assert row(rt, post_id)["lease_owner"] is None
    with rt.engine.begin() as conn:
        assert not transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.PUBLISHING,
                              where={"scheduled_at": at, "lease_owner": "armed-run"}, lease_owner="armed-run")
    assert row(rt, post_id)["status"] == "scheduled"


@pytest.mark.parametrize("platform, body, key, code", [
    ("tiktok", {"caption": "x" * 2201}, "tiktok.caption", "caption_too_long"),
    ("tiktok", {"privacy_level": None}, "tiktok.privacy_level", "privacy_level_required"),
    ("tiktok", {"first_comment": "hi"}, "first_comment", "first_comment_unsupported"),
    ("twitter", {"first_comment": "日" * 141}, "twitter.first_comment", "first_comment_too_long"),
    ("instagram", {"hashtags": [f"t{n}" for n in range(31)]}, "instagram.hashtags", "too_many_hashtags"),
    ("instagram", {"options": {"thumb_offset": -1}}, "instagram.options.thumb_offset", "invalid_option"),
])
def test_an_edit_is_validated_as_schedule_validates(client, rt, accounts, platform, body, key, code):
    post_id = scheduled(rt, accounts[platform], platform=platform, caption="before")
    answer = edit(client, post_id, **body)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["code"] == code and key in answer.get_json()["errors"]
    assert row(rt, post_id)["caption"] == "before"


def test_a_time_in_the_past_or_beyond_a_year_is_refused(client, rt, accounts):
    post_id = scheduled(rt, accounts["instagram"])
    for delta, code in ((timedelta(minutes=-1), "scheduled_in_past"), (timedelta(days=366), "scheduled_too_far")):
        answer = edit(client, post_id, scheduled_at=(utcnow() + delta).strftime("%Y-%m-%d %H:%M:%S"))
        assert answer.status_code == 422 and answer.get_json()["code"] == code


def test_a_draft_is_edited_and_stays_a_draft(client, rt, accounts):
    draft = add_post(rt, USER, accounts["twitter"], platform="twitter", status="draft", caption="draft",
                     metadata=json.dumps({"media_type": "text"}))
    planned = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    answer = edit(client, draft, caption="ready now", scheduled_at=planned.strftime("%Y-%m-%d %H:%M:%S"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["post"]["status"] == "draft" and answer.get_json()["post"]["caption"] == "ready now"
    assert row(rt, draft)["scheduled_at"] == planned
    assert not Job.exists(queue.wake_job_id(draft), connection=rt.redis)


@pytest.mark.parametrize("status", ["publishing", "published", "failed", "cancelled"])
def test_only_drafts_and_scheduled_posts_can_be_edited(client, rt, accounts, status):
    post_id = add_post(rt, USER, accounts["instagram"], platform="instagram", status=status)
    answer = edit(client, post_id, caption="too late")
    assert answer.status_code == 409 and answer.get_json()["code"] == "not_editable"
    assert row(rt, post_id)["caption"] == "Hello"


def test_another_users_post_is_404(client, rt, accounts):
    post_id = scheduled(rt, accounts["instagram"])
    assert edit(client, post_id, user=OTHER, caption="mine now").status_code == 404
    assert row(rt, post_id)["caption"] == "Hello"


def test_a_first_comment_is_removed_with_null(client, rt, accounts):
    post_id = scheduled(rt, accounts["instagram"])
    assert edit(client, post_id, first_comment="First!").get_json()["post"]["first_comment"]["text"] == "First!"
    assert edit(client, post_id, first_comment=None).get_json()["post"]["first_comment"] is None
    assert "first_comment" not in json.loads(row(rt, post_id)["metadata"])
