"""What the benchmarks share: a database of their own, Redis db 9, a stand-alone sandbox, many
connected TikTok accounts, posts due at one instant, real `aurareels-bridge worker` processes, and
the figures read from the sandbox's own request log.

Nothing here is part of the bridge: it drives the bridge from outside, as a deployment would see
it (MySQL rows written by WordPress, RQ wake-ups, worker processes), and times each post's
publishing call (TikTok's `video/init`, the call that creates the post on TikTok) against its
`scheduled_at`, as the sandbox logged the request's arrival. Reads before it (`creator_info`)
may happen before the due time; nothing that changes anything on TikTok may.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import resource
import secrets
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pymysql
import redis as redis_lib
from sqlalchemy import insert, select

from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.store.db import make_engine, utcnow
from bridge.store.migrate import migrate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MYSQL_HOST = os.environ.get("AURAREELS_BENCH_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("AURAREELS_BENCH_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("AURAREELS_BENCH_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("AURAREELS_BENCH_MYSQL_PASSWORD", "")
REDIS_URL = os.environ.get("AURAREELS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
PUBLISH_CALL = "/v2/post/publish/video/init/"
READ_CALL = "/v2/post/publish/creator_info/query/"
LOCK_KEY = "bench:running"
VIDEO_URL = "https://media.sandbox.aurareels.test/videos/clip.mp4?size=3000000&duration=20"


def add_run_options(parser, *, posts: int, latency: float, timeout: float, timeout_help: str) -> None:
    """The options the publishing benchmarks share: load, workers, sandbox latency, pre-arm, profiling."""
    parser.add_argument("--posts", type=int, default=posts)
    parser.add_argument("--latency", type=float, default=latency, help="seconds the sandbox holds every answer")
    parser.add_argument("--workers", type=int, default=2, help="`aurareels-bridge worker` processes")
    parser.add_argument("--worker-args", default="", metavar="ARGS",
                        help="options for every worker, e.g. '--concurrency 50' or '--fork' (default: none)")
    parser.add_argument("--lead", type=float, default=None, help="seconds between set-up and the due time")
    parser.add_argument("--platform-cap", type=int, default=None,
                        help="AURAREELS_CONCURRENCY_TIKTOK for the workers (default: the bridge's default)")
    parser.add_argument("--prearm", type=float, default=None, metavar="SECONDS",
                        help="AURAREELS_PREARM_SECONDS for the hand-over and the workers (default: as set, else 60)")
    parser.add_argument("--quiet-wait", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for the machine to be mostly idle")
    parser.add_argument("--profile", metavar="PROFILER",
                        help="sample the workers with this sampling profiler binary (see bench.common.start_profilers)")
    parser.add_argument("--timeout", type=float, default=timeout, help=timeout_help)


def describe_workers(workers: int, worker_args: str) -> str:
    return f"{workers} x `aurareels-bridge worker{(' ' + worker_args) if worker_args else ''}`"


def apply_prearm(args) -> None:
    if args.prearm is not None:
        os.environ["AURAREELS_PREARM_SECONDS"] = f"{args.prearm:g}"


def say(text: str) -> None:
    print(text, flush=True)


def _cpu_jiffies() -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return idle, sum(values[:8])


def machine_busy(seconds: float = 2.0) -> float:
    """Fraction of all CPUs busy over the next `seconds`."""
    idle0, total0 = _cpu_jiffies()
    time.sleep(seconds)
    idle1, total1 = _cpu_jiffies()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_until_quiet(max_wait: float, busy_below: float = 0.25) -> float:
    """Wait (at most `max_wait` seconds) until the machine is mostly idle: other work on these two
    cores changes every figure. Returns the last busy fraction seen."""
    deadline = time.monotonic() + max_wait
    busy = machine_busy()
    while busy >= busy_below and time.monotonic() < deadline:
        busy = machine_busy(5.0)
    return busy


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def mysql_connect():
    return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD,
                           autocommit=True, charset="utf8mb4")


class Bench:
    """One benchmark run: `with Bench(...) as b:` creates everything and removes it afterwards."""

    def __init__(self, *, workers: int = 2, worker_args: str = "", latency: float = 0.0, log_size: int = 200_000,
                 platform_cap: int | None = None, extra_env: dict[str, str] | None = None):
        self.workers, self.worker_args, self.latency = workers, worker_args, latency
        self.platform_cap = platform_cap
        self.log_size = log_size
        self.extra_env = extra_env or {}
        self.database = f"aurareels_bench_{uuid.uuid4().hex[:10]}"
        self.procs: list[subprocess.Popen] = []
        self.logs: list[str] = []
        self.server = None

    # ---------------------------------------------------------------------------- set up, tear down
    def __enter__(self) -> "Bench":
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.redis = redis_lib.Redis.from_url(REDIS_URL)
        # one benchmark at a time on this Redis db: a second one would flush the first one's queue
        if not self.redis.set(LOCK_KEY, str(os.getpid()), nx=True, ex=3600):
            raise RuntimeError(f"another benchmark (pid {self.redis.get(LOCK_KEY)}) is using {REDIS_URL}")
        self.redis.flushdb()
        self.redis.set(LOCK_KEY, str(os.getpid()), ex=3600)
        try:
            with mysql_connect() as conn:
                conn.cursor().execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4 "
                                      f"COLLATE utf8mb4_unicode_ci")
            auth = MYSQL_USER + (f":{MYSQL_PASSWORD}" if MYSQL_PASSWORD else "")
            self.database_url = f"mysql+pymysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/{self.database}"
            engine = make_engine(self.database_url)
            migrate(engine, "wp_")
            self._start_sandbox_and_runtime(engine)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_sandbox_and_runtime(self, engine) -> None:
        from bridge.sandbox.core import Sandbox, host_map_for, start_server

        self.server, self.sandbox, self.base_url = start_server(sandbox=Sandbox(log_size=self.log_size))
        tiktok = self.sandbox.emulator("tiktok")
        tiktok.configure(daily_post_cap=1_000_000, access_token_ttl=30 * 86400, processing_seconds=0,
                         moderation_seconds=0)
        if self.latency:
            self.sandbox.set_latency(self.latency)
        self.env = {
            "AURAREELS_DATABASE_URL": self.database_url,
            "AURAREELS_TABLE_PREFIX": "wp_",
            "AURAREELS_REDIS_URL": REDIS_URL,
            "AURAREELS_SOCIAL_ENCRYPTION_KEY": "bench-vault-key-" + secrets.token_hex(8),
            "JWT_AUTH_SECRET_KEY": "bench-jwt-secret-" + secrets.token_hex(8),
            "AURAREELS_WP_URL": "https://site.example",
            "N8N_API_KEY": "bench-internal-" + secrets.token_hex(8),
            "AURAREELS_SANDBOX": "1",
            "AURAREELS_HOST_MAP": json.dumps(host_map_for(self.base_url, self.sandbox)),
            "AURAREELS_QUOTA_TIKTOK": "1000000",
            **({"AURAREELS_CONCURRENCY_TIKTOK": str(self.platform_cap)} if self.platform_cap else {}),
            **self.extra_env,
        }
        settings = Settings.from_env(self.env)
        self.rt = Runtime.from_settings(settings, engine=engine)

    def __exit__(self, *exc) -> None:
        self.stop_workers()
        rt = getattr(self, "rt", None)
        if rt is not None:
            rt.engine.dispose()
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        try:
            self.redis.flushdb()  # also frees the lock
        except Exception:
            pass
        with mysql_connect() as conn:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.database}`")

    # ---------------------------------------------------------------------------- workers
    def start_workers(self, *, args: tuple[str, ...] = (), ready_timeout: float = 60.0) -> None:
        env = dict(os.environ)
        env.update(self.env)
        command = [sys.executable, "-m", "bridge.cli", "worker", *self.worker_args.split(), *args]
        for i in range(self.workers):
            path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"{self.database}-worker{len(self.logs)}.log")
            self.logs.append(path)
            with open(path, "wb") as log:
                self.procs.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        if "--burst" in args:
            return
        deadline = time.monotonic() + ready_timeout
        while True:
            alive = len(self.redis.keys("bridge:worker:*"))
            if alive >= self.workers and self.redis.get("bridge:scheduler:alive"):
                return
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a worker exited at start; see {' '.join(self.logs)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready within {ready_timeout} s; see {' '.join(self.logs)}")
            time.sleep(0.2)

    def wait_workers(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop_workers(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs = []

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.returncode is None]

    # ---------------------------------------------------------------------------- data
    def accounts(self, count: int) -> list[tuple[int, str]]:
        """`count` TikTok accounts, each its own sandbox creator with a token good for 30 days.
        Returns (account row id, access token) pairs."""
        tiktok = self.sandbox.emulator("tiktok")
        now = utcnow()
        rows, tokens = [], []
        for i in range(count):
            issued = tiktok.issue_token(user=f"bench_creator_{i}")
            tokens.append(issued["access_token"])
            rows.append(dict(
                wp_user_id=1000 + i % 100, platform="tiktok", account_id=issued["open_id"],
                account_name=f"Bench creator {i}", account_username=f"bench_creator_{i}",
                access_token=self.rt.vault.encrypt(issued["access_token"]),
                refresh_token=self.rt.vault.encrypt(issued["refresh_token"]),
                token_expires_at=now + timedelta(seconds=issued["expires_in"]), token_scope=issued["scope"],
                is_active=1, needs_reconnect=0, last_token_refresh=now, created_at=now, updated_at=now,
                metadata=json.dumps({"scopes": issued["scope"].split(",")}),
            ))
        a = self.rt.tables.accounts
        with self.rt.engine.begin() as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(insert(a), rows[start:start + 1000])
            ids = conn.execute(select(a.c.id).order_by(a.c.id)).scalars().all()
        return list(zip(ids[-count:], tokens))

    def posts(self, accounts: list[tuple[int, str]], when: datetime) -> list[int]:
        """One scheduled post per account, all due at `when`, as WordPress would insert them."""
        now = utcnow()
        metadata = json.dumps({"options": {"tiktok_source": "PULL_FROM_URL"}})
        rows = [dict(wp_user_id=1000 + i % 100, video_job_id=f"bench-{i}", social_account_id=account_id,
                     platform="tiktok", status="scheduled", scheduled_at=when, video_url=VIDEO_URL,
                     caption=f"Benchmark post {i}", hashtags=json.dumps(["#bench"]), mentions=json.dumps([]),
                     privacy_level="PUBLIC", retry_count=0, metadata=metadata, created_at=now, updated_at=now)
                for i, (account_id, _) in enumerate(accounts)]
        p = self.rt.tables.posts
        with self.rt.engine.begin() as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(insert(p), rows[start:start + 1000])
            ids = conn.execute(select(p.c.id).order_by(p.c.id)).scalars().all()
        return list(ids[-len(rows):])

    def hand_over(self, post_ids: list[int], when: datetime) -> float:
        """Give every post its RQ wake-up (what the API does on /schedule). Returns seconds taken."""
        from bridge.queue import hand_over

        started = time.monotonic()
        for post_id in post_ids:
            hand_over(self.rt, post_id, when)
        return time.monotonic() - started

    def statuses(self) -> dict[str, int]:
        p = self.rt.tables.posts
        from sqlalchemy import func

        with self.rt.engine.connect() as conn:
            return {s: n for s, n in conn.execute(select(p.c.status, func.count()).group_by(p.c.status)).all()}

    # ---------------------------------------------------------------------------- measuring
    def publish_call_times(self) -> list[float]:
        """Arrival times (epoch seconds, as the sandbox logged them) of every publishing call."""
        return sorted(e["at"] for e in self.sandbox.requests("tiktok") if e["path"] == PUBLISH_CALL)

    def read_call_times(self) -> list[float]:
        """Arrival times of every creator_info read (made when a post is prepared)."""
        return sorted(e["at"] for e in self.sandbox.requests("tiktok") if e["path"] == READ_CALL)

    def called(self, tokens: list[str]) -> int:
        """How many of the accounts (one post each) made their publishing call, from the emulator's
        per-token call record."""
        tiktok = self.sandbox.emulator("tiktok")
        with tiktok.lock:
            return sum(1 for token in tokens if tiktok.calls.get((token, "video_init")))

    def wait_calls(self, tokens: list[str], timeout: float, poll: float = 0.5) -> bool:
        """Wait until every post made its publishing call; False on time-out or a dead worker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.called(tokens) >= len(tokens):
                return True
            if any(p.poll() is not None for p in self.procs):
                return False
            time.sleep(poll)
        return self.called(tokens) >= len(tokens)

    def published_twice(self) -> int:
        """Posts TikTok published more than once (each post has its own caption)."""
        counts = collections.Counter(p["caption"] for p in list(self.sandbox.emulator("tiktok").published))
        return sum(1 for n in counts.values() if n > 1)

    def wait_published(self, count: int, timeout: float, poll: float = 0.5) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.statuses().get("published", 0) >= count:
                return True
            time.sleep(poll)
        return False


