"""Emulated TikTok: Login Kit v2 and the Content Posting API, strict about its contract.

Model: creators (sandbox users with their posting options), publishes with their upload progress
and processing state, and the published posts. Login Kit is the shared OAuth server
(`bridge.sandbox.oauth`) declared the TikTok way: `client_key`, comma-separated scopes, the hex
PKCE challenge, refresh tokens that rotate, revocation that ends the grant, errors answered with
HTTP 200 by default (`oauth_error_status`). Routes answer in TikTok's shapes:
the flat OAuth JSON and `{"error","error_description","log_id"}` errors on the OAuth endpoints,
`{"data":…, "error":{"code","message","log_id"}}` everywhere else, and bare statuses with a
`Content-Range` progress header on the upload host.

Processing moves with the sandbox clock (`processing_seconds`, then `moderation_seconds` until a
public post gets its post id) or at once with `process()`. Uploaded bytes are counted, never kept:
only the head of the first chunk is read, to find the MP4 header and its duration.
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.wrappers import Request, Response

from bridge.platforms.media import mp4_duration
from bridge.sandbox.audience import organic
from bridge.sandbox.core import Emulator, TokenRecord, route
from bridge.sandbox.oauth import OAuthSpec

SCOPES = ("user.info.basic", "user.info.profile", "user.info.stats", "video.upload", "video.publish", "video.list")
USER_FIELDS = {
    "open_id": "user.info.basic", "union_id": "user.info.basic", "avatar_url": "user.info.basic",
    "avatar_url_100": "user.info.basic", "avatar_large_url": "user.info.basic", "display_name": "user.info.basic",
    "bio_description": "user.info.profile", "profile_deep_link": "user.info.profile",
    "is_verified": "user.info.profile", "username": "user.info.profile", "follower_count": "user.info.stats",
    "following_count": "user.info.stats", "likes_count": "user.info.stats", "video_count": "user.info.stats",
}
VIDEO_FIELDS = ("id", "title", "create_time", "cover_image_url", "share_url", "view_count", "like_count",
                "comment_count", "share_count", "duration", "width", "height", "embed_link", "video_description")
VIDEO_POST_INFO = {"title": str, "privacy_level": str, "disable_duet": bool, "disable_comment": bool,
                   "disable_stitch": bool, "video_cover_timestamp_ms": int, "brand_content_toggle": bool,
                   "brand_organic_toggle": bool, "is_aigc": bool}
PHOTO_POST_INFO = {"title": str, "description": str, "privacy_level": str, "disable_comment": bool,
                   "auto_add_music": bool, "brand_content_toggle": bool, "brand_organic_toggle": bool}
PUBLIC_OPTIONS = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
PRIVATE_OPTIONS = ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
UPLOAD_TYPES = ("video/mp4", "video/quicktime", "video/webm")
# HTTP status of each named API error (creator_info answers the posting caps with 200, see below)
ERROR_STATUS = {
    "access_token_invalid": 401, "scope_not_authorized": 401, "scope_permission_missed": 400,
    "invalid_params": 400, "invalid_param": 400, "invalid_file_upload": 400, "rate_limit_exceeded": 429,
    "internal_error": 500, "spam_risk_too_many_posts": 403, "spam_risk_user_banned_from_posting": 403,
    "reached_active_user_cap": 403, "unaudited_client_can_only_post_to_private_accounts": 403,
    "url_ownership_unverified": 403, "privacy_level_option_mismatch": 403, "invalid_publish_id": 400,
    "token_not_authorized_for_specified_publish_id": 400, "publish_not_cancellable": 400,
    "spam_risk_too_many_pending_share": 403, "app_version_check_failed": 400,
}
CAP_ERRORS = ("spam_risk_too_many_posts", "spam_risk_user_banned_from_posting", "reached_active_user_cap")
OAUTH_ERRORS = ("access_denied", "invalid_client", "invalid_grant", "invalid_request", "invalid_scope",
                "unauthorized_client", "unsupported_grant_type", "unsupported_response_type", "server_error",
                "temporarily_unavailable")
FAIL_REASONS = ("file_format_check_failed", "duration_check_failed", "frame_rate_check_failed",
                "picture_size_check_failed", "internal", "video_pull_failed", "photo_pull_failed",
                "publish_cancelled", "auth_removed", "spam_risk_too_many_posts", "spam_risk_user_banned_from_posting",
                "spam_risk_text", "spam_risk")
_SNIFF = 64 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class TikTokEmulator(Emulator):
    platform = "tiktok"
    hosts = ("www.tiktok.com", "open.tiktokapis.com", "open-upload.tiktokapis.com")
    oauth_spec = OAuthSpec(
        authorize_path="/v2/auth/authorize/", token_path="/v2/oauth/token/", revoke_path="/v2/oauth/revoke/",
        client_param="client_key", scope_separator=",", known_scopes=frozenset(SCOPES),
        # TikTok's desktop flow: the S256 challenge is the hex SHA-256 of the verifier
        pkce_methods=("S256",), pkce_hex=True, access_prefix="act.", refresh_prefix="rft.", token_bytes=24)
    # status None: `oauth_error_status` (TikTok answers OAuth errors with 200 by default)
    oauth_errors = {
        "unknown_client": (400, "invalid_client", "client_key is not registered.", "json"),
        "bad_redirect_uri": (400, "invalid_request", "redirect_uri must be an absolute URL without fragment.", "json"),
        "invalid_scope": (400, "invalid_scope", "scope must be a comma-separated list of known scopes."),
        "bad_pkce_method": (400, "invalid_request", "code_challenge_method must be S256."),
        "invalid_client": (None, "invalid_client", "Client key or secret is invalid."),
        "missing_client": (None, "invalid_request", "client_key is required."),
        "missing_param": (None, "invalid_request", "{param} is required."),
        "bad_content_type": (None, "invalid_request", "Content-Type must be application/x-www-form-urlencoded."),
        "missing_grant_type": (None, "invalid_request", "grant_type is required."),
        "unsupported_grant_type": (None, "unsupported_grant_type", "grant_type is not supported."),
        "code_invalid": (None, "invalid_grant", "Authorization code is invalid."),
        "code_used": (None, "invalid_grant", "Authorization code has been used."),
        "code_expired": (None, "invalid_grant", "Authorization code is expired."),
        "redirect_mismatch": (None, "invalid_grant", "redirect_uri does not match the authorization request."),
        "verifier_missing": (None, "invalid_request", "Code verifier or code challenge is invalid."),
        "verifier_mismatch": (None, "invalid_request", "Code verifier or code challenge is invalid."),
        "refresh_invalid": (None, "invalid_grant", "Refresh token is invalid or expired."),
    }
    defaults = {
        # registered apps (client_key -> secret); tests add theirs with register_app()
        "apps": {"sandbox-tiktok-client": "sandbox-tiktok-secret"},
        # an unknown client_key is registered when first seen and held to the secret of its first
        # token call (so any configured credentials work); False: only the registered apps
        "auto_register": True,
        "app_name": "AuraReels",
        "code_ttl": 60,  # unconfirmed: short, to catch slow exchanges
        "access_token_ttl": 7200,  # the newer 2 h; the older docs say 86400
        "refresh_token_ttl": 180 * 86400,  # the newer 180 d; the older docs say 365 d
        "oauth_error_status": 200,  # unconfirmed; 200 + error catches clients that read the status only
        "withheld_scopes": [],  # scopes the sandbox user unticks on the consent page
        "rotate_refresh_tokens": True,
        "rate_creator_info_per_min": 20,
        "rate_init_per_min": 6,
        "rate_status_per_min": 30,
        "daily_post_cap": 15,  # per creator, rolling 24 h (unconfirmed number)
        "active_user_cap": None,  # per app, distinct posting creators per 24 h
        # an app TikTok has not audited: it may post only to private accounts, only as SELF_ONLY
        # (creator_info offers nothing else), to at most `unaudited_user_cap` creators a day
        "unaudited": False,
        "unaudited_user_cap": 5,
        "verified_url_prefixes": ["https://media.sandbox.aurareels.test/"],
        "upload_url_ttl": 3600,
        "min_chunk": 5_000_000,
        "max_chunk": 64_000_000,
        "max_last_chunk": 128_000_000,
        "max_chunks": 1000,
        "max_video_bytes": 4_000_000_000,
        "max_video_post_duration_sec": 600,  # for new creators; set_creator() changes one
        "title_max_units": 2200,
        "photo_title_max_units": 90,
        "photo_description_max_units": 4000,
        "max_photos": 35,
        "pending_share_cap": 5,
        "processing_seconds": 10,
        "moderation_seconds": 20,
        "fail_next_with": None,  # a fail_reason: the next publish to finish processing fails with it
    }

    # ------------------------------------------------------------------------------ state
    def reset(self) -> None:
        super().reset()
        self.config = copy.deepcopy(self.defaults)
        self.users: dict[str, dict[str, Any]] = {}
        self.publishes: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, str] = {}
        self.calls: dict[tuple[str, str], deque[float]] = {}
        self.post_times: dict[str, list[float]] = {}
        self.webhooks: list[dict[str, Any]] = []
        self._next_post = 7400000000000000001

    def register_app(self, client_key: str, client_secret: str | None) -> None:
        self.config["apps"] = {**self.config["apps"], client_key: client_secret}

    def set_creator(self, name: str, **attrs: Any) -> dict[str, Any]:
        """Change a sandbox creator: private, banned, max_video_post_duration_sec,
        comment_disabled, duet_disabled, stitch_disabled, display_name, username."""
        user = self._user(name)
        unknown = set(attrs) - set(user)
        if unknown:
            raise KeyError(f"unknown creator attributes: {', '.join(sorted(unknown))}")
        user.update(attrs)
        return user

    def set_metrics(self, post_id: str, **counts: int) -> None:
        """Counts the post's audience gave so far (view_count, like_count, ...); the organic
        growth of `bridge.sandbox.audience` adds to them as the post ages."""
        post = self._post(str(post_id))
        if post is None:
            raise KeyError(post_id)
        post["metrics"].update(counts)

    def issue_token(self, user: str = "creator1", scopes: tuple[str, ...] = SCOPES,
                    client_key: str | None = None) -> dict[str, Any]:
        """Tokens as the token endpoint would issue them after a consent (for tests)."""
        return self.oauth.issue(client_key or next(iter(self.config["apps"])), self._user(user)["name"], list(scopes))

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "publishes": copy.deepcopy(self.publishes), "webhooks": list(self.webhooks)}

    def _user(self, name: str) -> dict[str, Any]:
        if name not in self.users:
            digest = hashlib.sha256(name.encode()).hexdigest()
            self.users[name] = {
                "name": name, "open_id": f"-000{digest[:28]}", "union_id": f"u{digest[28:52]}",
                "display_name": name.replace("_", " ").title(), "username": name,
                "avatar_url": f"https://p16-sign.tiktokcdn-us.com/sandbox/{name}.jpeg",
                "private": False, "banned": False,
                "max_video_post_duration_sec": self.config["max_video_post_duration_sec"],
                "comment_disabled": False, "duet_disabled": False, "stitch_disabled": False,
            }
        return self.users[name]

    # ------------------------------------------------------------------------------ answers
    @staticmethod
    def log_id() -> str:
        return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()

    def api(self, data: Any = None, status: int = 200, headers: dict | None = None) -> Response:
        return self.json({"data": data if data is not None else {},
                          "error": {"code": "ok", "message": "", "log_id": self.log_id()}}, status, headers)

    def api_error(self, code: str, message: str, status: int | None = None, headers: dict | None = None) -> Response:
        return self.json({"data": {}, "error": {"code": code, "message": message, "log_id": self.log_id()}},
                         ERROR_STATUS.get(code, 400) if status is None else status, headers)

    def oauth_error(self, error: str, description: str, status: int | None = None) -> Response:
        return self.json({"error": error, "error_description": description, "log_id": self.log_id()},
                         self.config["oauth_error_status"] if status is None else status)

    def error_response(self, name: str, request: Request) -> Response:
        if request.path.startswith("/v2/oauth/"):
            return self.oauth_error(name if name in OAUTH_ERRORS else "invalid_request", f"sandbox fault: {name}")
        status = 200 if request.path.endswith("/creator_info/query/") and name in CAP_ERRORS else None
        return self.api_error(name, f"sandbox fault: {name}", status)

    def not_found(self, request: Request) -> Response:
        return self.api_error("not_found", f"No API at {request.path} (paths end with '/').", 404)

    def method_not_allowed(self, request: Request) -> Response:
        return self.api_error("method_not_allowed", f"{request.method} is not allowed on {request.path}.", 405)

    def server_error(self, status: int, request: Request) -> Response:
        return self.api_error("internal_error", "Something went wrong. Please try again later.", status)

    def rate_limited(self, retry_after: float, request: Request) -> Response:
        return self.api_error("rate_limit_exceeded", "The API rate limit was exceeded. Please try again later.", 429,
                              {"Retry-After": str(int(retry_after))})

    # ------------------------------------------------------------------------------ OAuth hooks
    def oauth_user(self, login: str) -> str:
        return self._user(login)["name"]

    def oauth_code(self) -> str:
        # real codes carry characters that must be URL-decoded before the exchange
        return f"{secrets.token_urlsafe(24)}*!{secrets.token_hex(3)}"

    def oauth_redirect_extra(self, scopes: list[str]) -> dict[str, str]:
        return {"scopes": ",".join(scopes)}

    def oauth_answer(self, body: dict[str, Any], grant: Any, refresh: Any, exchange: bool) -> dict[str, Any]:
        body = {**body, "open_id": self._user(grant.user)["open_id"]}
        if refresh is not None:
            body["refresh_expires_in"] = int(self.config["refresh_token_ttl"])
        return body

    # ------------------------------------------------------------------------------ API guards
    def _bearer(self, request: Request, *scopes: str) -> TokenRecord | Response:
        """The token record of a v2 API call, or its 401. `scopes`: any one of them suffices."""
        header = request.headers.get("Authorization", "")
        record = self.oauth.access(header[7:].strip() if header.startswith("Bearer ") else "")
        if record is None:
            return self.api_error("access_token_invalid", "The access token is invalid or not found in the request.")
        if scopes and not any(s in record.scopes for s in scopes):
            return self.api_error("scope_not_authorized",
                                  "The user did not authorize the scope required for completing this request.")
        return record

    def _body(self, request: Request, allow_empty: bool = False) -> dict[str, Any] | Response:
        if request.mimetype != "application/json":
            return self.api_error("invalid_params", "Content-Type must be application/json; charset=UTF-8.")
        raw = request.get_data()
        if not raw.strip() and allow_empty:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            return self.api_error("invalid_params", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self.api_error("invalid_params", "The request body must be a JSON object.")
        return body

    def _throttle(self, record: TokenRecord, bucket: str, limit_key: str) -> Response | None:
        window = self.calls.setdefault((record.token, bucket), deque())
        now = self.now()
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.config[limit_key]:
            return self.api_error("rate_limit_exceeded", "The API rate limit was exceeded. Please try again later.")
        window.append(now)
        return None

    def _posting_block(self, user: dict[str, Any]) -> str | None:
        """The named reason this creator may not post now, if any."""
        if user["banned"]:
            return "spam_risk_user_banned_from_posting"
        now = self.now()
        times = [t for t in self.post_times.get(user["name"], []) if t > now - 86400]
        self.post_times[user["name"]] = times
        if len(times) >= self.config["daily_post_cap"]:
            return "spam_risk_too_many_posts"
        cap = self.config["unaudited_user_cap"] if self.config["unaudited"] else self.config["active_user_cap"]
        if cap is not None:
            active = {name for name, ts in self.post_times.items() if any(t > now - 86400 for t in ts)}
            if user["name"] not in active and len(active) >= cap:
                return "reached_active_user_cap"
        return None

    def _options(self, user: dict[str, Any]) -> list[str]:
        if self.config["unaudited"]:
            return ["SELF_ONLY"]
        return list(PRIVATE_OPTIONS if user["private"] else PUBLIC_OPTIONS)

    # ------------------------------------------------------------------------------ user, creator
    @route("GET", r"/v2/user/info/")
    def user_info(self, request: Request) -> Response:
        record = self._bearer(request, "user.info.basic")
        if isinstance(record, Response):
            return record
        fields = [f for f in (request.args.get("fields") or "").split(",") if f]
        if not fields or any(f not in USER_FIELDS for f in fields):
            return self.api_error("invalid_params", "fields must list known user fields.")
        if any(USER_FIELDS[f] not in record.scopes for f in fields):
            return self.api_error("scope_not_authorized",
                                  "The user did not authorize the scope required for completing this request.")
        user = self._user(record.user)
        values = {**user, "avatar_url_100": user["avatar_url"], "avatar_large_url": user["avatar_url"],
                  "bio_description": "", "profile_deep_link": f"https://vm.tiktok.com/sandbox-{user['name']}/",
                  "is_verified": False, "follower_count": 0, "following_count": 0, "likes_count": 0,
                  "video_count": sum(1 for p in self.published if p["user"] == user["name"])}
        return self.api({"user": {f: values[f] for f in fields}})

    @route("POST", r"/v2/post/publish/creator_info/query/")
    def creator_info(self, request: Request) -> Response:
        record = self._bearer(request, "video.publish")
        if isinstance(record, Response):
            return record
        body = self._body(request, allow_empty=True)
        if isinstance(body, Response):
            return body
        limited = self._throttle(record, "creator_info", "rate_creator_info_per_min")
        if limited:
            return limited
        user = self._user(record.user)
        blocked = self._posting_block(user)
        if blocked:  # TikTok answers these with HTTP 200 here, on purpose
            return self.api_error(blocked, _BLOCK_MESSAGES[blocked], 200)
        return self.api({
            "creator_avatar_url": user["avatar_url"], "creator_username": user["username"],
            "creator_nickname": user["display_name"], "privacy_level_options": self._options(user),
            "comment_disabled": user["comment_disabled"], "duet_disabled": user["duet_disabled"],
            "stitch_disabled": user["stitch_disabled"],
            "max_video_post_duration_sec": user["max_video_post_duration_sec"],
        })

    # ------------------------------------------------------------------------------ direct post
    def _check_post_info(self, info: Any, allowed: dict[str, type], user: dict[str, Any],
                         limits: dict[str, int], direct: bool = True) -> Response | None:
        if not isinstance(info, dict):
            return self.api_error("invalid_param", "post_info is required.")
        for key, value in info.items():
            kind = allowed.get(key)
            if kind is None:
                return self.api_error("invalid_param", f"post_info.{key} is not a known field.")
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                return self.api_error("invalid_param", f"post_info.{key} must be a {kind.__name__}.")
        for key, limit in limits.items():
            if _utf16(info.get(key, "")) > limit:
                return self.api_error("invalid_param", f"post_info.{key} exceeds {limit} UTF-16 runes.")
        if direct and info.get("privacy_level") not in self._options(user):
            return self.api_error("privacy_level_option_mismatch",
                                  "privacy_level is missing or not one of the creator's privacy_level_options.")
        if info.get("brand_content_toggle") is True and info.get("privacy_level") == "SELF_ONLY":
            return self.api_error("invalid_param", "Branded content cannot be private: privacy_level SELF_ONLY is not "
                                                   "allowed with brand_content_toggle.")
        return None

    def _verified(self, url: Any) -> bool:
        if not isinstance(url, str):
            return False
        parts = urlsplit(url)
        try:
            ipaddress.ip_address(parts.hostname or "")
            return False  # IP hosts cannot be verified
        except ValueError:
            pass
        return parts.scheme == "https" and any(url.startswith(p) for p in self.config["verified_url_prefixes"])

    def _gate(self, record: TokenRecord, user: dict[str, Any], bucket: str) -> Response | None:
        limited = self._throttle(record, bucket, "rate_init_per_min")
        if limited:
            return limited
        blocked = self._posting_block(user)
        if blocked:
            return self.api_error(blocked, _BLOCK_MESSAGES[blocked])
        if self.config["unaudited"] and not user["private"]:
            return self.api_error("unaudited_client_can_only_post_to_private_accounts",
                                  "Unaudited clients can only post to private accounts.")
        return None

    @route("POST", r"/v2/post/publish/video/init/")
    def video_init(self, request: Request) -> Response:
        record = self._bearer(request, "video.publish")
        if isinstance(record, Response):
            return record
        body = self._body(request)
        if isinstance(body, Response):
            return body
        user = self._user(record.user)
        gated = self._gate(record, user, "video_init")
        if gated:
            return gated
        unknown = set(body) - {"post_info", "source_info"}
        if unknown:
            return self.api_error("invalid_param", f"Unknown field {sorted(unknown)[0]}.")
        info = body.get("post_info")
        bad = self._check_post_info(info, VIDEO_POST_INFO, user, {"title": self.config["title_max_units"]})
        if bad:
            return bad
        source = body.get("source_info")
        checked = self._check_video_source(source)
        if isinstance(checked, Response):
            return checked
        return self._create(record, user, info, source, kind="video")

    def _check_video_source(self, source: Any) -> Response | None:
        if not isinstance(source, dict):
            return self.api_error("invalid_param", "source_info is required.")
        kind = source.get("source")
        if kind == "PULL_FROM_URL":
            if set(source) != {"source", "video_url"}:
                return self.api_error("invalid_param", "PULL_FROM_URL takes source and video_url only.")
            if not self._verified(source["video_url"]):
                return self.api_error("url_ownership_unverified",
                                      "The video_url's domain or URL prefix is not verified for this app.")
            return None
        if kind != "FILE_UPLOAD":
            return self.api_error("invalid_param", "source must be FILE_UPLOAD or PULL_FROM_URL.")
        fields = ("video_size", "chunk_size", "total_chunk_count")
        if set(source) != {"source", *fields}:
            return self.api_error("invalid_param", "FILE_UPLOAD takes source, video_size, chunk_size and "
                                                   "total_chunk_count.")
        if any(not isinstance(source[f], int) or isinstance(source[f], bool) or source[f] <= 0 for f in fields):
            return self.api_error("invalid_param", "video_size, chunk_size and total_chunk_count must be positive "
                                                   "integers.")
        problem = self._chunk_problem(source["video_size"], source["chunk_size"], source["total_chunk_count"])
        return self.api_error("invalid_param", problem) if problem else None

    def _chunk_problem(self, size: int, chunk: int, count: int) -> str | None:
        c = self.config
        if size > c["max_video_bytes"]:
            return f"video_size exceeds {c['max_video_bytes']} bytes."
        if size < c["min_chunk"]:
            if chunk != size or count != 1:
                return "A video under 5 MB must be uploaded whole: chunk_size = video_size, total_chunk_count = 1."
            return None
        if chunk < c["min_chunk"] or chunk > c["max_chunk"] or chunk > size:
            return "chunk_size must be between 5 MB and 64 MB and not above video_size."
        if count != size // chunk:
            return "total_chunk_count must be video_size / chunk_size rounded down."
        if count > c["max_chunks"]:
            return f"At most {c['max_chunks']} chunks."
        if size - (count - 1) * chunk > c["max_last_chunk"]:
            return "The last chunk may not exceed 128 MB."
        return None

    def _create(self, record: TokenRecord, user: dict[str, Any], info: dict[str, Any], source: dict[str, Any],
                kind: str, post_mode: str = "DIRECT_POST") -> Response:
        now = self.now()
        pull = source["source"] == "PULL_FROM_URL"
        prefix = ("v" if kind == "video" else "p") + ("_pub_" if post_mode == "DIRECT_POST" else "_inbox_") + \
            ("url~" if pull else "file~")
        publish_id = f"{prefix}v2-1.{secrets.randbelow(10 ** 18):018d}"
        privacy = info.get("privacy_level", "SELF_ONLY")
        pub: dict[str, Any] = {
            "publish_id": publish_id, "user": user["name"], "open_id": user["open_id"],
            "client_key": record.client_id, "kind": "photo" if kind != "video" else "video", "post_mode": post_mode,
            "source": source["source"], "status": "PROCESSING_DOWNLOAD" if pull else "PROCESSING_UPLOAD",
            "fail_reason": "", "created_at": now, "ready_at": now + self.config["processing_seconds"] if pull else None,
            "public_at": None, "post_id": None, "post_ids": [], "uploaded_bytes": 0, "downloaded_bytes": 0,
            "title": info.get("title", ""), "description": info.get("description", ""),
            "privacy_level": privacy,
            "disable_comment": bool(info.get("disable_comment")) or user["comment_disabled"],
            "disable_duet": bool(info.get("disable_duet")) or user["duet_disabled"],
            "disable_stitch": bool(info.get("disable_stitch")) or user["stitch_disabled"],
            "video_url": source.get("video_url"), "photo_images": source.get("photo_images"),
            "video_size": source.get("video_size"), "chunk_size": source.get("chunk_size"),
            "total_chunk_count": source.get("total_chunk_count"), "duration": _url_duration(source.get("video_url")),
            "head": None, "max_duration": user["max_video_post_duration_sec"],
        }
        self.publishes[publish_id] = pub
        if post_mode == "DIRECT_POST":  # inbox shares are drafts, not posts
            self.post_times.setdefault(user["name"], []).append(now)
        data: dict[str, Any] = {"publish_id": publish_id}
        if not pull:
            upload_id = str(secrets.randbelow(10 ** 15))
            token = secrets.token_urlsafe(18)
            pub.update(upload_id=upload_id, upload_token=token, upload_expires_at=now + self.config["upload_url_ttl"])
            self.uploads[upload_id] = publish_id
            data["upload_url"] = f"https://open-upload.tiktokapis.com/video/?upload_id={upload_id}&upload_token={token}"
        return self.api(data)

    @route("POST", r"/v2/post/publish/content/init/")
    def content_init(self, request: Request) -> Response:
        record = self._bearer(request, "video.publish", "video.upload")
        if isinstance(record, Response):
            return record
        body = self._body(request)
        if isinstance(body, Response):
            return body
        mode = body.get("post_mode")
        if (mode == "MEDIA_UPLOAD" and "video.upload" not in record.scopes) or \
                (mode != "MEDIA_UPLOAD" and "video.publish" not in record.scopes):
            return self.api_error("scope_not_authorized",
                                  "The user did not authorize the scope required for completing this request.")
        user = self._user(record.user)
        gated = self._gate(record, user, "content_init")
        if gated:
            return gated
        unknown = set(body) - {"post_info", "source_info", "post_mode", "media_type"}
        if unknown:
            return self.api_error("invalid_param", f"Unknown field {sorted(unknown)[0]}.")
        if body.get("media_type") != "PHOTO":
            return self.api_error("invalid_param", "media_type must be PHOTO.")
        if mode not in ("DIRECT_POST", "MEDIA_UPLOAD"):
            return self.api_error("invalid_param", "post_mode must be DIRECT_POST or MEDIA_UPLOAD.")
        info = body.get("post_info")
        bad = self._check_post_info(info, PHOTO_POST_INFO, user, {"title": self.config["photo_title_max_units"],
                                                                  "description": self.config[
                                                                      "photo_description_max_units"]},
                                    direct=mode == "DIRECT_POST")
        if bad:
            return bad
        source = body.get("source_info")
        if not isinstance(source, dict) or source.get("source") != "PULL_FROM_URL" or \
                set(source) - {"source", "photo_images", "photo_cover_index"}:
            return self.api_error("invalid_param", "Photos take source PULL_FROM_URL, photo_images and "
                                                   "photo_cover_index.")
        images = source.get("photo_images")
        if not isinstance(images, list) or not 1 <= len(images) <= self.config["max_photos"]:
            return self.api_error("invalid_param", f"photo_images must hold 1 to {self.config['max_photos']} URLs.")
        cover = source.get("photo_cover_index", 0)
        if not isinstance(cover, int) or isinstance(cover, bool) or not 0 <= cover < len(images):
            return self.api_error("invalid_param", "photo_cover_index must index photo_images (0-based).")
        if not all(self._verified(u) for u in images):
            return self.api_error("url_ownership_unverified",
                                  "A photo URL's domain or URL prefix is not verified for this app.")
        if mode == "MEDIA_UPLOAD" and self._too_many_pending(user):
            return self.api_error("spam_risk_too_many_pending_share", "Too many pending shares.")
        return self._create(record, user, info, source, kind="photo", post_mode=mode)

    @route("POST", r"/v2/post/publish/inbox/video/init/")
    def inbox_video_init(self, request: Request) -> Response:
        record = self._bearer(request, "video.upload")
        if isinstance(record, Response):
            return record
        body = self._body(request)
        if isinstance(body, Response):
            return body
        user = self._user(record.user)
        limited = self._throttle(record, "inbox_init", "rate_init_per_min")
        if limited:
            return limited
        if set(body) != {"source_info"}:
            return self.api_error("invalid_param", "The inbox upload takes source_info only.")
        checked = self._check_video_source(body["source_info"])
        if isinstance(checked, Response):
            return checked
        if self._too_many_pending(user):
            return self.api_error("spam_risk_too_many_pending_share", "Too many pending shares.")
        return self._create(record, user, {}, body["source_info"], kind="video", post_mode="MEDIA_UPLOAD")

    def _too_many_pending(self, user: dict[str, Any]) -> bool:
        """At most `pending_share_cap` inbox shares waiting for the creator per 24 h."""
        pending = [p for p in self.publishes.values() if p["user"] == user["name"] and p["post_mode"] == "MEDIA_UPLOAD"
                   and p["status"] != "FAILED" and p["created_at"] > self.now() - 86400]
        return len(pending) >= self.config["pending_share_cap"]

    # ------------------------------------------------------------------------------ file transfer
    @route("PUT", r"/video/")
    def upload_chunk(self, request: Request) -> Response:
        # the body is always read first (counted, not kept): the server answers after it
        pub = self.publishes.get(self.uploads.get(request.args.get("upload_id", ""), ""))
        head, received = self._read_body(request, sniff=pub is not None and pub["uploaded_bytes"] == 0)
        if pub is None or not hmac.compare_digest(pub["upload_token"], request.args.get("upload_token", "")):
            return self.api_error("not_found", "No upload task for this upload_url.", 404)
        total = pub["video_size"]
        progress = {"Content-Range": _progress(pub["uploaded_bytes"], total)}
        if self.now() > pub["upload_expires_at"]:
            return self.api_error("upload_url_expired", "The upload_url has expired.", 403)
        if (request.mimetype or "") not in UPLOAD_TYPES:
            return self.api_error("invalid_params", "Content-Type must be video/mp4, video/quicktime or video/webm.",
                                  400, progress)
        match = _CONTENT_RANGE.fullmatch(request.headers.get("Content-Range", ""))
        length = request.headers.get("Content-Length", "")
        if not match or not length.isdigit():
            return self.api_error("invalid_params", "Content-Range (bytes first-last/total) and Content-Length are "
                                                    "required.", 400, progress)
        first, last, declared_total = (int(g) for g in match.groups())
        if declared_total != total or last < first or int(length) != last - first + 1 or received != int(length):
            return self.api_error("invalid_params", "Content-Range, Content-Length and the body do not agree with "
                                                    "each other or with video_size.", 400, progress)
        if pub["status"] != "PROCESSING_UPLOAD" or pub["ready_at"] is not None or first != pub["uploaded_bytes"]:
            return self.api_error("invalid_params", "Content-Range is inconsistent with the upload progress; chunks "
                                                    "go in order, once each.", 416, progress)
        index = first // pub["chunk_size"]
        expected_last = total - 1 if index == pub["total_chunk_count"] - 1 else first + pub["chunk_size"] - 1
        if last != expected_last:
            return self.api_error("invalid_params", f"This chunk must cover bytes {first}-{expected_last}.", 400,
                                  progress)
        if first == 0:
            pub["head"] = _sniff(head)
        pub["uploaded_bytes"] = last + 1
        headers = {"Content-Range": _progress(pub["uploaded_bytes"], total)}
        if pub["uploaded_bytes"] < total:
            return Response("", status=206, headers=headers)
        pub["ready_at"] = self.now() + self.config["processing_seconds"]
        return Response("", status=201, headers=headers)

    @staticmethod
    def _read_body(request: Request, sniff: bool) -> tuple[bytes, int]:
        head = bytearray()
        count = 0
        while True:
            piece = request.stream.read(256 * 1024)
            if not piece:
                break
            if sniff and len(head) < _SNIFF:
                head += piece[:_SNIFF - len(head)]
            count += len(piece)
        return bytes(head), count

    # ------------------------------------------------------------------------------ status
    @route("POST", r"/v2/post/publish/status/fetch/")
    def status_fetch(self, request: Request) -> Response:
        found = self._owned_publish(request, "status", "rate_status_per_min")
        if isinstance(found, Response):
            return found
        pub = found
        self._advance(pub)
        return self.api({"status": pub["status"], "fail_reason": pub["fail_reason"],
                         "publicaly_available_post_id": [int(i) for i in pub["post_ids"]],
                         "uploaded_bytes": pub["uploaded_bytes"], "downloaded_bytes": pub["downloaded_bytes"]})

    @route("POST", r"/v2/post/publish/cancel/")
    def cancel(self, request: Request) -> Response:
        found = self._owned_publish(request, "cancel", "rate_status_per_min")
        if isinstance(found, Response):
            return found
        self._advance(found)
        if found["status"] != "PROCESSING_DOWNLOAD":
            return self.api_error("publish_not_cancellable", "This publish can no longer be cancelled.")
        self._fail(found, "publish_cancelled")
        return self.api()

    def _owned_publish(self, request: Request, bucket: str, limit_key: str) -> dict[str, Any] | Response:
        record = self._bearer(request, "video.publish", "video.upload")
        if isinstance(record, Response):
            return record
        body = self._body(request)
        if isinstance(body, Response):
            return body
        limited = self._throttle(record, bucket, limit_key)
        if limited:
            return limited
        publish_id = body.get("publish_id")
        if not isinstance(publish_id, str) or set(body) != {"publish_id"}:
            return self.api_error("invalid_params", "publish_id is required.")
        pub = self.publishes.get(publish_id)
        if pub is None:
            return self.api_error("invalid_publish_id", "The publish_id does not exist.")
        if pub["user"] != record.user or pub["client_key"] != record.client_id:
            return self.api_error("token_not_authorized_for_specified_publish_id",
                                  "The access token is not authorized for this publish_id.")
        return pub

    # ------------------------------------------------------------------------------ processing
    def process(self, publish_id: str | None = None, **_: Any) -> int:
        """Finish processing (and moderation) at once: one publish, or every pending one."""
        changed = 0
        for pub in list(self.publishes.values()):
            if publish_id and pub["publish_id"] != publish_id:
                continue
            if pub["status"] in ("PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD") and pub["ready_at"] is not None:
                self._finish(pub)
                changed += 1
            if pub["status"] == "PUBLISH_COMPLETE" and pub["public_at"] is not None and not pub["post_ids"]:
                pub["post_ids"] = [pub["post_id"]]
                self._webhook(pub, "post.publish.publicly_available", post_id=pub["post_id"])
                changed += 1
        return changed

    def _advance(self, pub: dict[str, Any]) -> None:
        now = self.now()
        if pub["status"] in ("PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD") and pub["ready_at"] is not None \
                and now >= pub["ready_at"]:
            self._finish(pub)
        if pub["status"] == "PUBLISH_COMPLETE" and pub["public_at"] is not None and not pub["post_ids"] \
                and self.now() >= pub["public_at"]:
            pub["post_ids"] = [pub["post_id"]]
            self._webhook(pub, "post.publish.publicly_available", post_id=pub["post_id"])

    def _finish(self, pub: dict[str, Any]) -> None:
        reason = self.config["fail_next_with"]
        if reason:
            self.config["fail_next_with"] = None
        else:
            reason = self._content_problem(pub)
        if reason:
            self._fail(pub, reason)
            return
        if pub["source"] == "PULL_FROM_URL":
            pub["downloaded_bytes"] = pub["video_size"] or 1_000_000
        if pub["post_mode"] == "MEDIA_UPLOAD":
            pub["status"] = "SEND_TO_USER_INBOX"
            self._webhook(pub, "post.publish.inbox_delivered")
            return
        pub["status"] = "PUBLISH_COMPLETE"
        pub["post_id"] = str(self._next_post)
        self._next_post += 1
        caption = pub["title"] if pub["kind"] == "video" else pub["description"]
        self.published.append({
            "id": pub["post_id"], "publish_id": pub["publish_id"], "account": pub["open_id"], "user": pub["user"],
            "caption": caption, "title": pub["title"], "created_at": self.now(), "privacy_level": pub["privacy_level"],
            "media_type": "PHOTO" if pub["kind"] == "photo" else "VIDEO", "source": pub["source"],
            "video_size": pub["video_size"], "bytes_received": pub["uploaded_bytes"],
            "disable_comment": pub["disable_comment"], "disable_duet": pub["disable_duet"],
            "disable_stitch": pub["disable_stitch"], "photo_count": len(pub["photo_images"] or []),
            "duration": pub["duration"] or 0,
            "metrics": {"view_count": 0, "like_count": 0, "comment_count": 0, "share_count": 0},
        })
        self._webhook(pub, "post.publish.complete")
        if pub["privacy_level"] == "PUBLIC_TO_EVERYONE":
            pub["public_at"] = self.now() + self.config["moderation_seconds"]

    def _content_problem(self, pub: dict[str, Any]) -> str | None:
        """What TikTok's checks would find in the media (from the sniffed head or the URL)."""
        if pub["kind"] == "photo":
            if any(str(u).split("?", 1)[0].lower().endswith(".png") for u in pub["photo_images"] or []):
                return "file_format_check_failed"
            return None
        if pub["source"] == "FILE_UPLOAD":
            head = pub["head"] or {}
            if not head.get("ftyp"):
                return "file_format_check_failed"
            pub["duration"] = head.get("duration")
        if pub["duration"] is not None and pub["duration"] > pub["max_duration"]:
            return "duration_check_failed"
        return None

    def _fail(self, pub: dict[str, Any], reason: str) -> None:
        pub["status"], pub["fail_reason"] = "FAILED", reason
        self._webhook(pub, "post.publish.failed", reason=reason)

    # ------------------------------------------------------------------------------ webhooks
    def _webhook(self, pub: dict[str, Any], event: str, **content: Any) -> None:
        publish_type = "INBOX_SHARE" if pub["post_mode"] == "MEDIA_UPLOAD" else "DIRECT_PUBLISH"
        self.webhooks.append({
            "client_key": pub["client_key"], "event": event, "create_time": int(self.now()),
            "user_openid": pub["open_id"],
            "content": json.dumps({"publish_id": pub["publish_id"], **content, "publish_type": publish_type}),
        })

    def sign_webhook(self, body: bytes, timestamp: float | None = None, client_key: str | None = None) -> str:
        """The `TikTok-Signature` header value for `body`, signed with the app's client secret."""
        apps = self.config["apps"]
        secret = apps[client_key] if client_key else next(s for s in apps.values() if s)
        stamp = str(int(self.now() if timestamp is None else timestamp))
        digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return f"t={stamp},s={digest}"

    # ------------------------------------------------------------------------------ videos
    def _post(self, post_id: str) -> dict[str, Any] | None:
        return next((p for p in self.published if p["id"] == post_id), None)

    def _public_posts(self, user: str) -> list[dict[str, Any]]:
        public = {pid for pub in self.publishes.values() if pub["user"] == user for pid in pub["post_ids"]}
        return [p for p in self.published if p["id"] in public]

    def _video(self, post: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        user = self._user(post["user"])
        values = {"id": post["id"], "title": post["caption"], "video_description": post["caption"],
                  "create_time": int(post["created_at"]),
                  "cover_image_url": f"https://p16-sign.tiktokcdn-us.com/sandbox/cover/{post['id']}.jpeg",
                  "share_url": f"https://www.tiktok.com/@{user['username']}/video/{post['id']}",
                  "embed_link": f"https://www.tiktok.com/player/v1/{post['id']}", "duration": int(post["duration"]),
                  "width": 1080, "height": 1920, **self._counts(post)}
        return {f: values[f] for f in fields}

    def _counts(self, post: dict[str, Any]) -> dict[str, int]:
        grown = organic(post["id"], self.now() - post["created_at"])
        m = post["metrics"]
        return {"view_count": m["view_count"] + grown.views, "like_count": m["like_count"] + grown.likes,
                "comment_count": m["comment_count"] + grown.comments, "share_count": m["share_count"] + grown.shares}

    def _video_request(self, request: Request) -> tuple[TokenRecord, list[str], dict[str, Any]] | Response:
        record = self._bearer(request, "video.list")
        if isinstance(record, Response):
            return record
        fields = [f for f in (request.args.get("fields") or "").split(",") if f]
        if not fields or any(f not in VIDEO_FIELDS for f in fields):
            return self.api_error("invalid_params", "fields must list known video fields.")
        body = self._body(request)
        if isinstance(body, Response):
            return body
        return record, fields, body

    @route("POST", r"/v2/video/query/")
    def video_query(self, request: Request) -> Response:
        parsed = self._video_request(request)
        if isinstance(parsed, Response):
            return parsed
        record, fields, body = parsed
        ids = (body.get("filters") or {}).get("video_ids") if isinstance(body.get("filters"), dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= 20 or not all(isinstance(i, str) for i in ids):
            return self.api_error("invalid_params", "filters.video_ids must hold 1 to 20 video ids.")
        posts = {p["id"]: p for p in self._public_posts(record.user)}
        return self.api({"videos": [self._video(posts[i], fields) for i in ids if i in posts]})

    @route("POST", r"/v2/video/list/")
    def video_list(self, request: Request) -> Response:
        parsed = self._video_request(request)
        if isinstance(parsed, Response):
            return parsed
        record, fields, body = parsed
        count, cursor = body.get("max_count", 10), body.get("cursor", 0)
        if not isinstance(count, int) or not 1 <= count <= 20 or not isinstance(cursor, int) or cursor < 0:
            return self.api_error("invalid_params", "max_count must be 1 to 20 and cursor a non-negative integer.")
        posts = sorted(self._public_posts(record.user), key=lambda p: p["created_at"], reverse=True)
        page = posts[cursor:cursor + count]
        return self.api({"videos": [self._video(p, fields) for p in page], "cursor": cursor + len(page),
                         "has_more": cursor + len(page) < len(posts)})


_BLOCK_MESSAGES = {
    "spam_risk_too_many_posts": "The creator has reached the daily limit of posts made through the API.",
    "spam_risk_user_banned_from_posting": "The user is banned from making new posts.",
    "reached_active_user_cap": "The daily quota of active publishing users for this client has been reached.",
}


def _utf16(text: Any) -> int:
    return len(str(text).encode("utf-16-le")) // 2


def _progress(received: int, total: int) -> str:
    return f"bytes 0-{received - 1}/{total}" if received else f"bytes */{total}"


def _sniff(head: bytes) -> dict[str, Any]:
    return {"ftyp": head[4:8] == b"ftyp", "duration": mp4_duration(head)}


def _url_duration(url: str | None) -> float | None:
    """The sandbox media host's `duration` query value: what a real pull would find in the file."""
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("duration")
    try:
        return float(values[0]) if values else None
    except ValueError:
        return None
