"""The first comment of a live post, posted once (bridge/services/first_comments.py), against the
sandbox platforms and the real MariaDB and Redis: write-ahead intent, a lost answer settled from
the post's comments, never sent twice, and never touching the post itself."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from rq.job import Job
from sqlalchemy import select, update

from bridge import queue
from bridge.app import create_app
from bridge.engine.sweeper import sweep
from bridge.platforms.base import PostContent, PublishJob
from bridge.platforms.registry import get_client
from bridge.services import first_comments, oauth
from bridge.store.db import utcnow
from tests.conftest import auth
from tests.factories import SANDBOX_VIDEO, add_post
from tests.test_engine import connect

P = "/wp-json/aurareels/v1/social"
USER = 929
TEXT = {"facebook", "twitter", "linkedin"}  # published as text posts here (no upload needed)


@pytest.fixture
def sandbox(engine_sandbox):
    return engine_sandbox[0]


def live_post(rt, sandbox, platform: str, comment: str | None = "Link in bio 👇") -> int:
    """A post published on the sandbox platform by its client, stored as the engine leaves it, with
    its first comment handed over as the engine's hook does."""
    account_id = connect(rt, platform, USER)
    a = rt.tables.accounts
    with rt.engine.connect() as conn:
        account = conn.execute(select(a).where(a.c.id == account_id)).mappings().first()
    client = get_client(rt.settings, platform)
    content = PostContent(caption=f"Launch day on {platform}", media_type="text" if platform in TEXT else "video",
                          video_url=None if platform in TEXT else SANDBOX_VIDEO, privacy_level="PUBLIC")
    job = PublishJob(post_id=1, account=oauth.account_ref(rt, account), content=content,
                     caption=client.compose_caption(content))
    for _ in range(100):
        result = client.publish_step(job)
        job.checkpoint = json.loads(json.dumps(result.checkpoint))
        if result.done:
            break
        if result.wait is not None:
            sandbox.emulator(platform).process()
            sandbox.clock.advance(result.wait)
    metadata = {"first_comment": comment} if comment else {}
    post_id = add_post(rt, USER, account_id, platform=platform, status="published", scheduled_at=None,
                       platform_post_id=result.platform_post_id, platform_post_url=result.platform_post_url,
                       published_at=utcnow(), metadata=json.dumps(metadata))
    with rt.engine.begin() as conn:
        first_comments.on_published(conn, rt, post_id, platform, metadata)
    return post_id


def comment_row(rt, post_id):
    t = rt.tables.first_comments
    with rt.engine.connect() as conn:
        return conn.execute(select(t).where(t.c.post_id == post_id)).mappings().first()


def made(sandbox, platform: str) -> list:
    return sandbox.emulator(platform).snapshot()["comments"]


def due_now(rt, post_id) -> None:
    t = rt.tables.first_comments
    with rt.engine.begin() as conn:
        conn.execute(update(t).where(t.c.post_id == post_id).values(next_attempt_at=utcnow()))


@pytest.mark.parametrize("platform", ["instagram", "facebook", "youtube", "twitter", "linkedin"])
def test_first_comment_is_posted_once_under_the_live_post(live_rt, sandbox, platform):
    post_id = live_post(live_rt, sandbox, platform)
    assert first_comments.run(live_rt, post_id) == "posted"
    [comment] = made(sandbox, platform)
    assert comment["message"] == "Link in bio 👇"
    row = comment_row(live_rt, post_id)
    assert row["status"] == "posted" and row["platform_comment_id"] == comment["id"] and not row["in_flight"]
    assert first_comments.run(live_rt, post_id) == "not_claimed"
    assert len(made(sandbox, platform)) == 1
    view = create_app(runtime=live_rt).test_client().get(f"{P}/posts/{post_id}", headers=auth(USER)).get_json()
    assert view["post"]["first_comment"]["status"] == "posted"
    assert view["post"]["first_comment"]["platform_comment_id"] == comment["id"]


def test_tiktok_posts_get_no_first_comment(live_rt):
    with live_rt.engine.begin() as conn:
        assert first_comments.on_published(conn, live_rt, 1, "tiktok", {"first_comment": "hi"}) is False


def test_a_lost_answer_is_settled_from_the_posts_comments_never_sent_twice(live_rt, sandbox):
    post_id = live_post(live_rt, sandbox, "instagram")
    sandbox.inject("instagram", kind="lost", path=r"/comments$", method="POST")
    assert first_comments.run(live_rt, post_id) == "waiting"
    row = comment_row(live_rt, post_id)
    assert row["in_flight"] and row["status"] == "pending" and row["next_attempt_at"] > utcnow()
    assert Job.exists(queue.first_comment_job_id(post_id), connection=live_rt.redis)
    due_now(live_rt, post_id)
    assert first_comments.run(live_rt, post_id) == "posted"
    assert len(made(sandbox, "instagram")) == 1
    assert comment_row(live_rt, post_id)["platform_comment_id"] == made(sandbox, "instagram")[0]["id"]


