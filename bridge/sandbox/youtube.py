"""The YouTube emulator: Google OAuth (web-server flow) and the Data API v3 resumable upload.

Model (state and rules):
* grants: one per authorization code exchange, holding its access and refresh tokens; revoking
  any token of a grant revokes all of them. Refresh tokens are issued only with
  `access_type=offline`, and to a user who consented before only with `prompt=consent`. A refresh
  answer omits `refresh_token` (Google does not rotate).
* channels, one per sandbox user (none for the users listed in `users_without_channel`);
* resumable upload sessions: the declared size and the bytes received so far, never the bytes;
* videos that move `uploaded -> processed | failed | rejected` when `processing_seconds` of
  sandbox time have passed or `process()` is called; a scheduled (`publishAt`) private video turns
  public when the clock passes that time;
* a project quota in units (or the newer per-method buckets) that resets at midnight Pacific
  time, a rolling per-channel upload cap, and a short-term per-user request rate.

Answers use Google's shapes: OAuth errors `{"error", "error_description"}`, Data API errors
`{"error": {"code", "message", "errors": [{"message", "domain", "reason", ...}], "status"}}`.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request, Response

from bridge.sandbox.audience import organic
from bridge.sandbox.core import Emulator, TokenRecord, route
from bridge.sandbox.oauth import OAuthSpec, Refusal

ACCOUNTS_HOST = "accounts.google.com"
OAUTH_HOST = "oauth2.googleapis.com"
API_HOST = "www.googleapis.com"
PACIFIC = ZoneInfo("America/Los_Angeles")

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
UPLOAD_SCOPES = {SCOPE_PREFIX + s for s in ("youtube.upload", "youtube", "youtube.force-ssl", "youtubepartner")}
READ_SCOPES = {SCOPE_PREFIX + s for s in ("youtube.readonly", "youtube", "youtube.force-ssl", "youtubepartner")}
# commentThreads.insert accepts force-ssl only
COMMENT_SCOPES = {SCOPE_PREFIX + "youtube.force-ssl"}
KNOWN_SCOPES = UPLOAD_SCOPES | READ_SCOPES | {
    SCOPE_PREFIX + "yt-analytics.readonly", SCOPE_PREFIX + "userinfo.email", SCOPE_PREFIX + "userinfo.profile",
    "openid", "email", "profile",
}
CATEGORIES = {"1", "2", "10", "15", "17", "19", "20", "22", "23", "24", "25", "26", "27", "28", "29"}
CHANNEL_PARTS = {"id", "snippet", "contentDetails", "statistics", "status", "brandingSettings", "topicDetails"}
VIDEO_PARTS = {"id", "snippet", "status", "processingDetails", "statistics", "contentDetails", "fileDetails",
               "player", "recordingDetails", "topicDetails", "localizations", "liveStreamingDetails",
               "suggestions"}
INSERT_PARTS = {"snippet", "status", "recordingDetails", "localizations"}
OWNER_ONLY_PARTS = {"processingDetails", "fileDetails", "suggestions"}

# reason -> (HTTP status, domain, message), as the Data API reports them
REASONS: dict[str, tuple[int, str, str]] = {
    "quotaExceeded": (403, "youtube.quota", "The request cannot be completed because you have exceeded your "
                                            "<a href=\"/youtube/v3/getting-started#quota\">quota</a>."),
    "uploadLimitExceeded": (400, "youtube.video", "The user has exceeded the number of videos they may upload."),
    "rateLimitExceeded": (403, "usageLimits", "Rate Limit Exceeded"),
    "userRateLimitExceeded": (403, "usageLimits", "User Rate Limit Exceeded"),
    "authError": (401, "global", "Invalid Credentials"),
    "required": (401, "global", "Login Required."),
    "youtubeSignupRequired": (401, "youtube.header", "Unauthorized"),
    "insufficientPermissions": (403, "global", "Insufficient Permission"),
    "forbidden": (403, "youtube.video", "Access forbidden. The request may not be properly authorized."),
    "forbiddenPrivacySetting": (403, "youtube.video", "The video's privacy setting is not supported."),
    "forbiddenLicenseSetting": (403, "youtube.video", "The request attempts to set an invalid license."),
    "invalidTitle": (400, "youtube.video", "The request metadata specifies an invalid or empty video title."),
    "invalidDescription": (400, "youtube.video", "The request metadata specifies an invalid video description."),
    "invalidTags": (400, "youtube.video", "The request metadata specifies invalid video keywords."),
    "invalidCategoryId": (400, "youtube.video", "The snippet.categoryId property specifies an invalid category ID."),
    "invalidPublishAt": (400, "youtube.video", "The request metadata specifies an invalid scheduled publishing time."),
    "invalidVideoMetadata": (400, "youtube.video", "The request metadata is invalid."),
    "mediaBodyRequired": (400, "youtube.video", "The request does not include the video content."),
    "missingRequiredParameter": (400, "youtube.parameter", "No filter selected."),
    "unknownPart": (400, "youtube.part", "Unknown part."),
    "parseError": (400, "global", "Parse Error"),
    "badContent": (400, "global", "Unsupported content."),
    "badRequest": (400, "global", "Bad Request"),
    "videoNotFound": (404, "youtube.video",
                      "The video identified by the <code>id</code> parameter could not be found."),
    # commentThreads.insert and list
    "channelOrVideoIdMissing": (400, "youtube.commentThread", "Each comment thread must be linked to a channel or "
                                                              "video. Make sure that the resource specifies values for "
                                                              "both the snippet.channelId and snippet.videoId "
                                                              "properties."),
    "commentTextRequired": (400, "youtube.comment", "The comment resource that is being inserted must specify a "
                                                    "value for the snippet.topLevelComment.snippet.textOriginal "
                                                    "property. Comments cannot be empty."),
    "commentTextTooLong": (400, "youtube.comment", "The comment resource that is being inserted contains too many "
                                                   "characters in the snippet.topLevelComment.snippet.textOriginal "
                                                   "property."),
    "invalidCommentThreadMetadata": (400, "youtube.commentThread", "The request metadata is invalid."),
    "processingFailure": (400, "youtube.commentThread", "The API server failed to successfully process the request. "
                                                        "While this can be a transient error, it usually indicates "
                                                        "that the request's input is invalid. Check the structure of "
                                                        "the <code>commentThread</code> resource in the request body "
                                                        "to ensure that it is valid."),
    "ineligibleAccount": (403, "youtube.comment", "The YouTube account used to authorize the API request must be "
                                                  "merged with the user's Google account to insert a comment or "
                                                  "comment thread."),
    "commentsDisabled": (403, "youtube.commentThread", "The video identified by the <code>videoId</code> parameter "
                                                       "has disabled comments."),
    "channelNotFound": (404, "youtube.commentThread", "The specified channel could not be found. Check the value of "
                                                      "the snippet.channelId property to ensure it is correct."),
    "notFound": (404, "global", "Not Found"),
    "methodNotAllowed": (405, "global", "Method Not Allowed"),
    "lengthRequired": (411, "global", "Length Required"),
    "backendError": (503, "global", "Backend Error"),
}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                405: "METHOD_NOT_ALLOWED", 410: "NOT_FOUND", 411: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

# which paths each host serves (the emulator is reachable under all its hosts)
HOST_PATHS = {
    ACCOUNTS_HOST: ("/o/oauth2/",),
    OAUTH_HOST: ("/token", "/revoke"),
    API_HOST: ("/youtube/v3/", "/upload/youtube/v3/"),
    "youtube.googleapis.com": ("/youtube/v3/", "/upload/youtube/v3/"),
}

_CONTENT_RANGE = re.compile(r"bytes (?:(?P<first>\d+)-(?P<last>\d+)|(?P<star>\*))/(?P<total>\d+|\*)")


@dataclass
class UploadSession:
    id: str
    user: str
    channel_id: str
    total: int
    content_type: str
    parts: list[str]
    snippet: dict[str, Any]
    status: dict[str, Any]
    created_at: float
    received: int = 0
    video_id: str | None = None


@dataclass
class Video:
    id: str
    user: str
    channel_id: str
    snippet: dict[str, Any]
    status: dict[str, Any]
    uploaded_at: float
    ready_at: float
    outcome: str
    reason: str
    statistics: dict[str, int] = field(default_factory=lambda: {"viewCount": 0, "likeCount": 0,
                                                                "favoriteCount": 0, "commentCount": 0})


class YouTubeEmulator(Emulator):
    platform = "youtube"
    hosts = (ACCOUNTS_HOST, OAUTH_HOST, API_HOST, "youtube.googleapis.com")
    oauth_spec = OAuthSpec(
        authorize_path="/o/oauth2/v2/auth", token_path="/token", revoke_path="/revoke",
        known_scopes=frozenset(KNOWN_SCOPES), client_auth="either", access_prefix="ya29.a0",
        refresh_prefix="1//0", token_bytes=40, replay_revokes=True, revoke_needs_client=False,
        revoke_unknown_is_error=True)
    # Google shows its own error page for a bad authorize request (no redirect)
    oauth_errors = {
        "unknown_client": (401, "invalid_client", "The OAuth client was not found.", "page"),
        "bad_redirect_uri": (400, "redirect_uri_mismatch", "The redirect URI in the request does not match the ones "
                                                           "authorized for the OAuth client.", "page"),
        "unsupported_response_type": (400, "unsupported_response_type", "Unsupported response type.", "page"),
        "invalid_scope": (400, "invalid_scope", "Some requested scopes were invalid.", "page"),
        "bad_pkce_method": (400, "invalid_request", "Invalid code_challenge_method.", "page"),
        "bad_param": (400, "invalid_request", "Invalid {param}.", "page"),
        "denied": (400, "access_denied", "The user denied the request."),
        "bad_content_type": (400, "invalid_request",
                             "Invalid request: the body must be application/x-www-form-urlencoded."),
        "missing_client": (400, "invalid_request", "Could not determine client ID from request."),
        "invalid_client": (401, "invalid_client", "Unauthorized"),
        "missing_param": (400, "invalid_request", "Missing required parameter: {param}"),
        "missing_grant_type": (400, "unsupported_grant_type", "Missing grant_type."),
        "unsupported_grant_type": (400, "unsupported_grant_type", "Invalid grant_type."),
        "code_invalid": (400, "invalid_grant", "Malformed auth code."),
        "code_used": (400, "invalid_grant", "Bad Request"),
        "code_expired": (400, "invalid_grant", "Bad Request"),
        "redirect_mismatch": (400, "redirect_uri_mismatch", "Bad Request"),
        "verifier_missing": (400, "invalid_grant", "Missing code verifier."),
        "verifier_mismatch": (400, "invalid_grant", "Invalid code verifier."),
        "refresh_invalid": (400, "invalid_grant", "Token has been expired or revoked."),
        "token_unknown": (400, "invalid_token", "Token expired or revoked"),
    }
    defaults = {
        "access_token_ttl": 3599,
        "code_ttl": 600,
        # None: refresh tokens of apps "In production" do not expire on a timer (7 days for "Testing")
        "refresh_token_ttl": None,
        "refresh_tokens_per_user": 100,
        "rotate_refresh_tokens": False,  # Google keeps the refresh token; its answer omits it
        "refresh_returns_refresh_token": False,
        # {client_id: secret}; with auto_register an unknown client is held to its first secret
        "apps": {},
        "auto_register": True,
        # registered redirect URIs; empty accepts any http(s) URI (a code still binds the one it was issued for)
        "redirect_uris": [],
        # quota, per project and Pacific day. "buckets" (since 2026-06-01): videos.insert calls have
        # their own bucket (`insert_calls_per_day`) beside the units of every other method; "units":
        # one budget, an upload costing `insert_cost` (about 100 units since 2025-12-04)
        "quota_model": "buckets",
        "quota_units_per_day": 10_000,
        "insert_cost": 100,
        "list_cost": 1,
        "insert_calls_per_day": 100,
        "channel_uploads_per_day": 50,
        "requests_per_minute": 600,
        "session_ttl": 86_400,
        "expired_session_status": 404,
        "chunk_unit": 256 * 1024,
        "max_file_bytes": 256 * 1024 ** 3,
        "complete_status": 201,
        "processing_seconds": 30,
        "processing_outcome": "processed",  # processed | failed | rejected
        "failure_reason": "codec",
        "rejection_reason": "duplicate",
        # API projects that have not passed the compliance audit: every upload is locked to private
        "unverified_project": False,
        "users_without_channel": [],
        "comment_max": 10_000,
        "comment_insert_cost": 50,
        # channels whose YouTube account is not merged with their Google account: no comments
        "ineligible_commenters": [],
    }

    def reset(self) -> None:
        super().reset()
        self.consented: dict[tuple[str, str], set[str]] = {}
        self.offline_granted: set[tuple[str, str]] = set()
        self.channels: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, UploadSession] = {}
        self.videos: dict[str, Video] = {}
        self.quota_day: str = ""
        self.quota_units = 0
        self.quota_inserts = 0
        self.recent_requests: dict[str, deque[float]] = {}
        self.threads: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        self._roll_quota()
        return {
            **super().snapshot(),
            "quota": {"day": self.quota_day, "units": self.quota_units, "insert_calls": self.quota_inserts},
            "sessions": [{"id": s.id, "total": s.total, "received": s.received, "video_id": s.video_id}
                         for s in self.sessions.values()],
            "videos": [{"id": v.id, "channel_id": v.channel_id, "title": v.snippet["title"], **self._status(v)}
                       for v in self.videos.values()],
            "comments": [{"id": t["id"], "object": t["videoId"], "message": t["text"], "author": t["author"]}
                         for t in self.threads],
        }

    # ------------------------------------------------------------------ control helpers
    def process(self, video_id: str | None = None, outcome: str | None = None, reason: str | None = None) -> int:
        """Finish processing now: one video, or every pending one without arguments. `outcome`
        (processed | failed | rejected) and `reason` override what the configuration chose."""
        changed = 0
        for video in self.videos.values():
            if video_id and video.id != video_id:
                continue
            if video.status["uploadStatus"] != "uploaded":
                continue
            video.ready_at = self.now()
            if outcome:
                video.outcome = outcome
            if reason:
                video.reason = reason
            self._advance(video)
            changed += 1
        return changed

    def set_statistics(self, video_id: str, **counts: int) -> None:
        """Set a video's counters (viewCount, likeCount, favoriteCount, commentCount); the
        audience's organic growth adds to them while the video is public."""
        self.videos[video_id].statistics.update({k: int(v) for k, v in counts.items()})

    def _statistics(self, video: Video) -> dict[str, int]:
        # Only a public video gathers an audience, from the moment its processing finished.
        public = video.status.get("privacyStatus") == "public" and self.now() >= video.ready_at
        grown = organic(video.id, self.now() - video.ready_at if public else 0)
        s = video.statistics
        return {"viewCount": s["viewCount"] + grown.views, "likeCount": s["likeCount"] + grown.likes,
                "favoriteCount": s["favoriteCount"], "commentCount": s["commentCount"] + grown.comments}

    # ------------------------------------------------------------------ answers
    def api_error(self, reason: str, message: str | None = None, status: int | None = None,
                  headers: dict | None = None, **where: str) -> Response:
        default_status, domain, default_message = REASONS.get(reason, (400, "global", reason))
        status = status or default_status
        message = message or default_message
        item = {"message": message, "domain": domain, "reason": reason, **where}
        return self.json({"error": {"code": status, "message": message, "errors": [item],
                                    "status": STATUS_NAMES.get(status, "UNKNOWN")}}, status=status, headers=headers)

    def error_response(self, name: str, request: Request) -> Response:
        if name == "partialChunk":  # a chunk cut off mid-way: part of it persisted, then a 503
            with self.lock:
                return self._receive(request, partial=True)
        return self.api_error(name)

    def not_found(self, request: Request) -> Response:
        return self.api_error("notFound")

    def method_not_allowed(self, request: Request) -> Response:
        return self.api_error("methodNotAllowed")

    def server_error(self, status: int, request: Request) -> Response:
        return self.api_error("backendError", status=status)

    def rate_limited(self, retry_after: float, request: Request) -> Response:
        return self.api_error("rateLimitExceeded", status=429, headers={"Retry-After": str(int(retry_after))})

    def dispatch(self, request: Request) -> Response:
        # each Google host serves only its own paths (a token request to the API host is a 404)
        host = self._host(request)
        if host in HOST_PATHS and not request.path.startswith(HOST_PATHS[host]):
            return self.not_found(request)
        return super().dispatch(request)

    def _host(self, request: Request) -> str:
        script = request.environ.get("SCRIPT_NAME", "").rstrip("/").rsplit("/", 1)[-1]
        return script if script in self.hosts else (request.host or "").split(":")[0].lower()

    # ------------------------------------------------------------------ OAuth hooks
    def oauth_check(self, params: dict[str, str]) -> Refusal | None:
        """Google's own authorize parameters: access_type, prompt, include_granted_scopes and the
        length of a PKCE challenge."""
        if params.get("access_type") not in (None, "online", "offline"):
            return Refusal("bad_param", param="access_type")
        prompts = params.get("prompt", "").split()
        if any(p not in ("none", "consent", "select_account") for p in prompts) or (
                "none" in prompts and len(prompts) > 1):
            return Refusal("bad_param", param="prompt")
        if params.get("include_granted_scopes") not in (None, "true", "false"):
            return Refusal("bad_param", param="include_granted_scopes")
        if params.get("code_challenge") is not None and not 43 <= len(params["code_challenge"]) <= 128:
            return Refusal("bad_param", param="code_challenge")
        return None

    def oauth_consented(self, params: dict[str, str], client: str, user: str,
                        scopes: list[str]) -> tuple[list[str], dict[str, Any]]:
        key = (client, user)
        prior = self.consented.get(key, set())
        if params.get("include_granted_scopes") == "true":
            scopes = sorted(set(scopes) | prior)
        self.consented[key] = prior | set(scopes)
        # a refresh token comes with the first offline consent, later only with prompt=consent
        refresh = params.get("access_type") == "offline" and (
            key not in self.offline_granted or "consent" in params.get("prompt", "").split())
        if refresh:
            self.offline_granted.add(key)
        return scopes, {"refresh": refresh}

    def oauth_wants_refresh(self, grant: Any) -> bool:
        return bool(grant.extra.get("refresh"))

    def oauth_redirect_extra(self, scopes: list[str]) -> dict[str, str]:
        return {"scope": " ".join(scopes)}

    def oauth_answer(self, body: dict[str, Any], grant: Any, refresh: Any, exchange: bool) -> dict[str, Any]:
        if "openid" in grant.scopes:
            body["id_token"] = self._id_token(grant.user, grant.client)
        return body

    @staticmethod
    def _id_token(user: str, client_id: str) -> str:
        def part(data: str) -> str:
            return base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()

        return ".".join((part('{"alg":"none"}'), part(f'{{"sub":"{user}","aud":"{client_id}"}}'), "sandbox"))

    # ------------------------------------------------------------------ Data API: common
    def _authorize(self, request: Request, scopes: set[str]) -> tuple[TokenRecord | None, Response | None]:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None, self.api_error("required", "Request is missing required authentication credential. "
                                                    "Expected OAuth 2 access token.", location="Authorization",
                                        locationType="header")
        record = self.oauth.access(header[7:].strip())
        if record is None:
            return None, self.api_error("authError", "Request had invalid authentication credentials. Expected "
                                                     "OAuth 2 access token.", location="Authorization",
                                        locationType="header")
        if not scopes & set(record.scopes):
            return None, self.api_error("insufficientPermissions", "Request had insufficient authentication scopes.")
        window = self.recent_requests.setdefault(record.user, deque())
        now = self.now()
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.config["requests_per_minute"]:
            return None, self.api_error("userRateLimitExceeded")
        window.append(now)
        return record, None

    def _roll_quota(self) -> None:
        day = datetime.fromtimestamp(self.now(), PACIFIC).date().isoformat()
        if day != self.quota_day:  # project quotas reset at midnight Pacific time
            self.quota_day, self.quota_units, self.quota_inserts = day, 0, 0

    def _quota_left(self, insert: bool = False) -> bool:
        self._roll_quota()
        if insert and self.config["quota_model"] == "buckets":
            return self.quota_inserts < self.config["insert_calls_per_day"]
        cost = self.config["insert_cost"] if insert else self.config["list_cost"]
        return self.quota_units + cost <= self.config["quota_units_per_day"]

    def _charge_units(self, units: int) -> bool:
        """Spend `units` of the project's day (the methods other than videos.insert); False when
        they are not left."""
        self._roll_quota()
        if self.quota_units + units > self.config["quota_units_per_day"]:
            return False
        self.quota_units += units
        return True

    def _charge(self, insert: bool = False, failed: bool = False) -> None:
        """Spend quota: an insert costs `insert_cost` (or one call of its bucket); a list call or a
        refused request costs `list_cost`."""
        self._roll_quota()
        if insert and not failed and self.config["quota_model"] == "buckets":
            self.quota_inserts += 1
        elif insert and not failed:
            self.quota_units += self.config["insert_cost"]
        else:
            self.quota_units += self.config["list_cost"]

    def _parts(self, request: Request, allowed: set[str]) -> tuple[list[str], Response | None]:
        raw = request.args.get("part")
        if not raw:
            return [], self.api_error("required", "Required parameter: part", status=400, location="part",
                                      locationType="parameter")
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        for part in parts:
            if part not in allowed:
                return [], self.api_error("unknownPart", f"'{part}'", location="part", locationType="parameter")
        return parts, None

    def _channel(self, user: str) -> dict[str, Any] | None:
        if user in self.config["users_without_channel"]:
            return None
        if user not in self.channels:
            digest = base64.urlsafe_b64encode(hashlib.sha256(f"channel:{user}".encode()).digest()).decode()
            channel_id = "UC" + digest[:22]
            self.channels[user] = {"id": channel_id, "title": user[:1].upper() + user[1:], "customUrl": f"@{user}",
                                   "publishedAt": _rfc3339(self.now())}
        return self.channels[user]

    # ------------------------------------------------------------------ Data API: channels.list
    @route("GET", r"/youtube/v3/channels")
    def channels_list(self, request: Request) -> Response:
        token, problem = self._authorize(request, READ_SCOPES)
        if problem is not None:
            return problem
        parts, problem = self._parts(request, CHANNEL_PARTS)
        if problem is not None:
            return problem
        if not self._quota_left():
            return self.api_error("quotaExceeded")
        self._charge()
        filters = [name for name in ("mine", "id", "forHandle", "forUsername") if request.args.get(name)]
        if len(filters) != 1:
            return self.api_error("missingRequiredParameter", "No filter selected. Expected one of: forUsername, "
                                                              "forHandle, mine, id.", location="parameters.",
                                  locationType="other")
        if filters == ["mine"]:
            channel = self._channel(token.user) if request.args["mine"] == "true" else None
            found = [(token.user, channel)] if channel else []
        else:
            wanted = set(request.args.get("id", "").split(",")) if filters == ["id"] else set()
            handle = (request.args.get("forHandle") or request.args.get("forUsername") or "").lstrip("@")
            found = [(u, c) for u, c in self.channels.items() if c["id"] in wanted or u == handle]
        items = [self._render_channel(user, channel, parts) for user, channel in found]
        return self.json({"kind": "youtube#channelListResponse", "etag": self.new_id(),
                          "pageInfo": {"totalResults": len(items), "resultsPerPage": 5}, "items": items})

    def _render_channel(self, user: str, channel: dict[str, Any], parts: list[str]) -> dict[str, Any]:
        item: dict[str, Any] = {"kind": "youtube#channel", "etag": self.new_id(), "id": channel["id"]}
        if "snippet" in parts:
            thumbs = {name: {"url": f"https://yt3.ggpht.example/{channel['id']}=s{size}", "width": size,
                             "height": size} for name, size in (("default", 88), ("medium", 240), ("high", 800))}
            item["snippet"] = {"title": channel["title"], "description": "", "customUrl": channel["customUrl"],
                               "publishedAt": channel["publishedAt"], "thumbnails": thumbs,
                               "localized": {"title": channel["title"], "description": ""}}
        if "contentDetails" in parts:
            item["contentDetails"] = {"relatedPlaylists": {"likes": "", "uploads": "UU" + channel["id"][2:]}}
        if "statistics" in parts:
            videos = [v for v in self.videos.values() if v.channel_id == channel["id"]]
            item["statistics"] = {"viewCount": str(sum(self._statistics(v)["viewCount"] for v in videos)),
                                  "subscriberCount": "0", "hiddenSubscriberCount": False,
                                  "videoCount": str(len(videos))}
        return item

    # ------------------------------------------------------------------ Data API: videos.insert (resumable)
    @route("POST", r"/upload/youtube/v3/videos")
    def upload_start(self, request: Request) -> Response:
        token, problem = self._authorize(request, UPLOAD_SCOPES)
        if problem is not None:
            return problem
        upload_type = request.args.get("uploadType")
        if upload_type != "resumable":
            if not upload_type:
                return self.api_error("mediaBodyRequired")
            return self.api_error("badRequest", f"This sandbox emulates only uploadType=resumable, not {upload_type}.",
                                  location="uploadType", locationType="parameter")
        parts, problem = self._parts(request, INSERT_PARTS)
        if problem is not None:
            return problem
        if not self._quota_left(insert=True):
            return self.api_error("quotaExceeded")
        problem = self._check_upload_request(request, token, parts)
        if problem is not None:
            self._charge(insert=True, failed=True)  # refused requests still cost quota
            return problem
        self._charge(insert=True)
        body = request.get_json()
        channel = self._channel(token.user)
        # without a status part the video takes YouTube's defaults (public)
        status = {"privacyStatus": "public", **((body.get("status") or {}) if "status" in parts else {})}
        session = UploadSession(
            id=secrets.token_urlsafe(24).replace("-", "_"), user=token.user, channel_id=channel["id"],
            total=int(request.headers["X-Upload-Content-Length"]),
            content_type=request.headers.get("X-Upload-Content-Type", "application/octet-stream"),
            parts=parts, snippet=dict(body["snippet"]), status=status, created_at=self.now(),
        )
        self.sessions[session.id] = session
        location = (f"https://{API_HOST}/upload/youtube/v3/videos?uploadType=resumable&part={','.join(parts)}"
                    f"&upload_id={session.id}")
        return Response(b"", status=200, headers={"Location": location, "X-GUploader-UploadID": session.id})

    def _check_upload_request(self, request: Request, token: TokenRecord, parts: list[str]) -> Response | None:
        """The refusals a session start can meet, in the order Google reports them."""
        if request.mimetype != "application/json":
            return self.api_error("badContent", f"Unsupported content with type: {request.mimetype or 'none'}")
        declared = request.headers.get("X-Upload-Content-Length")
        if declared is None:
            return self.api_error("required", "Required header: X-Upload-Content-Length", status=400,
                                  location="X-Upload-Content-Length", locationType="header")
        if not declared.isdigit() or int(declared) == 0:
            return self.api_error("badRequest", "Invalid X-Upload-Content-Length.", location="X-Upload-Content-Length",
                                  locationType="header")
        if int(declared) > self.config["max_file_bytes"]:
            return self.api_error("badRequest", "Media larger than the maximum upload size is not accepted.")
        media_type = request.headers.get("X-Upload-Content-Type")
        if media_type is not None and not (media_type.startswith("video/") or media_type == "application/octet-stream"):
            return self.api_error("badContent", f"Media type '{media_type}' is not supported. Valid media types: "
                                                f"[video/*, application/octet-stream]")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.api_error("parseError")
        # properties outside the parts named in `part` are ignored, as Google does
        snippet = body.get("snippet") if "snippet" in parts else None
        if not isinstance(snippet, dict):
            return self.api_error("invalidTitle", location="body.snippet.title", locationType="other")
        problem = self._check_snippet(snippet)
        if problem is None and "status" in parts:
            problem = self._check_status(body.get("status") or {})
        if problem is not None:
            return problem
        channel = self._channel(token.user)
        if channel is None:
            return self.api_error("youtubeSignupRequired")
        day_ago = self.now() - 86_400
        recent = sum(1 for v in self.videos.values() if v.channel_id == channel["id"] and v.uploaded_at > day_ago)
        if recent >= self.config["channel_uploads_per_day"]:
            return self.api_error("uploadLimitExceeded")
        return None

    def _check_snippet(self, snippet: dict[str, Any]) -> Response | None:
        title = snippet.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > 100 or "<" in title or ">" in title:
            return self.api_error("invalidTitle", location="body.snippet.title", locationType="other")
        description = snippet.get("description", "")
        if (not isinstance(description, str) or len(description.encode("utf-8")) > 5000
                or "<" in description or ">" in description):
            return self.api_error("invalidDescription", location="body.snippet.description", locationType="other")
        tags = snippet.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) or tags_length(tags) > 500:
            return self.api_error("invalidTags", location="body.snippet.tags", locationType="other")
        if "categoryId" in snippet and str(snippet["categoryId"]) not in CATEGORIES:
            return self.api_error("invalidCategoryId", location="body.snippet.categoryId", locationType="other")
        return None

    def _check_status(self, status: dict[str, Any]) -> Response | None:
        privacy = status.get("privacyStatus", "public")
        if privacy not in ("public", "private", "unlisted"):
            return self.api_error("invalidVideoMetadata", location="body.status.privacyStatus", locationType="other")
        if "selfDeclaredMadeForKids" in status and not isinstance(status["selfDeclaredMadeForKids"], bool):
            return self.api_error("invalidVideoMetadata", location="body.status.selfDeclaredMadeForKids",
                                  locationType="other")
        if status.get("license", "youtube") not in ("youtube", "creativeCommon"):
            return self.api_error("forbiddenLicenseSetting")
        if "publishAt" in status:
            when = _parse_rfc3339(status["publishAt"])
            # a scheduled publication needs a private video and a time in the future
            if when is None or privacy != "private" or when <= self.now():
                return self.api_error("invalidPublishAt", location="body.status.publishAt", locationType="other")
        return None

    @route("PUT", r"/upload/youtube/v3/videos")
    def upload_put(self, request: Request) -> Response:
        return self._receive(request)

    def _receive(self, request: Request, partial: bool = False) -> Response:
        """A chunk, a whole body, or a status query (`Content-Range: bytes */total`) on a session.
        With `partial`, only part of the chunk persists and the answer is a 503."""
        session = self.sessions.get(request.args.get("upload_id", ""))
        if session is None:
            return self.api_error("notFound", "No upload session with that id.")
        if self.now() > session.created_at + self.config["session_ttl"]:
            status = self.config["expired_session_status"]
            return self.api_error("notFound", "The upload session has expired.", status=status)
        length_header = request.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            return self.api_error("lengthRequired")
        length = int(length_header)
        raw_range = request.headers.get("Content-Range")
        if raw_range is None:  # a single request carrying the whole file
            if length == 0 and session.video_id:
                return self._completed(session, 200)
            if session.received != 0 or length != session.total:
                return self.api_error("badRequest", "Content-Range is required when the body is not the whole file.")
            first, last = 0, session.total - 1
        else:
            match = _CONTENT_RANGE.fullmatch(raw_range.strip())
            if match is None:
                return self.api_error("badRequest", f"Invalid Content-Range: {raw_range}")
            if match["total"] != str(session.total):
                return self.api_error("badRequest", f"The Content-Range total ({match['total']}) does not match the "
                                                    f"declared X-Upload-Content-Length ({session.total}).")
            if match["star"]:
                if partial:
                    return self.server_error(503, request)
                if length != 0:
                    return self.api_error("badRequest", "A status query must have an empty body.")
                return self._session_status(session)
            first, last = int(match["first"]), int(match["last"])
            problem = self._check_range(session, first, last, length)
            if problem is not None:
                return problem
        if session.video_id:
            return self._completed(session, 200)
        received = self._consume(request, length)
        if partial:
            persisted = (received // 2) // self.config["chunk_unit"] * self.config["chunk_unit"]
            session.received += min(persisted, length)
            return self.server_error(503, request)
        if received < length:  # the connection broke mid-chunk: only whole units persist
            session.received += received // self.config["chunk_unit"] * self.config["chunk_unit"]
            return self.api_error("badRequest", "Incomplete chunk.")
        session.received += received
        if session.received == session.total:
            return self._complete(session)
        return self._session_status(session)

    def _check_range(self, session: UploadSession, first: int, last: int, length: int) -> Response | None:
        unit = self.config["chunk_unit"]
        size = last - first + 1
        if last < first or last >= session.total:
            return self.api_error("badRequest", f"Invalid Content-Range: bytes {first}-{last}/{session.total}")
        if size != length:
            return self.api_error("badRequest", f"The Content-Range covers {size} bytes but the body has {length}.")
        if session.video_id:
            return None
        if first != session.received:
            return self.api_error("badRequest", f"Invalid request. According to the Content-Range header, the upload "
                                                f"offset is {first} byte(s), which does not match the "
                                                f"{session.received} byte(s) already received.")
        if last != session.total - 1 and size % unit:
            return self.api_error("badRequest", f"Invalid request. The number of bytes uploaded is required to be a "
                                                f"multiple of {unit}, except for the final request. The received "
                                                f"request contained {size} bytes.")
        return None

    @staticmethod
    def _consume(request: Request, length: int) -> int:
        """Read and count the body without keeping it."""
        stream = request.stream
        received = 0
        try:
            while received < length:
                block = stream.read(min(65536, length - received))
                if not block:
                    break
                received += len(block)
        except ClientDisconnected:
            pass
        return received

    def _session_status(self, session: UploadSession) -> Response:
        if session.video_id:
            return self._completed(session, 200)
        headers = {"Range": f"bytes=0-{session.received - 1}"} if session.received else {}
        # 308 Resume Incomplete; no Range header means nothing has persisted
        return Response(b"", status=308, headers=headers)

    def _complete(self, session: UploadSession) -> Response:
        channel = self._channel(session.user)
        status = dict(session.status)
        if self.config["unverified_project"]:
            status["privacyStatus"] = "private"  # locked to private until the project passes the audit
            status.pop("publishAt", None)
        status.update({"uploadStatus": "uploaded", "license": status.get("license", "youtube"),
                       "embeddable": status.get("embeddable", True),
                       "publicStatsViewable": status.get("publicStatsViewable", True),
                       "madeForKids": bool(status.get("selfDeclaredMadeForKids", False))})
        snippet = {"publishedAt": _rfc3339(self.now()), "channelId": channel["id"], "title": session.snippet["title"],
                   "description": session.snippet.get("description", ""), "channelTitle": channel["title"],
                   "categoryId": str(session.snippet.get("categoryId", "22")), "liveBroadcastContent": "none",
                   **({"tags": session.snippet["tags"]} if session.snippet.get("tags") else {}),
                   **({"defaultLanguage": session.snippet["defaultLanguage"]}
                      if session.snippet.get("defaultLanguage") else {})}
        video = Video(id=_video_id(), user=session.user, channel_id=channel["id"], snippet=snippet, status=status,
                      uploaded_at=self.now(), ready_at=self.now() + self.config["processing_seconds"],
                      outcome=self.config["processing_outcome"],
                      reason=self.config["failure_reason"] if self.config["processing_outcome"] == "failed"
                      else self.config["rejection_reason"])
        self.videos[video.id] = video
        session.video_id = video.id
        self.published.append({"id": video.id, "account": channel["id"], "user": session.user,
                               "title": snippet["title"], "caption": snippet["description"],
                               "privacy": status["privacyStatus"], "created_at": self.now()})
        return self._completed(session, self.config["complete_status"])

    def _completed(self, session: UploadSession, status: int) -> Response:
        video = self.videos[session.video_id]
        self._advance(video)
        return self.json(self._render_video(video, session.parts, owner=True), status=status)

    # ------------------------------------------------------------------ Data API: commentThreads
    @route("POST", r"/youtube/v3/commentThreads")
    def comment_threads_insert(self, request: Request) -> Response:
        """commentThreads.insert (force-ssl, 50 units): a top-level comment of the signed-in
        channel under a video; channelId, videoId and textOriginal are required."""
        token, problem = self._authorize(request, COMMENT_SCOPES)
        if problem is not None:
            return problem
        parts, problem = self._parts(request, {"id", "snippet", "replies"})
        if problem is not None:
            return problem
        if request.mimetype != "application/json":
            return self.api_error("parseError", "This API does not support parsing form-encoded input.")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.api_error("parseError")
        if not self._charge_units(self.config["comment_insert_cost"]):
            return self.api_error("quotaExceeded")
        snippet = body.get("snippet") if isinstance(body.get("snippet"), dict) else {}
        top = snippet.get("topLevelComment") if isinstance(snippet.get("topLevelComment"), dict) else {}
        text = (top.get("snippet") or {}).get("textOriginal") if isinstance(top.get("snippet"), dict) else None
        if not snippet.get("channelId") or not snippet.get("videoId"):
            return self.api_error("channelOrVideoIdMissing", location="body.snippet", locationType="other")
        if not isinstance(text, str) or not text.strip():
            return self.api_error("commentTextRequired", location="body.snippet.topLevelComment.snippet.textOriginal",
                                  locationType="other")
        if len(text) > self.config["comment_max"]:
            return self.api_error("commentTextTooLong", location="body.snippet.topLevelComment.snippet.textOriginal",
                                  locationType="other")
        channel = self._channel(token.user)
        if channel is None:
            return self.api_error("forbidden", "Insufficient permissions to create the comment thread.")
        if channel["id"] in self.config["ineligible_commenters"]:
            return self.api_error("ineligibleAccount")
        video = self.videos.get(str(snippet["videoId"]))
        if video is None or (video.user != token.user and video.status["privacyStatus"] == "private"):
            return self.api_error("videoNotFound", "The video identified by the <code>videoId</code> parameter could "
                                                   "not be found.", location="body.snippet.videoId",
                                  locationType="other")
        if snippet["channelId"] != video.channel_id:
            return self.api_error("channelNotFound", location="body.snippet.channelId", locationType="other")
        if video.status.get("madeForKids"):
            return self.api_error("commentsDisabled")
        now = _rfc3339(self.now())
        thread_id = "Ug" + self.new_id(nbytes=10)
        thread = {"id": thread_id, "videoId": video.id, "channelId": video.channel_id, "text": text,
                  "author": channel["id"], "authorName": channel["title"], "at": now}
        self.threads.append(thread)
        video.statistics["commentCount"] = video.statistics.get("commentCount", 0) + 1
        return self.json(self._render_thread(thread, parts or ["snippet"]))

    @route("GET", r"/youtube/v3/commentThreads")
    def comment_threads_list(self, request: Request) -> Response:
        token, problem = self._authorize(request, READ_SCOPES)
        if problem is not None:
            return problem
        parts, problem = self._parts(request, {"id", "snippet", "replies"})
        if problem is not None:
            return problem
        if not self._charge_units(self.config["list_cost"]):
            return self.api_error("quotaExceeded")
        video_id = request.args.get("videoId")
        if not video_id:
            return self.api_error("missingRequiredParameter", "No filter selected. Expected one of: "
                                                              "allThreadsRelatedToChannelId, id, videoId.",
                                  location="parameters.", locationType="other")
        video = self.videos.get(video_id)
        if video is None or (video.user != token.user and video.status["privacyStatus"] == "private"):
            return self.api_error("videoNotFound", "The video identified by the <code>videoId</code> parameter could "
                                                   "not be found.", location="videoId", locationType="parameter")
        if video.status.get("madeForKids"):
            return self.api_error("commentsDisabled")
        try:
            limit = int(request.args.get("maxResults", "20"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            return self.api_error("badRequest", "Invalid value for maxResults.", location="maxResults",
                                  locationType="parameter")
        threads = [t for t in reversed(self.threads) if t["videoId"] == video_id][:limit]
        return self.json({"kind": "youtube#commentThreadListResponse", "etag": self.new_id(),
                          "pageInfo": {"totalResults": len(threads), "resultsPerPage": limit},
                          "items": [self._render_thread(t, parts) for t in threads]})

    def _render_thread(self, thread: dict[str, Any], parts: list[str]) -> dict[str, Any]:
        item: dict[str, Any] = {"kind": "youtube#commentThread", "etag": self.new_id(), "id": thread["id"]}
        if "snippet" in parts:
            comment = {"kind": "youtube#comment", "etag": self.new_id(), "id": thread["id"], "snippet": {
                "channelId": thread["channelId"], "videoId": thread["videoId"], "textDisplay": thread["text"],
                "textOriginal": thread["text"], "authorDisplayName": thread["authorName"],
                "authorChannelId": {"value": thread["author"]}, "canRate": True, "viewerRating": "none",
                "likeCount": 0, "publishedAt": thread["at"], "updatedAt": thread["at"]}}
            item["snippet"] = {"channelId": thread["channelId"], "videoId": thread["videoId"],
                               "topLevelComment": comment, "canReply": True, "totalReplyCount": 0, "isPublic": True}
        return item

    # ------------------------------------------------------------------ Data API: videos.list
    @route("GET", r"/youtube/v3/videos")
    def videos_list(self, request: Request) -> Response:
        token, problem = self._authorize(request, READ_SCOPES)
        if problem is not None:
            return problem
        parts, problem = self._parts(request, VIDEO_PARTS)
        if problem is not None:
            return problem
        if not self._quota_left():
            return self.api_error("quotaExceeded")
        self._charge()
        if not request.args.get("id"):
            return self.api_error("missingRequiredParameter", "No filter selected. Expected one of: chart, id, "
                                                              "myRated.", location="parameters.", locationType="other")
        ids = [i for i in request.args["id"].split(",") if i]
        if len(ids) > 50:
            return self.api_error("badRequest", "At most 50 video ids per request.", location="id",
                                  locationType="parameter")
        items = []
        for video_id in ids:
            video = self.videos.get(video_id)
            if video is None:
                continue
            self._advance(video)
            owner = video.user == token.user
            if not owner and video.status["privacyStatus"] == "private":
                continue
            items.append(self._render_video(video, parts, owner))
        return self.json({"kind": "youtube#videoListResponse", "etag": self.new_id(), "items": items,
                          "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)}})

    def _advance(self, video: Video) -> None:
        """Apply what the clock has made true: processing finished, scheduled time reached."""
        now = self.now()
        if video.status["uploadStatus"] == "uploaded" and now >= video.ready_at:
            if video.outcome == "failed":
                video.status.update(uploadStatus="failed", failureReason=video.reason)
            elif video.outcome == "rejected":
                video.status.update(uploadStatus="rejected", rejectionReason=video.reason)
            else:
                video.status["uploadStatus"] = "processed"
        publish_at = _parse_rfc3339(video.status.get("publishAt", "")) if video.status.get("publishAt") else None
        if publish_at is not None and now >= publish_at and video.status["uploadStatus"] == "processed":
            video.status["privacyStatus"] = "public"
            del video.status["publishAt"]

    def _status(self, video: Video) -> dict[str, Any]:
        self._advance(video)
        return {"uploadStatus": video.status["uploadStatus"], "privacyStatus": video.status["privacyStatus"]}

    def _render_video(self, video: Video, parts: list[str], owner: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"kind": "youtube#video", "etag": self.new_id(), "id": video.id}
        if "snippet" in parts:
            thumbs = {name: {"url": f"https://i.ytimg.example/vi/{video.id}/{name}.jpg", "width": w, "height": h}
                      for name, w, h in (("default", 120, 90), ("medium", 320, 180), ("high", 480, 360))}
            item["snippet"] = {**video.snippet, "thumbnails": thumbs,
                               "localized": {"title": video.snippet["title"],
                                             "description": video.snippet["description"]}}
        if "status" in parts:
            item["status"] = dict(video.status)
        if "statistics" in parts:
            item["statistics"] = {k: str(v) for k, v in self._statistics(video).items()}
        if "processingDetails" in parts and owner:
            item["processingDetails"] = self._processing(video)
        return item

    def _processing(self, video: Video) -> dict[str, Any]:
        upload = video.status["uploadStatus"]
        if upload == "uploaded":
            total = max(1, int(self.config["processing_seconds"]))
            left = max(0.0, video.ready_at - self.now())
            done = int(total - min(total, left))
            return {"processingStatus": "processing",
                    "processingProgress": {"partsTotal": str(total), "partsProcessed": str(done),
                                           "timeLeftMs": str(int(left * 1000))}}
        if upload == "failed":
            return {"processingStatus": "failed", "processingFailureReason": "transcodeFailed"}
        if upload == "rejected":
            return {"processingStatus": "terminated"}
        return {"processingStatus": "succeeded"}


# ------------------------------------------------------------------------------ helpers
def tags_length(tags: list[str]) -> int:
    """Tag length as YouTube counts it: commas between tags count, a tag with a space counts as if quoted."""
    return sum(len(t) + (2 if " " in t else 0) for t in tags) + max(0, len(tags) - 1)


def _video_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()[:11]


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(value: Any) -> float | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()

