"""YouTube: Google OAuth 2.0 (web-server flow) and the Data API v3 resumable `videos.insert`.

Publishing steps, on `checkpoint["stage"]`:

    init        probe the video, start a resumable session (POST; one call of the project's
                daily upload bucket)
                -> upload {session_uri, total, offset, chunk_size, ...}
    upload      send one chunk (a multiple of 256 KiB except the last) from `offset`; 308 moves
                `offset` to what the session reports; the final chunk answers with the video
                -> processing {video_id, ...}
    processing  poll `videos?part=status,processingDetails` until uploadStatus is processed
                -> done
    done        the finished result again (re-running a completed job is harmless)

A session produces at most one video, so resending into the same session never duplicates. An
offset the session has not confirmed in this process (a new process, or a chunk that failed) is
first asked of the session with `Content-Range: bytes */total`; the upload goes on from there.
"""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx

from bridge.config import Settings
from bridge.platforms import options as opt
from bridge.platforms.base import (
    AccountProfile,
    AccountRef,
    CommentTarget,
    CredentialVars,
    FirstComment,
    Issue,
    MediaInfo,
    Metrics,
    PlatformClient,
    PostContent,
    ProjectLimit,
    PublishJob,
    Quota,
    Requirements,
    StepResult,
    TokenSet,
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

API = "https://www.googleapis.com/youtube/v3"
UPLOAD_URL = "https://www.googleapis.com/upload/youtube/v3/videos"
WATCH_URL = "https://www.youtube.com/watch?v={}"
PACIFIC = ZoneInfo("America/Los_Angeles")
UNIT = 256 * 1024  # every chunk but the last is a multiple of this
TITLE_MAX = 100
TAGS_MAX = 500
MAX_SESSION_RESTARTS = 3

# our privacy levels -> YouTube's privacyStatus (FRIENDS has no YouTube audience: unlisted is closest)
PRIVACY = {"PUBLIC": "public", "FRIENDS": "unlisted", "UNLISTED": "unlisted", "PRIVATE": "private"}
# a channel's upload cap (uploadLimitExceeded) clears as its rolling window moves: ask again then
UPLOAD_LIMIT_WAIT = 3600.0

# Data API reasons that refuse the content or the request for good: reason -> (code, message)
REFUSALS: dict[str, tuple[str, str]] = {
    "invalidTitle": ("invalid_title", "YouTube refused the title: it needs 1 to 100 characters and no < or >."),
    "invalidDescription": ("invalid_description",
                           "YouTube refused the description: keep it under 5,000 bytes and without < or >."),
    "invalidTags": ("invalid_tags", "YouTube refused the tags: together they must stay under 500 characters."),
    "invalidCategoryId": ("invalid_category", "YouTube does not know the chosen category; pick another one."),
    "invalidPublishAt": ("invalid_publish_at",
                         "YouTube refused the scheduled time: it must be in the future, with the video private "
                         "until then."),
    "invalidVideoMetadata": ("invalid_video_metadata", "YouTube refused the video's details; check the privacy "
                                                       "and made-for-kids settings."),
    "forbidden": ("forbidden", "YouTube does not allow this upload for this channel."),
    "forbiddenPrivacySetting": ("forbidden_privacy_setting",
                                "YouTube does not allow the chosen privacy for this channel; pick another."),
    "forbiddenLicenseSetting": ("forbidden_license_setting", "YouTube does not allow the chosen license."),
    "mediaBodyRequired": ("media_required", "YouTube received no video; post again."),
    "badContent": ("video_format_unsupported", "YouTube does not accept this file type; upload an MP4 video."),
    "videoNotFound": ("video_not_found", "The video is no longer on YouTube; it may have been deleted."),
    # commentThreads.insert
    "commentsDisabled": ("comments_disabled", "Comments are turned off for this YouTube video (videos made for kids "
                                              "have none), so the first comment could not be posted."),
    "commentTextTooLong": ("first_comment_too_long", "YouTube refused the comment as too long."),
    "commentTextRequired": ("first_comment_empty", "YouTube refused an empty comment."),
    "ineligibleAccount": ("comment_account_ineligible", "YouTube does not let this channel comment through the API "
                                                        "until its YouTube account is linked to its Google account."),
    "channelNotFound": ("channel_not_found", "YouTube cannot find the channel of this video."),
    "processingFailure": ("comment_refused", "YouTube could not process the comment."),
}
FAILURES = {  # status.failureReason
    "codec": "YouTube could not read the video's codec; export it as H.264 MP4 and post again.",
    "conversion": "YouTube could not convert the video; export it again as H.264 MP4 and post again.",
    "emptyFile": "YouTube received an empty file; check the video and post again.",
    "invalidFile": "YouTube could not read the file as a video; export it again as MP4.",
    "tooSmall": "YouTube found the video too small to process; check the file.",
    "uploadAborted": "The upload to YouTube was cut off; post again.",
}
REJECTIONS = {  # status.rejectionReason
    "duplicate": "YouTube rejected the video as a duplicate of one already on the channel.",
    "claim": "YouTube rejected the video because of a copyright claim.",
    "copyright": "YouTube rejected the video for copyright infringement.",
    "inappropriate": "YouTube rejected the video as inappropriate.",
    "termsOfUse": "YouTube rejected the video as a breach of its Terms of Service.",
    "trademark": "YouTube rejected the video for trademark infringement.",
    "legal": "YouTube rejected the video for legal reasons.",
    "length": "YouTube rejected the video as too long for this channel; verify the channel to post videos over 15 "
              "minutes.",
    "uploaderAccountClosed": "YouTube rejected the video because the channel is closed.",
    "uploaderAccountSuspended": "YouTube rejected the video because the channel is suspended.",
}


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def tags_length(tags: list[str]) -> int:
    """Tag length as YouTube counts it: commas between tags count, a tag with a space counts as if quoted."""
    return sum(len(t) + (2 if " " in t else 0) for t in tags) + max(0, len(tags) - 1)


def seconds_until_quota_reset(now: datetime | None = None) -> float:
    """Seconds until the next midnight Pacific time, when YouTube resets every project's quota."""
    local = (now or datetime.now(timezone.utc)).astimezone(PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), time.min, tzinfo=PACIFIC)
    # subtract in UTC: same-zone subtraction is wall-clock and a DST day has 23 or 25 hours
    return (midnight.astimezone(timezone.utc) - local.astimezone(timezone.utc)).total_seconds()


