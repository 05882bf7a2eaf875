"""Facebook Pages emulator, and Facebook Login for both Meta platforms.

Serves the OAuth dialog (www.facebook.com; `scope`, or `config_id` for Facebook Login for Business
apps), `/oauth/access_token`, `/me`, `/me/accounts`, permissions and `debug_token` on
graph.facebook.com, then every Facebook object: users, Pages, posts, photos and videos; Page videos
from a hosted file (`file_url`) and the reels protocol (`video_reels` +
`rupload.facebook.com/video-upload`). The deprecated chunked `upload_phase` protocol on
`/{page}/videos` is refused. Permissions that need an App Review the app has not passed
(`unapproved_permissions`, by default `publish_video`, the Live Video permission) cannot be asked
for. Instagram ids (`IG_ID`) belong to the Instagram emulator.

Videos move `uploading -> upload_complete -> processing -> ready | error` with the clock
(`video_processing_seconds`) or `process(video_id=None, outcome="ready"|"error", message=None)`.
Uploaded bytes are counted, never kept.
"""
from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from werkzeug.wrappers import Request, Response

from bridge.platforms.meta import GRAPH_VERSION
from bridge.sandbox.meta import (
    ALL_HOSTS,
    FB_ID,
    NAMED_ERRORS,
    NEVER,
    PERMISSIONS,
    V,
    MetaEmulator,
    drain,
    graph_route,
    graph_timestamp,
    media_facts,
    media_problem,
    numeric_id,
    read_block,
    truthy,
)

PAGE = V + rf"(?P<page_id>{FB_ID})/"
OBJECT = rf"(?P<object_id>{FB_ID}(?:_\d+)?)"
POST_PERMISSION = ("(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts as an "
                   "admin with sufficient administrative permission")
UPLOAD_PROBLEM = "There was a problem uploading your video. Please try again."
PAGE_FIELDS = {"id", "name", "access_token", "tasks", "category", "instagram_business_account", "picture", "link",
               "fan_count", "followers_count", "category_list"}
POST_FIELDS = {"id", "message", "created_time", "updated_time", "permalink_url", "shares", "reactions", "comments",
               "likes", "from", "is_published", "status_type", "attachments"}
VIDEO_FIELDS = {"id", "status", "title", "description", "permalink_url", "created_time", "updated_time", "length",
                "published", "likes", "comments", "from"}
COMMENT_FIELDS = {"id", "message", "created_time", "from", "like_count", "comment_count", "can_comment",
                  "is_hidden", "permalink_url", "parent"}
COMMENT_PERMISSION = ("(#200) The user hasn't authorized the application to perform this action: commenting as the "
                      "Page requires pages_manage_engagement and the MODERATE task on the Page")
POST_METRICS = {"post_media_view", "post_total_media_view_unique", "post_reactions_by_type_total", "post_clicks"}
PAGE_METRICS = {"page_media_view", "page_total_media_view_unique", "page_post_engagements", "page_daily_follows"}
VIDEO_METRICS = {"blue_reels_play_count", "total_video_views", "post_video_social_actions",
                 "post_video_likes_by_reaction_type", "total_video_impressions", "post_video_avg_time_watched"}


