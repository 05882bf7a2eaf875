"""LinkedIn: Sign In with LinkedIn (OpenID Connect) and member posts through the versioned REST API.

A text post is one call, `POST /rest/posts`. A video post goes through the Videos API first;
`checkpoint["stage"]` walks

    init ─> upload (one ~4 MiB part per step) ─> finalize ─> processing (poll) ─> post ─> done

and holds the video URN, the upload instructions, the upload token and the ETags collected so
far, so a crashed upload resumes at its next part. LinkedIn has no idempotency key: a create whose
answer was lost is settled by listing the author's recent posts and matching the commentary; apps
without `r_member_social` (Share on LinkedIn) may not list them, so there the create is sent again
and LinkedIn's duplicate answer, which names the post that went out, settles it.

Every `/rest/` call names the API version (`LinkedIn-Version`, YYYYMM, from
`AURAREELS_LINKEDIN_VERSION`). LinkedIn supports a version about a year and then answers 426;
`/health` warns 30 days before the configured version's sunset.
"""
from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from bridge.config import Settings
from bridge.platforms import options as opt
from bridge.platforms.base import (
    AccountProfile,
    AccountRef,
    CommentTarget,
    CredentialVars,
    EnvSetting,
    FirstComment,
    Issue,
    MediaInfo,
    Metrics,
    PlatformClient,
    PostContent,
    PublishJob,
    Requirements,
    StepResult,
    TokenSet,
    count_utf16_units,
    retry_after_seconds,
)
from bridge.platforms.errors import (
    PlatformError,
    RateLimited,
    Reauthorize,
    Rejected,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.http import PlatformHttp
from bridge.platforms.media import MediaSource

API = "https://api.linkedin.com"
RESERVED = "\\|{}@[]()<>#*_~"
# "#word" of letters and digits becomes a hashtag template; any other "#" stays literal text
_HASHTAG = re.compile(r"(?<!\w)#([^\W_]+)(?!\w)")
_DUPLICATE_OF = re.compile(r"duplicate of (urn:li:(?:share|ugcPost):\d+)", re.IGNORECASE)
MIN_VIDEO_BYTES = 75 * 1024
MAX_RESTARTS = 3  # fresh uploads after expired upload URLs before giving up
MAX_POLLS = 720  # processing polls (about 12 hours at the longest wait) before giving up
RECONCILE_SLACK_MS = 10 * 60 * 1000  # clock difference tolerated when matching a lost post
# our privacy values (and other platforms' names for the same audience) -> LinkedIn visibility
VISIBILITY = {
    "PUBLIC": "PUBLIC", "PUBLIC_TO_EVERYONE": "PUBLIC", "CONNECTIONS": "CONNECTIONS",
    "MUTUAL_FOLLOW_FRIENDS": "CONNECTIONS", "FOLLOWER_OF_CREATOR": "CONNECTIONS", "LOGGED_IN": "LOGGED_IN",
}
# The default LinkedIn-Version: 202607 (July 2026) is listed as current by LinkedIn's versioning
# page in the second half of 2026 and is supported until about July 2027 (checked 2026-12-03).
API_VERSION = "202607"
VERSION_SETTING = EnvSetting("AURAREELS_LINKEDIN_VERSION", r"20\d{2}(0[1-9]|1[0-2])",
                             "a LinkedIn API version YYYYMM such as 202607")
SUNSET_DAY = 15  # LinkedIn sunsets version YYYYMM around the 15th of the same month a year later
SUNSET_WARNING = timedelta(days=30)


def sunset_of(version: str) -> date:
    """The day LinkedIn stops answering `version` (about twelve months after its release)."""
    return date(int(version[:4]) + 1, int(version[4:6]), SUNSET_DAY)


def little_text(text: str) -> str:
    """`text` as LinkedIn "little" commentary: hashtags become `{hashtag|\\#|tag}` templates and
    every other reserved character is backslash-escaped (LinkedIn cuts a post at an unescaped one)."""
    out, position = [], 0
    for match in _HASHTAG.finditer(text):
        out.append(_escape(text[position:match.start()]))
        out.append("{hashtag|\\#|" + match.group(1) + "}")
        position = match.end()
    out.append(_escape(text[position:]))
    return "".join(out)


def _escape(text: str) -> str:
    return "".join("\\" + ch if ch in RESERVED else ch for ch in text)


def seconds_to_utc_midnight(now: datetime | None = None) -> float:
    """LinkedIn's daily limits reset at midnight UTC and it sends no rate-limit headers."""
    now = now or datetime.now(timezone.utc)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(60.0, (midnight - now).total_seconds())


class LinkedInClient(PlatformClient):
    name = "linkedin"
    display_name = "LinkedIn"
    hosts = ("www.linkedin.com", "api.linkedin.com")

    authorize_url = "https://www.linkedin.com/oauth/v2/authorization"
    token_url = "https://www.linkedin.com/oauth/v2/accessToken"
    revoke_url = None  # no documented revoke for member tokens: members remove apps in their settings
    scopes = ("openid", "profile", "email", "w_member_social")
    scope_separator = " "
    token_auth = "body"  # client id and secret in the form body
    credential_vars = CredentialVars("LINKEDIN_CLIENT_ID", "LINKEDIN_CLIENT_SECRET")
    env_settings = (VERSION_SETTING,)
    # Share on LinkedIn: 150 requests per member per day (LinkedIn's figure for the product)
    daily_limit = 150
    options = {"disable_reshare": opt.flag()}
    first_stage = "init"

    restli_protocol: ClassVar[str] = "2.0.0"
    # a comment (socialActions comments, w_member_social) takes 1,250 characters
    first_comment = FirstComment(1250, count_utf16_units, "utf16_units")

    # processing polls the video status; done only reports
    reading_stages = frozenset({"processing", "done"})
    live_stages = frozenset({"done"})  # the post exists (processing is the video, before the post)
    requirements = Requirements(
        caption_max=3000,
        caption_counter=count_utf16_units,  # code points vs UTF-16 unconfirmed: UTF-16 is never shorter
        caption_counting="utf16_units",
        media_types=("video", "text"),
        video_content_types=("video/mp4",),
        max_video_bytes=500 * 1024 * 1024,
        min_duration_sec=3,
        max_duration_sec=30 * 60,
        privacy_levels=tuple(VISIBILITY),
    )

    def __init__(self, settings: Settings, http: PlatformHttp | None = None, *, api_version: str | None = None):
        super().__init__(settings, http)
        # every /rest/ call names this version (YYYYMM)
        self.api_version = api_version or self.env(VERSION_SETTING.name) or API_VERSION

    def health_warnings(self, today: date | None = None) -> list[str]:
        """A warning from 30 days before the configured version's sunset (and after it)."""
        today = today or datetime.now(timezone.utc).date()
        sunset = sunset_of(self.api_version)
        if today < sunset - SUNSET_WARNING:
            return []
        when = "was sunset on" if today >= sunset else "is sunset on"
        return [f"LinkedIn API version {self.api_version} {when} about {sunset.isoformat()} (LinkedIn then answers "
                f"426); set {VERSION_SETTING.name} to a newer version LinkedIn supports."]

    # ------------------------------------------------------------------ accounts
    def fetch_accounts(self, tokens: TokenSet) -> list[AccountProfile]:
        """The member behind the login, from the OpenID Connect userinfo (`sub` is the member id)."""
        response = self.http.request("GET", f"{API}/v2/userinfo",
                                     headers={"Authorization": f"Bearer {tokens.access_token}"})
        self.raise_for(response)
        info = self._json(response)
        sub = info.get("sub")
        if not sub:
            raise Rejected("LinkedIn did not say which member signed in; connect the account again.",
                           platform=self.name, code="profile_unavailable")
        name = info.get("name") or " ".join(filter(None, (info.get("given_name"), info.get("family_name")))) or sub
        return [AccountProfile(
            account_id=sub, account_name=name, tokens=tokens, email=info.get("email"),
            picture_url=info.get("picture"),
            metadata={"author_urn": f"urn:li:person:{sub}", "scopes": tokens.scope or ""},
        )]

    # ------------------------------------------------------------------ requirements
    def check_content(self, content: PostContent, media: MediaInfo | None = None) -> list[Issue]:
        issues = super().check_content(content, media)
        size = media.size if media is not None else None
        if content.media_type == "video" and size is not None and size < MIN_VIDEO_BYTES:
            issues.append(Issue("video", "video_too_small", "LinkedIn needs a video of at least 75 KB."))
        return issues

    @staticmethod
    def visibility(privacy_level: str | None) -> str:
        return VISIBILITY.get(privacy_level or "PUBLIC", "PUBLIC")

    # ------------------------------------------------------------------ publishing
    def start_stage(self, job: PublishJob) -> str:
        return "post" if job.content.media_type == "text" else self.first_stage

    def _stage(self, job: PublishJob) -> str:
        return job.checkpoint.get("stage") or self.start_stage(job)

    def step_init(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        self._check_caption(job)  # before uploading anything that LinkedIn would then refuse to post
        info = MediaSource(self.settings, job.content.video_url or "").probe()
        if not info.size:
            raise Rejected("The video server does not report the file size; LinkedIn needs it to start the upload.",
                           platform=self.name, code="media_size_unknown")
        response = self._rest(job.account, "POST", "/rest/videos?action=initializeUpload", json={
            "initializeUploadRequest": {"owner": self._author(job.account), "fileSizeBytes": info.size,
                                        "uploadCaptions": False, "uploadThumbnail": False}})
        self.raise_for(response, sent_effect=True)
        value = self._json(response).get("value") or {}
        parts = [[int(p["firstByte"]), int(p["lastByte"]), p["uploadUrl"]] for p in value.get("uploadInstructions", [])]
        if not value.get("video") or not parts:
            raise Transient("LinkedIn answered the upload request without upload instructions.", platform=self.name,
                            code="bad_response")
        return StepResult({"stage": "upload", "video": value["video"], "upload_token": value.get("uploadToken", ""),
                           "parts": parts, "expires_at": value.get("uploadUrlsExpireAt"), "etags": [],
                           "size": info.size, "restarts": cp.get("restarts", 0)})

    def step_upload(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        index = len(cp["etags"])
        first, last, url = cp["parts"][index]
        if cp.get("expires_at") and time.time() * 1000 >= cp["expires_at"]:
            return self._restart(cp)
        source = MediaSource(self.settings, job.content.video_url or "")
        # PUT of one part is idempotent: a timeout or 5xx is Transient and the same part goes again
        response = self.http.request("PUT", url, content=source.iter_range(first, last), headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(last - first + 1)})
        if response.status_code == 403 and "expired" in str(self._json(response, strict=False).get("message", "")):
            return self._restart(cp)
        self.raise_for(response)
        etag = response.headers.get("ETag")
        if not etag:
            raise Transient("LinkedIn accepted a video part without an ETag; it will be sent again.",
                            platform=self.name, code="bad_response")
        cp["etags"] = [*cp["etags"], etag]
        job.progress(last + 1, cp["size"])
        if len(cp["etags"]) == len(cp["parts"]):
            cp["stage"] = "finalize"
        return StepResult(cp)

    def _restart(self, cp: dict[str, Any]) -> StepResult:
        """The upload URLs expired: start a fresh upload (the old video never publishes by itself)."""
        if cp.get("restarts", 0) >= MAX_RESTARTS:
            raise Rejected("LinkedIn's upload links kept expiring before the video was sent; retry the post.",
                           platform=self.name, code="upload_expired")
        return StepResult({"stage": "init", "restarts": cp.get("restarts", 0) + 1})

    def step_finalize(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        response = self._rest(job.account, "POST", "/rest/videos?action=finalizeUpload", json={
            "finalizeUploadRequest": {"video": cp["video"], "uploadToken": cp.get("upload_token", ""),
                                      "uploadedPartIds": cp["etags"]}})
        self.raise_for(response, sent_effect=True)
        return StepResult(self._processing(cp))

    @staticmethod
    def _processing(cp: dict[str, Any]) -> dict[str, Any]:
        """After finalize only the video URN matters; the signed upload URLs are dropped."""
        return {"stage": "processing", "video": cp["video"], "size": cp.get("size"), "polls": 0}

    def step_processing(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        status, reason = self._video_status(job.account, cp["video"])
        if status == "AVAILABLE":
            return StepResult({**cp, "stage": "post", "since": int(time.time() * 1000)})
        if status == "PROCESSING_FAILED":
            raise Rejected(f"LinkedIn could not process the video ({reason or 'no reason given'}); check that it is "
                           f"an MP4 of 3 seconds to 30 minutes and post it again.", platform=self.name,
                           code="video_processing_failed", platform_code="PROCESSING_FAILED")
        polls = cp.get("polls", 0) + 1
        if polls > MAX_POLLS:
            raise Rejected("LinkedIn is still processing the video after many hours; post it again later.",
                           platform=self.name, code="video_processing_timeout")
        return StepResult({**cp, "polls": polls}, wait=min(60.0, 5.0 * polls))

    def step_post(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        self._check_caption(job)
        response = self._rest(job.account, "POST", "/rest/posts", json=self._post_body(job, cp))
        if response.status_code == 422 and cp.get("retried"):
            # After a lost create that the author's list did not show, LinkedIn's duplicate check
            # names the post that did go out: it is ours.
            found = _DUPLICATE_OF.search(str(self._json(response, strict=False).get("message", "")))
            if found:
                return self._done(job, {**cp, "stage": "done", "post": found.group(1)})
        self.raise_for(response, sent_effect=True)
        urn = response.headers.get("x-restli-id")
        if not urn:
            raise UnknownOutcome("LinkedIn accepted the post without saying its id; checking its records.",
                                 platform=self.name, code="unknown_outcome", http_status=response.status_code)
        return self._done(job, {**cp, "stage": "done", "post": urn})

    def step_done(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        return self._done(job, cp)

    def _done(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        urn = cp["post"]
        return StepResult(cp, done=True, platform_post_id=urn,
                          platform_post_url=f"https://www.linkedin.com/feed/update/{urn}/")

    def _post_body(self, job: PublishJob, cp: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "author": self._author(job.account),
            "commentary": little_text(job.caption),
            "visibility": self.visibility(job.content.privacy_level),
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                             "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": bool(job.content.extra.get("disable_reshare", False)),
        }
        if cp.get("video"):
            media = {"id": cp["video"]}
            if job.content.title:
                media["title"] = job.content.title
            body["content"] = {"media": media}
        return body

    def _check_caption(self, job: PublishJob) -> None:
        length = count_utf16_units(job.caption)
        if length > self.requirements.caption_max:
            raise Rejected(f"The text is {length} characters; LinkedIn allows {self.requirements.caption_max}. "
                           f"Shorten it by {length - self.requirements.caption_max}.", platform=self.name,
                           code="caption_too_long")

    # ------------------------------------------------------------------ first comment
    def post_comment(self, account: AccountRef, target: CommentTarget, message: str) -> str:
        """`POST /rest/socialActions/{post urn}/comments` as the member; returns the comment's URN."""
        urn = target.platform_post_id
        response = self._rest(account, "POST", f"/rest/socialActions/{quote(urn, safe='')}/comments",
                              json={"actor": self._author(account), "object": urn, "message": {"text": message}})
        self.raise_for(response, sent_effect=True)
        body = self._json(response, strict=False)
        comment = body.get("commentUrn") or response.headers.get("x-restli-id") or body.get("id")
        if not comment:
            raise UnknownOutcome("LinkedIn accepted the comment without saying its id.", platform=self.name,
                                 code="unknown_outcome", http_status=response.status_code)
        return str(comment)

    def find_comment(self, account: AccountRef, target: CommentTarget, message: str, since: datetime) -> str | None:
        """The member's comment with this text under the post. Reading comments needs
        `r_member_social`, which Share-on-LinkedIn apps do not get: then it cannot be told (403)."""
        urn = quote(target.platform_post_id, safe="")
        response = self._rest(account, "GET", f"/rest/socialActions/{urn}/comments?count=100")
        if response.status_code == 403:
            raise UnknownOutcome("LinkedIn does not let this site's app read comments (r_member_social), so whether "
                                 "the comment went out cannot be checked.", platform=self.name, code="unconfirmed",
                                 http_status=403)
        self.raise_for(response)
        author = self._author(account)
        for element in self._json(response).get("elements") or []:
            text = (element.get("message") or {}).get("text") if isinstance(element, dict) else None
            if text == message and element.get("actor") in (None, author):
                return str(element.get("commentUrn") or element.get("id"))
        return None

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, job: PublishJob) -> StepResult:
        """Settle the effect in flight at `job.checkpoint`'s stage from LinkedIn's own records."""
        cp = dict(job.checkpoint, stage=self._stage(job))
        stage = cp["stage"]
        if stage == "done":
            return self._done(job, cp)
        if stage == "finalize":
            status, _ = self._video_status(job.account, cp["video"])
            # still WAITING_UPLOAD: the finalize did not land, and sending it again is safe
            return StepResult(cp if status == "WAITING_UPLOAD" else self._processing(cp))
        if stage == "post":
            urn = self._find_post(job, cp)
            if urn:
                return self._done(job, {**cp, "stage": "done", "post": urn})
            # not listed, or not listable: sending it again is safe, because LinkedIn answers a
            # duplicate of a post that did go out by naming that post (see step_post)
            return StepResult({**cp, "retried": True})
        # init: an initialized video with no bytes never publishes by itself, so a fresh init is
        # safe; upload and processing only send idempotent PUTs and reads.
        return StepResult(cp)

    def _find_post(self, job: PublishJob, cp: dict[str, Any]) -> str | None:
        """Our post among the author's recent ones; None when absent or when the app may not list
        them (403: listing needs r_member_social, which Share-on-LinkedIn apps do not get)."""
        author = self._author(job.account)
        response = self._rest(job.account, "GET", f"/rest/posts?author={quote(author, safe='')}&q=author&count=20"
                                                  f"&sortBy=LAST_MODIFIED")
        if response.status_code == 403:
            return None
        self.raise_for(response)
        expected = little_text(job.caption)
        since = (cp.get("since") or int(time.time() * 1000) - 86_400_000) - RECONCILE_SLACK_MS
        for post in self._json(response).get("elements") or []:
            media = ((post.get("content") or {}).get("media") or {}).get("id")
            if post.get("commentary", "") != expected or media != cp.get("video"):
                continue
            if int(post.get("createdAt") or 0) >= since:
                return post.get("id")
        return None

    # ------------------------------------------------------------------ metrics
    def fetch_metrics(self, account: AccountRef, platform_post_id: str) -> Metrics:
        """Member post analytics where the login carries `r_member_postAnalytics` (LinkedIn approves
        it per app); else likes and comments from socialActions where it carries the restricted
        `r_member_social`. A self-serve (Share on LinkedIn) app has neither: LinkedIn gives it no
        metrics at all, which is `metrics_unavailable`. A login whose scopes were not recorded
        tries both; LinkedIn's 403 says which it lacks."""
        recorded = account.metadata.get("scopes")
        scopes = set(re.split(r"[,\s]+", str(recorded))) if recorded is not None else None
        encoded = quote(platform_post_id, safe="")
        if scopes is None or "r_member_postAnalytics" in scopes:
            kind = "ugc" if ":ugcPost:" in platform_post_id else "share"
            counts: dict[str, int] = {}
            for query_type in ("IMPRESSION", "MEMBERS_REACHED", "RESHARE", "REACTION", "COMMENT"):
                response = self._rest(account, "GET", f"/rest/memberCreatorPostAnalytics?q=entity&entity=({kind}:"
                                                      f"{encoded})&queryType={query_type}&aggregation=TOTAL")
                if response.status_code == 403:
                    break  # the app lacks the analytics product
                self.raise_for(response)
                elements = self._json(response).get("elements") or [{}]
                counts[query_type] = int(elements[0].get("count", elements[0].get("value")) or 0)
            else:
                return Metrics(views=counts["IMPRESSION"], reach=counts["MEMBERS_REACHED"],
                               shares=counts["RESHARE"], likes=counts["REACTION"], comments=counts["COMMENT"])
        if scopes is None or "r_member_social" in scopes:
            response = self._rest(account, "GET", f"/rest/socialActions/{encoded}")
            if response.status_code != 403:
                self.raise_for(response)
                body = self._json(response)
                return Metrics(likes=int((body.get("likesSummary") or {}).get("totalLikes") or 0),
                               comments=int((body.get("commentsSummary") or {}).get("aggregatedTotalComments") or 0))
        raise Rejected("LinkedIn shares post statistics only with apps it approved for member post analytics; "
                       "this site cannot read them.", platform=self.name, code="metrics_unavailable")

    # ------------------------------------------------------------------ HTTP and errors
    def _author(self, account: AccountRef) -> str:
        return account.metadata.get("author_urn") or f"urn:li:person:{account.account_id}"

    def _video_status(self, account: AccountRef, urn: str) -> tuple[str, str | None]:
        response = self._rest(account, "GET", f"/rest/videos/{quote(urn, safe='')}")
        self.raise_for(response)
        body = self._json(response)
        return body.get("status", ""), body.get("processingFailureReason")

    def _rest(self, account: AccountRef, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {account.access_token}", "LinkedIn-Version": self.api_version,
                   "X-Restli-Protocol-Version": self.restli_protocol}
        return self.http.request(method, f"{API}{path}", headers=headers, **kwargs)

    def map_error(self, response: httpx.Response, body: Any = None) -> PlatformError:
        """LinkedIn's REST errors (`status`, `serviceErrorCode`, `code`, `message`) into the taxonomy."""
        body = body if isinstance(body, dict) else {}
        status = response.status_code
        code = str(body.get("code") or body.get("error") or "")
        service = body.get("serviceErrorCode")
        message = str(body.get("message") or body.get("error_description") or "")
        common = {"platform": self.name, "platform_code": code or service, "http_status": status}
        if code == "REVOKED_ACCESS_TOKEN" or service == 65601:
            return Reauthorize("The LinkedIn member removed this app's access; connect the LinkedIn account again.",
                               code="token_revoked", **common)
        if status == 401:
            expired = code == "EXPIRED_ACCESS_TOKEN" or service == 65602
            return TokenExpired("LinkedIn no longer accepts the saved login; refreshing it.",
                                code="token_expired" if expired else "token_invalid", **common)
        if status == 429:
            return RateLimited("LinkedIn's daily limit for this account or app is reached; the post continues after "
                               "midnight UTC.", retry_after=retry_after_seconds(response) or seconds_to_utc_midnight(),
                               code="rate_limited", **common)
        if code in ("VERSION_MISSING", "NONEXISTENT_VERSION") or status == 426:
            return Rejected(f"LinkedIn no longer accepts API version {self.api_version} that this bridge sends; the "
                            f"site administrator must set {VERSION_SETTING.name} to a version LinkedIn supports.",
                            code="api_version_unsupported", **common)
        if "duplicate" in message.lower():
            return Rejected("LinkedIn refused the post because the same text was posted recently; change the text and "
                            "post again.", code="duplicate_content", **common)
        if status == 403:
            if "video resource" in message.lower():
                return Rejected("LinkedIn refused access to the uploaded video; post it again.",
                                code="video_forbidden", **common)
            return Rejected("LinkedIn refused: this connection lacks the permission to post as the member (Share on "
                            "LinkedIn, w_member_social); connect the account again and allow posting.",
                            code="permission_missing", **common)
        if status in (400, 422):
            detail = _input_error(body) or message or f"HTTP {status}"
            if "commentary" in detail and "length" in detail:
                return Rejected(f"LinkedIn refused the text as too long ({detail}); shorten it.",
                                code="caption_too_long", **common)
            return Rejected(f"LinkedIn refused the post: {detail}.", code="invalid_request", **common)
        return super().map_error(response, body)


def _input_error(body: dict[str, Any]) -> str | None:
    errors = ((body.get("errorDetails") or {}).get("inputErrors") or [])
    if errors and isinstance(errors[0], dict):
        return errors[0].get("description")
    return None
