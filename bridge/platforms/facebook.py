"""Facebook Pages through the Graph API.

A login yields every Page the creator granted where they may create content; each Page becomes an
account whose token is the Page access token (obtained with a long-lived user token, so it does
not expire and there is no refresh token).

Publishing chooses its mode from the content:

* `text`: a feed post (`/{page}/feed`, `message` and optional `extra["link"]`);
* `image`: a photo post (`/{page}/photos` with `url`, from `extra["image_url"]` or `video_url`);
* `carousel`: images uploaded unpublished one by one, then one feed post with `attached_media`;
* `video`, by the `facebook_mode` option:
  - `reel` (default): `video_reels` start -> bytes to rupload (`offset`/`file_size`) -> finish; a
    resumed upload goes on from what Facebook holds, and an upload Facebook reports `complete`
    is never sent again;
  - `file_url`: a Page video (any length) that Facebook downloads from the URL itself.
  Every video then polls `status.video_status` until it is ready and published. The chunked
  `upload_phase` protocol on graph-video.facebook.com is deprecated, so it is not used.

Uploads stream from the creator's video URL in small pieces (`MediaSource`); nothing holds a
whole chunk in memory. The login asks only for what publishing and the metrics read need:
`pages_show_list`, `pages_read_engagement`, `pages_manage_posts` (publishing, reels included),
`read_insights` (the post and video insights `fetch_metrics` reads) and `business_management`
(Pages a Business Manager owns). `publish_video` is the Live Video permission: not asked.
"""
from __future__ import annotations

from typing import Any, ClassVar, Iterator

import httpx

from bridge.platforms import options as opt
from bridge.platforms.base import (
    AccountProfile,
    AccountRef,
    CredentialVars,
    FirstComment,
    Issue,
    MediaInfo,
    Metrics,
    PostContent,
    PublishJob,
    Requirements,
    StepResult,
    TokenSet,
)
from bridge.platforms.errors import PlatformError, RateLimited, Reauthorize, Rejected, Transient, UnknownOutcome
from bridge.platforms.media import MediaError, MediaSource
from bridge.platforms.meta import (
    MetaClient,
    form_fields,
    graph_error,
    graph_time,
    safe_text,
    server_now,
)

MODES = ("reel", "file_url")
WEB = "https://www.facebook.com"


