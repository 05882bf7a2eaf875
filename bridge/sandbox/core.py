"""The sandbox: strict emulators of the six platforms, in-process or as an HTTP server.

One `Sandbox` holds a clock, one emulator per platform (and the media host), a bounded request
log and the faults waiting to fire. It is a WSGI app that finds the emulator for a request by:

* `/_sandbox/control/...`: the control API (reset, advance time, inject faults, read the log);
* `/_sandbox/<host>/...` or `/<host>/...` where `<host>` is an emulated host: the path names the
  host (the bridge mounts the sandbox under `/_sandbox/` for browsers, and a host map such as
  `{"open.tiktokapis.com": "http://127.0.0.1:9100/open.tiktokapis.com"}` keeps it);
* otherwise the `Host` header (the in-process transport of `AURAREELS_SANDBOX=1`).

An emulator is a model (state and rules, in plain Python) plus routes that parse a request, ask the
model, and answer in the platform's own shapes and error envelopes. Processing advances with the
clock or a control call, never with wall time alone, so tests can script it. An emulator whose
platform logs in with OAuth 2.0 declares an `oauth_spec` and gets the shared authorization server
(`bridge.sandbox.oauth`): its routes, its token store (`self.oauth`), and hooks for its quirks.

Faults (`Fault`) fire on matching requests: a status (5xx), a 429 with Retry-After, a named
platform error, a timeout, or `lost`: the request takes effect and the client sees a failure.
A latency (`set_latency`, control `latency`) holds every answer of a platform, or of all, for that
long: a slow network for load tests.
"""
from __future__ import annotations

import html
import ipaddress
import json
import random
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from bridge.sandbox.oauth import OAuthServer, OAuthSpec, Refusal

INPROCESS_KEY = "aurareels.sandbox.inprocess"


class Clock:
    """Epoch seconds with an offset that tests move forward."""

    def __init__(self):
        self.offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.offset += float(seconds)

    def reset(self) -> None:
        self.offset = 0.0


@dataclass
class Fault:
    """One injected fault. `kind`: status | rate_limit | error | timeout | lost.

    `method`/`path` (a regex searched in the path) choose the requests; `times` how many fire
    (0 = every time). `status` for kind=status (default 503) and for `lost` (default 502; with
    `timeout=True`, `lost` times out instead). `retry_after` for rate_limit. `error` names a
    platform error the emulator knows (kind=error). `delay` is how long a standalone server
    waits before answering a timeout (the in-process transport raises a read timeout at once).
    `probability` fires the fault on that random fraction of the matching requests (storm runs).
    """

    kind: str
    method: str | None = None
    path: str | None = None
    times: int = 1
    status: int | None = None
    retry_after: float | None = None
    error: str | None = None
    timeout: bool = False
    delay: float = 3.0
    probability: float = 1.0
    fired: int = 0

    def matches(self, request: Request) -> bool:
        if self.method and self.method.upper() != request.method:
            return False
        if self.path and not re.search(self.path, request.path):
            return False
        if self.probability < 1.0 and random.random() >= self.probability:
            return False
        return self.times == 0 or self.fired < self.times


def route(method: str, pattern: str):
    """Mark an emulator method as the handler of `method` + a full-match path regex."""

    def mark(fn):
        fn._route = (method.upper(), re.compile(pattern))
        return fn

    return mark


