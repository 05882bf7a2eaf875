"""What a run ends with, and what a waiting post says it waits for: unexpected errors are bounded,
`wait_reason` and `next_attempt_at` follow every wait, and the platform's upload cap never holds a
post's publishing call. Real MariaDB, Redis, worker process and the stand-alone sandbox."""
from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from sqlalchemy import update

from bridge.queue import enqueue_now
from bridge.services.posts import post_view
from bridge.store.db import utcnow
from tests.conftest import wait_for
from tests.factories import add_post
from tests.test_engine import _stopped, connect, post_row, published_on

USER = 991


def _due_now(rt, post_id: int) -> None:
    """Time passes: the post's next attempt is due now, and its job is queued."""
    p = rt.tables.posts
    with rt.engine.begin() as conn:
        conn.execute(update(p).where(p.c.id == post_id).values(next_attempt_at=utcnow()))
    enqueue_now(rt, post_id)


def test_an_unexpected_error_fails_the_post_with_internal_error_after_three_attempts(engine_rt, engine_sandbox,
                                                                                      worker):
    """A stored row the code cannot read (hashtags that are numbers, which the API would refuse) makes
    composing the caption raise an AttributeError: the post is tried three times, then fails with
    `internal_error`, and the worker's log says which exception and where, instead of retrying
    every 5 minutes for ever."""
    sandbox = engine_sandbox[0]
    account = connect(engine_rt, "instagram", USER)
    post_id = add_post(engine_rt, USER, account, platform="instagram", status="publishing", next_attempt_at=utcnow(),
                       hashtags=json.dumps([5]), metadata=json.dumps({"media_type": "video"}))
    enqueue_now(engine_rt, post_id)
    for attempt in (1, 2):
        row = wait_for(lambda: json.loads(post_row(engine_rt, post_id)["metadata"] or "{}").get("internal_errors")
                       == attempt and post_row(engine_rt, post_id), timeout=30)
        assert row["status"] == "publishing" and row["wait_reason"] == "retry"
        assert row["next_attempt_at"] > utcnow() + timedelta(seconds=30)  # not retried at once
        _due_now(engine_rt, post_id)
    row = wait_for(lambda: (r := post_row(engine_rt, post_id))["status"] == "failed" and r, timeout=30)
    assert row["error_code"] == "internal_error" and "AttributeError" in row["error_message"]
    assert row["wait_reason"] is None and row["next_attempt_at"] is None
    assert published_on(sandbox, "instagram") == []
    worker.log.flush()
    with open(worker.log.name, encoding="utf-8", errors="replace") as handle:
        lines = [line for line in handle if f'"post_id": {post_id}' in line and "unexpected AttributeError" in line]
    assert len(lines) == 3 and "bridge/platforms/base.py:" in lines[-1], lines


def test_a_rate_limited_post_says_so_until_it_goes_on(engine_rt, engine_sandbox, worker):
    sandbox = engine_sandbox[0]
    account = connect(engine_rt, "tiktok", USER)
    sandbox.inject("tiktok", kind="rate_limit", path="video/init", retry_after=3, times=1)
    post_id = add_post(engine_rt, USER, account, status="publishing", next_attempt_at=utcnow())
    enqueue_now(engine_rt, post_id)
    row = wait_for(lambda: (r := post_row(engine_rt, post_id))["wait_reason"] == "rate_limit" and r, timeout=30)
    assert row["status"] == "publishing" and row["next_attempt_at"] >= utcnow()
    view = post_view({**row, "account_name": "x"})
    assert view["wait_reason"] == "rate_limit" and view["next_attempt_at"] is not None
    row = wait_for(lambda: (r := post_row(engine_rt, post_id))["status"] == "published" and r, timeout=40)
    assert row["wait_reason"] is None
    assert post_view({**row, "account_name": "x"})["next_attempt_at"] is None


def test_a_post_waiting_for_processing_or_its_quota_says_which(engine_rt, engine_sandbox, worker):
    from bridge.engine import run_post

    sandbox = engine_sandbox[0]
    sandbox.emulator("tiktok").configure(processing_seconds=600)
    account = connect(engine_rt, "tiktok", USER)
    with _stopped(worker):
        processing = add_post(engine_rt, USER, account, status="publishing", next_attempt_at=utcnow(),
                              metadata=json.dumps({"options": {"tiktok_source": "PULL_FROM_URL"}}))
        assert run_post(engine_rt, processing) == "waiting"
        assert post_row(engine_rt, processing)["wait_reason"] == "processing"
        # one post already went out today and the account's limit is one: the next one waits a day
        add_post(engine_rt, USER, account, status="published", published_at=utcnow())
        over = dataclasses.replace(engine_rt, settings=engine_rt.settings.with_overrides(quota_limits={"tiktok": 2}))
        waiting = add_post(engine_rt, USER, account, status="publishing", next_attempt_at=utcnow())
        assert run_post(over, waiting) == "waiting"
        row = post_row(engine_rt, waiting)
    assert row["wait_reason"] == "quota" and row["next_attempt_at"] > utcnow() + timedelta(hours=23)


def test_the_upload_cap_never_holds_a_publishing_call(engine_rt, engine_sandbox, worker):
    """TikTok's uploads are at their fleet-wide cap (another post holds the only slot): a due post
    still makes its publishing call (init) at once; only its upload waits for a slot."""
    from bridge.engine import run_post
    from bridge.engine.caps import PlatformCap

    sandbox = engine_sandbox[0]
    account = connect(engine_rt, "tiktok", USER)
    capped = dataclasses.replace(engine_rt, settings=engine_rt.settings.with_overrides(concurrency_caps={"tiktok": 1}))
    cap = PlatformCap(capped, "tiktok")
    engine_rt.redis.delete(cap.key)  # slots a killed worker of an earlier test left behind
    assert cap.acquire("another post's upload")
    try:
        with _stopped(worker):
            post_id = add_post(engine_rt, USER, account, status="publishing", next_attempt_at=utcnow())
            before = len(sandbox.requests("tiktok"))
            assert run_post(capped, post_id) == "waiting"
        calls = [r["path"] for r in sandbox.requests("tiktok")[before:]]
        assert any(path.endswith("/video/init/") for path in calls), calls
        assert not any("upload" in path for path in calls), calls
        row = post_row(engine_rt, post_id)
        assert row["wait_reason"] == "rate_limit" and json.loads(row["metadata"])["checkpoint"]["stage"] == "upload"
    finally:
        cap.release("another post's upload")
    _due_now(engine_rt, post_id)
    row = wait_for(lambda: (r := post_row(engine_rt, post_id))["status"] == "published" and r, timeout=40)
    assert len(published_on(sandbox, "tiktok")) == 1
