"""Pre-armed wake-ups and the engine's write-ahead economy, against real MariaDB, Redis, worker
processes and the stand-alone sandbox.

A scheduled wake-up runs early (AURAREELS_PREARM_SECONDS); a threaded worker prepares the post
and makes its first platform call at the due instant, never before, and a reschedule or cancel
meanwhile wins. A step that only reads writes no `in_flight` marker.
"""
from __future__ import annotations

import calendar
import json
import time
from datetime import timedelta

import pytest
import redis as redis_lib
from sqlalchemy import event, select

from bridge.app import create_app
from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.store.db import utcnow
from tests import conftest
from tests.conftest import WorkerProcess, auth, wait_for
from tests.factories import add_video
from tests.test_engine import connect

P = "/wp-json/aurareels/v1/social"
USER = 961
PREARM = 8  # seconds early the wake-ups run in these tests


def ThreadedWorkerProcess(env: dict[str, str], concurrency: int = 4) -> WorkerProcess:  # noqa: N802
    """`aurareels-bridge worker --concurrency N`: the threaded worker (the default), which hosts
    pre-armed posts."""
    return WorkerProcess(env, "--concurrency", str(concurrency))


def ForkingWorkerProcess(env: dict[str, str]) -> WorkerProcess:  # noqa: N802
    """`aurareels-bridge worker --fork`: each job in a forked child."""
    return WorkerProcess(env, "--fork")


@pytest.fixture(scope="module")
def prearm_database(fresh_database):
    return conftest.migrated_database(fresh_database)


@pytest.fixture
def world(prearm_database, engine_sandbox):
    """A database and Redis database of their own, a reset sandbox, and the workers a test starts."""
    from sqlalchemy import delete

    redis_url = conftest.REDIS_URL.rsplit("/", 1)[0] + "/8"
    redis_lib.Redis.from_url(redis_url).flushdb()
    env = {**conftest.engine_env(prearm_database, engine_sandbox), "AURAREELS_REDIS_URL": redis_url,
           "AURAREELS_PREARM_SECONDS": str(PREARM)}
    sandbox, _ = engine_sandbox
    conftest.reset_fast(sandbox)
    rt = Runtime.from_settings(Settings.from_env(env))
    t = rt.tables
    with rt.engine.begin() as conn:
        for table in (t.analytics, t.posts, t.accounts, t.videos, t.requests):
            conn.execute(delete(table))
    workers: list[WorkerProcess] = []
    yield env, rt, sandbox, workers
    for worker in workers:
        worker.stop()
    rt.engine.dispose()
    redis_lib.Redis.from_url(redis_url).flushdb()


def _row(rt, post_id):
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        return conn.execute(select(p).where(p.c.id == post_id)).mappings().first()