class Emulator:
    """Base of an emulated platform. Subclasses set `platform`, `hosts`, `defaults`, implement
    `reset()` (state), routes with `@route`, and the error shapes."""

    platform: ClassVar[str]
    hosts: ClassVar[tuple[str, ...]]
    # every numeric limit is configuration (vendors change them): quotas, TTLs, rate limits
    defaults: ClassVar[dict[str, Any]] = {}
    # the platform's OAuth 2.0 server, declared (None: the emulator serves its own login, or none)
    oauth_spec: ClassVar["OAuthSpec | None"] = None
    # refusal name -> (status, error, description[, where]) in this platform's words (see oauth.py)
    oauth_errors: ClassVar[dict[str, tuple]] = {}

    def __init__(self, sandbox: "Sandbox"):
        self.sandbox = sandbox
        self.clock = sandbox.clock
        self.lock = threading.RLock()
        self.config: dict[str, Any] = dict(self.defaults)
        self.oauth: "OAuthServer | None" = None
        self._routes = [
            (getattr(self, name)._route, getattr(self, name))
            for name in dir(type(self))
            if callable(getattr(type(self), name, None)) and hasattr(getattr(type(self), name), "_route")
        ]
        spec = self.oauth_spec
        if spec is not None:
            endpoints = [("GET", spec.authorize_path, "authorize"), ("POST", spec.authorize_path, "authorize"),
                         ("POST", spec.token_path, "token")]
            if spec.revoke_path:
                endpoints.append(("POST", spec.revoke_path, "revoke"))
            for method, path, endpoint in endpoints:
                self._routes.append(((method, re.compile(re.escape(path))), self._oauth_endpoint(endpoint)))
        self.reset()

    def _oauth_endpoint(self, endpoint: str) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            host = self.oauth_spec.host
            if host and self.request_host(request) not in (host, ""):
                return self.not_found(request)
            return getattr(self.oauth, endpoint)(request)

        return handle

    # --- state
    def reset(self) -> None:
        """Forget everything (subclasses call super and build their state)."""
        self.config = dict(self.defaults)
        # The platform's own record of what was published: the source of truth for duplicates.
        self.published: list[dict[str, Any]] = []
        if self.oauth_spec is not None:
            from bridge.sandbox.oauth import OAuthServer

            self.oauth = OAuthServer(self, self.oauth_spec)

    def request_host(self, request: Request) -> str:
        """The emulated host a request was sent to: named in the path prefix (stand-alone server,
        browser side) or in the Host header (in-process transport); "" when it is none of ours."""
        prefix = request.environ.get("SCRIPT_NAME", "").rstrip("/").rsplit("/", 1)[-1]
        if prefix in self.hosts:
            return prefix
        host = (request.host or "").split(":")[0].lower()
        return host if host in self.hosts else ""

    # --- the OAuth server's hooks (defaults: plain RFC 6749)
    def oauth_user(self, login: str) -> str:
        """The user id behind the consent form's sandbox login."""
        return login

    def oauth_known_scopes(self) -> set[str]:
        return set()

    def oauth_check(self, params: dict[str, str]) -> "Refusal | None":
        """A platform's own authorize rules, after the common ones."""
        return None

    def oauth_consented(self, params: dict[str, str], client: str, user: str,
                        scopes: list[str]) -> tuple[list[str], dict[str, Any]]:
        """The scopes granted (the sandbox user may untick `withheld_scopes`) and what the grant
        should remember."""
        withheld = set(self.config.get("withheld_scopes") or ())
        return [s for s in scopes if s not in withheld], {}

    def oauth_wants_refresh(self, grant: Any) -> bool:
        return bool(self.config.get("issue_refresh_tokens", True))

    def oauth_answer(self, body: dict[str, Any], grant: Any, refresh: Any, exchange: bool) -> dict[str, Any]:
        """The token answer of a code exchange or a refresh (platforms add their fields)."""
        return body

    def oauth_code(self) -> str:
        return secrets.token_urlsafe(32)

    def oauth_redirect_extra(self, scopes: list[str]) -> dict[str, str]:
        """What the redirect with the code carries besides code and state."""
        return {}

    def oauth_refusal(self, refusal: "Refusal") -> Response:
        """A refusal of the OAuth server in this platform's words (`oauth_errors`)."""
        status, error, description, *where = self.oauth_errors.get(refusal.name, ()) or (
            refusal.status, refusal.error, refusal.description, refusal.where)
        where = where[0] if where else refusal.where
        if refusal.param and "{param}" in description:
            description = description.replace("{param}", refusal.param)
        if where == "redirect" and refusal.redirect_uri:
            params = {"error": error, "error_description": description}
            if refusal.state:
                params["state"] = refusal.state
            return self.redirect(refusal.redirect_uri, params)
        if where in ("page", "redirect"):
            return self.error_page(status, error, description)
        return self.oauth_error(error, description, status)

    def oauth_error(self, error: str, description: str, status: int = 400) -> Response:
        return self.json({"error": error, "error_description": description}, status=status)

    @staticmethod
    def error_page(status: int, error: str, description: str) -> Response:
        page = (f"<!doctype html><html><body><h1>Error {status}: {html.escape(error)}</h1>"
                f"<p>{html.escape(description, quote=False)}</p></body></html>")
        return Response(page, status=status, content_type="text/html; charset=utf-8")

    def configure(self, **values: Any) -> None:
        unknown = set(values) - set(self.defaults)
        if unknown:
            raise KeyError(f"unknown {self.platform} settings: {', '.join(sorted(unknown))}")
        self.config.update(values)

    def snapshot(self) -> dict[str, Any]:
        """State for tests and the control API (JSON-safe)."""
        return {"published": list(self.published), "config": dict(self.config)}

    def now(self) -> float:
        return self.clock.now()

    @staticmethod
    def new_id(prefix: str = "", nbytes: int = 8) -> str:
        return f"{prefix}{secrets.token_hex(nbytes)}"

    # --- answers
    def json(self, body: Any, status: int = 200, headers: dict | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json; charset=UTF-8")

    def error_response(self, name: str, request: Request) -> Response:
        """The platform's error envelope for a named error (used by kind=error faults)."""
        return self.json({"error": name}, status=400)

    def not_found(self, request: Request) -> Response:
        return self.json({"error": "not_found", "path": request.path}, status=404)

    def server_error(self, status: int, request: Request) -> Response:
        return self.json({"error": "server_error"}, status=status)

    def rate_limited(self, retry_after: float, request: Request) -> Response:
        return self.json({"error": "rate_limited"}, status=429, headers={"Retry-After": str(int(retry_after))})

    # --- dispatch
    def dispatch(self, request: Request) -> Response:
        for (method, pattern), handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match:
                if method != request.method:
                    continue
                return handler(request, **match.groupdict())
        # a known path with another method is the platform's 405, an unknown one its 404
        for (method, pattern), _ in self._routes:
            if pattern.fullmatch(request.path):
                return self.method_not_allowed(request)
        return self.not_found(request)

    def handles(self, request: Request) -> bool:
        """Whether one of this emulator's routes matches the path (any method)."""
        return any(pattern.fullmatch(request.path) for (_, pattern), _ in self._routes)

    def method_not_allowed(self, request: Request) -> Response:
        return self.json({"error": "method_not_allowed"}, status=405)

    # --- consent page (the emulated authorize URL)
    def consent_page(self, request: Request, *, app_name: str, scopes: list[str], hidden: dict[str, str]) -> Response:
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in hidden.items()
        )
        items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(self.platform)} sandbox: authorize</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}button{{font-size:1.1rem;padding:.5rem 1.5rem;margin-right:1rem}}</style>