class FacebookEmulator(MetaEmulator):
    platform = "facebook"
    hosts = ALL_HOSTS
    buc_type = "pages"
    buc_code = 80001
    defaults = {
        "code_ttl": 600,
        "short_token_ttl": 3600,
        "long_token_ttl": 5183944,
        "accept_unknown_apps": True,  # learn an app's secret at its first exchange (the sandbox has no dashboard)
        "redirect_uris": [],  # allowed redirect URIs; empty: any http(s) URL
        "require_appsecret_proof": True,  # the app's "Require App Secret" setting
        # Facebook Login for Business: configuration id -> the permissions it grants; the apps named
        # in `login_for_business_apps` authorize only with a config_id
        "login_configurations": {},
        "login_for_business_apps": [],
        # permissions behind an App Review this app has not passed: the dialog refuses them
        "unapproved_permissions": ["publish_video"],
        "app_calls_per_hour": 100000,
        "buc_calls_per_window": 4800,
        "buc_window_seconds": 3600,
        "accounts_page_max": 100,  # most Pages one /me/accounts answer holds, whatever `limit` asks
        "message_max": 63206,
        "comment_max": 8000,
        "duplicate_window_seconds": 86400,
        "video_processing_seconds": 30,
        "reels_per_day": 30,
        "reels_window_seconds": 86400,
    }

    def reset(self) -> None:
        super().reset()
        self.posts: dict[str, dict[str, Any]] = {}
        self.photos: dict[str, dict[str, Any]] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        self.reel_publishes: dict[str, list[float]] = {}
        self._seq = 0

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "posts": len(self.posts), "videos": {
            v["id"]: {"kind": v["kind"], "received": v["received"], "size": v["size"], "state": self._status(v)
                      ["video_status"]} for v in self.videos.values()}}

    def find_object(self, object_id: str) -> dict[str, Any] | None:
        return self.posts.get(object_id) or self.videos.get(object_id) or self.photos.get(object_id)

    # ================================================================== Facebook Login
    @graph_route("GET", V + r"dialog/oauth", host="www")
    def dialog(self, request: Request) -> Response:
        values = self._dialog_values(request)
        if isinstance(values, Response):
            return values
        names = ("client_id", "redirect_uri", "state", "scope", "config_id", "response_type")
        hidden = {k: values[k] for k in names if values.get(k)}
        return self.consent_page(request, app_name=f"Sandbox app {values['client_id']}", scopes=values["scopes"],
                                 hidden=hidden)

    @graph_route("POST", V + r"dialog/oauth", host="www")
    def dialog_decision(self, request: Request) -> Response:
        values = self._dialog_values(request)
        if isinstance(values, Response):
            return values
        redirect_uri, state = values["redirect_uri"], values.get("state")
        if request.form.get("decision") != "allow":
            params = {"error": "access_denied", "error_code": "200", "error_description": "Permissions error",
                      "error_reason": "user_denied"}
            return self._redirect(redirect_uri, {**params, **({"state": state} if state else {})})
        world = self.world
        with world.lock:
            user = world.ensure_user((request.form.get("sandbox_user") or "creator1").strip() or "creator1")
            world.apps.setdefault(values["client_id"], None)
            world.grants.setdefault((user["id"], values["client_id"]), set()).update(values["scopes"])
            code = "AQ" + base64.urlsafe_b64encode(numeric_id("", 40).encode()).decode().rstrip("=")
            world.codes[code] = {"client": values["client_id"], "redirect": redirect_uri, "user": user["id"],
                                 "expires": self.now() + self.config["code_ttl"], "used": False}
        return self._redirect(redirect_uri, {"code": code, **({"state": state} if state else {})})

    def _dialog_values(self, request: Request) -> dict[str, Any] | Response:
        values = {k: v for k, v in request.args.items()}
        if request.method == "POST":
            values.update({k: v for k, v in request.form.items() if k not in ("decision", "sandbox_user")})
        client_id = values.get("client_id", "")
        if not client_id.strip():
            return self._dialog_error("Invalid App ID: The provided app ID does not look like a valid app ID.")
        if client_id not in self.world.apps and not self.config["accept_unknown_apps"]:
            return self._dialog_error("Invalid App ID: The provided app ID does not look like a valid app ID.")
        redirect_uri = values.get("redirect_uri", "")
        parts = urlsplit(redirect_uri)
        allowed = self.config["redirect_uris"]
        if parts.scheme not in ("http", "https") or not parts.netloc or (allowed and redirect_uri not in allowed):
            return self._dialog_error("URL blocked: This redirect failed because the redirect URI is not whitelisted "
                                      "in the app's Client OAuth Settings.")
        if values.get("response_type", "code") != "code":
            return self._dialog_error(f"Unsupported response_type: {values.get('response_type')}")
        config_id = values.get("config_id")
        if config_id:
            # Facebook Login for Business: the configuration names the permissions, scope is ignored
            configured = self.config["login_configurations"].get(config_id)
            if configured is None:
                return self._dialog_error("Invalid Configuration ID: the config_id is not a login configuration of "
                                          "this app.")
            scopes = list(configured)
        elif client_id in self.config["login_for_business_apps"]:
            return self._dialog_error("This app uses Facebook Login for Business: the login needs a config_id, not "
                                      "scope.")
        else:
            scopes = [s.strip() for s in values.get("scope", "").split(",") if s.strip()]
        unknown = [s for s in scopes if s not in PERMISSIONS or s in self.config["unapproved_permissions"]]
        if unknown:
            return self._dialog_error(f"Invalid Scopes: {', '.join(unknown)}. This message is only shown to "
                                      f"developers.")
        return {**values, "scopes": scopes or ["public_profile"]}

    def _dialog_error(self, message: str) -> Response:
        return self.error_page(400, "OAuthException", message)

    @staticmethod
    def _redirect(url: str, params: dict[str, str]) -> Response:
        sep = "&" if "?" in url else "?"
        # Facebook appends "#_=_" to login redirects.
        return Response("", status=302, headers={"Location": f"{url}{sep}{urlencode(params)}#_=_"})

    @graph_route("GET", V + r"oauth/access_token")
    def access_token(self, request: Request) -> Response:
        p, world, now = request.args, self.world, self.now()
        client_id, secret = p.get("client_id"), p.get("client_secret")
        if not client_id:
            self.fail(101, "Missing client_id parameter.")
        if client_id not in world.apps and not self.config["accept_unknown_apps"]:
            self.fail(101, "Error validating application. Invalid application ID.")
        if not secret:
            self.fail(1, "Missing client_secret parameter.")
        with world.lock:
            known = world.apps.get(client_id)
            if known is None:
                world.apps[client_id] = secret
            elif known != secret:
                self.fail(1, "Error validating client secret.")
        grant = p.get("grant_type")
        if grant == "client_credentials":
            return self.json({"access_token": f"{client_id}|{secret}", "token_type": "bearer"})
        if grant == "fb_exchange_token":
            found = world.check(p.get("fb_exchange_token"), now)
            if isinstance(found, tuple):
                self.fail(found[0], found[2], subcode=found[1])
            if found.kind not in ("short", "long") or found.client_id != client_id:
                self.fail(100, "(#100) fb_exchange_token must be a user access token of this app")
            record = world.issue("long", found.user, client_id, self.config["long_token_ttl"], now)
            return self.json({"access_token": record.token, "token_type": "bearer",
                              "expires_in": int(self.config["long_token_ttl"])})
        if grant not in (None, "", "authorization_code"):
            self.fail(100, f"(#100) Unsupported grant_type: {grant}")
        code, redirect_uri = p.get("code"), p.get("redirect_uri")
        if not redirect_uri:
            self.fail(100, "Missing redirect_uri parameter.")
        if not code:
            self.fail(100, "Missing code parameter.")
        with world.lock:
            entry = world.codes.get(code)
            if entry is None:
                self.fail(100, "Invalid verification code format.")
            if entry["used"]:
                self.fail(100, "This authorization code has been used.", subcode=36009)
            if now > entry["expires"]:
                self.fail(100, "This authorization code has expired.", subcode=36007)
            if entry["client"] != client_id or entry["redirect"] != redirect_uri:
                self.fail(100, "Error validating verification code. Please make sure your redirect_uri is identical "
                               "to the one you used in the OAuth dialog request", subcode=36008)
            entry["used"] = True
        record = world.issue("short", entry["user"], client_id, self.config["short_token_ttl"], now)
        return self.json({"access_token": record.token, "token_type": "bearer",
                          "expires_in": int(self.config["short_token_ttl"])})

    @graph_route("GET", V + r"me")
    def me(self, request: Request) -> Response:
        record = self.authenticate(request)
        if record.kind == "page":
            page = self.world.pages[record.extra["page"]]
            fields = self.fields(request, PAGE_FIELDS, "Page", ["id", "name"])
            return self.json(self._page_view(page, fields, record))
        user = self.world.users[record.user]
        fields = self.fields(request, {"id", "name", "first_name", "last_name"}, "User", ["id", "name"])
        names = {"first_name": user["name"].split(" ")[0], "last_name": user["name"].split(" ")[-1]}
        return self.json({f: user.get(f) or names.get(f) for f in fields})

    @graph_route("GET", V + r"me/accounts")
    def me_accounts(self, request: Request) -> Response:
        record = self.authenticate(request)
        if record.kind == "page":
            self.fail(100, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)")
        self.require(record, "pages_show_list", code=200,
                     message="(#200) Requires pages_show_list permission to manage the object")
        fields = self.fields(request, PAGE_FIELDS, "Page", ["access_token", "category", "name", "id", "tasks"])
        pages = [p for p in self.world.pages.values() if p["owner"] == record.user]
        limit = min(self.config["accounts_page_max"], request.args.get("limit", default=25, type=int) or 25)
        start = _cursor(request.args.get("after"), -1) + 1
        chunk = pages[start:start + limit]
        paging: dict[str, Any] = {"cursors": {"before": _encode(start), "after": _encode(start + len(chunk) - 1)}}
        if start + limit < len(pages):
            version = request.path.strip("/").split("/", 1)[0]
            query = urlencode({"fields": request.args.get("fields", ""), "limit": limit,
                               "after": _encode(start + len(chunk) - 1)})
            paging["next"] = f"https://graph.facebook.com/{version}/me/accounts?{query}"
        return self.json({"data": [self._page_view(p, fields, record) for p in chunk], "paging": paging})

    @graph_route("GET", V + r"me/permissions")
    def permissions(self, request: Request) -> Response:
        record = self.authenticate(request, kinds=("short", "long"))
        return self.json({"data": [{"permission": p, "status": "granted"} for p in sorted(self.world.scopes(record))]})

    @graph_route("DELETE", V + r"me/permissions")
    def revoke_all(self, request: Request) -> Response:
        record = self.authenticate(request, kinds=("short", "long"))
        self.world.revoke(record.user, record.client_id)
        return self.json({"success": True})

    @graph_route("DELETE", V + r"me/permissions/(?P<permission>\w+)")
    def revoke_one(self, request: Request, permission: str) -> Response:
        record = self.authenticate(request, kinds=("short", "long"))
        self.world.revoke(record.user, record.client_id, permission)
        return self.json({"success": True})

    @graph_route("DELETE", V + rf"(?P<user_id>{FB_ID})/permissions")
    def revoke_user(self, request: Request, user_id: str) -> Response:
        record = self.authenticate(request, kinds=("short", "long", "app"))
        if user_id not in self.world.users or (record.kind != "app" and record.user != user_id):
            self.fail(100, f"(#100) Unsupported delete request. Object with ID '{user_id}' does not exist, cannot be "
                           f"loaded due to missing permissions, or does not support this operation.", subcode=33)
        self.world.revoke(user_id, record.client_id)
        return self.json({"success": True})

    @graph_route("GET", V + r"debug_token")
    def debug_token(self, request: Request) -> Response:
        self.authenticate(request, kinds=("short", "long", "page", "app"))
        found = self.world.check(request.args.get("input_token"), self.now())
        if isinstance(found, tuple):
            return self.json({"data": {"is_valid": False, "error": {"code": found[0], "message": found[2],
                                                                    "subcode": found[1]}, "scopes": []}})
        data = {"app_id": found.client_id, "type": "PAGE" if found.kind == "page" else "USER",
                "application": f"Sandbox app {found.client_id}", "is_valid": True,
                "expires_at": 0 if found.expires_at == NEVER else int(found.expires_at),
                "data_access_expires_at": int(self.now() + 90 * 86400),
                "scopes": sorted(self.world.scopes(found)), "user_id": found.user}
        if found.kind == "page":
            data["profile_id"] = found.extra["page"]
        return self.json({"data": data})

    # ================================================================== nodes
    @graph_route("GET", V + OBJECT)
    def node(self, request: Request, object_id: str) -> Response:
        record = self.authenticate(request)
        world = self.world
        if object_id in world.users:
            if record.kind == "page" or record.user != object_id:
                self.unsupported("get", object_id)
            fields = self.fields(request, {"id", "name"}, "User", ["id", "name"])
            return self.json({f: world.users[object_id][f] for f in fields})
        if object_id in world.pages:
            self._read_access(record, object_id)
            fields = self.fields(request, PAGE_FIELDS, "Page", ["id", "name"])
            return self.json(self._page_view(world.pages[object_id], fields, record))
        if object_id in self.posts and not self.posts[object_id].get("deleted"):
            post = self.posts[object_id]
            self._read_access(record, post["page"])
            self.buc(request, post["page"])
            fields = self.fields(request, POST_FIELDS, "Post", ["id", "message", "created_time"])
            return self.json(self._post_view(post, fields))
        if object_id in self.photos:
            photo = self.photos[object_id]
            self._read_access(record, photo["page"])
            fields = self.fields(request, {"id", "name", "created_time", "link", "page_story_id"}, "Photo", ["id"])
            view = {"id": photo["id"], "name": photo["caption"], "created_time": graph_timestamp(photo["created_at"]),
                    "link": f"https://www.facebook.com/photo/?fbid={photo['id']}",
                    "page_story_id": photo.get("post_id")}
            return self.json({f: view[f] for f in fields if view.get(f) is not None})
        if object_id in self.videos:
            video = self.videos[object_id]
            self._read_access(record, video["page"])
            self.buc(request, video["page"])
            fields = self.fields(request, VIDEO_FIELDS, "Video", ["id"])
            return self.json(self._video_view(video, fields))
        self.unsupported("get", object_id)

    @graph_route("DELETE", V + OBJECT)
    def delete_node(self, request: Request, object_id: str) -> Response:
        record = self.authenticate(request, kinds=("page",))
        post = self.posts.get(object_id)
        if post is None or post.get("deleted"):
            self.unsupported("delete", object_id)
        self._write_access(record, post["page"])
        post["deleted"] = True
        return self.json({"success": True})

    # ================================================================== Page posts and photos
    @graph_route("POST", PAGE + "feed")
    def create_post(self, request: Request, page_id: str) -> Response:
        p = self.params(request)
        record = self._writer(request, p, page_id)
        message, link = p.get("message", ""), p.get("link")
        attached = _json_list(p.get("attached_media"))
        # The indexed form (attached_media[0]={"media_fbid": ...}) is accepted as well.
        indexed = sorted((k for k in p if k.startswith("attached_media[")), key=lambda k: _int(k[15:-1]) or 0)
        if attached == [] and indexed:
            attached = [_json_object(p[k]) for k in indexed]
        if attached is None:
            self.fail(100, "(#100) param attached_media must be an array of objects with a media_fbid")
        if not message and not link and not attached:
            self.fail(100, "(#100) Missing message or attachment")
        if len(message) > self.config["message_max"]:
            self.fail(100, "(#100) The message is too long", user_msg="Your post is too long; shorten it.")
        published = truthy(p.get("published"), True)
        if p.get("scheduled_publish_time"):
            self._check_schedule(p["scheduled_publish_time"], published, 600, 30 * 86400)
        photos = []
        for item in attached:
            photo = self.photos.get(str(item.get("media_fbid") if isinstance(item, dict) else ""))
            if photo is None or photo["page"] != page_id or photo["published"] or photo.get("attached"):
                self.fail(100, "(#100) param attached_media must be an array of objects with the id of an "
                               "unpublished photo of this Page")
            photos.append(photo)
        if message and not attached and self._duplicate(page_id, message, link):
            self.fail(506, "(#506) Duplicate status message")
        for photo in photos:
            photo["attached"] = True
        post = self._new_post(page_id, record.user, message, link=link, kind="album" if photos else "status",
                              published=published and not p.get("scheduled_publish_time"))
        return self.json({"id": post["id"]})

    @graph_route("GET", PAGE + "feed")
    def list_feed(self, request: Request, page_id: str) -> Response:
        return self._list_posts(request, page_id)

    @graph_route("GET", PAGE + "published_posts")
    def list_published(self, request: Request, page_id: str) -> Response:
        return self._list_posts(request, page_id)

    @graph_route("POST", PAGE + "photos")
    def create_photo(self, request: Request, page_id: str) -> Response:
        p = self.params(request)
        record = self._writer(request, p, page_id)
        url = p.get("url")
        if not url:
            self.fail(324, "(#324) Requires upload file")
        if media_problem(url, "photo", {}):
            self.fail(324, "(#324) Missing or invalid image file")
        caption = p.get("caption") or p.get("message") or ""
        published = truthy(p.get("published"), True)
        photo = {"id": numeric_id("1020", 15), "page": page_id, "caption": caption, "published": published,
                 "created_at": self.now(), "metrics": {}}
        self.photos[photo["id"]] = photo
        if not published:
            return self.json({"id": photo["id"]})
        post = self._new_post(page_id, record.user, caption, kind="photo", published=True)
        photo["post_id"] = post["id"]
        return self.json({"id": photo["id"], "post_id": post["id"]})

    # ================================================================== Page videos
    @graph_route("POST", PAGE + "videos")
    def videos_post(self, request: Request, page_id: str) -> Response:
        if (request.mimetype or "") == "multipart/form-data":
            drain(request)
            self.fail(100, "(#100) Upload video files with the Resumable Upload API or a file_url")
        p = self.params(request)
        record = self._writer(request, p, page_id)
        if p.get("upload_phase"):
            # the chunked protocol is deprecated: the Resumable Upload API or file_url replace it
            self.fail(100, "(#100) The upload_phase protocol is deprecated; upload with the Resumable Upload API or "
                           "pass a file_url")
        if p.get("file_url"):
            return self._video_from_url(p, page_id, record.user)
        self.fail(353, "(#353) You must select a video file to upload.")

    @graph_route("GET", PAGE + "videos")
    def list_videos(self, request: Request, page_id: str) -> Response:
        return self._list_videos(request, page_id, "video")

    def _video_from_url(self, p: dict[str, str], page_id: str, user: str) -> Response:
        problem = media_problem(p["file_url"], "video", {})
        if problem == "fetch":
            self.fail(389, "(#389) Unable to fetch video file from URL.")
        if problem == "format":
            self.fail(352, "(#352) Sorry, the video file you selected is in a format that we don't support.")
        facts = media_facts(p["file_url"])
        video = self._new_video(page_id, "video", size=facts["size"], length=facts["duration"])
        video["received"] = video["size"]
        video.update(title=p.get("title", ""), description=p.get("description", ""))
        self._start_processing(video, truthy(p.get("published"), True))
        return self.json({"id": video["id"]})

    # ================================================================== reels
    @graph_route("POST", PAGE + "video_reels")
    def reels_post(self, request: Request, page_id: str) -> Response:
        p = self.params(request)
        self._writer(request, p, page_id)
        phase = p.get("upload_phase")
        if phase == "start":
            video = self._new_video(page_id, "reel")
            version = request.path.strip("/").split("/", 1)[0]
            version = version if version.startswith("v") else GRAPH_VERSION
            return self.json({"video_id": video["id"],
                              "upload_url": f"https://rupload.facebook.com/video-upload/{version}/{video['id']}"})
        if phase != "finish":
            self.fail(100, "(#100) upload_phase must be start or finish")
        video = self.videos.get(p.get("video_id") or "")
        if video is None or video["page"] != page_id or video["kind"] != "reel":
            self.fail(100, "(#100) Invalid video_id")
        state = p.get("video_state")
        if state not in ("DRAFT", "SCHEDULED", "PUBLISHED"):
            self.fail(100, "(#100) video_state must be one of DRAFT, SCHEDULED, PUBLISHED")
        if video["finished"]:
            self.fail(100, "(#100) This reel has already been finished")
        if video["size"] is None or video["received"] < video["size"]:
            self.fail(6001, UPLOAD_PROBLEM, subcode=1363037, user_title="Video upload is incomplete",
                      user_msg="Upload every byte of the video before finishing it.")
        if state == "SCHEDULED":
            self._check_schedule(p.get("scheduled_publish_time") or "", False, 600, 29 * 86400)
        if state == "PUBLISHED":
            window = self.now() - self.config["reels_window_seconds"]
            recent = [t for t in self.reel_publishes.get(page_id, []) if t > window]
            if len(recent) >= self.config["reels_per_day"]:
                status, code, subcode, message, _ = NAMED_ERRORS["reels_limit"]
                self.fail(code, message, status=status)
            self.reel_publishes[page_id] = recent + [self.now()]
        video.update(title=p.get("title", ""), description=p.get("description", ""))
        self._start_processing(video, state == "PUBLISHED")
        return self.json({"success": True})

    @graph_route("GET", PAGE + "video_reels")
    def list_reels(self, request: Request, page_id: str) -> Response:
        return self._list_videos(request, page_id, "reel")

    @graph_route("POST", r"/video-upload/(?P<version>v\d+\.\d+)/(?P<video_id>\d+)", host="rupload")
    def rupload(self, request: Request, version: str, video_id: str) -> Response:
        video = self.videos.get(video_id)
        if video is None or video["kind"] != "reel":
            return self._rupload_error(request, 404, "NotFoundError", "The video does not exist.")
        found = self.world.check(self.bearer(request), self.now())
        if isinstance(found, tuple):
            return self._rupload_error(request, 401, "AuthenticationError", found[2])
        if found.kind != "page" or found.extra.get("page") != video["page"]:
            return self._rupload_error(request, 403, "AuthorizationError",
                                       "The access token does not belong to the video's Page.")
        offset, size = _int(request.headers.get("offset")), _int(request.headers.get("file_size"))
        file_url = request.headers.get("file_url")
        if video["finished"]:
            return self._rupload_error(request, 400, "ProcessingFailedError", "The upload is already finished.")
        if file_url:
            if media_problem(file_url, "video", {}):
                return self._rupload_error(request, 400, "ProcessingFailedError", "Unable to fetch the file_url.")
            video["size"] = video["received"] = int(media_facts(file_url)["size"])
            return self.json({"success": True})
        if offset is None or size is None or size <= 0:
            return self._rupload_error(request, 400, "InvalidRequestError", "The offset and file_size headers are "
                                                                            "required.")
        if video["size"] is not None and size != video["size"]:
            return self._rupload_error(request, 400, "InvalidRequestError",
                                       f"file_size {size} differs from the {video['size']} of this upload.")
        if offset != video["received"]:
            return self._rupload_error(request, 400, "OffsetInvalidError",
                                       f"Offset {offset} is not where the upload stands ({video['received']}).")
        video["size"] = size
        overflow = False
        while True:
            data = read_block(request, 1 << 20) if not overflow else b""
            if not data:
                break
            room = size - video["received"]
            video["received"] += min(room, len(data))
            overflow = len(data) > room
        if overflow:
            return self._rupload_error(request, 400, "InvalidRequestError", "More bytes than file_size were sent.")
        return self.json({"success": True})

    def _rupload_error(self, request: Request, status: int, kind: str, message: str) -> Response:
        drain(request)
        return self.json({"debug_info": {"retriable": status >= 500, "type": kind, "message": message}},
                         status=status)

    # ================================================================== insights
    @graph_route("GET", V + OBJECT + r"/insights")
    def object_insights(self, request: Request, object_id: str) -> Response:
        record = self.authenticate(request)
        self.require(record, "read_insights", message="(#10) Requires read_insights permission")
        if object_id in self.world.pages:
            self._read_access(record, object_id)
            names = self._metrics(request, PAGE_METRICS)
            return self.json(self.insights(object_id, {}, names))
        post = self.posts.get(object_id)
        if post is None or post.get("deleted"):
            self.unsupported("get", object_id)
        self._read_access(record, post["page"])
        names = self._metrics(request, POST_METRICS)
        m = self.counts(post)
        values = {"post_media_view": m["views"], "post_total_media_view_unique": m["reach"],
                  "post_reactions_by_type_total": {"like": m["likes"]},
                  "post_clicks": int(post["metrics"].get("clicks", 0))}
        return self.json(self.insights(object_id, values, names))

    @graph_route("GET", V + rf"(?P<video_id>{FB_ID})/video_insights")
    def video_insights(self, request: Request, video_id: str) -> Response:
        record = self.authenticate(request)
        video = self.videos.get(video_id)
        if video is None:
            self.unsupported("get", video_id)
        self._read_access(record, video["page"])
        self.require(record, "read_insights", message="(#10) Requires read_insights permission")
        names = self._metrics(request, VIDEO_METRICS)
        m = self.counts(video)
        values = {"blue_reels_play_count": m.get("views", 0), "total_video_views": m.get("views", 0),
                  "total_video_impressions": m.get("views", 0), "post_video_avg_time_watched": 0,
                  "post_video_social_actions": {"share": m.get("shares", 0), "comment": m.get("comments", 0),
                                                "like": m.get("likes", 0)},
                  "post_video_likes_by_reaction_type": {"REACTION_LIKE": m.get("likes", 0)}}
        return self.json(self.insights(video_id, values, names))

    def _metrics(self, request: Request, allowed: set[str]) -> list[str]:
        names = [n.strip() for n in (request.args.get("metric") or "").split(",") if n.strip()]
        if not names:
            self.fail(100, "(#100) The parameter metric is required")
        for index, name in enumerate(names):
            if name not in allowed:
                self.fail(100, f"(#100) metric[{index}] must be one of the following values: "
                               f"{', '.join(sorted(allowed))}")
        return names

    # ================================================================== processing
    def process(self, video_id: str | None = None, outcome: str = "ready", message: str | None = None) -> int:
        """Finish processing of one video, or of every video being processed."""
        changed = 0
        for video in list(self.videos.values()):
            if (video_id is None or video["id"] == video_id) and video["processing"] == "in_progress":
                self._complete(video, outcome, message)
                changed += 1
        return changed

    def _new_video(self, page_id: str, kind: str, size: int | None = None, length: float = 0.0) -> dict[str, Any]:
        video = {"id": numeric_id("1030", 15), "page": page_id, "kind": kind, "size": size, "received": 0,
                 "length": length, "created_at": self.now(), "finished": False, "processing": "not_started",
                 "ready_at": None, "publish": False, "published": False, "publish_time": 0, "title": "",
                 "description": "", "error": None, "metrics": {}}
        self.videos[video["id"]] = video
        return video

    def _start_processing(self, video: dict[str, Any], publish: bool) -> None:
        video.update(finished=True, processing="in_progress", publish=publish,
                     ready_at=self.now() + self.config["video_processing_seconds"])

    def _complete(self, video: dict[str, Any], outcome: str = "ready", message: str | None = None) -> None:
        if outcome == "error":
            video.update(processing="error", error=message or "The video could not be processed.")
            return
        video["processing"] = "complete"
        if video["publish"] and not video["published"]:
            video.update(published=True, publish_time=self.now())
            self.published.append({"id": video["id"], "account": video["page"],
                                   "user": self.world.pages[video["page"]]["owner"], "kind": video["kind"],
                                   "caption": video["description"], "created_at": self.now()})

    def _advance(self, video: dict[str, Any]) -> None:
        if video["processing"] == "in_progress" and self.now() >= video["ready_at"]:
            self._complete(video)

    def _status(self, video: dict[str, Any]) -> dict[str, Any]:
        self._advance(video)
        size, received = video["size"], video["received"]
        uploaded = size is not None and received >= size
        processing: dict[str, Any] = {"status": video["processing"]}
        if video["error"]:
            processing["errors"] = [{"code": 1363008, "message": video["error"]}]
        if video["published"]:
            publishing = {"status": "complete", "publish_status": "published",
                          "publish_time": int(video["publish_time"])}
        else:
            publishing = {"status": "not_started", "publish_status": "draft", "publish_time": 0}
        if video["processing"] == "error":
            state = "error"
        elif video["processing"] == "complete":
            state = "ready"
        elif video["finished"]:
            state = "processing"
        else:
            state = "upload_complete" if uploaded else "uploading"
        # the byte count (vendor spelling) is progress: a complete upload reports its status only
        uploading: dict[str, Any] = {"status": "complete"} if uploaded else {
            "status": "in_progress" if received else "not_started", "bytes_transfered": received}
        return {"video_status": state, "uploading_phase": uploading, "processing_phase": processing,
                "publishing_phase": publishing}

    # ================================================================== comments
    @graph_route("POST", V + OBJECT + r"/comments")
    def create_comment(self, request: Request, object_id: str) -> Response:
        """`POST /{object-id}/comments` with `message`, as the Page (its token, with
        pages_manage_engagement and the MODERATE task) under one of its posts, photos or videos."""
        p = self.params(request)
        record = self.authenticate(request, p, kinds=("page",))
        target = self._commentable(request, object_id)
        page = self.world.pages[target["page"]]
        if record.extra.get("page") != page["id"] or "MODERATE" not in page["tasks"]:
            self.fail(200, COMMENT_PERMISSION)
        self.require(record, "pages_manage_engagement", code=200, message=COMMENT_PERMISSION)
        self.buc(request, page["id"])
        message = p.get("message")
        if not message or not message.strip():
            self.fail(100, "(#100) Missing message or attachment")
        if len(message) > self.config["comment_max"]:
            self.fail(100, f"(#100) The comment is longer than {self.config['comment_max']} characters")
        self._seq += 1
        comment_id = f"{object_id.rsplit('_', 1)[-1]}_{200000000000 + self._seq}"
        self.add_comment(object_id, message, {"id": page["id"], "name": page["name"]}, comment_id)
        return self.json({"id": comment_id})

    @graph_route("GET", V + OBJECT + r"/comments")
    def list_comments(self, request: Request, object_id: str) -> Response:
        record = self.authenticate(request)
        target = self._commentable(request, object_id)
        self._read_access(record, target["page"])
        self.buc(request, target["page"])
        fields = self.fields(request, COMMENT_FIELDS, "Comment", ["id", "message", "created_time"])
        limit = min(100, request.args.get("limit", default=25, type=int) or 25)
        chronological = request.args.get("order", "chronological") == "chronological"
        found = self.comments_on(object_id)
        views = []
        for comment in (list(reversed(found)) if chronological else found)[:limit]:
            full = {"id": comment["id"], "message": comment["message"],
                    "created_time": graph_timestamp(comment["created_at"]), "from": dict(comment["from"]),
                    "like_count": 0, "comment_count": 0, "can_comment": True, "is_hidden": False,
                    "permalink_url": f"https://www.facebook.com/{object_id}?comment_id={comment['id']}"}
            views.append({f: full[f] for f in fields if f in full})
        return self.json({"data": views, "paging": {}})

    def _commentable(self, request: Request, object_id: str) -> dict[str, Any]:
        """A live post, photo or video of a Page (an unpublished or deleted one is not there)."""
        target = self.posts.get(object_id) or self.photos.get(object_id) or self.videos.get(object_id)
        if target is None or target.get("deleted") or not target.get("published"):
            self.unsupported(request.method.lower(), object_id)
        return target

    # ================================================================== views and helpers
    def _writer(self, request: Request, p: dict[str, str], page_id: str):
        """The Page token allowed to publish on this Page (or the Graph error)."""
        record = self.authenticate(request, p, kinds=("page",))
        if page_id not in self.world.pages:
            self.unsupported("post", page_id)
        self._write_access(record, page_id)
        self.require(record, "pages_manage_posts", code=200, message=POST_PERMISSION)
        self.buc(request, page_id)
        return record

    def _write_access(self, record, page_id: str) -> None:
        if record.extra.get("page") != page_id:
            self.fail(200, POST_PERMISSION, kind="OAuthException")

    def _read_access(self, record, page_id: str) -> None:
        page = self.world.pages.get(page_id)
        if page is None:
            self.unsupported("get", page_id)
        if record.kind == "page" and record.extra.get("page") == page_id:
            return
        if record.kind in ("short", "long") and page["owner"] == record.user:
            return
        self.unsupported("get", page_id)

    def _page_view(self, page: dict[str, Any], fields: list[str], record) -> dict[str, Any]:
        view: dict[str, Any] = {}
        for name in fields:
            if name == "access_token":
                if record.kind in ("short", "long") and page["owner"] == record.user:
                    view[name] = self.world.page_token(page["id"], record, self.now()).token
                elif record.kind == "page" and record.extra.get("page") == page["id"]:
                    view[name] = record.token
            elif name == "instagram_business_account":
                if page.get("ig"):
                    view[name] = {"id": page["ig"]}
            elif name == "picture":
                view[name] = {"data": {"height": 50, "width": 50, "is_silhouette": False,
                                       "url": f"https://scontent.sandbox.aurareels.test/{page['id']}.jpg"}}
            elif name == "link":
                view[name] = f"https://www.facebook.com/{page['id']}"
            elif name in ("fan_count", "followers_count"):
                view[name] = 120
            elif name == "category_list":
                view[name] = [{"id": "2211", "name": page["category"]}]
            else:
                view[name] = page.get(name)
        return view

    def _post_view(self, post: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        m = self.counts(post)
        created = graph_timestamp(post["created_at"])
        full = {"id": post["id"], "message": post["message"] or None, "created_time": created, "updated_time": created,
                "permalink_url": post["permalink_url"],
                "shares": {"count": m["shares"]} if m.get("shares") else None,
                "reactions": _summary(m.get("likes", 0)), "likes": _summary(m.get("likes", 0)),
                "comments": _summary(m.get("comments", 0)), "is_published": post["published"],
                "from": {"id": post["page"], "name": self.world.pages[post["page"]]["name"]},
                "status_type": {"status": "mobile_status_update", "photo": "added_photos",
                                "album": "added_photos"}.get(post["kind"]),
                "attachments": {"data": []}}
        return {f: full[f] for f in fields if full.get(f) is not None}

    def _video_view(self, video: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        m = self.counts(video)
        path = f"/reel/{video['id']}/" if video["kind"] == "reel" else f"/{video['page']}/videos/{video['id']}/"
        full = {"id": video["id"], "status": self._status(video), "title": video["title"] or None,
                "description": video["description"] or None, "permalink_url": path,
                "created_time": graph_timestamp(video["created_at"]),
                "updated_time": graph_timestamp(video["created_at"]),
                "length": video["length"], "published": video["published"], "likes": _summary(m.get("likes", 0)),
                "comments": _summary(m.get("comments", 0)),
                "from": {"id": video["page"], "name": self.world.pages[video["page"]]["name"]}}
        return {f: full[f] for f in fields if full.get(f) is not None}

    def _new_post(self, page_id: str, user: str, message: str, *, link: str | None = None, kind: str = "status",
                  published: bool = True) -> dict[str, Any]:
        self._seq += 1
        number = str(100000000000 + self._seq)
        post = {"id": f"{page_id}_{number}", "page": page_id, "message": message, "link": link, "kind": kind,
                "created_at": self.now(), "published": published, "metrics": {},
                "permalink_url": f"https://www.facebook.com/{page_id}/posts/{number}"}
        self.posts[post["id"]] = post
        if published:
            self.published.append({"id": post["id"], "account": page_id, "user": user, "kind": kind,
                                   "caption": message, "created_at": post["created_at"]})
        return post

    def _duplicate(self, page_id: str, message: str, link: str | None) -> bool:
        since = self.now() - self.config["duplicate_window_seconds"]
        recent = [p for p in self.posts.values() if p["page"] == page_id and not p.get("deleted")
                  and p["kind"] == "status" and p["created_at"] > since]
        return bool(recent) and recent[-1]["message"] == message and recent[-1]["link"] == link

    def _check_schedule(self, raw: str, published: bool, earliest: int, latest: int) -> None:
        when = _int(raw)
        if when is None:
            try:
                when = int(time.mktime(time.strptime(raw[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone)
            except ValueError:
                when = None
        if published or when is None or not self.now() + earliest <= when <= self.now() + latest:
            self.fail(100, "(#100) The specified scheduled publish time is invalid.")

    def _list_posts(self, request: Request, page_id: str) -> Response:
        record = self.authenticate(request)
        self._read_access(record, page_id)
        self.buc(request, page_id)
        fields = self.fields(request, POST_FIELDS, "Post", ["id", "message", "created_time"])
        limit = request.args.get("limit", default=25, type=int) or 25
        posts = [p for p in reversed(list(self.posts.values()))
                 if p["page"] == page_id and p["published"] and not p.get("deleted")][:limit]
        return self.json({"data": [self._post_view(p, fields) for p in posts], "paging": {}})

    def _list_videos(self, request: Request, page_id: str, kind: str) -> Response:
        record = self.authenticate(request)
        self._read_access(record, page_id)
        self.buc(request, page_id)
        fields = self.fields(request, VIDEO_FIELDS, "Video", ["id", "description", "updated_time"])
        limit = request.args.get("limit", default=25, type=int) or 25
        videos = [v for v in reversed(list(self.videos.values())) if v["page"] == page_id and v["kind"] == kind][:limit]
        return self.json({"data": [self._video_view(v, fields) for v in videos], "paging": {}})


def _summary(count: int) -> dict[str, Any]:
    return {"data": [], "summary": {"total_count": int(count)}}


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _json_list(raw: str | None) -> list[Any] | None:
    """`attached_media` as a JSON array (an empty list when absent, None when malformed)."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _json_object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _encode(index: int) -> str:
    return base64.urlsafe_b64encode(str(max(index, 0)).encode()).decode().rstrip("=")


def _cursor(raw: str | None, default: int) -> int:
    if not raw:
        return default
    try:
        return int(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        return default

