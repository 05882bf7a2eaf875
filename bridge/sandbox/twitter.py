"""The X (Twitter) emulator: OAuth 2.0 with PKCE, v2 posts and timelines, chunked media upload.

Model: users (made on first login), authorization codes bound to client, redirect URI, scopes and
the PKCE challenge; access tokens that expire by the sandbox clock and refresh tokens that rotate
(a spent one is refused as X refuses it); media uploads that keep segment sizes, never bytes
(only the first 64 KiB of segment 0, to read the video's duration); posts with public metrics.

Rules enforced in X's shapes (problem objects, `errors[]`, OAuth errors): content types, unknown
fields, weighted text length, duplicate content, the per-user 24 h post cap and the 15-minute
windows (with `x-rate-limit-*` headers on every API answer), media types, categories and sizes,
segment order and size, FINALIZE before every byte, media not ready or expired, token scopes.

Both media upload shapes are served: `/2/media/upload/initialize`, `/{id}/append`,
`/{id}/finalize`, and the `command=INIT|APPEND|FINALIZE` form on `/2/media/upload`; STATUS is
`GET /2/media/upload?command=STATUS&media_id=`. Processing moves `pending -> in_progress ->
succeeded|failed` with the clock (`processing_seconds`) or at once with `process()`.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
from datetime import datetime, timezone
from typing import Any

from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData
from werkzeug.wrappers import Request, Response

from bridge.platforms.media import mp4_duration
from bridge.platforms.twitter import has_invalid_characters, url_spans, weighted_length
from bridge.sandbox.audience import organic
from bridge.sandbox.core import Emulator, route
from bridge.sandbox.oauth import OAuthSpec

MIB = 1024 * 1024
PROBLEMS = "https://api.twitter.com/2/problems"
PROBLEMS_X = "https://api.x.com/2/problems"
WEB_HOSTS = ("x.com", "twitter.com")
SCOPES = {"tweet.read", "tweet.write", "tweet.moderate.write", "users.read", "follows.read", "follows.write",
          "offline.access", "space.read", "mute.read", "mute.write", "like.read", "like.write", "list.read",
          "list.write", "block.read", "block.write", "bookmark.read", "bookmark.write", "media.write", "dm.read",
          "dm.write"}
TWEET_BODY = {"text", "media", "reply", "quote_tweet_id", "poll", "reply_settings", "geo", "for_super_followers_only",
              "share_with_followers", "community_id", "direct_message_deep_link", "card_uri", "nullcast",
              "edit_options", "made_with_ai", "paid_partnership"}
TWEET_FIELDS = {"article", "attachments", "author_id", "card_uri", "context_annotations", "conversation_id",
                "created_at", "display_text_range", "edit_controls", "edit_history_tweet_ids", "entities", "geo", "id",
                "in_reply_to_user_id", "lang", "non_public_metrics", "note_tweet", "organic_metrics",
                "possibly_sensitive", "promoted_metrics", "public_metrics", "referenced_tweets", "reply_settings",
                "scopes", "source", "text", "withheld"}
USER_FIELDS = {"affiliation", "connection_status", "created_at", "description", "entities", "id", "location",
               "most_recent_tweet_id", "name", "pinned_tweet_id", "profile_banner_url", "profile_image_url",
               "protected", "public_metrics", "receives_your_dm", "subscription_type", "url", "username", "verified",
               "verified_type", "withheld"}
MEDIA_TYPES = {"video/mp4", "video/webm", "video/mp2t", "video/quicktime", "image/jpeg", "image/png", "image/gif",
               "image/webp", "image/bmp", "image/pjpeg", "image/tiff", "text/srt", "text/vtt", "model/gltf-binary",
               "model/vnd.usdz+zip"}
# media_category -> (accepted media type prefixes, media_key prefix, size limit setting)
CATEGORIES = {
    "tweet_image": (("image/",), "3_", "max_image_bytes"),
    "dm_image": (("image/",), "3_", "max_image_bytes"),
    "tweet_gif": (("image/gif",), "16_", "max_gif_bytes"),
    "dm_gif": (("image/gif",), "16_", "max_gif_bytes"),
    "tweet_video": (("video/",), "7_", "max_video_bytes"),
    "dm_video": (("video/",), "7_", "max_video_bytes"),
    "amplify_video": (("video/",), "13_", "max_video_bytes"),
    "subtitles": (("text/",), "3_", "max_image_bytes"),
}
# (method or None for any, path prefix test, rate-limit bucket); the first match wins
BUCKETS = (
    ("POST", lambda p: p == "/2/tweets", "tweets_create"),
    ("DELETE", lambda p: p.startswith("/2/tweets/"), "tweets_delete"),
    ("GET", lambda p: p.startswith("/2/tweets/"), "tweet_lookup"),
    ("GET", lambda p: p == "/2/users/me", "users_me"),
    ("GET", lambda p: p.startswith("/2/users/"), "user_tweets"),
    (None, lambda p: p.startswith("/2/media/upload/"), "media_chunked"),
    (None, lambda p: p == "/2/media/upload", "media_upload"),
    (None, lambda p: p.startswith("/2/oauth2/"), "oauth"),
)
_HEAD = 64 * 1024


_REFUSED_PAGE = "You weren't able to give access to the App. Go back and try logging in again."


class TwitterEmulator(Emulator):
    platform = "twitter"
    hosts = ("x.com", "twitter.com", "api.x.com", "api.twitter.com")
    oauth_spec = OAuthSpec(
        authorize_path="/i/oauth2/authorize", token_path="/2/oauth2/token", revoke_path="/2/oauth2/revoke",
        known_scopes=frozenset(SCOPES), client_auth="basic", pkce="required", state_required=True, token_bytes=45,
        token_type="bearer", revoke_ends="token", revoke_answer={"revoked": True})
    oauth_errors = {
        **{name: (400, "invalid_request", _REFUSED_PAGE, "page") for name in (
            "unknown_client", "bad_redirect_uri", "unsupported_response_type", "invalid_scope", "bad_state",
            "pkce_required", "bad_pkce_method")},
        "bad_content_type": (400, "invalid_request", "Missing required parameter [grant_type]."),
        "invalid_client": (401, "invalid_client", "Missing valid authorization header"),
        "missing_grant_type": (400, "invalid_request", "Missing required parameter [grant_type]."),
        "unsupported_grant_type": (400, "unsupported_grant_type", "Value passed for the grant type was invalid."),
        "missing_param": (400, "invalid_request", "Missing required parameter [{param}]."),
        # X says invalid_request where RFC 6749 says invalid_grant
        "code_invalid": (400, "invalid_request", "Value passed for the authorization code was invalid."),
        "code_used": (400, "invalid_request", "Value passed for the authorization code was invalid."),
        "code_expired": (400, "invalid_request", "Value passed for the authorization code was invalid."),
        "redirect_mismatch": (400, "invalid_request", "Value passed for the redirect uri did not match the uri of "
                                                      "the authorization code."),
        "verifier_mismatch": (400, "invalid_request", "Value passed for the code verifier did not match the code "
                                                      "challenge."),
        "refresh_invalid": (400, "invalid_request", "Value passed for the token was invalid."),
    }
    defaults = {
        # OAuth (a confidential client: HTTP Basic; refresh tokens rotate)
        "apps": {},  # client_id -> secret; with auto_register any id, its secret fixed at first use
        "auto_register": True,
        "code_ttl": 30,  # X's codes are very short-lived (30 s is the figure quoted)
        "access_token_ttl": 7200,
        "refresh_token_ttl": 180 * 86400,
        # posts
        "max_weighted_length": 280,
        "duplicate_window": 86400,
        "user_posts_per_24h": 17,  # the strictest published cap (free tier); paid tiers: 100 or more
        # pay-per-use credits (US dollars): None keeps no balance; a number is spent by each post
        # written and each post read, and an empty balance answers 402 credits-depleted
        "credits": None,
        "post_cost": 0.015,
        "post_with_url_cost": 0.20,
        "read_cost": 0.005,
        # 15-minute windows per user (per client for OAuth)
        "rate_window": 900,
        "limit_tweets_create": 100,
        "limit_tweets_delete": 50,
        "limit_tweet_lookup": 900,
        "limit_users_me": 75,
        "limit_user_tweets": 900,
        "limit_media_chunked": 1875,
        "limit_media_upload": 500,
        "limit_oauth": 1000,
        # media
        "media_expires_after": 86400,
        "max_chunk_bytes": 5 * MIB,
        "max_segments": 1000,
        "max_image_bytes": 5 * MIB,
        "max_gif_bytes": 15 * MIB,
        "max_video_bytes": 512 * MIB,
        "min_video_seconds": 0.5,
        "max_video_seconds": 140,
        "max_amplify_video_seconds": 3 * 3600,
        "pending_seconds": 1,
        "processing_seconds": 6,
        "check_after_secs": 2,
    }

    def reset(self) -> None:
        super().reset()
        self.users: dict[str, dict[str, Any]] = {}  # id -> user
        self.media: dict[str, dict[str, Any]] = {}
        self.tweets: dict[str, dict[str, Any]] = {}
        # replies, in order: X posts them as posts, kept apart from `published` (one item per post
        # the bridge published) so tests count first comments on their own
        self.replies: list[dict[str, Any]] = []
        self.windows: dict[tuple[str, str], dict[str, float]] = {}
        self._sequence = 0

    def snapshot(self) -> dict[str, Any]:
        media = {mid: {k: m[k] for k in ("state", "category", "total", "received", "owner")} | {
            "segments": len(m["segments"])} for mid, m in self.media.items()}
        return {**super().snapshot(), "media": media, "tweets": len(self.tweets), "users": list(self.users),
                "comments": [dict(r) for r in self.replies]}

    # ------------------------------------------------------------------ control
    def process(self, media_id: str | None = None, fail: bool = False, reason: str | None = None) -> int:
        """Finish processing now (every pending upload, or `media_id`): it succeeds unless the
        video breaks a rule or `fail=True`."""
        changed = 0
        for mid, media in self.media.items():
            if (media_id is None or mid == str(media_id)) and media["state"] in ("pending", "in_progress"):
                if fail:
                    media["fail"] = reason or "Unsupported video format"
                media["state"] = "failed" if media["fail"] else "succeeded"
                changed += 1
        return changed

    def engage(self, tweet_id: str, **counts: int) -> None:
        """Set public metrics of a post (impression_count, like_count, reply_count, ...); the
        audience's organic growth adds to them as the post ages."""
        self.tweets[str(tweet_id)]["public_metrics"].update(counts)

    def _public_metrics(self, tweet: dict[str, Any]) -> dict[str, int]:
        grown = organic(tweet["id"], self.now() - tweet["created_at"])
        counts = dict(tweet["public_metrics"])
        for name, value in (("impression_count", grown.views), ("like_count", grown.likes),
                            ("reply_count", grown.comments), ("retweet_count", grown.shares),
                            ("bookmark_count", grown.saves)):
            counts[name] = counts.get(name, 0) + value
        return counts

    def user_for(self, username: str) -> dict[str, Any]:
        """The sandbox account behind a login name (made on first use)."""
        user_id = str(10 ** 17 + int(hashlib.sha256(username.encode()).hexdigest()[:14], 16) % (9 * 10 ** 17))
        return self.users.setdefault(user_id, {
            "id": user_id, "name": username.replace("_", " ").title(), "username": username,
            "profile_image_url": f"https://pbs.twimg.com/profile_images/{user_id}/avatar_normal.jpg",
            "verified": False, "verified_type": "none", "subscription_type": "None",
            "created_at": "2020-01-01T00:00:00.000Z", "protected": False,
        })

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, request: Request) -> Response:
        web = self._host(request) in WEB_HOSTS
        if web != request.path.startswith("/i/"):
            return self._drained(request, self.not_found(request))  # API paths live on api.x.com only
        bucket = self._bucket(request)
        if bucket is None:
            return self._drained(request, super().dispatch(request))
        window = self._window(request, bucket)
        if window["used"] >= window["limit"]:
            return self._drained(request, self._stamp(
                self.problem(429, "Too Many Requests", "Too Many Requests"), window))
        window["used"] += 1
        return self._drained(request, self._stamp(super().dispatch(request), window))

    def _host(self, request: Request) -> str:
        mounted = request.environ.get("SCRIPT_NAME", "").rstrip("/").rsplit("/", 1)[-1]
        return mounted if mounted in self.hosts else (request.host or "").split(":")[0].lower()

    @staticmethod
    def _bucket(request: Request) -> str | None:
        for method, matches, bucket in BUCKETS:
            if (method is None or method == request.method) and matches(request.path):
                return bucket
        return None

    def _window(self, request: Request, bucket: str) -> dict[str, float]:
        """The caller's current 15-minute window for `bucket` (user, else client, else address)."""
        record = self.oauth.access(self._bearer(request))
        basic = request.authorization.username if request.authorization and request.authorization.type == "basic" \
            else None
        caller = record.user if record else basic or request.remote_addr or "-"
        key = (bucket, str(caller))
        window = self.windows.get(key)
        if window is None or self.now() >= window["reset"]:
            window = {"used": 0, "reset": float(int(self.now()) + self.config["rate_window"])}
            self.windows[key] = window
        window["limit"] = self.config[f"limit_{bucket}"]
        return window

    @staticmethod
    def _stamp(response: Response, window: dict[str, float]) -> Response:
        response.headers["x-rate-limit-limit"] = str(int(window["limit"]))
        response.headers["x-rate-limit-remaining"] = str(int(max(0, window["limit"] - window["used"])))
        response.headers["x-rate-limit-reset"] = str(int(window["reset"]))
        return response

    @staticmethod
    def _drained(request: Request, response: Response) -> Response:
        # Read what the client is still sending (a refused 4 MiB segment): answering before the
        # body is read would break the connection instead of delivering the error.
        stream = request.stream
        while stream.read(256 * 1024):
            pass
        return response

    # ------------------------------------------------------------------ answers
    def problem(self, status: int, title: str, detail: str, kind: str = "about:blank",
                headers: dict | None = None) -> Response:
        body = {"title": title, "detail": detail, "type": kind, "status": status}
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/problem+json")

    def invalid(self, message: str, parameters: dict[str, list] | None = None) -> Response:
        body = {"errors": [{"parameters": parameters or {}, "message": message}], "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": f"{PROBLEMS}/invalid-request"}
        return Response(json.dumps(body), status=400, content_type="application/problem+json")

    def unauthorized(self) -> Response:
        return self.problem(401, "Unauthorized", "Unauthorized")

    def forbidden(self, detail: str = "You are not permitted to perform this action.") -> Response:
        return self.problem(403, "Forbidden", detail)

    def credits_depleted(self) -> Response:
        return self.problem(402, "Payment Required", "credits depleted", f"{PROBLEMS_X}/credits-depleted")

    def _spend(self, cost: float) -> bool:
        """Take `cost` from the credit balance; False (nothing taken) when it would not cover it."""
        balance = self.config["credits"]
        if balance is None:
            return True
        if balance + 1e-9 < cost:
            return False
        self.config["credits"] = round(balance - cost, 6)
        return True

    def duplicate(self) -> Response:
        return self.problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")

    def error_response(self, name: str, request: Request) -> Response:
        """Named X errors for fault injection."""
        user = self._token_user(request)
        answers = {
            "duplicate_content": self.duplicate,
            "unauthorized": self.unauthorized,
            "not_permitted": self.forbidden,
            "usage_capped": lambda: self.problem(429, "UsageCapExceeded", "Usage cap exceeded: Monthly product cap",
                                                 f"{PROBLEMS}/usage-capped"),
            "credits_depleted": self.credits_depleted,
            "daily_limit": lambda: self.problem(429, "Too Many Requests", "Too Many Requests",
                                                headers=self._daily_headers(user["id"] if user else "-", full=True)),
            "client_forbidden": lambda: self.problem(
                403, "Client Forbidden", "This request must be made using an approved developer account that is "
                "enrolled in the requested endpoint.", f"{PROBLEMS}/client-forbidden"),
            "unsupported_authentication": lambda: self.problem(
                403, "Unsupported Authentication", "Authenticating with OAuth 2.0 Application-Only is forbidden for "
                "this endpoint.", f"{PROBLEMS}/unsupported-authentication"),
            "invalid_media": lambda: self.invalid("Your media IDs are invalid.", {"media.media_ids": []}),
            "text_too_long": lambda: self.invalid("Your Tweet text is too long."),
            "over_capacity": lambda: self.json({"errors": [{"code": 130, "message": "Over capacity"}]}, status=503),
            "legacy_rate_limit": lambda: self.json({"errors": [{"code": 88, "message": "Rate limit exceeded"}]},
                                                   status=429),
        }
        with self.lock:
            answer = answers.get(name, lambda: self.invalid(name))()
            return self._drained(request, self._fault_stamp(request, answer))

    def not_found(self, request: Request) -> Response:
        return self.json({"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}, status=404)

    def method_not_allowed(self, request: Request) -> Response:
        return self.problem(405, "Method Not Allowed", f"{request.method} is not allowed on {request.path}.")

    def server_error(self, status: int, request: Request) -> Response:
        titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        title = titles.get(status, "Server Error")
        with self.lock:
            return self._drained(request, self._fault_stamp(request, self.problem(status, title, title)))

    def rate_limited(self, retry_after: float, request: Request) -> Response:
        # X sends no Retry-After: only the window's reset time
        bucket = self._bucket(request) or "oauth"
        window = {"limit": self.config[f"limit_{bucket}"], "used": self.config[f"limit_{bucket}"],
                  "reset": float(int(self.now() + retry_after))}
        return self._drained(request, self._stamp(self.problem(429, "Too Many Requests", "Too Many Requests"), window))

    def _fault_stamp(self, request: Request, response: Response) -> Response:
        bucket = self._bucket(request)
        return self._stamp(response, self._window(request, bucket)) if bucket else response

    # ------------------------------------------------------------------ OAuth hooks
    def oauth_user(self, login: str) -> str:
        return self.user_for(login)["id"]

    def oauth_wants_refresh(self, grant: Any) -> bool:
        return "offline.access" in grant.scopes  # X issues refresh tokens to offline.access only

    # ------------------------------------------------------------------ bearer auth
    @staticmethod
    def _bearer(request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return header[7:].strip() if header.startswith("Bearer ") else None

    def _token_user(self, request: Request) -> dict[str, Any] | None:
        record = self.oauth.access(self._bearer(request))
        return self.users[record.user] if record else None

    def _authorized(self, request: Request, *scopes: str) -> tuple[dict[str, Any] | None, Response | None]:
        record = self.oauth.access(self._bearer(request))
        if not record:
            return None, self.unauthorized()
        if not set(scopes) <= set(record.scopes):
            return None, self.forbidden()
        return self.users[record.user], None

    # ------------------------------------------------------------------ users
    @route("GET", r"/2/users/me")
    def me(self, request: Request) -> Response:
        user, refusal = self._authorized(request, "users.read", "tweet.read")
        if refusal:
            return refusal
        fields, bad = self._fields(request, "user.fields", USER_FIELDS)
        if bad:
            return bad
        data = {k: user[k] for k in ("id", "name", "username")}
        data.update({k: user[k] for k in fields if k in user})
        return self.json({"data": data})

    @route("GET", r"/2/users/(?P<user_id>\d+)/tweets")
    def user_tweets(self, request: Request, user_id: str) -> Response:
        viewer, refusal = self._authorized(request, "tweet.read", "users.read")
        if refusal:
            return refusal
        fields, bad = self._fields(request, "tweet.fields", TWEET_FIELDS)
        if bad:
            return bad
        args = request.args
        try:
            limit = int(args.get("max_results", "10"))
        except ValueError:
            limit = 0
        if not 5 <= limit <= 100:
            return self.invalid(f"The `max_results` query parameter value [{args.get('max_results')}] is not between "
                                f"5 and 100", {"max_results": [args.get("max_results")]})
        bounds = {}
        for name in ("start_time", "end_time"):
            if name in args:
                bounds[name] = _parse_time(args[name])
                if bounds[name] is None:
                    return self.invalid(f"The `{name}` query parameter value [{args[name]}] is not a valid RFC 3339 "
                                        f"date-time", {name: [args[name]]})
        if user_id not in self.users:
            return self.json({"errors": [_not_found("user", user_id)]})
        posts = sorted((t for t in self.tweets.values() if t["author_id"] == user_id and not t["deleted"]
                        and t["created_at"] >= bounds.get("start_time", 0)
                        and t["created_at"] <= bounds.get("end_time", float("inf"))),
                       key=lambda t: int(t["id"]), reverse=True)
        token = args.get("pagination_token", "0")
        start = int(token) if token.isdigit() else 0
        page = posts[start:start + limit]
        if not self._spend(len(page) * self.config["read_cost"]):  # every post read is billed
            return self.credits_depleted()
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta.update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
        if start + limit < len(posts):
            meta["next_token"] = str(start + limit)
        body: dict[str, Any] = {"meta": meta}
        if page:
            body["data"] = [self._tweet_view(t, fields) for t in page]
        return self.json(body)

    # ------------------------------------------------------------------ posts
    @route("POST", r"/2/tweets")
    def create_tweet(self, request: Request) -> Response:
        user, refusal = self._authorized(request, "tweet.read", "tweet.write", "users.read")
        if refusal:
            return refusal
        if request.mimetype != "application/json":
            return self.invalid("Requests with bodies must have content-type of application/json.")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.invalid("The request body is not valid JSON.")
        for name in body:
            if name not in TWEET_BODY:
                return self.invalid(f"$.{name}: is not defined in the schema and the schema does not allow "
                                    f"additional properties")
        text = body.get("text")
        if text is not None and not isinstance(text, str):
            return self.invalid(f"$.text: {type(text).__name__} found, string expected")
        exclusive = [k for k in ("media", "poll", "quote_tweet_id", "card_uri") if k in body]
        if len(exclusive) > 1:
            return self.invalid(f"{' and '.join(exclusive)} are mutually exclusive")
        if not text and not exclusive:
            return self.invalid("Post text or media is required.")
        if text:
            if has_invalid_characters(text):
                return self.invalid("Your Tweet text contains invalid characters.", {"text": [text]})
            if weighted_length(text) > self.config["max_weighted_length"]:
                return self.invalid("Your Tweet text is too long.", {"text": [text]})
        media = self._attached_media(user, body.get("media"))
        if isinstance(media, Response):
            return media
        parent = self._reply_target(body.get("reply"))
        if isinstance(parent, Response):
            return parent
        now = self.now()
        recent = [t for t in self.tweets.values() if t["author_id"] == user["id"] and now - t["created_at"] < 86400]
        if len(recent) >= self.config["user_posts_per_24h"]:
            return self.problem(429, "Too Many Requests", "Too Many Requests",
                                headers=self._daily_headers(user["id"]))
        if text and any(t["sent_text"] == text and now - t["created_at"] < self.config["duplicate_window"]
                        for t in self.tweets.values() if t["author_id"] == user["id"] and not t["deleted"]):
            return self.duplicate()
        cost = self.config["post_with_url_cost"] if text and url_spans(text) else self.config["post_cost"]
        if not self._spend(cost):
            return self.credits_depleted()
        tweet = self._publish(user, text or "", media, parent)
        response = self.json({"data": {"id": tweet["id"], "text": tweet["text"],
                                       "edit_history_tweet_ids": [tweet["id"]]}}, status=201)
        response.headers.extend(self._daily_headers(user["id"]))
        return response

    def _attached_media(self, user: dict[str, Any], spec: Any) -> list[dict[str, Any]] | Response:
        if spec is None:
            return []
        ids = spec.get("media_ids") if isinstance(spec, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= 4 or not all(isinstance(i, str) for i in ids):
            return self.invalid("$.media.media_ids: expected an array of 1 to 4 media id strings",
                                {"media.media_ids": ids if isinstance(ids, list) else []})
        items = [self.media.get(i) for i in ids]
        kinds = {m["category"].split("_", 1)[1] for m in items if m}
        usable = all(m and m["owner"] == user["id"] and self._advance(m) == "succeeded"
                     and m["expires_at"] > self.now() for m in items)
        if not usable or len(kinds) > 1 or (kinds - {"image"} and len(items) > 1):
            return self.invalid("Your media IDs are invalid.", {"media.media_ids": ids})
        return items

    def _reply_target(self, spec: Any) -> dict[str, Any] | Response | None:
        """The post a `reply` answers (None without one), or X's refusal."""
        if spec is None:
            return None
        if not isinstance(spec, dict):
            return self.invalid(f"$.reply: {type(spec).__name__} found, object expected")
        for name in spec:
            if name not in ("in_reply_to_tweet_id", "exclude_reply_user_ids", "auto_populate_reply_metadata"):
                return self.invalid(f"$.reply.{name}: is not defined in the schema and the schema does not allow "
                                    f"additional properties")
        ident = spec.get("in_reply_to_tweet_id")
        if not isinstance(ident, str) or not ident.isdigit() or len(ident) > 19:
            return self.invalid(f"$.reply.in_reply_to_tweet_id: string [{ident}] does not match pattern "
                                f"^[0-9]{{1,19}}$", {"reply.in_reply_to_tweet_id": [ident]})
        parent = self.tweets.get(ident)
        if parent is None or parent["deleted"]:
            return self.forbidden("You attempted to reply to a Tweet that is deleted or not visible to you.")
        return parent

    def _publish(self, user: dict[str, Any], text: str, media: list[dict[str, Any]],
                 parent: dict[str, Any] | None = None) -> dict[str, Any]:
        now = self.now()
        self._sequence += 1
        tweet_id = str(((int(now * 1000) - 1288834974657) << 22) + self._sequence % 4096)
        shown = _shortened(text) + (f" https://t.co/{_slug(media[0]['id'])}" if media else "")
        tweet = {"id": tweet_id, "author_id": user["id"], "text": html.escape(shown.strip(), quote=False),
                 "sent_text": text, "created_at": now, "media_keys": [m["key"] for m in media], "deleted": False,
                 "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0,
                                    "bookmark_count": 0, "impression_count": 0}}
        tweet["conversation_id"] = parent.get("conversation_id", parent["id"]) if parent else tweet_id
        self.tweets[tweet_id] = tweet
        if parent is not None:
            tweet.update(in_reply_to=parent["id"], in_reply_to_user_id=parent["author_id"])
            parent["public_metrics"]["reply_count"] += 1
            self.replies.append({"id": tweet_id, "object": parent["id"], "message": text, "author": user["id"],
                                 "created_at": now})
            return tweet
        self.published.append({"id": tweet_id, "user": user["id"], "username": user["username"], "text": text,
                               "created_at": now, "media_ids": [m["id"] for m in media]})
        return tweet

    def _daily_headers(self, user_id: str, full: bool = False) -> dict[str, str]:
        now = self.now()
        times = sorted(t["created_at"] for t in self.tweets.values()
                       if t["author_id"] == user_id and now - t["created_at"] < 86400)
        cap = self.config["user_posts_per_24h"]
        return {"x-user-limit-24hour-limit": str(cap),
                "x-user-limit-24hour-remaining": "0" if full else str(max(0, cap - len(times))),
                "x-user-limit-24hour-reset": str(int((times[0] if times else now) + 86400))}

    @route("GET", r"/2/tweets/(?P<tweet_id>\d+)")
    def lookup_tweet(self, request: Request, tweet_id: str) -> Response:
        _, refusal = self._authorized(request, "tweet.read", "users.read")
        if refusal:
            return refusal
        fields, bad = self._fields(request, "tweet.fields", TWEET_FIELDS)
        if bad:
            return bad
        tweet = self.tweets.get(tweet_id)
        if not tweet or tweet["deleted"]:
            return self.json({"errors": [_not_found("tweet", tweet_id)]})
        if not self._spend(self.config["read_cost"]):
            return self.credits_depleted()
        return self.json({"data": self._tweet_view(tweet, fields)})

    @route("DELETE", r"/2/tweets/(?P<tweet_id>\d+)")
    def delete_tweet(self, request: Request, tweet_id: str) -> Response:
        user, refusal = self._authorized(request, "tweet.read", "tweet.write", "users.read")
        if refusal:
            return refusal
        tweet = self.tweets.get(tweet_id)
        if not tweet or tweet["deleted"]:
            return self.json({"data": {"deleted": False}})
        if tweet["author_id"] != user["id"]:
            return self.forbidden("You are not authorized to delete this Tweet.")
        tweet["deleted"] = True
        return self.json({"data": {"deleted": True}})

    def _tweet_view(self, tweet: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        view = {"id": tweet["id"], "text": tweet["text"], "edit_history_tweet_ids": [tweet["id"]]}
        if "created_at" in fields:
            view["created_at"] = _iso(tweet["created_at"])
        if "author_id" in fields:
            view["author_id"] = tweet["author_id"]
        if "public_metrics" in fields:
            view["public_metrics"] = self._public_metrics(tweet)
        if "attachments" in fields and tweet["media_keys"]:
            view["attachments"] = {"media_keys": list(tweet["media_keys"])}
        if "conversation_id" in fields:
            view["conversation_id"] = tweet.get("conversation_id", tweet["id"])
        if tweet.get("in_reply_to"):
            if "referenced_tweets" in fields:
                view["referenced_tweets"] = [{"type": "replied_to", "id": tweet["in_reply_to"]}]
            if "in_reply_to_user_id" in fields:
                view["in_reply_to_user_id"] = tweet["in_reply_to_user_id"]
        return view

    def _fields(self, request: Request, name: str, allowed: set[str]) -> tuple[list[str], Response | None]:
        raw = request.args.get(name)
        fields = [f for f in (raw or "").split(",") if f]
        unknown = [f for f in fields if f not in allowed]
        if unknown:
            return [], self.invalid(f"The `{name}` query parameter value [{unknown[0]}] is not one of "
                                    f"[{','.join(sorted(allowed))}]", {name: [raw]})
        return fields, None

    # ------------------------------------------------------------------ media
    @route("POST", r"/2/media/upload/initialize")
    def media_initialize(self, request: Request) -> Response:
        user, refusal = self._authorized(request, "media.write")
        if refusal:
            return refusal
        if request.mimetype != "application/json":
            return self.invalid("Requests with bodies must have content-type of application/json.")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.invalid("The request body is not valid JSON.")
        return self._init(user, body)

    @route("POST", r"/2/media/upload/(?P<media_id>\d+)/append")
    def media_append(self, request: Request, media_id: str) -> Response:
        user, refusal = self._authorized(request, "media.write")
        if refusal:
            return refusal
        form = self._form(request)
        if isinstance(form, Response):
            return form
        return self._append(user, media_id, form)

    @route("POST", r"/2/media/upload/(?P<media_id>\d+)/finalize")
    def media_finalize(self, request: Request, media_id: str) -> Response:
        user, refusal = self._authorized(request, "media.write")
        if refusal:
            return refusal
        return self._finalize(user, media_id)

    @route("POST", r"/2/media/upload")
    def media_simple(self, request: Request) -> Response:
        """The one-request upload of a small file. The `command=INIT|APPEND|FINALIZE` form this
        path once took was retired in 2025 (only GET `command=STATUS` remains)."""
        user, refusal = self._authorized(request, "media.write")
        if refusal:
            return refusal
        form = self._form(request)
        if isinstance(form, Response):
            return form
        command = form.get("command") or request.args.get("command")
        if command:
            return self.invalid(f"The `command` parameter [{command}] is no longer supported; upload in chunks with "
                                f"/2/media/upload/initialize, /2/media/upload/{{id}}/append and "
                                f"/2/media/upload/{{id}}/finalize", {"command": [command]})
        if "_media_size" not in form:
            return self.invalid("$.media: is missing but it is required", {"media": []})
        values = {**request.args.to_dict(), **{k: v for k, v in form.items() if not k.startswith("_")}}
        return self._simple(user, values, form)

    @route("GET", r"/2/media/upload")
    def media_status(self, request: Request) -> Response:
        user, refusal = self._authorized(request, "media.write")
        if refusal:
            return refusal
        if request.args.get("command") != "STATUS":
            return self.invalid("The `command` query parameter must be STATUS", {"command": [request.args.get("command")]})
        media, missing = self._owned(user, request.args.get("media_id", ""))
        if missing:
            return missing
        if media["state"] == "uploading":
            return self.invalid(f"Media id {media['id']} is not finalized.", {"media_id": [media["id"]]})
        self._advance(media)
        return self.json({"data": self._media_view(media, with_size=False)})

    def _init(self, user: dict[str, Any], values: dict[str, Any]) -> Response:
        media_type, category = values.get("media_type"), values.get("media_category")
        if media_type not in MEDIA_TYPES:
            return self.invalid(f"The `media_type` value [{media_type}] is not one of the supported media types",
                                {"media_type": [media_type]})
        if category not in CATEGORIES:
            return self.invalid(f"The `media_category` value [{category}] is not one of "
                                f"[{','.join(CATEGORIES)}]", {"media_category": [category]})
        prefixes, key_prefix, limit_name = CATEGORIES[category]
        if not media_type.startswith(prefixes):
            return self.invalid(f"media_type {media_type} is not allowed for media_category {category}",
                                {"media_type": [media_type], "media_category": [category]})
        try:
            total = int(values.get("total_bytes"))
        except (TypeError, ValueError):
            return self.invalid("$.total_bytes: is missing but it is required", {"total_bytes": []})
        if total <= 0 or total > self.config[limit_name]:
            return self.invalid(f"File size exceeds {self.config[limit_name]} bytes.", {"total_bytes": [total]})
        media_id = str(10 ** 18 + secrets.randbelow(9 * 10 ** 18))
        self.media[media_id] = {
            "id": media_id, "key": f"{key_prefix}{media_id}", "owner": user["id"], "media_type": media_type,
            "category": category, "total": total, "segments": {}, "received": 0, "head": b"", "state": "uploading",
            "expires_at": self.now() + self.config["media_expires_after"], "finalized_at": None, "fail": None,
        }
        return self.json({"data": {"id": media_id, "media_key": f"{key_prefix}{media_id}",
                                   "expires_after_secs": self.config["media_expires_after"]}})

    def _append(self, user: dict[str, Any], media_id: str, form: dict[str, Any]) -> Response:
        media, missing = self._owned(user, media_id)
        if missing:
            return missing
        if media["state"] != "uploading":
            return self.invalid(f"Media id {media_id} is already finalized.", {"media_id": [media_id]})
        raw = form.get("segment_index")
        if raw is None or not str(raw).isdigit() or int(raw) >= self.config["max_segments"]:
            return self.invalid(f"$.segment_index: must be an integer from 0 to {self.config['max_segments'] - 1}",
                                {"segment_index": [raw]})
        index = int(raw)
        if index > len(media["segments"]):
            return self.invalid(f"Segment index {index} is out of order; the next one is {len(media['segments'])}.",
                                {"segment_index": [index]})
        if "_media_size" not in form:
            return self.invalid("$.media: is missing but it is required", {"media": []})
        size = form["_media_size"]
        if not 0 < size <= self.config["max_chunk_bytes"]:
            return self.invalid(f"Segment size {size} is not between 1 and {self.config['max_chunk_bytes']} bytes.",
                                {"media": [size]})
        received = media["received"] - media["segments"].get(index, 0) + size
        if received > media["total"]:
            return self.invalid("Segments add up to more than the declared total_bytes.", {"segment_index": [index]})
        media["segments"][index] = size  # sending a segment index again replaces it
        media["received"] = received
        if index == 0:
            media["head"] = form["_media_head"]
        return self.json({"data": {"expires_at": int(media["expires_at"])}})

    def _finalize(self, user: dict[str, Any], media_id: str) -> Response:
        media, missing = self._owned(user, media_id)
        if missing:
            return missing
        if media["state"] != "uploading":
            return self.invalid(f"Media id {media_id} is already finalized.", {"media_id": [media_id]})
        if media["received"] != media["total"]:
            return self.invalid("Segments do not add up to provided total file size.", {"media_id": [media_id]})
        media["finalized_at"] = self.now()
        media["expires_at"] = self.now() + self.config["media_expires_after"]
        if media["category"].endswith(("image", "subtitles")):
            media["state"] = "succeeded"  # images need no processing: no processing_info
        else:
            media["state"] = "pending"
            media["fail"] = self._video_problem(media)
        return self.json({"data": self._media_view(media, with_size=True)})

    def _simple(self, user: dict[str, Any], values: dict[str, Any], form: dict[str, Any]) -> Response:
        """One-request upload of a small image (multipart `media` + `media_category`)."""
        category = values.get("media_category", "tweet_image")
        if category not in ("tweet_image", "dm_image", "subtitles"):
            return self.invalid(f"The `media_category` value [{category}] needs the chunked upload",
                                {"media_category": [category]})
        if form["_media_size"] > self.config["max_image_bytes"]:
            return self.invalid(f"File size exceeds {self.config['max_image_bytes']} bytes.", {"media": []})
        media_type = values.get("media_type") or "image/jpeg"
        answer = self._init(user, {"media_type": media_type, "media_category": category,
                                   "total_bytes": form["_media_size"]})
        if answer.status_code != 200:
            return answer
        media_id = json.loads(answer.get_data())["data"]["id"]
        self.media[media_id].update(segments={0: form["_media_size"]}, received=form["_media_size"])
        return self._finalize(user, media_id)

    def _owned(self, user: dict[str, Any], media_id: str) -> tuple[dict[str, Any] | None, Response | None]:
        media = self.media.get(str(media_id))
        if not media or media["owner"] != user["id"] or media["expires_at"] <= self.now():
            return None, self.invalid(f"Could not find media with id: [{media_id}]. It may have expired.",
                                      {"media_id": [media_id]})
        return media, None

    def _video_problem(self, media: dict[str, Any]) -> str | None:
        """Why processing will fail (the duration read from the head of segment 0), if it will."""
        if not media["category"].endswith("video"):
            return None
        duration = mp4_duration(media["head"])
        if duration is None:
            return None
        longest = self.config["max_amplify_video_seconds" if media["category"] == "amplify_video"
                              else "max_video_seconds"]
        if duration > longest:
            return f"not allowed to post a video longer than {longest:g} seconds"
        if duration < self.config["min_video_seconds"]:
            return f"video duration is shorter than {self.config['min_video_seconds']:g} seconds"
        return None

    def _advance(self, media: dict[str, Any]) -> str:
        """Move processing along with the clock; returns the state."""
        if media["state"] in ("pending", "in_progress"):
            elapsed = self.now() - media["finalized_at"]
            if elapsed >= self.config["processing_seconds"]:
                media["state"] = "failed" if media["fail"] else "succeeded"
            elif elapsed >= self.config["pending_seconds"]:
                media["state"] = "in_progress"
        return media["state"]

    def _media_view(self, media: dict[str, Any], *, with_size: bool) -> dict[str, Any]:
        view: dict[str, Any] = {"id": media["id"], "media_key": media["key"]}
        if with_size:
            view.update(size=media["total"], expires_after_secs=int(media["expires_at"] - self.now()))
        state = media["state"]
        if media["category"].endswith(("image", "subtitles")):
            return view
        info: dict[str, Any] = {"state": state}
        if state in ("pending", "in_progress"):
            info["check_after_secs"] = self.config["check_after_secs"]
        if state == "in_progress":
            elapsed = self.now() - media["finalized_at"]
            info["progress_percent"] = min(99, int(100 * elapsed / max(1, self.config["processing_seconds"])))
        if state == "succeeded":
            info["progress_percent"] = 100
        if state == "failed":
            info["error"] = {"code": 1, "name": "InvalidMedia",
                             "message": f"Invalid or Unsupported media, Reason: {media['fail']}."}
        view["processing_info"] = info
        return view

    def _form(self, request: Request) -> dict[str, Any] | Response:
        """Form fields of a urlencoded or multipart body. A multipart `media` part is counted as it
        streams past (`_media_size`, plus its first 64 KiB as `_media_head`), never stored."""
        if request.mimetype == "application/x-www-form-urlencoded":
            return request.form.to_dict()
        if request.mimetype != "multipart/form-data":
            return self.invalid("Requests with bodies must have content-type of multipart/form-data.")
        boundary = request.mimetype_params.get("boundary")
        if not boundary:
            return self.invalid("The multipart body has no boundary.")
        try:
            return _stream_form(request, boundary)
        except ValueError:
            return self.invalid("The multipart body is malformed.")


def _stream_form(request: Request, boundary: str) -> dict[str, Any]:
    """The fields of a multipart body; the `media` part is only counted (see `_form`)."""
    decoder = MultipartDecoder(boundary.encode())
    fields: dict[str, Any] = {}
    part: Field | File | None = None
    value = bytearray()
    stream = request.stream
    while True:
        data = stream.read(256 * 1024)
        decoder.receive_data(data or None)
        event = decoder.next_event()
        while not isinstance(event, (NeedData, Epilogue)):
            if isinstance(event, (Field, File)):
                part, value = event, bytearray()
                if isinstance(event, File) and event.name == "media":
                    fields.update(_media_size=0, _media_head=b"")
            elif isinstance(event, Data) and part is not None:
                if isinstance(part, File) and part.name == "media":
                    fields["_media_size"] += len(event.data)
                    if len(fields["_media_head"]) < _HEAD:
                        fields["_media_head"] += event.data[:_HEAD - len(fields["_media_head"])]
                elif isinstance(part, Field):
                    value += event.data
                    if len(value) > _HEAD:
                        raise ValueError("form field too large")
                    if not event.more_data:
                        fields[part.name] = value.decode("utf-8", "replace")
            event = decoder.next_event()
        if not data or isinstance(event, Epilogue):
            return fields


def _not_found(kind: str, value: str) -> dict[str, Any]:
    return {"value": value, "detail": f"Could not find {kind} with id: [{value}].", "title": "Not Found Error",
            "resource_type": kind, "parameter": "id", "resource_id": value, "type": f"{PROBLEMS}/resource-not-found"}


def _slug(seed: str) -> str:
    return base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode().lower()[:10]


def _shortened(text: str) -> str:
    """Text as X shows it: every URL wrapped in a t.co link."""
    out, last = [], 0
    for start, end in url_spans(text):
        out += [text[last:start], f"https://t.co/{_slug(text[start:end])}"]
        last = end
    return "".join(out) + text[last:]


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

