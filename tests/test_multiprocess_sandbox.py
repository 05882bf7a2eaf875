"""A sandbox deployment of separate processes sees one emulated world.

`aurareels-bridge sandbox`, `serve` and two `worker`s run as processes of their own on a MariaDB
database and a Redis database of their own, with `AURAREELS_SANDBOX=1` and nothing else about the
sandbox configured (no host map, no sandbox URL, no public URL: `serve --port` names its own
address). Headless Chromium connects one account of each of the six platforms through the consent
pages the API hands out; the API publishes and schedules the demo video to all six; the workers,
which never saw those consents, publish with the tokens they issued. Each platform's own record
(`GET /_sandbox/control/state/{platform}`, through the API) holds each post once.

A second run puts gunicorn with two worker processes in front and starts no sandbox process: the
API process that comes first serves the emulators and the rest find them in Redis.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis as redis_lib

from bridge.config import PLATFORMS, Settings
from bridge.runtime import Runtime
from bridge.sandbox.demo_video import demo_url
from bridge.sandbox.shared import REGISTRY_KEY
from tests.conftest import REDIS_URL, WorkerProcess, auth, base_env, migrated_database, wait_for
from tests.factories import add_video
from tests.platforms.oauth_driver import consent
from tests.test_browser import _wait, browser  # noqa: F401  (the headless Chromium fixture)

ROOT = Path(__file__).resolve().parent.parent
NS = "/wp-json/aurareels/v1/social"
USER = 7701


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A bridge command (or gunicorn) as a process of its own, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.args, self.env, self.log_path = args, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, env={**os.environ, **self.env}, cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        assert self.proc.poll() is None, f"{self.args[3:5]} exited ({self.proc.returncode}):\n{self.output()}"
        return True

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


def bridge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge.cli", *args]


@pytest.fixture
def deployment(fresh_database, tmp_path):
    """The environment of a sandbox deployment and a list its processes go in (stopped after)."""
    redis_url = REDIS_URL.rsplit("/", 1)[0] + "/7"
    redis_lib.Redis.from_url(redis_url).flushdb()
    env = base_env(AURAREELS_DATABASE_URL=migrated_database(fresh_database), AURAREELS_REDIS_URL=redis_url,
                   AURAREELS_SWEEP_SECONDS="2", AURAREELS_LEASE_SECONDS="6", AURAREELS_HTTP_TIMEOUT="10")
    for name in ("AURAREELS_PUBLIC_URL", "AURAREELS_FRONTEND_URL"):  # the API names its own address
        env.pop(name)
    processes: list = []
    yield env, processes, tmp_path
    for process in reversed(processes):
        process.stop()
    redis_lib.Redis.from_url(redis_url).flushdb()


def start_api(env, processes, tmp_path, command: list[str], port: int) -> str:
    api = Process(command, env, tmp_path / f"api-{port}.log").start()
    processes.append(api)
    url = f"http://127.0.0.1:{port}"

    def answers():
        api.alive()
        try:
            return httpx.get(f"{url}/health", timeout=3).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    wait_for(answers, timeout=90, interval=0.2)
    return url


def start_workers(env, processes, count: int) -> None:
    workers = [WorkerProcess(env).start() for _ in range(count)]
    processes.extend(workers)
    client = redis_lib.Redis.from_url(env["AURAREELS_REDIS_URL"])
    wait_for(lambda: all(w.proc.poll() is None for w in workers) and client.scard("rq:workers") >= count,
             timeout=90, interval=0.2)


def fast_platforms(url: str) -> None:
    """Through the API's /_sandbox/ mount: every platform finishes processing at once."""
    for platform in PLATFORMS:
        config = httpx.get(f"{url}/_sandbox/control/state/{platform}", timeout=10).json()["state"]["config"]
        fast = {k: 0 for k in config if k.endswith(("processing_seconds", "moderation_seconds"))}
        answer = httpx.post(f"{url}/_sandbox/control/config", json={"platform": platform, **fast}, timeout=10)
        assert answer.status_code == 200, answer.text


def landed(url: str, location: str) -> None:
    """The callback's redirect reached the bridge's own landing page; a pending link is confirmed
    with the user's login (when connects wait for the dashboard's confirmation)."""
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{url}/dashboard/social-accounts?"), location
    if query["status"] == ["pending"]:
        answer = httpx.post(f"{url}{NS}/accounts/links/{query['link'][0]}/confirm", headers=auth(USER), timeout=10)
        assert answer.status_code == 200, answer.text
    else:
        assert query["status"] == ["success"], query


def connect_in_browser(browser, url: str, platform: str) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    start = httpx.post(f"{url}{NS}/accounts/connect/{platform}", headers=auth(USER), timeout=10)
    assert start.status_code == 200, start.text
    auth_url = start.json()["auth_url"]
    assert auth_url.startswith(f"{url}/_sandbox/"), auth_url  # the port serve listens on, not 8080
    assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{urlsplit(url).port}%2F" in auth_url
    browser.get(auth_url)
    _wait(browser, lambda d: d.find_element(By.ID, "allow")).click()
    _wait(browser, lambda d: "/dashboard/social-accounts" in d.current_url)
    # the landing page drops a pending link from the address (it must not leak); the page holds it
    links = browser.find_elements(By.ID, "link")
    location = browser.current_url
    if links:
        location = f"{url}/dashboard/social-accounts?status=pending&platform={platform}&link={links[0].get_attribute('data-link')}"
    landed(url, location)


