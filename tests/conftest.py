"""Shared fixtures. Tests talk to the real MariaDB and Redis of this machine.

Each run creates its own MariaDB database (dropped at the end) and uses one Redis database that
is flushed around every test. Nothing falls back to SQLite or a fake Redis: if a server is not
reachable the run fails with a message that says which.
"""
from __future__ import annotations

import os
import secrets
import time
import uuid

import jwt
import pymysql
import pytest
import redis as redis_lib
from sqlalchemy import delete

from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.store.db import make_engine
from bridge.store.migrate import migrate

MYSQL_HOST = os.environ.get("AURAREELS_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("AURAREELS_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("AURAREELS_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("AURAREELS_TEST_MYSQL_PASSWORD", "")
REDIS_URL = os.environ.get("AURAREELS_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
_private_redis = None


def pytest_configure(config):
    """Each test session gets its own real Redis server on a free port (unless
    AURAREELS_TEST_REDIS_URL names one): RQ keys have no namespace, so two sessions sharing a
    server would run each other's jobs. Falls back to 127.0.0.1:6379 without a redis-server binary."""
    global REDIS_URL, ENGINE_REDIS_URL, _private_redis
    import shutil
    import socket
    import subprocess

    if os.environ.get("AURAREELS_TEST_REDIS_URL") or not shutil.which("redis-server"):
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _private_redis = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--databases", "16", "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis_lib.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis_lib.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    REDIS_URL = f"redis://127.0.0.1:{port}/13"
    ENGINE_REDIS_URL = f"redis://127.0.0.1:{port}/12"


def pytest_unconfigure(config):
    if _private_redis is not None:
        _private_redis.terminate()
        _private_redis.wait(timeout=10)

# Known fake secrets: the security suite asserts none of them ever shows in a log or a response.
JWT_SECRET = "test-jwt-secret-Zq8v-0123456789abcdef"
VAULT_KEY = "test-vault-key-K3yM4t3r1al"
INTERNAL_KEY = "test-internal-key-9Hn2-internal"
WP_URL = "https://site.example"
FAKE_SECRETS = (JWT_SECRET, VAULT_KEY, INTERNAL_KEY)


def mysql_connect(database: str | None = None):
    return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD,
                           database=database, autocommit=True, charset="utf8mb4")


def mysql_url(database: str) -> str:
    auth = MYSQL_USER + (f":{MYSQL_PASSWORD}" if MYSQL_PASSWORD else "")
    return f"mysql+pymysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/{database}"


@pytest.fixture(scope="session")
def fresh_database():
    """A factory of empty MariaDB databases, all dropped when the session ends."""
    made: list[str] = []

    def make() -> str:
        name = f"aurareels_t_{uuid.uuid4().hex[:10]}"
        try:
            conn = mysql_connect()
        except pymysql.err.OperationalError as exc:  # pragma: no cover - environment problem
            pytest.fail(f"MariaDB is not reachable at {MYSQL_HOST}:{MYSQL_PORT} ({exc}); start it first", False)
        with conn:
            conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        made.append(name)
        return name

    yield make
    with mysql_connect() as conn:
        for name in made:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


def migrated_database(fresh_database) -> str:
    """A new database with the bridge's tables, as its SQLAlchemy URL."""
    url = mysql_url(fresh_database())
    engine = make_engine(url)
    migrate(engine, "wp_")
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def database_url(fresh_database) -> str:
    return migrated_database(fresh_database)


def base_env(**overrides) -> dict[str, str]:
    env = {
        "AURAREELS_TABLE_PREFIX": "wp_",
        "AURAREELS_REDIS_URL": REDIS_URL,
        "AURAREELS_SOCIAL_ENCRYPTION_KEY": VAULT_KEY,
        "JWT_AUTH_SECRET_KEY": JWT_SECRET,
        "AURAREELS_WP_URL": WP_URL,
        "N8N_API_KEY": INTERNAL_KEY,
        "AURAREELS_PUBLIC_URL": "http://127.0.0.1:8080",
        "AURAREELS_FRONTEND_URL": "http://frontend.example",
        "AURAREELS_SANDBOX": "1",
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def redis_client():
    client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis_lib.exceptions.ConnectionError:  # pragma: no cover - environment problem
        pytest.fail(f"Redis is not reachable at {REDIS_URL}; start it first", False)
    return client


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings.from_env(base_env(AURAREELS_DATABASE_URL=database_url))


@pytest.fixture(scope="session")
def shared_engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def rt(settings, shared_engine, redis_client) -> Runtime:
    """A runtime on the session database, emptied before each test, and a flushed Redis."""
    runtime = Runtime.from_settings(settings, engine=shared_engine)
    t = runtime.tables
    with shared_engine.begin() as conn:
        for table in (t.analytics, t.posts, t.accounts, t.videos, t.requests, t.webhook_events):
            conn.execute(delete(table))
    redis_client.flushdb()
    yield runtime
    redis_client.flushdb()


@pytest.fixture
def live_rt(database_url, engine_sandbox, shared_engine, redis_client) -> Runtime:
    """`rt` whose platform hosts are the stand-alone sandbox (through AURAREELS_HOST_MAP), so
    accounts connect for real through the emulators' consent pages and the test reads the
    platforms' own records; its Redis is the API tests' own (no worker runs its jobs)."""
    import json as _json

    from bridge.sandbox.core import host_map_for

    sandbox, base_url = engine_sandbox
    reset_fast(sandbox)
    settings = Settings.from_env(base_env(AURAREELS_DATABASE_URL=database_url, AURAREELS_RATE_LIMIT="0",
                                          AURAREELS_HOST_MAP=_json.dumps(host_map_for(base_url, sandbox))))
    runtime = Runtime.from_settings(settings, engine=shared_engine)
    t = runtime.tables
    with shared_engine.begin() as conn:
        for table in (t.analytics, t.posts, t.accounts, t.videos, t.requests, t.webhook_events):
            conn.execute(delete(table))
    redis_client.flushdb()
    yield runtime
    redis_client.flushdb()


@pytest.fixture
def app(rt):
    from bridge.app import create_app

    application = create_app(runtime=rt)
    application.testing = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def make_jwt(user_id=1, *, secret: str = JWT_SECRET, algorithm: str = "HS256", iss: str = WP_URL,
             ttl: int = 3600, **claims) -> str:
    now = int(time.time())
    payload = {"iss": iss, "iat": now, "nbf": now, "exp": now + ttl, "data": {"user": {"id": str(user_id)}}}
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=algorithm)


def auth(user_id=1, **kw) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_jwt(user_id, **kw)}"}


def random_token(prefix: str) -> str:
    return f"{prefix}.{secrets.token_urlsafe(24)}"


class WorkerProcess:
    """A real `aurareels-bridge worker` process on the test database and Redis."""

    def __init__(self, env: dict[str, str], *args: str):
        self.env = env
        self.args = args  # extra `worker` options, e.g. "--concurrency", "4"
        self.proc = None

    def start(self):
        import subprocess
        import sys

        full_env = dict(os.environ)
        full_env.update(self.env)
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"aurareels-worker-{os.getpid()}.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "worker", *self.args], env=full_env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, redis_url: str, timeout: float = 90.0) -> None:
        """Until the worker has registered with RQ, so a test's own time limit never pays for a cold
        start; a worker that dies or never registers fails here with its log."""
        client = redis_lib.Redis.from_url(redis_url)
        deadline = time.monotonic() + timeout
        while not client.scard("rq:workers"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                with open(self.log.name, "rb") as fh:
                    tail = fh.read()[-4000:].decode("utf-8", "replace")
                raise RuntimeError(f"the worker did not start (exit code {self.proc.poll()}):\n{tail}")
            time.sleep(0.1)

    def kill(self, sig=9):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self):
        import signal

        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except Exception:
                self.proc.kill()
        self.log.close()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll `predicate` until it returns a truthy value (returned) or time runs out (AssertionError).
    Used to wait for an asynchronous effect, never to assert how long something took."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def worker_env(database_url: str, **extra) -> dict[str, str]:
    return base_env(AURAREELS_DATABASE_URL=database_url, AURAREELS_SWEEP_SECONDS="2", AURAREELS_LEASE_SECONDS="6",
                    **extra)


ENGINE_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/12"


@pytest.fixture(scope="session")
def engine_database_url(fresh_database) -> str:
    """A database of its own for tests that run real workers, so they never race the API tests."""
    return migrated_database(fresh_database)


@pytest.fixture(scope="session")
def engine_sandbox():
    """A stand-alone sandbox shared by the test process and the worker processes (through
    AURAREELS_HOST_MAP), so tests inject faults and read the platforms' own records."""
    from bridge.sandbox.core import start_server

    server, sandbox, base_url = start_server()
    yield sandbox, base_url
    server.shutdown()


def engine_env(engine_database_url: str, engine_sandbox, **extra) -> dict[str, str]:
    import json as _json

    from bridge.sandbox.core import host_map_for

    sandbox, base_url = engine_sandbox
    # the engine tests create dozens of posts a minute for one user through the API: no rate limit
    extra.setdefault("AURAREELS_RATE_LIMIT", "0")
    return worker_env(engine_database_url, AURAREELS_REDIS_URL=ENGINE_REDIS_URL,
                      AURAREELS_HOST_MAP=_json.dumps(host_map_for(base_url, sandbox)), AURAREELS_HTTP_TIMEOUT="2",
                      **extra)


@pytest.fixture(scope="session")
def engine_settings(engine_database_url, engine_sandbox) -> Settings:
    return Settings.from_env(engine_env(engine_database_url, engine_sandbox))


@pytest.fixture(scope="session")
def worker(engine_database_url, engine_sandbox):
    """One real `aurareels-bridge worker` process on the engine database and the shared sandbox."""
    process = WorkerProcess(engine_env(engine_database_url, engine_sandbox)).start()
    process.wait_ready(ENGINE_REDIS_URL)
    yield process
    process.stop()


def reset_fast(sandbox) -> None:
    """Reset the sandbox, with every platform finishing its processing and moderation at once."""
    sandbox.reset()
    for emulator in sandbox.emulators.values():
        fast = {k: 0 for k in emulator.config if k.endswith(("processing_seconds", "moderation_seconds"))}
        if fast:
            emulator.configure(**fast)


@pytest.fixture
def engine_rt(engine_settings, worker, engine_sandbox) -> Runtime:
    """A runtime on the engine database with a running worker and a reset sandbox whose platforms
    finish processing at once; rows emptied before each test."""
    sandbox, _ = engine_sandbox
    reset_fast(sandbox)
    runtime = Runtime.from_settings(engine_settings)
    t = runtime.tables
    with runtime.engine.begin() as conn:
        for table in (t.analytics, t.posts, t.accounts, t.videos, t.requests):
            conn.execute(delete(table))
    yield runtime
    runtime.engine.dispose()


# ------------------------------------------------------------------------------ secrets watch
# The whole suite runs with known fake secrets; none of them, and no token an emulator issued,
# may appear in a log line (as production formats it) or in a response the test client received.
from tests import secret_watch as _secret_watch  # noqa: E402

def fake_app_credentials() -> dict[str, str]:
    """Fake app credentials for every platform of the registry, under the variables its client
    declares (a platform added to the registry gets its own without an edit here)."""
    from bridge.platforms.registry import client_classes

    values: dict[str, str] = {}
    for platform, cls in client_classes().items():
        values[cls.credential_vars.client_id] = f"{platform}-client-id"
        values[cls.credential_vars.client_secret] = f"{platform}-client-secret-XYZ"
    return values


APP_SECRETS = tuple(v for v in fake_app_credentials().values() if v.endswith("-secret-XYZ"))
SECRET_WATCH = _secret_watch.SecretWatch(fixed=FAKE_SECRETS + APP_SECRETS)


@pytest.fixture(scope="session", autouse=True)
def secret_watch():
    undo = _secret_watch.install(SECRET_WATCH)
    yield SECRET_WATCH
    undo()


@pytest.fixture(autouse=True)
def _secret_watch_handler(secret_watch):
    """Re-attach the capture handler if a test replaced the root logger's handlers."""
    _secret_watch.ensure_handler(secret_watch)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that ran a real worker shows the worker's last log lines, so a failure on a
    machine we cannot log into still says what the worker was doing."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or "worker" not in getattr(item, "fixturenames", ()):
        return
    worker_log = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"aurareels-worker-{os.getpid()}.log")
    try:
        with open(worker_log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 6000))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return
    report.sections.append(("worker log (last lines)", tail))


def pytest_sessionfinish(session, exitstatus):
    worker_log = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"aurareels-worker-{os.getpid()}.log")
    if os.path.exists(worker_log):
        SECRET_WATCH.scan_file(worker_log)
    if not SECRET_WATCH.leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"SECRET LEAK: {leak}" for leak in SECRET_WATCH.leaks[:50]]
    if reporter is not None:
        reporter.section("secrets watch", sep="=", red=True, bold=True)
        for line in lines:
            reporter.write_line(line)
    else:  # pragma: no cover
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
