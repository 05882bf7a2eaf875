"""Regressions found by the reliability runs (scripts/reliability), kept in the default suite.

Each runs the real thing at a small scale: real worker processes, MariaDB, Redis and the
stand-alone sandbox.
"""
from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
import redis as redis_lib
from sqlalchemy import select

from bridge.app import create_app
from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.store.db import utcnow
from tests import conftest
from tests.conftest import WorkerProcess, auth, wait_for
from tests.factories import add_video
from tests.reliability.harness import descendants
from tests.test_engine import connect

P = "/wp-json/aurareels/v1/social"
USER = 951


@pytest.fixture
def isolated(fresh_database, engine_sandbox):
    """A database and a Redis database of their own, so the workers of this test are the only ones."""
    url = conftest.migrated_database(fresh_database)
    redis_url = conftest.REDIS_URL.rsplit("/", 1)[0] + "/9"
    redis_lib.Redis.from_url(redis_url).flushdb()
    env = {**conftest.engine_env(url, engine_sandbox), "AURAREELS_REDIS_URL": redis_url}
    sandbox, _ = engine_sandbox
    conftest.reset_fast(sandbox)
    rt = Runtime.from_settings(Settings.from_env(env))
    workers: list[WorkerProcess] = []
    yield env, rt, workers
    for worker in workers:
        worker.stop()
    rt.engine.dispose()
    redis_lib.Redis.from_url(redis_url).flushdb()


