"""Request ids, JSON log lines with redaction, and /metrics."""
from __future__ import annotations

import json
import logging

from bridge.logs import JsonFormatter, redact, request_id_var
from tests.conftest import INTERNAL_KEY, auth


def test_request_id_is_echoed_or_made(client):
    given = client.get("/aurareels/v1/social/accounts", headers={**auth(1), "X-Request-Id": "dash-123"})
    assert given.headers["X-Request-Id"] == "dash-123"
    made = client.get("/aurareels/v1/social/accounts", headers={**auth(1), "X-Request-Id": "bad id <script>"})
    assert made.headers["X-Request-Id"] != "bad id <script>" and len(made.headers["X-Request-Id"]) == 32


def test_log_lines_are_json_with_request_id_and_no_secrets():
    record = logging.LogRecord("bridge.test", logging.INFO, __file__, 1,
                               "calling https://x/?access_token=abc123&code=xyz Authorization: Bearer eyJ.secret", (),
                               None)
    token = request_id_var.set("req-9")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-9" and line["level"] == "info"
    assert "abc123" not in line["msg"] and "xyz" not in line["msg"] and "eyJ.secret" not in line["msg"]
    assert redact('{"refresh_token": "rft.1", "client_secret": "s"}') == \
        '{"refresh_token": "[redacted]", "client_secret": "[redacted]"}'


def test_metrics_need_the_internal_key_and_report_posts(client, rt):
    from tests.factories import add_account, add_post

    add_post(rt, 1, add_account(rt, 1, "tiktok"), status="scheduled")
    assert client.get("/aurareels/v1/social/metrics").status_code == 401
    page = client.get("/aurareels/v1/social/metrics", headers={"X-API-Key": INTERNAL_KEY})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'aurareels_posts{platform="tiktok",status="scheduled"} 1.0' in text
    assert "aurareels_queue_depth" in text


def test_queue_dashboard_is_behind_the_internal_key(client, rt):
    """Operators open rq-dashboard at /internal/rq/ with the internal key (header, bearer, or the
    browser's Basic prompt with the key as password); nobody else sees the queues."""
    import base64

    from bridge.queue import enqueue_now

    enqueue_now(rt, 424242)
    base = "/aurareels/v1/social/internal/rq"
    for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"},
                    {"Authorization": "Basic " + base64.b64encode(b"ops:wrong").decode()},
                    {"Authorization": "Basic %%%"}):
        refused = client.get(base + "/", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.get_json()["success"] is False and refused.get_json()["code"]
        assert refused.headers["WWW-Authenticate"].startswith("Basic ")
        assert b"publish" not in refused.data
    assert client.get("/wp-json/aurareels/v1/social/internal/rq/0/data/queues.json").status_code == 401

    browser = {"Authorization": "Basic " + base64.b64encode(f"ops:{INTERNAL_KEY}".encode()).decode()}
    for headers in ({"X-API-Key": INTERNAL_KEY}, {"Authorization": f"Bearer {INTERNAL_KEY}"}, browser):
        page = client.get(base + "/", headers=headers)
        assert page.status_code == 200 and b"RQ dashboard" in page.data
    queues = client.get(base + "/0/data/queues.json", headers=browser).get_json()["queues"]
    assert {"name": "publish", "count": 1}.items() <= {k: v for q in queues for k, v in q.items()
                                                        if q["name"] == "publish"}.items()
    assert client.get(base, headers=browser).status_code == 308
    # the dashboard's own links stay under the mount
    assert f'{base}/'.encode() in client.get(base + "/", headers=browser).data
