"""X (Twitter): OAuth 2.0 with PKCE, chunked media upload, posts, metrics.

Publishing is a state machine on `checkpoint["stage"]`, one platform effect per step:

    init ──> append (one segment per step) ──> finalize ──> processing (STATUS polls) ─┐
     ^                                                                                   │
     └────────────── next media item (images: up to 4) <─────────────────────────────────┤
                                                                                          v
    (text only) ──────────────────────────────────────────────────────────────────────> post ──> posted

X has no idempotency key for posts. An unknown outcome of the post is settled by reading the
user's own recent posts for the same text created after the attempt began.

Media go through the dedicated v2 endpoints (`/2/media/upload/initialize`, `/{id}/append`,
`/{id}/finalize`); the `command=INIT|APPEND|FINALIZE` form was retired in 2025 and only `STATUS`
keeps `command=`. X bills reads and writes per use (credits): an exhausted balance (HTTP 402) is its
own error, `credits_exhausted`, and nothing here reads posts unless it must (the quota is the
bridge's own count; reconcile reads at most a few recent posts).

Post text is counted the way X counts it (`weighted_length`, the twitter-text v3 rules).
"""
from __future__ import annotations

import html
import mimetypes
import re
import secrets
import unicodedata
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Iterator

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
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.http import PlatformHttp
from bridge.platforms.media import MediaError, MediaSource

API = "https://api.x.com/2"
MIB = 1024 * 1024

# ------------------------------------------------------------------------- text length (v3)
MAX_WEIGHTED_LENGTH = 280
URL_WEIGHT = 23 * 100
# Code points weighing 100 (one character); everything else weighs 200 (two).
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_INVALID_CHARS = frozenset("\ufffe\ufeff\uffff")

# URLs. With a scheme any alphabetic top-level domain but the reserved ones is accepted; without
# one, only country codes and the common generic domains below (the full list is long and changes;
# a rare one written without a scheme is counted at its real length).
_GTLDS = ("com|net|org|info|biz|edu|gov|mil|int|name|mobi|pro|aero|coop|museum|jobs|travel|app|dev|page|"
          "xyz|online|site|website|store|shop|blog|news|club|live|tech|art|design|link|media|video|music|"
          "photo|photos|photography|studio|space|world|today|life|social|email|cloud|digital|agency|bar|"
          "company|solutions|services|network|systems|academy|center|guru|ninja|rocks|top|vip|fun|"
          "games|wiki|one|global|love|events|tips|fyi|icu|inc|llc|ltd|group|work|works|zone|onion")
_CCTLDS = "|".join("""
    ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq br bs
    bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg
    eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn
    hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk
    lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf
    ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd
    se sg sh si sj sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw
    tz ua ug uk um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw""".split())
_RESERVED_TLDS = "example|test|invalid|localhost|local|internal|lan|home|corp"
_ACCENTS = "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0300-\u036f\u0400-\u04ff\u1e00-\u1eff"
_PATH = rf"[a-z0-9!*';:=+,.$/%#\[\]\-\u2013_~@|&{_ACCENTS}]"
_PATH_END = rf"[+\-a-z0-9=_#/{_ACCENTS}]"
_PARENS = rf"\((?:{_PATH}+|{_PATH}*\({_PATH}+\){_PATH}*)\)"
_PORT = r"(?::[0-9]+)"
_PATHS = rf"/(?:(?:{_PATH}|{_PARENS})*(?:{_PATH_END}|{_PARENS})|@{_PATH}+/)*"
_QUERY = r"\?[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*[a-z0-9\-_&=#/]"
_TLD_END = r"(?=[^0-9a-z@+\-]|$)"
_URL = re.compile(
    # with a scheme: not glued to a word, a mention, a cashtag or a hashtag
    rf"(?<![a-z0-9@＠$#＃])https?://(?:[^\W_](?:[\w-]*[^\W_])?\.)+"
    rf"(?:xn--[a-z0-9-]+|(?!(?:{_RESERVED_TLDS}){_TLD_END})[^\W\d_]{{2,63}}){_TLD_END}"
    rf"{_PORT}?(?:{_PATHS})?(?:{_QUERY})?"
    # without one: an ASCII domain, also not glued to a path; a port or query only with a path
    rf"|(?<![a-z0-9@＠$#＃\-./])(?:[a-z0-9{_ACCENTS}](?:[a-z0-9{_ACCENTS}-]*[a-z0-9{_ACCENTS}])?\.)+"
    rf"(?:{_GTLDS}|{_CCTLDS}|xn--[a-z0-9-]+){_TLD_END}(?:{_PORT}?{_PATHS}(?:{_QUERY})?)?",
    re.IGNORECASE,
)
_TCO = re.compile(rf"https?://t\.co/[a-z0-9]+(?:{_QUERY})?", re.IGNORECASE)

