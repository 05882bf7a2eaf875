"""LinkedIn emulator: Sign In with LinkedIn (OpenID Connect) and the versioned Posts and Videos APIs.

Model: registered apps, members (one per sandbox user), single-use authorization codes, access
and refresh tokens (refresh only where configured; a refresh never extends the original grant),
videos moving WAITING_UPLOAD -> PROCESSING -> AVAILABLE | PROCESSING_FAILED with the clock or
`process()`, posts, and per-UTC-day call counters per member and per app for each resource.

Routes answer in LinkedIn's shapes: OAuth errors `{"error","error_description"}`; REST errors
`{"status","serviceErrorCode","code","message"}` (validation adds `errorDetails.inputErrors`); a
created post is 201 with an empty body and its URN in `x-restli-id`. Every `/rest/` call needs
`LinkedIn-Version` (an active YYYYMM) and `X-Restli-Protocol-Version: 2.0.0`. Commentary is
parsed as LinkedIn's "little" text: an unescaped reserved character silently cuts the post
there, as LinkedIn does. Uploaded bytes are counted and hashed for the part's ETag, never kept.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timezone
from typing import Any

from werkzeug.wrappers import Request, Response

from bridge.platforms.media import mp4_duration
from bridge.sandbox.audience import organic
from bridge.sandbox.core import Emulator, TokenRecord, route
from bridge.sandbox.oauth import OAuthSpec, Refusal

WWW = "www.linkedin.com"
API = "api.linkedin.com"
RESERVED = set("\\|{}@[]()<>#*_~")
POST_FIELDS = {"author", "commentary", "visibility", "distribution", "content", "lifecycleState",
               "isReshareDisabledByAuthor", "reshareContext", "container", "contentLandingPage",
               "contentCallToActionLabel", "adContext"}
METRIC_TYPES = ("IMPRESSION", "MEMBERS_REACHED", "RESHARE", "REACTION", "COMMENT")
# "little" text templates LinkedIn links rather than cuts at: hashtag, mention, plain #tag
_TEMPLATE = re.compile(r"\{hashtag\|\\#\|([^\W_]+)\}|@\[([^\]\\]+)\]\((urn:li:[a-zA-Z]+:[^)\\]+)\)|#([^\W_]+)")
_HEAD_BYTES = 64 * 1024  # enough of part 0 to read the MP4 duration (mvhd) without keeping the file

# Named errors for fault injection: name -> (status, serviceErrorCode, message).
REST_ERRORS: dict[str, tuple[int, int | None, str]] = {
    "INVALID_ACCESS_TOKEN": (401, 65600, "Invalid access token"),
    "REVOKED_ACCESS_TOKEN": (401, 65601, "The token used in the request has been revoked by the user"),
    "EXPIRED_ACCESS_TOKEN": (401, 65602, "The token used in the request has expired"),
    "ACCESS_DENIED": (403, 100, "Not enough permissions to access: partnerApiPostsExternal.CREATE.20260101"),
    "TOO_MANY_REQUESTS": (429, 101, "Resource level throttle MEMBER DAY limit for calls to this resource is reached."),
    "DUPLICATE_POST": (422, None, "Content is a duplicate of urn:li:share:7000000000000000001"),
    "VERSION_MISSING": (400, None, "A version must be present. Please specify a version by adding the "
                                   "LinkedIn-Version header."),
    "NONEXISTENT_VERSION": (426, None, "Requested version 20230101 is not active"),
    "UNPROCESSABLE_ENTITY": (422, None, "Invalid request body"),
    "INTERNAL_SERVER_ERROR": (500, None, "Internal Server Error"),
}


def _on(host: str, method: str, pattern: str):
    """A route served only on `host` (LinkedIn's OAuth and upload URLs live on www, the API on api)."""

    def mark(fn):
        @functools.wraps(fn)
        def handler(self: "LinkedInEmulator", request: Request, **kw):
            if self.host_of(request) not in (host, ""):
                return self.not_found(request)
            return fn(self, request, **kw)

        return route(method, pattern)(handler)

    return mark


def rest(method: str, pattern: str, *, versioned: bool = True):
    """An API route on api.linkedin.com: version headers (for /rest/), the bearer token and the
    daily limits are checked before the handler runs; the handler receives the token record."""

    def mark(fn):
        @functools.wraps(fn)
        def handler(self: "LinkedInEmulator", request: Request, **kw):
            refused = self.check_headers(request) if versioned else None
            if refused:
                return refused
            token, refused = self.bearer(request)
            if refused:
                return refused
            return self.count_call(token, fn.__name__, request) or fn(self, request, token, **kw)

        return _on(API, method, pattern)(handler)

    return mark


_GRANT_INVALID = "The provided authorization grant or refresh token is invalid, expired or revoked"


class LinkedInEmulator(Emulator):
    platform = "linkedin"
    hosts = (WWW, API)
    oauth_spec = OAuthSpec(
        authorize_path="/oauth/v2/authorization", token_path="/oauth/v2/accessToken", revoke_path="/oauth/v2/revoke",
        host=WWW, answer_scope_separator=",", redirect_https_or_loopback=True, access_prefix="AQV",
        refresh_prefix="AQW", token_bytes=135, refresh_extends=False, revoke_ends="user", revoke_answer=None)
    oauth_errors = {
        "unknown_client": (400, "invalid_client", "The passed in client_id is invalid", "json"),
        "bad_redirect_uri": (400, "invalid_redirect_uri", "The redirect_uri does not match the registered value",
                             "json"),
        "unsupported_response_type": (400, "invalid_request", "response_type must be code"),
        "invalid_scope": (400, "unauthorized_scope_error", "A scope is not authorized for your application"),
        "denied": (400, "user_cancelled_authorize", "The user cancelled the authorization"),
        "bad_content_type": (400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"),
        "missing_grant_type": (400, "invalid_request", 'A required parameter "grant_type" is missing'),
        "missing_client": (400, "invalid_request", 'A required parameter "client_id" is missing'),
        "missing_param": (400, "invalid_request", 'A required parameter "{param}" is missing'),
        "invalid_client": (401, "invalid_client", "Client authentication failed"),
        "unsupported_grant_type": (400, "unsupported_grant_type", "The grant_type is not supported"),
        "code_invalid": (400, "invalid_grant", _GRANT_INVALID),
        "code_used": (400, "invalid_grant", _GRANT_INVALID),
        "code_expired": (400, "invalid_grant", _GRANT_INVALID),
        "redirect_mismatch": (400, "invalid_redirect_uri", "Unable to retrieve access token: appid/redirect uri/code "
                                                           "verifier does not match authorization code"),
        "verifier_mismatch": (400, "invalid_grant", _GRANT_INVALID),
        "refresh_invalid": (400, "invalid_grant", _GRANT_INVALID),
    }
    defaults = {
        # app registration: client id -> secret; redirect URIs (empty: any https or loopback URL)
        "apps": {"sandbox-linkedin-client": "sandbox-linkedin-secret"},
        # an unknown client id is registered when first seen and held to the secret of its first
        # token call (so any configured credentials work); False: only the registered apps
        "auto_register": True,
        "redirect_uris": [],
        "app_scopes": "openid profile email w_member_social",  # what the app's products grant
        "code_ttl": 1800,
        "access_token_ttl": 5_184_000,  # 60 days
        "issue_refresh_tokens": True,  # only apps approved for programmatic refresh get them
        "refresh_token_ttl": 31_536_000,  # 365 days from the original grant; refreshing does not extend it
        "rotate_refresh_tokens": True,
        "revoke_endpoint": False,  # no documented member revoke; True serves POST /oauth/v2/revoke
        # versions YYYYMM go live at the start of their month and are sunset a year later, on the
        # `sunset_day`; None: the newest is the sandbox clock's month (a version name may cap it)
        "latest_version": None,
        "supported_months": 12,
        "sunset_day": 15,
        "member_daily_limit": 150,  # per member, per resource, per UTC day
        "app_daily_limit": 100_000,  # per app, per resource, per UTC day
        "retry_after_header": False,  # LinkedIn sends no rate-limit headers
        "commentary_max": 3000,
        "comment_max": 1250,
        "commentary_unit": "utf16",  # utf16 | code_points (unconfirmed: utf16 is the stricter)
        "duplicate_window": 86400,
        # Share-on-LinkedIn apps do not get r_member_social: listing a member's posts and reading
        # their social actions need it
        "posts_finder_scope": "r_member_social",
        "social_actions_scope": "r_member_social",
        "part_size": 4_194_304,
        "upload_url_ttl": 3600,
        "empty_upload_token": False,  # LinkedIn may answer "": either way it must come back as sent
        "min_video_bytes": 75 * 1024,
        "max_video_bytes": 500 * 1024 * 1024,
        "min_video_seconds": 3,
        "max_video_seconds": 1800,
        "processing_seconds": 30,
        "processing_failure": None,  # a reason: processing ends in PROCESSING_FAILED with it
    }

    def reset(self) -> None:
        super().reset()
        self.signing_key = secrets.token_bytes(16)
        self.members: dict[str, dict[str, Any]] = {}  # sandbox user -> userinfo
        self.videos: dict[str, dict[str, Any]] = {}
        self.posts: dict[str, dict[str, Any]] = {}
        self.engagement: dict[str, dict[str, int]] = {}
        self.calls: dict[tuple, int] = {}
        self.comments: list[dict[str, Any]] = []
        self.activities: dict[str, str] = {}  # post URN -> its activity URN (comment URNs name it)

    def snapshot(self) -> dict[str, Any]:
        videos = {urn: {k: v for k, v in video.items() if k != "head"} for urn, video in self.videos.items()}
        comments = [{"id": c["commentUrn"], "object": c["object"], "message": c["message"]["text"],
                     "author": c["actor"]} for c in self.comments]
        return {**super().snapshot(), "members": dict(self.members), "videos": videos, "posts": dict(self.posts),
                "comments": comments}

    # ------------------------------------------------------------------ model helpers for tests
    def member(self, user: str) -> dict[str, Any]:
        """The member behind a sandbox user (created on first use; `sub` is stable per name)."""
        if user not in self.members:
            sub = base64.urlsafe_b64encode(hashlib.sha256(user.encode()).digest()).decode()[:10].replace("-", "x")
            given, _, family = user.partition(".")
            self.members[user] = {
                "sub": sub, "name": f"{given.title()} {family.title() or 'Sandbox'}".strip(),
                "given_name": given.title(), "family_name": family.title() or "Sandbox",
                "picture": f"https://media.licdn.com/dms/image/sandbox/{sub}.jpg",
                "locale": {"country": "US", "language": "en"},
                "email": f"{user}@sandbox.linkedin.test", "email_verified": True,
            }
        return self.members[user]

    def register_app(self, client_id: str, client_secret: str | None) -> None:
        self.config["apps"] = {**self.config["apps"], client_id: client_secret}

    def issue_token(self, user: str = "creator1", scopes: str | None = None,
                    client_id: str = "sandbox-linkedin-client") -> str:
        """An access token for `user` without the consent flow (tests needing other scopes)."""
        self.member(user)
        return self.oauth.issue(client_id, user, (scopes or self.config["app_scopes"]).split())["access_token"]

    def revoke_member(self, user: str) -> int:
        """The member removes the app in their settings: every token of theirs stops working."""
        return self.oauth.revoke_user(user)

    def engage(self, urn: str, **counts: int) -> None:
        """Set a post's counters: likes, comments, shares, impressions, reached; the audience's
        organic growth adds to them as the post ages."""
        self.engagement.setdefault(urn, {}).update(counts)

    def _counts(self, post: dict[str, Any]) -> dict[str, int]:
        grown = organic(post["id"], self.now() - post["createdAt"] / 1000)
        c = self.engagement.get(post["id"], {})
        return {"likes": c.get("likes", 0) + grown.likes, "comments": c.get("comments", 0) + grown.comments,
                "shares": c.get("shares", 0) + grown.shares, "impressions": c.get("impressions", 0) + grown.views,
                "reached": c.get("reached", 0) + grown.reach}

    def process(self, video: str | None = None, fail: bool = False, reason: str | None = None) -> int:
        """Finish processing now (every PROCESSING video, or one), as AVAILABLE or PROCESSING_FAILED."""
        changed = 0
        for urn, record in self.videos.items():
            if record["status"] != "PROCESSING" or (video and urn != video):
                continue
            failure = reason or ("Processing failed" if fail else record["failure"])
            record["status"] = "PROCESSING_FAILED" if failure else "AVAILABLE"
            record["failure"] = failure
            changed += 1
        return changed

    # ------------------------------------------------------------------ answers
    def rest_error(self, status: int, code: str | None, message: str, service: int | None = None,
                   field: str | None = None, detail_code: str | None = None) -> Response:
        body: dict[str, Any] = {"status": status}
        if service is not None:
            body["serviceErrorCode"] = service
        if code:
            body["code"] = code
        body["message"] = message
        if field:
            body["errorDetails"] = {"inputErrors": [{"description": message, "code": detail_code or "INVALID_VALUE",
                                                     "input": {"inputPath": {"fieldPath": field}}}]}
        return self.json(body, status=status)

    def invalid(self, field: str, message: str, detail_code: str = "INVALID_VALUE", status: int = 422) -> Response:
        return self.rest_error(status, "UNPROCESSABLE_ENTITY" if status == 422 else "BAD_REQUEST",
                               f"{field} :: {message}", field=field, detail_code=detail_code)

    def error_response(self, name: str, request: Request) -> Response:
        if request.path.startswith("/oauth/"):
            return self.oauth_error(name, f"sandbox fault: {name}", 401 if name == "invalid_client" else 400)
        status, service, message = REST_ERRORS.get(name, (400, None, f"sandbox fault: {name}"))
        return self.rest_error(status, name if name != "DUPLICATE_POST" else "UNPROCESSABLE_ENTITY", message, service)

    def not_found(self, request: Request) -> Response:
        resource = request.path.strip("/").split("/")[1] if request.path.count("/") > 1 else request.path
        return self.rest_error(404, "NOT_FOUND", f"Resource {resource} does not exist", 0)

    def method_not_allowed(self, request: Request) -> Response:
        return self.rest_error(405, "METHOD_NOT_ALLOWED", f"Method {request.method} is not allowed on this resource")

    def server_error(self, status: int, request: Request) -> Response:
        return self.rest_error(status, "INTERNAL_SERVER_ERROR", "Internal Server Error")

    def rate_limited(self, retry_after: float, request: Request, scope: str = "MEMBER") -> Response:
        response = self.rest_error(429, "TOO_MANY_REQUESTS", f"Resource level throttle {scope} DAY limit for calls to "
                                                             f"this resource is reached.", 101)
        if self.config["retry_after_header"]:
            response.headers["Retry-After"] = str(int(retry_after))
        return response

    # ------------------------------------------------------------------ request checks
    def host_of(self, request: Request) -> str:
        script = request.environ.get("SCRIPT_NAME", "")
        for host in self.hosts:
            if script.endswith("/" + host):
                return host
        host = (request.host or "").split(":")[0].lower()
        return host if host in self.hosts else ""

    def check_headers(self, request: Request) -> Response | None:
        version = request.headers.get("LinkedIn-Version")
        if not version:
            return self.rest_error(400, "VERSION_MISSING", REST_ERRORS["VERSION_MISSING"][2])
        if not self._version_active(version):
            return self.rest_error(426, "NONEXISTENT_VERSION", f"Requested version {version[:6]}01 is not active")
        if request.headers.get("X-Restli-Protocol-Version") != "2.0.0":
            return self.rest_error(400, "ILLEGAL_ARGUMENT", "This resource requires Rest.li protocol version 2.0.0: "
                                                            "send the header X-Restli-Protocol-Version: 2.0.0")
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
        if "urn:li:" in raw.split("?", 1)[0]:
            return self.rest_error(400, "ILLEGAL_ARGUMENT", "URNs in the request path must be URL-encoded")
        return None

    def _version_active(self, version: str) -> bool:
        """Released (its month has begun, and not past `latest_version` when one is set) and not
        yet sunset: the sunset is `supported_months` after its month, on `sunset_day` (202601 ends
        on 2027-01-15), by the sandbox clock."""
        match = re.fullmatch(r"(\d{4})(\d{2})(?:\.\d{2})?", version)
        if not match or not 1 <= int(match.group(2)) <= 12:
            return False
        today = datetime.fromtimestamp(self.now(), timezone.utc)
        months = int(match.group(1)) * 12 + int(match.group(2)) - 1
        newest = today.year * 12 + today.month - 1
        latest = re.fullmatch(r"(\d{4})(\d{2})", str(self.config["latest_version"] or ""))
        if latest:
            newest = min(newest, int(latest.group(1)) * 12 + int(latest.group(2)) - 1)
        if months > newest:
            return False
        end = months + int(self.config["supported_months"])
        sunset = datetime(end // 12, end % 12 + 1, int(self.config["sunset_day"]), tzinfo=timezone.utc)
        return today < sunset

    def bearer(self, request: Request) -> tuple[TokenRecord | None, Response | None]:
        header = request.headers.get("Authorization", "")
        record, state = self.oauth.lookup(header[7:] if header.startswith("Bearer ") else None)
        if state == "unknown":
            return None, self.rest_error(401, "INVALID_ACCESS_TOKEN", "Invalid access token", 65600)
        if state == "revoked":
            return None, self.rest_error(401, "REVOKED_ACCESS_TOKEN", REST_ERRORS["REVOKED_ACCESS_TOKEN"][2], 65601)
        if state == "expired":
            return None, self.rest_error(401, "EXPIRED_ACCESS_TOKEN", REST_ERRORS["EXPIRED_ACCESS_TOKEN"][2], 65602)
        return record, None

    def count_call(self, token: TokenRecord, resource: str, request: Request) -> Response | None:
        """Daily limits per member and per app for each resource, reset at midnight UTC."""
        day = int(self.now() // 86400)
        member_key, app_key = (day, "member", token.user, resource), (day, "app", token.client_id, resource)
        until_midnight = 86400 - self.now() % 86400
        if self.calls.get(app_key, 0) >= self.config["app_daily_limit"]:
            return self.rate_limited(until_midnight, request, "APPLICATION")
        if self.calls.get(member_key, 0) >= self.config["member_daily_limit"]:
            return self.rate_limited(until_midnight, request, "MEMBER")
        self.calls[member_key] = self.calls.get(member_key, 0) + 1
        self.calls[app_key] = self.calls.get(app_key, 0) + 1
        return None

    def json_body(self, request: Request) -> tuple[Any, Response | None]:
        if request.mimetype != "application/json":
            message = f"Unsupported content type: {request.mimetype or 'none'}; send application/json"
            return None, self.rest_error(415, "UNSUPPORTED_MEDIA_TYPE", message)
        try:
            return json.loads(request.get_data(as_text=True) or "null"), None
        except ValueError:
            return None, self.rest_error(400, "BAD_REQUEST", "Request body is not valid JSON")

    def urn_of(self, token: TokenRecord) -> str:
        return f"urn:li:person:{self.member(token.user)['sub']}"

    def denied(self, resource: str, request: Request) -> Response:
        version = (request.headers.get("LinkedIn-Version") or "").replace(".", "")[:6]
        return self.rest_error(403, "ACCESS_DENIED", f"Not enough permissions to access: {resource}.{version}01", 100)

    # ------------------------------------------------------------------ OAuth hooks
    def oauth_user(self, login: str) -> str:
        self.member(login)
        return login

    def oauth_known_scopes(self) -> set[str]:
        return set(self.config["app_scopes"].split())  # what the app's products grant

    def oauth_code(self) -> str:
        return "AQ" + secrets.token_urlsafe(48)

    def oauth_answer(self, body: dict[str, Any], grant: Any, refresh: Any, exchange: bool) -> dict[str, Any]:
        body["scope"] = ",".join(sorted(grant.scopes))  # comma-separated in the answer, unlike the request
        if refresh is not None:
            body["refresh_token_expires_in"] = max(0, int(refresh.expires_at - self.now()))
        if exchange and "openid" in grant.scopes:
            body["id_token"] = self._id_token(grant.user, grant.client)
        return body

    def _id_token(self, user: str, client_id: str) -> str:
        member = self.member(user)
        claims = {"iss": "https://www.linkedin.com/oauth", "aud": client_id, "iat": int(self.now()),
                  "exp": int(self.now()) + 3600, "sub": member["sub"], "name": member["name"], "email": member["email"]}
        part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()  # noqa: E731
        return f"{part({'alg': 'RS256', 'kid': 'sandbox'})}.{part(claims)}.{secrets.token_urlsafe(32)}"

    @_on(WWW, "POST", r"/oauth/v2/introspectToken")
    def introspect(self, request: Request) -> Response:
        try:
            client = self.oauth.authenticate_client(request)
        except Refusal as refusal:
            return self.oauth_refusal(refusal)
        record, state = self.oauth.lookup(request.form.get("token", ""))
        if record is None or record.client_id != client:
            return self.json({"active": False})
        status = {"ok": "active"}.get(state, state)
        return self.json({"active": status == "active", "client_id": record.client_id, "status": status,
                          "expires_at": int(record.expires_at), "scope": ",".join(record.scopes), "auth_type": "3L"})

    @rest("GET", r"/v2/userinfo", versioned=False)
    def userinfo(self, request: Request, token: TokenRecord) -> Response:
        if "openid" not in token.scopes:
            return self.denied("userinfo.GET", request)
        member = dict(self.member(token.user))
        if "email" not in token.scopes:
            member.pop("email"), member.pop("email_verified")
        return self.json(member)

    # ------------------------------------------------------------------ Videos API
    @rest("POST", r"/rest/videos")
    def videos_action(self, request: Request, token: TokenRecord) -> Response:
        action = request.args.get("action")
        if action not in ("initializeUpload", "finalizeUpload"):
            return self.rest_error(400, "BAD_REQUEST", f"Unsupported action: {action or 'none'}")
        body, refused = self.json_body(request)
        if refused:
            return refused
        if "w_member_social" not in token.scopes:
            return self.denied("partnerApiVideos.ACTION", request)
        return self._initialize(request, token, body) if action == "initializeUpload" else self._finalize(token, body)

    def _initialize(self, request: Request, token: TokenRecord, body: Any) -> Response:
        spec = body.get("initializeUploadRequest") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            return self.invalid("/initializeUploadRequest", "field is required but not found", "MISSING_FIELD")
        for name in ("owner", "fileSizeBytes"):
            if name not in spec:
                return self.invalid(f"/initializeUploadRequest/{name}", "field is required but not found",
                                    "MISSING_FIELD")
        unknown = set(spec) - {"owner", "fileSizeBytes", "uploadCaptions", "uploadThumbnail", "purpose",
                               "mediaLibraryMetadata"}
        if unknown:
            return self.invalid(f"/initializeUploadRequest/{sorted(unknown)[0]}", "unrecognized field",
                                "UNRECOGNIZED_FIELD")
        if spec["owner"] != self.urn_of(token):
            return self.denied("partnerApiVideos.ACTION-initializeUpload", request)
        size = spec["fileSizeBytes"]
        if not isinstance(size, int) or isinstance(size, bool):
            return self.invalid("/initializeUploadRequest/fileSizeBytes", "value must be a long")
        if not self.config["min_video_bytes"] <= size <= self.config["max_video_bytes"]:
            return self.invalid("/initializeUploadRequest/fileSizeBytes",
                                f"file size {size} is outside the allowed range {self.config['min_video_bytes']}-"
                                f"{self.config['max_video_bytes']} bytes")
        video_id = "C5F10AQ" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
        urn = f"urn:li:video:{video_id}"
        expires_ms = int((self.now() + self.config["upload_url_ttl"]) * 1000)
        step = int(self.config["part_size"])
        parts = [(first, min(first + step, size) - 1) for first in range(0, size, step)]
        self.videos[urn] = {
            "urn": urn, "owner": spec["owner"], "user": token.user, "size": size, "parts": parts,
            "etags": [None] * len(parts), "received": 0, "status": "WAITING_UPLOAD", "expires_ms": expires_ms,
            "upload_token": "" if self.config["empty_upload_token"] else secrets.token_hex(16),
            "ready_at": None, "failure": None, "duration": None, "head": b"", "created_at": self.now(),
        }
        value: dict[str, Any] = {
            "uploadUrlsExpireAt": expires_ms, "video": urn, "uploadToken": self.videos[urn]["upload_token"],
            "uploadInstructions": [{"uploadUrl": self._upload_url(video_id, i, expires_ms), "firstByte": first,
                                    "lastByte": last} for i, (first, last) in enumerate(parts)],
        }
        if spec.get("uploadCaptions"):
            value["captionsUploadUrl"] = self._upload_url(video_id, -1, expires_ms)
        if spec.get("uploadThumbnail"):
            value["thumbnailUploadUrl"] = self._upload_url(video_id, -2, expires_ms)
        return self.json({"value": value})

    def _signature(self, video_id: str, part: int, expires_ms: int) -> str:
        message = f"{video_id}:{part}:{expires_ms}".encode()
        return hmac.new(self.signing_key, message, hashlib.sha256).hexdigest()[:32]

    def _upload_url(self, video_id: str, part: int, expires_ms: int) -> str:
        return (f"https://{WWW}/dms-uploads/sp/v2/{video_id}/uploadedVideo?ca=vector_feedshare&part={part}"
                f"&exp={expires_ms}&sig={self._signature(video_id, part, expires_ms)}")

    @_on(WWW, "PUT", r"/dms-uploads/sp/v2/(?P<video_id>[A-Za-z0-9]+)/uploadedVideo")
    def upload_part(self, request: Request, video_id: str) -> Response:
        video = self.videos.get(f"urn:li:video:{video_id}")
        part = request.args.get("part", type=int)
        expires = request.args.get("exp", type=int)
        if (video is None or part is None or expires is None
                or not hmac.compare_digest(self._signature(video_id, part, expires), request.args.get("sig", ""))):
            return self.rest_error(403, "ACCESS_DENIED", "The upload URL is not valid")
        if self.now() * 1000 >= expires:
            return self.rest_error(403, "ACCESS_DENIED", "The upload URL has expired")
        if part < 0:  # captions and thumbnail: accepted, not modelled
            return Response("", status=201, headers={"ETag": secrets.token_hex(8)})
        if video["status"] != "WAITING_UPLOAD":
            return self.rest_error(400, "BAD_REQUEST", "The upload of this video was already finalized")
        if request.mimetype != "application/octet-stream":
            return self.rest_error(415, "UNSUPPORTED_MEDIA_TYPE", "Upload parts must be application/octet-stream")
        first, last = video["parts"][part]
        expected = last - first + 1
        if request.content_length is None:
            return self.rest_error(411, "LENGTH_REQUIRED", "Content-Length is required")
        if request.content_length != expected:
            return self.rest_error(400, "BAD_REQUEST", f"Part {part} must be exactly {expected} bytes "
                                                       f"(bytes {first}-{last}); got {request.content_length}")
        digest, received = hashlib.md5(usedforsecurity=False), 0
        head = bytearray()
        while True:
            block = request.stream.read(1024 * 1024)
            if not block:
                break
            digest.update(block)
            received += len(block)
            if part == 0 and len(head) < _HEAD_BYTES:
                head += block[:_HEAD_BYTES - len(head)]
        if received != expected:
            return self.rest_error(400, "BAD_REQUEST", f"Part {part} ended after {received} of {expected} bytes")
        if part == 0:
            video["head"] = bytes(head)
        etag = f"/{digest.hexdigest()}"
        video["etags"][part] = etag
        video["received"] = sum(l - f + 1 for (f, l), tag in zip(video["parts"], video["etags"]) if tag)
        return Response("", status=201, headers={"ETag": etag})

    def _finalize(self, token: TokenRecord, body: Any) -> Response:
        spec = body.get("finalizeUploadRequest") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            return self.invalid("/finalizeUploadRequest", "field is required but not found", "MISSING_FIELD")
        for name in ("video", "uploadToken", "uploadedPartIds"):
            if name not in spec:
                return self.invalid(f"/finalizeUploadRequest/{name}", "field is required but not found",
                                    "MISSING_FIELD")
        video = self.videos.get(spec["video"])
        if video is None:
            return self.rest_error(404, "NOT_FOUND", f"Video {spec['video']} does not exist")
        if video["user"] != token.user:
            return self.rest_error(403, "ACCESS_DENIED", "Accessing this video resource is forbidden for the member")
        if spec["uploadToken"] != video["upload_token"]:
            return self.rest_error(400, "BAD_REQUEST", "The upload token does not match this video upload")
        if video["status"] != "WAITING_UPLOAD":
            return self.rest_error(400, "BAD_REQUEST", "The upload of this video was already finalized")
        missing = [i for i, tag in enumerate(video["etags"]) if tag is None]
        if missing:
            first, last = video["parts"][missing[0]]
            return self.rest_error(400, "BAD_REQUEST", f"Part {missing[0]} (bytes {first}-{last}) was not uploaded")
        if spec["uploadedPartIds"] != video["etags"]:
            return self.rest_error(400, "BAD_REQUEST", "uploadedPartIds do not match the uploaded parts (each part's "
                                                       "ETag, in the order of the upload instructions)")
        video["status"] = "PROCESSING"
        video["ready_at"] = self.now() + self.config["processing_seconds"]
        duration = mp4_duration(video.pop("head") or b"")
        video["duration"] = duration
        shortest, longest = self.config["min_video_seconds"], self.config["max_video_seconds"]
        if duration is not None and not shortest <= duration <= longest:
            video["failure"] = f"Video duration {duration:.1f}s is outside {shortest}-{longest}s"
        else:
            video["failure"] = self.config["processing_failure"]
        return Response("", status=200)

    def _advance(self, video: dict[str, Any]) -> None:
        if video["status"] == "PROCESSING" and self.now() >= video["ready_at"]:
            video["status"] = "PROCESSING_FAILED" if video["failure"] else "AVAILABLE"

    @rest("GET", r"/rest/videos/(?P<urn>[^/]+)")
    def video_status(self, request: Request, token: TokenRecord, urn: str) -> Response:
        video = self.videos.get(urn)
        if video is None:
            return self.rest_error(404, "NOT_FOUND", f"Video {urn} does not exist")
        if video["user"] != token.user:
            return self.rest_error(403, "ACCESS_DENIED", "Accessing this video resource is forbidden for the member")
        self._advance(video)
        body: dict[str, Any] = {"owner": video["owner"], "id": urn, "status": video["status"]}
        if video["status"] == "AVAILABLE":
            body.update({"duration": int((video["duration"] or 0) * 1000), "aspectRatioWidth": 16,
                         "aspectRatioHeight": 9, "downloadUrl": f"https://{WWW}/dms/sandbox/{urn}/mp4",
                         "downloadUrlExpiresAt": int((self.now() + 3600) * 1000)})
        if video["status"] == "PROCESSING_FAILED":
            body["processingFailureReason"] = video["failure"]
        return self.json(body)

    # ------------------------------------------------------------------ Posts API
    def render(self, commentary: str) -> tuple[str, str]:
        """(text a reader sees, commentary as stored): LinkedIn cuts the post at the first
        reserved character that is neither escaped nor part of a hashtag or mention template."""
        shown: list[str] = []
        i = 0
        while i < len(commentary):
            ch = commentary[i]
            if ch == "\\" and i + 1 < len(commentary):
                shown.append(commentary[i + 1])
                i += 2
                continue
            template = _TEMPLATE.match(commentary, i)
            if template:
                shown.append("#" + (template.group(1) or template.group(4)) if template.group(2) is None
                             else template.group(2))
                i = template.end()
                continue
            if ch in RESERVED:
                break
            shown.append(ch)
            i += 1
        return "".join(shown), commentary[:i]

    def _length(self, text: str) -> int:
        return len(text.encode("utf-16-le")) // 2 if self.config["commentary_unit"] == "utf16" else len(text)

    @rest("POST", r"/rest/posts")
    def create_post(self, request: Request, token: TokenRecord) -> Response:
        body, refused = self.json_body(request)
        if refused:
            return refused
        if not isinstance(body, dict):
            return self.invalid("/", "a JSON object is required")
        unknown = set(body) - POST_FIELDS
        if unknown:
            return self.invalid(f"/{sorted(unknown)[0]}", "unrecognized field", "UNRECOGNIZED_FIELD")
        for name in ("author", "visibility", "distribution", "lifecycleState"):
            if name not in body:
                return self.invalid(f"/{name}", "field is required but not found and has no default value",
                                    "MISSING_FIELD")
        if "w_member_social" not in token.scopes or body["author"] != self.urn_of(token):
            return self.denied("partnerApiPostsExternal.CREATE", request)
        refused = self._check_post_fields(body)
        if refused:
            return refused
        shown, stored = self.render(body.get("commentary") or "")
        if self._length(shown) > self.config["commentary_max"]:
            return self.invalid("/commentary", f"length {self._length(shown)} exceeds the maximum of "
                                               f"{self.config['commentary_max']} characters", "MAX_LENGTH_EXCEEDED")
        media, refused = self._check_media(body.get("content"), token)
        if refused:
            return refused
        if not shown and media is None:
            return self.invalid("/commentary", "a post needs commentary or content", "MISSING_FIELD")
        duplicate = self._duplicate_of(body["author"], stored)
        if duplicate:
            return self.rest_error(422, "UNPROCESSABLE_ENTITY", f"Content is a duplicate of {duplicate}")
        kind = "ugcPost" if media else "share"
        urn = f"urn:li:{kind}:{7_100_000_000_000_000_000 + secrets.randbelow(10 ** 17)}"
        now_ms = int(self.now() * 1000)
        self.posts[urn] = {
            "id": urn, "author": body["author"], "commentary": stored, "visibility": body["visibility"],
            "distribution": body["distribution"], "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": bool(body.get("isReshareDisabledByAuthor", False)),
            "createdAt": now_ms, "lastModifiedAt": now_ms, "publishedAt": now_ms,
            **({"content": body["content"]} if media else {}),
        }
        self.published.append({"id": urn, "account": token.user, "user": token.user, "author": body["author"],
                               "caption": shown, "text": shown, "commentary": stored, "media": media,
                               "visibility": body["visibility"], "created_at": self.now()})
        return Response("", status=201, headers={"x-restli-id": urn, "Location": f"/rest/posts/{urn}"})

    def _check_post_fields(self, body: dict[str, Any]) -> Response | None:
        if body["visibility"] not in ("PUBLIC", "CONNECTIONS", "LOGGED_IN"):
            return self.invalid("/visibility", f"{body['visibility']!r} is not a valid visibility for a member post")
        distribution = body["distribution"]
        if not isinstance(distribution, dict) or distribution.get("feedDistribution") != "MAIN_FEED":
            return self.invalid("/distribution/feedDistribution", "member posts must use MAIN_FEED")
        for name in ("targetEntities", "thirdPartyDistributionChannels"):
            if not isinstance(distribution.get(name, []), list):
                return self.invalid(f"/distribution/{name}", "value must be an array")
        if body["lifecycleState"] != "PUBLISHED":
            return self.invalid("/lifecycleState", "member posts must be PUBLISHED")
        if not isinstance(body.get("isReshareDisabledByAuthor", False), bool):
            return self.invalid("/isReshareDisabledByAuthor", "value must be a boolean")
        if not isinstance(body.get("commentary", ""), str):
            return self.invalid("/commentary", "value must be a string")
        return None

    def _check_media(self, content: Any, token: TokenRecord) -> tuple[str | None, Response | None]:
        if content is None:
            return None, None
        if not isinstance(content, dict) or set(content) != {"media"} or not isinstance(content["media"], dict):
            return None, self.invalid("/content", "the sandbox supports content.media (one video) only")
        media_id = content["media"].get("id")
        if not isinstance(media_id, str) or not media_id.startswith("urn:li:video:"):
            return None, self.invalid("/content/media/id", "a urn:li:video URN is required")
        if not isinstance(content["media"].get("title", ""), str):
            return None, self.invalid("/content/media/title", "value must be a string")
        video = self.videos.get(media_id)
        if video is None:
            return None, self.invalid("/content/media/id", f"{media_id} does not exist")
        if video["user"] != token.user:
            return None, self.rest_error(403, "ACCESS_DENIED", "Accessing this video resource is forbidden for the "
                                                               "member")
        self._advance(video)
        if video["status"] != "AVAILABLE":
            return None, self.invalid("/content/media/id", f"{media_id} is not AVAILABLE (status {video['status']})")
        return media_id, None

    def _duplicate_of(self, author: str, commentary: str) -> str | None:
        if not commentary:
            return None
        since = (self.now() - self.config["duplicate_window"]) * 1000
        for post in self.posts.values():
            if post["author"] == author and post["commentary"] == commentary and post["createdAt"] >= since:
                return post["id"]
        return None

    @rest("GET", r"/rest/posts")
    def find_posts(self, request: Request, token: TokenRecord) -> Response:
        if request.args.get("q") != "author" or not request.args.get("author"):
            return self.rest_error(400, "BAD_REQUEST", "Finder q=author with an author is required")
        needed = self.config["posts_finder_scope"]
        author = request.args["author"]
        if (needed and needed not in token.scopes) or author != self.urn_of(token):
            return self.denied("partnerApiPostsExternal.FINDER-author", request)
        start, count = request.args.get("start", 0, type=int), min(request.args.get("count", 10, type=int), 100)
        key = "createdAt" if request.args.get("sortBy") == "CREATED" else "lastModifiedAt"
        mine = sorted((p for p in self.posts.values() if p["author"] == author), key=lambda p: p[key], reverse=True)
        return self.json({"paging": {"start": start, "count": count, "links": [], "total": len(mine)},
                          "elements": mine[start:start + count]})

    @rest("GET", r"/rest/posts/(?P<urn>[^/]+)")
    def get_post(self, request: Request, token: TokenRecord, urn: str) -> Response:
        post = self.posts.get(urn)
        return self.json(post) if post else self.rest_error(404, "NOT_FOUND", f"Post {urn} does not exist")

    @rest("DELETE", r"/rest/posts/(?P<urn>[^/]+)")
    def delete_post(self, request: Request, token: TokenRecord, urn: str) -> Response:
        post = self.posts.get(urn)
        if post is None:
            return self.rest_error(404, "NOT_FOUND", f"Post {urn} does not exist")
        if post["author"] != self.urn_of(token):
            return self.denied("partnerApiPostsExternal.DELETE", request)
        del self.posts[urn]
        return Response("", status=204)

    # ------------------------------------------------------------------ metrics
    @rest("GET", r"/rest/socialActions/(?P<urn>[^/]+)")
    def social_actions(self, request: Request, token: TokenRecord, urn: str) -> Response:
        needed = self.config["social_actions_scope"]
        if needed and needed not in token.scopes:
            return self.denied("partnerApiSocialActions.GET", request)
        if urn not in self.posts:
            return self.rest_error(404, "NOT_FOUND", f"Entity {urn} does not exist")
        counts = self._counts(self.posts[urn])
        likes, comments = counts["likes"], counts["comments"]
        return self.json({
            "target": urn, "$URN": f"urn:li:socialActions:{urn}",
            "likesSummary": {"totalLikes": likes, "aggregatedTotalLikes": likes, "likedByCurrentUser": False},
            "commentsSummary": {"aggregatedTotalComments": comments, "totalFirstLevelComments": comments},
        })

    # ------------------------------------------------------------------ comments
    @rest("POST", r"/rest/socialActions/(?P<urn>[^/]+)/comments")
    def create_comment(self, request: Request, token: TokenRecord, urn: str) -> Response:
        """A comment of the member (`actor`, w_member_social) on a post (`object`, the same URN as
        the path); answers 201 with the comment, whose `commentUrn` names it."""
        body, refused = self.json_body(request)
        if refused:
            return refused
        if not isinstance(body, dict):
            return self.invalid("/", "a JSON object is required")
        unknown = set(body) - {"actor", "object", "message", "content", "parentComment"}
        if unknown:
            return self.invalid(f"/{sorted(unknown)[0]}", "unrecognized field", "UNRECOGNIZED_FIELD")
        for name in ("actor", "object", "message"):
            if name not in body:
                return self.invalid(f"/{name}", "field is required but not found and has no default value",
                                    "MISSING_FIELD")
        if "w_member_social" not in token.scopes or body["actor"] != self.urn_of(token):
            return self.denied("partnerApiSocialActions.CREATE", request)
        if body["object"] != urn:
            return self.invalid("/object", "object must be the entity of the request path")
        post = self.posts.get(urn)
        if post is None:
            return self.rest_error(404, "NOT_FOUND", f"Entity {urn} does not exist")
        message = body["message"]
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(text, str) or not text.strip():
            return self.invalid("/message/text", "a comment needs text", "MISSING_FIELD")
        if self._length(text) > self.config["comment_max"]:
            return self.invalid("/message/text", f"length {self._length(text)} exceeds the maximum of "
                                                 f"{self.config['comment_max']} characters", "MAX_LENGTH_EXCEEDED")
        activity = self.activities.setdefault(
            urn, f"urn:li:activity:{7_300_000_000_000_000_000 + secrets.randbelow(10 ** 17)}")
        comment_id = str(7_400_000_000_000_000_000 + secrets.randbelow(10 ** 17))
        now_ms = int(self.now() * 1000)
        comment = {"actor": body["actor"], "commentUrn": f"urn:li:comment:({activity},{comment_id})", "id": comment_id,
                   "object": urn, "message": {"text": text, "attributes": []},
                   "created": {"actor": body["actor"], "time": now_ms},
                   "lastModified": {"actor": body["actor"], "time": now_ms}}
        self.comments.append(comment)
        counts = self.engagement.setdefault(urn, {})
        counts["comments"] = counts.get("comments", 0) + 1
        return self.json(comment, status=201, headers={"x-restli-id": comment["commentUrn"]})

    @rest("GET", r"/rest/socialActions/(?P<urn>[^/]+)/comments")
    def list_comments(self, request: Request, token: TokenRecord, urn: str) -> Response:
        needed = self.config["social_actions_scope"]
        if needed and needed not in token.scopes:
            return self.denied("partnerApiSocialActions.GET_ALL", request)
        if urn not in self.posts:
            return self.rest_error(404, "NOT_FOUND", f"Entity {urn} does not exist")
        start, count = request.args.get("start", 0, type=int), min(request.args.get("count", 10, type=int), 100)
        found = [c for c in reversed(self.comments) if c["object"] == urn]
        return self.json({"paging": {"start": start, "count": count, "links": [], "total": len(found)},
                          "elements": found[start:start + count]})

    @rest("GET", r"/rest/memberCreatorPostAnalytics")
    def member_post_analytics(self, request: Request, token: TokenRecord) -> Response:
        if "r_member_postAnalytics" not in token.scopes:
            return self.denied("memberCreatorPostAnalytics.FINDER-entity", request)
        query_type, aggregation = request.args.get("queryType"), request.args.get("aggregation")
        if query_type not in METRIC_TYPES or aggregation not in ("TOTAL", "DAILY"):
            return self.rest_error(400, "BAD_REQUEST", "queryType and aggregation are required: queryType one of "
                                                       f"{', '.join(METRIC_TYPES)}, aggregation TOTAL or DAILY")
        if request.args.get("q") != "entity":
            return self.rest_error(400, "BAD_REQUEST", "Only the q=entity finder is modelled")
        match = re.fullmatch(r"\((share|ugc):(urn:li:(share|ugcPost):\d+)\)", request.args.get("entity", ""))
        if not match or (match.group(1) == "ugc") != (match.group(3) == "ugcPost"):
            return self.rest_error(400, "BAD_REQUEST", "entity must be (share:<share urn>) or (ugc:<ugcPost urn>)")
        post = self.posts.get(match.group(2))
        if post is None or post["author"] != self.urn_of(token):
            return self.denied("memberCreatorPostAnalytics.FINDER-entity", request)
        counts = self._counts(post)
        count = {"IMPRESSION": counts["impressions"], "MEMBERS_REACHED": counts["reached"],
                 "RESHARE": counts["shares"], "REACTION": counts["likes"], "COMMENT": counts["comments"]}[query_type]
        metric = {"com.linkedin.adsexternalapi.memberanalytics.v1.CreatorPostAnalyticsMetricTypeV1": query_type}
        return self.json({"paging": {"start": 0, "count": 10, "links": []},
                          "elements": [{"count": count, "metricType": metric,
                                        "targetEntity": {match.group(1): post["id"]}}]})
