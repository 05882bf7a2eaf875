"""A worker outlives its Redis: when the server goes away and comes back, the same worker process
registers again and runs jobs, instead of exiting (a scheduler that silently stops after a restart
is what users of other schedulers report)."""
from __future__ import annotations

import socket
import subprocess

import pytest
import redis as redis_lib

from bridge.cli import keep_working
from tests.conftest import WorkerProcess, migrated_database, wait_for, worker_env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis_lib.Redis(port=port)
    wait_for(lambda: _answers(client), timeout=10)
    return proc


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except redis_lib.exceptions.ConnectionError:
        return False


def _registered(client) -> bool:
    try:
        return client.scard("rq:workers") == 1 and any(k.startswith(b"bridge:worker:") for k in client.keys("bridge:*"))
    except redis_lib.exceptions.ConnectionError:
        return False


def _beating(client) -> bool:
    try:
        return any(k.startswith(b"bridge:worker:") for k in client.keys("bridge:*"))
    except redis_lib.exceptions.ConnectionError:
        return False


@pytest.fixture
def own_database(fresh_database):
    return migrated_database(fresh_database)


def test_worker_waits_for_redis_and_starts_over(own_database):
    port = _free_port()
    server = _redis_server(port)
    client = redis_lib.Redis(port=port)
    worker = WorkerProcess(worker_env(own_database, AURAREELS_REDIS_URL=f"redis://127.0.0.1:{port}/0")).start()
    try:
        wait_for(lambda: _registered(client), timeout=30)
        server.kill()
        server.wait(timeout=10)
        # the worker notices (its heartbeat and dequeue fail) but stays up while Redis is gone
        with pytest.raises(AssertionError):
            wait_for(lambda: worker.proc.poll() is not None, timeout=4)
        server = _redis_server(port)  # a restarted server, empty
        # its heartbeat is back (RQ may have kept its loop and only reconnected, or the worker
        # started over and registered again: either way it is the same process)
        wait_for(lambda: _beating(client), timeout=60)
        assert worker.proc.poll() is None
        # and it runs jobs again
        from rq import Queue

        job = Queue("publish", connection=client).enqueue("bridge.jobs.noop")
        wait_for(lambda: job.get_status(refresh=True) == "finished", timeout=30)
    finally:
        worker.stop()
        server.kill()
        server.wait(timeout=10)


class _Gone:
    def __init__(self, answers_after: int):
        self.pings = 0
        self.answers_after = answers_after
        self.deleted = []

    def ping(self):
        self.pings += 1
        if self.pings <= self.answers_after:
            raise redis_lib.exceptions.ConnectionError("down")
        return True

    def delete(self, key):
        self.deleted.append(key)


class _Rt:
    def __init__(self, redis):
        self.redis = redis


def test_keep_working_backs_off_while_redis_is_down_and_returns_the_worker_exit_code():
    runs, waits = [], []

    def run():
        runs.append(1)
        if len(runs) < 3:
            raise redis_lib.exceptions.ConnectionError("Connection refused")
        return 0

    rt = _Rt(_Gone(answers_after=4))
    assert keep_working(rt, run, max_wait=3, sleep=waits.append) == 0
    assert len(runs) == 3
    assert waits[:5] == [0.5, 1.0, 2.0, 3, 3]  # doubling, capped
    assert len(rt.redis.deleted) == 2 and rt.redis.deleted[0].startswith("rq:worker:")


def test_keep_working_does_not_swallow_other_errors():
    def run():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        keep_working(_Rt(_Gone(0)), run, sleep=lambda s: None)


def test_a_worker_of_several_processes_runs_jobs_in_each_and_stops_whole(own_database):
    """`aurareels-bridge worker --processes 2`: two worker processes, each with its heartbeat and
    its threads, under one command; a stop signal to the command stops both."""
    import signal

    from rq import Queue

    port = _free_port()
    server = _redis_server(port)
    client = redis_lib.Redis(port=port)
    worker = WorkerProcess(worker_env(own_database, AURAREELS_REDIS_URL=f"redis://127.0.0.1:{port}/0"),
                           "--processes", "2", "--concurrency", "4").start()
    try:
        wait_for(lambda: len(client.keys("bridge:worker:*")) == 2, timeout=60)
        names = {k.decode().rsplit(".", 1)[1] for k in client.keys("bridge:worker:*")}
        assert str(worker.proc.pid) not in names  # the command supervises; its children work
        jobs = [Queue("publish", connection=client).enqueue("bridge.jobs.noop") for _ in range(20)]
        wait_for(lambda: all(j.get_status(refresh=True) == "finished" for j in jobs), timeout=30)
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(timeout=30)
        wait_for(lambda: not client.keys("bridge:worker:*"), timeout=10)
    finally:
        worker.stop()
        server.kill()
        server.wait(timeout=10)
