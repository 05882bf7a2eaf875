"""Instagram emulator: the Graph API's Instagram objects with Facebook Login.

Serves the Instagram ids (`IG_ID`: business accounts, media containers and media start with 178 or
179, as real ones do) on graph.facebook.com: the account profile, `/{ig}/media` (create a
container, list recent media), `/{ig}/media_publish`, `/{ig}/content_publishing_limit`, the
container and media nodes and `/{media}/insights`. The login, tokens, users and Pages come from
the shared `MetaWorld`, served by the Facebook emulator.

Containers move `IN_PROGRESS -> FINISHED | ERROR`, `-> EXPIRED` when not published within
`container_ttl`, and `-> PUBLISHED` once; processing follows the clock or
`process(container_id=None, outcome="FINISHED"|"ERROR", subcode=None)`. Instagram downloads media
itself: the emulator judges a media URL by `media_problem` (sandbox media host query, local
addresses) and never fetches bytes.
"""
from __future__ import annotations

import json
import re
import secrets
import string
from typing import Any

from werkzeug.wrappers import Request, Response

from bridge.sandbox.meta import (
    IG_ID,
    V,
    MetaEmulator,
    graph_route,
    graph_timestamp,
    media_facts,
    media_problem,
    numeric_id,
    truthy,
)

IG = V + rf"(?P<ig_id>{IG_ID})"
HASHTAG = re.compile(r"(?<![\w&#])#\w+")
MENTION = re.compile(r"(?<![\w@])@[\w.]+")
USER_FIELDS = {"id", "ig_id", "username", "name", "profile_picture_url", "followers_count", "follows_count",
               "media_count", "biography", "website"}
CONTAINER_FIELDS = {"id", "status_code", "status", "copyright_check_status"}
COMMENT_FIELDS = {"id", "text", "timestamp", "username", "from", "like_count", "hidden", "media", "parent_id"}
MEDIA_FIELDS = {"id", "caption", "media_type", "media_product_type", "permalink", "shortcode", "timestamp",
                "like_count", "comments_count", "username", "media_url", "thumbnail_url", "is_shared_to_feed",
                "owner", "children"}
METRICS = {
    "REELS": {"views", "reach", "likes", "comments", "shares", "saved", "total_interactions",
              "ig_reels_avg_watch_time", "ig_reels_video_view_total_time"},
    "FEED": {"views", "reach", "likes", "comments", "shares", "saved", "total_interactions", "profile_visits",
             "follows"},
}
DEPRECATED_METRICS = {"plays", "impressions", "video_views", "clips_replays_count",
                      "ig_reels_aggregated_all_plays_count"}
STATUS_TEXT = {
    "IN_PROGRESS": "In Progress: Media is still being processed.",
    "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
    "PUBLISHED": "Published: Media has been successfully published.",
    "EXPIRED": "Expired: Media was not published within 24 hours.",
}


