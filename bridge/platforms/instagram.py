"""Instagram through the Graph API with Facebook Login.

A login yields every Instagram professional account linked to a Facebook Page the creator granted
(`/me/accounts` -> `instagram_business_account` -> profile); each becomes an account whose token is
that Page's access token, as Postiz does: made from the long-lived user token, it does not expire
(until the password changes, the Page role is lost or the app is removed), so nothing needs
refreshing. Meta documents no way to extend a long-lived user token. Publishing is Meta's container protocol: create a container (Instagram
downloads the media from its URL itself, so the bridge uploads nothing), poll its `status_code`,
then `media_publish`. The container id is checkpointed at once; a container that reads
`PUBLISHED` is never published again.

Carousel items come from the `items` option: a list of URLs, or of `{"url", "type"}` with type
`image` or `video`. A single image comes from the `image_url` option (or `video_url`). Every option
is declared in `options` and checked at the request.

Stages: start -> [child ... -> children_poll] -> container -> poll (-> media_publish) -> permalink
-> done. `restarts` counts new containers after one expired or failed for a passing reason.
"""
from __future__ import annotations

import re
from typing import Any, ClassVar

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
    Quota,
    Requirements,
    StepResult,
    TokenSet,
)
from bridge.platforms.errors import (
    PlatformError,
    RateLimited,
    Reauthorize,
    Rejected,
    UnknownOutcome,
)
from bridge.platforms.media import MediaError, MediaSource
from bridge.platforms.meta import MetaClient, graph_error, graph_time, safe_text, server_now

HASHTAG = re.compile(r"(?<![\w&#])#(\w+)")
MENTION = re.compile(r"(?<![\w@])@([\w.]+)")
_SUBCODE = re.compile(r"\b(2207\d{3})\b")
# Container failures that a new container may not repeat (server errors, download timeouts).
_RETRY_WITH_NEW_CONTAINER = {2207001, 2207003, 2207008, 2207020, 2207032, 2207053}


