"""Outbound webhooks: signed over timestamp and body, with an event id; retried by RQ."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from rq import Queue

from bridge import jobs
from bridge.services import events
from tests.factories import add_account, add_post


@pytest.fixture
def receiver():
    got: list[dict] = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"headers": dict(self.headers), "body": body})
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", got, status
    server.shutdown()


def test_post_published_event_is_signed_and_identified(rt, receiver, monkeypatch, redis_client):
    url, got, status = receiver
    monkeypatch.setenv("AURAREELS_WEBHOOK_URL", url)
    monkeypatch.setenv("AURAREELS_WEBHOOK_SECRET", "hook-secret")
    post_id = add_post(rt, 7, add_account(rt, 7), status="published", platform_post_id="v1",
                       platform_post_url="https://www.tiktok.com/@a/video/1")
    events.emit(rt, "post.published", post_id)
    queued = Queue("default", connection=redis_client).jobs
    assert len(queued) == 1 and queued[0].func_name == "bridge.jobs.deliver_event"
    assert queued[0].retries_left == 8
    jobs.set_runtime(rt)
    assert jobs.deliver_event(*queued[0].args) == 200
    delivered = got[0]
    payload = json.loads(delivered["body"])
    assert payload["type"] == "post.published" and payload["post"]["id"] == post_id
    assert payload["id"] == delivered["headers"]["X-AuraReels-Event-Id"]
    timestamp, signature = (part.split("=", 1)[1] for part in delivered["headers"]["X-AuraReels-Signature"].split(","))
    expected = hmac.new(b"hook-secret", f"{timestamp}.".encode() + delivered["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)


def test_receiver_failure_raises_so_rq_retries(rt, receiver, monkeypatch):
    url, got, status = receiver
    status["code"] = 500
    monkeypatch.setenv("AURAREELS_WEBHOOK_URL", url)
    post_id = add_post(rt, 7, add_account(rt, 7), status="failed", error_code="rejected")
    jobs.set_runtime(rt)
    with pytest.raises(RuntimeError):
        jobs.deliver_event("post.failed", post_id, "evt-1")
    assert len(got) == 1


def test_no_url_no_event(rt, redis_client, monkeypatch):
    monkeypatch.delenv("AURAREELS_WEBHOOK_URL", raising=False)
    events.emit(rt, "post.failed", 1)
    assert Queue("default", connection=redis_client).count == 0