# Emoji sequences count as one character of weight 200, however many code points they hold.
_PICTO = ("\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u2388\u23cf"
          "\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf\u2934\u2935"
          "\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff")
_ELEMENT = rf"[{_PICTO}](?:\ufe0f|[\U0001f3fb-\U0001f3ff])?(?:[\U000e0020-\U000e007e]+\U000e007f)?"
_EMOJI = re.compile(rf"[\U0001f1e6-\U0001f1ff]{{2}}|[0-9#*]\ufe0f?\u20e3|{_ELEMENT}(?:\u200d{_ELEMENT})*")


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every URL X would shorten, in code point offsets of `text`."""
    spans = []
    for match in _URL.finditer(text):
        start, end = match.span()
        short = _TCO.match(text, start, end)
        spans.append((start, short.end() if short else end))  # a t.co link ends at its slug
    return spans


def _normalized(text: str) -> str:
    return unicodedata.normalize("NFC", re.sub(r"\r\n|\r", "\n", text))


def weighted_length(text: str) -> int:
    """The length X counts: NFC code points weighing 1 or 2 (CJK, emoji and most symbols 2),
    every URL 23, every emoji sequence 2. 280 is the limit of a standard post."""
    text = _normalized(text)
    units = 0
    jumps = {start: (end, URL_WEIGHT) for start, end in url_spans(text)}
    for match in _EMOJI.finditer(text):
        if match.end() - match.start() > 1 or match.group() in "\u00a9\u00ae":
            jumps.setdefault(match.start(), (match.end(), 200))
    index = 0
    while index < len(text):
        jump = jumps.get(index)
        if jump:
            index, weight = jump
            units += weight
            continue
        point = ord(text[index])
        units += 100 if any(low <= point <= high for low, high in _LIGHT_RANGES) else 200
        index += 1
    return units // 100


def has_invalid_characters(text: str) -> bool:
    return any(ch in _INVALID_CHARS for ch in text)


def _comparable(text: str) -> str:
    """Post text as X gives it back (URLs wrapped in t.co links, &, < and > escaped) and as it was
    sent, made comparable: URLs become one placeholder and runs of white space one space."""
    text = _normalized(html.unescape(text))
    pieces, last = [], 0
    for start, end in url_spans(text):
        pieces += [text[last:start], "\x00"]
        last = end
    pieces.append(text[last:])
    return " ".join("".join(pieces).split())


# ------------------------------------------------------------------------------------ client
class TwitterClient(PlatformClient):
    name = "twitter"
    display_name = "X"
    hosts = ("x.com", "api.x.com")

    authorize_url = "https://x.com/i/oauth2/authorize"
    token_url = f"{API}/oauth2/token"
    revoke_url = f"{API}/oauth2/revoke"
    # offline.access brings a refresh token; media.write is needed by the v2 media endpoints
    scopes = ("tweet.read", "tweet.write", "users.read", "media.write", "offline.access")
    uses_pkce = True  # X requires PKCE of every client, confidential ones too
    token_auth = "basic"  # a confidential ("Web App") client authenticates with HTTP Basic
    credential_vars = CredentialVars("TWITTER_CLIENT_ID", "TWITTER_CLIENT_SECRET")
    # Pay-per-use has no tier caps; X still limits posts per user (100 per 15 minutes). The bridge
    # paces each account at 100 a rolling day unless AURAREELS_QUOTA_TWITTER says otherwise.
    daily_limit = 100
    options = {"image_urls": opt.urls(1, 4)}
    first_stage = "init"

    # processing polls the upload status; posted only reports
    reading_stages = frozenset({"processing", "posted"})
    live_stages = frozenset({"posted"})  # the post exists (processing is the media, before the post)
    requirements = Requirements(
        caption_max=MAX_WEIGHTED_LENGTH,
        caption_counter=weighted_length,
        caption_unit="weighted characters",
        caption_counting="weighted",
        media_types=("video", "image", "text"),
        video_content_types=("video/mp4", "video/quicktime"),
        max_video_bytes=512 * MIB,
        min_duration_sec=0.5,
        max_duration_sec=140,
    )

    # the first comment is a reply to the post, counted as a post is
    first_comment = FirstComment(MAX_WEIGHTED_LENGTH, weighted_length, "weighted", "reply")

    # Deployment choices, each overridable by a constructor keyword.
    video_category: str = "tweet_video"  # amplify_video for accounts entitled to long videos
    max_video_seconds: float = 140.0
    chunk_bytes: int = 4 * MIB  # X takes segments of at most 5 MiB
    # posts read to settle a lost post: each read is billed, and the search starts at the attempt
    reconcile_reads: ClassVar[int] = 10

    max_images: ClassVar[int] = 4
    media_max_bytes: ClassVar[dict[str, int]] = {
        "tweet_image": 5 * MIB, "tweet_gif": 15 * MIB, "tweet_video": 512 * MIB, "amplify_video": 512 * MIB,
    }
    image_types: ClassVar[tuple[str, ...]] = ("image/jpeg", "image/png", "image/webp", "image/gif")
    # tolerated difference between our clock and X's when matching a post's creation time
    clock_skew: ClassVar[timedelta] = timedelta(minutes=5)

    def __init__(self, settings: Settings, http: PlatformHttp | None = None, *,
                 video_category: str | None = None, max_video_seconds: float | None = None,
                 chunk_bytes: int | None = None):
        super().__init__(settings, http)
        self.video_category = video_category or self.video_category
        self.max_video_seconds = max_video_seconds or self.max_video_seconds
        self.chunk_bytes = min(chunk_bytes or self.chunk_bytes, 5 * MIB)

    # ------------------------------------------------------------------------------ OAuth
    def check_token_response(self, response: httpx.Response, body: dict[str, Any]) -> None:
        # X reports a spent, expired or revoked code or refresh token as invalid_request
        # ("Value passed for the token was invalid."), where RFC 6749 says invalid_grant.
        description = str(body.get("error_description") or "")
        if body.get("error") == "invalid_request" and re.match(r"Value passed for the .* was invalid", description):
            raise Reauthorize("X no longer accepts this login; connect the account again.", platform=self.name,
                              code="oauth_invalid_grant", platform_code="invalid_request",
                              http_status=response.status_code)
        super().check_token_response(response, body)

    def revoke(self, account: AccountRef) -> bool:
        # X wants the confidential client's Basic auth here too, and one call per token.
        self.require_credentials()
        revoked = True
        for token, hint in ((account.refresh_token, "refresh_token"), (account.access_token, "access_token")):
            if token:
                response = self.http.request("POST", self.revoke_url, data={"token": token, "token_type_hint": hint},
                                             auth=httpx.BasicAuth(self.client_id, self.client_secret),
                                             idempotent=True)
                revoked = revoked and response.status_code < 400
        return revoked

    def fetch_accounts(self, tokens: TokenSet) -> list[AccountProfile]:
        response = self.http.request("GET", f"{API}/users/me", headers=_bearer(tokens.access_token),
                                     params={"user.fields": "profile_image_url,verified_type,subscription_type"})
        self.raise_for(response)
        user = self._json(response).get("data") or {}
        if not user.get("id"):
            raise Transient("X answered without the account's profile; try connecting again.", platform=self.name,
                            code="bad_response")
        return [AccountProfile(
            account_id=str(user["id"]),
            account_name=user.get("name") or user.get("username") or str(user["id"]),
            username=user.get("username"),
            picture_url=user.get("profile_image_url"),
            tokens=tokens,
            metadata={k: user[k] for k in ("verified_type", "subscription_type") if k in user},
        )]

    # ------------------------------------------------------------------------- requirements
    def check_content(self, content: PostContent, media: MediaInfo | None = None) -> list[Issue]:
        requirements = self.requirements
        if self.max_video_seconds != requirements.max_duration_sec:
            requirements = replace(requirements, max_duration_sec=self.max_video_seconds)
        caption = self.compose_caption(content)
        issues = requirements.check(self.display_name, content, caption, media)
        if has_invalid_characters(caption):
            issues.append(Issue("caption", "caption_invalid_characters",
                                "The caption holds invisible characters X refuses (U+FEFF, U+FFFE or U+FFFF); "
                                "remove them."))
        if content.media_type == "text" and not caption:
            issues.append(Issue("caption", "caption_required", "A text post on X needs some text."))
        if content.media_type == "image" and len(_media_urls(content)) > self.max_images:
            issues.append(Issue("media", "too_many_images", f"X takes at most {self.max_images} images per post."))
        return issues

    # --------------------------------------------------------------------------- publishing
    def run_step(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        """One step: init, one segment, finalize, one status poll, or the post itself."""
        stage = cp.get("stage")
        try:
            return super().run_step(job, cp)
        except Rejected as error:
            if error.code == "media_expired" and stage in ("append", "finalize", "processing"):
                # X forgot the upload (media ids expire); an unfinished upload never publishes
                # by itself, so starting this item again is safe.
                return StepResult(_next_item(cp, restart=True))
            raise

    def step_init(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        if "media" not in cp:
            cp.update(media=_media_urls(job.content), media_ids=[], media_keys=[])
            if job.content.media_type != "text" and not cp["media"]:
                raise Rejected("The post has no media to upload; attach a video or an image.", platform=self.name,
                               code="media_missing")
        index = len(cp["media_ids"])
        if index >= len(cp["media"]):
            return StepResult(_ready_to_post(cp, self.clock_skew))
        source = MediaSource(self.settings, cp["media"][index])
        info = source.probe()
        media_type = _content_type(info, cp["media"][index], job.content)
        category = self._category(media_type)
        self._check_media(info, media_type, category)
        fields = {"media_type": media_type, "total_bytes": info.size, "media_category": category}
        response = self.http.request("POST", f"{API}/media/upload/initialize", headers=self._auth(job), json=fields,
                                     idempotent=False)
        self.raise_for(response, sent_effect=True)
        data = self._json(response).get("data") or {}
        media_id = str(data.get("id") or data.get("media_id_string") or "")
        if not media_id:
            raise Transient("X started the upload without an id; it will be started again.", platform=self.name,
                            code="bad_response")
        cp.update(stage="append", media_id=media_id, media_key=data.get("media_key"), media_type=media_type,
                  category=category, total=info.size, offset=0, segment=0)
        return StepResult(cp)

    def step_append(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        offset, total, segment = cp["offset"], cp["total"], cp["segment"]
        end = min(offset + self.chunk_bytes, total)
        source = MediaSource(self.settings, cp["media"][len(cp["media_ids"])])
        fields = {"segment_index": str(segment)}
        url = f"{API}/media/upload/{cp['media_id']}/append"
        body, headers = multipart(fields, _exactly(source.iter_range(offset, end - 1), end - offset), end - offset)
        # A segment index sent again replaces the earlier copy, so APPEND is safe to repeat: a
        # failed or unanswered segment is simply sent again from this checkpoint.
        response = self.http.request("POST", url, content=body, headers={**self._auth(job), **headers},
                                     idempotent=True)
        self.raise_for(response)
        cp.update(offset=end, segment=segment + 1)
        job.progress(end, total)
        if end >= total:
            cp["stage"] = "finalize"
        return StepResult(cp)

    def step_finalize(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        response = self.http.request("POST", f"{API}/media/upload/{cp['media_id']}/finalize", headers=self._auth(job),
                                     idempotent=False)
        self.raise_for(response, sent_effect=True)
        return self._processed(response, cp)

    def step_processing(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        response = self._status(job, cp["media_id"])
        self.raise_for(response)
        return self._processed(response, cp)

    def _status(self, job: PublishJob, media_id: str) -> httpx.Response:
        # STATUS is the one media call that keeps the command= form
        return self.http.request("GET", f"{API}/media/upload", params={"command": "STATUS", "media_id": media_id},
                                 headers=self._auth(job))

    def _processed(self, response: httpx.Response, cp: dict[str, Any]) -> StepResult:
        """The next checkpoint from a FINALIZE or STATUS answer."""
        body = self._json(response, strict=False)
        info = (body.get("data") or {}).get("processing_info") if isinstance(body, dict) else None
        state = (info or {}).get("state", "succeeded")  # no processing_info: usable at once
        if state == "failed":
            raise self.map_error(response, body)
        if state == "succeeded":
            return StepResult(_next_item(cp, done_id=cp["media_id"], done_key=cp.get("media_key"),
                                         skew=self.clock_skew))
        cp["stage"] = "processing"
        return StepResult(cp, wait=float(max(1, int(info.get("check_after_secs") or 5))))

    def step_post(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        payload: dict[str, Any] = {}
        if job.caption:
            payload["text"] = job.caption
        if cp.get("media_ids"):
            payload["media"] = {"media_ids": list(cp["media_ids"])}
        if not payload:
            raise Rejected("The post is empty; add text or media.", platform=self.name, code="post_empty")
        response = self.http.request("POST", f"{API}/tweets", json=payload, headers=self._auth(job),
                                     idempotent=False)
        if response.status_code >= 400:
            error = self.map_error(response, self._json(response, strict=False))
            if error.code == "duplicate_content" and cp.get("reconciled"):
                # After an unknown outcome the first attempt may have landed after all (and only
                # now shows in the timeline): X then calls this retry a duplicate.
                found = self._find_post(job, cp)
                if found:
                    return self._completed(job, {"stage": "posted", "tweet_id": found})
            if error.code == "media_invalid" and cp.get("media_ids") and not cp.get("reuploaded"):
                # Media ids expire (24 h) if a post waited long, e.g. for the daily cap: upload again once.
                return StepResult({"stage": "init", "reuploaded": True})
            self.raise_for(response, sent_effect=True)
        data = self._json(response).get("data") or {}
        if not data.get("id"):
            raise UnknownOutcome("X accepted the post without returning its id; checking whether it went out.",
                                 platform=self.name, code="unknown_outcome")
        return self._completed(job, {"stage": "posted", "tweet_id": str(data["id"])})

    def step_posted(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        return self._completed(job, cp)

    def _completed(self, job: PublishJob, cp: dict[str, Any]) -> StepResult:
        tweet_id = cp["tweet_id"]
        path = f"{job.account.username}/status/{tweet_id}" if job.account.username else f"i/web/status/{tweet_id}"
        return StepResult({"stage": "posted", "tweet_id": tweet_id}, done=True, platform_post_id=tweet_id,
                          platform_post_url=f"https://x.com/{path}")

    # ---------------------------------------------------------------------------- first comment
    def post_comment(self, account: AccountRef, target: CommentTarget, message: str) -> str:
        """A reply to the post (`reply.in_reply_to_tweet_id`). X refuses the same text twice in a
        day as a duplicate: when that is because this reply is already there, it is the answer."""
        response = self.http.request("POST", f"{API}/tweets", headers=_bearer(account.access_token), idempotent=False,
                                     json={"text": message, "reply": {"in_reply_to_tweet_id": target.platform_post_id}})
        if response.status_code >= 400:
            error = self.map_error(response, self._json(response, strict=False))
            if error.code == "duplicate_content":
                found = self.find_comment(account, target, message, datetime.now(timezone.utc) - timedelta(days=1))
                if found:
                    return found
            self.raise_for(response, sent_effect=True)
        data = self._json(response).get("data") or {}
        if not data.get("id"):
            raise UnknownOutcome("X accepted the reply without returning its id.", platform=self.name,
                                 code="unknown_outcome")
        return str(data["id"])

    def find_comment(self, account: AccountRef, target: CommentTarget, message: str, since: datetime) -> str | None:
        """The account's reply to the post among its posts since `since` (reads are billed: at most
        `reconcile_reads`)."""
        start = (since.replace(tzinfo=timezone.utc) if since.tzinfo is None else since) - self.clock_skew
        response = self.http.request("GET", f"{API}/users/{account.account_id}/tweets",
                                     headers=_bearer(account.access_token),
                                     params={"max_results": self.reconcile_reads, "start_time": _iso(start),
                                             "tweet.fields": "created_at,referenced_tweets"})
        self.raise_for(response)
        wanted = _comparable(message)
        for tweet in self._json(response).get("data") or []:
            replied = {str(r.get("id")) for r in tweet.get("referenced_tweets") or []
                       if isinstance(r, dict) and r.get("type") == "replied_to"}
            if target.platform_post_id in replied and _comparable(tweet.get("text", "")) == wanted:
                return str(tweet["id"])
        return None

    # ---------------------------------------------------------------------------- reconcile
    def reconcile(self, job: PublishJob) -> StepResult:
        """Settle an unknown outcome. The post: look for it among the user's own posts since the
        attempt began (same media, or same text); found -> done, not found -> post again.
        FINALIZE: STATUS knows a finalized upload. INIT: an upload id that never gets bytes
        expires unused and can never publish, so starting again is safe. APPEND and STATUS are
        repeatable. Errors reading the platform's records propagate (try again later)."""
        cp = dict(job.checkpoint or {})
        stage = cp.get("stage", "init")
        if stage == "post":
            found = self._find_post(job, cp)
            if found:
                return self._completed(job, {"stage": "posted", "tweet_id": found})
            return StepResult({**cp, "reconciled": True})
        if stage == "finalize":
            response = self._status(job, cp["media_id"])
            if response.status_code in (400, 404):
                return StepResult(cp)  # not finalized: finalize again
            self.raise_for(response)
            return self._processed(response, cp)
        return StepResult(cp)

    def _find_post(self, job: PublishJob, cp: dict[str, Any]) -> str | None:
        """The id of the user's post made by this job, if it exists."""
        since = cp.get("not_before") or _iso(datetime.now(timezone.utc) - timedelta(days=1))
        response = self.http.request("GET", f"{API}/users/{job.account.account_id}/tweets", headers=self._auth(job),
                                     params={"max_results": self.reconcile_reads, "start_time": since,
                                             "tweet.fields": "created_at,attachments"})
        self.raise_for(response)
        keys = set(cp.get("media_keys") or [])
        wanted = _comparable(job.caption)
        for tweet in self._json(response).get("data") or []:
            attached = set((tweet.get("attachments") or {}).get("media_keys") or [])
            # media ids belong to this upload alone, so they identify the post; text only without media
            if (keys and attached == keys) or (not keys and not attached and _comparable(tweet.get("text", "")) == wanted):
                return str(tweet["id"])
        return None

    # ------------------------------------------------------------------------ reads
    def fetch_metrics(self, account: AccountRef, platform_post_id: str) -> Metrics:
        response = self.http.request("GET", f"{API}/tweets/{platform_post_id}",
                                     params={"tweet.fields": "public_metrics"}, headers=_bearer(account.access_token))
        self.raise_for(response)
        body = self._json(response)
        if not body.get("data"):
            raise self.map_error(response, body)  # X answers 200 with errors[] for a missing post
        counts = body["data"].get("public_metrics") or {}
        saves = counts.get("bookmark_count")
        return Metrics(views=int(counts.get("impression_count") or 0), likes=int(counts.get("like_count") or 0),
                       comments=int(counts.get("reply_count") or 0),
                       shares=int(counts.get("retweet_count") or 0) + int(counts.get("quote_count") or 0),
                       saves=int(saves) if saves is not None else None)

    def quota(self, account: AccountRef) -> Quota | None:
        """X bills every post read, so the quota is never read from the timeline: the bridge
        counts its own posts (`bridge.services.quota`) against `daily_limit`."""
        return None

    # ------------------------------------------------------------------------------- errors
    def map_error(self, response: httpx.Response, body: Any = None) -> PlatformError:
        """X's problem objects (`type`, `title`, `detail`, `errors[]`), legacy `errors[{code}]`
        and media `processing_info.error` into the taxonomy."""
        body = body if isinstance(body, dict) else {}
        status = response.status_code
        kind = str(body.get("type") or "")
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        kind = kind or next((str(e["type"]) for e in errors if e.get("type")), "")
        messages = [str(e.get("message") or e.get("detail") or "") for e in errors]
        legacy = {e.get("code") for e in errors}
        said = " ".join([str(body.get("detail") or ""), *messages]).lower()
        detail = _short(messages[0] if messages and messages[0] else body.get("detail") or body.get("title") or "")
        failed = ((body.get("data") or {}).get("processing_info") or {}) if isinstance(body.get("data"), dict) else {}
        common = {"platform": self.name, "http_status": status}

        if status == 402 or "credits-depleted" in kind or "credits depleted" in said:
            return Rejected("The site's X API credits are used up, so X refuses to post; the administrator must add "
                            "credits in the X developer console, then the post can be retried.",
                            code="credits_exhausted", platform_code=kind or 402, **common)
        if failed.get("state") == "failed":
            reason = failed.get("error") or {}
            return Rejected(f"X could not process the media ({_short(reason.get('message') or 'no reason given')}); "
                            f"use an H.264/AAC MP4 within X's size and length limits.",
                            code="media_processing_failed", platform_code=reason.get("name"), **common)
        if "duplicate content" in said:
            return Rejected("X refuses this post because the account already posted the same text; change the "
                            "caption and try again.", code="duplicate_content", platform_code="duplicate", **common)
        if "usage-capped" in kind:
            return RateLimited("The site's X API usage cap is reached; the post will go out when it resets (the "
                               "administrator can raise the cap).", code="usage_capped", platform_code="usage-capped",
                               retry_after=_reset_in(response, "x-app-limit-24hour-reset") or 3600, **common)
        if response.headers.get("x-user-limit-24hour-remaining") == "0" or "daily status update limit" in said:
            return RateLimited("X's daily post limit for this account is reached; the post will go out when a slot "
                               "frees.", code="daily_post_limit", platform_code=status,
                               retry_after=_reset_in(response, "x-user-limit-24hour-reset") or 3600, **common)
        if status == 429 or 88 in legacy:
            return RateLimited("X is limiting requests for this account; the post will continue when it allows.",
                               code="rate_limited", platform_code=88 if 88 in legacy else status,
                               retry_after=_reset_in(response, "x-rate-limit-reset") or 60, **common)
        if status == 401:
            return TokenExpired("X no longer accepts the saved login; refreshing it.", platform_code=status, **common)
        if "unsupported-authentication" in kind:
            return Reauthorize("X refused this kind of login for posting; connect the account again.",
                               code="reauthorize", platform_code="unsupported-authentication", **common)
        if "client-forbidden" in kind:
            return Rejected("The site's X app may not use this endpoint (it needs a project and posting access); ask "
                            "the administrator.", code="app_not_permitted", platform_code="client-forbidden", **common)
        if "media" in said and ("expired" in said or "could not find media" in said):
            return Rejected("X forgot the uploaded media before it was used; it will be uploaded again.",
                            code="media_expired", platform_code=status, **common)
        if "media ids are invalid" in said:
            return Rejected("X refused the attached media (not ready, expired or not this account's).",
                            code="media_invalid", platform_code=status, **common)
        if "deleted or not visible" in said:
            return Rejected("X no longer shows the post to reply to; it may have been deleted.",
                            code="reply_target_gone", platform_code=status, **common)
        if "too long" in said:
            return Rejected("The text is longer than X allows (280 weighted characters; links count 23, emoji "
                            "and CJK characters 2). Shorten it.", code="text_too_long", platform_code=status, **common)
        if status == 403:
            return Rejected("X does not let this account post (it may be locked or suspended, or the login lacks "
                            "posting permission); check the account on X or connect it again.",
                            code="not_permitted", platform_code=403, **common)
        if "resource-not-found" in kind or status == 404:
            return Rejected(f"X does not know this item ({detail or 'not found'}); it may have been deleted.",
                            code="not_found", platform_code="resource-not-found", **common)
        if status >= 500 or legacy & {130, 131}:
            return Transient("X had a temporary problem; it will be tried again.", code="platform_unavailable",
                             platform_code=status, **common)
        if status == 400:
            return Rejected(f"X refused the request: {detail or 'invalid request'}", code="invalid_request",
                            platform_code="invalid-request", **common)
        return super().map_error(response, body)

    # ------------------------------------------------------------------------------ helpers
    def _auth(self, job: PublishJob) -> dict[str, str]:
        return _bearer(job.account.access_token)

    def _category(self, media_type: str) -> str:
        if media_type == "image/gif":
            return "tweet_gif"
        return "tweet_image" if media_type.startswith("image/") else self.video_category

    def _check_media(self, info: MediaInfo, media_type: str, category: str) -> None:
        """Refuse media X would refuse, before anything is created there."""
        def refuse(message: str, code: str) -> Rejected:
            return Rejected(message, platform=self.name, code=code)

        if media_type not in self.image_types and media_type not in self.requirements.video_content_types:
            raise refuse(f"X does not take {media_type} media; use MP4 video or JPEG, PNG, WEBP or GIF images.",
                         "media_type_unsupported")
        if not info.size:
            raise refuse("The media's size is unknown (the server sends no length); X needs it to upload.",
                         "media_size_unknown")
        limit = self.media_max_bytes.get(category)
        if limit and info.size > limit:
            raise refuse(f"The file is {info.size / MIB:.0f} MiB; X takes up to {limit / MIB:.0f} MiB for "
                         f"{category.replace('_', ' ')}.", "media_too_large")
        if media_type.startswith("video/") and info.duration_sec is not None:
            if info.duration_sec > self.max_video_seconds:
                raise refuse(f"The video runs {info.duration_sec:.0f} s; X accepts up to "
                             f"{self.max_video_seconds:.0f} s for this account.", "video_too_long")
            if info.duration_sec < 0.5:
                raise refuse("The video is shorter than X's minimum of 0.5 s.", "video_too_short")


