"""Meta's shared world for the Instagram and Facebook Pages emulators.

Both emulators live on graph.facebook.com and see the same users, Pages, Instagram business
accounts, apps, login codes and tokens: `MetaWorld`, obtained with
`sandbox.shared("meta", MetaWorld)`. Facebook Login itself (the dialog, `/oauth/access_token`,
`/me`, `/me/accounts`, permissions, `debug_token`) is served by the Facebook emulator; the
Instagram emulator serves the Instagram ids (`IG_ID`: 178... or 179..., as real ones), so the two
emulators' routes never overlap.

`MetaEmulator` is their common base: routes tagged with the host family they answer on, the Graph
error envelope, parameters from query, form or JSON, token checks (with `appsecret_proof`, which an
app with "Require App Secret" demands on every call: `require_appsecret_proof`), `fields` checks
and the usage headers (`X-App-Usage`, `X-Business-Use-Case-Usage`), with Business Use Case
throttling per Instagram account or Page. The deprecated graph-video.facebook.com host is not
served.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import secrets
import threading
import time
from collections import deque
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request, Response

from bridge.platforms.media import SANDBOX_MEDIA_HOST
from bridge.sandbox.audience import organic
from bridge.sandbox.core import Emulator, TokenRecord, route

# An optional version segment: Graph answers /v25.0/... and unversioned paths alike.
V = r"/(?:v\d+\.\d+/)?"
HOSTS = {
    "www": ("www.facebook.com",),
    "graph": ("graph.facebook.com",),
    "rupload": ("rupload.facebook.com",),
}
ALL_HOSTS = tuple(h for hosts in HOSTS.values() for h in hosts)
# Instagram ids start with 178 or 179 (accounts 17841..., containers 1789..., media 1792...), as real
# ones do; Facebook ids here start with 10. The two emulators route on this, so never both.
IG_ID = r"17[89]\d{10,}"
FB_ID = r"(?!17[89])\d+"
NEVER = math.inf

PERMISSIONS = {
    "public_profile", "email", "pages_show_list", "pages_read_engagement", "pages_manage_posts",
    "pages_manage_engagement", "pages_manage_metadata", "pages_read_user_content", "read_insights",
    "publish_video", "business_management", "instagram_basic", "instagram_content_publish",
    "instagram_manage_insights", "instagram_manage_comments", "ads_management", "ads_read",
}
PAGE_TASKS = ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"]

# Named errors for fault injection: name -> (HTTP status, code, subcode, message, transient).
NAMED_ERRORS: dict[str, tuple[int, int, int | None, str, bool]] = {
    "token_expired": (400, 190, 463, "Error validating access token: Session has expired.", False),
    "session_invalidated": (400, 190, 460, "Error validating access token: The session has been invalidated "
                                           "because the user changed their password or Facebook has changed the "
                                           "session for security reasons.", False),
    "app_removed": (400, 190, 458, "Error validating access token: The user has not authorized application.", False),
    "permission_denied": (403, 10, None, "(#10) Application does not have permission for this action", False),
    "app_rate_limit": (400, 4, None, "(#4) Application request limit reached", True),
    "user_rate_limit": (400, 17, None, "(#17) User request limit reached", True),
    "page_rate_limit": (400, 32, None, "(#32) Page request limit reached", True),
    "publish_limit": (400, 9, 2207042, "Application request limit reached", False),
    "not_ready": (400, 9007, 2207027, "Media ID is not available", False),
    "media_fetch_failed": (400, 9004, 2207052, "Media download has failed. The media URI doesn't meet our "
                                               "requirements.", False),
    "unknown_error": (500, 1, None, "An unknown error has occurred.", True),
    "service_unavailable": (503, 2, None, "(#2) Service temporarily unavailable", True),
    "abusive": (400, 368, None, "(#368) The action attempted has been deemed abusive or is otherwise disallowed",
                False),
    "invalid_parameter": (400, 100, None, "(#100) Invalid parameter", False),
    "duplicate_post": (400, 506, None, "(#506) Duplicate status message", False),
    "reels_limit": (400, 9, None, "(#9) This Page has reached the number of reels it can publish through the API "
                                  "in 24 hours.", False),
    "page_publishing_authorization": (400, 200, 1404078, "(#200) Page publishing authorization is required.", False),
}


class GraphAnswer(Exception):
    """Raised by a handler to answer at once (an error envelope)."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def numeric_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice("0123456789") for _ in range(length - len(prefix)))


