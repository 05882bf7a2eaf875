"""TikTok: Login Kit v2 and the Content Posting API (Direct Post of videos and photos).

A direct post runs as these checkpoint stages, one platform-side effect per step:

    creator_info  query the creator's options (privacy levels, max duration, interaction flags),
                  check the creator's privacy choice against them, probe the video,
                  choose what to send                                        -> init
    init          POST video/init (FILE_UPLOAD or PULL_FROM_URL) or content/init (photos);
                  `publish_id` and `upload_url` go into the checkpoint      -> upload | status
    upload        PUT one chunk; progress comes from the returned Content-Range -> upload | status
    status        poll status/fetch until PUBLISH_COMPLETE (done) or FAILED (mapped error)
    published     only after `reconcile` found the post in the creator's videos: done

TikTok has no idempotency key: a re-sent init is a second post. So the checkpoint keeps the
`publish_id` before anything else, and a lost init is settled by `reconcile` from TikTok's own
records before it is sent again. `verify_webhook` checks the `TikTok-Signature` of webhook events.

Privacy follows TikTok's Content Sharing Guidelines: the creator chooses (there is no default, so a
post without a choice is refused at the request and never sent as public); a choice is sent only
when the account offers it (`PUBLIC` is `PUBLIC_TO_EVERYONE` only where offered; an unaudited app
is offered `SELF_ONLY` alone); branded content cannot be `SELF_ONLY`. `account_options` tells a
composer what the account offers right now.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import replace
from typing import Any

import httpx

from bridge.platforms import options as opt
from bridge.platforms.base import (
    AccountProfile,
    AccountRef,
    CredentialVars,
    Issue,
    MediaInfo,
    Metrics,
    PlatformClient,
    PostContent,
    PublishJob,
    Quota,
    Requirements,
    StepResult,
    TokenSet,
    WebhookEvent,
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

API = "https://open.tiktokapis.com"
USER_INFO = f"{API}/v2/user/info/"
CREATOR_INFO = f"{API}/v2/post/publish/creator_info/query/"
VIDEO_INIT = f"{API}/v2/post/publish/video/init/"
CONTENT_INIT = f"{API}/v2/post/publish/content/init/"
STATUS = f"{API}/v2/post/publish/status/fetch/"
VIDEO_QUERY = f"{API}/v2/video/query/"
VIDEO_LIST = f"{API}/v2/video/list/"

MB = 1_000_000  # TikTok's chunk rules count decimal megabytes
MIN_CHUNK = 5 * 1024 * 1024  # 5 MiB: at least 5 MB whichever way "MB" is read
MAX_WHOLE = 64 * MB  # up to this a file goes in one chunk
MAX_CHUNKS = 1000

# Our post privacy values, and TikTok's own, to TikTok's.
PRIVACY = {
    "PUBLIC": "PUBLIC_TO_EVERYONE",
    "FRIENDS": "MUTUAL_FOLLOW_FRIENDS",
    "FOLLOWERS": "FOLLOWER_OF_CREATOR",
    "PRIVATE": "SELF_ONLY",
    "PUBLIC_TO_EVERYONE": "PUBLIC_TO_EVERYONE",
    "MUTUAL_FOLLOW_FRIENDS": "MUTUAL_FOLLOW_FRIENDS",
    "FOLLOWER_OF_CREATOR": "FOLLOWER_OF_CREATOR",
    "SELF_ONLY": "SELF_ONLY",
}
PRIVACY_NAMES = {
    "PUBLIC_TO_EVERYONE": "everyone (PUBLIC)",
    "MUTUAL_FOLLOW_FRIENDS": "friends (FRIENDS)",
    "FOLLOWER_OF_CREATOR": "followers (FOLLOWERS)",
    "SELF_ONLY": "only me (PRIVATE)",
}
VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")

# TikTok's API error codes (error.code) -> (our class, our code, message for the creator).
API_ERRORS: dict[str, tuple[type[PlatformError], str, str]] = {
    "access_token_invalid": (TokenExpired, "token_expired", "TikTok no longer accepts the saved login; refreshing it."),
    "scope_not_authorized": (Reauthorize, "scope_not_granted",
                             "TikTok says this account did not allow the bridge to post; connect TikTok again and "
                             "allow every permission."),
    "scope_permission_missed": (Rejected, "app_scope_missing",
                                "This site's TikTok app is not approved for posting yet; ask the administrator."),
    "invalid_params": (Rejected, "invalid_request", "TikTok refused the post: {message}"),
    "invalid_param": (Rejected, "invalid_request", "TikTok refused the post: {message}"),
    "invalid_file_upload": (Rejected, "invalid_file_upload",
                            "TikTok refused the video file; export it as H.264 MP4 and post again."),
    "rate_limit_exceeded": (RateLimited, "rate_limited",
                            "TikTok is limiting requests; the post will continue when it allows."),
    "internal_error": (Transient, "platform_unavailable", "TikTok had a temporary problem; it will be tried again."),
    "spam_risk_too_many_posts": (RateLimited, "daily_post_limit",
                                 "TikTok's daily post limit for this account is reached; the post will go out when "
                                 "a slot frees."),
    "spam_risk_user_banned_from_posting": (Rejected, "user_banned_from_posting",
                                           "TikTok does not allow this account to post right now; check the account "
                                           "in the TikTok app."),
    "reached_active_user_cap": (RateLimited, "app_daily_user_cap",
                                "This site's TikTok app reached its daily number of posting accounts; the post will "
                                "go out when TikTok allows."),
    "unaudited_client_can_only_post_to_private_accounts": (
        Rejected, "unaudited_app_public_account",
        "This site's TikTok app is not yet approved for public accounts; set your TikTok account to private or ask "
        "the administrator."),
    "url_ownership_unverified": (Rejected, "media_url_unverified",
                                 "TikTok only pulls videos from a verified domain; use direct upload or have the "
                                 "administrator verify the media domain with TikTok."),
    "privacy_level_option_mismatch": (Rejected, "privacy_level_not_offered",
                                      "TikTok does not offer this privacy setting for the account; pick another."),
    "invalid_publish_id": (Rejected, "invalid_publish_id", "TikTok does not know this upload; post it again."),
    "token_not_authorized_for_specified_publish_id": (
        Rejected, "publish_id_not_owned", "This upload belongs to another TikTok login; post it again."),
    "spam_risk_too_many_pending_share": (RateLimited, "inbox_pending_limit",
                                         "Five TikTok drafts are waiting in the app; finish or delete one and the "
                                         "upload will continue."),
    "app_version_check_failed": (Rejected, "app_version_too_old",
                                 "Update the TikTok app on your phone to receive drafts, then post again."),
}
# Documented status fail_reason values -> (our class, our code, message). Every one is final for
# its publish_id; `internal` alone is retried once with a fresh init by the status step.
FAIL_REASONS: dict[str, tuple[type[PlatformError], str, str]] = {
    "file_format_check_failed": (Rejected, "video_format_unsupported",
                                 "TikTok could not read the file format; export it as H.264 MP4 (or JPEG/WebP "
                                 "photos) and post again."),
    "duration_check_failed": (Rejected, "video_duration_invalid",
                              "TikTok refused the video's length for this account; trim it and post again."),
    "frame_rate_check_failed": (Rejected, "video_frame_rate_invalid",
                                "TikTok accepts 23 to 60 frames per second; re-export the video and post again."),
    "picture_size_check_failed": (Rejected, "video_resolution_invalid",
                                  "TikTok accepts 360 to 4096 pixels on each side; resize and post again."),
    "internal": (Rejected, "tiktok_internal_error",
                 "TikTok failed to process the post on its side; retry the post."),
    "video_pull_failed": (Rejected, "media_pull_failed",
                          "TikTok could not download the video; check that its address is public and stable, then "
                          "retry."),
    "photo_pull_failed": (Rejected, "media_pull_failed",
                          "TikTok could not download the photos; check that their addresses are public, then retry."),
    "publish_cancelled": (Rejected, "publish_cancelled", "The TikTok upload was cancelled; post it again if wanted."),
    # the creator removed the app: the token is already revoked, only reconnecting helps
    "auth_removed": (Reauthorize, "auth_removed",
                     "TikTok access was removed for this account; connect TikTok again, then retry the post."),
    "spam_risk_too_many_posts": (Rejected, "daily_post_limit",
                                 "TikTok's daily post limit for this account was reached and TikTok dropped the post; "
                                 "retry it tomorrow."),
    "spam_risk_user_banned_from_posting": (Rejected, "user_banned_from_posting",
                                           "TikTok does not allow this account to post right now; check the account "
                                           "in the TikTok app."),
    "spam_risk_text": (Rejected, "caption_flagged",
                       "TikTok flagged the caption as spam; edit the caption and post again."),
    "spam_risk": (Rejected, "flagged_as_spam",
                  "TikTok flagged the post as spam risk; change it and try again later."),
}


def chunk_plan(size: int, preferred: int = 10 * MB) -> tuple[int, int]:
    """(chunk_size, total_chunk_count) for a file of `size` bytes under TikTok's rules: whole up
    to 64 MB; otherwise chunks of `preferred` bytes (5-64 MB), count = floor(size / chunk), the
    last chunk taking the remainder (< 2 chunks, so <= 128 MB), at most 1000 chunks."""
    if size <= MAX_WHOLE:
        return size, 1
    chunk = max(MIN_CHUNK, min(preferred, MAX_WHOLE))
    if size // chunk > MAX_CHUNKS:
        chunk = -(-size // MAX_CHUNKS)
    return chunk, size // chunk


def chunk_bounds(size: int, chunk: int, count: int, offset: int) -> tuple[int, int]:
    """First and last byte of the chunk that starts at or contains `offset`."""
    index = min(offset // chunk, count - 1)
    start = index * chunk
    end = size - 1 if index == count - 1 else start + chunk - 1
    return start, end


def uploaded_bytes(content_range: str | None) -> int | None:
    """Bytes received from a `Content-Range: bytes 0-{last}/{total}` progress header (None if absent)."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    span = content_range[6:].split("/", 1)[0]
    if span == "*":
        return 0
    first, _, last = span.partition("-")
    if not first.isdigit() or not last.isdigit():
        return None
    return int(last) + 1


