"""A creator's day through the API, against the stand-alone sandbox platforms, the real MariaDB and
Redis and a real threaded worker that pre-arms scheduled posts:

draft -> validate -> edit -> schedule -> edit the scheduled post 5 s before its time, while its
wake-up is armed in the worker -> published with the new text, once -> the first comment posted
once under it -> the group listed.
"""
from __future__ import annotations

import calendar
import time
from datetime import timedelta

import pytest
import redis as redis_lib
from sqlalchemy import delete, select

from bridge.app import create_app
from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.store.db import utcnow
from tests import conftest
from tests.conftest import WorkerProcess, auth, wait_for
from tests.factories import add_video
from tests.test_engine import connect

P = "/wp-json/aurareels/v1/social"
USER = 1212
PREARM = 8  # seconds early the wake-ups run here


@pytest.fixture(scope="module")
def day_database(fresh_database):
    return conftest.migrated_database(fresh_database)


@pytest.fixture
def world(day_database, engine_sandbox):
    redis_url = conftest.REDIS_URL.rsplit("/", 1)[0] + "/7"
    redis_lib.Redis.from_url(redis_url).flushdb()
    env = {**conftest.engine_env(day_database, engine_sandbox), "AURAREELS_REDIS_URL": redis_url,
           "AURAREELS_PREARM_SECONDS": str(PREARM)}
    sandbox, _ = engine_sandbox
    conftest.reset_fast(sandbox)
    rt = Runtime.from_settings(Settings.from_env(env))
    t = rt.tables
    with rt.engine.begin() as conn:
        for table in (t.analytics, t.posts, t.accounts, t.videos, t.requests):
            conn.execute(delete(table))
    worker = WorkerProcess(env, "--concurrency", "4").start()
    wait_for(lambda: rt.redis.get("bridge:scheduler:alive"), timeout=60)
    yield rt, sandbox
    worker.stop()
    rt.engine.dispose()
    redis_lib.Redis.from_url(redis_url).flushdb()


def _row(rt, post_id):
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        return conn.execute(select(p).where(p.c.id == post_id)).mappings().first()


def _epoch(naive_utc) -> float:
    return calendar.timegm(naive_utc.timetuple())


def test_a_creators_day(world):
    rt, sandbox = world
    api = create_app(runtime=rt).test_client()
    instagram, tiktok = connect(rt, "instagram", USER), connect(rt, "tiktok", USER)
    video = add_video(rt, USER)
    body = {"video_job_id": video, "accounts": [instagram, tiktok], "caption": "Morning light",
            "hashtags": ["aurareels"], "captions": {"instagram": "Morning light on the coast"},
            "first_comment": "Shot and scheduled with AuraReels"}

    # 1. a draft, saved as it is: TikTok still needs an audience
    saved = api.post(f"{P}/drafts", headers=auth(USER), json=body)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    group = saved.get_json()["group_id"]
    drafts = {p["platform"]: p for p in saved.get_json()["posts"]}
    assert [i["code"] for i in drafts["tiktok"]["issues"]] == ["privacy_level_required"]

    # 2. validate: what is missing, for every account at once
    report = api.post(f"{P}/validate", headers=auth(USER), json=body).get_json()
    assert report["valid"] is False
    checked = {a["platform"]: a for a in report["accounts"]}
    assert checked["instagram"]["ok"]
    assert [e["code"] for e in checked["tiktok"]["errors"]] == ["privacy_level_required"]
    fixed = api.post(f"{P}/validate", headers=auth(USER), json={**body, "privacy_level": "PRIVATE"}).get_json()
    assert fixed["valid"] is True, fixed

    # 3. edit the drafts
    for platform in ("instagram", "tiktok"):
        answer = api.patch(f"{P}/posts/{drafts[platform]['id']}", headers=auth(USER),
                           json={"privacy_level": "PRIVATE"})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.get_json()["post"]["status"] == "draft"

    # 4. schedule both, a little more than the pre-arm window ahead
    when = (utcnow() + timedelta(seconds=PREARM + 6)).replace(microsecond=0)
    for platform in ("instagram", "tiktok"):
        answer = api.post(f"{P}/posts/{drafts[platform]['id']}/schedule", headers=auth(USER),
                          json={"scheduled_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")})
        assert answer.status_code == 200, answer.get_data(as_text=True)
    ig_post = drafts["instagram"]["id"]

    # 5. 5 s before its time the Instagram post is armed in the worker with the old text: edit it
    wait_for(lambda: (r := _row(rt, ig_post))["status"] == "scheduled" and r["lease_owner"], timeout=PREARM + 10,
             interval=0.1)
    wait_for(lambda: time.time() >= _epoch(when) - 5, timeout=PREARM + 5, interval=0.05)
    assert _row(rt, ig_post)["status"] == "scheduled" and _row(rt, ig_post)["lease_owner"], "not armed when edited"
    edited = api.patch(f"{P}/posts/{ig_post}", headers=auth(USER),
                       json={"caption": "Evening light on the coast", "first_comment": "Edited: see you tonight"})
    assert edited.status_code == 200, edited.get_data(as_text=True)
    assert time.time() < _epoch(when), "the edit came after the post's time"

    # 6. both go out at their time; Instagram received the new text, once
    for post_id in (ig_post, drafts["tiktok"]["id"]):
        wait_for(lambda: _row(rt, post_id)["status"] in ("published", "failed"), timeout=60, interval=0.2)
        assert _row(rt, post_id)["status"] == "published", _row(rt, post_id)["error_message"]
    [posted] = sandbox.emulator("instagram").published
    assert posted["caption"].startswith("Evening light on the coast") and "Morning" not in posted["caption"]
    [tiktok_post] = sandbox.emulator("tiktok").published
    assert tiktok_post["title"].startswith("Morning light")

    # 7. the first comment under the Instagram post, once; none on TikTok
    def comment():
        return api.get(f"{P}/posts/{ig_post}", headers=auth(USER)).get_json()["post"]["first_comment"]

    state = wait_for(lambda: (c := comment())["status"] not in ("waiting", "pending") and c, timeout=60, interval=0.2)
    [made] = sandbox.emulator("instagram").snapshot()["comments"]
    assert state["status"] == "posted" and state["platform_comment_id"] == made["id"]
    assert made["message"] == "Edited: see you tonight" and made["object"] == posted["id"]

    # 8. the group: both posts of the submission, as the dashboard lists them
    listed = api.get(f"{P}/posts?group_id={group}", headers=auth(USER)).get_json()
    assert listed["total"] == 2 and {p["status"] for p in listed["posts"]} == {"published"}
    by_platform = {p["platform"]: p for p in listed["posts"]}
    assert by_platform["instagram"]["first_comment"]["status"] == "posted"
    assert by_platform["tiktok"]["first_comment"] is None
    assert all(p["group_id"] == group for p in listed["posts"])
