"""rq-dashboard for operators at `{API_PREFIX}/internal/rq/`, behind the internal key.

The dashboard is a Flask app of its own (its pages and 404s are not the API's envelopes), mounted
in front of the API by `mount`. A request passes the gate with the internal key as `X-API-Key`,
`Authorization: Bearer <key>` or, so that a browser can open the pages, HTTP Basic auth with any
user name and the key as password. Anything else gets the API's 401 envelope plus a Basic
challenge. The embedded run (`up`, in-process Redis) has no dashboard: it answers 404 there.
"""
from __future__ import annotations

import base64
import binascii

from flask import Flask
from werkzeug.datastructures import EnvironHeaders

from bridge.auth import AuthError, check_internal_key, internal_key_from_headers
from bridge.config import Settings
from bridge.errors import envelope

MOUNT = "/internal/rq"


def _basic_password(authorization: str | None) -> str | None:
    if not authorization or not authorization[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None


def _dashboard(settings: Settings) -> Flask:
    import rq_dashboard

    app = Flask("aurareels_rq_dashboard")
    app.config.from_object(rq_dashboard.default_settings)
    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.redis_url
    rq_dashboard.web.setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="")
    return app


class OperatorGate:
    """WSGI middleware: requests under `prefix + MOUNT` go to the dashboard if they carry the key."""

    def __init__(self, wsgi_app, settings: Settings, prefix: str, flask_app: Flask):
        self.wsgi_app = wsgi_app
        self.settings = settings
        self.mount = prefix + MOUNT
        self.flask_app = flask_app
        self._dashboard = None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != self.mount and not path.startswith(self.mount + "/"):
            return self.wsgi_app(environ, start_response)
        headers = EnvironHeaders(environ)
        presented = internal_key_from_headers(headers) or _basic_password(headers.get("Authorization"))
        with self.flask_app.app_context():
            try:
                check_internal_key(presented, self.settings.n8n_api_key)
            except AuthError as exc:
                response = envelope(exc.status, exc.code, exc.message)
                response.headers["WWW-Authenticate"] = 'Basic realm="AuraReels operators", charset="UTF-8"'
                return response(environ, start_response)
            if not self.settings.redis_url:
                return envelope(404, "not_found", "The queue dashboard needs a Redis server; the embedded "
                                                  "run has none.")(environ, start_response)
        if self._dashboard is None:
            self._dashboard = _dashboard(self.settings)
        if path == self.mount:  # the dashboard's pages link relative to its root
            start_response("308 Permanent Redirect", [("Location", environ.get("SCRIPT_NAME", "") + self.mount + "/")])
            return [b""]
        environ = dict(environ)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.mount
        environ["PATH_INFO"] = path[len(self.mount):]
        return self._dashboard(environ, start_response)