</head><body><h1>{html.escape(app_name)} wants to access your {html.escape(self.platform)} account</h1>
<p>This is the AuraReels sandbox emulator of {html.escape(self.platform)}. No real account is used.</p>
<ul>{items}</ul>
<form method="post" action="">{fields}
<label>Sandbox account <input name="sandbox_user" value="{html.escape(request.args.get('sandbox_user', 'creator1'))}"></label>
<p><button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button></p></form></body></html>"""
        return Response(page, content_type="text/html; charset=utf-8")

    @staticmethod
    def redirect(url: str, params: dict[str, str]) -> Response:
        sep = "&" if "?" in url else "?"
        return Response("", status=302, headers={"Location": f"{url}{sep}{urlencode(params)}"})


class Sandbox:
    """All emulators behind one WSGI app."""

    def __init__(self, platforms: list[str] | None = None, log_size: int = 20000):
        from bridge.platforms.registry import REGISTRY, emulator_class
        from bridge.sandbox.media import MediaEmulator

        self.clock = Clock()
        self.log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self.faults: dict[str, list[Fault]] = {}
        # seconds each answer is held, by platform ("*": every platform without its own)
        self.latency: dict[str, float] = {}
        self._lock = threading.RLock()
        self._shared_state: dict[str, Any] = {}
        self.emulators: dict[str, Emulator] = {}
        for platform in platforms or list(REGISTRY):
            try:
                cls = emulator_class(platform)
            except (ImportError, AttributeError):
                continue  # a platform whose emulator is not written yet
            self.emulators[platform] = cls(self)
        self.emulators["media"] = MediaEmulator(self)
        # Two emulators may share a host (Instagram and Facebook Pages both live on
        # graph.facebook.com): a request goes to the first whose routes know its path.
        self.by_host: dict[str, Emulator | _SharedHost] = {}
        for emu in self.emulators.values():
            for host in emu.hosts:
                current = self.by_host.get(host)
                if current is None:
                    self.by_host[host] = emu
                elif isinstance(current, _SharedHost):
                    current.members.append(emu)
                else:
                    self.by_host[host] = _SharedHost([current, emu])

    def shared(self, key: str, factory: Callable[[], Any]) -> Any:
        """State shared by several emulators of one vendor (e.g. Meta's users, pages and tokens).
        Reset with the sandbox: `reset()` drops it and the emulators build it again."""
        with self._lock:
            if key not in self._shared_state:
                self._shared_state[key] = factory()
            return self._shared_state[key]

    # --- control (Python)
    def emulator(self, platform: str) -> Emulator:
        return self.emulators[platform]

    def reset(self, platform: str | None = None) -> None:
        with self._lock:
            targets = [self.emulators[platform]] if platform else list(self.emulators.values())
            if not platform:
                self._shared_state.clear()
            for emu in targets:
                with emu.lock:
                    emu.reset()
            if platform:
                self.faults.pop(platform, None)
                self.latency.pop(platform, None)
            else:
                self.faults.clear()
                self.latency.clear()
                self.log.clear()
                self.clock.reset()

    def inject(self, platform: str, fault: Fault | None = None, **kw: Any) -> Fault:
        fault = fault or Fault(**kw)
        with self._lock:
            self.faults.setdefault(platform, []).append(fault)
        return fault

    def set_latency(self, seconds: float, platform: str | None = None) -> None:
        """Hold every answer of `platform` (all platforms when None) for `seconds`; 0 removes it."""
        key = platform or "*"
        if platform is not None and platform not in self.emulators:
            raise KeyError(f"unknown platform {platform}")
        with self._lock:
            if float(seconds) > 0:
                self.latency[key] = float(seconds)
            else:
                self.latency.pop(key, None)

    def requests(self, platform: str | None = None) -> list[dict[str, Any]]:
        return [e for e in list(self.log) if platform is None or e["platform"] == platform]

    def _take_fault(self, platform: str, request: Request) -> Fault | None:
        with self._lock:
            for fault in self.faults.get(platform, []):
                if fault.matches(request):
                    fault.fired += 1
                    return fault
        return None

    # --- WSGI
    def __call__(self, environ, start_response):
        request = Request(environ)
        path = request.path
        if path.startswith("/_sandbox/control"):
            response = self._control(request)
            return response(environ, start_response)
        host, emu = self._route(request)
        if emu is None:
            response = Response(json.dumps({"error": "no emulator serves this host", "host": host}), status=404,
                                content_type="application/json")
            return response(environ, start_response)
        response = self._serve(emu, request, environ)
        return response(environ, start_response)

    def _route(self, request: Request) -> tuple[str, Emulator | None]:
        path = request.environ.get("PATH_INFO", "")
        segments = path.lstrip("/").split("/", 2)
        if segments and segments[0] == "_sandbox" and len(segments) > 1 and segments[1] in self.by_host:
            host = segments[1]
            request.environ["PATH_INFO"] = "/" + (segments[2] if len(segments) > 2 else "")
            request.environ["SCRIPT_NAME"] = request.environ.get("SCRIPT_NAME", "") + f"/_sandbox/{host}"
            request.path = request.environ["PATH_INFO"]  # type: ignore[misc]
            return host, self.by_host[host]
        if segments and segments[0] in self.by_host:
            host = segments[0]
            request.environ["PATH_INFO"] = "/" + (path.lstrip("/").split("/", 1)[1] if "/" in path.lstrip("/") else "")
            request.environ["SCRIPT_NAME"] = request.environ.get("SCRIPT_NAME", "") + f"/{host}"
            request.path = request.environ["PATH_INFO"]  # type: ignore[misc]
            return host, self.by_host[host]
        host = (request.host or "").split(":")[0].lower()
        return host, self.by_host.get(host)

    def _serve(self, emu: "Emulator | _SharedHost", request: Request, environ) -> Response:
        if isinstance(emu, _SharedHost):
            emu = emu.pick(request)
        started = self.clock.now()
        delay = self.latency.get(emu.platform, self.latency.get("*", 0.0))
        if delay:
            time.sleep(delay)  # outside the emulator's lock: slow answers still overlap
        fault = self._take_fault(emu.platform, request)
        inprocess = bool(environ.get(INPROCESS_KEY))
        try:
            if fault is None:
                with emu.lock:
                    response = emu.dispatch(request)
            elif fault.kind == "lost":
                with emu.lock:
                    emu.dispatch(request)  # the effect happens...
                response = self._timeout(fault, inprocess) if fault.timeout else emu.server_error(fault.status or 502, request)
            elif fault.kind == "timeout":
                response = self._timeout(fault, inprocess)
            elif fault.kind == "rate_limit":
                response = emu.rate_limited(fault.retry_after if fault.retry_after is not None else 30, request)
            elif fault.kind == "error":
                response = emu.error_response(fault.error or "unknown", request)
            else:
                response = emu.server_error(fault.status or 503, request)
        except HTTPException as exc:
            response = exc.get_response()
        self.log.append({
            "platform": emu.platform, "method": request.method, "path": request.path,
            "query": _redacted_query(request), "status": response.status_code, "at": started,
            "fault": fault.kind if fault else None,
        })
        return response

    @staticmethod
    def _timeout(fault: Fault, inprocess: bool) -> Response:
        if inprocess:
            import httpx

            raise httpx.ReadTimeout("sandbox: injected timeout")
        time.sleep(fault.delay)
        return Response("", status=504)

    # --- control (HTTP)
    def _control(self, request: Request) -> Response:
        parts = request.path[len("/_sandbox/control"):].strip("/").split("/")
        action = parts[0] if parts else ""
        body = request.get_json(silent=True) or {}
        platform = body.get("platform") or request.args.get("platform") or (parts[1] if len(parts) > 1 else None)
        try:
            if action == "reset" and request.method == "POST":
                self.reset(platform)
                return _ok({"reset": platform or "all"})
            if action == "advance" and request.method == "POST":
                self.clock.advance(float(body.get("seconds", 0)))
                return _ok({"offset": self.clock.offset})
            if action == "faults" and request.method == "POST":
                spec = {k: v for k, v in body.items() if k != "platform"}
                fault = self.inject(platform, **spec)
                return _ok({"fault": asdict(fault)})
            if action == "latency" and request.method == "POST":
                self.set_latency(float(body.get("seconds", 0)), platform)
                return _ok({"latency": dict(self.latency)})
            if action == "requests" and request.method == "GET":
                return _ok({"requests": self.requests(platform)})
            if action == "state" and request.method == "GET" and platform in self.emulators:
                with self.emulators[platform].lock:
                    return _ok({"state": self.emulators[platform].snapshot()})
            if action == "config" and request.method == "POST" and platform in self.emulators:
                self.emulators[platform].configure(**{k: v for k, v in body.items() if k != "platform"})
                return _ok({"config": self.emulators[platform].config})
            if action == "process" and request.method == "POST" and platform in self.emulators:
                emu = self.emulators[platform]
                with emu.lock:
                    changed = getattr(emu, "process", lambda **kw: 0)(**{k: v for k, v in body.items() if k != "platform"})
                return _ok({"processed": changed})
        except (TypeError, ValueError, KeyError) as exc:
            return Response(json.dumps({"ok": False, "error": str(exc)}), status=400, content_type="application/json")
        return Response(json.dumps({"ok": False, "error": "unknown control call"}), status=404,
                        content_type="application/json")


class _SharedHost:
    """Several emulators behind one host."""

    def __init__(self, members: list[Emulator]):
        self.members = members

    def pick(self, request: Request) -> Emulator:
        for emu in self.members:
            if emu.handles(request):
                return emu
        return self.members[0]


def _ok(body: dict) -> Response:
    return Response(json.dumps({"ok": True, **body}, default=str), content_type="application/json")


_SECRET_PARAMS = re.compile(r"(?i)token|secret|code|verifier|password|key")


def _redacted_query(request: Request) -> dict[str, str]:
    return {k: ("[redacted]" if _SECRET_PARAMS.search(k) else v) for k, v in request.args.items()}


_lock = threading.Lock()
_shared: Sandbox | None = None


def shared_sandbox() -> Sandbox:
    """The process's one sandbox: what `AURAREELS_SANDBOX=1` talks to when this process holds the
    deployment's world (`bridge.sandbox.shared`), and what it serves to the others."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = Sandbox()
        return _shared


def sandbox_app() -> Callable:
    """The WSGI app of the shared sandbox, marked as in-process for the transport."""
    sandbox = shared_sandbox()

    def app(environ, start_response):
        environ[INPROCESS_KEY] = True
        return sandbox(environ, start_response)

    return app


def request_handler():
    """werkzeug's request handler, keeping headers whose names hold underscores (werkzeug drops
    them; Meta's rupload sends `file_size` and `file_url`), as the in-process transport does."""
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        def make_environ(self):
            environ = super().make_environ()
            for key, value in self.headers.items():
                if "_" in key:
                    environ.setdefault("HTTP_" + key.upper().replace("-", "_"), value)
            return environ

    return Handler


# Headers a proxy adds: a request that carries one came through a proxy, whatever its address.
_PROXIED = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def control_allowed(request: Request, key: str | None) -> bool:
    """Whether a control call (`/_sandbox/control/...`) may run: it carries `key` (the internal key)
    as `X-API-Key` or `Authorization: Bearer`, or it comes from loopback and not through a proxy.
    Control calls reset the emulators, inject faults and read what was published."""
    import hmac

    from bridge.auth import internal_key_from_headers

    presented = internal_key_from_headers(request.headers)
    if key and presented and hmac.compare_digest(presented.encode("utf-8"), key.encode("utf-8")):
        return True
    if any(request.headers.get(name) for name in _PROXIED):
        return False
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def guarded(app: Callable, key: str | None) -> Callable:
    """`app` (a sandbox) with its control API behind `control_allowed`; everything else passes."""

    def guarded_app(environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/_sandbox/control") and not control_allowed(Request(environ), key):
            body = {"success": False, "code": "invalid_api_key",
                    "message": "The sandbox control API needs the internal key unless called from this machine."}
            response = Response(json.dumps(body), status=401, content_type="application/json")
            return response(environ, start_response)
        return app(environ, start_response)

    return guarded_app


def serve(host: str = "127.0.0.1", port: int = 9100, sandbox: Sandbox | None = None, control_key: str | None = None):
    """Run a sandbox as a stand-alone HTTP server (blocking). Returns when interrupted. Its control
    API answers loopback callers, and others that send `control_key`."""
    from werkzeug.serving import run_simple

    run_simple(host, port, guarded(sandbox or Sandbox(), control_key), threaded=True, use_reloader=False,
               request_handler=request_handler())


def start_server(host: str = "127.0.0.1", port: int = 0, sandbox: Sandbox | None = None,
                 control_key: str | None = None):
    """Start a stand-alone sandbox server in a thread; returns (server, sandbox, base_url)."""
    from werkzeug.serving import make_server

    sandbox = sandbox or Sandbox()
    server = make_server(host, port, guarded(sandbox, control_key), threaded=True, request_handler=request_handler())
    threading.Thread(target=server.serve_forever, name="sandbox", daemon=True).start()
    return server, sandbox, f"http://{host}:{server.server_port}"


def host_map_for(base_url: str, sandbox: Sandbox) -> dict[str, str]:
    """An AURAREELS_HOST_MAP that sends every emulated host to a stand-alone sandbox server."""
    return {host: f"{base_url}/{host}" for host in sandbox.by_host}


@dataclass
class TokenRecord:
    """An issued token, for emulators that model OAuth grants."""

    token: str
    user: str
    client_id: str
    scopes: list[str]
    expires_at: float
    kind: str = "access"
    revoked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