def verify_webhook(client_secret: str, header_value: str | None, body: bytes, now: float,
                   tolerance: float = 300) -> bool:
    """True when `TikTok-Signature: t=<unix>,s=<hex>` is HMAC-SHA256(client_secret, "<t>.<body>")
    and `t` is within `tolerance` seconds of `now`. Compared in constant time."""
    if not header_value or not client_secret:
        return False
    parts: dict[str, str] = {}
    for item in header_value.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts[key.strip()] = value.strip()
    stamp, signature = parts.get("t", ""), parts.get("s", "")
    if not stamp.isdigit() or not signature:
        return False
    if abs(now - int(stamp)) > tolerance:
        return False
    expected = hmac.new(client_secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.lower())


def parse_webhook(body: bytes) -> dict[str, Any]:
    """The event envelope with its JSON-encoded `content` string decoded into a dict."""
    event = json.loads(body)
    content = event.get("content")
    if isinstance(content, str):
        try:
            event["content"] = json.loads(content) if content else {}
        except ValueError:
            pass
    return event


class TikTokClient(PlatformClient):
    name = "tiktok"
    display_name = "TikTok"
    hosts = ("www.tiktok.com", "open.tiktokapis.com", "open-upload.tiktokapis.com")
    credential_vars = CredentialVars("TIKTOK_CLIENT_ID", "TIKTOK_CLIENT_SECRET")
    # TikTok publishes no number; 15 posts per creator per 24 h is the commonly cited cap
    daily_limit = 15
    # TikTok's guidelines: the creator chooses the audience, there is no default
    default_privacy = None
    webhook = "tiktok"
    options = {
        "tiktok_source": opt.choice("FILE_UPLOAD", "PULL_FROM_URL"),
        "brand_content_toggle": opt.flag(),
        "brand_organic_toggle": opt.flag(),
        "is_aigc": opt.flag(),
        "auto_add_music": opt.flag(),
        "video_cover_timestamp_ms": opt.integer(0, 2**31 - 1),
        "photo_cover_index": opt.integer(0, 34),
        "image_urls": opt.urls(1, 35),
    }

    authorize_url = "https://www.tiktok.com/v2/auth/authorize/"
    token_url = f"{API}/v2/oauth/token/"
    revoke_url = f"{API}/v2/oauth/revoke/"
    scopes = ("user.info.basic", "video.publish", "video.upload", "video.list")
    scope_separator = ","  # TikTok joins scopes with commas
    client_id_param = "client_key"  # TikTok's name for the client id, everywhere
    uses_pkce = False  # a confidential web client authenticates with its secret
    token_auth = "body"

    requirements = Requirements(
        caption_max=2200,
        caption_counter=count_utf16_units,
        caption_unit="UTF-16 units",
        caption_counting="utf16_units",
        media_types=("video", "image", "carousel"),
        video_content_types=VIDEO_TYPES,
        max_video_bytes=4_000_000_000,
        max_duration_sec=600,
        privacy_levels=tuple(PRIVACY),
    )
    photo_caption_max = 4000  # a photo post's caption is its description
    photo_title_max = 90
    photo_max = 35

    first_stage = "creator_info"
    # creator_info reads the creator's options (and the video), status polls: neither sends anything
    reading_stages = frozenset({None, "creator_info", "status", "published"})
    live_stages = frozenset({"status", "published"})  # after init TikTok posts by itself

    chunk_size = 10 * MB
    status_poll_seconds = 5.0
    # public posts get their post id after moderation (usually under a minute)
    moderation_poll_seconds = 30.0
    moderation_max_polls = 20
    upload_url_ttl = 3600
    max_restarts = 2
    _media_http: PlatformHttp | None = None

    # --------------------------------------------------------------------------- accounts
    def fetch_accounts(self, tokens: TokenSet) -> list[AccountProfile]:
        granted = set(filter(None, (tokens.scope or "").split(",")))
        if tokens.scope is not None and "video.publish" not in granted:
            raise Rejected("TikTok was connected without permission to post videos; connect again and allow "
                           "\"Post content\".", platform=self.name, code="scope_not_granted")
        response = self.http.request("GET", USER_INFO, params={"fields": "open_id,union_id,avatar_url,display_name"},
                                     headers=self._auth(tokens.access_token))
        user = self._data(response)["user"]
        username = None
        try:  # the username comes with the creator info (user.info.profile is not requested)
            username = self._creator_info(tokens.access_token).get("creator_username") or None
        except PlatformError:
            pass
        return [AccountProfile(
            account_id=str(user["open_id"]),
            account_name=user.get("display_name") or username or str(user["open_id"]),
            tokens=tokens,
            username=username,
            picture_url=user.get("avatar_url"),
            metadata={"union_id": user.get("union_id"), "scopes": sorted(granted)},
        )]

    def quota(self, account: AccountRef) -> Quota:
        """TikTok has no quota endpoint: the commonly cited cap of 15 posts per creator per 24 h,
        for the bridge to count against itself."""
        return Quota(limit=15, used=None, window_seconds=86400, source="bridge")

    # --------------------------------------------------------------------------- validation
    def check_content(self, content: PostContent, media: MediaInfo | None = None) -> list[Issue]:
        # privacy values are matched case-insensitively; photo posts have their own limits
        if content.privacy_level:
            content = replace(content, privacy_level=content.privacy_level.upper())
        issues = self._privacy_issues(content)
        if content.media_type not in ("image", "carousel"):
            return issues + super().check_content(content, media)
        photo = replace(self.requirements, caption_max=self.photo_caption_max)
        issues += photo.check(self.display_name, content, self.compose_caption(content))
        if content.title and count_utf16_units(content.title) > self.photo_title_max:
            issues.append(Issue("title", "title_too_long",
                                f"TikTok photo titles are at most {self.photo_title_max} characters."))
        images = self._photo_urls(content)
        if not images:
            issues.append(Issue("media", "media_missing", "Add at least one photo."))
        if len(images) > self.photo_max:
            issues.append(Issue("media", "too_many_photos", f"TikTok takes at most {self.photo_max} photos a post."))
        if any(url.split("?", 1)[0].lower().endswith(".png") for url in images):
            issues.append(Issue("media", "image_format_unsupported", "TikTok accepts JPEG and WebP photos, not PNG."))
        return issues

    def _privacy_issues(self, content: PostContent) -> list[Issue]:
        if not content.privacy_level:
            return [Issue("privacy_level", "privacy_level_required",
                          "Choose who can see the TikTok post (privacy_level): TikTok has no default audience. "
                          "GET /accounts/{id}/options lists what the account offers.")]
        if _branded(content) and PRIVACY.get(content.privacy_level) == "SELF_ONLY":
            return [Issue("privacy_level", "branded_content_private",
                          "TikTok does not allow branded content to be private (only me); choose another "
                          "audience or turn branded content off.")]
        return []

    def account_options(self, account: AccountRef) -> dict[str, Any]:
        """The creator's options now, from TikTok's creator info: the privacy levels it offers
        (send one of them as `privacy_level`), the longest video, and the interactions the
        creator turned off (they are sent as disabled whatever the post asks)."""
        info = self._creator_info(account.access_token)
        return {
            "privacy_level_options": list(info.get("privacy_level_options") or []),
            "privacy_level_required": True,
            "max_video_post_duration_sec": info.get("max_video_post_duration_sec"),
            "comment_disabled": bool(info.get("comment_disabled")),
            "duet_disabled": bool(info.get("duet_disabled")),
            "stitch_disabled": bool(info.get("stitch_disabled")),
            "creator_username": info.get("creator_username"),
            "creator_nickname": info.get("creator_nickname"),
        }

    def account_option_issues(self, content: PostContent, media: MediaInfo | None,
                              options: dict[str, Any]) -> list[Issue]:
        """The creator's privacy choice against what the creator info offers now, and the video
        against the creator's longest allowed post."""
        issues = []
        if content.privacy_level:
            try:
                self._privacy(content.privacy_level, list(options.get("privacy_level_options") or []))
            except Rejected as exc:
                issues.append(Issue("privacy_level", exc.code, exc.message))
        longest = options.get("max_video_post_duration_sec")
        if media is not None and media.duration_sec is not None and isinstance(longest, (int, float)) \
                and content.media_type == "video" and media.duration_sec > longest:
            issues.append(Issue("video", "video_too_long_for_account",
                                f"The video runs {media.duration_sec:.0f} s; this TikTok account may post videos up "
                                f"to {longest:.0f} s."))
        return issues

    def caption_limit(self, content: PostContent) -> int:
        return self.photo_caption_max if content.media_type in ("image", "carousel") else self.requirements.caption_max

    # --------------------------------------------------------------------------- publishing
    def step_published(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        return self._done(cp, cp["post_id"])

    def step_creator_info(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        info = self._creator_info(job.account.access_token)
        content = job.content
        photo = content.media_type in ("image", "carousel")
        privacy = self._privacy(content.privacy_level, info.get("privacy_level_options") or [])
        if privacy == "SELF_ONLY" and _branded(content):
            raise Rejected("TikTok does not allow branded content to be private (only me); choose another audience "
                           "or turn branded content off.", platform=self.name, code="branded_content_private")
        checkpoint: dict[str, Any] = {
            "stage": "init",
            "kind": "photo" if photo else "video",
            "privacy_level": privacy,
            "disable_comment": (not content.allow_comments) or bool(info.get("comment_disabled")),
            "disable_duet": (not content.allow_duet) or bool(info.get("duet_disabled")),
            "disable_stitch": (not content.allow_stitch) or bool(info.get("stitch_disabled")),
            "username": info.get("creator_username"),
            "info_at": int(time.time()),
            "restarts": cp.get("restarts", 0),
            "attempt": cp.get("attempt", 0),
        }
        if photo:
            checkpoint["photo_urls"] = self._photo_urls(content)
            if not checkpoint["photo_urls"]:
                raise Rejected("The TikTok photo post has no photos.", platform=self.name, code="media_missing")
            return StepResult(checkpoint)
        source = str(content.extra.get("tiktok_source") or "FILE_UPLOAD").upper()
        if source not in ("FILE_UPLOAD", "PULL_FROM_URL"):
            raise Rejected(f"Unknown TikTok source {source!r}; use FILE_UPLOAD or PULL_FROM_URL.", platform=self.name,
                           code="invalid_request")
        if not content.video_url:
            raise Rejected("The post has no video.", platform=self.name, code="media_missing")
        media = self._media(content.video_url).probe()
        limit = info.get("max_video_post_duration_sec")
        if limit and media.duration_sec is not None and media.duration_sec > float(limit):
            raise Rejected(f"The video runs {media.duration_sec:.0f} s; this TikTok account can post up to "
                           f"{int(limit)} s. Trim it and post again.", platform=self.name, code="video_too_long")
        checkpoint["source"] = source
        if source == "FILE_UPLOAD":
            if not media.size:
                raise Rejected("The video's size could not be read; check its address.", platform=self.name,
                               code="media_unavailable")
            content_type = (media.content_type or "").split(";")[0].strip().lower()
            checkpoint.update(video_size=media.size,
                              content_type=content_type if content_type in VIDEO_TYPES else "video/mp4")
        return StepResult(checkpoint)

    def step_init(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        if cp["kind"] == "photo":
            body, url = self._photo_body(job, cp), CONTENT_INIT
        else:
            body, url = self._video_body(job, cp), VIDEO_INIT
        response = self.http.request("POST", url, json=body, headers=self._auth(job.account.access_token, json_=True),
                                     idempotent=False)
        data = self._data(response, sent_effect=True)
        cp["publish_id"] = data["publish_id"]
        if cp.get("source") == "FILE_UPLOAD":
            cp.update(stage="upload", upload_url=data["upload_url"], offset=0,
                      upload_expires_at=int(time.time()) + self.upload_url_ttl)
        else:
            cp["stage"] = "status"
        return StepResult(cp)

    def _video_body(self, job: PublishJob, cp: dict[str, Any]) -> dict[str, Any]:
        post_info = {
            "title": job.caption,
            "privacy_level": cp["privacy_level"],
            "disable_duet": cp["disable_duet"],
            "disable_comment": cp["disable_comment"],
            "disable_stitch": cp["disable_stitch"],
            "brand_content_toggle": bool(job.content.extra.get("brand_content_toggle", False)),
            "brand_organic_toggle": bool(job.content.extra.get("brand_organic_toggle", False)),
        }
        if job.content.extra.get("is_aigc") is not None:
            post_info["is_aigc"] = bool(job.content.extra["is_aigc"])
        if job.content.extra.get("video_cover_timestamp_ms") is not None:
            post_info["video_cover_timestamp_ms"] = int(job.content.extra["video_cover_timestamp_ms"])
        if cp["source"] == "PULL_FROM_URL":
            return {"post_info": post_info, "source_info": {"source": "PULL_FROM_URL",
                                                            "video_url": job.content.video_url}}
        chunk, count = chunk_plan(cp["video_size"], self.chunk_size)
        cp.update(chunk_size=chunk, total_chunk_count=count)  # the upload steps follow this plan
        return {"post_info": post_info, "source_info": {"source": "FILE_UPLOAD", "video_size": cp["video_size"],
                                                        "chunk_size": chunk, "total_chunk_count": count}}

    def _photo_body(self, job: PublishJob, cp: dict[str, Any]) -> dict[str, Any]:
        images = cp["photo_urls"]
        cover = int(job.content.extra.get("photo_cover_index", 0))
        return {
            "post_info": {
                "title": job.content.title or "",
                "description": job.caption,
                "privacy_level": cp["privacy_level"],
                "disable_comment": cp["disable_comment"],
                "auto_add_music": bool(job.content.extra.get("auto_add_music", True)),
                "brand_content_toggle": bool(job.content.extra.get("brand_content_toggle", False)),
                "brand_organic_toggle": bool(job.content.extra.get("brand_organic_toggle", False)),
            },
            "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": min(max(cover, 0), len(images) - 1),
                            "photo_images": images},
            "post_mode": "DIRECT_POST",
            "media_type": "PHOTO",
        }

    def step_upload(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        if time.time() > cp["upload_expires_at"]:  # TikTok would refuse the chunk: do not send it
            return self._restart(cp, "upload_expired",
                                 "TikTok's upload address expired before the video was sent; retry the post.")
        size, offset = cp["video_size"], cp["offset"]
        start, end = chunk_bounds(size, cp["chunk_size"], cp["total_chunk_count"], offset)
        source = self._media(job.content.video_url)
        headers = {"Content-Type": cp["content_type"], "Content-Length": str(end - start + 1),
                   "Content-Range": f"bytes {start}-{end}/{size}"}
        # streamed: pieces of the chunk go from the media host to TikTok, never all in memory
        response = self.http.request("PUT", cp["upload_url"], content=source.iter_range(start, end), headers=headers)
        status = response.status_code
        if status in (200, 201, 206):
            received = uploaded_bytes(response.headers.get("Content-Range"))
            cp["offset"] = size if status == 201 else (received if received is not None else end + 1)
        elif status == 416:
            # TikTok has the bytes up to its reported offset (a chunk that "failed" may have landed)
            received = uploaded_bytes(response.headers.get("Content-Range"))
            if received is None:
                raise Rejected("TikTok lost track of the upload; retry the post.", platform=self.name,
                               code="upload_out_of_sync", http_status=416)
            cp["offset"] = received
        elif status in (403, 404):
            return self._restart(cp, "upload_expired",
                                 "TikTok's upload address expired before the video was sent; retry the post.")
        else:
            self.raise_for(response)
            raise Rejected(f"TikTok refused the upload (HTTP {status}).", platform=self.name, code="upload_rejected",
                           http_status=status)
        job.progress(min(cp["offset"], size), size)
        if cp["offset"] >= size:
            cp["stage"] = "status"
        return StepResult(cp)

    def _restart(self, cp: dict[str, Any], code: str, message: str) -> StepResult:
        """Start over with a fresh init. Safe: the abandoned publish never received all its
        bytes (or failed for good), so it can never go out by itself."""
        restarts = cp.get("restarts", 0) + 1
        if restarts > self.max_restarts:
            raise Rejected(message, platform=self.name, code=code)
        return StepResult({"stage": "creator_info", "restarts": restarts, "attempt": cp.get("attempt", 0),
                           "abandoned": [*cp.get("abandoned", []), cp.get("publish_id")]})

    def step_status(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        response = self.http.request("POST", STATUS, json={"publish_id": cp["publish_id"]},
                                     headers=self._auth(job.account.access_token, json_=True))
        body = self._json(response, strict=False)
        data = self._data(response, body=body)
        status = data.get("status")
        if status in ("PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD", "SEND_TO_USER_INBOX"):
            return StepResult(cp, wait=self.status_poll_seconds)
        if status == "FAILED":
            if data.get("fail_reason") == "internal" and cp.get("attempt", 0) < 1:
                cp["attempt"] = cp.get("attempt", 0) + 1  # documented as retryable: one fresh init
                return StepResult({"stage": "creator_info", "restarts": cp.get("restarts", 0),
                                   "attempt": cp["attempt"],
                                   "abandoned": [*cp.get("abandoned", []), cp["publish_id"]]},
                                  wait=self.status_poll_seconds)
            raise self.map_error(response, body)
        if status != "PUBLISH_COMPLETE":
            raise Transient(f"TikTok answered an unknown publishing status {status!r}.", platform=self.name,
                            code="bad_response")
        ids = data.get("publicaly_available_post_id") or []  # sic: TikTok's spelling
        if ids:
            return self._done(cp, str(ids[0]))
        polls = cp.get("moderation_polls", 0)
        if cp.get("privacy_level") == "PUBLIC_TO_EVERYONE" and polls < self.moderation_max_polls:
            cp["moderation_polls"] = polls + 1
            return StepResult(cp, wait=self.moderation_poll_seconds)
        # posted, but TikTok gives non-public posts no post id: the publish id stands for it
        return self._done(cp, cp["publish_id"])

    def _done(self, cp: dict[str, Any], post_id: str) -> StepResult:
        username = cp.get("username")
        url = None
        if username:
            public_id = post_id.isdigit()
            url = f"https://www.tiktok.com/@{username}/video/{post_id}" if public_id else \
                f"https://www.tiktok.com/@{username}"
        return StepResult({**cp, "stage": "published", "post_id": post_id}, done=True, platform_post_id=post_id,
                          platform_post_url=url)

    def reconcile(self, job: PublishJob) -> StepResult:
        """Only an init can have an unknown outcome (the other steps read, or PUT an idempotent
        byte range). A FILE_UPLOAD init whose answer was lost is safe to redo: without its upload
        URL no byte reaches that publish and it can never go out. A PULL_FROM_URL init publishes
        by itself, so the creator's recent public videos are searched for the caption."""
        cp = dict(job.checkpoint)
        if cp.get("stage") != "init" or cp.get("source") == "FILE_UPLOAD":
            return StepResult(cp)
        found = self._find_recent(job, since=int(cp.get("info_at", 0)) - 300)
        if found:
            return StepResult({**cp, "stage": "published", "post_id": found})
        raise UnknownOutcome("TikTok cannot confirm whether the post went out; check the TikTok profile before "
                             "retrying.", platform=self.name, code="unconfirmed")

    def _find_recent(self, job: PublishJob, since: int) -> str | None:
        wanted = {job.caption, job.content.title or job.caption}
        cursor = None
        for _ in range(3):
            body: dict[str, Any] = {"max_count": 20}
            if cursor is not None:
                body["cursor"] = cursor
            response = self.http.request("POST", VIDEO_LIST, params={"fields": "id,title,create_time"}, json=body,
                                         headers=self._auth(job.account.access_token, json_=True))
            data = self._data(response)
            for video in data.get("videos") or []:
                if int(video.get("create_time") or 0) >= since and video.get("title") in wanted:
                    return str(video["id"])
            if not data.get("has_more"):
                break
            cursor = data.get("cursor")
        return None

    # --------------------------------------------------------------------------- metrics
    def fetch_metrics(self, account: AccountRef, platform_post_id: str) -> Metrics:
        if not platform_post_id.isdigit():
            raise Rejected("TikTok shares statistics only for public posts.", platform=self.name,
                           code="metrics_unavailable")
        response = self.http.request(
            "POST", VIDEO_QUERY, params={"fields": "id,view_count,like_count,comment_count,share_count"},
            json={"filters": {"video_ids": [platform_post_id]}}, headers=self._auth(account.access_token, json_=True))
        try:
            videos = self._data(response).get("videos") or []
        except Reauthorize as exc:
            if exc.code != "scope_not_granted":
                raise
            # The creator did not grant video.list: publishing still works, statistics never will.
            raise Rejected("TikTok shares statistics only with the video.list permission, which this account "
                           "did not grant.", platform=self.name, code="metrics_unavailable") from None
        video = next((v for v in videos if str(v.get("id")) == platform_post_id), None)
        if video is None:
            raise Rejected("TikTok no longer shows this post; it may have been deleted.", platform=self.name,
                           code="post_not_found")
        return Metrics(views=int(video.get("view_count") or 0), likes=int(video.get("like_count") or 0),
                       comments=int(video.get("comment_count") or 0), shares=int(video.get("share_count") or 0))

    # --------------------------------------------------------------------------- webhooks
    def webhook_signed(self, headers: Any, body: bytes, now: float) -> bool:
        return bool(self.client_secret) and verify_webhook(self.client_secret, headers.get("TikTok-Signature"), body,
                                                           now)

    def read_webhook(self, payload: dict[str, Any]) -> WebhookEvent:
        """`post.publish.*` events wake the post of their `publish_id` (the engine then reads the
        status: events never write it); `authorization.removed` marks the account for reconnection."""
        content = payload.get("content")
        if isinstance(content, str):  # TikTok sends `content` as a JSON-encoded string
            try:
                content = json.loads(content) if content else {}
            except ValueError:
                content = {}
        content = content if isinstance(content, dict) else {}
        name = payload.get("event") if isinstance(payload.get("event"), str) else ""
        event = WebhookEvent(name=name)
        publish_id, open_id = content.get("publish_id"), payload.get("user_openid")
        if name.startswith("post.publish.") and isinstance(publish_id, str) and publish_id:
            event.wake.append(("publish_id", publish_id))
        elif name == "authorization.removed" and isinstance(open_id, str) and open_id:
            event.reconnect.append((open_id, "TikTok removed the authorization; connect the account again."))
        return event

    # --------------------------------------------------------------------------- errors
    def map_error(self, response: httpx.Response, body: Any = None) -> PlatformError:
        """TikTok's envelope `{"data":…, "error":{"code","message","log_id"}}` (also on HTTP 200
        at creator_info) and the status `fail_reason` values, into the taxonomy."""
        body = body if isinstance(body, dict) else {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        status = response.status_code
        if data.get("status") == "FAILED":
            reason = str(data.get("fail_reason") or "")
            cls, code, message = FAIL_REASONS.get(reason, (
                Rejected, "publish_failed", f"TikTok did not publish the post ({reason or 'no reason given'})."))
            return cls(message, platform=self.name, code=code, platform_code=reason, http_status=status)
        platform_code = error.get("code")
        if platform_code in API_ERRORS:
            cls, code, template = API_ERRORS[platform_code]
            message = template.format(message=_sentence(error.get("message")) or "invalid request.")
            kw = {"platform": self.name, "code": code, "platform_code": platform_code, "http_status": status}
            if cls is RateLimited:
                default = 3600 if code in ("daily_post_limit", "app_daily_user_cap", "inbox_pending_limit") else 60
                return RateLimited(message, retry_after=retry_after_seconds(response) or default, **kw)
            return cls(message, **kw)
        return super().map_error(response, body)

    # --------------------------------------------------------------------------- helpers
    @staticmethod
    def _auth(token: str, json_: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"}
        if json_:
            headers["Content-Type"] = "application/json; charset=UTF-8"
        return headers

    def _data(self, response: httpx.Response, *, sent_effect: bool = False, body: Any = None) -> dict[str, Any]:
        """`data` of a v2 answer; raises the mapped error for an HTTP error or an error code other
        than "ok" (TikTok answers some errors with HTTP 200)."""
        self.raise_for(response, sent_effect=sent_effect)
        body = self._json(response) if body is None else body
        if not isinstance(body, dict):
            raise Transient("TikTok answered with an unexpected body.", platform=self.name, code="bad_response")
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        if error.get("code", "ok") != "ok":
            raise self.map_error(response, {"error": error})
        return body.get("data") or {}

    def _creator_info(self, access_token: str) -> dict[str, Any]:
        response = self.http.request("POST", CREATOR_INFO, headers=self._auth(access_token, json_=True))
        return self._data(response)

    def _privacy(self, requested: str | None, offered: list[str]) -> str:
        """TikTok's privacy value for the creator's choice; a choice the account does not offer
        is refused naming the ones it does. No choice is refused too: TikTok has no default, and
        a post is never sent as public unless the creator chose it."""
        names = ", ".join(PRIVACY_NAMES.get(o, o) for o in offered) or "none"
        if not requested or not requested.strip():
            raise Rejected(f"Choose who can see the TikTok post; this account offers: {names}.", platform=self.name,
                           code="privacy_level_required")
        wanted = PRIVACY.get(requested.strip().upper())
        if wanted is None:
            raise Rejected(f"TikTok has no privacy setting {requested!r}; this account offers: {names}.",
                           platform=self.name, code="privacy_level_unsupported")
        if wanted not in offered:
            raise Rejected(f"This TikTok account does not offer {PRIVACY_NAMES.get(wanted, wanted)}; it offers: "
                           f"{names}. Pick one of those.", platform=self.name, code="privacy_level_not_offered")
        return wanted

    def _media(self, url: str) -> MediaSource:
        if self._media_http is None:  # one connection pool for media reads, kept across steps
            self._media_http = PlatformHttp(self.settings, "media")
        return MediaSource(self.settings, url, http=self._media_http)

    @staticmethod
    def _photo_urls(content: PostContent) -> list[str]:
        urls = content.extra.get("image_urls") or ([content.video_url] if content.video_url else [])
        return [str(u) for u in urls]


def _branded(content: PostContent) -> bool:
    return content.extra.get("brand_content_toggle") is True


def _sentence(text: Any) -> str:
    value = str(text or "").strip()
    if value and value[-1] not in ".!?":
        value += "."
    return value[:300]
