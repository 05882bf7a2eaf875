"""The Flask application factory.

Every route lives under `/aurareels/v1/social`; a tiny WSGI wrapper serves the same routes under
`/wp-json/aurareels/v1/social`, the path WordPress proxies, so one set of views answers both.
Every error, including routing 404/405, malformed JSON and oversized bodies, leaves in the
envelope of `bridge.errors`.
"""
from __future__ import annotations

import logging

import redis as redis_lib
from flask import Flask, Response, redirect, send_from_directory
from flask_smorest import Api as _SmorestApi
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from bridge.auth import AuthError
from bridge.config import Settings
from bridge.errors import ApiError, envelope
from bridge.runtime import Runtime

log = logging.getLogger(__name__)

API_PREFIX = "/aurareels/v1/social"
WP_PREFIX = "/wp-json/aurareels/v1/social"

_HTTP_CODES = {
    400: ("bad_request", "The request could not be read."),
    401: ("unauthorized", "Sign in again."),
    403: ("forbidden", "This action is not allowed."),
    404: ("not_found", "Nothing was found at this address."),
    405: ("method_not_allowed", "This address does not accept that method."),
    409: ("conflict", "The request conflicts with the current state."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send the body as application/json."),
    422: ("validation_error", "Some fields are not valid."),
    429: ("rate_limited", "Too many requests; try again later."),
    500: ("internal_error", "Something went wrong on our side; the error was logged."),
    503: ("service_unavailable", "A service the bridge depends on is down; try again shortly."),
}


class _WordPressPrefix:
    """Serve `/wp-json/aurareels/v1/social/...` with the views of `/aurareels/v1/social/...`.
    In sandbox mode, `/_sandbox/...` is the emulators' browser side (consent pages) and control API
    (the internal key, unless called from loopback), of the world every process of the deployment
    shares."""

    def __init__(self, wsgi_app, settings: Settings):
        self.wsgi_app = wsgi_app
        self.sandbox = None
        if settings.sandbox:
            from bridge.sandbox.core import guarded
            from bridge.sandbox.shared import browser_app

            self.sandbox = guarded(browser_app(settings), settings.n8n_api_key)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == WP_PREFIX or path.startswith(WP_PREFIX + "/"):
            environ["PATH_INFO"] = API_PREFIX + path[len(WP_PREFIX):]
        elif self.sandbox is not None and path.startswith("/_sandbox/"):
            return self.sandbox(environ, start_response)
        return self.wsgi_app(environ, start_response)


class Api(_SmorestApi):
    from bridge.schemas.common import ErrorSchema as ERROR_SCHEMA  # noqa: N811  documented error shape

    def handle_http_exception(self, error: HTTPException):
        status = error.code or 500
        code, message = _HTTP_CODES.get(status, ("http_error", error.description or "HTTP error."))
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        if status in (400, 422) and errors:
            if isinstance(errors, dict) and "json" in errors and isinstance(errors["json"], list) and any(
                "Invalid JSON" in str(m) for m in errors["json"]
            ):
                return envelope(400, "invalid_json", "The request body is not valid JSON.")
            status, code, message = 422, "validation_error", _first_error(errors) or message
            errors = _flatten(errors)
        if status == 500:
            log.exception("unhandled error")
        headers = dict(data.get("headers") or {})
        if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return envelope(status, data.get("code") or code, data.get("message") or message, errors, headers)


def _flatten(errors):
    """webargs nests messages by location ({"json": {...}, "query": {...}}); clients want fields."""
    if isinstance(errors, dict) and set(errors) <= {"json", "query", "form", "headers", "path", "files", "view_args"}:
        flat: dict = {}
        for part in errors.values():
            if isinstance(part, dict):
                flat.update(part)
            else:
                flat.setdefault("_schema", []).extend(part if isinstance(part, list) else [part])
        return flat
    return errors


def _first_error(errors) -> str | None:
    flat = _flatten(errors)
    if isinstance(flat, dict):
        for field, messages in flat.items():
            text = messages[0] if isinstance(messages, list) and messages else messages
            if isinstance(text, dict):
                return f"{field}: {_first_error(text) or 'invalid'}"
            if field == "_schema":
                return str(text)
            return f"{field}: {text}"
    return None


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    if runtime is None:
        runtime = Runtime.from_settings(settings or Settings.from_env())
    settings = runtime.settings

    app = Flask("bridge")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
        API_TITLE="AuraReels Social Bridge",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": "Publishing and scheduling of AuraReels videos to six social platforms."},
            "servers": [{"url": "/"}],
            "components": {
                "securitySchemes": {
                    "wordpressJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "internalKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                }
            },
        },
    )
    app.extensions["bridge"] = runtime
    app.json.sort_keys = False
    from bridge.logs import redact_server_logs

    redact_server_logs()  # the access log carries query strings: verify tokens, OAuth codes

    api = Api(app)
    app.extensions["bridge_api"] = api

    from bridge.api import register_blueprints

    register_blueprints(api)
    _register_request_id(app)
    _register_error_handlers(app)
    _register_docs(app)
    _register_root_health(app)
    from bridge.landing import register_landing

    register_landing(app, settings)
    from bridge.ops_dashboard import OperatorGate

    app.wsgi_app = _WordPressPrefix(OperatorGate(app.wsgi_app, settings, API_PREFIX, app), settings)
    if settings.sandbox:
        from bridge.sandbox.shared import warm_up

        warm_up(settings)
    return app