def crash(worker: WorkerProcess) -> None:
    """SIGKILL a worker and every process it started (RQ's scheduler), as a lost machine would."""
    for pid in [worker.proc.pid] + descendants(worker.proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.proc.wait(timeout=30)


def test_scheduled_post_goes_out_when_the_worker_running_the_scheduler_dies(isolated):
    env, rt, workers = isolated
    workers.extend(WorkerProcess(env).start() for _ in range(2))
    holder_name = wait_for(lambda: rt.redis.get("bridge:scheduler:alive"), timeout=30).decode()
    holder = next(w for w in workers if holder_name.endswith(f".{w.proc.pid}"))
    account = connect(rt, "tiktok", USER)
    api = create_app(runtime=rt).test_client()
    crash(holder)
    when = utcnow() + timedelta(seconds=3)
    answer = api.post(f"{P}/schedule", headers=auth(USER), json={
        "video_job_id": add_video(rt, USER), "accounts": [account], "caption": "after the scheduler died",
        "privacy_level": "PUBLIC",
        "scheduled_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    post_id = answer.get_json()["posts"][0]["id"]
    p = rt.tables.posts
    # the surviving worker's sweeper runs every 2 s: a due post must not wait for the scheduler
    wait_for(lambda: _status(rt, post_id) == "published", timeout=35, interval=0.5)
    with rt.engine.connect() as conn:
        published_at = conn.execute(select(p.c.published_at).where(p.c.id == post_id)).scalar()
    assert published_at - when < timedelta(seconds=30)


def _status(rt, post_id):
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        return conn.execute(select(p.c.status).where(p.c.id == post_id)).scalar()


def test_sanity_a_scheduled_post_goes_out_with_two_live_workers(isolated):
    """The control of the test above: the same set-up without the crash publishes on time."""
    env, rt, workers = isolated
    workers.extend(WorkerProcess(env).start() for _ in range(2))
    wait_for(lambda: rt.redis.get("bridge:scheduler:alive"), timeout=30)
    account = connect(rt, "tiktok", USER)
    api = create_app(runtime=rt).test_client()
    when = utcnow() + timedelta(seconds=3)
    answer = api.post(f"{P}/schedule", headers=auth(USER), json={
        "video_job_id": add_video(rt, USER), "accounts": [account], "caption": "control",
        "privacy_level": "PUBLIC",
        "scheduled_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")})
    post_id = answer.get_json()["posts"][0]["id"]
    wait_for(lambda: _status(rt, post_id) == "published", timeout=35, interval=0.5)


# ----------------------------------------------------------------------------------------------
def test_expired_token_on_the_reconcile_read_does_not_fail_a_post_that_went_out(engine_rt, sandbox_and_api):
    """The storm found a post marked failed (token_expired) that the platform had published: the
    answer to the publish call was lost, and the read that checks what happened met an expired
    token. An expired token on that read is a reason to refresh and check again, not a verdict."""
    from tests.test_engine import final, publish, published_on

    sandbox, api = sandbox_and_api
    account = connect(engine_rt, "linkedin")
    sandbox.inject("linkedin", kind="lost", method="POST", path=r"^/rest/posts$", times=1)
    sandbox.inject("linkedin", kind="error", method="GET", path=r"^/rest/posts$", error="EXPIRED_ACCESS_TOKEN", times=1)
    post_id = publish(api, engine_rt, account)
    row = final(engine_rt, post_id, timeout=90)
    records = published_on(sandbox, "linkedin")
    assert len(records) == 1, records
    assert row["status"] == "published", (row["status"], row["error_code"], row["error_message"])


@pytest.fixture
def sandbox_and_api(engine_rt, engine_sandbox):
    return engine_sandbox[0], create_app(runtime=engine_rt).test_client()


# ----------------------------------------------------------------------------------------------
# The sweeper is the safety net for wake-ups the queue lost. It skips a post whose job looks
# "live" in Redis; after a worker crash, a job can look live and never run.
def test_sweeper_requeues_a_job_that_a_killed_worker_had_taken(rt):
    from rq import Queue

    from bridge import queue
    from bridge.engine import sweeper
    from tests.factories import add_account, add_post

    account = add_account(rt, USER, "tiktok")
    post = add_post(rt, USER, account, status="publishing", scheduled_at=None,
                    next_attempt_at=utcnow() - timedelta(minutes=2), lease_until=None)
    queue.enqueue_now(rt, post)
    queue = Queue("publish", connection=rt.redis)
    # what RQ's dequeue does (LMOVE to the intermediate list) before the worker is SIGKILLed
    rt.redis.lmove(queue.key, queue.intermediate_queue_key, "LEFT", "RIGHT")
    assert queue.job_ids == []
    sweeper.sweep(rt)
    assert f"publish-{post}" in queue.job_ids


def test_sweeper_publishes_a_due_post_whose_wake_up_nobody_moves(rt):
    from rq import Queue

    from bridge import queue
    from bridge.engine import sweeper
    from tests.factories import add_account, add_post

    account = add_account(rt, USER, "tiktok")
    due = utcnow() - timedelta(minutes=2)
    post = add_post(rt, USER, account, status="scheduled", scheduled_at=due, next_attempt_at=due)
    queue.hand_over(rt, post, due, USER)  # the wake-up sits in the ScheduledJobRegistry, 2 minutes late
    sweeper.sweep(rt)
    assert f"publish-{post}" in Queue("publish", connection=rt.redis).job_ids


# ----------------------------------------------------------------------------------------------
# Connecting accounts: the storm connects 200 accounts, six at a time, and some callbacks
# answered 503 "database unavailable" with MariaDB up: InnoDB deadlocks (1213) between
# concurrent first connections.
def test_two_first_connections_at_once_do_not_deadlock(rt):
    """Both connections read (and gap-lock) before either inserts: the interleaving the storm hit
    by chance (3 in 600), made certain here by holding each INSERT until both have read."""
    import threading

    from sqlalchemy import event

    from bridge.platforms.base import AccountProfile, TokenSet
    from bridge.services.oauth import upsert_account

    both_read = threading.Barrier(2)
    table = rt.tables.accounts.name

    def hold_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            try:
                both_read.wait(timeout=3)
            except threading.BrokenBarrierError:
                pass

    errors: list[str] = []

    def connect(user: int, platform: str) -> None:
        try:
            upsert_account(rt, user, platform, AccountProfile(
                account_id=f"{platform}-{user}", account_name="n", tokens=TokenSet(access_token="a", refresh_token="r")))
        except Exception as exc:  # noqa: BLE001 - the test counts every failure
            errors.append(f"{type(exc).__name__}: {getattr(exc, 'orig', exc)}")

    event.listen(rt.engine, "before_cursor_execute", hold_insert)
    try:
        threads = [threading.Thread(target=connect, args=args) for args in ((USER, "youtube"), (USER + 1, "linkedin"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        event.remove(rt.engine, "before_cursor_execute", hold_insert)
    assert errors == []
    a = rt.tables.accounts
    with rt.engine.connect() as conn:
        assert conn.execute(select(a.c.id)).all().__len__() == 2


def test_callback_redirects_the_browser_even_when_storing_the_account_fails(client, rt, monkeypatch):
    """With AURAREELS_OAUTH_CONFIRM=0 the callback stores the account itself (with the default, the
    confirmation does: tests/test_security_wave2.py covers a failing store there)."""
    from urllib.parse import parse_qs, urlsplit

    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from tests.test_security import _consent, _params, _start

    def deadlock(conn, cursor, statement, parameters, context, executemany):
        # every write of the account row fails, as under a deadlock storm that outlasts the retries
        if statement.lstrip().upper().startswith(("INSERT INTO WP_AURAREELS_SOCIAL_ACCOUNTS",
                                                  "UPDATE WP_AURAREELS_SOCIAL_ACCOUNTS")):
            raise OperationalError(statement, parameters, Exception("(1213, 'Deadlock found when trying to get lock')"))

    monkeypatch.setattr(rt, "settings", rt.settings.with_overrides(oauth_confirm=False))
    start = _start(client, "tiktok", USER)
    params = _params(_consent(client, start["auth_url"]))
    event.listen(rt.engine, "before_cursor_execute", deadlock)
    try:
        response = client.get(f"{P}/callback/tiktok", query_string=params)
    finally:
        event.remove(rt.engine, "before_cursor_execute", deadlock)
    assert response.status_code == 302, (response.status_code, response.get_data(as_text=True)[:200])
    target = urlsplit(response.headers["Location"])
    assert target.path == "/dashboard/social-accounts" and parse_qs(target.query)["status"] == ["error"]


def test_repeated_expired_token_on_the_reconcile_read_never_fails_a_post_that_went_out(engine_rt, sandbox_and_api):
    """The full storm found 7 of 2,000 posts published on the platform but marked failed: the answer
    to the publishing call was lost and the reads that check what happened met expired tokens again
    and again. While a step's outcome is unknown, a post may end published or `unconfirmed` (Retry
    then checks first), never with a plain failure."""
    from tests.test_engine import final, publish, published_on

    sandbox, api = sandbox_and_api
    account = connect(engine_rt, "linkedin")
    sandbox.inject("linkedin", kind="lost", method="POST", path=r"^/rest/posts$", times=1)
    sandbox.inject("linkedin", kind="error", method="GET", path=r"^/rest/posts$", error="EXPIRED_ACCESS_TOKEN", times=3)
    post_id = publish(api, engine_rt, account)
    row = final(engine_rt, post_id, timeout=90)
    assert len(published_on(sandbox, "linkedin")) == 1
    assert row["status"] == "published" or row["error_code"] == "unconfirmed", (row["status"], row["error_code"])


def test_a_login_refused_again_and_again_after_refreshing_fails_as_token_rejected(engine_rt, sandbox_and_api):
    """The other side of the same rule: with nothing in flight, a platform that keeps refusing
    freshly refreshed logins ends the post `token_rejected` after one more try, and nothing is sent."""
    from tests.test_engine import final, publish, published_on

    sandbox, api = sandbox_and_api
    account = connect(engine_rt, "linkedin")
    sandbox.inject("linkedin", kind="error", method="POST", path=r"^/rest/posts$", error="EXPIRED_ACCESS_TOKEN", times=50)
    post_id = publish(api, engine_rt, account)
    row = final(engine_rt, post_id, timeout=90)
    assert published_on(sandbox, "linkedin") == []
    assert (row["status"], row["error_code"]) == ("failed", "token_rejected")
    assert "connect the account again" in row["error_message"]


def test_a_failing_permalink_read_after_instagram_published_still_ends_published(engine_rt, sandbox_and_api):
    """The Redis-wipe storm found an Instagram post published on the platform but failed here with
    `timeout`: media_publish had answered, and the read of the new media's permalink met 502s and a
    timeout until the transient retries ran out. Once the platform says the post is live, the post
    is published here, with or without its permalink."""
    from tests.test_engine import final, publish, published_on

    sandbox, api = sandbox_and_api
    account = connect(engine_rt, "instagram")
    # every read of a published media object (the emulator's media ids start with 17920) fails
    sandbox.inject("instagram", kind="status", status=502, method="GET", path=r"^/v[0-9.]+/17920[0-9]+$", times=0)
    post_id = publish(api, engine_rt, account)
    row = final(engine_rt, post_id, timeout=60)
    records = published_on(sandbox, "instagram")
    assert len(records) == 1
    assert row["status"] == "published", (row["status"], row["error_code"], row["error_message"])
    assert row["platform_post_id"] == records[0]["id"]


def test_rotated_refresh_token_survives_the_database_going_away_mid_refresh(engine_rt, monkeypatch):
    """The MariaDB-restart storm ended a LinkedIn post with account_needs_reconnect: a refresh had
    spent the rotating refresh token on the platform while the database was down, so the new one
    was never stored. The refresh now keeps the new tokens in hand and stores them once the
    database answers again; the account goes on without reconnecting."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from bridge.services import oauth

    monkeypatch.setattr(oauth, "STORE_RETRY_SECONDS", 30.0)
    account_id = connect(engine_rt, "twitter")
    a = engine_rt.tables.accounts
    with engine_rt.engine.connect() as conn:
        before = conn.execute(select(a.c.refresh_token).where(a.c.id == account_id)).scalar_one()
    failures = []

    def database_gone(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE") and "access_token" in statement and len(failures) < 3:
            failures.append(statement)
            raise OperationalError(statement, parameters, Exception("(2013, 'Lost connection to server')"))

    event.listen(engine_rt.engine, "before_cursor_execute", database_gone)
    try:
        row = oauth.refresh_account(engine_rt, account_id, force=True)
    finally:
        event.remove(engine_rt.engine, "before_cursor_execute", database_gone)
    assert len(failures) == 3  # the refresh's own write, then two tries while the database is "down"
    assert row["refresh_token"] != before and not row["needs_reconnect"]
    # the stored token is the live one: the platform takes it (X refuses a spent refresh token)
    again = oauth.refresh_account(engine_rt, account_id, force=True)
    assert again["refresh_token"] != row["refresh_token"] and not again["needs_reconnect"]


def test_a_post_that_may_be_live_ends_unconfirmed_not_failed(isolated, engine_sandbox, monkeypatch):
    """The quick storm found a YouTube post published on the platform but failed here with
    `platform_unavailable`: the upload had completed (the video exists) and the processing polls
    met 5xx until the transient retries ran out. A post that may be live ends `unconfirmed` (Retry
    then asks YouTube first instead of uploading again). Runs the engine in this process, with no
    worker and no back-off, so each run is one attempt."""
    from bridge import engine
    from bridge.engine import driver
    from tests.test_engine import post_row, publish

    _, rt, _ = isolated
    sandbox = engine_sandbox[0]
    monkeypatch.setattr(driver, "TRANSIENT_DELAYS", (0, 0, 0))
    account = connect(rt, "youtube")
    post_id = publish(create_app(runtime=rt).test_client(), rt, account)
    sandbox.inject("youtube", kind="status", status=502, method="GET", path=r"^/youtube/v3/videos$", times=0)
    outcomes = []
    for _ in range(12):
        outcomes.append(engine.run_post(rt, post_id))
        row = post_row(rt, post_id)
        if row["status"] in ("published", "failed"):
            break
    assert len(sandbox.emulator("youtube").published) == 1
    assert (row["status"], row["error_code"]) == ("failed", "unconfirmed"), (outcomes, row["error_message"])
    assert "may already have published" in row["error_message"]


def test_a_worker_starting_over_after_losing_redis_leaves_no_armed_post_behind(isolated, engine_sandbox):
    """A threaded worker that loses Redis hands its pre-armed posts back to RQ and starts over in
    the same process. A wake-up that arrives while it hands back must go back to RQ too, not stay
    armed (its lease renewed for ever, the sweeper kept away); starting over starts no second
    dispatcher thread."""
    import threading

    from rq.job import Job

    from bridge import engine
    from bridge import queue
    from bridge.engine.prearm import prepare
    from bridge.timefmt import iso_z
    from bridge.worker import PriorityPool
    from tests.factories import add_post

    _, rt, _ = isolated
    account = connect(rt, "tiktok")
    when = (utcnow() + timedelta(minutes=2)).replace(microsecond=0)
    posts = [add_post(rt, USER, account, status="scheduled", scheduled_at=when, caption=f"armed {i}")
             for i in range(2)]

    def lease_owner(post_id):
        p = rt.tables.posts
        with rt.engine.connect() as conn:
            return conn.execute(select(p.c.lease_owner).where(p.c.id == post_id)).scalar_one()

    pool = PriorityPool(2, name="t")
    engine.dispatcher.attach(pool)
    try:
        assert engine.wake(rt, posts[0], iso_z(when), "tiktok") == "armed"
        assert lease_owner(posts[0]) is not None
        assert engine.dispatcher.hand_back() == 1
        pool.shutdown()
        assert lease_owner(posts[0]) is None
        assert Job.exists(queue.due_wake_job_id(posts[0], when), connection=rt.redis)
        # a wake-up that was already past its check when the hand-back began
        assert prepare(rt, posts[1], when, iso_z(when)) == "armed"
        assert engine.dispatcher.armed() == 0 and lease_owner(posts[1]) is None
        assert Job.exists(queue.due_wake_job_id(posts[1], when), connection=rt.redis)
        assert not engine.dispatcher.available()
        # starting over: the new pool is used, by the timer thread already there
        timers = sum(t.name == "dispatcher" for t in threading.enumerate())
        engine.dispatcher.attach(PriorityPool(2, name="t2"))
        assert engine.dispatcher.available()
        assert sum(t.name == "dispatcher" for t in threading.enumerate()) == timers
    finally:
        engine.dispatcher.hand_back()


def test_a_shut_down_pool_refuses_new_tasks_so_the_dispatcher_hands_them_back():
    from bridge.worker import PriorityPool

    pool = PriorityPool(1, name="closing")
    ran = []
    pool.submit(lambda: ran.append(1))
    pool.shutdown(wait=True)
    assert ran == [1]
    with pytest.raises(RuntimeError):
        pool.submit(lambda: ran.append(2))


def test_a_job_started_by_a_worker_that_stopped_beating_is_not_live(rt):
    """A worker killed while its job was `started` left the job looking alive for 90 s (the job's
    own heartbeat age), so the sweeper waited that long before sending a due post. The job is now
    dead as soon as its worker's own heartbeat (30 s TTL) is gone."""
    from datetime import datetime, timezone

    from rq import Queue
    from rq.job import JobStatus

    from bridge.engine import sweeper
    from bridge.queue import HEARTBEAT_PREFIX

    job = Queue("publish", connection=rt.redis).enqueue("bridge.jobs.noop", job_id="publish-777")
    rt.redis.lrem("rq:queue:publish", 0, job.id)
    job.worker_name = "host.4242"
    job.started_at = job.last_heartbeat = datetime.now(timezone.utc)
    job.set_status(JobStatus.STARTED)
    job.save()
    rt.redis.set(HEARTBEAT_PREFIX + "host.4242", "1", ex=30)
    assert sweeper.job_live(rt, job.id)
    rt.redis.delete(HEARTBEAT_PREFIX + "host.4242")  # the worker is gone
    assert not sweeper.job_live(rt, job.id)