def publish_and_schedule(url: str, rt, marker: str, account_ids: list[int]) -> list[int]:
    video = add_video(rt, USER, mp4_url=demo_url())
    common = {"video_job_id": video, "accounts": account_ids, "title": f"Demo {marker}", "privacy_level": "PUBLIC"}
    now = httpx.post(f"{url}{NS}/publish", headers=auth(USER), json={**common, "caption": f"now {marker}"},
                     timeout=30)
    assert now.status_code == 200, now.text
    when = (datetime.now(timezone.utc) + timedelta(seconds=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = httpx.post(f"{url}{NS}/schedule", headers=auth(USER),
                       json={**common, "caption": f"later {marker}", "scheduled_at": when}, timeout=30)
    assert later.status_code == 200, later.text
    return [p["id"] for p in now.json()["posts"] + later.json()["posts"]]


def all_published(url: str, post_ids: list[int], processes) -> bool:
    for process in processes:
        assert process.proc.poll() is None, "a process of the deployment exited"
    posts = httpx.get(f"{url}{NS}/posts", params={"per_page": 100}, headers=auth(USER), timeout=10).json()["posts"]
    mine = {p["id"]: p for p in posts if p["id"] in post_ids}
    failed = [(p["platform"], p["error_code"], p["error_message"]) for p in mine.values() if p["status"] == "failed"]
    assert not failed, failed
    return len(mine) == len(post_ids) and all(p["status"] == "published" and p["platform_post_url"]
                                              for p in mine.values())


def published_once(url: str, platform: str, marker: str) -> dict[str, int]:
    """How many of the platform's own published items carry each of the two captions."""
    import json

    answer = httpx.get(f"{url}/_sandbox/control/state/{platform}", timeout=10).json()
    assert answer["ok"] is True
    items = [json.dumps(item) for item in answer["state"]["published"]]
    return {kind: sum(f"{kind} {marker}" in item for item in items) for kind in ("now", "later")}


def test_serve_two_workers_and_the_sandbox_as_separate_processes_publish_to_all_six_once(deployment, browser):  # noqa: F811
    env, processes, tmp_path = deployment
    sandbox = Process(bridge_command("sandbox", "--port", "0"), env, tmp_path / "sandbox.log").start()
    processes.append(sandbox)
    registry = redis_lib.Redis.from_url(env["AURAREELS_REDIS_URL"])
    wait_for(lambda: sandbox.alive() and registry.get(REGISTRY_KEY), timeout=60, interval=0.2)
    port = free_port()
    url = start_api(env, processes, tmp_path, bridge_command("serve", "--port", str(port)), port)
    start_workers(env, processes, 2)
    fast_platforms(url)

    for platform in PLATFORMS:
        connect_in_browser(browser, url, platform)
    accounts = httpx.get(f"{url}{NS}/accounts", headers=auth(USER), timeout=10).json()["accounts"]
    assert sorted(a["platform"] for a in accounts) == sorted(PLATFORMS)

    rt = Runtime.from_settings(Settings.from_env(env))
    marker = uuid.uuid4().hex[:8]
    post_ids = publish_and_schedule(url, rt, marker, [a["id"] for a in accounts])
    wait_for(lambda: all_published(url, post_ids, processes), timeout=150, interval=0.5)
    for platform in PLATFORMS:
        assert published_once(url, platform, marker) == {"now": 1, "later": 1}, platform
    # the world is the sandbox process's: the API forwarded every consent and control call to it
    assert sandbox.alive() and registry.get(REGISTRY_KEY)
    rt.engine.dispose()


def test_gunicorn_workers_and_a_worker_share_the_world_the_first_api_process_serves(deployment):
    env, processes, tmp_path = deployment
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "wsgi:app"]
    env = {**env, "AURAREELS_PUBLIC_URL": f"http://127.0.0.1:{port}"}  # gunicorn has no --port of ours
    url = start_api(env, processes, tmp_path, command, port)
    registry = redis_lib.Redis.from_url(env["AURAREELS_REDIS_URL"])
    wait_for(lambda: registry.get(REGISTRY_KEY), timeout=30)
    start_workers(env, processes, 1)
    fast_platforms(url)
    # each request may reach either gunicorn worker: consent page, form and callback must agree
    for _ in range(3):
        start = httpx.post(f"{url}{NS}/accounts/connect/tiktok", headers=auth(USER), timeout=10).json()
        params = consent(start["auth_url"])
        callback = httpx.get(params["_redirect"], timeout=10)
        assert callback.status_code == 302
        landed(url, callback.headers["Location"])
    accounts = httpx.get(f"{url}{NS}/accounts", headers=auth(USER), timeout=10).json()["accounts"]
    assert [a["platform"] for a in accounts] == ["tiktok"]
    rt = Runtime.from_settings(Settings.from_env(env))
    marker = uuid.uuid4().hex[:8]
    post_ids = publish_and_schedule(url, rt, marker, [accounts[0]["id"]])
    wait_for(lambda: all_published(url, post_ids, processes), timeout=120, interval=0.5)
    assert published_once(url, "tiktok", marker) == {"now": 1, "later": 1}
    rt.engine.dispose()