def prearm_seconds() -> float:
    """The workers' pre-arm time (they inherit this process's environment)."""
    return Settings.from_env({**os.environ, "JWT_AUTH_SECRET_KEY": "x", "AURAREELS_WP_URL": "https://x.example",
                              "AURAREELS_SANDBOX": "1"}).prearm_seconds


def due_at(lead_seconds: float) -> tuple[datetime, float]:
    """A whole-second UTC instant `lead_seconds` ahead (DATETIME columns hold seconds), and its epoch."""
    when = (utcnow() + timedelta(seconds=lead_seconds)).replace(microsecond=0)
    return when, when.replace(tzinfo=timezone.utc).timestamp()


def summarize(lateness: list[float]) -> dict[str, float]:
    return {"p50": percentile(lateness, 50), "p99": percentile(lateness, 99), "max": max(lateness),
            "min": min(lateness)}


def cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """User + system CPU seconds a process has used (0 when it is gone), with those of its
    finished and reaped children (forked jobs) when asked."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        if reaped_children:
            ticks += int(fields[13]) + int(fields[14])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1/0.0.0.0 `port` (found through its socket's inode)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                    return int(entry)
        except OSError:
            continue
    return None


def server_pids() -> dict[str, int]:
    """The MariaDB and Redis servers the benchmark uses (by their listening ports)."""
    found = {}
    redis_port = int(REDIS_URL.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]) if ":" in \
        REDIS_URL.split("://", 1)[1].split("/", 1)[0] else 6379
    for name, port in (("mariadb", MYSQL_PORT), ("redis", redis_port)):
        pid = _listener_pid(port)
        if pid is not None:
            found[name] = pid
    return found


def server_counters(bench: "Bench") -> dict[str, int]:
    """MariaDB connections opened and statements run, Redis connections and commands (server-wide)."""
    counters = {}
    try:
        with mysql_connect() as conn:
            cur = conn.cursor()
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Connections', 'Questions')")
            counters.update({f"mysql_{k.lower()}": int(v) for k, v in cur.fetchall()})
    except pymysql.MySQLError:
        pass
    try:
        info = bench.redis.info("stats")
        counters["redis_connections"] = int(info["total_connections_received"])
        counters["redis_commands"] = int(info["total_commands_processed"])
    except redis_lib.RedisError:
        pass
    return counters


class CpuMeter:
    """CPU seconds used by the workers, this process (the sandbox server lives here), MariaDB and
    Redis between `start()` and `stop()`. MariaDB and Redis count all their clients: other work
    on the machine shows there too."""

    def __init__(self, bench: "Bench"):
        self.bench = bench
        self.servers = server_pids()

    def _sample(self) -> dict[str, float]:
        # live workers with their reaped forked jobs, plus workers that exited and were reaped here
        workers = sum(cpu_seconds(pid, reaped_children=True) for pid in self.bench.worker_pids())
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        workers += reaped.ru_utime + reaped.ru_stime
        children = self._children_cpu()
        idle, total = _cpu_jiffies()
        return {"workers": workers + children, "bench+sandbox": cpu_seconds(os.getpid()),
                "machine": (total - idle) / os.sysconf("SC_CLK_TCK"),
                **{f"{name} (all clients)": cpu_seconds(pid) for name, pid in self.servers.items()}}

    def _children_cpu(self) -> float:
        """Forked job processes and RQ's scheduler process under the workers (alive ones)."""
        total = 0.0
        workers = set(self.bench.worker_pids())
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) in workers:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def start(self) -> None:
        self.began, self.wall = self._sample(), time.monotonic()
        self.counters = server_counters(self.bench)

    def stop(self) -> dict[str, float]:
        end = self._sample()
        used = {k: round(end[k] - self.began.get(k, 0.0), 2) for k in end if k != "machine"}
        # everything else the machine did meanwhile (other processes compete for the same cores)
        used["other processes"] = max(0.0, round(end["machine"] - self.began["machine"] - sum(used.values()), 2))
        used["wall"] = round(time.monotonic() - self.wall, 2)
        return used

    def counted(self) -> dict[str, int]:
        """Server counters since `start()` (server-wide: other clients count too)."""
        now = server_counters(self.bench)
        return {k: now[k] - self.counters[k] for k in now if k in self.counters}