# ------------------------------------------------------------------------------ module helpers
def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(text: Any, limit: int = 160) -> str:
    value = str(text).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _reset_in(response: httpx.Response, header: str) -> float | None:
    """Seconds until the epoch time in `header` (X sends no Retry-After)."""
    raw = response.headers.get(header, "")
    if not raw.isdigit():
        return None
    return max(1.0, int(raw) - datetime.now(timezone.utc).timestamp())


def _media_urls(content: PostContent) -> list[str]:
    if content.media_type == "text":
        return []
    if content.media_type == "image":
        urls = content.extra.get("image_urls") or ([content.video_url] if content.video_url else [])
        return [str(u) for u in urls]
    return [content.video_url] if content.video_url else []


def _content_type(info: MediaInfo, url: str, content: PostContent) -> str:
    value = (info.content_type or "").split(";")[0].strip().lower()
    if value and value != "application/octet-stream":
        return value
    guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
    return guessed or ("image/jpeg" if content.media_type == "image" else "video/mp4")


def _next_item(cp: dict[str, Any], *, done_id: str | None = None, done_key: str | None = None,
               restart: bool = False, skew: timedelta = TwitterClient.clock_skew) -> dict[str, Any]:
    """Forget the finished (or forgotten) upload; go on with the next media item or the post."""
    cp = {k: v for k, v in cp.items()
          if k not in ("media_id", "media_key", "media_type", "category", "total", "offset", "segment")}
    if done_id:
        cp["media_ids"] = [*cp.get("media_ids", []), done_id]
        cp["media_keys"] = [*cp.get("media_keys", []), done_key or done_id]
    if restart or len(cp["media_ids"]) < len(cp["media"]):
        cp["stage"] = "init"
        return cp
    return _ready_to_post(cp, skew)