class MetaWorld:
    """Users, Pages, Instagram accounts, apps, codes, tokens and grants, shared by both emulators."""

    def __init__(self):
        self.lock = threading.RLock()
        self.apps: dict[str, str | None] = {}  # client id -> secret (learnt at the first exchange)
        self.users: dict[str, dict[str, Any]] = {}
        self.logins: dict[str, str] = {}  # sandbox_user -> user id
        self.pages: dict[str, dict[str, Any]] = {}
        self.ig_accounts: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.grants: dict[tuple[str, str], set[str]] = {}  # (user id, client id) -> granted permissions
        self.invalidated: dict[str, int] = {}  # user id -> 190 subcode (460 password changed, 467 ...)
        self.calls: dict[str, deque[float]] = {}  # usage windows: "app:<id>", "buc:<object id>"

    # --- people and Pages
    def ensure_user(self, login: str) -> dict[str, Any]:
        """The sandbox user for a consent-form login; created with one Page and its Instagram
        business account."""
        with self.lock:
            if login in self.logins:
                return self.users[self.logins[login]]
            user = {"id": numeric_id("1000", 15), "name": login.replace("_", " ").title(), "login": login}
            self.users[user["id"]] = user
            self.logins[login] = user["id"]
            self.add_page(user["id"])
            return user

    def add_page(self, user_id: str, name: str | None = None, instagram: bool = True,
                 tasks: list[str] | None = None) -> dict[str, Any]:
        with self.lock:
            user = self.users[user_id]
            count = sum(1 for p in self.pages.values() if p["owner"] == user_id)
            default = f"{user['name']}'s Page" + (f" {count + 1}" if count else "")
            page = {"id": numeric_id("1010", 15), "name": name or default,
                    "owner": user_id, "category": "Digital creator", "tasks": list(tasks or PAGE_TASKS), "ig": None}
            self.pages[page["id"]] = page
            if instagram:
                handle = "".join(c for c in user["login"].lower() if c.isalnum() or c in "._") or "creator"
                ig = {"id": numeric_id("17841", 17), "username": handle + (str(count + 1) if count else ""),
                      "name": user["name"], "page": page["id"], "followers_count": 1200, "follows_count": 80,
                      "profile_picture_url": f"https://{SANDBOX_MEDIA_HOST}/images/{handle}.jpg"}
                self.ig_accounts[ig["id"]] = ig
                page["ig"] = ig["id"]
            return page

    # --- tokens
    def issue(self, kind: str, user: str, client_id: str, ttl: float, now: float, **extra: Any) -> TokenRecord:
        prefix = {"short": "EAAS", "long": "EAAL", "page": "EAAP"}[kind]
        record = TokenRecord(token=prefix + secrets.token_urlsafe(48), user=user, client_id=client_id, scopes=[],
                             expires_at=now + ttl if ttl != NEVER else NEVER, kind=kind, extra=extra)
        with self.lock:
            self.tokens[record.token] = record
        return record

    def page_token(self, page_id: str, parent: TokenRecord, now: float) -> TokenRecord:
        """The Page token for a user token: one per Page, app and user; it never expires when made
        from a long-lived user token, else it ends with the user token."""
        with self.lock:
            if parent.kind == "long":
                for record in self.tokens.values():
                    if record.kind == "page" and record.extra.get("page") == page_id and record.expires_at == NEVER \
                            and record.client_id == parent.client_id and record.user == parent.user:
                        return record
            ttl = NEVER if parent.kind == "long" else parent.expires_at - now
            return self.issue("page", parent.user, parent.client_id, ttl, now, page=page_id)

    def scopes(self, record: TokenRecord) -> set[str]:
        return set(self.grants.get((record.user, record.client_id), set()))

    def check(self, token: str | None, now: float) -> TokenRecord | tuple[int, int | None, str]:
        """The token's record, or (code, subcode, message) of the Graph error it earns."""
        if not token:
            return 104, None, "An access token is required to request this resource."
        if "|" in token:
            app_id, _, secret = token.partition("|")
            if self.apps.get(app_id) and self.apps[app_id] == secret:
                return TokenRecord(token=token, user="", client_id=app_id, scopes=[], expires_at=NEVER, kind="app")
            return 190, None, "Invalid OAuth access token signature."
        record = self.tokens.get(token)
        if record is None:
            return 190, None, "Invalid OAuth access token - Cannot parse access token"
        if record.revoked or (record.user, record.client_id) not in self.grants:
            return 190, 458, ("Error validating access token: The user has not authorized application "
                              f"{record.client_id}.")
        if record.user in self.invalidated:
            return 190, self.invalidated[record.user], ("Error validating access token: The session has been "
                                                        "invalidated because the user changed their password or "
                                                        "Facebook has changed the session for security reasons.")
        if record.kind == "page" and self.pages.get(record.extra.get("page"), {}).get("owner") != record.user:
            return 190, 460, "Error validating access token: The user is no longer an admin of this Page."
        if now >= record.expires_at:
            when = time.strftime("%A, %d-%b-%y %H:%M:%S PST", time.gmtime(record.expires_at))
            return 190, 463, f"Error validating access token: Session has expired on {when}."
        return record

    def revoke(self, user_id: str, client_id: str, permission: str | None = None) -> None:
        with self.lock:
            if permission is None:
                self.grants.pop((user_id, client_id), None)
            else:
                self.grants.get((user_id, client_id), set()).discard(permission)

    # --- usage windows
    def count(self, key: str, now: float, window: float) -> deque[float]:
        with self.lock:
            calls = self.calls.setdefault(key, deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            calls.append(now)
            return calls


def request_host(request: Request) -> str:
    """The emulated host a request was sent to: named in the path prefix (stand-alone server,
    browser side) or in the Host header (in-process transport)."""
    prefix = request.environ.get("SCRIPT_NAME", "").rstrip("/").rsplit("/", 1)[-1]
    if prefix in ALL_HOSTS:
        return prefix
    return (request.host or "").split(":")[0].lower()


def graph_route(method: str, pattern: str, host: str = "graph"):
    """`route`, answered only on one host family (www, graph, rupload)."""
    mark = route(method, pattern)

    def tag(fn):
        fn = mark(fn)
        fn._hosts = HOSTS[host]
        return fn

    return tag


def graph_timestamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(epoch))