class InstagramClient(MetaClient):
    name = "instagram"
    display_name = "Instagram"
    credential_vars = CredentialVars("INSTAGRAM_APP_ID", "INSTAGRAM_APP_SECRET", "INSTAGRAM_CONFIG_ID")
    webhook_object = "instagram"
    # instagram_manage_comments: the first comment under a published post
    scopes = ("instagram_basic", "instagram_content_publish", "instagram_manage_insights", "instagram_manage_comments",
              "pages_show_list", "pages_read_engagement", "business_management")
    # the usual content_publishing_limit; the platform's own figure wins where it answers
    daily_limit = 100
    options = {
        "share_to_feed": opt.flag(),
        "cover_url": opt.url(),
        "thumb_offset": opt.integer(0, 15 * 60 * 1000),  # milliseconds into the video
        "image_url": opt.url(),
        "alt_text": opt.text(1000),
        "collaborators": opt.texts(3, 30, r"[A-Za-z0-9._]+"),  # Instagram usernames
        "items": opt.media_items(2, 10),
    }
    first_stage = "start"

    # permalink reads the published media; done only reports (poll may publish: not here)
    reading_stages = frozenset({"permalink", "done"})
    live_stages = frozenset({"permalink", "done"})  # media_publish answered
    requirements = Requirements(
        caption_max=2200, hashtags_max=30, mentions_max=20,
        media_types=("video", "image", "carousel"),
        # Meta's reference says 300 MB, an older collection 1 GB: the smaller is the safe bound.
        max_video_bytes=300 * 1000 * 1000, min_duration_sec=3, max_duration_sec=15 * 60,
    )
    # Meta documents no comment limit; a comment is held to the caption's 2,200 characters
    first_comment = FirstComment(2200)
    comment_text_field = "text"
    comment_time_field = "timestamp"
    carousel_max: ClassVar[int] = 10
    max_polls: ClassVar[int] = 60
    max_restarts: ClassVar[int] = 2
    _kinds: ClassVar[dict[str, str]] = {"video": "REELS", "image": "IMAGE", "carousel": "CAROUSEL"}

    # ------------------------------------------------------------------ accounts
    def fetch_accounts(self, tokens: TokenSet) -> list[AccountProfile]:
        """Every Instagram professional account linked to a Page of this login, each with the
        Page's token (no expiry, so no refresh token)."""
        token = tokens.access_token
        granted = set((tokens.scope or "").split(",")) - {""}
        if granted and "instagram_content_publish" not in granted:
            raise Reauthorize("Instagram publishing permission was not granted; connect again and allow every "
                              "requested permission.", platform=self.name, code="permission_missing")
        me = self.graph_get(token, "me", {"fields": "id,name"})
        pages = self.graph_list(token, "me/accounts",
                                {"fields": "id,name,access_token,instagram_business_account", "limit": 100})
        accounts = []
        for page in pages:
            linked = page.get("instagram_business_account") or {}
            if not linked.get("id") or not page.get("access_token"):
                continue
            page_token = page["access_token"]
            profile = self.graph_get(page_token, linked["id"], {"fields": "id,username,name,profile_picture_url"})
            accounts.append(AccountProfile(
                account_id=str(profile["id"]),
                account_name=profile.get("name") or profile.get("username") or str(profile["id"]),
                username=profile.get("username"),
                picture_url=profile.get("profile_picture_url"),
                tokens=TokenSet(access_token=page_token, scope=tokens.scope),
                metadata={"page_id": str(page["id"]), "page_name": page.get("name"), "user_id": str(me["id"])},
            ))
        if not accounts:
            raise Rejected("No Instagram professional account linked to a Facebook Page was found in this login; "
                           "link the Instagram account to a Page, select that Page when logging in, and connect "
                           "again.", platform=self.name, code="no_instagram_business_account")
        return accounts

    # ------------------------------------------------------------------ validation
    def check_content(self, content: PostContent, media: MediaInfo | None = None) -> list[Issue]:
        """Instagram counts hashtags and @-mentions in the caption as published."""
        caption = self.compose_caption(content)
        issues = [i for i in self.requirements.check(self.display_name, content, caption, media)
                  if i.code not in ("too_many_hashtags", "too_many_mentions")]
        tags, mentions = len(HASHTAG.findall(caption)), len(MENTION.findall(caption))
        if tags > 30:
            issues.append(Issue("hashtags", "too_many_hashtags",
                                f"Instagram allows at most 30 hashtags; this caption has {tags}. Remove {tags - 30}."))
        if mentions > 20:
            issues.append(Issue("mentions", "too_many_mentions",
                                f"Instagram allows at most 20 @-mentions; this caption has {mentions}."))
        if content.media_type == "carousel":
            count = len(content.extra.get("items") or [])
            if not 2 <= count <= self.carousel_max:
                issues.append(Issue("media", "carousel_size",
                                    f"An Instagram carousel holds 2 to {self.carousel_max} photos or videos; this one "
                                    f"has {count}."))
        return issues

    # ------------------------------------------------------------------ publishing
    def step_start(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        return self.run_step(job, self._plan(job, cp))

    def _plan(self, job: PublishJob, checkpoint: dict[str, Any]) -> dict[str, Any]:
        """What to create, decided once per container (no platform effect)."""
        kind = self._kinds.get(job.content.media_type)
        if kind is None:
            raise Rejected("Instagram cannot publish text-only posts; add a video or an image.", platform=self.name,
                           code="media_type_unsupported")
        plan: dict[str, Any] = {"stage": "container", "kind": kind, "restarts": checkpoint.get("restarts", 0)}
        if kind == "REELS":
            self._check_video(self._video_url(job.content))
        elif kind == "IMAGE":
            self._image_url(job.content)
        else:
            items = _carousel_items(job.content)
            if not 2 <= len(items) <= self.carousel_max:
                raise Rejected(f"An Instagram carousel holds 2 to {self.carousel_max} photos or videos; this one has "
                               f"{len(items)}.", platform=self.name, code="carousel_size")
            plan.update(stage="child", items=items, children=[])
        return plan

    def step_child(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        item = cp["items"][len(cp["children"])]
        data: dict[str, Any] = {"is_carousel_item": True}
        if item["type"] == "video":
            data.update(media_type="VIDEO", video_url=item["url"])
        else:
            data["image_url"] = item["url"]
        body = self.graph_post(job.account.access_token, f"{job.account.account_id}/media", data)
        children = cp["children"] + [str(body["id"])]
        stage = "children_poll" if len(children) == len(cp["items"]) else "child"
        return StepResult({**cp, "children": children, "stage": stage})

    def step_children_poll(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        for child in cp["children"]:
            status = self._status(job, child)
            code = status.get("status_code")
            if code == "IN_PROGRESS":
                return self._wait(cp)
            if code == "EXPIRED" or (code == "ERROR" and _subcode(status) in _RETRY_WITH_NEW_CONTAINER):
                return self._restart(cp)
            if code != "FINISHED":
                raise self._container_failed(status, cp)
        return self.step_container(job, {**cp, "stage": "container", "polls": 0})

    def step_container(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        content, kind = job.content, cp["kind"]
        data: dict[str, Any] = {"caption": job.caption}
        if kind == "REELS":
            data.update(media_type="REELS", video_url=self._video_url(content),
                        share_to_feed=bool(content.extra.get("share_to_feed", True)))
            cover = content.extra.get("cover_url") or content.thumbnail_url
            if cover:
                data["cover_url"] = cover
            elif content.extra.get("thumb_offset") is not None:
                data["thumb_offset"] = int(content.extra["thumb_offset"])
        elif kind == "IMAGE":
            data["image_url"] = self._image_url(content)
            if content.extra.get("alt_text"):
                data["alt_text"] = content.extra["alt_text"]
        else:
            data.update(media_type="CAROUSEL", children=",".join(cp["children"]))
        if content.extra.get("collaborators"):
            data["collaborators"] = list(content.extra["collaborators"])[:3]
        body = self.graph_post(job.account.access_token, f"{job.account.account_id}/media", data)
        return StepResult({**cp, "stage": "poll", "container_id": str(body["id"]), "polls": 0})

    def step_poll(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        status = self._status(job, cp["container_id"])
        code = status.get("status_code")
        if code == "FINISHED":
            return self._publish(job, cp)
        if code == "IN_PROGRESS":
            return self._wait(cp)
        if code == "PUBLISHED":
            # Already published (an earlier attempt's answer was lost): never publish it again.
            return self.step_permalink(job, {**cp, "stage": "permalink", "media_id": self._published_media(job)})
        if code == "EXPIRED" or (code == "ERROR" and _subcode(status) in _RETRY_WITH_NEW_CONTAINER):
            return self._restart(cp)
        raise self._container_failed(status, cp)

    def _publish(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        account = job.account
        response = self.graph_request("POST", self.graph_url(f"{account.account_id}/media_publish"),
                                      account.access_token, data={"creation_id": cp["container_id"]},
                                      idempotent=False)
        if response.status_code >= 400:
            error = graph_error(self._json(response, strict=False)) or {}
            if error.get("code") == 9007 or error.get("error_subcode") == 2207027:
                return self._wait(cp)
            if error.get("code") == 9 and error.get("error_subcode") == 2207042:
                raise self._quota_reached(account, response)
            self.raise_for(response, sent_effect=True)
        media_id = str(self._json(response)["id"])
        return StepResult({**cp, "stage": "permalink", "media_id": media_id})

    def step_permalink(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        # media_publish answered with the media id: the post is live. Its permalink is a courtesy,
        # and a read that fails here (5xx, timeout, a refused token) must never turn a published
        # post into a failed one that Retry would send again.
        try:
            permalink = self.graph_get(job.account.access_token, cp["media_id"], {"fields": "id,permalink"}).get(
                "permalink")
        except PlatformError:
            permalink = None
        return self.step_done(job, {**cp, "stage": "done", "permalink": permalink})

    def step_done(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        return StepResult(cp, done=True, platform_post_id=cp["media_id"], platform_post_url=cp.get("permalink"))

    # --- helpers of the stages
    def _status(self, job: PublishJob, container_id: str) -> dict[str, Any]:
        return self.graph_get(job.account.access_token, container_id, {"fields": "id,status_code,status"})

    def _wait(self, cp: dict[str, Any]) -> StepResult:
        polls = cp.get("polls", 0) + 1
        if polls > self.max_polls:
            raise Rejected("Instagram did not finish processing the media in time; try again later.",
                           platform=self.name, code="processing_timeout")
        return StepResult({**cp, "stage": cp["stage"], "polls": polls}, wait=self.poll_seconds)

    def _restart(self, cp: dict[str, Any]) -> StepResult:
        """Start over with a new container. The old one can never be published (it expired or
        failed), so nothing is duplicated."""
        restarts = cp.get("restarts", 0) + 1
        if restarts > self.max_restarts:
            raise Rejected("Instagram kept failing to prepare the media; try again later.", platform=self.name,
                           code="processing_failed")
        return StepResult({"stage": "start", "restarts": restarts})

    def _container_failed(self, status: dict[str, Any], cp: dict[str, Any]) -> PlatformError:
        sub = _subcode(status)
        what = "video" if cp.get("kind") == "REELS" else "media"
        kw = {"platform": self.name, "platform_code": sub or status.get("status_code")}
        if sub == 2207052:
            return Rejected(f"Instagram could not download the {what} from its URL; check that the URL is public "
                            f"(opens without a login) and try again.", code="media_fetch_failed", **kw)
        if sub == 2207026:
            return Rejected("Instagram cannot process this video's format; use an H.264 MP4 of 3 s to 15 min and at "
                            "most 300 MB.", code="video_format_unsupported", **kw)
        if sub == 2207057:
            return Rejected("The cover frame offset is past the end of the video; choose an earlier frame.",
                            code="thumb_offset_invalid", **kw)
        if sub in (2207004, 2207005, 2207009):
            return Rejected("Instagram cannot use this image: it needs a JPEG of at most 8 MB with an aspect ratio "
                            "between 4:5 and 1.91:1.", code="image_unsupported", **kw)
        return Rejected(f"Instagram could not process the {what}: {safe_text(status.get('status'))}",
                        code="processing_failed", **kw)

    def _published_media(self, job: PublishJob) -> str:
        media_id = self._find_media(job)
        if media_id is None:
            raise UnknownOutcome("Instagram reports the post as published, but it cannot be found among the "
                                 "account's recent posts; check the account.", platform=self.name,
                                 code="unconfirmed")
        return media_id

    def _find_media(self, job: PublishJob) -> str | None:
        """The newest recent post with this job's caption (containers do not name their media)."""
        recent = self.graph_get(job.account.access_token, f"{job.account.account_id}/media",
                                {"fields": "id,caption,timestamp", "limit": 25}).get("data", [])
        wanted = (job.caption or "").strip()
        for media in recent:
            if (media.get("caption") or "").strip() == wanted:
                return str(media["id"])
        return None

    def _quota_reached(self, account: AccountRef, response: httpx.Response) -> RateLimited:
        """The limit error, waiting until the oldest counted post leaves the rolling window. Recent
        posts include ones made in the app (not counted), so this never waits too little."""
        wait, limit = 3600.0, None
        try:
            quota = self.quota(account)
            limit = quota.limit if quota else None
            if limit:
                recent = self.graph_get(account.access_token, f"{account.account_id}/media",
                                        {"fields": "timestamp", "limit": limit}).get("data", [])
                stamps = sorted((graph_time(m.get("timestamp")) for m in recent), reverse=True)
                if len(stamps) >= limit and stamps[limit - 1]:
                    wait = max(60.0, stamps[limit - 1] + quota.window_seconds - server_now(response) + 60)
        except PlatformError:
            pass
        cap = f"{limit} " if limit else ""
        return RateLimited(f"Instagram's limit of {cap}API posts per 24 hours is reached for this account; the post "
                           f"will go out when a slot frees.", platform=self.name, code="publish_limit_reached",
                           platform_code="9/2207042", http_status=response.status_code, retry_after=wait)

    def _check_video(self, url: str) -> None:
        """Instagram downloads the video itself; reading it first turns an unreachable or
        out-of-bounds video into a clear message instead of a failed container."""
        try:
            info = MediaSource(self.settings, url).probe()
        except MediaError as exc:
            raise Rejected(f"Instagram fetches the video from its URL and it cannot be read: {exc.message}",
                           platform=self.name, code="media_fetch_failed", http_status=exc.http_status) from None
        problems = [i for i in self.requirements.check(self.display_name, PostContent(), "", info)
                    if i.field == "video"]
        if problems:
            raise Rejected(problems[0].message, platform=self.name, code=problems[0].code)

    def _video_url(self, content: PostContent) -> str:
        if not content.video_url:
            raise Rejected("This post has no video URL.", platform=self.name, code="media_missing")
        return content.video_url

    def _image_url(self, content: PostContent) -> str:
        url = content.extra.get("image_url") or content.video_url
        if not url:
            raise Rejected("This post has no image URL.", platform=self.name, code="media_missing")
        return url

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, job: PublishJob) -> StepResult:
        """Settle an unknown outcome. Creating a container is never a publication (an orphaned
        container expires unpublished after 24 h), so those stages are redone; for `poll`, whose
        step calls `media_publish`, the container's own status says whether it was published."""
        cp = dict(job.checkpoint or {})
        if cp.get("stage") == "poll":
            status = self._status(job, cp["container_id"])
            if status.get("status_code") == "PUBLISHED":
                return StepResult({**cp, "stage": "permalink", "media_id": self._published_media(job)})
        return StepResult(cp)

    # ------------------------------------------------------------------ metrics and quota
    def fetch_metrics(self, account: AccountRef, platform_post_id: str) -> Metrics:
        try:
            body = self.graph_get(account.access_token, f"{platform_post_id}/insights",
                                  {"metric": "views,reach,likes,comments,shares,saved"})
        except (Rejected, Reauthorize):
            # Insights not granted, or not offered for this media: the node's own counts remain.
            node = self.graph_get(account.access_token, platform_post_id, {"fields": "like_count,comments_count"})
            return Metrics(likes=int(node.get("like_count") or 0), comments=int(node.get("comments_count") or 0))
        # A metric Instagram has no data for yet (up to 48 h) is missing from `data`, not 0.
        values = {m.get("name"): (m.get("values") or [{}])[0].get("value", 0) for m in body.get("data", [])}
        return Metrics(views=int(values.get("views") or 0), likes=int(values.get("likes") or 0),
                       comments=int(values.get("comments") or 0), shares=int(values.get("shares") or 0),
                       saves=_count(values.get("saved")), reach=_count(values.get("reach")))

    def quota(self, account: AccountRef) -> Quota:
        """Instagram's own count of API posts in its rolling window (`content_publishing_limit`)."""
        body = self.graph_get(account.access_token, f"{account.account_id}/content_publishing_limit",
                              {"fields": "quota_usage,config"})
        entry = (body.get("data") or [{}])[0]
        config = entry.get("config") or {}
        return Quota(limit=config.get("quota_total"), used=entry.get("quota_usage"),
                     window_seconds=int(config.get("quota_duration") or 86400))

    # ------------------------------------------------------------------ errors
    def map_specific(self, code, sub, error, response):
        kw = {"platform": self.name, "platform_code": f"{code}/{sub}", "http_status": response.status_code}
        if sub == 2207052:
            return Rejected("Instagram could not download the video or image from its URL; check that the URL is "
                            "public (opens without a login) and try again.", code="media_fetch_failed", **kw)
        if sub == 2207010:
            return Rejected("Instagram refused the caption: at most 2,200 characters, 30 hashtags and 20 "
                            "@-mentions.", code="caption_invalid", **kw)
        if sub == 2207028:
            return Rejected(f"An Instagram carousel holds 2 to {self.carousel_max} photos or videos.",
                            code="carousel_size", **kw)
        if sub == 2207050:
            return Reauthorize("The Instagram account is inactive or restricted; open the Instagram app, complete "
                               "what it asks, then try again.", code="account_restricted", **kw)
        return None


def _carousel_items(content: PostContent) -> list[dict[str, str]]:
    items = []
    for raw in content.extra.get("items") or []:
        if isinstance(raw, str):
            path = raw.split("?", 1)[0].lower()
            items.append({"url": raw, "type": "video" if path.endswith((".mp4", ".mov")) else "image"})
        else:
            items.append({"url": raw["url"], "type": "video" if raw.get("type") == "video" else "image"})
    return items


def _subcode(status: dict[str, Any]) -> int | None:
    match = _SUBCODE.search(str(status.get("status") or ""))
    return int(match.group(1)) if match else None


def _count(value: Any) -> int | None:
    """An insight's value as a count; None when Instagram reported nothing for it."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
