"""The storm harness: real MariaDB, real Redis, real worker processes, a stand-alone sandbox.

A run owns everything it touches, so it never disturbs another session on the machine: its own
`redis-server` (a port of its own, database 8) and its own `mariadbd` (a data directory and port of
its own), which it may wipe, kill and restart. The emulators run in this process as a stand-alone
HTTP server reached through AURAREELS_HOST_MAP, so the run reads the platforms' own records of what
was published (the source of truth for duplicates).

A storm: connect N accounts through the real OAuth flow (API connect -> consent page -> callback),
inject faults on a random fraction of every platform API call, schedule P posts through the API
due within a window, run W workers, SIGKILL one (with its children) every few seconds and start a
replacement, play the run's events (FLUSHALL, Redis restart, MariaDB restart), wait until every
post is final or the deadline passes, and report per platform from MySQL and the emulators.
"""
from __future__ import annotations

import calendar
import json
import os
import platform as platform_mod
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pymysql
import redis as redis_lib
from sqlalchemy import func, insert, select

from bridge.config import PLATFORMS, Settings
from bridge.runtime import Runtime
from bridge.sandbox.core import Fault, host_map_for, start_server
from bridge.store.db import make_engine
from bridge.store.migrate import migrate
from tests.conftest import base_env, make_jwt
from tests.platforms.oauth_driver import consent

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("AURAREELS_RELIABILITY_DIR", ROOT / ".bench" / "reliability"))
P = "/wp-json/aurareels/v1/social"
FINAL = ("published", "failed", "cancelled")
MEDIA = "https://media.sandbox.aurareels.test/videos/storm.mp4?size=200000&duration=12"

# Platform limits raised for the storm, so that the injected faults are the only refusals (a
# creator posting ten times in two minutes would otherwise meet the platforms' real caps).
STORM_CONFIG = {
    "tiktok": {"processing_seconds": 1, "moderation_seconds": 1, "rate_init_per_min": 10**6,
               "rate_creator_info_per_min": 10**6, "rate_status_per_min": 10**6, "daily_post_cap": 10**6},
    "youtube": {"processing_seconds": 1, "quota_units_per_day": 10**9, "insert_calls_per_day": 10**9,
                "channel_uploads_per_day": 10**6, "requests_per_minute": 10**7},
    "twitter": {"processing_seconds": 1, "user_posts_per_24h": 10**6, "limit_tweets_create": 10**6,
                "limit_media_chunked": 10**6, "limit_media_upload": 10**6, "limit_tweet_lookup": 10**6,
                "limit_users_me": 10**6, "limit_user_tweets": 10**6},
    # LinkedIn sends no Retry-After (its 429s are daily limits, waited out until midnight UTC); the
    # storm's 429 fault is "429 with Retry-After", so the emulator sends one here
    "linkedin": {"processing_seconds": 1, "member_daily_limit": 10**6, "app_daily_limit": 10**9,
                 "retry_after_header": True},
    "instagram": {"video_processing_seconds": 1, "quota_total": 10**6, "buc_calls_per_window": 10**8,
                  "app_calls_per_hour": 10**8},
    "facebook": {"video_processing_seconds": 1, "reels_per_day": 10**6, "buc_calls_per_window": 10**8,
                 "app_calls_per_hour": 10**8},
}
# The platform's own "your token expired" answer, for the expired-token fault.
EXPIRED_TOKEN_ERROR = {"tiktok": "access_token_invalid", "youtube": "authError", "twitter": "unauthorized",
                       "linkedin": "EXPIRED_ACCESS_TOKEN", "instagram": "token_expired", "facebook": "token_expired"}
# Faults hit the platforms' API calls; the OAuth endpoints and consent pages are left alone (a lost
# answer to a rotating refresh would only test the platform's grace period, not the bridge).
API_PATHS = r"^(?!.*(?:oauth|/token|accessToken|authoriz|dialog|debug_token))"
# share of the injected faults by kind (together: the run's fault rate)
FAULT_MIX = (("status", 0.25), ("rate_limit", 0.20), ("timeout", 0.15), ("lost", 0.10), ("lost_timeout", 0.10),
             ("expired_token", 0.20))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