def production_app() -> Flask:
    """The app as gunicorn serves it (`wsgi:app`): settings from the environment, and log lines as
    the CLI writes them (JSON, secrets redacted), gunicorn's own included."""
    from bridge.logs import setup_logging

    setup_logging()
    return create_app()


_REQUEST_ID = __import__("re").compile(r"[A-Za-z0-9._:-]{1,64}")


def _register_request_id(app: Flask) -> None:
    """Every request has an id (the caller's X-Request-Id when it is sane), echoed back and put on
    every log line written while serving it."""
    import uuid

    from flask import g, request

    from bridge.logs import request_id_var

    @app.before_request
    def _start():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.request_id_token = request_id_var.set(g.request_id)

    @app.after_request
    def _finish(response):
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response

    @app.teardown_request
    def _reset(_exc):
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return envelope(error.status, error.code, error.message, error.errors, error.headers)

    @app.errorhandler(AuthError)
    def _auth_error(error: AuthError):
        return envelope(error.status, error.code, error.message, headers={"WWW-Authenticate": "Bearer"})

    @app.errorhandler(RecursionError)
    def _too_deep(error):
        return envelope(400, "invalid_json", "The request body is nested too deeply.")

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _db_down(error):
        if isinstance(error, DBAPIError) and not getattr(error, "connection_invalidated", False) and not isinstance(
            error, OperationalError
        ):
            log.exception("database error")
            return envelope(500, "internal_error", _HTTP_CODES[500][1])
        log.warning("database unavailable: %s", type(error.orig).__name__ if error.orig else type(error).__name__)
        return envelope(503, "database_unavailable", "The database is not reachable; try again shortly.",
                        headers={"Retry-After": "5"})

    @app.errorhandler(redis_lib.exceptions.ConnectionError)
    @app.errorhandler(redis_lib.exceptions.TimeoutError)
    def _redis_down(error):
        log.warning("redis unavailable: %s", type(error).__name__)
        return envelope(503, "queue_unavailable", "The queue is not reachable; try again shortly.",
                        headers={"Retry-After": "5"})


def _register_docs(app: Flask) -> None:
    import swagger_ui_bundle

    static_dir = swagger_ui_bundle.swagger_ui_path
    # Relative URLs, so the page works under both prefixes and behind the WordPress proxy.
    page = """<!doctype html><html><head><meta charset="utf-8"><title>AuraReels Social Bridge API</title>
<link rel="stylesheet" href="docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "openapi.json", dom_id: "#ui", deepLinking: true});</script>
</body></html>"""

    def docs():
        return Response(page, mimetype="text/html")

    def docs_static(filename: str):
        return send_from_directory(static_dir, filename)

    def root_openapi():
        return app.extensions["bridge_api"].spec.to_dict()

    app.add_url_rule(f"{API_PREFIX}/docs", "docs", docs)
    app.add_url_rule(f"{API_PREFIX}/docs/static/<path:filename>", "docs_static", docs_static)
    app.add_url_rule("/openapi.json", "root_openapi", root_openapi)
    app.add_url_rule("/docs", "root_docs", lambda: redirect(f"{API_PREFIX}/docs"))

    # The document lists these two routes of the interface as well.
    api = app.extensions["bridge_api"]
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    api.spec.tag({"name": "docs", "description": "This documentation"})
    api.spec.path(rule=rules[f"{API_PREFIX}/openapi.json"], operations={"get": {
        "summary": "This OpenAPI document", "tags": ["docs"],
        "responses": {"200": {"description": "OpenAPI 3 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}})
    api.spec.path(rule=rules[f"{API_PREFIX}/docs"], operations={"get": {
        "summary": "The browsable documentation (served from this bridge, no outside assets)", "tags": ["docs"],
        "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}}})


def _register_root_health(app: Flask) -> None:
    """`GET /health` at the server root as well: load balancers and container probes ask there.
    The same view answers, so the answer is the prefixed route's."""
    from bridge.api.health import Health

    app.add_url_rule("/health", view_func=Health.as_view("root_health"))
    rule = next(r for r in app.url_map.iter_rules() if r.rule == "/health")
    answer = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
    app.extensions["bridge_api"].spec.path(rule=rule, operations={"get": {
        "summary": "Health at the server root (the same answer), for load balancers and container probes",
        "tags": ["health"],
        "responses": {"200": {"description": "OK", **answer}, "503": {"description": "A dependency is down", **answer}},
    }})
