"""n8n scheduling mode without n8n: the internal wake-up route's answers, the notify job, and the
workflow files under n8n/. Runs against this machine's MariaDB and Redis (tests/conftest.py)."""
from __future__ import annotations

import dataclasses
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from sqlalchemy import select

from bridge import jobs
from bridge.queue import DEFAULT_QUEUE, PUBLISH_QUEUE, publish_job_id
from bridge.store.db import utcnow
from bridge.timefmt import iso_z
from tests.conftest import FAKE_SECRETS, INTERNAL_KEY, auth
from tests.factories import add_account, add_post, add_video
from tests.n8n import workflows as wf

P = "/wp-json/aurareels/v1/social"
URL = f"{P}/internal/publish-scheduled"
KEY = {"X-API-Key": INTERNAL_KEY}
USER = 4101


# ------------------------------------------------------------------------------ fixtures
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def n8n_rt(rt):
    """The test runtime switched to AURAREELS_SCHEDULER=n8n with n8n on a closed port."""
    settings = dataclasses.replace(rt.settings, scheduler="n8n",
                                   n8n_scheduler_webhook=f"http://127.0.0.1:{closed_port()}/webhook/aurareels-social-schedule")
    runtime = dataclasses.replace(rt, settings=settings)
    previous = jobs._runtime
    jobs.set_runtime(runtime)
    yield runtime
    jobs._runtime = previous


@pytest.fixture
def n8n_client(n8n_rt):
    from bridge.app import create_app

    application = create_app(runtime=n8n_rt)
    application.testing = True
    return application.test_client()


@pytest.fixture
def account(n8n_rt):
    return add_account(n8n_rt, USER, "tiktok")


def status_of(rt, post_id: int) -> str:
    with rt.engine.connect() as conn:
        return conn.execute(select(rt.tables.posts.c.status).where(rt.tables.posts.c.id == post_id)).scalar_one()


def publish_jobs(redis_client) -> list[str]:
    return Queue(PUBLISH_QUEUE, connection=redis_client).job_ids


def wake(client, post_id: int, when) -> tuple[int, dict]:
    response = client.post(URL, json={"post_id": post_id, "scheduled_at": when if isinstance(when, str) else iso_z(when)},
                           headers=KEY)
    return response.status_code, response.get_json()


# ------------------------------------------------------------------ the wake-up route (409s)
def test_due_post_is_claimed_once_and_queued(n8n_client, n8n_rt, account, redis_client):
    due = (utcnow() - timedelta(seconds=2)).replace(microsecond=0)
    post = add_post(n8n_rt, USER, account, scheduled_at=due)
    status, body = wake(n8n_client, post, due)
    assert status == 200 and body["success"] is True
    assert body["post"] == {"id": post, "status": "publishing"}
    assert status_of(n8n_rt, post) == "publishing"
    assert publish_jobs(redis_client) == [publish_job_id(post)]


