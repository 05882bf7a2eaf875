"""The figures of the security scorecard: what the attacks of the second security round cost now.

Runs `aurareels-bridge serve` (the API alone, no worker) on its own MariaDB database and Redis db 9,
in sandbox mode, next to a misbehaving media server on loopback (`tests/hostile_media.py`), and
prints:

* media: the API process's peak RSS (VmHWM) and answer while `/publish` meets a 2 GB video
  without Range support, a 5 GB one (over the 4 GiB cap), a gzip bomb and a server that sends one
  byte a second; and how long that server holds a worker's read (the same `MediaSource` a worker
  uses, in this process);
* rate limit: one user, 4 threads posting `/schedule` for 10 s: how many were created;
* `/health` with 300,000 keys in Redis: its latency, beside the keyspace scan it used to make.

    python -m bench.security            (scripts/bench security)
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt

from bench.common import ROOT, Bench, percentile, say
from bridge.platforms.errors import PlatformError
from bridge.platforms.media import MediaSource
from tests.factories import add_account, add_video, later
from tests.hostile_media import HostileMediaServer

P = "/wp-json/aurareels/v1/social"
USER, FLOODER = 7001, 7002


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024
    return values


class Api:
    """`aurareels-bridge serve` as a separate process."""

    def __init__(self, env: dict[str, str]):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = dict(os.environ)
        full.update(env)
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench-security-api-{self.port}.log"), "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve", "--port", str(self.port)],
                                     env=full, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}{P}/health", timeout=5)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not start; see {self.log.name}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


def media_rows(bench: Bench, api: Api, hostile: HostileMediaServer, token: str) -> None:
    account = add_account(bench.rt, USER, "tiktok")
    say(f"API process at start: {_memory(api.proc.pid)}")
    cases = (
        ("2 GB body, Range ignored (accepted: head only)", hostile.url("/norange.mp4", size=2 * 10 ** 9),
         "/norange.mp4"),
        ("2 GB body, no Content-Length", hostile.url("/nolength.mp4", size=2 * 10 ** 9), "/nolength.mp4"),
        ("5 GB body, Range ignored (over the 4 GiB cap)", hostile.url("/norange.mp4", size=5 * 10 ** 9),
         "/norange.mp4"),
        ("gzip bomb: 600 KB inflating to 600 MB", hostile.url("/gzip.mp4", inflated=600_000_000), "/gzip.mp4"),
        ("1 byte a second", hostile.url("/slow.mp4", size=100_000, interval=1.0), "/slow.mp4"),
    )
    hostile.bomb(600_000_000)  # made before the clock starts
    for name, url, path in cases:
        video = add_video(bench.rt, USER, mp4_url=url)
        sent = hostile.sent[path]
        started = time.monotonic()
        answer = httpx.post(f"{api.url}{P}/publish", headers={"Authorization": f"Bearer {token}"},
                            json={"video_job_id": video, "accounts": [account]}, timeout=120)
        took = time.monotonic() - started
        code = answer.json().get("code", "ok") if answer.status_code != 200 else "ok"
        say(f"  {name}: HTTP {answer.status_code} {code} in {took:.2f} s; the server pushed "
            f"{(hostile.sent[path] - sent) / 2 ** 20:.1f} MiB; API {_memory(api.proc.pid)}")
    for what in ("probe", "upload read"):
        source = MediaSource(bench.rt.settings, hostile.url("/slow.mp4", size=100_000, interval=1.0))
        started = time.monotonic()
        try:
            source.probe() if what == "probe" else b"".join(source.iter_range(0, 99_999))
        except PlatformError as exc:
            say(f"  1 byte a second holds a worker's {what} {time.monotonic() - started:.1f} s, then {exc.code}")


def rate_limit_row(bench: Bench, api: Api, token: str, seconds: float = 10.0, threads: int = 4) -> None:
    account = add_account(bench.rt, FLOODER, "tiktok")
    video = add_video(bench.rt, FLOODER)
    statuses: Counter = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def flood():
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                answer = client.post(f"{api.url}{P}/schedule", headers={"Authorization": f"Bearer {token}"},
                                     json={"video_job_id": video, "accounts": [account], "scheduled_at": later(3)})
                with lock:
                    statuses[answer.status_code] += 1

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(threads):
            pool.submit(flood)
    with bench.rt.engine.connect() as conn:
        from sqlalchemy import func, select

        p = bench.rt.tables.posts
        created = conn.execute(select(func.count()).select_from(p).where(p.c.wp_user_id == FLOODER)).scalar()
    say(f"rate limit: {threads} threads of one user on /schedule for {seconds:.0f} s: {dict(statuses)}; "
        f"{created} posts created")


def _health_times(api: Api, calls: int = 30) -> tuple[list[float], list[float]]:
    """(whole request ms, the workers check's own ms) of `calls` requests."""
    whole, workers = [], []
    with httpx.Client(timeout=30) as client:
        for _ in range(calls):
            started = time.monotonic()
            report = client.get(f"{api.url}{P}/health").json()
            whole.append((time.monotonic() - started) * 1000)
            workers.append(report["checks"]["workers"].get("ms", 0.0))
    return whole, workers


def health_row(bench: Bench, api: Api, keys: int = 300_000) -> None:
    from bridge.worker import BEATS_KEY

    bench.redis.zadd(BEATS_KEY, {"bench-worker": time.time() + 3600})  # one live worker for the whole run
    empty, empty_workers = _health_times(api)
    with bench.redis.pipeline(transaction=False) as pipe:
        for index in range(keys):
            pipe.set(f"bench:filler:{index}", b"x")
            if index % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
    full, full_workers = _health_times(api)
    started = time.monotonic()
    sum(1 for _ in bench.redis.scan_iter(match="bridge:worker:*", count=100))
    scan = (time.monotonic() - started) * 1000
    say(f"/health, whole request p50: {percentile(empty, 50):.1f} ms without filler keys, "
        f"{percentile(full, 50):.1f} ms with {bench.redis.dbsize():,} keys (max {max(full):.1f} ms); its workers "
        f"check p50 {percentile(empty_workers, 50):.2f} ms / {percentile(full_workers, 50):.2f} ms; "
        f"the keyspace scan it used to make: {scan:.0f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("media", "rate", "health"), help="one group of figures")
    args = parser.parse_args(argv)
    hostile = HostileMediaServer()
    try:
        with Bench(workers=0) as bench:
            api = Api(bench.env)
            try:
                def token(user: int) -> str:
                    now = int(time.time())
                    return jwt.encode({"iss": bench.env["AURAREELS_WP_URL"], "iat": now, "exp": now + 3600,
                                       "data": {"user": {"id": str(user)}}}, bench.env["JWT_AUTH_SECRET_KEY"])

                if args.only in (None, "media"):
                    media_rows(bench, api, hostile, token(USER))
                if args.only in (None, "rate"):
                    rate_limit_row(bench, api, token(FLOODER))
                if args.only in (None, "health"):
                    health_row(bench, api)
            finally:
                api.stop()
    finally:
        hostile.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