class InstagramEmulator(MetaEmulator):
    platform = "instagram"
    hosts = ("graph.facebook.com",)
    buc_type = "instagram"
    buc_code = 80002
    defaults = {
        # content_publishing_limit: Meta's pages say 25, 50 and 100; read at runtime by clients.
        "quota_total": 100,
        "quota_duration": 86400,
        "container_ttl": 86400,
        "video_processing_seconds": 30,
        "image_processing_seconds": 0,
        "caption_max": 2200,
        "hashtags_max": 30,
        "mentions_max": 20,
        "carousel_min": 2,
        "carousel_max": 10,
        "reel_min_seconds": 3,
        "reel_max_seconds": 900,
        "reel_max_bytes": 300 * 1024 * 1024,
        "comment_max": 2200,
        "require_appsecret_proof": True,  # the app's "Require App Secret" setting
        "app_calls_per_hour": 100000,
        "buc_calls_per_window": 4800,
        "buc_window_seconds": 3600,
    }

    def reset(self) -> None:
        super().reset()
        self.containers: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.publishes: dict[str, list[float]] = {}

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(),
                "containers": {c["id"]: self._refresh(c)["status_code"] for c in self.containers.values()}}

    def find_object(self, object_id: str) -> dict[str, Any] | None:
        return self.media.get(object_id)

    def _buc_message(self) -> str:
        return "There have been too many calls to this Instagram account. Wait a bit and try again."

    # ------------------------------------------------------------------ nodes
    @graph_route("GET", V + rf"(?P<object_id>{IG_ID})")
    def node(self, request: Request, object_id: str) -> Response:
        world = self.world
        if object_id in world.ig_accounts:
            _, ig = self._account(request, object_id, "instagram_basic")
            fields = self.fields(request, USER_FIELDS, "IGUser", ["id"])
            count = sum(1 for m in self.media.values() if m["ig"] == object_id)
            view = {**ig, "ig_id": int(object_id[-10:]), "media_count": count, "biography": "", "website": None}
            return self.json({f: view.get(f) for f in fields if view.get(f) is not None})
        if object_id in self.containers:
            container = self._refresh(self.containers[object_id])
            self._account(request, container["ig"], "instagram_basic")
            fields = self.fields(request, CONTAINER_FIELDS, "ShadowIGMediaBuilder", ["id"])
            view = {"id": object_id, "status_code": container["status_code"], "status": self._status_text(container),
                    "copyright_check_status": {"matches_found": False, "status": "completed"
                                               if container["status_code"] in ("FINISHED", "PUBLISHED")
                                               else "in_progress"}}
            return self.json({f: view[f] for f in fields})
        if object_id in self.media:
            media = self.media[object_id]
            self._account(request, media["ig"], "instagram_basic")
            fields = self.fields(request, MEDIA_FIELDS, "IGMedia", ["id"])
            return self.json(self._media_view(media, fields))
        self.authenticate(request)
        self.unsupported("get", object_id)

    # ------------------------------------------------------------------ containers
    @graph_route("POST", IG + r"/media")
    def create_container(self, request: Request, ig_id: str) -> Response:
        p = self.params(request)
        _, ig = self._account(request, ig_id, "instagram_content_publish", p)
        media_type = (p.get("media_type") or "").upper()
        is_item = truthy(p.get("is_carousel_item"), False)
        caption = p.get("caption", "")
        if not is_item:
            self._check_caption(caption)
        if p.get("upload_type"):
            self.fail(100, "(#100) upload_type=resumable is not emulated; send video_url")
        container: dict[str, Any] = {"ig": ig_id, "caption": caption, "is_item": is_item, "children": [],
                                     "media_type": media_type or "IMAGE", "planned": None,
                                     "share_to_feed": truthy(p.get("share_to_feed"), True)}
        if media_type in ("REELS", "VIDEO", "STORIES") and p.get("video_url"):
            if media_type == "REELS" and is_item:
                self.fail(100, "(#100) Reels cannot be carousel items; use media_type=VIDEO", subcode=2207023)
            if media_type == "VIDEO" and not is_item:
                self.fail(100, "The VIDEO media type is no longer supported for feed videos; use REELS.",
                          subcode=2207023, user_title="Media type not supported")
            container.update(self._video_plan(p))
        elif media_type in ("REELS", "VIDEO"):
            self.fail(100, "(#100) The parameter video_url is required.")
        elif media_type == "CAROUSEL":
            if is_item:
                self.fail(100, "(#100) A carousel cannot be an item of another carousel")
            container.update(self._carousel_plan(p, ig_id))
        elif media_type in ("", "IMAGE", "STORIES"):
            if p.get("video_url"):
                self.fail(100, "The VIDEO media type is no longer supported for feed videos; use REELS.",
                          subcode=2207023, user_title="Media type not supported")
            container.update(self._image_plan(p))
        else:
            self.fail(100, "(#100) Param media_type must be one of {CAROUSEL, REELS, STORIES, VIDEO, IMAGE}")
        container.update(id=numeric_id("17890", 17), created_at=self.now(), status_code="IN_PROGRESS")
        container["ready_at"] = self.now() + container.pop("processing")
        self.containers[container["id"]] = container
        return self.json({"id": container["id"]})

    def _check_caption(self, caption: str) -> None:
        cfg = self.config
        if len(caption) > cfg["caption_max"] or len(HASHTAG.findall(caption)) > cfg["hashtags_max"] or \
                len(MENTION.findall(caption)) > cfg["mentions_max"]:
            self.fail(100, "The caption is too long or has too many hashtags or mentions.", subcode=2207010,
                      user_title="Invalid caption",
                      user_msg=f"Captions are at most {cfg['caption_max']} characters with at most "
                               f"{cfg['hashtags_max']} hashtags and {cfg['mentions_max']} @-mentions.")

    def _video_plan(self, p: dict[str, str]) -> dict[str, Any]:
        url = p["video_url"]
        limits = {"min_duration": self.config["reel_min_seconds"], "max_duration": self.config["reel_max_seconds"],
                  "max_bytes": self.config["reel_max_bytes"]}
        problem = media_problem(url, "video", limits)
        thumb = p.get("thumb_offset")
        if thumb is not None and (not thumb.isdigit()):
            self.fail(100, "(#100) Param thumb_offset must be a non-negative integer")
        cover = p.get("cover_url")
        if cover and not cover.startswith(("http://", "https://")):
            self.fail(100, "(#100) Param cover_url must be a URL")
        planned = {"fetch": 2207052, "format": 2207026}.get(problem or "")
        if planned is None and thumb is not None and int(thumb) >= media_facts(url)["duration"] * 1000:
            planned = 2207057
        return {"video_url": url, "cover_url": cover, "planned": planned,
                "processing": self.config["video_processing_seconds"]}

    def _image_plan(self, p: dict[str, str]) -> dict[str, Any]:
        url = p.get("image_url")
        if not url:
            self.fail(100, "(#100) The parameter image_url is required.")
        problem = media_problem(url, "image", {})
        if problem == "fetch":
            self.fail(9004, "Media download has failed. The media URI doesn't meet our requirements.",
                      subcode=2207052, user_title="Media download has failed.",
                      user_msg=f"The media could not be fetched from this URI: {url}. Please check that it is "
                               f"public and try again.")
        if problem == "format":
            self.fail(36001, "The image format is not supported.", subcode=2207005,
                      user_title="Unsupported image format", user_msg="The image must be a JPEG.")
        return {"image_url": url, "media_type": "IMAGE", "processing": self.config["image_processing_seconds"]}

    def _carousel_plan(self, p: dict[str, str], ig_id: str) -> dict[str, Any]:
        raw = p.get("children") or ""
        try:
            children = [str(c) for c in json.loads(raw)] if raw.startswith("[") else \
                [c.strip() for c in raw.split(",") if c.strip()]
        except ValueError:
            children = []
        if not self.config["carousel_min"] <= len(children) <= self.config["carousel_max"]:
            self.fail(100, "Your post won't be shared as a carousel. Carousels need at least "
                           f"{self.config['carousel_min']} photos/videos and no more than "
                           f"{self.config['carousel_max']} photos/videos.", subcode=2207028,
                      user_title="Carousel validation failed")
        for index, child_id in enumerate(children):
            child = self.containers.get(child_id)
            if child is None or child["ig"] != ig_id or not child["is_item"]:
                self.fail(100, f"(#100) Param children[{index}] must be a carousel item container of this account")
            if self._refresh(child)["status_code"] != "FINISHED":
                self.fail(9007, "Media ID is not available", subcode=2207027,
                          user_title="Media not ready for publishing",
                          user_msg="The media is not ready for publishing, please wait for a moment")
        return {"children": children, "media_type": "CAROUSEL", "processing": self.config["image_processing_seconds"]}

    @graph_route("GET", IG + r"/media")
    def list_media(self, request: Request, ig_id: str) -> Response:
        self._account(request, ig_id, "instagram_basic")
        fields = self.fields(request, MEDIA_FIELDS, "IGMedia", ["id"])
        limit = min(100, request.args.get("limit", default=25, type=int) or 25)
        items = sorted((m for m in self.media.values() if m["ig"] == ig_id), key=lambda m: m["created_at"],
                       reverse=True)[:limit]
        return self.json({"data": [self._media_view(m, fields) for m in items], "paging": {}})

    # ------------------------------------------------------------------ publishing
    @graph_route("POST", IG + r"/media_publish")
    def media_publish(self, request: Request, ig_id: str) -> Response:
        p = self.params(request)
        _, ig = self._account(request, ig_id, "instagram_content_publish", p)
        container_id = p.get("creation_id")
        if not container_id:
            self.fail(100, "(#100) The parameter creation_id is required.")
        container = self.containers.get(container_id)
        if container is None or container["ig"] != ig_id:
            self.fail(24, "The media with this id cannot be found.", subcode=2207006, user_title="Media not found")
        status = self._refresh(container)["status_code"]
        if container["is_item"]:
            self.fail(100, "(#100) A carousel item cannot be published on its own")
        if status == "IN_PROGRESS":
            self.fail(9007, "Media ID is not available", subcode=2207027, user_title="Media not ready for publishing",
                      user_msg="The media is not ready for publishing, please wait for a moment")
        if status == "ERROR":
            self.fail(-1, "Create media fail, please try to re-create media", subcode=2207032)
        if status == "EXPIRED":
            self.fail(-2, "The media you are trying to access has expired. Please try to upload again.",
                      subcode=2207020)
        if status == "PUBLISHED":
            # The emulator's answer (Meta's is not documented): never a second publication.
            self.fail(100, "(#100) This media has already been published")
        window = self.now() - self.config["quota_duration"]
        recent = [t for t in self.publishes.get(ig_id, []) if t > window]
        if len(recent) >= self.config["quota_total"]:
            self.fail(9, "Application request limit reached", subcode=2207042, user_title="Cannot publish post",
                      user_msg="You reached maximum number of posts that is allowed to be published by Content "
                               "Publishing API.")
        media = self._new_media(container, ig)
        container.update(status_code="PUBLISHED", media=media["id"])
        self.publishes[ig_id] = recent + [self.now()]
        self.published.append({"id": media["id"], "account": ig_id, "user": self.world.pages[ig["page"]]["owner"],
                               "caption": media["caption"], "media_type": media["media_type"],
                               "container": container["id"], "created_at": media["created_at"]})
        return self.json({"id": media["id"]})

    @graph_route("GET", IG + r"/content_publishing_limit")
    def publishing_limit(self, request: Request, ig_id: str) -> Response:
        self._account(request, ig_id, "instagram_basic")
        fields = self.fields(request, {"quota_usage", "config", "rate_limit_settings"},
                             "ContentPublishingLimitResponse", ["quota_usage"])
        since = request.args.get("since")
        if since is not None and (not since.isdigit() or int(since) < self.now() - self.config["quota_duration"]):
            self.fail(100, "(#100) Param since must be a unix timestamp within the last 24 hours")
        start = int(since) if since else self.now() - self.config["quota_duration"]
        entry: dict[str, Any] = {"quota_usage": sum(1 for t in self.publishes.get(ig_id, []) if t > start)}
        if "config" in fields or "rate_limit_settings" in fields:
            entry["config"] = {"quota_total": self.config["quota_total"],
                               "quota_duration": self.config["quota_duration"]}
        return self.json({"data": [entry]})

    @graph_route("GET", V + rf"(?P<media_id>{IG_ID})/insights")
    def insights_of(self, request: Request, media_id: str) -> Response:
        media = self.media.get(media_id)
        if media is None:
            self.authenticate(request)
            self.unsupported("get", media_id)
        self._account(request, media["ig"], "instagram_manage_insights")
        names = [n.strip() for n in (request.args.get("metric") or "").split(",") if n.strip()]
        if not names:
            self.fail(100, "(#100) The parameter metric is required")
        allowed = METRICS["REELS" if media["media_product_type"] == "REELS" else "FEED"]
        for index, name in enumerate(names):
            if name in DEPRECATED_METRICS:
                self.fail(100, f"(#100) The {name} metric is no longer supported in this version of the API")
            if name not in allowed:
                self.fail(100, f"(#100) metric[{index}] must be one of the following values: "
                               f"{', '.join(sorted(allowed))}")
        return self.json(self.insights(media_id, self.counts(media), names))

    # ------------------------------------------------------------------ comments
    @graph_route("POST", V + rf"(?P<media_id>{IG_ID})/comments")
    def create_comment(self, request: Request, media_id: str) -> Response:
        """`POST /{ig-media-id}/comments?message=`: a comment as the account that owns the media
        (instagram_basic + instagram_manage_comments); live video is not supported."""
        p = self.params(request)
        media = self._media_for(request, media_id, p)
        record, ig = self._account(request, media["ig"], "instagram_manage_comments", p)
        self.require(record, "instagram_basic")
        message = p.get("message")
        if not message or not message.strip():
            self.fail(100, "(#100) The parameter message is required")
        if len(message) > self.config["comment_max"]:
            self.fail(100, f"(#100) Param message must be at most {self.config['comment_max']} characters long")
        if media["media_product_type"] == "STORY":
            self.fail(100, "(#100) Comments on stories and live video are not supported")
        comment = self.add_comment(media_id, message, {"id": ig["id"], "username": ig["username"]},
                                   numeric_id("17890", 17))
        return self.json({"id": comment["id"]})

    @graph_route("GET", V + rf"(?P<media_id>{IG_ID})/comments")
    def list_comments(self, request: Request, media_id: str) -> Response:
        media = self._media_for(request, media_id)
        record, _ = self._account(request, media["ig"], "instagram_manage_comments")
        self.require(record, "instagram_basic")
        fields = self.fields(request, COMMENT_FIELDS, "IGComment", ["id", "text", "timestamp"])
        limit = min(100, request.args.get("limit", default=25, type=int) or 25)
        views = []
        for comment in self.comments_on(media_id)[:limit]:
            full = {"id": comment["id"], "text": comment["message"],
                    "timestamp": graph_timestamp(comment["created_at"]), "username": comment["from"]["username"],
                    "from": dict(comment["from"]), "like_count": 0, "hidden": False, "media": {"id": media_id}}
            views.append({f: full[f] for f in fields if f in full})
        return self.json({"data": views, "paging": {}})

    def _media_for(self, request: Request, media_id: str, p: dict[str, str] | None = None) -> dict[str, Any]:
        media = self.media.get(media_id)
        if media is None:
            self.authenticate(request, p)
            self.unsupported(request.method.lower(), media_id)
        return media

    # ------------------------------------------------------------------ processing
    def process(self, container_id: str | None = None, outcome: str = "FINISHED", subcode: int | None = None) -> int:
        """Finish processing of one container, or of every container still in progress."""
        changed = 0
        for container in self.containers.values():
            if (container_id is None or container["id"] == container_id) and container["status_code"] == "IN_PROGRESS":
                if outcome == "ERROR":
                    container["planned"] = int(subcode or 2207001)
                container["ready_at"] = self.now()
                self._refresh(container)
                changed += 1
        return changed

    def _refresh(self, container: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        if container["status_code"] == "IN_PROGRESS" and now >= container["ready_at"]:
            container["status_code"] = "ERROR" if container["planned"] else "FINISHED"
        if container["status_code"] in ("IN_PROGRESS", "FINISHED") and \
                now >= container["created_at"] + self.config["container_ttl"]:
            container["status_code"] = "EXPIRED"
        return container

    @staticmethod
    def _status_text(container: dict[str, Any]) -> str:
        if container["status_code"] == "ERROR":
            return f"Error: Media upload has failed with error code {container['planned']}"
        return STATUS_TEXT[container["status_code"]]

    # ------------------------------------------------------------------ helpers
    def _account(self, request: Request, ig_id: str, permission: str, p: dict[str, str] | None = None):
        """The token and Instagram account when the token reaches it (its user manages the linked
        Page, or it is that Page's token), else Graph's error."""
        record = self.authenticate(request, p)
        ig = self.world.ig_accounts.get(ig_id)
        page = self.world.pages.get(ig["page"]) if ig else None
        if page is None or not ((record.kind in ("short", "long") and page["owner"] == record.user)
                                or (record.kind == "page" and record.extra.get("page") == page["id"])):
            self.unsupported(request.method.lower(), ig_id)
        self.require(record, permission)
        self.buc(request, ig_id)
        return record, ig

    def _new_media(self, container: dict[str, Any], ig: dict[str, Any]) -> dict[str, Any]:
        kind = container["media_type"]
        product = {"REELS": "REELS", "STORIES": "STORY"}.get(kind, "FEED")
        if kind == "STORIES":
            kind = "VIDEO" if container.get("video_url") else "IMAGE"
        shortcode = "".join(secrets.choice(string.ascii_letters + string.digits + "_-") for _ in range(11))
        path = "reel" if product == "REELS" else "p"
        media = {"id": numeric_id("17920", 17), "ig": ig["id"], "username": ig["username"],
                 "caption": container["caption"], "media_product_type": product,
                 "media_type": {"REELS": "VIDEO", "CAROUSEL": "CAROUSEL_ALBUM"}.get(kind, kind),
                 "shortcode": shortcode, "permalink": f"https://www.instagram.com/{path}/{shortcode}/",
                 "created_at": self.now(), "children": list(container["children"]),
                 "media_url": container.get("video_url") or container.get("image_url"),
                 "is_shared_to_feed": container["share_to_feed"], "metrics": {}}
        self.media[media["id"]] = media
        return media

    def _media_view(self, media: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        m = self.counts(media)
        full = {"id": media["id"], "caption": media["caption"] or None, "media_type": media["media_type"],
                "media_product_type": media["media_product_type"], "permalink": media["permalink"],
                "shortcode": media["shortcode"], "timestamp": graph_timestamp(media["created_at"]),
                "like_count": m.get("likes", 0), "comments_count": m.get("comments", 0),
                "username": media["username"], "media_url": media["media_url"],
                "is_shared_to_feed": media["is_shared_to_feed"] if media["media_product_type"] == "REELS" else None,
                "owner": {"id": media["ig"]},
                "children": {"data": [{"id": c} for c in media["children"]]} if media["children"] else None}
        return {f: full[f] for f in fields if full.get(f) is not None}