def test_stale_time_is_409_rescheduled_and_nothing_is_published(n8n_client, n8n_rt, account, redis_client):
    old = (utcnow() - timedelta(seconds=3)).replace(microsecond=0)
    # rescheduled to later: n8n's first wake-up arrives at the old time
    later = add_post(n8n_rt, USER, account, scheduled_at=old + timedelta(hours=2))
    # rescheduled to earlier and already due: a wake-up for another time is stale too
    earlier = add_post(n8n_rt, USER, account, scheduled_at=old)
    for post, stale in ((later, old), (earlier, old - timedelta(minutes=10))):
        status, body = wake(n8n_client, post, stale)
        assert status == 409 and body == {"success": False, "code": "post_rescheduled", "message": body["message"]}
        assert status_of(n8n_rt, post) == "scheduled"
    # the same instant written with an offset is the same time, not a stale one
    status, body = wake(n8n_client, earlier, (old + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00"))
    assert status == 200, body
    assert publish_jobs(redis_client) == [publish_job_id(earlier)]
    assert status_of(n8n_rt, later) == "scheduled"


@pytest.mark.parametrize("state, code", [
    ("cancelled", "post_cancelled"),
    ("published", "post_already_published"),
    ("publishing", "post_publishing"),
    ("failed", "post_failed"),
])
def test_post_no_longer_scheduled_is_409(n8n_client, n8n_rt, account, redis_client, state, code):
    when = (utcnow() - timedelta(seconds=2)).replace(microsecond=0)
    extra = {"published_at": utcnow()} if state == "published" else {}
    post = add_post(n8n_rt, USER, account, status=state, scheduled_at=when, **extra)
    status, body = wake(n8n_client, post, when)
    assert status == 409 and body["success"] is False and body["code"] == code and body["message"]
    assert status_of(n8n_rt, post) == state
    assert publish_jobs(redis_client) == []


def test_cancel_through_the_api_then_wake_up_is_409(n8n_client, n8n_rt, account, redis_client):
    when = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    post = add_post(n8n_rt, USER, account, scheduled_at=when)
    assert n8n_client.delete(f"{P}/posts/{post}", headers=auth(USER)).status_code == 200
    status, body = wake(n8n_client, post, when)
    assert status == 409 and body["code"] == "post_cancelled"
    assert status_of(n8n_rt, post) == "cancelled" and publish_jobs(redis_client) == []


def test_duplicate_wake_up_gets_409_publishing_and_one_job(n8n_client, n8n_rt, account, redis_client):
    due = (utcnow() - timedelta(seconds=1)).replace(microsecond=0)
    post = add_post(n8n_rt, USER, account, scheduled_at=due)
    first = wake(n8n_client, post, due)
    second = wake(n8n_client, post, due)
    assert first[0] == 200 and first[1]["success"] is True
    assert second[0] == 409 and second[1]["code"] == "post_publishing"
    assert publish_jobs(redis_client) == [publish_job_id(post)]


def test_concurrent_wake_ups_claim_once(n8n_app_factory, n8n_rt, account, redis_client):
    due = (utcnow() - timedelta(seconds=1)).replace(microsecond=0)
    post = add_post(n8n_rt, USER, account, scheduled_at=due)

    def call(_):
        return wake(n8n_app_factory().test_client(), post, due)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert sorted(status for status, _ in results) == [200] + [409] * 7
    assert {body["code"] for status, body in results if status == 409} == {"post_publishing"}
    assert publish_jobs(redis_client) == [publish_job_id(post)]


@pytest.fixture
def n8n_app_factory(n8n_rt):
    from bridge.app import create_app

    app = create_app(runtime=n8n_rt)
    app.testing = True
    return lambda: app


def test_not_due_unknown_and_bad_key(n8n_client, n8n_rt, account, redis_client):
    when = (utcnow() + timedelta(minutes=5)).replace(microsecond=0)
    post = add_post(n8n_rt, USER, account, scheduled_at=when)
    status, body = wake(n8n_client, post, when)
    assert status == 409 and body["code"] == "post_not_due"
    status, body = wake(n8n_client, 987654321, when)
    assert status == 404 and body["code"] == "post_not_found"
    bad = n8n_client.post(URL, json={"post_id": post, "scheduled_at": iso_z(when)}, headers={"X-API-Key": "nope"})
    assert bad.status_code == 401
    bearer = n8n_client.post(URL, json={"post_id": post, "scheduled_at": iso_z(when)},
                             headers={"Authorization": f"Bearer {INTERNAL_KEY}"})
    assert bearer.status_code == 409 and bearer.get_json()["code"] == "post_not_due"
    garbage = n8n_client.post(URL, json={"post_id": post, "scheduled_at": "soon"}, headers=KEY)
    assert garbage.status_code in (400, 422) and garbage.get_json()["success"] is False
    assert status_of(n8n_rt, post) == "scheduled" and publish_jobs(redis_client) == []


# ------------------------------------------------------------------------ telling n8n
class _Recorder(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        type(self).received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        payload = b'{"message":"Workflow was started"}'
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_n8n():
    """A small local HTTP server standing in for n8n's webhook; records what it receives."""
    handler = type("Recorder", (_Recorder,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_port}/webhook/aurareels-social-schedule"
    yield handler
    server.shutdown()
    server.server_close()


def notify_jobs(redis_client) -> list[str]:
    return [j for j in Queue(DEFAULT_QUEUE, connection=redis_client).job_ids if j.startswith("n8n-")]


def test_n8n_down_at_scheduling_time(n8n_client, n8n_rt, account, redis_client, fake_n8n):
    video = add_video(n8n_rt, USER)
    when = (utcnow() + timedelta(hours=3)).replace(microsecond=0)
    started = time.monotonic()
    response = n8n_client.post(f"{P}/schedule", headers=auth(USER), json={
        "video_job_id": video, "accounts": [account], "caption": "Later", "privacy_level": "PUBLIC",
        "scheduled_at": iso_z(when)})
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.get_data(as_text=True)
    post = response.get_json()["posts"][0]["id"]
    assert elapsed < 5, f"scheduling waited {elapsed:.1f} s on n8n"
    # the hand-over is a queued job, with retries, not a call made inside the request
    job_id = f"n8n-{post}-{int(when.replace(tzinfo=timezone.utc).timestamp())}"
    assert notify_jobs(redis_client) == [job_id]
    job = Job.fetch(job_id, connection=redis_client)
    assert job.retries_left and job.retries_left >= 3
    assert status_of(n8n_rt, post) == "scheduled"

    # the job itself raises while n8n is down...
    with pytest.raises((httpx.HTTPError, OSError, RuntimeError)):
        jobs.notify_n8n(post)
    # ...so a worker leaves it for a retry instead of dropping it
    SimpleWorker([Queue(DEFAULT_QUEUE, connection=redis_client)], connection=redis_client).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == 5

    # n8n answers an error status: still raises (RQ retries)
    fake_n8n.status = 503
    _point_at(n8n_rt, fake_n8n.url)
    with pytest.raises(RuntimeError):
        jobs.notify_n8n(post)

    # n8n is back: the payload arrives with the key and an ISO instant with Z
    fake_n8n.status = 200
    fake_n8n.received.clear()
    assert jobs.notify_n8n(post) == "sent"
    [got] = fake_n8n.received
    assert got["path"] == "/webhook/aurareels-social-schedule"
    assert got["headers"]["X-API-Key"] == INTERNAL_KEY
    assert got["headers"]["Content-Type"].startswith("application/json")
    assert got["body"] == {"post_id": post, "scheduled_at": iso_z(when), "user_id": USER}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got["body"]["scheduled_at"])

    # a cancelled post is not announced
    fake_n8n.received.clear()
    assert n8n_client.delete(f"{P}/posts/{post}", headers=auth(USER)).status_code == 200
    assert jobs.notify_n8n(post) == "skipped" and fake_n8n.received == []


def test_reschedule_announces_the_new_time(n8n_client, n8n_rt, account, redis_client, fake_n8n):
    _point_at(n8n_rt, fake_n8n.url)
    when = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    post = add_post(n8n_rt, USER, account, scheduled_at=when)
    new = when + timedelta(minutes=30)
    response = n8n_client.patch(f"{P}/posts/{post}/reschedule", headers=auth(USER), json={"scheduled_at": iso_z(new)})
    assert response.status_code == 200
    # one notify job per (post, time): the new time gets its own
    assert any(j.endswith(f"-{int(new.replace(tzinfo=timezone.utc).timestamp())}")
               for j in notify_jobs(redis_client))
    assert jobs.notify_n8n(post) == "sent"
    assert fake_n8n.received[-1]["body"]["scheduled_at"] == iso_z(new)


def _point_at(runtime, url: str) -> None:
    """Change the webhook URL of the runtime the job function uses."""
    runtime.settings = dataclasses.replace(runtime.settings, n8n_scheduler_webhook=url)
    jobs.set_runtime(runtime)


# ---------------------------------------------------------------------- the workflow files
SECRET_SHAPES = [
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)\"(api[_-]?key|apikey|password|secret|token|access_token|value)\"\s*:\s*\"(?!=|https?://)[^\"]{16,}\""),
    re.compile(r"\b[A-Fa-f0-9]{40,}\b"),
    re.compile(r"\b(sk|pk|xox[abp]|ghp|eyJ)[A-Za-z0-9_\-]{16,}"),
]


@pytest.mark.parametrize("path", wf.WORKFLOWS, ids=lambda p: p.name)
def test_workflow_file_shape(path):
    text = path.read_text(encoding="utf-8")
    workflow = json.loads(text)
    names = [n["name"] for n in workflow["nodes"]]
    assert len(names) == len(set(names))
    assert workflow["id"] and workflow["name"].startswith("AuraReels")
    for source, outputs in workflow["connections"].items():
        assert source in names
        for branch in outputs["main"]:
            for edge in branch:
                assert edge["node"] in names and edge["type"] == "main"
    # never configured through the environment, no secrets in the file
    assert "$env" not in text and "process.env" not in text
    for secret in FAKE_SECRETS:
        assert secret not in text
    for shape in SECRET_SHAPES:
        assert not shape.search(text), shape.pattern
    for node in workflow["nodes"]:
        assert "credentials" not in node or set(node["credentials"]) == {"httpHeaderAuth"}
        for header in node["parameters"].get("headerParameters", {}).get("parameters", []):
            assert header["name"].lower() not in ("x-api-key", "authorization")
    # the bridge URL lives in one place, the Config node
    assert text.count("127.0.0.1:8080") == 1
    assert wf.config_assignments(workflow)[wf.BRIDGE_URL_FIELD]["value"] == wf.DEFAULT_BRIDGE_URL
    http_nodes = [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.httpRequest"]
    assert http_nodes
    for node in http_nodes:
        assert node["parameters"]["url"].startswith("={{ $('Config').first().json.bridge_url }}/wp-json/")
        assert node["parameters"]["url"].endswith("/aurareels/v1/social/internal/publish-scheduled")
        assert node["parameters"]["authentication"] == "genericCredentialType"
        assert node["parameters"]["genericAuthType"] == "httpHeaderAuth"
        assert node.get("onError") == "continueErrorOutput"


def test_credentials_are_referenced_by_id_and_name():
    [credential] = wf.load(wf.CREDENTIALS)
    assert credential["type"] == "httpHeaderAuth"
    assert credential["data"]["name"] == "X-API-Key"
    assert "REPLACE" in credential["data"]["value"]  # a placeholder, not a secret
    for path in wf.WORKFLOWS:
        workflow = wf.load(path)
        used = [n["credentials"]["httpHeaderAuth"] for n in workflow["nodes"] if "credentials" in n]
        assert len(used) >= 2  # the webhook checks it, the HTTP call sends it
        assert all(ref == {"id": credential["id"], "name": credential["name"]} for ref in used)


def test_scheduler_webhook_and_wait():
    workflow = wf.load(wf.SCHEDULER)
    hook = wf.webhook_node(workflow)
    params = hook["parameters"]
    assert params["path"] == "aurareels-social-schedule" and params["httpMethod"] == "POST"
    assert params["authentication"] == "headerAuth" and params.get("responseMode", "onReceived") == "onReceived"
    waits = {n["name"]: n["parameters"] for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.wait"}
    assert waits["Wait Until Scheduled Time"]["resume"] == "specificTime"
    assert "scheduled_at" in waits["Wait Until Scheduled Time"]["dateTime"]
    config = wf.config_assignments(workflow)
    assert config["retry_wait_seconds"]["value"] == 300 and config["max_retries"]["value"] == 3
    stops = [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.stopAndError"]
    assert stops, "failures must end in a Stop and Error node"


def test_publisher_has_its_own_path():
    # both workflows can be published in one n8n at once: n8n refuses two active webhooks on one path
    paths = {wf.webhook_node(wf.load(p))["parameters"]["path"] for p in wf.WORKFLOWS}
    assert paths == {"aurareels-social-schedule", "aurareels-social-publish"}


def test_rewriting_the_bridge_url_changes_every_call():
    for path in wf.WORKFLOWS:
        workflow = wf.with_config(wf.load(path), bridge_url="http://10.1.2.3:9999")
        text = json.dumps(workflow)
        assert "127.0.0.1:8080" not in text and text.count("10.1.2.3:9999") == 1
