"""Property-based fuzzing of every documented operation, generated from the app's `/openapi.json`.

Each operation gets a bounded number of generated requests (valid and invalid, with and without
credentials) from a signed-in user whose data is seeded: a video, accounts and posts in every
state. Part of the generated ids, platforms and times are swapped for seeded or valid ones so the
happy paths run too. Every answer must be no 5xx, carry a
status the document lists for that operation by number (not through `default`), the documented
content type and a body that matches the documented schema; errors come in the envelope; invalid
input is refused; a route that needs credentials refuses a request without them. Methods a route
does not serve, and requests without credentials, are checked for every route as well.

Each operation is its own test item running a property-based test over the fuzzer's public
per-operation strategies (`APIOperation.as_strategy`), which keeps one test id per operation.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.config import PLATFORMS
from bridge.store.db import utcnow
from tests.conftest import INTERNAL_KEY, auth, base_env, make_jwt
from tests.factories import add_account, add_post, add_video, later

USER = 4242
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
STATES = ("draft", "scheduled", "publishing", "published", "failed", "cancelled")


class _PluggedApp:
    """The schema's WSGI app: a stable object that forwards to the app of the running test
    (each test builds its app on its own emptied database)."""

    target = None

    def __call__(self, environ, start_response):
        return self.target(environ, start_response)


APP = _PluggedApp()


def _document() -> dict:
    """The app's own `/openapi.json` (the document does not depend on the database)."""
    from bridge.app import create_app
    from bridge.config import Settings

    app = create_app(Settings.from_env(base_env(AURAREELS_DATABASE_URL="sqlite://")))
    answer = app.test_client().get("/openapi.json")
    assert answer.status_code == 200
    return answer.get_json()


schema = schemathesis.openapi.from_dict(_document())
schema.app = APP
# Unknown query parameters are ignored by design (cache busters, tracking tags), not refused.
schema.config.generation.update(allow_extra_parameters=False)


@schema.auth()
class Credentials:
    """The signed-in user's JWT on user routes, the internal key on internal ones; left out when
    a generated case tests a missing or broken credential."""

    def get(self, case, context):
        return make_jwt(USER)

    def set(self, case, data, context):
        schemes = {name for requirement in case.operation.definition.raw.get("security", []) for name in requirement}
        if "wordpressJwt" in schemes:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
        if "internalKey" in schemes:
            case.headers = {**(case.headers or {}), "X-API-Key": INTERNAL_KEY}


OPERATIONS = [result.ok() for result in schema.get_all_operations()]
EXAMPLES = 50  # per operation, valid and invalid together


@schemathesis.check
def no_server_error(ctx, response, case):
    """No 5xx: every dependency is up here. /health alone may say 503 (no worker runs in this test)."""
    if response.status_code >= 500 and not (case.operation.path.endswith("/health") and response.status_code == 503):
        raise AssertionError(f"{case.operation.label} answered {response.status_code}: {response.text[:300]}")
    return None


@schemathesis.check
def status_explicitly_documented(ctx, response, case):
    """The status is one the operation lists by number; `default` alone does not count."""
    documented = {str(code) for code in case.operation.definition.raw.get("responses", {})} - {"default"}
    if str(response.status_code) not in documented:
        raise AssertionError(f"{case.operation.label} answered {response.status_code}, which its documentation "
                             f"does not list (it lists {', '.join(sorted(documented))})")
    return None


@schemathesis.check
def errors_use_the_envelope(ctx, response, case):
    """Every 4xx/5xx answer is `{success: false, code, message}` (health's degraded report aside)."""
    if response.status_code >= 400 and not case.operation.path.endswith("/health"):
        body = json.loads(response.content)
        assert body.get("success") is False and isinstance(body.get("code"), str) and body.get("message"), body
    return None


CHECKS = [no_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection, ignored_auth, status_explicitly_documented,
          errors_use_the_envelope]


@pytest.fixture
def seeded(rt) -> dict:
    """Seeded once per operation (fixtures are per test, not per generated example)."""
    video = add_video(rt, USER)
    accounts = [add_account(rt, USER, "tiktok"), add_account(rt, USER, "instagram")]
    posts = [add_post(rt, USER, accounts[0], status=status, video_job_id=video) for status in STATES]
    return {"video": video, "accounts": accounts, "posts": posts}