def _ready_to_post(cp: dict[str, Any], skew: timedelta) -> dict[str, Any]:
    # The post's creation time will be after this moment (less the clock difference): reconcile
    # looks for it from here.
    return {**cp, "stage": "post", "not_before": _iso(datetime.now(timezone.utc) - skew)}


def _exactly(pieces: Iterator[bytes], length: int) -> Iterator[bytes]:
    """The pieces, checked to add up to the declared length."""
    sent = 0
    for piece in pieces:
        piece = piece[:length - sent]  # never more than declared: the request would be cut off
        sent += len(piece)
        yield piece
        if sent == length:
            break
    if sent != length:
        raise MediaError("The media file changed or ended early while it was being sent; check that it is complete.",
                         code="media_truncated")


def multipart(fields: dict[str, str], chunk: Iterator[bytes], length: int) -> tuple[Iterator[bytes], dict[str, str]]:
    """A streamed multipart/form-data body (the fields, then `length` bytes of `chunk` as the
    `media` part) and its headers, Content-Length included."""
    boundary = f"aurareels-{secrets.token_hex(12)}"
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                   for name, value in fields.items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="media"; filename="media"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n")
    start, tail = head.encode(), f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield start
        yield from chunk
        yield tail

    return body(), {"Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(len(start) + length + len(tail))}
