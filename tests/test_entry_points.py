"""Where people and probes first arrive: `/health` at the server root, the landing page the OAuth
callback sends a browser to when the bridge is its own front end, the address `serve` and `up`
put in OAuth redirects, and the Dockerfile's health check."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.app import create_app
from bridge.cli import _local_url, _settings
from bridge.runtime import Runtime
from tests.conftest import base_env

ROOT = Path(__file__).resolve().parent.parent


def shape(answer) -> tuple:
    body = answer.get_json()
    return answer.status_code, body["status"], {name: check["ok"] for name, check in body["checks"].items()}


def test_health_at_the_server_root_is_the_prefixed_answer(client):
    root = client.get("/health")
    assert root.headers["Content-Type"].startswith("application/json")
    assert shape(root) == shape(client.get("/aurareels/v1/social/health")) == shape(
        client.get("/wp-json/aurareels/v1/social/health"))
    assert set(root.get_json()["checks"]) >= {"database", "redis", "workers", "scheduler"}
    assert client.post("/health").status_code == 405


def test_the_openapi_document_lists_the_root_health(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert set(paths["/health"]["get"]["responses"]) == {"200", "503"}


def test_the_dockerfile_probes_the_root_health():
    healthcheck = re.search(r"HEALTHCHECK[^\n]*\\\n([^\n]*)", (ROOT / "Dockerfile").read_text()).group(1)
    assert "'http://127.0.0.1:8080/health'" in healthcheck


@pytest.fixture
def own_front_end(rt):
    """An app whose front-end URL is its own public URL (as in `up`)."""
    settings = rt.settings.with_overrides(public_url="http://127.0.0.1:8123", frontend_url="http://127.0.0.1:8123")
    return create_app(runtime=Runtime.from_settings(settings, engine=rt.engine)).test_client()


def test_the_landing_page_says_what_happened(own_front_end):
    ok = own_front_end.get("/dashboard/social-accounts?status=success&platform=tiktok")
    assert ok.status_code == 200 and ok.mimetype == "text/html"
    assert "Your tiktok account is connected" in ok.get_data(as_text=True)
    bad = own_front_end.get("/dashboard/social-accounts", query_string={
        "status": "error", "platform": "x", "message": "<script>alert(1)</script> denied"}).get_data(as_text=True)
    assert "Not connected" in bad and "&lt;script&gt;alert(1)&lt;/script&gt; denied" in bad and "<script>alert" not in bad
    pending = own_front_end.get("/dashboard/social-accounts?status=pending&platform=youtube&link=L1nk\"x")
    text = pending.get_data(as_text=True)
    assert ("http://127.0.0.1:8123/wp-json/aurareels/v1/social/accounts/links/L1nk&quot;x/confirm" in text
            and 'L1nk"x' not in text)


def test_with_a_dashboard_of_its_own_the_bridge_serves_no_landing_page(client):
    answer = client.get("/dashboard/social-accounts?status=success&platform=tiktok")
    assert answer.status_code == 404 and answer.get_json()["code"] == "not_found"


def test_serve_and_up_put_their_own_port_in_oauth_redirects_unless_a_public_url_is_set(monkeypatch, tmp_path):
    for name, value in base_env(AURAREELS_DATABASE_URL=f"sqlite:///{tmp_path / 'b.sqlite3'}").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AURAREELS_PUBLIC_URL")
    monkeypatch.delenv("AURAREELS_FRONTEND_URL")
    settings = _settings(served_at=_local_url("0.0.0.0", 9123))
    assert settings.public_url == settings.frontend_url == "http://127.0.0.1:9123"
    assert settings.redirect_uri("tiktok") == "http://127.0.0.1:9123/wp-json/aurareels/v1/social/callback/tiktok"
    monkeypatch.setenv("AURAREELS_PUBLIC_URL", "https://site.example")
    assert _settings(served_at="http://127.0.0.1:9123").public_url == "https://site.example"
    assert _local_url("::1", 80) == "http://[::1]:80" and _local_url("127.0.0.2", 81) == "http://127.0.0.2:81"


def test_a_uploader_table_that_refuses_the_demo_job_leaves_up_running(tmp_path, capsys):
    from sqlalchemy import text

    from bridge.cli import _seed_demo
    from bridge.config import Settings

    settings = Settings.from_env(base_env(AURAREELS_DATABASE_URL=f"sqlite:///{tmp_path / 'site.sqlite3'}"))
    rt = Runtime.from_settings(settings)
    with rt.engine.begin() as conn:  # a site's own uploader table, with a column the bridge does not know
        conn.execute(text("CREATE TABLE wp_chavetas_video_uploader (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL,"
                          " wp_user_id INTEGER NOT NULL, mp4_url TEXT, thumbnail_url TEXT, status TEXT NOT NULL)"))
    assert _seed_demo(rt) is False
    assert "the demo video job could not be created" in capsys.readouterr().err
    with rt.engine.begin() as conn:
        conn.execute(text("ALTER TABLE wp_chavetas_video_uploader DROP COLUMN status"))
    assert _seed_demo(rt) is True