def _steer(case, data) -> None:
    """Swap about half of the generated ids, platforms and times for seeded or valid ones, chosen
    from the generated value itself so a failing example replays the same way."""
    params = case.path_parameters or {}
    # any integer is a valid id, so swapping one never turns an invalid case into a valid one
    if isinstance(params.get("post_id"), int) and params["post_id"] % 2 == 0:
        params["post_id"] = data["posts"][params["post_id"] // 2 % len(data["posts"])]
    if isinstance(params.get("account_id"), int) and params["account_id"] % 2 == 0:
        params["account_id"] = data["accounts"][params["account_id"] // 2 % len(data["accounts"])]
    if case.meta is None or case.meta.generation.mode is not POSITIVE:
        return  # an invalid platform or body stays invalid: the fuzzer expects it refused
    if isinstance(params.get("platform"), str) and len(params["platform"]) % 2 == 0:
        params["platform"] = PLATFORMS[len(params["platform"]) // 2 % len(PLATFORMS)]
    body = case.body
    if not isinstance(body, dict):
        return
    if isinstance(body.get("post_id"), int) and body["post_id"] % 2 == 0:
        body["post_id"] = data["posts"][body["post_id"] // 2 % len(data["posts"])]
    # publish and schedule: the user's video, accounts and a future time together
    if isinstance(body.get("video_job_id"), str) and len(body["video_job_id"]) % 3:
        body["video_job_id"] = data["video"]
        if isinstance(body.get("accounts"), list):
            body["accounts"] = data["accounts"][: len(body["accounts"]) % 2 + 1]
        if isinstance(body.get("scheduled_at"), str):
            body["scheduled_at"] = (utcnow() + timedelta(days=len(body["scheduled_at"]) % 9 + 1)).strftime(
                "%Y-%m-%d %H:%M:%S")
    elif isinstance(body.get("scheduled_at"), str) and len(body["scheduled_at"]) % 2 == 0:
        body["scheduled_at"] = (utcnow() + timedelta(days=len(body["scheduled_at"]) % 9 + 1)).strftime(
            "%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.label for operation in OPERATIONS])
def test_every_operation_answers_as_documented(operation, app, seeded):
    APP.target = app
    cases = st.one_of(*(operation.as_strategy(mode, auth_storage=schema.auth) for mode in (POSITIVE, NEGATIVE)))

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def answers_as_documented(case):
        _steer(case, seeded)
        case.call_and_validate(checks=CHECKS)

    answers_as_documented()


def _concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+_id\}", "1", path.replace("{platform}", "tiktok"))


@pytest.mark.parametrize("path", sorted(schema.raw_schema["paths"]))
def test_methods_a_route_does_not_serve_are_405_in_the_envelope(client, path):
    served = {m.upper() for m in schema.raw_schema["paths"][path] if m in ("get", "post", "put", "patch", "delete")}
    for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - served:
        answer = client.open(_concrete(path), method=method, headers=auth(USER))
        assert answer.status_code == 405, (method, path, answer.status_code)
        assert set(answer.headers["Allow"].replace(" ", "").split(",")) >= served
        assert answer.get_json()["success"] is False and answer.get_json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("operation", [o for o in OPERATIONS if o.definition.raw.get("security")],
                         ids=lambda operation: operation.label)
def test_routes_with_credentials_refuse_requests_without_them(client, operation):
    assert "401" in operation.definition.raw["responses"], f"{operation.label} does not document its 401"
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"X-API-Key": "wrong"}):
        answer = client.open(_concrete(operation.path), method=operation.method.upper(), headers=headers, json={})
        assert answer.status_code == 401, (operation.label, headers, answer.status_code)
        assert answer.get_json()["success"] is False and answer.get_json()["code"]


# The interface's HTTP table (shared/interface.md), under the prefix, in OpenAPI path syntax.
INTERFACE_ROUTES = [
    ("get", "/accounts"), ("post", "/accounts/connect/{platform}"), ("get", "/callback/{platform}"),
    ("post", "/accounts/{account_id}/refresh"), ("delete", "/accounts/{account_id}"),
    ("get", "/accounts/{account_id}/quota"), ("post", "/publish"), ("post", "/schedule"), ("get", "/posts"),
    ("get", "/posts/{post_id}"), ("patch", "/posts/{post_id}/reschedule"), ("delete", "/posts/{post_id}"),
    ("post", "/posts/{post_id}/retry"), ("post", "/internal/publish-scheduled"), ("post", "/webhooks/tiktok"),
    ("get", "/webhooks/meta"), ("post", "/webhooks/meta"), ("get", "/health"), ("get", "/openapi.json"),
    ("get", "/docs"),
]


def test_document_lists_every_interface_route():
    document = _document()
    paths = document["paths"]
    missing = [f"{method.upper()} {path}" for method, path in INTERFACE_ROUTES
               if method not in paths.get(f"/aurareels/v1/social{path}", {})]
    assert not missing, f"not in /openapi.json: {missing}"
    query = {p["name"] for p in paths["/aurareels/v1/social/posts"]["get"]["parameters"] if p["in"] == "query"}
    assert query >= {"status", "platform", "from", "to", "page", "per_page"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete"):
                assert operation.get("summary"), f"{method.upper()} {path} has no summary"


def test_document_and_docs_page_are_served_under_every_prefix(client):
    for prefix in ("/aurareels/v1/social", "/wp-json/aurareels/v1/social"):
        document = client.get(f"{prefix}/openapi.json")
        assert document.status_code == 200 and document.get_json()["openapi"].startswith("3.")
        page = client.get(f"{prefix}/docs")
        assert page.status_code == 200 and page.mimetype == "text/html"
        # every asset the page loads is served by the bridge itself (it works offline)
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.get_data(as_text=True))
        assert assets and all(not re.match(r"[a-z]+://|//", asset) for asset in assets), assets
        for asset in assets:
            assert client.get(f"{prefix}/{asset}").status_code == 200, asset
    assert client.get("/openapi.json").get_json()["paths"] == client.get(
        "/aurareels/v1/social/openapi.json").get_json()["paths"]
    assert client.get("/docs").status_code in (301, 302, 308)


@pytest.mark.parametrize("field,value", [
    ("caption", "😀" * 20_000),  # 20,000 characters, 80,000 bytes: more than the TEXT column holds
    ("hashtags", ["#" + "😀" * 149] * 100),  # each emoji is 12 bytes in the stored JSON
    ("mentions", ["@" + "😀" * 149] * 100),
    ("thumbnail_url", "https://media.sandbox.aurareels.test/" + "a" * 70_000),
])
def test_text_too_big_for_its_column_is_422_not_500(client, seeded, field, value):
    """Limits counted in characters let 4-byte characters overflow the WordPress TEXT columns
    (65,535 bytes); the schema counts the bytes too."""
    body = {"video_job_id": seeded["video"], "accounts": seeded["accounts"], "scheduled_at": later(30),
            field: value}
    answer = client.post("/wp-json/aurareels/v1/social/schedule", headers=auth(USER), json=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    assert answer.get_json()["code"] == "validation_error" and field in answer.get_json()["errors"]
