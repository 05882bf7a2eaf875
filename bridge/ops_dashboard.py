"""rq-dashboard for operators at `{API_PREFIX}/internal/rq/`, behind the internal key.

The dashboard is a Flask app of its own (its pages and 404s are not the API's envelopes), mounted
in front of the API by `mount`. A request passes the gate with the internal key as `X-API-Key`,
`Authorization: Bearer <key>` or, so that a browser can open the pages, HTTP Basic auth with any
user name and the key as password. Anything else gets the API's 401 envelope plus a Basic
challenge. The embedded run (`up`, in-process Redis) has no dashboard: it answers 404 there.

Browsers send Basic credentials again by themselves, so another site could make an operator's
browser act on the dashboard (cross-site request forgery) or show it in a frame (clickjacking).
The gate therefore refuses cross-site requests (by `Sec-Fetch-Site`, else `Origin`, else
`Referer`; only a top-level navigation to a page may come from elsewhere), lets actions (delete,
requeue, empty, compact) through only as POST, and forbids framing on every answer.
"""
from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.datastructures import EnvironHeaders

from bridge.auth import AuthError, check_internal_key, internal_key_from_headers
from bridge.config import Settings
from bridge.errors import envelope

MOUNT = "/internal/rq"
# The dashboard's pages, data and assets, which only read; every other path is an action.
_READS = re.compile(r"/|/\d+/?|/\d+/view(/.*)?|/\d+/data/.*|/static/.*|/favicon\.ico")
_SAFE_METHODS = ("GET", "HEAD")
_NO_FRAMING = [("X-Frame-Options", "DENY"), ("Content-Security-Policy", "frame-ancestors 'none'")]


def _same_host(url: str, headers: EnvironHeaders) -> bool:
    netloc = urlsplit(url).netloc.lower()
    hosts = {h.strip().lower() for h in (headers.get("Host"), headers.get("X-Forwarded-Host")) if h}
    return bool(netloc) and netloc in hosts


def cross_site(method: str, headers: EnvironHeaders) -> bool:
    """Whether a browser sent this request on behalf of another site. `Sec-Fetch-Site` decides
    where the browser sends it; older browsers are judged by `Origin`, then `Referer`. A request
    with none of them is not a browser's (or is a typed address) and carries its own key."""
    site = (headers.get("Sec-Fetch-Site") or "").lower()
    if site:
        if site in ("same-origin", "none"):
            return False
        # a link from elsewhere may open a page, in a tab, never in a frame
        return not (method in _SAFE_METHODS and (headers.get("Sec-Fetch-Mode") or "").lower() == "navigate"
                    and (headers.get("Sec-Fetch-Dest") or "document").lower() == "document")
    if method in _SAFE_METHODS:
        return False
    origin = headers.get("Origin")
    if origin:
        return origin == "null" or not _same_host(origin, headers)
    referer = headers.get("Referer")
    return bool(referer) and not _same_host(referer, headers)


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

        def unframed(status, headers, exc_info=None):
            return start_response(status, [*headers, *_NO_FRAMING], exc_info)

        return self._gate(environ, unframed, path)

    def _gate(self, environ, start_response, path: str):
        headers = EnvironHeaders(environ)
        method = environ.get("REQUEST_METHOD", "GET").upper()
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
            if cross_site(method, headers):
                return envelope(403, "cross_site_request", "The queue dashboard only accepts requests from its own "
                                                           "pages.")(environ, start_response)
            inner = path[len(self.mount):] or "/"
            if not _READS.fullmatch(inner) and method != "POST":
                response = envelope(405, "method_not_allowed", "Dashboard actions are POST only.")
                response.headers["Allow"] = "POST"
                return response(environ, start_response)
        if self._dashboard is None:
            self._dashboard = _dashboard(self.settings)
        if path == self.mount:  # the dashboard's pages link relative to its root
            start_response("308 Permanent Redirect", [("Location", environ.get("SCRIPT_NAME", "") + self.mount + "/")])
            return [b""]
        environ = dict(environ)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.mount
        environ["PATH_INFO"] = path[len(self.mount):]
        return self._dashboard(environ, start_response)
