"""The application skeleton: both prefixes, the error envelope, health, OpenAPI, accounts."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import insert

from tests.conftest import auth

PREFIXES = ("/wp-json/aurareels/v1/social", "/aurareels/v1/social")


def add_account(rt, user_id, platform="tiktok", account_id=None, active=1, **extra):
    values = dict(
        wp_user_id=user_id, platform=platform, account_id=account_id or f"{platform}-{user_id}",
        account_name=f"{platform} of {user_id}", account_username=f"@{platform}{user_id}",
        access_token=rt.vault.encrypt("act.secret-access"), refresh_token=rt.vault.encrypt("rft.secret-refresh"),
        token_expires_at=datetime(2031, 5, 6, 7, 8, 9), is_active=active,
    )
    values.update(extra)
    with rt.engine.begin() as conn:
        return conn.execute(insert(rt.tables.accounts).values(**values)).inserted_primary_key[0]


def assert_envelope(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] is False
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    if code:
        assert body["code"] == code
    return body


@pytest.mark.parametrize("prefix", PREFIXES)
def test_accounts_list_end_to_end(client, rt, prefix):
    add_account(rt, 7, "tiktok")
    add_account(rt, 7, "instagram")
    add_account(rt, 7, "youtube", active=0)
    add_account(rt, 8, "tiktok")
    response = client.get(f"{prefix}/accounts", headers=auth(7))
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    assert [a["platform"] for a in body["accounts"]] == ["tiktok", "instagram"]
    first = body["accounts"][0]
    assert first["token_expires_at"] == "2031-05-06 07:08:09"
    assert first["is_active"] is True and first["needs_reconnect"] is False
    assert set(first) >= {"id", "platform", "account_name", "account_username", "profile_picture_url",
                          "is_active", "token_expires_at", "created_at"}
    assert "access_token" not in response.get_data(as_text=True)
    assert "secret-access" not in response.get_data(as_text=True)

    filtered = client.get(f"{prefix}/accounts?platform=instagram", headers=auth(7)).get_json()
    assert [a["platform"] for a in filtered["accounts"]] == ["instagram"]


def test_accounts_bad_platform_filter_is_422(client):
    body = assert_envelope(client.get("/aurareels/v1/social/accounts?platform=myspace", headers=auth(1)), 422,
                           "validation_error")
    assert "platform" in body["errors"]


def test_accounts_needs_token(client):
    assert_envelope(client.get("/aurareels/v1/social/accounts"), 401, "missing_token")


@pytest.mark.parametrize("prefix", PREFIXES)
def test_unknown_route_is_404_envelope(client, prefix):
    assert_envelope(client.get(f"{prefix}/nope"), 404, "not_found")


def test_unknown_route_outside_prefix(client):
    assert_envelope(client.get("/favicon.ico"), 404, "not_found")


def test_wrong_method_is_405_envelope(client):
    response = client.delete("/wp-json/aurareels/v1/social/health")
    assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


@pytest.fixture
def probe(app):
    """A JSON route registered for these tests only, so body handling is checked before the
    routes that take bodies exist."""
    from flask.views import MethodView
    from flask_smorest import Blueprint
    from marshmallow import Schema, fields

    class Body(Schema):
        name = fields.String(required=True)

    blp = Blueprint("probe", __name__, url_prefix="/aurareels/v1/social")

    @blp.route("/probe")
    class Probe(MethodView):
        @blp.arguments(Body)
        def post(self, body):
            return {"success": True}

    app.extensions["bridge_api"].register_blueprint(blp)
    return "/wp-json/aurareels/v1/social/probe"


def test_malformed_json_is_400_envelope(client, probe):
    response = client.post(probe, data="{not json", headers={"Content-Type": "application/json"})
    assert_envelope(response, 400, "invalid_json")
    body = assert_envelope(client.post(probe, json={}), 422, "validation_error")
    assert "name" in body["errors"]
    assert client.post(probe, json={"name": "x"}).status_code == 200


def test_oversized_body_is_413_envelope(client, probe):
    response = client.post(probe, data=b"x" * 2_000_000, headers={"Content-Type": "application/json"})
    assert_envelope(response, 413, "payload_too_large")


@pytest.mark.parametrize("prefix", PREFIXES)
def test_health_ok_with_a_running_worker(engine_rt, prefix):
    from bridge.app import create_app
    from tests.conftest import wait_for

    client = create_app(runtime=engine_rt).test_client()
    response = wait_for(lambda: (r := client.get(f"{prefix}/health")).status_code == 200 and r)
    body = response.get_json()
    assert body["status"] == "ok"
    assert all(body["checks"][name]["ok"] for name in ("database", "redis", "workers", "scheduler"))
    assert body["checks"]["workers"]["alive"] >= 1


def test_health_degraded_without_workers(app, rt):
    import redis

    empty = redis.Redis.from_url(rt.settings.redis_url.rsplit("/", 1)[0] + "/14")
    empty.flushdb()
    rt._redis = empty  # a Redis no worker uses: no heartbeat, no scheduler
    response = app.test_client().get("/aurareels/v1/social/health")
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "degraded"
    assert body["checks"]["workers"]["ok"] is False and body["checks"]["scheduler"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True and body["checks"]["redis"]["ok"] is True


def test_health_degraded_when_redis_down(app, rt):
    import redis

    rt._redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    response = app.test_client().get("/aurareels/v1/social/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded" and body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_database_down_is_503_envelope(rt, settings):
    from bridge.app import create_app
    from bridge.runtime import Runtime
    from bridge.store.db import make_engine

    dead = Runtime.from_settings(settings, engine=make_engine("mysql+pymysql://root@127.0.0.1:1/x"))
    client = create_app(runtime=dead).test_client()
    assert_envelope(client.get("/aurareels/v1/social/accounts", headers=auth(1)), 503, "database_unavailable")


@pytest.mark.parametrize("path", ["/openapi.json", "/aurareels/v1/social/openapi.json",
                                  "/wp-json/aurareels/v1/social/openapi.json"])
def test_openapi_document(client, path):
    spec = client.get(path).get_json()
    assert spec["openapi"].startswith("3.")
    assert "/aurareels/v1/social/accounts" in spec["paths"]


def test_docs_page_is_served_offline(client):
    page = client.get("/wp-json/aurareels/v1/social/docs")
    assert page.status_code == 200 and b"swagger-ui-bundle.js" in page.data
    asset = client.get("/wp-json/aurareels/v1/social/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000