def field_names(raw: str) -> list[str]:
    """Top-level names of a `fields` parameter, ignoring expansions such as
    `reactions.summary(total_count).limit(0)` or `picture{url}`."""
    names, depth, current = [], 0, ""
    for char in raw:
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        if char == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += char
    names.append(current)
    return [n.strip().split(".", 1)[0].split("{", 1)[0] for n in names if n.strip()]


def media_problem(url: str | None, kind: str, limits: dict[str, Any]) -> str | None:
    """Why the platform could not use a media URL: 'fetch' (cannot download), 'format', or None.
    The sandbox media host is judged by its query (status, size, duration, type); other public
    hosts are assumed fine (the emulator has no network); local addresses are never reachable."""
    if not url:
        return "fetch"
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host or host == "localhost":
        return "fetch"
    try:
        address = ipaddress.ip_address(host)
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            return "fetch"
    except ValueError:
        pass
    if host != SANDBOX_MEDIA_HOST:
        return None
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if _number(query.get("status"), 200) >= 400:
        return "fetch"
    if kind in ("image", "photo"):
        # Instagram takes JPEG only; Facebook photos JPEG or PNG.
        if not parts.path.startswith("/images/"):
            return "fetch"
        allowed = (".jpg", ".jpeg") if kind == "image" else (".jpg", ".jpeg", ".png")
        return None if parts.path.lower().endswith(allowed) else "format"
    if not parts.path.startswith("/videos/"):
        return "fetch"
    facts = media_facts(url)
    duration, size = facts["duration"], facts["size"]
    if query.get("type", "video/mp4") not in ("video/mp4", "video/quicktime"):
        return "format"
    if not limits.get("min_duration", 0) <= duration <= limits.get("max_duration", math.inf):
        return "format"
    if size > limits.get("max_bytes", math.inf):
        return "format"
    return None