def test_an_intent_whose_send_never_happened_is_sent_once(live_rt, sandbox):
    """A worker killed after writing its intent and before the call: the platform shows no
    comment, so it is sent, once."""
    post_id = live_post(live_rt, sandbox, "facebook")
    t = live_rt.tables.first_comments
    with live_rt.engine.begin() as conn:
        conn.execute(update(t).where(t.c.post_id == post_id).values(in_flight=1, sent_at=utcnow(), attempts=1))
    assert first_comments.run(live_rt, post_id) == "posted"
    assert len(made(sandbox, "facebook")) == 1


def test_linkedin_cannot_be_asked_so_a_lost_comment_is_unconfirmed_not_resent(live_rt, sandbox):
    post_id = live_post(live_rt, sandbox, "linkedin")
    sandbox.inject("linkedin", kind="lost", path=r"/comments$", method="POST")
    assert first_comments.run(live_rt, post_id) == "waiting"
    due_now(live_rt, post_id)
    assert first_comments.run(live_rt, post_id) == "unconfirmed"
    row = comment_row(live_rt, post_id)
    assert row["status"] == "unconfirmed" and "check the post on LinkedIn" in row["error_message"]
    assert len(made(sandbox, "linkedin")) == 1
    due_now(live_rt, post_id)
    assert first_comments.run(live_rt, post_id) == "not_claimed"


def test_a_refused_comment_fails_alone_and_the_post_stays_published(live_rt, sandbox):
    post_id = live_post(live_rt, sandbox, "instagram")
    world = sandbox.emulator("instagram").world
    for record in list(world.tokens.values()):
        world.revoke(record.user, record.client_id, "instagram_manage_comments")
    assert first_comments.run(live_rt, post_id) == "failed"
    row = comment_row(live_rt, post_id)
    assert row["status"] == "failed" and "connect the account again" in row["error_message"]
    p, a = live_rt.tables.posts, live_rt.tables.accounts
    with live_rt.engine.connect() as conn:
        post = conn.execute(select(p).where(p.c.id == post_id)).mappings().first()
        account = conn.execute(select(a).where(a.c.id == post["social_account_id"])).mappings().first()
    assert post["status"] == "published" and post["error_code"] is None
    assert not account["needs_reconnect"]  # publishing still works: only the comment was refused
    assert made(sandbox, "instagram") == []


def test_a_rate_limit_waits_with_nothing_in_flight(live_rt, sandbox):
    post_id = live_post(live_rt, sandbox, "twitter")
    sandbox.inject("twitter", kind="rate_limit", path=r"^/2/tweets$", method="POST", retry_after=120)
    assert first_comments.run(live_rt, post_id) == "waiting"
    row = comment_row(live_rt, post_id)
    assert not row["in_flight"] and row["next_attempt_at"] >= utcnow() + timedelta(seconds=100)
    due_now(live_rt, post_id)
    assert first_comments.run(live_rt, post_id) == "posted" and len(made(sandbox, "twitter")) == 1


def test_two_runs_at_once_post_one_comment(live_rt, sandbox):
    post_id = live_post(live_rt, sandbox, "youtube")
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(first_comments.run(live_rt, post_id)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("posted") == 1 and len(made(sandbox, "youtube")) == 1


def test_the_sweeper_queues_a_pending_comment_whose_job_was_lost(live_rt, sandbox):
    post_id = live_post(live_rt, sandbox, "facebook")
    live_rt.redis.flushdb()  # the hand-over's job is gone with Redis
    t = live_rt.tables.first_comments
    with live_rt.engine.begin() as conn:
        conn.execute(update(t).where(t.c.post_id == post_id).values(next_attempt_at=utcnow() - timedelta(seconds=30)))
    assert sweep(live_rt)["first_comments"] == 1
    assert Job.exists(queue.first_comment_job_id(post_id), connection=live_rt.redis)
    with live_rt.engine.begin() as conn:  # a run holding it: the sweeper leaves it alone
        conn.execute(update(t).where(t.c.post_id == post_id).values(
            lease_owner="someone", lease_until=utcnow() + timedelta(minutes=1)))
    live_rt.redis.flushdb()
    assert sweep(live_rt)["first_comments"] == 0