def due_run(*, posts: int, latency: float, workers: int, worker_args: str, call_timeout: float,
            publish_timeout: float, lead: float | None = None, profile: str | None = None,
            profile_seconds: float = 20.0, platform_cap: int | None = None, quiet_wait: float = 0.0,
            wipe_before: float | None = None) -> dict:
    """`posts` posts (one account each) due at the same whole second, handed to RQ's scheduler
    as the API does, published by `workers` worker processes; with `wipe_before`, the bridge's
    Redis database is wiped (FLUSHDB) that many seconds before the due time. Returns the figures:
    lateness of each publishing call after `scheduled_at` (seconds, from the sandbox's log), calls
    made early, posts published twice, CPU seconds per component before and after the instant."""
    busy = wait_until_quiet(quiet_wait)
    load = os.getloadavg()
    say(f"  machine before the run: {100 * busy:.0f}% CPU busy, load average "
        f"{' '.join(f'{x:.2f}' for x in load)} ({os.cpu_count()} cores; other processes count)")
    with Bench(workers=workers, worker_args=worker_args, latency=latency, platform_cap=platform_cap,
               log_size=max(200_000, posts * 12)) as bench:
        bench.start_workers()
        say(f"  {describe_workers(workers, worker_args)} up; creating {posts} accounts")
        accounts = bench.accounts(posts)
        prearm = prearm_seconds()
        # posts are scheduled ahead of their time, as creators do: by default long enough ahead
        # that their wake-ups run early by the whole pre-arm time (AURAREELS_PREARM_SECONDS) once
        # the hand-over (about a millisecond a post, more on a busy machine) is done
        handing_over = posts * 0.005
        lead = lead if lead is not None else max(5.0 + handing_over, (prearm + 10.0 + handing_over) if prearm else 0.0,
                                                 (wipe_before or 0) + 5.0 + handing_over)
        when, due = due_at(lead)
        post_ids = bench.posts(accounts, when)
        early = CpuMeter(bench)
        early.start()
        took = bench.hand_over(post_ids, when)
        margin = due - time.time()
        say(f"  {posts} posts due at {when:%H:%M:%S} UTC handed over in {took:.1f} s ({margin:.1f} s before due); "
            f"wake-ups run {prearm:g} s early (AURAREELS_PREARM_SECONDS)")
        if margin < 0.5:
            say("  WARNING: the hand-over ended too close to the due time; use a longer --lead")
        wiped_at = None
        if wipe_before is not None:
            while time.time() < due - wipe_before:
                time.sleep(0.01)
            bench.redis.flushdb()
            bench.redis.set(LOCK_KEY, str(os.getpid()), ex=3600)
            wiped_at = time.time() - due
            say(f"  Redis database wiped (FLUSHDB) {-wiped_at:.1f} s before the due time")
        while time.time() < due:
            time.sleep(0.005)
        before_due = early.stop()
        meter = CpuMeter(bench)
        meter.start()
        profilers = start_profilers(profile, bench, profile_seconds) if profile else []
        tokens = [token for _, token in accounts]
        complete = bench.wait_calls(tokens, call_timeout)
        call_cpu = meter.stop()
        call_counts = meter.counted()
        calls = bench.publish_call_times()
        reads = bench.read_call_times()
        lateness = sorted(at - due for at in calls[:posts])
        published = bench.wait_published(posts, publish_timeout, poll=1.0) if complete else False
        all_cpu = meter.stop()
        all_counts = meter.counted()
        statuses = bench.statuses()
        twice = bench.published_twice()
        for proc, _ in profilers:
            try:
                proc.wait(timeout=profile_seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
        return {
            "posts": posts, "workers": workers, "worker_args": worker_args, "latency": latency,
            "complete": complete, "called": bench.called(tokens), "calls_in_log": len(calls),
            "early": sum(1 for at in calls if at < due), "reads_before_due": sum(1 for at in reads if at < due),
            "published_twice": twice, "lateness": lateness, "summary": summarize(lateness) if lateness else None,
            "published": published, "statuses": statuses, "cpu_calls": call_cpu, "cpu_all": all_cpu,
            "counts_calls": call_counts, "counts_all": all_counts, "logs": list(bench.logs),
            "cpu_before_due": before_due, "prearm": prearm, "lead": lead, "wiped_at": wiped_at,
            "profiles": [path for _, path in profilers], "busy_before": busy, "load_before": load,
            "handover_seconds": took, "handover_margin": margin,
        }


def start_profilers(profiler: str, bench: "Bench", seconds: float) -> list[tuple[subprocess.Popen, str]]:
    """Sample each worker process for `seconds` with a sampling profiler (the binary at `profiler`,
    driven as `record -p PID -d SECONDS -r RATE --gil --nonblocking -f raw -o FILE`), counting only
    the thread holding the GIL: where the workers' CPU goes. Raw stacks, one file per worker."""
    started = []
    for i, pid in enumerate(bench.worker_pids()):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"{bench.database}-worker{i}.stacks.txt")
        proc = subprocess.Popen([profiler, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "--gil",
                                 "--nonblocking", "-f", "raw", "-o", path],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append((proc, path))
    return started


def report_cpu(label: str, cpu: dict, count: int, counts: dict | None = None, unit: str = "post") -> None:
    parts = ", ".join(f"{k} {v:.1f} s ({1000 * v / count:.1f} ms/{unit})" for k, v in cpu.items() if k != "wall")
    say(f"  CPU{' ' + label if label else ''} (wall {cpu['wall']:.1f} s): {parts}")
    if counts:
        say(f"    server-wide counts per {unit}: " + ", ".join(f"{k} {v / count:.1f}" for k, v in counts.items()))


def noop_run(*, jobs: int, workers: int, worker_args: str, timeout: float, quiet_wait: float = 0.0) -> dict:
    """RQ's own ceiling: `jobs` no-op jobs queued, then drained by `workers` burst workers
    (`aurareels-bridge worker --burst`, the same command and options as the publish runs).
    Returns jobs per second from the workers' start to the last one's exit."""
    from rq import Queue
    from rq.job import Job

    from bridge.queue import NOOP_JOB

    busy = wait_until_quiet(quiet_wait)
    with Bench(workers=workers, worker_args=worker_args) as bench:
        queue = Queue("publish", connection=bench.redis)
        for start in range(0, jobs, 1000):
            queue.enqueue_many([Queue.prepare_data(NOOP_JOB, result_ttl=3600)
                                for _ in range(min(1000, jobs - start))])
        meter = CpuMeter(bench)
        meter.start()
        started = time.monotonic()
        bench.start_workers(args=("--burst",))
        done = bench.wait_workers(timeout)
        elapsed = time.monotonic() - started
        left = queue.count
        cpu = meter.stop()
        # the drain alone: first job started to last job ended, from RQ's own job records
        ids = queue.finished_job_registry.get_job_ids()
        spans = [(j.started_at, j.ended_at) for j in Job.fetch_many(ids, connection=bench.redis)
                 if j is not None and j.started_at and j.ended_at]
        drain = (max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds() if spans else 0.0
    return {"jobs": jobs, "done": done and left == 0, "left": left, "finished": len(spans), "seconds": elapsed,
            "busy_before": busy, "rate": (jobs - left) / elapsed if elapsed else 0.0,
            "drain_seconds": drain, "drain_rate": len(spans) / drain if drain else 0.0, "cpu": cpu}