def read_block(request: Request, size: int) -> bytes:
    try:
        return request.stream.read(size)
    except ClientDisconnected:
        return b""


def drain(request: Request, block: int = 1 << 20) -> int:
    """Read and count what is left of a request body, so an error answer reaches a client that
    is still sending."""
    total = 0
    while True:
        data = read_block(request, block)
        if not data:
            return total
        total += len(data)


def media_facts(url: str) -> dict[str, float]:
    """Size and duration of a sandbox media URL (defaults as the media host serves them)."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return {"size": int(_number(query.get("size"), 2_000_000)), "duration": _number(query.get("duration"), 15.0)}


def _number(raw: str | None, default: float) -> float:
    try:
        return float(raw) if raw else default
    except ValueError:
        return default


class MetaEmulator(Emulator):
    """The Graph API's shared behaviour for the Instagram and Facebook emulators."""

    # the BUC usage type and throttling code of this platform's objects
    buc_type = "pages"
    buc_code = 80001

    def reset(self) -> None:
        super().reset()
        self.world: MetaWorld = self.sandbox.shared("meta", MetaWorld)
        # comments made through the API, in order: the platform's record the tests count
        self.comments: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "comments": [{k: c[k] for k in ("id", "object", "message", "author")}
                                                    for c in self.comments]}

    def comments_on(self, object_id: str) -> list[dict[str, Any]]:
        """The comments under an object, newest first (Graph's order for a fresh post)."""
        return [c for c in reversed(self.comments) if c["object"] == object_id]

    def add_comment(self, object_id: str, message: str, author: dict[str, str], comment_id: str) -> dict[str, Any]:
        comment = {"id": comment_id, "object": object_id, "message": message, "author": author["id"],
                   "from": dict(author), "created_at": self.now()}
        self.comments.append(comment)
        target = self.find_object(object_id)
        if target is not None:
            metrics = target.setdefault("metrics", {})
            metrics["comments"] = metrics.get("comments", 0) + 1
        return comment

    # --- dispatch: hosts, early answers, usage headers
    def dispatch(self, request: Request) -> Response:
        host = request_host(request)
        known_path = False
        response = None
        try:
            for (method, pattern), handler in self._routes:
                match = pattern.fullmatch(request.path)
                if not match or host not in getattr(handler, "_hosts", (host,)):
                    continue
                known_path = True
                if method == request.method:
                    response = handler(request, **match.groupdict())
                    break
            if response is None:
                response = self.method_not_allowed(request) if known_path else self.not_found(request)
        except GraphAnswer as answer:
            response = answer.response
        return self._decorate(request, response)

    def handles(self, request: Request) -> bool:
        host = request_host(request)
        return any(pattern.fullmatch(request.path) and host in getattr(handler, "_hosts", (host,))
                   for (_, pattern), handler in self._routes)

    def _decorate(self, request: Request, response: Response) -> Response:
        response.headers["Date"] = formatdate(self.now(), usegmt=True)
        app = request.environ.get("meta.app")
        if app:
            calls = self.world.calls.get(f"app:{app}") or ()
            pct = min(100, int(100 * len(calls) / max(1, self.config["app_calls_per_hour"])))
            response.headers["X-App-Usage"] = json.dumps({"call_count": pct, "total_cputime": pct // 2,
                                                          "total_time": pct // 2})
        usage = request.environ.get("meta.buc")
        if usage:
            response.headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
        return response

    # --- answers in Graph's shapes
    def error(self, code: int, message: str, *, subcode: int | None = None, status: int = 400,
              kind: str = "OAuthException", transient: bool = False, user_title: str | None = None,
              user_msg: str | None = None, data: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> Response:
        body: dict[str, Any] = {"message": message, "type": kind, "code": code}
        if subcode is not None:
            body["error_subcode"] = subcode
        body["is_transient"] = transient
        if user_title:
            body["error_user_title"] = user_title
        if user_msg:
            body["error_user_msg"] = user_msg
        if data:
            body["error_data"] = data
        body["fbtrace_id"] = base64.urlsafe_b64encode(secrets.token_bytes(8)).decode().rstrip("=")
        return self.json({"error": body}, status=status, headers=headers)

    def fail(self, code: int, message: str, **kw: Any) -> None:
        raise GraphAnswer(self.error(code, message, **kw))

    def error_response(self, name: str, request: Request) -> Response:
        status, code, subcode, message, transient = NAMED_ERRORS.get(
            name, (400, 100, None, f"(#100) {name}", False))
        return self.error(code, message, subcode=subcode, status=status, transient=transient)

    def not_found(self, request: Request) -> Response:
        return self.error(2500, f"Unknown path components: {request.path}")

    def method_not_allowed(self, request: Request) -> Response:
        return self.error(100, f"Unsupported {request.method.lower()} request. Please read the Graph API "
                               f"documentation at https://developers.facebook.com/docs/graph-api",
                          subcode=33, kind="GraphMethodException")

    def server_error(self, status: int, request: Request) -> Response:
        if status == 503:
            return self.error(2, "(#2) Service temporarily unavailable", status=503, transient=True)
        return self.error(1, "An unknown error has occurred.", status=status, transient=True)

    def rate_limited(self, retry_after: float, request: Request) -> Response:
        """Meta throttles with a 4xx and the BUC header, not 429."""
        minutes = max(1, math.ceil(retry_after / 60))
        target = self._path_object(request) or "0"
        usage = {target: [{"type": self.buc_type, "call_count": 100, "total_cputime": 40, "total_time": 40,
                           "estimated_time_to_regain_access": minutes}]}
        return self.error(self.buc_code, self._buc_message(), status=400, transient=True,
                          headers={"X-Business-Use-Case-Usage": json.dumps(usage)})

    def _buc_message(self) -> str:
        return "There have been too many calls from this Page account. Wait a bit and try again."

    @staticmethod
    def _path_object(request: Request) -> str | None:
        for segment in request.path.strip("/").split("/"):
            if segment[:1].isdigit() and not segment.startswith("v"):
                return segment
        return None

    # --- request parsing
    def params(self, request: Request) -> dict[str, str]:
        """Graph takes parameters from the query string, a form body or a JSON body alike."""
        values = {k: v for k, v in request.args.items()}
        mimetype = request.mimetype or ""
        if mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            values.update({k: v for k, v in request.form.items()})
        elif mimetype == "application/json":
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                self.fail(100, "(#100) The request body is not a JSON object")
            values.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
        return values

    @staticmethod
    def bearer(request: Request, params: dict[str, str] | None = None) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return value.strip()
        return (params or {}).get("access_token") or request.args.get("access_token")

    def authenticate(self, request: Request, params: dict[str, str] | None = None,
                     kinds: tuple[str, ...] = ("short", "long", "page")) -> TokenRecord:
        """The calling token's record, or a Graph error answer (raised)."""
        with self.world.lock:
            found = self.world.check(self.bearer(request, params), self.now())
        if isinstance(found, tuple):
            code, subcode, message = found
            self.fail(code, message, subcode=subcode)
        if found.kind not in kinds:
            if "page" in kinds and found.kind != "page":
                self.fail(210, "(#210) A page access token is required to request this resource.")
            self.fail(190, "Invalid OAuth access token for this resource.")
        if found.kind != "app" and self.config["require_appsecret_proof"]:
            self._check_proof(request, params, found)
        request.environ["meta.app"] = found.client_id
        calls = self.world.count(f"app:{found.client_id}", self.now(), 3600)
        if len(calls) > self.config["app_calls_per_hour"]:
            self.fail(4, "(#4) Application request limit reached", transient=True)
        return found

    def _check_proof(self, request: Request, params: dict[str, str] | None, record: TokenRecord) -> None:
        """Apps with "Require App Secret" refuse a user or Page token without the HMAC-SHA256 of
        the token under the app secret (`appsecret_proof`)."""
        offered = (params or {}).get("appsecret_proof") or request.args.get("appsecret_proof")
        if not offered:
            self.fail(100, "API calls from the server require an appsecret_proof argument",
                      kind="GraphMethodException")
        secret = self.world.apps.get(record.client_id) or ""
        expected = hmac.new(secret.encode(), record.token.encode(), hashlib.sha256).hexdigest()
        if not secret or not hmac.compare_digest(expected, offered):
            self.fail(100, "Invalid appsecret_proof provided in the API argument", kind="GraphMethodException")

    def require(self, record: TokenRecord, permission: str, code: int = 10, message: str | None = None) -> None:
        if record.kind != "app" and permission not in self.world.scopes(record):
            self.fail(code, message or f"(#{code}) Application does not have permission for this action")

    def unsupported(self, verb: str, object_id: str) -> None:
        """Graph's answer for an object that does not exist or that the token cannot reach."""
        self.fail(100, f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be loaded "
                       f"due to missing permissions, or does not support this operation. Please read the Graph API "
                       f"documentation at https://developers.facebook.com/docs/graph-api", subcode=33,
                  kind="GraphMethodException")

    def fields(self, request: Request, allowed: set[str], node_type: str, default: list[str]) -> list[str]:
        raw = request.args.get("fields")
        if not raw:
            return list(default)
        names = field_names(raw)
        for name in names:
            if name not in allowed:
                self.fail(100, f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})")
        return names

    def buc(self, request: Request, object_id: str) -> None:
        """Count a call against an Instagram account's or Page's Business Use Case budget; throttle
        past it with the time until the oldest call leaves the window."""
        window, limit = self.config["buc_window_seconds"], self.config["buc_calls_per_window"]
        now = self.now()
        calls = self.world.count(f"buc:{object_id}", now, window)
        pct = min(100, int(100 * len(calls) / max(1, limit)))
        regain = 0
        if len(calls) > limit:
            regain = max(1, math.ceil((calls[0] + window - now) / 60))
        request.environ["meta.buc"] = {object_id: [{"type": self.buc_type, "call_count": pct,
                                                    "total_cputime": pct // 2, "total_time": pct // 2,
                                                    "estimated_time_to_regain_access": regain}]}
        if regain:
            self.fail(self.buc_code, self._buc_message(), transient=True)

    @staticmethod
    def insights(object_id: str, values: dict[str, Any], names: list[str]) -> dict[str, Any]:
        return {"data": [{"name": n, "period": "lifetime", "values": [{"value": values.get(n, 0)}],
                          "title": n.replace("_", " ").capitalize(), "description": n.replace("_", " "),
                          "id": f"{object_id}/insights/{n}/lifetime"} for n in names]}

    def counts(self, target: dict[str, Any]) -> dict[str, int]:
        """An object's counters now: what tests set (`set_metrics`) plus the organic growth of its
        audience with its age (`bridge.sandbox.audience`)."""
        grown = organic(target["id"], self.now() - target["created_at"])
        m = target.get("metrics") or {}
        values = {name: int(m.get(name, 0)) + getattr(grown, attribute) for name, attribute in (
            ("views", "views"), ("reach", "reach"), ("likes", "likes"), ("comments", "comments"),
            ("shares", "shares"), ("saved", "saves"))}
        values["total_interactions"] = values["likes"] + values["comments"] + values["shares"] + values["saved"]
        return values

    def set_metrics(self, object_id: str, **values: int) -> None:
        """Tests: set an object's counters (views, reach, likes, comments, shares, saved, ...); the
        audience's organic growth adds to them as the object ages."""
        target = self.find_object(object_id)
        if target is None:
            raise KeyError(object_id)
        target.setdefault("metrics", {}).update(values)

    def find_object(self, object_id: str) -> dict[str, Any] | None:
        return None


def truthy(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return str(value).lower() in ("true", "1")