# ------------------------------------------------------------------------------ own servers
class OwnRedis:
    """A redis-server of the run's own on a free port: FLUSHALL and restarts touch nobody else."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 8) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)

    def start(self) -> "OwnRedis":
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--databases", "16", "--loglevel", "warning", "--maxclients", "2000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.client().ping(), 15, what="redis-server up")
        return self

    def flushall(self) -> None:
        self.client().flushall()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class OwnMariaDB:
    """A mariadbd of the run's own (data directory under .bench/, its own port), so a restart
    mid-storm stops no one else's database. Installed on first use with mariadb-install-db."""

    def __init__(self, datadir: Path, port: int | None = None):
        self.datadir = Path(datadir)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd")) and bool(
            shutil.which("mariadb-install-db") or shutil.which("mysql_install_db"))

    def _binary(self) -> str:
        return shutil.which("mariadbd") or "/usr/sbin/mariadbd"

    def install(self) -> None:
        if (self.datadir / "mysql").exists():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        tool = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run([tool, "--no-defaults", *user, f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> "OwnMariaDB":
        self.install()
        user = ["--user=root"] if os.geteuid() == 0 else []
        log = open(self.datadir.parent / "mariadbd.log", "ab")
        self.proc = subprocess.Popen(
            [self._binary(), "--no-defaults", *user, f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.datadir.parent / 'mariadbd.sock'}",
             f"--pid-file={self.datadir.parent / 'mariadbd.pid'}", "--skip-name-resolve", "--max-connections=1000",
             "--innodb-buffer-pool-size=256M", "--innodb-flush-log-at-trx-commit=2", "--skip-log-bin"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.connect().close() or True, 60, 0.2, what="mariadbd up")
        return self

    def connect(self, database: str | None = None):
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", database=database,
                               autocommit=True, charset="utf8mb4", connect_timeout=2)

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        try:
            with self.connect() as conn:
                conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        except pymysql.err.MySQLError:
            pass

    def stop(self, clean: bool = True) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        if clean:
            try:
                subprocess.run(["mysqladmin", "--no-defaults", "-uroot", "-h127.0.0.1", f"-P{self.port}", "shutdown"],
                               timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.proc.wait(timeout=60)
                return
            except Exception:
                pass
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


# ------------------------------------------------------------------------------------ workers
def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


class Worker:
    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int):
        full = dict(os.environ)
        full.update(env)
        self.log = open(log_path, "ab")
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.worker_main", "worker", "--concurrency", str(concurrency)],
            env=full, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def crash(self) -> None:
        """SIGKILL the worker and everything it started (RQ's job children and scheduler)."""
        pids = [self.proc.pid] + descendants(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.crash()
                return
        for pid in descendants(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


class Fleet(threading.Thread):
    """W workers; every `kill_every` seconds one chosen at random is SIGKILLed and replaced. A
    worker that exits on its own is restarted too (as a process supervisor would) and counted."""

    def __init__(self, env: dict[str, str], size: int, concurrency: int, logs: Path,
                 kill_every: tuple[float, float] | None):
        super().__init__(name="fleet", daemon=True)
        self.env, self.size, self.concurrency, self.logs = env, size, concurrency, logs
        self.kill_every = kill_every
        self.workers: list[Worker] = []
        self.kills = 0
        self.unexpected_exits: list[int] = []
        self.started = 0
        self._halt = threading.Event()
        self._chaos = threading.Event()
        self._lock = threading.Lock()

    def spawn(self) -> Worker:
        self.started += 1
        worker = Worker(self.env, self.logs / f"worker-{self.started:03d}.log", self.concurrency)
        self.workers.append(worker)
        return worker

    def start_all(self) -> None:
        for _ in range(self.size):
            self.spawn()
        self.start()

    def chaos(self, on: bool) -> None:
        (self._chaos.set if on else self._chaos.clear)()

    def run(self) -> None:
        next_kill = time.monotonic() + (random.uniform(*self.kill_every) if self.kill_every else 1e9)
        while not self._halt.wait(0.25):
            with self._lock:
                for worker in list(self.workers):
                    if not worker.alive():
                        self.unexpected_exits.append(worker.proc.returncode)
                        self.workers.remove(worker)
                        worker.log.close()
                        if len(self.unexpected_exits) > 50:  # a crash loop: stop feeding it
                            continue
                        self.spawn()
                if self.kill_every and self._chaos.is_set() and time.monotonic() >= next_kill and self.workers:
                    victim = random.choice(self.workers)
                    self.workers.remove(victim)
                    victim.crash()
                    self.kills += 1
                    self.spawn()
                if time.monotonic() >= next_kill:
                    next_kill = time.monotonic() + random.uniform(*self.kill_every) if self.kill_every else 1e9

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:
            self.join(timeout=10)
        with self._lock:
            for worker in self.workers:
                worker.stop()


# ---------------------------------------------------------------------------------------- plan
@dataclass
class StormPlan:
    name: str
    posts: int = 2000
    accounts: int = 200
    window: float = 120.0  # every post is due within this many seconds
    lead: float = 40.0  # seconds from the start of post creation to the first due time
    fault_rate: float = 0.20
    workers: int = 3
    concurrency: int = 24
    kill_every: tuple[float, float] | None = (3.0, 7.0)
    chaos_after_due: float = 120.0  # kills go on this long after the last due time
    settle: float = 600.0  # deadline after the last due time
    retry_delays: str = "5,15,30"
    lease_seconds: int = 20
    sweep_seconds: int = 5
    http_timeout: float = 2.0
    timezone: str = "UTC"
    events: list = field(default_factory=list)  # (seconds after the first due time, action)
    extra_env: dict = field(default_factory=dict)
    seed: int | None = None


@dataclass
class PostPlan:
    n: int
    user: int
    accounts: list[int]
    due: datetime  # naive UTC
    raw_time: str


def tag(run: str, n: int) -> str:
    return f"storm-{run}-{n:05d}"


TAG = re.compile(r"storm-(\w+)-(\d{5})")


class Storm:
    def __init__(self, plan: StormPlan, redis: OwnRedis, mariadb: OwnMariaDB):
        self.plan = plan
        self.redis = redis
        self.mariadb = mariadb
        self.run_id = uuid.uuid4().hex[:6]
        self.dir = RESULTS / plan.name
        if self.dir.exists():
            shutil.rmtree(self.dir)
        (self.dir / "logs").mkdir(parents=True)
        self.database = f"aurareels_rel_{plan.name.replace('-', '_')}_{self.run_id}"
        self.notes: list[str] = []
        self.event_log: list[dict] = []
        self.probes: list[dict] = []
        self.timings: dict[str, float] = {}
        self.random = random.Random(plan.seed)
        self.refused: list[dict] = []
        self.connect_failures: list[dict] = []
        self.clamped = 0
        self.faults: dict[str, dict[str, Fault]] = {}
        self.first_due = self.last_due = time.time()

    # ------------------------------------------------------------------------------ setup
    def env(self) -> dict[str, str]:
        env = base_env(**{
            "AURAREELS_DATABASE_URL": self.database_url,
            "AURAREELS_REDIS_URL": self.redis.url(8),
            "AURAREELS_TIMEZONE": self.plan.timezone,
            "AURAREELS_HOST_MAP": json.dumps(host_map_for(self.sandbox_url, self.sandbox)),
            "AURAREELS_HTTP_TIMEOUT": str(self.plan.http_timeout),
            "AURAREELS_SWEEP_SECONDS": str(self.plan.sweep_seconds),
            "AURAREELS_LEASE_SECONDS": str(self.plan.lease_seconds),
            "AURAREELS_RETRY_DELAYS": self.plan.retry_delays,
            "PYTHONUNBUFFERED": "1",
        })
        for name in PLATFORMS:
            env[f"AURAREELS_QUOTA_{name.upper()}"] = "100000"
        env["AURAREELS_PROJECT_QUOTA_YOUTUBE"] = "100000"  # YouTube's app-wide upload bucket too
        env.update(self.plan.extra_env)
        return env

    def setup(self) -> None:
        import logging

        from bridge.sandbox.core import Sandbox

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the emulators' access log

        try:
            sandbox = Sandbox(log_size=2_000_000)
        except TypeError:  # an older sandbox without a configurable log
            sandbox = Sandbox()
        self.server, self.sandbox, self.sandbox_url = start_server(sandbox=sandbox)
        for name, values in STORM_CONFIG.items():
            emulator = self.sandbox.emulator(name)
            emulator.configure(**{k: v for k, v in values.items() if k in emulator.defaults})
        self.database_url = self.mariadb.create_database(self.database)
        engine = make_engine(self.database_url)
        migrate(engine, "wp_")
        engine.dispose()
        self.settings = Settings.from_env(self.env())
        self.rt = Runtime.from_settings(self.settings, engine=make_engine(self.database_url, pool_size=20))
        from bridge.app import create_app

        self.app = create_app(runtime=self.rt)
        self._local = threading.local()
        self.fleet = Fleet(self.env(), self.plan.workers, self.plan.concurrency, self.dir / "logs",
                           self.plan.kill_every)

    def client(self):
        if not hasattr(self._local, "client"):
            self._local.client = self.app.test_client()
        return self._local.client

    # ------------------------------------------------------------------------- accounts
    def connect_one(self, index: int) -> tuple[int, str]:
        """Account `index` through the real flow: API connect, the platform's consent page, the
        callback. Returns (user, platform)."""
        platform = PLATFORMS[index % len(PLATFORMS)]
        user = 90_000 + index // 2
        client = self.client()
        for attempt in range(3):  # a person whose connection failed tries again
            start = client.post(f"{P}/accounts/connect/{platform}",
                                headers={"Authorization": f"Bearer {make_jwt(user)}"}, json={})
            assert start.status_code == 200, start.get_data(as_text=True)
            params = consent(start.get_json()["auth_url"], user=f"storm{self.run_id}u{index}")
            back = urlsplit(params["_redirect"])
            answer = client.get(f"{back.path}?{back.query}")
            landed = parse_qs(urlsplit(answer.headers.get("Location", "")).query)
            if answer.status_code == 302 and landed.get("status") == ["pending"]:
                # the dashboard confirms the pending link with the user's token
                confirmed = client.post(f"{P}/accounts/links/{landed['link'][0]}/confirm",
                                        headers={"Authorization": f"Bearer {make_jwt(user)}"})
                if confirmed.status_code == 200:
                    return user, platform
                answer = confirmed
            self.connect_failures.append({"platform": platform, "status": answer.status_code,
                                          "location": answer.headers.get("Location"),
                                          "body": answer.get_data(as_text=True)[:200]})
        raise AssertionError(f"connecting {platform} failed 3 times: {self.connect_failures[-3:]}")

    def connect_accounts(self) -> dict[int, list[int]]:
        started = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(self.connect_one, range(self.plan.accounts)))
        a = self.rt.tables.accounts
        with self.rt.engine.connect() as conn:
            rows = conn.execute(select(a.c.id, a.c.wp_user_id, a.c.platform).order_by(a.c.id)).all()
        by_user: dict[int, list[int]] = defaultdict(list)
        self.account_platform = {}
        for row in rows:
            by_user[int(row.wp_user_id)].append(int(row.id))
            self.account_platform[int(row.id)] = row.platform
        self.timings["connect_seconds"] = round(time.monotonic() - started, 1)
        self.accounts_by_user = dict(by_user)
        return self.accounts_by_user

    # --------------------------------------------------------------------------- faults
    def inject_faults(self) -> None:
        """Every platform API call meets a fault with probability `fault_rate`, split by FAULT_MIX.
        Faults are tried in order, so each one's own probability is conditioned on the earlier
        ones not firing."""
        self.faults: dict[str, dict[str, Fault]] = {}
        rate = self.plan.fault_rate
        if rate <= 0:
            return
        for name in PLATFORMS:
            left = 1.0
            self.faults[name] = {}
            for kind, share in FAULT_MIX:
                p = min(1.0, rate * share / left)
                left -= rate * share
                spec = {"path": API_PATHS, "times": 0, "probability": p}
                if kind == "status":
                    spec.update(kind="status", status=self.random.choice([500, 502, 503]))
                elif kind == "rate_limit":
                    spec.update(kind="rate_limit", retry_after=2)
                elif kind == "timeout":
                    spec.update(kind="timeout", delay=self.plan.http_timeout + 1.5)
                elif kind == "lost":
                    spec.update(kind="lost", status=502)
                elif kind == "lost_timeout":
                    spec.update(kind="lost", timeout=True, delay=self.plan.http_timeout + 1.5)
                else:
                    spec.update(kind="error", error=EXPIRED_TOKEN_ERROR[name])
                self.faults[name][kind] = self.sandbox.inject(name, **spec)

    # ---------------------------------------------------------------------------- posts
    def plan_posts(self, first_due: float) -> list[PostPlan]:
        users = sorted(self.accounts_by_user)
        plans, made, n = [], 0, 0
        while made < self.plan.posts:
            user = users[n % len(users)]
            accounts = self.accounts_by_user[user][: self.plan.posts - made]
            due_epoch = first_due + self.random.uniform(0, self.plan.window)
            due = datetime.fromtimestamp(int(due_epoch), timezone.utc).replace(tzinfo=None)
            plans.append(PostPlan(n, user, accounts, due, ""))
            made += len(accounts)
            n += 1
        plans.sort(key=lambda p: p.due)
        return plans

    def wire_time(self, due: datetime, n: int) -> str:
        """Half the requests send the site's naive wall time, half an ISO instant with `Z`."""
        if n % 2 == 0:
            from zoneinfo import ZoneInfo

            local = due.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(self.plan.timezone))
            return local.strftime("%Y-%m-%d %H:%M:%S")
        return due.strftime("%Y-%m-%dT%H:%M:%SZ")

    def create_one(self, plan: PostPlan) -> dict:
        from bridge.store.db import utcnow

        if plan.due <= utcnow() + timedelta(seconds=1):
            plan.due = utcnow() + timedelta(seconds=2)
            self.clamped += 1
        plan.raw_time = self.wire_time(plan.due, plan.n)
        body = {"video_job_id": self.videos[plan.user], "accounts": plan.accounts,
                "caption": f"Storm post {tag(self.run_id, plan.n)}", "privacy_level": "PUBLIC",
                "scheduled_at": plan.raw_time}
        response = self.client().post(f"{P}/schedule", headers={"Authorization": f"Bearer {make_jwt(plan.user)}",
                                                                 "Idempotency-Key": tag(self.run_id, plan.n)},
                                      json=body)
        if response.status_code != 200:
            return {"n": plan.n, "status": response.status_code, "body": response.get_data(as_text=True)[:300]}
        answer = response.get_json()
        for post in answer["posts"]:
            self.post_n[post["id"]] = plan.n
        return {"n": plan.n, "status": 200}

    def create_posts(self) -> None:
        v = self.rt.tables.videos
        self.videos = {}
        with self.rt.engine.begin() as conn:
            for user in self.accounts_by_user:
                job = f"storm-{self.run_id}-job-{user}"
                conn.execute(insert(v).values(job_id=job, wp_user_id=user, mp4_url=MEDIA,
                                              thumbnail_url="https://media.sandbox.aurareels.test/images/t.jpg"))
                self.videos[user] = job
        self.post_n: dict[int, int] = {}
        self.clamped = 0
        started = time.time()
        self.first_due = started + self.plan.lead
        plans = self.plan_posts(self.first_due)
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(self.create_one, plans))
        refused = [o for o in outcomes if o["status"] != 200]
        self.timings["create_seconds"] = round(time.time() - started, 1)
        self.refused = refused
        if refused:
            self.notes.append(f"{len(refused)} schedule requests refused: {refused[:3]}")
        self.plans = {p.n: p for p in plans}
        self.last_due = max(calendar.timegm(p.due.timetuple()) for p in plans)

    # ---------------------------------------------------------------------------- events
    def probe_api(self, label: str) -> None:
        """What a client sees now: list, schedule and health, in the envelope."""
        client = self.client()
        user = next(iter(self.accounts_by_user))
        for name, call in (
            ("GET /posts", lambda: client.get(f"{P}/posts", headers={"Authorization": f"Bearer {make_jwt(user)}"})),
            ("POST /schedule", lambda: client.post(f"{P}/schedule", headers={
                "Authorization": f"Bearer {make_jwt(user)}"}, json={
                "video_job_id": self.videos[user], "accounts": self.accounts_by_user[user][:1],
                "caption": "probe", "scheduled_at": (datetime.now(timezone.utc) + timedelta(days=30)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ")})),
            ("GET /health", lambda: client.get(f"{P}/health")),
        ):
            started = time.monotonic()
            try:
                response = call()
                body = response.get_json(silent=True) or {}
                self.probes.append({"when": label, "call": name, "status": response.status_code,
                                    "code": body.get("code") or body.get("status"), "success": body.get("success"),
                                    "envelope": set(body) >= {"success", "code", "message"} if response.status_code
                                    >= 400 and name != "GET /health" else None,
                                    "seconds": round(time.monotonic() - started, 2)})
            except Exception as exc:  # an exception out of the app is a 500 a client would see
                self.probes.append({"when": label, "call": name, "status": "exception", "code": type(exc).__name__})

    def play(self, action: str) -> None:
        at = round(time.time() - self.first_due, 1)
        if action == "flushall":
            self.redis.flushall()
        elif action == "redis_restart":
            self.redis.kill()
            time.sleep(2)
            self.redis.start()
        elif action.startswith("mariadb_restart"):
            down_for = float(action.split(":", 1)[1]) if ":" in action else 15.0
            self.mariadb.stop(clean=True)
            stopped = time.monotonic()
            self.probe_api("database down")
            while time.monotonic() - stopped < down_for:
                time.sleep(1)
            self.probe_api("database down")
            self.mariadb.start()
            self.mariadb.restarts += 1
            time.sleep(1)
            self.probe_api("database back")
        self.event_log.append({"action": action, "at_seconds_after_first_due": at})

    # ------------------------------------------------------------------------------ wait
    def status_counts(self) -> dict[str, int]:
        p = self.rt.tables.posts
        with self.rt.engine.connect() as conn:
            return {s: int(c) for s, c in conn.execute(select(p.c.status, func.count()).where(
                p.c.caption.like(f"Storm post storm-{self.run_id}-%")).group_by(p.c.status)).all()}

    def wait(self) -> None:
        events = sorted(self.plan.events, key=lambda e: e[0])
        deadline = self.last_due + self.plan.settle
        chaos_end = self.last_due + self.plan.chaos_after_due
        self.fleet.chaos(True)
        counts: dict[str, int] = {}
        while True:
            now = time.time()
            while events and now >= self.first_due + events[0][0]:
                self.play(events.pop(0)[1])
                now = time.time()
            if now >= chaos_end:
                self.fleet.chaos(False)
            try:
                counts = self.status_counts()
            except Exception:
                counts = counts or {}
            pending = sum(c for s, c in counts.items() if s not in FINAL)
            if not events and now > self.last_due and counts and pending == 0:
                break
            if now > deadline:
                self.notes.append(f"deadline reached with {pending} posts not final: {counts}")
                break
            time.sleep(1.0)
        self.fleet.chaos(False)
        self.timings["all_final_after_last_due"] = round(time.time() - self.last_due, 1)

    # ---------------------------------------------------------------------------- report
    def report(self) -> dict:
        p = self.rt.tables.posts
        with self.rt.engine.connect() as conn:
            rows = conn.execute(select(p.c.id, p.c.platform, p.c.status, p.c.error_code, p.c.scheduled_at,
                                       p.c.published_at, p.c.caption).where(
                p.c.caption.like(f"Storm post storm-{self.run_id}-%"))).mappings().all()
        by_key = {(r["platform"], int(TAG.search(r["caption"]).group(2))): r for r in rows}
        records: dict[tuple[str, int], list[dict]] = defaultdict(list)
        phantom = Counter()
        for name in PLATFORMS:
            emulator = self.sandbox.emulator(name)
            with emulator.lock:
                published = list(emulator.published)
            for record in published:
                text = " ".join(str(record.get(k) or "") for k in ("caption", "text", "title", "commentary"))
                match = TAG.search(text)
                if not match or match.group(1) != self.run_id:
                    continue
                key = (name, int(match.group(2)))
                if key in by_key:
                    records[key].append(record)
                else:
                    phantom[name] += 1
        per_platform = {}
        for name in PLATFORMS:
            mine = [r for r in rows if r["platform"] == name]
            failed = Counter(r["error_code"] or "unknown" for r in mine
                             if r["status"] == "failed" and r["error_code"] != "unconfirmed")
            late = []
            duplicates = false_success = published_but_failed = 0
            for r in mine:
                key = (name, int(TAG.search(r["caption"]).group(2)))
                recs = records.get(key, [])
                duplicates += max(0, len(recs) - 1)
                if r["status"] == "published" and not recs:
                    false_success += 1
                if r["status"] == "failed" and r["error_code"] != "unconfirmed" and recs:
                    published_but_failed += 1
                    self.notes.append(f"post {r['id']} ({name}) is published on the platform but failed here with "
                                      f"{r['error_code']}")
                if recs:
                    due = calendar.timegm(r["scheduled_at"].timetuple())
                    late.append(min(float(x["created_at"]) for x in recs) - due)
            faults = {k: f.fired for k, f in self.faults.get(name, {}).items()}
            requests = [e for e in self.sandbox.requests(name)]
            per_platform[name] = {
                "posts": len(mine),
                "published": sum(1 for r in mine if r["status"] == "published"),
                "failed": sum(failed.values()),
                "failed_by_code": dict(failed.most_common()),
                "unconfirmed": sum(1 for r in mine if r["status"] == "failed" and r["error_code"] == "unconfirmed"),
                "cancelled": sum(1 for r in mine if r["status"] == "cancelled"),
                "lost": sum(1 for r in mine if r["status"] not in FINAL),
                "lost_by_status": dict(Counter(r["status"] for r in mine if r["status"] not in FINAL)),
                "duplicates": duplicates,
                "phantom_publications": phantom[name],
                "false_success": false_success,
                "published_but_marked_failed": published_but_failed,
                "lateness_p50": _pct(late, 50),
                "lateness_p99": _pct(late, 99),
                "lateness_max": round(max(late), 1) if late else None,
                "early": sum(1 for x in late if x < -1.0),
                "api_requests": len(requests),
                "faults_fired": faults,
                "faults_total": sum(faults.values()),
            }
        totals = {k: sum(v[k] for v in per_platform.values()) for k in (
            "posts", "published", "failed", "unconfirmed", "cancelled", "lost", "duplicates", "phantom_publications",
            "false_success", "published_but_marked_failed", "early", "api_requests", "faults_total")}
        all_late = []
        for name in PLATFORMS:
            for r in rows:
                if r["platform"] != name:
                    continue
                recs = records.get((name, int(TAG.search(r["caption"]).group(2))), [])
                if recs:
                    all_late.append(min(float(x["created_at"]) for x in recs)
                                    - calendar.timegm(r["scheduled_at"].timetuple()))
        totals.update(lateness_p50=_pct(all_late, 50), lateness_p99=_pct(all_late, 99),
                      lateness_max=round(max(all_late), 1) if all_late else None,
                      fault_rate_observed=round(totals["faults_total"] / totals["api_requests"], 3)
                      if totals["api_requests"] else None)
        plan = asdict(self.plan)
        stuck = self.diagnose([r["id"] for r in rows if r["status"] not in FINAL][:40])
        return {
            "name": self.plan.name,
            "run_id": self.run_id,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "plan": plan,
            "accounts": sum(len(v) for v in self.accounts_by_user.values()),
            "connect_failures": self.connect_failures,
            "posts_planned": self.plan.posts,
            "posts_created": len(rows),
            "schedule_requests_refused": len(self.refused),
            "due_clamped": self.clamped,
            "window_seconds": round(self.last_due - self.first_due, 1),
            "workers": self.plan.workers,
            "worker_kills": self.fleet.kills,
            "worker_unexpected_exits": len(self.fleet.unexpected_exits),
            "worker_exit_codes": dict(Counter(self.fleet.unexpected_exits)),
            "events": self.event_log,
            "api_probes": self.probes,
            "timings": self.timings,
            "totals": totals,
            "per_platform": per_platform,
            "notes": self.notes,
            "not_final": stuck,
        }

    def diagnose(self, post_ids: list[int]) -> list[dict]:
        """Where each post that did not reach a final state is stuck: its row and its jobs."""
        if not post_ids:
            return []
        from rq.job import Job

        p = self.rt.tables.posts
        with self.rt.engine.connect() as conn:
            rows = conn.execute(select(p).where(p.c.id.in_(post_ids))).mappings().all()
        found = []
        for row in rows:
            jobs = {}
            for job_id in (f"publish-{row['id']}", f"wake-{row['id']}"):
                try:
                    job = Job.fetch(job_id, connection=self.rt.redis)
                    jobs[job_id] = {"status": str(job.get_status()), "enqueued_at": str(job.enqueued_at),
                                    "ended_at": str(job.ended_at), "worker": job.worker_name}
                except Exception as exc:
                    jobs[job_id] = type(exc).__name__
            found.append({"id": row["id"], "platform": row["platform"], "status": row["status"],
                          "scheduled_at": str(row["scheduled_at"]), "next_attempt_at": str(row["next_attempt_at"]),
                          "lease_until": str(row["lease_until"]), "lease_owner": row["lease_owner"],
                          "retry_count": row["retry_count"], "error_message": row["error_message"],
                          "metadata": (row["metadata"] or "")[:400], "jobs": jobs})
        return found

    # ---------------------------------------------------------------------------- whole
    def run(self) -> dict:
        self.setup()
        try:
            self.connect_accounts()
            self.inject_faults()
            self.fleet.start_all()
            self.create_posts()
            self.wait()
        finally:
            self.fleet.stop()
        result = self.report()
        (self.dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
        return result

    def close(self) -> None:
        try:
            self.fleet.stop()
        except Exception:
            pass
        try:
            self.rt.engine.dispose()
        except Exception:
            pass
        self.server.shutdown()
        if not os.environ.get("AURAREELS_RELIABILITY_KEEP"):
            self.mariadb.drop_database(self.database)

    def worker_logs(self) -> list[Path]:
        return sorted((self.dir / "logs").glob("*.log"))


def _pct(values: list[float], q: int):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return round(ordered[index], 1)


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo") as handle:
            kb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
            memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    maria = ""
    try:
        maria = subprocess.run(["mariadbd", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        pass
    redis_version = ""
    try:
        redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                                       timeout=10).stdout.strip()
    except Exception:
        pass
    maria_match = re.search(r"Ver\s+(\S+)", maria)
    redis_match = re.search(r"v=(\S+)", redis_version)
    return {"host": platform_mod.node(), "os": platform_mod.platform(terse=True), "cpus": os.cpu_count(), "cpu": cpu,
            "memory": memory, "python": platform_mod.python_version(),
            "mariadb": maria_match.group(1) if maria_match else "?",
            "redis": f"Redis {redis_match.group(1)}" if redis_match else "Redis ?"}


def scale(mode: str) -> dict:
    """Sizes by mode: `quick` for a short check, `full` for the issue's storm. For diagnosis,
    AURAREELS_RELIABILITY_FAULTS (a rate) and AURAREELS_RELIABILITY_KILLS=0 change the chaos."""
    sizes = _sizes(mode)
    if os.environ.get("AURAREELS_RELIABILITY_FAULTS"):
        sizes["fault_rate"] = float(os.environ["AURAREELS_RELIABILITY_FAULTS"])
    if os.environ.get("AURAREELS_RELIABILITY_KILLS") == "0":
        sizes["kill_every"] = None
    return sizes


def _sizes(mode: str) -> dict:
    if mode == "tiny":  # a smoke test of the harness itself
        return {"posts": 60, "accounts": 12, "window": 20.0, "lead": 10.0, "workers": 2, "settle": 240.0}
    if mode == "full":
        return {"posts": 2000, "accounts": 200, "window": 120.0, "lead": 45.0, "workers": 4, "settle": 900.0}
    return {"posts": 300, "accounts": 30, "window": 40.0, "lead": 15.0, "workers": 3, "settle": 480.0}