def _schedule(api, rt, account: int, when, caption: str) -> int:
    answer = api.post(f"{P}/schedule", headers=auth(USER), json={
        "video_job_id": add_video(rt, USER), "accounts": [account], "caption": caption,
        "privacy_level": "PRIVATE", "scheduled_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["posts"][0]["id"]


def _armed(rt, post_id) -> bool:
    """Prepared in a worker: still scheduled, under a worker's advisory lease."""
    row = _row(rt, post_id)
    return row["status"] == "scheduled" and row["lease_owner"] is not None


def _tiktok_calls(sandbox, since: int = 0, reads: bool = True) -> list[float]:
    """Times of TikTok's publishing calls after the first `since` requests (connecting an account
    reads creator_info too); without `reads`, only the calls that change something on TikTok."""
    return sorted(r["at"] for r in sandbox.requests("tiktok")[since:] if "/v2/post/publish/" in r["path"]
                  and (reads or "creator_info" not in r["path"]))


def _first_paths_after(sandbox, since: int, instant: float) -> list[str]:
    return [r["path"] for r in sorted(sandbox.requests("tiktok")[since:], key=lambda r: r["at"])
            if r["at"] >= instant and "/v2/post/publish/" in r["path"]]


def _epoch(naive_utc) -> float:
    return calendar.timegm(naive_utc.timetuple())


def _start_threaded(env, workers, rt):
    workers.append(ThreadedWorkerProcess(env).start())
    wait_for(lambda: rt.redis.get("bridge:scheduler:alive"), timeout=30)


def test_prearmed_post_is_prepared_early_and_calls_the_platform_only_at_its_time(world):
    env, rt, sandbox, workers = world
    _start_threaded(env, workers, rt)
    account = connect(rt, "tiktok", USER)
    api = create_app(runtime=rt).test_client()
    before = len(sandbox.requests("tiktok"))
    when = (utcnow() + timedelta(seconds=PREARM - 2)).replace(microsecond=0)
    post_id = _schedule(api, rt, account, when, "pre-armed")
    wait_for(lambda: _armed(rt, post_id), timeout=PREARM)
    assert time.time() < _epoch(when), "armed too late to tell"
    # armed: TikTok was only read (the creator's options), nothing was sent yet
    wait_for(lambda: _tiktok_calls(sandbox, before), timeout=PREARM)
    assert time.time() < _epoch(when), "read too late to tell"
    assert _tiktok_calls(sandbox, before, reads=False) == []
    wait_for(lambda: _row(rt, post_id)["status"] == "published", timeout=40, interval=0.2)
    calls = _tiktok_calls(sandbox, before, reads=False)
    assert calls and min(calls) >= _epoch(when), (min(calls) - _epoch(when))
    # at the instant the first call is the publishing call itself, no read before it
    assert _first_paths_after(sandbox, before, _epoch(when))[0].endswith("/video/init/")
    assert len(sandbox.emulator("tiktok").published) == 1
    metadata = json.loads(_row(rt, post_id)["metadata"])
    assert "in_flight" not in metadata


def test_reschedule_of_a_prearmed_post_wins(world):
    env, rt, sandbox, workers = world
    _start_threaded(env, workers, rt)
    account = connect(rt, "tiktok", USER)
    api = create_app(runtime=rt).test_client()
    before = len(sandbox.requests("tiktok"))
    when = (utcnow() + timedelta(seconds=PREARM - 2)).replace(microsecond=0)
    post_id = _schedule(api, rt, account, when, "moved while armed")
    wait_for(lambda: _armed(rt, post_id), timeout=PREARM)
    later = when + timedelta(seconds=6)
    answer = api.patch(f"{P}/posts/{post_id}/reschedule", headers=auth(USER),
                     json={"scheduled_at": later.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    wait_for(lambda: _row(rt, post_id)["status"] == "published", timeout=40, interval=0.2)
    calls = _tiktok_calls(sandbox, before, reads=False)
    assert min(calls) >= _epoch(later), "the post went out at its old time"
    assert len(sandbox.emulator("tiktok").published) == 1


def test_cancel_of_a_prearmed_post_wins(world):
    env, rt, sandbox, workers = world
    _start_threaded(env, workers, rt)
    account = connect(rt, "tiktok", USER)
    api = create_app(runtime=rt).test_client()
    before = len(sandbox.requests("tiktok"))
    when = (utcnow() + timedelta(seconds=PREARM - 3)).replace(microsecond=0)
    post_id = _schedule(api, rt, account, when, "cancelled while armed")
    wait_for(lambda: _armed(rt, post_id), timeout=PREARM)
    answer = api.delete(f"{P}/posts/{post_id}", headers=auth(USER))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    wait_for(lambda: time.time() > _epoch(when) + 3, timeout=PREARM + 5, interval=0.2)
    assert _row(rt, post_id)["status"] == "cancelled"
    assert _tiktok_calls(sandbox, before, reads=False) == []
    assert sandbox.emulator("tiktok").published == []


def test_forking_worker_woken_early_waits_for_the_time(world):
    """A forked job cannot hold a post for its time: it asks RQ to wake the post at its time."""
    env, rt, sandbox, workers = world
    workers.append(ForkingWorkerProcess(env).start())
    wait_for(lambda: rt.redis.get("bridge:scheduler:alive"), timeout=30)
    account = connect(rt, "tiktok", USER)
    api = create_app(runtime=rt).test_client()
    before = len(sandbox.requests("tiktok"))
    when = (utcnow() + timedelta(seconds=PREARM - 3)).replace(microsecond=0)
    post_id = _schedule(api, rt, account, when, "forking early")
    wait_for(lambda: _row(rt, post_id)["status"] == "published", timeout=40, interval=0.2)
    assert min(_tiktok_calls(sandbox, before)) >= _epoch(when)
    assert len(sandbox.emulator("tiktok").published) == 1


def test_a_prearmed_post_of_a_killed_worker_goes_out_after_its_lease(world):
    """The worker holding a pre-armed post dies: the post is not lost, the sweeper sends it once
    the advisory lease has run out (AURAREELS_LEASE_SECONDS=6 here), and only once."""
    from tests.test_reliability_regressions import crash

    env, rt, sandbox, workers = world
    holder = ThreadedWorkerProcess(env).start()
    workers.append(holder)
    wait_for(lambda: rt.redis.get("bridge:scheduler:alive"), timeout=30)
    account = connect(rt, "tiktok", USER)
    api = create_app(runtime=rt).test_client()
    before = len(sandbox.requests("tiktok"))
    when = (utcnow() + timedelta(seconds=PREARM - 2)).replace(microsecond=0)
    post_id = _schedule(api, rt, account, when, "holder dies")
    wait_for(lambda: _armed(rt, post_id), timeout=PREARM)
    crash(holder)
    workers.append(ForkingWorkerProcess(env).start())
    wait_for(lambda: _row(rt, post_id)["status"] == "published", timeout=60, interval=0.5)
    assert min(_tiktok_calls(sandbox, before, reads=False)) >= _epoch(when)
    assert len(sandbox.emulator("tiktok").published) == 1


def test_only_steps_with_an_effect_write_in_flight(world):
    """The write-ahead marker goes to MySQL before the init (it creates the post on TikTok), not
    before creator_info or the status poll, which only read; and a run writes few statements."""
    from bridge.engine import run_post
    from bridge.timefmt import iso_z

    env, rt, sandbox, workers = world
    account = connect(rt, "tiktok", USER)
    api = create_app(runtime=rt).test_client()
    when = (utcnow() + timedelta(seconds=2)).replace(microsecond=0)
    answer = api.post(f"{P}/schedule", headers=auth(USER), json={
        "video_job_id": add_video(rt, USER), "accounts": [account], "caption": "in flight",
        "privacy_level": "PRIVATE", "scheduled_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": {"tiktok_source": "PULL_FROM_URL"}})
    post_id = answer.get_json()["posts"][0]["id"]
    written: list[dict] = []
    statements: list[str] = []

    def watch(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.split(None, 1)[0].upper())
        if statement.startswith("UPDATE") and isinstance(parameters, dict):
            for value in parameters.values():
                if isinstance(value, str) and value.startswith("{") and "checkpoint" in value:
                    written.append(json.loads(value))

    event.listen(rt.engine, "before_cursor_execute", watch)
    try:
        wait_for(lambda: utcnow() >= when, timeout=10)
        assert run_post(rt, post_id, iso_z(when)) == "published"
    finally:
        event.remove(rt.engine, "before_cursor_execute", watch)
    markers = [m.get("in_flight") for m in written if m.get("in_flight")]
    assert markers == ["init"], written
    assert len(statements) <= 12, statements
    assert len(sandbox.emulator("tiktok").published) == 1


def test_one_lease_thread_renews_every_held_post(world):
    from bridge.engine.leases import leases as _leases
    from tests.factories import add_account, add_post

    env, rt, sandbox, workers = world
    account = add_account(rt, USER, "tiktok")
    p = rt.tables.posts
    ids = [add_post(rt, USER, account, status="publishing") for _ in range(3)]
    stale = utcnow() - timedelta(seconds=5)
    with rt.engine.begin() as conn:
        for i, post_id in enumerate(ids):
            conn.execute(p.update().where(p.c.id == post_id).values(lease_owner=f"test:{i}", lease_until=stale))
    for i, post_id in enumerate(ids[:2]):
        _leases.hold(rt, post_id, f"test:{i}")
    _leases.hold(rt, ids[2], "someone-else")  # not the row's owner: left alone
    try:
        assert _leases.renew() == 2
    finally:
        for i, post_id in enumerate(ids):
            _leases.drop(post_id, f"test:{i}")
        _leases.drop(ids[2], "someone-else")
    rows = [_row(rt, post_id) for post_id in ids]
    assert all(r["lease_until"] > utcnow() + timedelta(seconds=rt.settings.lease_seconds - 3) for r in rows[:2])
    assert rows[2]["lease_until"] == stale


class RecordingPool:
    """A pool that records what it is given and when, and runs nothing."""

    def __init__(self):
        self.submitted: list[tuple[float, int]] = []

    def submit(self, fn, priority: int = 1) -> None:
        self.submitted.append((time.time(), priority))


def test_dispatcher_claims_and_starts_a_post_at_its_instant_not_sooner(world):
    from bridge.engine.driver import Driver as _Driver
    from bridge.engine.leases import leases as _leases
    from bridge.engine.dispatch import Dispatcher, Prepared as _Prepared
    from tests.factories import add_account, add_post

    env, rt, sandbox, workers = world
    account = add_account(rt, USER, "tiktok")
    when = (utcnow() + timedelta(seconds=2)).replace(microsecond=0)
    post_id = add_post(rt, USER, account, status="scheduled", scheduled_at=when, lease_owner="test:armed",
                       lease_until=utcnow() + timedelta(seconds=60))
    other = add_post(rt, USER, account, status="scheduled", scheduled_at=when, lease_owner="someone-newer",
                     lease_until=utcnow() + timedelta(seconds=60))
    pool, dispatcher = RecordingPool(), Dispatcher()
    dispatcher.attach(pool)
    try:
        for pid, owner in ((post_id, "test:armed"), (other, "test:older")):
            post = dict(_row(rt, pid))
            dispatcher.arm(_Prepared(rt, pid, owner, _epoch(when), when, post, None, _Driver(rt, pid, owner)))
        assert _row(rt, post_id)["status"] == "scheduled"
        wait_for(lambda: pool.submitted, timeout=10, interval=0.01)
    finally:
        _leases.drop(post_id, "test:armed")
    assert len(pool.submitted) == 1  # the post whose preparation is no longer the latest one is not claimed
    started, priority = pool.submitted[0]
    # claimed a moment ahead (the run waits for the instant before its first call), never sooner
    assert started >= _epoch(when) - Dispatcher.CLAIM_AHEAD and priority == Dispatcher.FIRST
    row = _row(rt, post_id)
    assert row["status"] == "publishing" and row["lease_owner"] == "test:armed"
    assert _row(rt, other)["status"] == "scheduled"


def test_priority_pool_runs_first_steps_before_queued_jobs():
    import threading

    from bridge.worker import PriorityPool

    pool = PriorityPool(1)
    gate, order = threading.Event(), []
    pool.submit(gate.wait, 1)  # the only thread is busy
    wait_for(lambda: pool.idle() == 0 and pool.waiting() == 0, timeout=5)
    pool.submit(lambda: order.append("job"), 1)
    pool.submit(lambda: order.append("first"), 0)
    pool.submit(lambda: order.append("job2"), 1)
    assert pool.waiting(0) == 1 and pool.waiting() == 3
    gate.set()
    pool.shutdown(wait=True)
    assert order == ["first", "job", "job2"]