class FacebookClient(MetaClient):
    name = "facebook"
    display_name = "Facebook"
    credential_vars = CredentialVars("FACEBOOK_APP_ID", "FACEBOOK_APP_SECRET", "FACEBOOK_CONFIG_ID")
    webhook_object = "page"
    # pages_manage_engagement: the first comment, posted as the Page under its post
    scopes = ("pages_show_list", "pages_read_engagement", "pages_manage_posts", "pages_manage_engagement",
              "read_insights", "business_management")
    # 30 API reels per Page per rolling 24 h (feed posts have no documented cap)
    daily_limit = 30
    options = {
        "facebook_mode": opt.choice(*MODES),
        "link": opt.url(),
        "image_url": opt.url(),
        "items": opt.media_items(2, 10, types=("image",)),
    }
    first_stage = "start"

    # video_status polls the video; done only reports
    reading_stages = frozenset({"video_status", "done"})
    live_stages = frozenset({"video_status", "done"})  # finish or file_url published the video
    requirements = Requirements(
        caption_max=63206, media_types=("video", "image", "text", "carousel"),
        max_video_bytes=10 * 1024 ** 3, max_duration_sec=240 * 60,
        video_content_types=("video/mp4", "video/quicktime"),
    )
    first_comment = FirstComment(8000)  # Facebook's comment box takes 8,000 characters
    reel_min_sec: ClassVar[float] = 3
    reel_max_sec: ClassVar[float] = 90
    reels_per_day: ClassVar[int] = 30
    carousel_max: ClassVar[int] = 10
    max_polls: ClassVar[int] = 120

    # ------------------------------------------------------------------ accounts
    def fetch_accounts(self, tokens: TokenSet) -> list[AccountProfile]:
        """Every granted Page where this user may create content, with its Page token."""
        token = tokens.access_token
        me = self.graph_get(token, "me", {"fields": "id,name"})
        pages = self.graph_list(token, "me/accounts",
                                {"fields": "id,name,access_token,tasks,category,picture", "limit": 100})
        accounts = []
        for page in pages:
            tasks = page.get("tasks")
            if not page.get("access_token") or (tasks is not None and "CREATE_CONTENT" not in tasks):
                continue
            picture = ((page.get("picture") or {}).get("data") or {}).get("url")
            accounts.append(AccountProfile(
                account_id=str(page["id"]), account_name=page.get("name") or str(page["id"]), picture_url=picture,
                # Page tokens made from a long-lived user token do not expire: no expiry, no refresh token.
                tokens=TokenSet(access_token=page["access_token"], scope=tokens.scope),
                metadata={"user_id": str(me["id"]), "category": page.get("category"), "tasks": tasks},
            ))
        if not accounts:
            raise Rejected("No Facebook Page you can post to was granted in this login; select a Page you manage "
                           "when logging in and connect again.", platform=self.name, code="no_pages")
        return accounts

    # ------------------------------------------------------------------ validation
    def check_content(self, content: PostContent, media: MediaInfo | None = None) -> list[Issue]:
        issues = super().check_content(content, media)
        if content.media_type != "video":
            return issues
        # an unknown mode is the `facebook_mode` option's issue (see `options`)
        mode = content.extra.get("facebook_mode") or "reel"
        if mode == "reel" and media is not None and media.duration_sec is not None and \
                not self.reel_min_sec <= media.duration_sec <= self.reel_max_sec:
            issues.append(Issue("video", "reel_duration",
                                f"A Facebook reel runs {self.reel_min_sec:.0f} to {self.reel_max_sec:.0f} s; this "
                                f"video runs {media.duration_sec:.0f} s. Post it as a Page video instead "
                                f"(facebook_mode file_url)."))
        return issues

    # ------------------------------------------------------------------ publishing
    def step_start(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        return self.run_step(job, self._plan(job))

    def _plan(self, job: PublishJob) -> dict[str, Any]:
        content = job.content
        if content.media_type == "text":
            return {"stage": "feed"}
        if content.media_type == "image":
            self._image_url(content)
            return {"stage": "photo"}
        if content.media_type == "carousel":
            items = [i if isinstance(i, str) else i.get("url") for i in content.extra.get("items") or []]
            if any(not isinstance(i, str) and i.get("type") == "video" for i in content.extra.get("items") or []):
                raise Rejected("Facebook multi-photo posts take images only; post videos on their own.",
                               platform=self.name, code="media_type_unsupported")
            if not 2 <= len(items) <= self.carousel_max:
                raise Rejected(f"A Facebook multi-photo post holds 2 to {self.carousel_max} images.",
                               platform=self.name, code="carousel_size")
            return {"stage": "photo_items", "items": items, "photos": []}
        if content.media_type != "video":
            raise Rejected(f"Facebook does not accept {content.media_type} posts through its API.",
                           platform=self.name, code="media_type_unsupported")
        mode = content.extra.get("facebook_mode") or "reel"
        if mode not in MODES:
            raise Rejected(f"Facebook video mode must be one of: {', '.join(MODES)}.", platform=self.name,
                           code="mode_unsupported")
        if mode == "file_url":
            return {"stage": "file_url", "mode": mode}
        info = self._probe(content)
        if mode == "reel" and info.duration_sec is not None and \
                not self.reel_min_sec <= info.duration_sec <= self.reel_max_sec:
            raise Rejected(f"A Facebook reel runs {self.reel_min_sec:.0f} to {self.reel_max_sec:.0f} s; this video "
                           f"runs {info.duration_sec:.0f} s. Post it as a Page video instead (facebook_mode "
                           f"file_url).", platform=self.name, code="reel_duration")
        return {"stage": "reel_start", "mode": mode, "size": info.size}

    # --- posts and photos
    def step_feed(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        data = {"message": job.caption, "link": job.content.extra.get("link")}
        body = self.graph_post(job.account.access_token, f"{job.account.account_id}/feed", data)
        return self._post_done(cp, str(body["id"]))

    def step_photo(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        data = {"url": self._image_url(job.content), "caption": job.caption}
        body = self.graph_post(job.account.access_token, f"{job.account.account_id}/photos", data)
        return self._post_done(cp, str(body.get("post_id") or body["id"]))

    def step_photo_items(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        url = cp["items"][len(cp["photos"])]
        # Unpublished photos never appear by themselves; the feed post below attaches them.
        body = self.graph_post(job.account.access_token, f"{job.account.account_id}/photos",
                               {"url": url, "published": False})
        photos = cp["photos"] + [str(body["id"])]
        return StepResult({**cp, "photos": photos,
                           "stage": "feed_attached" if len(photos) == len(cp["items"]) else "photo_items"})

    def step_feed_attached(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        data = {"message": job.caption, "attached_media": [{"media_fbid": p} for p in cp["photos"]]}
        body = self.graph_post(job.account.access_token, f"{job.account.account_id}/feed", data)
        return self._post_done(cp, str(body["id"]))

    def _post_done(self, cp: dict[str, Any], post_id: str) -> StepResult:
        return self.step_done(None, {**cp, "stage": "done", "post_id": post_id, "url": f"{WEB}/{post_id}"})

    def step_done(self, job: PublishJob | None, cp: dict[str, Any]) -> StepResult:
        return StepResult(cp, done=True, platform_post_id=cp["post_id"], platform_post_url=cp.get("url"))

    # --- reels
    def step_reel_start(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        body = self.graph_post(job.account.access_token, f"{job.account.account_id}/video_reels",
                               {"upload_phase": "start"})
        return StepResult({**cp, "stage": "reel_upload", "video_id": str(body["video_id"]),
                           "upload_url": body["upload_url"]})

    def step_reel_upload(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        size = int(cp["size"])
        # Resume from what Facebook holds, not from what we think we sent. A complete upload is
        # not sent again: Facebook may report it without a byte count.
        phase = self._video_status(job, cp["video_id"]).get("uploading_phase") or {}
        if phase.get("status") in ("complete", "completed"):
            return self.step_reel_finish(job, {**cp, "stage": "reel_finish"})
        offset = int(phase.get("bytes_transfered") or phase.get("bytes_transferred") or 0)
        if offset >= size:
            return self.step_reel_finish(job, {**cp, "stage": "reel_finish"})
        headers = {"Authorization": f"OAuth {job.account.access_token}", "offset": str(offset),
                   "file_size": str(size), "Content-Length": str(size - offset),
                   "Content-Type": "application/octet-stream"}
        # Bytes, not a publication: a lost answer is resumed from the platform's offset.
        response = self.http.request("POST", cp["upload_url"], content=self._pieces(job, offset, size, size),
                                     headers=headers, idempotent=True)
        self.raise_for(response)
        return StepResult({**cp, "stage": "reel_finish"})

    def step_reel_finish(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        data = {"upload_phase": "finish", "video_id": cp["video_id"], "video_state": "PUBLISHED",
                "description": job.caption, "title": job.content.title}
        response = self.graph_request("POST", self.graph_url(f"{job.account.account_id}/video_reels"),
                                      job.account.access_token, data=form_fields(data), idempotent=False)
        if response.status_code >= 400:
            error = graph_error(self._json(response, strict=False)) or {}
            if error.get("code") == 6001:
                return StepResult({**cp, "stage": "reel_upload"})  # bytes missing: upload the rest first
            if error.get("code") == 9:
                raise self._reels_limit(job, response)
            self.raise_for(response, sent_effect=True)
        return StepResult({**cp, "stage": "video_status", "polls": 0})

    def step_file_url(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        data = {"file_url": job.content.video_url, "description": job.caption, "title": job.content.title,
                "published": True}
        body = self.graph_post(job.account.access_token, f"{job.account.account_id}/videos", data)
        return StepResult({**cp, "stage": "video_status", "video_id": str(body["id"]), "polls": 0})

    # --- every video ends here
    def step_video_status(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        node = self.graph_get(job.account.access_token, cp["video_id"], {"fields": "status,permalink_url"})
        status = node.get("status") or {}
        state = status.get("video_status")
        publishing = status.get("publishing_phase") or {}
        if state == "ready" and (publishing.get("publish_status") == "published"
                                 or publishing.get("status") in ("complete", "completed")):
            path = node.get("permalink_url") or (f"/reel/{cp['video_id']}" if cp.get("mode") == "reel"
                                                 else f"/{job.account.account_id}/videos/{cp['video_id']}")
            url = path if path.startswith("http") else f"{WEB}{path}"
            return self.step_done(job, {**cp, "stage": "done", "post_id": cp["video_id"], "url": url})
        if state in ("error", "upload_failed", "expired"):
            errors = (status.get("processing_phase") or {}).get("errors") or [{}]
            reason = safe_text(errors[0].get("message") or state)
            raise Rejected(f"Facebook could not process the video: {reason}", platform=self.name,
                           code="processing_failed", platform_code=state)
        polls = cp.get("polls", 0) + 1
        if polls > self.max_polls:
            raise Rejected("Facebook did not finish processing the video in time; check the Page's videos.",
                           platform=self.name, code="processing_timeout")
        return StepResult({**cp, "polls": polls}, wait=self.poll_seconds)

    # --- helpers
    def _video_status(self, job: PublishJob, video_id: str) -> dict[str, Any]:
        return self.graph_get(job.account.access_token, video_id, {"fields": "status"}).get("status") or {}

    def _probe(self, content: PostContent) -> MediaInfo:
        if not content.video_url:
            raise Rejected("This post has no video URL.", platform=self.name, code="media_missing")
        try:
            info = MediaSource(self.settings, content.video_url).probe()
        except MediaError as exc:
            raise Rejected(exc.message, platform=self.name, code=exc.code, http_status=exc.http_status) from None
        if not info.size:
            raise Rejected("The video server does not say how large the video is; it cannot be uploaded in parts.",
                           platform=self.name, code="media_size_unknown")
        return info

    def _pieces(self, job: PublishJob, start: int, end: int, total: int) -> Iterator[bytes]:
        """Bytes start..end-1 of the video, streamed, reporting progress."""
        source = MediaSource(self.settings, job.content.video_url or "")
        source.resolve()  # fail on an unreadable video before the upload request opens
        return _progress(source.iter_range(start, end - 1), start, total, job)

    def _reels_limit(self, job: PublishJob, response: httpx.Response) -> RateLimited:
        """Wait until the oldest of the Page's last reels leaves the rolling 24 h window (reels
        made in the app also show here, so this never waits too little)."""
        wait = 3600.0
        try:
            reels = self.graph_get(job.account.access_token, f"{job.account.account_id}/video_reels",
                                   {"fields": "id,created_time", "limit": self.reels_per_day}).get("data", [])
            stamps = sorted((graph_time(r.get("created_time")) for r in reels), reverse=True)
            if len(stamps) >= self.reels_per_day and stamps[self.reels_per_day - 1]:
                wait = max(60.0, stamps[self.reels_per_day - 1] + 86400 - server_now(response) + 60)
        except PlatformError:
            pass
        return RateLimited(f"Facebook's limit of {self.reels_per_day} API reels per Page per 24 hours is reached; "
                           f"the reel will go out when a slot frees.", platform=self.name,
                           code="publish_limit_reached", platform_code=9, http_status=response.status_code,
                           retry_after=wait)

    def _image_url(self, content: PostContent) -> str:
        url = content.extra.get("image_url") or content.video_url
        if not url:
            raise Rejected("This post has no image URL.", platform=self.name, code="media_missing")
        return url

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, job: PublishJob) -> StepResult:
        """Settle an unknown outcome from the Page's own records. Starts, byte transfers and
        unpublished photos never publish by themselves, so those stages are redone."""
        cp = dict(job.checkpoint or {})
        # An empty checkpoint means the plan's first effect was in flight.
        planned = cp if cp.get("stage") else self._plan(job)
        stage = planned["stage"]
        if stage in ("feed", "photo", "feed_attached"):
            posts = self.graph_get(job.account.access_token, f"{job.account.account_id}/published_posts",
                                   {"fields": "id,message,created_time", "limit": 10}).get("data", [])
            wanted = (job.caption or "").strip()
            for post in posts:
                if (post.get("message") or "").strip() == wanted:
                    return StepResult({**cp, "stage": "done", "post_id": post["id"], "url": f"{WEB}/{post['id']}"})
            # A Page post is in the feed as soon as it exists: absent means it was not made.
            return StepResult(cp)
        if stage in ("reel_upload", "reel_finish"):
            status = self._video_status(job, cp["video_id"])
            started = any((status.get(phase) or {}).get("status", "not_started") != "not_started"
                          for phase in ("processing_phase", "publishing_phase"))
            if started or status.get("video_status") in ("processing", "ready"):
                return StepResult({**cp, "stage": "video_status", "polls": 0})
            return StepResult(cp)
        if stage == "file_url":
            videos = self.graph_get(job.account.access_token, f"{job.account.account_id}/videos",
                                    {"fields": "id,description,created_time", "limit": 10}).get("data", [])
            for video in videos:
                if (video.get("description") or "").strip() == (job.caption or "").strip():
                    return StepResult({**planned, "stage": "video_status", "video_id": str(video["id"]), "polls": 0})
            raise UnknownOutcome("Facebook cannot confirm whether the video was created; check the Page's videos "
                                 "before posting again.", platform=self.name, code="unconfirmed")
        return StepResult(cp)

    # ------------------------------------------------------------------ metrics
    def fetch_metrics(self, account: AccountRef, platform_post_id: str) -> Metrics:
        token = account.access_token
        if "_" in platform_post_id:  # a Page post id is {page-id}_{post-id}
            node = self.graph_get(token, platform_post_id, {
                "fields": "shares,reactions.summary(total_count).limit(0),comments.summary(total_count).limit(0)"})
            values = self._insight(token, f"{platform_post_id}/insights",
                                   "post_media_view,post_total_media_view_unique")
            reach = values.get("post_total_media_view_unique")
            return Metrics(views=int(values.get("post_media_view") or 0), likes=_total(node, "reactions"),
                           comments=_total(node, "comments"), shares=int((node.get("shares") or {}).get("count") or 0),
                           reach=int(reach) if isinstance(reach, (int, float)) else None)
        node = self.graph_get(token, platform_post_id, {
            "fields": "likes.summary(true).limit(0),comments.summary(true).limit(0)"})
        values = self._insight(token, f"{platform_post_id}/video_insights",
                               "blue_reels_play_count,total_video_views,post_video_social_actions")
        actions = values.get("post_video_social_actions") or {}
        views = max(int(values.get("blue_reels_play_count") or 0), int(values.get("total_video_views") or 0))
        return Metrics(views=views, likes=_total(node, "likes"), comments=_total(node, "comments"),
                       shares=int(actions.get("share", 0) if isinstance(actions, dict) else 0))

    def _insight(self, token: str, path: str, metrics: str) -> dict[str, Any]:
        try:
            body = self.graph_get(token, path, {"metric": metrics})
        except (Rejected, Reauthorize):
            return {}  # insights need read_insights and enough audience; counts still come from the node
        return {m.get("name"): (m.get("values") or [{}])[0].get("value", 0) for m in body.get("data", [])}

    # ------------------------------------------------------------------ errors
    def map_specific(self, code, sub, error, response):
        kw = {"platform": self.name, "platform_code": f"{code}/{sub}" if sub else code,
              "http_status": response.status_code}
        if code == 389:
            return Rejected("Facebook could not download the video from its URL; check that the URL is public "
                            "(opens without a login) and try again.", code="media_fetch_failed", **kw)
        if code == 324 or sub == 1366046:
            return Rejected("Facebook could not use the image; check that its URL is public and that it is a JPG "
                            "or PNG of at most 4 MB.", code="image_unsupported", **kw)
        if code == 382:
            return Rejected("Facebook says the video file is too small to be a video; check the file.",
                            code="video_too_small", **kw)
        if code == 6000:
            return Rejected("Facebook could not process this video file; check that it is a playable MP4.",
                            code="upload_rejected", **kw)
        if code == 6001:
            return Transient("The upload to Facebook was interrupted; it resumes where it stopped.",
                             code="upload_interrupted", **kw)
        if code == 9 and sub != 2207042:
            return RateLimited(f"Facebook's limit of {self.reels_per_day} API reels per Page per 24 hours is "
                               f"reached; the reel will go out when a slot frees.", code="publish_limit_reached",
                               retry_after=3600.0, **kw)
        if sub == 1404078:
            return Rejected("Facebook requires Page Publishing Authorization for this Page; complete it in the "
                            "Page's settings, then try again.", code="page_publishing_authorization", **kw)
        if sub == 4854002:
            return Rejected("Facebook asks the Page admin to confirm their identity before posting; do it in "
                            "Facebook, then try again.", code="identity_confirmation", **kw)
        if sub == 1609008:
            return Rejected("Facebook does not allow links to facebook.com in posts made through its API.",
                            code="link_not_allowed", **kw)
        if sub == 1366051:
            return Rejected("Facebook refused duplicate photos in one post.", code="duplicate_photos", **kw)
        return None


def _progress(pieces: Iterator[bytes], start: int, total: int, job: PublishJob) -> Iterator[bytes]:
    sent = start
    for piece in pieces:
        sent += len(piece)
        job.progress(sent, total)
        yield piece


def _total(node: dict[str, Any], edge: str) -> int:
    return int(((node.get(edge) or {}).get("summary") or {}).get("total_count") or 0)