def parse_publish_at(raw: Any) -> datetime | None:
    """`content.extra["publish_at"]` (ISO 8601 with a zone, or naive UTC) as aware UTC; None when absent.
    Raises ValueError for anything else."""
    if raw in (None, ""):
        return None
    if isinstance(raw, datetime):
        value = raw
    else:
        text = str(raw).strip()
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc).replace(microsecond=0)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 has no UTC year
        raise ValueError("publish_at is out of range") from None


def _snake(reason: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", reason).lower()


class YouTubeClient(PlatformClient):
    name = "youtube"
    display_name = "YouTube"
    hosts = ("accounts.google.com", "oauth2.googleapis.com", "www.googleapis.com")
    credential_vars = CredentialVars("YOUTUBE_CLIENT_ID", "YOUTUBE_CLIENT_SECRET")
    # A channel's own cap (uploadLimitExceeded) is not published; 50 a rolling day is a cautious
    # figure. The project's bucket (since 2026-06-01: 100 videos.insert calls a day for the whole
    # app, reset at midnight Pacific) is counted across every channel.
    daily_limit = 50
    project_limit = ProjectLimit(100, "America/Los_Angeles", "AURAREELS_PROJECT_QUOTA_YOUTUBE")
    options = {
        "tags": opt.texts(500, 100),
        "category_id": opt.text(4, r"\d{1,4}"),
        "default_language": opt.text(20, r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*"),
        "made_for_kids": opt.flag(),
        "contains_synthetic_media": opt.flag(),
        "notify_subscribers": opt.flag(),
        "publish_at": opt.datetime_text(),
    }
    first_stage = "init"

    authorize_url = "https://accounts.google.com/o/oauth2/v2/auth"
    token_url = "https://oauth2.googleapis.com/token"
    revoke_url = "https://oauth2.googleapis.com/revoke"
    # upload to publish; readonly to read the channel, processing status and statistics; force-ssl
    # for the first comment (commentThreads.insert accepts no other scope)
    scopes = ("https://www.googleapis.com/auth/youtube.upload", "https://www.googleapis.com/auth/youtube.readonly",
              "https://www.googleapis.com/auth/youtube.force-ssl")
    scope_separator = " "
    # offline + consent: Google issues a refresh token only then (a re-connecting user otherwise gets none)
    extra_authorize_params = {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"}
    # a refresh answer carries no refresh_token; the stored one stays valid
    keeps_refresh_token = True

    # a top-level comment (commentThreads.insert) takes up to 10,000 characters
    first_comment = FirstComment(10_000)

    # processing polls videos.list; done only reports
    reading_stages = frozenset({"processing", "done"})
    live_stages = frozenset({"processing", "done"})  # the video exists once the upload completed
    requirements = Requirements(
        caption_max=5000,  # the description, in UTF-8 bytes
        caption_counter=utf8_bytes,
        caption_unit="bytes",
        caption_counting="utf8_bytes",
        hashtags_max=60,  # past 60 YouTube ignores every hashtag of the video
        title_max=TITLE_MAX,
        media_types=("video",),
        video_content_types=("video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo",
                             "video/mpeg", "video/3gpp", "application/octet-stream"),
        max_video_bytes=256 * 1024 ** 3,
        max_duration_sec=12 * 3600,  # verified channels; unverified ones stop at 15 minutes
        privacy_levels=tuple(PRIVACY),
    )

    # bytes per upload request: a multiple of 256 KiB; Google recommends at least 8 MiB
    chunk_size: ClassVar[int] = 8 * 1024 * 1024

    def __init__(self, settings: Settings, http: PlatformHttp | None = None):
        super().__init__(settings, http)
        # session URI -> offset the session confirmed to this process; anything else is asked first
        self._confirmed: dict[str, int] = {}

    # ------------------------------------------------------------------ OAuth hooks
    def revoke_params(self, account: AccountRef) -> dict[str, str]:
        # Google takes only the token; revoking the refresh token ends the whole grant
        return {"token": account.refresh_token or account.access_token}

    def fetch_accounts(self, tokens: TokenSet) -> list[AccountProfile]:
        """The channel of the Google account that logged in. A Google account without a channel
        raises `Rejected` (code `youtube_channel_required`)."""
        response = self._get("channels", tokens.access_token, part="snippet", mine="true")
        items = self._json(response).get("items") or []
        if not items:
            raise Rejected("This Google account has no YouTube channel; create one on YouTube, then connect again.",
                           platform=self.name, code="youtube_channel_required")
        channel = items[0]
        snippet = channel.get("snippet") or {}
        thumbs = snippet.get("thumbnails") or {}
        picture = next((thumbs[k]["url"] for k in ("high", "medium", "default") if thumbs.get(k, {}).get("url")), None)
        return [AccountProfile(account_id=channel["id"], account_name=snippet.get("title") or channel["id"],
                               tokens=tokens, username=snippet.get("customUrl"), picture_url=picture,
                               metadata={"custom_url": snippet.get("customUrl")})]

    # ------------------------------------------------------------------ content
    def compose_title(self, content: PostContent) -> str:
        """The video title: the creator's own title, else the caption's first line without < and >,
        cut at a word to 100 characters."""
        if content.title and content.title.strip():
            return content.title.strip()
        first = next((line.strip() for line in (content.caption or "").splitlines() if line.strip()), "")
        first = re.sub(r"\s+", " ", first.replace("<", "").replace(">", "")).strip()
        if len(first) <= TITLE_MAX:
            return first
        cut = first[:TITLE_MAX - 1]
        if " " in cut[TITLE_MAX // 2:]:
            cut = cut[:cut.rindex(" ")]
        return cut.rstrip() + "…"

    def tags(self, content: PostContent) -> list[str]:
        """Video tags: the hashtags and `extra["tags"]`, without `#`, deduplicated, trimmed to YouTube's
        500-character total (tags are extra metadata: the hashtags stay in the description)."""
        tags: list[str] = []
        seen: set[str] = set()
        for raw in list(content.hashtags) + list(content.extra.get("tags") or []):
            tag = str(raw).strip().lstrip("#").replace("<", "").replace(">", "").strip()
            if tag and tag.lower() not in seen and tags_length(tags + [tag]) <= TAGS_MAX:
                seen.add(tag.lower())
                tags.append(tag)
        return tags

    def check_content(self, content: PostContent, media: MediaInfo | None = None) -> list[Issue]:
        # YouTube has a title and a description: the caption (with hashtags) is the description
        description = self.compose_caption(content)
        issues = self.requirements.check(self.display_name, content, description, media)
        title = self.compose_title(content)
        if not title:
            issues.append(Issue("title", "title_required",
                                "YouTube needs a title; add one, or a caption whose first line can serve as one."))
        elif "<" in title or ">" in title:
            issues.append(Issue("title", "invalid_characters", "YouTube titles cannot contain < or >; remove them."))
        if "<" in description or ">" in description:
            issues.append(Issue("caption", "invalid_characters",
                                "YouTube descriptions cannot contain < or >; remove them."))
        try:
            publish_at = parse_publish_at(content.extra.get("publish_at"))
        except ValueError:
            issues.append(Issue("publish_at", "invalid_publish_at",
                                "The YouTube publish time is not a date; use ISO 8601, e.g. 2026-05-01T15:00:00Z."))
            publish_at = None
        if publish_at is not None:
            if publish_at <= datetime.now(timezone.utc):
                issues.append(Issue("publish_at", "publish_at_in_past", "The YouTube publish time has passed; pick "
                                                                        "a time in the future."))
            if content.privacy_level not in (None, "PUBLIC"):
                issues.append(Issue("publish_at", "publish_at_needs_public",
                                    "A YouTube publish time makes the video public at that time; choose Public "
                                    "or remove the time."))
        return issues

    def video_resource(self, content: PostContent, description: str) -> dict[str, Any]:
        """The `snippet` and `status` sent when the upload session starts."""
        snippet: dict[str, Any] = {"title": self.compose_title(content), "description": description,
                                   "categoryId": str(content.extra.get("category_id") or "22")}
        tags = self.tags(content)
        if tags:
            snippet["tags"] = tags
        if content.extra.get("default_language"):
            snippet["defaultLanguage"] = str(content.extra["default_language"])
        # no choice means private: an unintended public video cannot be taken back
        status: dict[str, Any] = {"privacyStatus": PRIVACY.get(content.privacy_level or "PRIVATE", "private"),
                                  "selfDeclaredMadeForKids": bool(content.extra.get("made_for_kids", False))}
        if "contains_synthetic_media" in content.extra:
            status["containsSyntheticMedia"] = bool(content.extra["contains_synthetic_media"])
        try:
            publish_at = parse_publish_at(content.extra.get("publish_at"))
        except ValueError:
            raise Rejected("The YouTube publish time is not a date; use ISO 8601, e.g. 2026-05-01T15:00:00Z.",
                           platform=self.name, code="invalid_publish_at") from None
        if publish_at is not None and publish_at > datetime.now(timezone.utc) + timedelta(minutes=1):
            # YouTube honours publishAt only on a private video, which turns public at that time
            status.update(privacyStatus="private", publishAt=publish_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        elif publish_at is not None:
            # the time has passed (the post waited): going public now is what the creator asked for
            status["privacyStatus"] = "public"
        return {"snippet": snippet, "status": status}

    # ------------------------------------------------------------------ publishing
    def step_done(self, job: PublishJob, checkpoint: dict[str, Any]) -> StepResult:
        return self._finished(checkpoint)

    def step_init(self, job: PublishJob, checkpoint: dict[str, Any]) -> StepResult:
        if not job.content.video_url:
            raise Rejected("YouTube posts need a video.", platform=self.name, code="media_required")
        info = MediaSource(self.settings, job.content.video_url).probe()
        if not info.size:
            raise Rejected("The video's size could not be read; check that the video address serves the file.",
                           platform=self.name, code="media_size_unknown")
        content_type = (info.content_type or "").split(";")[0].strip().lower()
        if not content_type.startswith("video/"):
            content_type = "application/octet-stream"
        resource = self.video_resource(job.content, job.caption or self.compose_caption(job.content))
        params = {"uploadType": "resumable", "part": "snippet,status"}
        if job.content.extra.get("notify_subscribers") is False:
            params["notifySubscribers"] = "false"
        response = self.http.request("POST", UPLOAD_URL, params=params, json=resource, idempotent=False, headers={
            **self._auth(job.account.access_token), "X-Upload-Content-Length": str(info.size),
            "X-Upload-Content-Type": content_type})
        self.raise_for(response, sent_effect=True)
        session_uri = response.headers.get("Location")
        if not session_uri:
            # a session that never receives bytes can never become a video: starting again is safe
            raise Transient("YouTube did not return an upload address; the upload will start again.",
                            platform=self.name, code="bad_response", http_status=response.status_code)
        chunk = max(UNIT, self.chunk_size // UNIT * UNIT)
        self._confirmed[session_uri] = 0  # a new session holds nothing: no need to ask it
        return StepResult({
            "stage": "upload", "session_uri": session_uri, "total": info.size, "offset": 0, "chunk_size": chunk,
            "content_type": content_type, "privacy": resource["status"]["privacyStatus"],
            "publish_at": resource["status"].get("publishAt"), "restarts": checkpoint.get("restarts", 0),
        })

    def step_upload(self, job: PublishJob, checkpoint: dict[str, Any]) -> StepResult:
        uri, total = checkpoint["session_uri"], checkpoint["total"]
        if self._confirmed.get(uri) != checkpoint["offset"]:
            state, value = self._upload_state(self._query_session(job, checkpoint), sent_effect=False)
            if state != "partial":
                return self._settle(job, checkpoint, state, value)
            checkpoint["offset"] = value
        offset = checkpoint["offset"]
        end = min(offset + checkpoint["chunk_size"], total) - 1
        last = end == total - 1
        body = MediaSource(self.settings, job.content.video_url).iter_range(offset, end)
        self._confirmed.pop(uri, None)
        # only the final chunk can create the video: its failure is an unknown outcome
        response = self.http.request("PUT", uri, content=body, idempotent=not last, headers={
            **self._auth(job.account.access_token), "Content-Length": str(end - offset + 1),
            "Content-Range": f"bytes {offset}-{end}/{total}", "Content-Type": checkpoint["content_type"]})
        state, value = self._upload_state(response, sent_effect=last)
        return self._settle(job, checkpoint, state, value)

    def _query_session(self, job: PublishJob, checkpoint: dict[str, Any]) -> httpx.Response:
        """Ask the session how many bytes it holds (`Content-Range: bytes */total`, empty body)."""
        return self.http.request("PUT", checkpoint["session_uri"], content=b"", idempotent=True, headers={
            **self._auth(job.account.access_token), "Content-Length": "0",
            "Content-Range": f"bytes */{checkpoint['total']}"})

    def _upload_state(self, response: httpx.Response, *, sent_effect: bool) -> tuple[str, Any]:
        """Read an upload-session answer: ("partial", next offset), ("complete", video) or ("gone", None)."""
        if response.status_code == 308:
            # 308 Resume Incomplete; without a Range header nothing has persisted
            match = re.fullmatch(r"bytes=0-(\d+)", response.headers.get("Range", "").strip())
            return "partial", int(match.group(1)) + 1 if match else 0
        if response.status_code in (200, 201):
            video = self._json(response)
            if not isinstance(video, dict) or not video.get("id"):
                raise Transient("YouTube finished the upload without naming the video; checking again.",
                                platform=self.name, code="bad_response", http_status=response.status_code)
            return "complete", video
        if response.status_code in (404, 410):
            return "gone", None
        self.raise_for(response, sent_effect=sent_effect)
        raise Transient(f"YouTube answered the upload with HTTP {response.status_code}.", platform=self.name,
                        code="bad_response", http_status=response.status_code)

    def _settle(self, job: PublishJob, checkpoint: dict[str, Any], state: str, value: Any) -> StepResult:
        total = checkpoint["total"]
        if state == "partial":
            checkpoint["offset"] = value
            self._confirmed[checkpoint["session_uri"]] = value
            job.progress(value, total)
            return StepResult(checkpoint)
        if state == "complete":
            job.progress(total, total)
            self._confirmed.pop(checkpoint["session_uri"], None)
            status = value.get("status") or {}
            next_checkpoint = {"stage": "processing", "video_id": value["id"], "total": total,
                               "privacy": status.get("privacyStatus", checkpoint.get("privacy")),
                               "publish_at": checkpoint.get("publish_at")}
            if checkpoint.get("privacy") != "private" and status.get("privacyStatus") == "private":
                # projects that have not passed YouTube's audit have every upload locked to private
                next_checkpoint["notice"] = "forced_private"
            return StepResult(next_checkpoint)
        return self._restart(checkpoint)

    def _restart(self, checkpoint: dict[str, Any]) -> StepResult:
        """The session is gone (expired): begin a new one. It held no finished video, so nothing duplicates."""
        restarts = checkpoint.get("restarts", 0) + 1
        if restarts > MAX_SESSION_RESTARTS:
            raise Rejected("YouTube kept expiring the upload session; post the video again.", platform=self.name,
                           code="upload_session_lost")
        self._confirmed.pop(checkpoint.get("session_uri", ""), None)
        return StepResult({"stage": "init", "restarts": restarts})

    def step_processing(self, job: PublishJob, checkpoint: dict[str, Any]) -> StepResult:
        response = self._get("videos", job.account.access_token, part="status,processingDetails",
                             id=checkpoint["video_id"])
        items = self._json(response).get("items") or []
        if not items:
            code, message = REFUSALS["videoNotFound"]
            raise Rejected(message, platform=self.name, code=code)
        status = items[0].get("status") or {}
        upload = status.get("uploadStatus")
        where = {"platform": self.name, "http_status": response.status_code}
        if upload == "processed":
            checkpoint.update(stage="done", privacy=status.get("privacyStatus", checkpoint.get("privacy")))
            return self._finished(checkpoint)
        if upload == "failed":
            reason = status.get("failureReason") or "unknown"
            raise Rejected(FAILURES.get(reason, "YouTube could not process the video; export it again as MP4."),
                           code=f"video_failed_{_snake(reason)}", platform_code=reason, **where)
        if upload == "rejected":
            reason = status.get("rejectionReason") or "unknown"
            raise Rejected(REJECTIONS.get(reason, "YouTube rejected the video."),
                           code=f"video_rejected_{_snake(reason)}", platform_code=reason, **where)
        if upload == "deleted":
            raise Rejected("The video was deleted on YouTube before it finished processing.", code="video_deleted",
                           platform_code=upload, **where)
        progress = (items[0].get("processingDetails") or {}).get("processingProgress") or {}
        try:
            wait = min(60.0, max(5.0, int(progress["timeLeftMs"]) / 1000))
        except (KeyError, TypeError, ValueError):
            wait = 15.0
        return StepResult(checkpoint, wait=wait)

    def _finished(self, checkpoint: dict[str, Any]) -> StepResult:
        video_id = checkpoint["video_id"]
        return StepResult(checkpoint, done=True, platform_post_id=video_id,
                          platform_post_url=WATCH_URL.format(video_id))

    def reconcile(self, job: PublishJob) -> StepResult:
        """Settle an unknown outcome from the upload session's own record."""
        checkpoint = dict(job.checkpoint or {})
        stage = checkpoint.get("stage", "init")
        if stage == "upload":
            state, value = self._upload_state(self._query_session(job, checkpoint), sent_effect=False)
            in_flight_was_last = checkpoint["total"] - checkpoint["offset"] <= checkpoint["chunk_size"]
            if state == "gone" and in_flight_was_last:
                # the final chunk may have made the video, and the session that would say so is gone
                raise UnknownOutcome("YouTube cannot confirm whether the video finished uploading; check the channel "
                                     "before posting again.", platform=self.name, code="unconfirmed")
            return self._settle(job, checkpoint, state, value)
        # init: a session start was in flight; a session that never receives bytes can never become a
        # video, so starting a new one is safe. processing/done: only reads were in flight.
        return StepResult(checkpoint)

    # ------------------------------------------------------------------ first comment
    def post_comment(self, account: AccountRef, target: CommentTarget, message: str) -> str:
        """`commentThreads.insert`: a top-level comment of the channel under its video."""
        body = {"snippet": {"channelId": account.account_id, "videoId": target.platform_post_id,
                            "topLevelComment": {"snippet": {"textOriginal": message}}}}
        response = self.http.request("POST", f"{API}/commentThreads", params={"part": "snippet"}, json=body,
                                     headers=self._auth(account.access_token))
        self.raise_for(response, sent_effect=True)
        return str(self._json(response)["id"])

    def find_comment(self, account: AccountRef, target: CommentTarget, message: str, since: datetime) -> str | None:
        """The channel's own top-level comment with this text among the video's newest threads."""
        response = self._get("commentThreads", account.access_token, part="snippet", videoId=target.platform_post_id,
                             maxResults="100", order="time", textFormat="plainText")
        for thread in self._json(response).get("items") or []:
            top = ((thread.get("snippet") or {}).get("topLevelComment") or {}).get("snippet") or {}
            author = (top.get("authorChannelId") or {}).get("value")
            if top.get("textOriginal") == message and author in (None, account.account_id):
                return str(thread.get("id"))
        return None

    # ------------------------------------------------------------------ reads
    def _auth(self, access_token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {access_token}"}

    def _get(self, resource: str, access_token: str, **params: str) -> httpx.Response:
        response = self.http.request("GET", f"{API}/{resource}", params=params, headers=self._auth(access_token))
        self.raise_for(response)
        return response

    def fetch_metrics(self, account: AccountRef, platform_post_id: str) -> Metrics:
        response = self._get("videos", account.access_token, part="statistics", id=platform_post_id)
        items = self._json(response).get("items") or []
        if not items:
            code, message = REFUSALS["videoNotFound"]
            raise Rejected(message, platform=self.name, code=code)
        stats = items[0].get("statistics") or {}
        return Metrics(views=int(stats.get("viewCount", 0)), likes=int(stats.get("likeCount", 0)),
                       comments=int(stats.get("commentCount", 0)), shares=0)

    def quota(self, account: AccountRef) -> Quota | None:
        """YouTube reports no quota: the bridge counts its own uploads against the channel's and
        the project's limits (`bridge.services.quota`)."""
        return None

    # ------------------------------------------------------------------ errors
    def map_error(self, response: httpx.Response, body: Any = None) -> PlatformError:
        error = body.get("error") if isinstance(body, dict) else None
        reason = ""
        if isinstance(error, dict):
            items = error.get("errors") or []
            first = items[0] if items and isinstance(items[0], dict) else {}
            reason = first.get("reason") or error.get("status") or ""
        status = response.status_code
        where = {"platform": self.name, "platform_code": reason or None, "http_status": status}
        if reason == "quotaExceeded":
            return RateLimited("YouTube's daily upload allowance for this site is used up; the video will upload "
                               "after it resets at midnight Pacific time.", retry_after=seconds_until_quota_reset(),
                               code="quota_exceeded", **where)
        if reason in ("rateLimitExceeded", "userRateLimitExceeded", "RESOURCE_EXHAUSTED") or status == 429:
            return RateLimited("YouTube is limiting requests for a moment; the upload will continue shortly.",
                               retry_after=retry_after_seconds(response) or 60, code="rate_limited", **where)
        if reason == "uploadLimitExceeded":
            # the channel's cap, counted over a rolling window: it clears by itself, so wait
            return RateLimited("This YouTube channel has reached its upload limit for now; the video will upload "
                               "when YouTube allows again.", retry_after=retry_after_seconds(response) or
                               UPLOAD_LIMIT_WAIT, code="upload_limit_exceeded", **where)
        if reason in ("youtubeSignupRequired", "authenticatedUserNotChannel"):
            return Rejected("This Google account has no YouTube channel; create one on YouTube, then connect again.",
                            code="youtube_channel_required", **where)
        if reason == "insufficientPermissions":
            return Reauthorize("The saved YouTube login lacks permission to upload; connect the channel again and "
                               "allow every requested permission.", code="insufficient_permissions", **where)
        if status == 401 or reason in ("authError", "required"):
            return TokenExpired("YouTube no longer accepts the saved login; refreshing it.", code="token_expired",
                                **where)
        if reason in REFUSALS:
            code, message = REFUSALS[reason]
            return Rejected(message, code=code, **where)
        if 400 <= status < 500 and reason and status != 404:
            text = re.sub(r"<[^>]+>", "", str(error.get("message") or reason))
            return Rejected(f"YouTube refused the request: {text[:200]}", code=_snake(reason), **where)
        return super().map_error(response, body)
