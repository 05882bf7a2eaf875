"""The platform base: OAuth, the publishing step contract, content requirements and options.

A platform is one small subclass of `PlatformClient`: declarative class attributes first (hosts,
URLs, scopes, separators, PKCE, how the client authenticates, its credential variables, daily
limit, privacy values, options and webhook source), then a few hooks for its quirks, then its
publishing steps. The base owns the whole OAuth flow and the step dispatch; a platform never
copies them. A subclass that forgets a required declaration fails when its module is imported,
never later in a worker.

Publishing is a sequence of steps. `publish_step(job)` performs the next step of the job, at most
one platform-side effect, and returns a `StepResult` whose `checkpoint` the caller persists before
it calls again. The checkpoint's `stage` names the step: the base calls the client's
`step_<stage>(job, checkpoint)` (an empty checkpoint starts at `first_stage`); a stage the client
does not have is `Rejected` with code `bad_checkpoint`. A step that has to wait for the platform
(processing) returns `wait` seconds instead of sleeping. After an `UnknownOutcome`, the caller asks
`reconcile(job)` to settle what happened from the platform's own records before anything is sent
again.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, ClassVar, Mapping
from urllib.parse import urlencode

import httpx
from marshmallow import ValidationError, fields

from bridge.config import Settings
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
from bridge.platforms.options import messages as option_messages


# --------------------------------------------------------------------------------------- values
@dataclass
class TokenSet:
    """What a token endpoint answered, normalised. Times are naive UTC."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    scope: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @staticmethod
    def expiry(seconds: Any, now: datetime | None = None) -> datetime | None:
        try:
            value = int(seconds)
        except (TypeError, ValueError, OverflowError):
            return None
        if value <= 0:
            return None
        base = now or datetime.now(timezone.utc).replace(tzinfo=None)
        try:
            return (base + timedelta(seconds=value)).replace(microsecond=0)
        except OverflowError:  # a lifetime past year 9999 is no expiry we can store
            return None


@dataclass
class AccountProfile:
    """One connectable account found after a login. A Meta login can yield several (pages,
    Instagram business accounts), each with its own token."""

    account_id: str
    account_name: str
    tokens: TokenSet = field(repr=False)
    username: str | None = None
    email: str | None = None
    picture_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class AccountRef:
    """What a publishing step knows of the account: ids and decrypted tokens."""

    id: int | None
    account_id: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    username: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class PostContent:
    """What a creator asked for, before it is composed for a platform."""

    caption: str = ""
    hashtags: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    title: str | None = None
    privacy_level: str | None = None
    allow_comments: bool = True
    allow_duet: bool = True
    allow_stitch: bool = True
    video_url: str | None = None
    thumbnail_url: str | None = None
    media_type: str = "video"  # video | image | carousel | text
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class MediaInfo:
    size: int | None = None
    content_type: str | None = None
    duration_sec: float | None = None


@dataclass
class PublishJob:
    """Everything a publishing step needs. `checkpoint` is the persisted progress (a dict that
    round-trips through JSON); `progress(sent, total)` reports upload progress."""

    post_id: int
    account: AccountRef
    content: PostContent
    caption: str
    checkpoint: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[int, int], None] = lambda sent, total: None


@dataclass
class StepResult:
    checkpoint: dict[str, Any]
    done: bool = False
    wait: float | None = None  # seconds until the next step should run (processing)
    platform_post_id: str | None = None
    platform_post_url: str | None = None


@dataclass
class CommentTarget:
    """The live post a first comment goes under: the platform's id and URL of the post and the
    checkpoint it was published with."""

    platform_post_id: str
    platform_post_url: str | None = None
    checkpoint: dict[str, Any] = field(default_factory=dict)


@dataclass
class Metrics:
    """A post's lifetime counts as its platform reports them. `saves` and `reach` are None where
    the platform (or the app's permissions) does not report them, which is not the same as 0."""

    views: int = 0
    likes: int = 0
    comments: int = 0
    shares: int = 0
    saves: int | None = None
    reach: int | None = None


@dataclass
class Quota:
    limit: int | None
    used: int | None
    window_seconds: int = 86400
    source: str = "platform"  # platform | bridge


@dataclass
class Issue:
    field: str
    code: str
    message: str


# ------------------------------------------------------------------------------ declarations
@dataclass(frozen=True)
class CredentialVars:
    """The environment variables that hold a platform's app credentials. `config_id` names the
    Facebook Login for Business configuration variable where the platform has one."""

    client_id: str
    client_secret: str
    config_id: str | None = None


@dataclass(frozen=True)
class EnvSetting:
    """A platform setting read from the environment, checked at start-up against `pattern`
    (a full match); `meaning` says what a valid value looks like."""

    name: str
    pattern: str
    meaning: str


@dataclass(frozen=True)
class ProjectLimit:
    """A limit the platform counts for the whole app (every account together), not per account:
    `limit` publications a day, the day starting at midnight in `zone`."""

    limit: int
    zone: str
    env: str  # the variable that overrides `limit`


@dataclass
class WebhookEvent:
    """What a verified webhook delivery asks of the bridge: wake the posts whose checkpoint holds
    `key: value`, and mark the accounts (platform ids) whose authorization went away."""

    name: str = ""
    wake: list[tuple[str, str]] = field(default_factory=list)
    reconnect: list[tuple[str, str]] = field(default_factory=list)  # (account id, reason)


# -------------------------------------------------------------------------------- requirements
def count_code_points(text: str) -> int:
    return len(text)


def count_utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class FirstComment:
    """How a platform takes a post's first comment: the longest text it accepts, counted its way
    (`counting` as in `Requirements`), and what the platform calls it (`reply` on X)."""

    max_length: int
    counter: Callable[[str], int] = count_code_points
    counting: str = "code_points"
    kind: str = "comment"

    def issues(self, platform: str, text: str) -> list[Issue]:
        length = self.counter(text)
        if not text.strip():
            return [Issue("first_comment", "first_comment_empty",
                          "The first comment is empty; write it or leave it out.")]
        if length > self.max_length:
            return [Issue("first_comment", "first_comment_too_long",
                          f"The first comment is {length} characters; {platform} allows {self.max_length} in a "
                          f"{self.kind}. Shorten it by {length - self.max_length}.")]
        return []


@dataclass(frozen=True)
class Requirements:
    """What a platform accepts, checked before anything is queued. `caption_counting` names how
    `caption_counter` counts, for a composer to count the same way: `code_points`, `utf16_units`,
    `utf8_bytes` or `weighted` (X's twitter-text rules)."""

    caption_max: int
    caption_counter: Callable[[str], int] = count_code_points
    caption_unit: str = "characters"
    caption_counting: str = "code_points"
    hashtags_max: int | None = None
    mentions_max: int | None = None
    title_max: int | None = None
    media_types: tuple[str, ...] = ("video",)
    video_content_types: tuple[str, ...] = ("video/mp4", "video/quicktime")
    max_video_bytes: int | None = None
    min_duration_sec: float | None = None
    max_duration_sec: float | None = None
    privacy_levels: tuple[str, ...] | None = None

    def check(self, platform: str, content: PostContent, caption: str, media: MediaInfo | None = None) -> list[Issue]:
        issues: list[Issue] = []
        length = self.caption_counter(caption)
        if length > self.caption_max:
            issues.append(Issue("caption", "caption_too_long",
                                f"The caption is {length} {self.caption_unit} with hashtags; {platform} allows "
                                f"{self.caption_max}. Shorten it by {length - self.caption_max}."))
        if self.hashtags_max is not None and len(content.hashtags) > self.hashtags_max:
            issues.append(Issue("hashtags", "too_many_hashtags",
                                f"{platform} allows at most {self.hashtags_max} hashtags; remove "
                                f"{len(content.hashtags) - self.hashtags_max}."))
        if self.mentions_max is not None and len(content.mentions) > self.mentions_max:
            issues.append(Issue("mentions", "too_many_mentions",
                                f"{platform} allows at most {self.mentions_max} mentions."))
        if self.title_max is not None and content.title and len(content.title) > self.title_max:
            issues.append(Issue("title", "title_too_long", f"{platform} titles are at most {self.title_max} characters."))
        if content.media_type not in self.media_types:
            issues.append(Issue("media", "media_type_unsupported",
                                f"{platform} does not accept {content.media_type} posts through its API."))
        if self.privacy_levels is not None and content.privacy_level and content.privacy_level not in self.privacy_levels:
            issues.append(Issue("privacy_level", "privacy_level_unsupported",
                                f"{platform} privacy must be one of: {', '.join(self.privacy_levels)}."))
        if media is not None:
            if media.content_type and self.video_content_types and content.media_type == "video" and \
                    media.content_type.split(";")[0].strip().lower() not in self.video_content_types:
                issues.append(Issue("video", "video_format_unsupported",
                                    f"{platform} accepts {', '.join(self.video_content_types)}; this video is "
                                    f"{media.content_type}. Convert it to H.264 MP4."))
            if media.size is not None and self.max_video_bytes is not None and media.size > self.max_video_bytes:
                issues.append(Issue("video", "video_too_large",
                                    f"The video is {media.size / 1e6:.0f} MB; {platform} accepts up to "
                                    f"{self.max_video_bytes / 1e6:.0f} MB."))
            if media.duration_sec is not None:
                if self.max_duration_sec is not None and media.duration_sec > self.max_duration_sec:
                    issues.append(Issue("video", "video_too_long",
                                        f"The video runs {media.duration_sec:.0f} s; {platform} accepts up to "
                                        f"{self.max_duration_sec:.0f} s."))
                if self.min_duration_sec is not None and media.duration_sec < self.min_duration_sec:
                    issues.append(Issue("video", "video_too_short",
                                        f"The video runs {media.duration_sec:.1f} s; {platform} needs at least "
                                        f"{self.min_duration_sec:.0f} s."))
        return issues


# ------------------------------------------------------------------------------------- client
def pkce_pair(method: str = "S256") -> tuple[str, str]:
    """(verifier, challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(64)[:96]
    if method == "plain":
        return verifier, verifier
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


_REQUIRED = ("display_name", "credential_vars", "daily_limit", "requirements", "first_stage", "authorize_url",
             "token_url")


class PlatformClient:
    """Base of every platform client. Subclasses set the class attributes and override hooks."""

    # --- identity
    name: ClassVar[str]
    display_name: ClassVar[str]
    # hosts this platform's calls go to (the emulator serves the same hosts)
    hosts: ClassVar[tuple[str, ...]] = ()
    # the app credentials' environment variables, and other settings the platform reads
    credential_vars: ClassVar[CredentialVars]
    env_settings: ClassVar[tuple[EnvSetting, ...]] = ()

    # --- limits and choices
    # posts per account per rolling 24 h (`AURAREELS_QUOTA_<PLATFORM>` overrides it)
    daily_limit: ClassVar[int]
    # a limit of the whole app on top of the per-account one (YouTube's upload bucket)
    project_limit: ClassVar[ProjectLimit | None] = None
    # the privacy a post gets when the creator chooses none; None: the creator must choose
    default_privacy: ClassVar[str | None] = "PUBLIC"
    # option name -> marshmallow field (see `bridge.platforms.options`); `option_issues` checks them
    options: ClassVar[Mapping[str, fields.Field]] = {}
    # the source under /webhooks/<source> that delivers this platform's events (several platforms
    # of one vendor may share one), or None
    webhook: ClassVar[str | None] = None
    # how the platform takes a post's first comment (`post_comment`), or None: it has none
    first_comment: ClassVar[FirstComment | None] = None

    # --- OAuth, declarative
    authorize_url: ClassVar[str]
    token_url: ClassVar[str]
    revoke_url: ClassVar[str | None] = None
    scopes: ClassVar[tuple[str, ...]] = ()
    scope_separator: ClassVar[str] = " "
    client_id_param: ClassVar[str] = "client_id"
    uses_pkce: ClassVar[bool] = False
    pkce_method: ClassVar[str] = "S256"
    # "body": client id and secret in the form; "basic": HTTP Basic (RFC 6749 2.3.1)
    token_auth: ClassVar[str] = "body"
    token_request_format: ClassVar[str] = "form"  # form | query (Meta's GET exchange)
    token_request_method: ClassVar[str] = "POST"
    extra_authorize_params: ClassVar[Mapping[str, str]] = {}
    # a refresh response may omit refresh_token (Google): keep the stored one
    keeps_refresh_token: ClassVar[bool] = True

    requirements: ClassVar[Requirements]
    # the stage of an empty checkpoint (the first step)
    first_stage: ClassVar[str]
    # checkpoint stages whose step only reads from the platform (see `step_has_effect`)
    reading_stages: ClassVar[frozenset] = frozenset()
    # checkpoint stages in which the post may already be public: the publishing call took effect
    # and the platform is being asked how it went (see `may_be_live`)
    live_stages: ClassVar[frozenset] = frozenset()

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return  # a shared base (Meta's), not a platform
        missing = [attr for attr in _REQUIRED if not hasattr(cls, attr)]
        if missing:
            raise TypeError(f"{cls.__name__} must declare {', '.join(missing)}")
        if not isinstance(cls.daily_limit, int) or cls.daily_limit <= 0:
            raise TypeError(f"{cls.__name__}.daily_limit must be a positive number of posts")
        stages = {s for s in (cls.reading_stages | cls.live_stages | {cls.first_stage}) if s is not None}
        lacking = sorted(s for s in stages if not callable(getattr(cls, f"step_{s}", None)))
        if lacking:
            raise TypeError(f"{cls.__name__} names stages without a step method: {', '.join(lacking)}")

    def __init__(self, settings: Settings, http: PlatformHttp | None = None):
        self.settings = settings
        self.http = http or PlatformHttp(settings, self.name)
        creds = settings.credentials.get(self.name)
        self.client_id = (creds.client_id if creds else None) or (f"sandbox-{self.name}-client" if settings.sandbox else None)
        self.client_secret = (creds.client_secret if creds else None) or (
            f"sandbox-{self.name}-secret" if settings.sandbox else None)
        self.config_id = creds.config_id if creds else None

    # ------------------------------------------------------------------ declarations, read
    @classmethod
    def privacy_values(cls) -> tuple[str, ...]:
        """The privacy values a request may carry for this platform (none: it has no choice)."""
        return tuple(cls.requirements.privacy_levels or ())

    def env(self, name: str) -> str | None:
        """The value of one of this platform's `env_settings` (checked at start-up), or None."""
        return self.settings.platform_env.get(name)

    def account_options(self, account: AccountRef) -> dict[str, Any]:
        """What this account allows now, for a composer to offer only that. Platforms that ask the
        platform (TikTok's creator info) override it; the default is what the platform accepts."""
        return {"privacy_level_options": list(self.privacy_values()), "privacy_level_required":
                self.default_privacy is None and bool(self.privacy_values())}

    def account_option_issues(self, content: PostContent, media: MediaInfo | None,
                              options: Mapping[str, Any]) -> list[Issue]:
        """Why the account, as `account_options` described it now, would refuse the post (a
        privacy level it does not offer, by default). Platforms that learn more override it."""
        offered = options.get("privacy_level_options") or []
        if content.privacy_level and offered and content.privacy_level not in offered:
            return [Issue("privacy_level", "privacy_level_not_offered",
                          f"This {self.display_name} account does not offer {content.privacy_level}; it offers: "
                          f"{', '.join(offered)}.")]
        return []

    def caption_limit(self, content: PostContent) -> int:
        """The longest caption this post may have, counted as `requirements.caption_counter` does."""
        return self.requirements.caption_max

    def health_warnings(self) -> list[str]:
        """Operator warnings about this platform's configuration (e.g. an API version close to its
        sunset); shown by /health, never secret."""
        return []

    # ------------------------------------------------------------------ OAuth (owned by the base)
    @property
    def redirect_uri(self) -> str:
        return self.settings.redirect_uri(self.name)

    def require_credentials(self) -> None:
        if not self.client_id or not self.client_secret:
            raise Rejected(f"{self.display_name} is not configured on this site; ask the administrator to set its "
                           f"app credentials.", platform=self.name, code="platform_not_configured")

    def new_pkce(self) -> tuple[str | None, str | None]:
        """(verifier, challenge) when the platform uses PKCE, else (None, None)."""
        if not self.uses_pkce:
            return None, None
        return pkce_pair(self.pkce_method)

    def authorization_url(self, state: str, code_challenge: str | None = None) -> str:
        self.require_credentials()
        params = {
            self.client_id_param: self.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": self.scope_separator.join(self.scopes),
            "state": state,
            **self.extra_authorize_params,
        }
        if code_challenge:
            params["code_challenge"] = code_challenge
            params["code_challenge_method"] = self.pkce_method
        return self.http.browser_url(f"{self.authorize_url}?{urlencode(self.authorize_params(params))}")

    def authorize_params(self, params: dict[str, str]) -> dict[str, str]:
        """The authorize URL's query (a hook for platforms that ask differently)."""
        return params

    def _token_request(self, data: dict[str, str]) -> dict[str, Any]:
        self.require_credentials()
        headers = {"Accept": "application/json"}
        auth = None
        if self.token_auth == "basic":
            auth = httpx.BasicAuth(self.client_id, self.client_secret)
            if self.client_id_param == "client_id":
                data.setdefault("client_id", self.client_id)
        else:
            data = {self.client_id_param: self.client_id, "client_secret": self.client_secret, **data}
        if self.token_request_format == "query":
            response = self.http.request(self.token_request_method, self.token_url, params=data, headers=headers,
                                         auth=auth, idempotent=True)
        else:
            response = self.http.request(self.token_request_method, self.token_url, data=data, headers=headers,
                                         auth=auth, idempotent=True)
        body = self._json(response)
        self.check_token_response(response, body)
        return body

    def exchange_code(self, code: str, code_verifier: str | None = None) -> TokenSet:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        if code_verifier:
            data["code_verifier"] = code_verifier
        return self.parse_token_response(self._token_request(data))

    def refresh(self, refresh_token: str) -> TokenSet:
        """Refresh; a refused grant raises `Reauthorize`. The caller stores the returned tokens,
        including a rotated refresh token, in one transaction."""
        body = self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})
        tokens = self.parse_token_response(body)
        if not tokens.refresh_token and self.keeps_refresh_token:
            tokens.refresh_token = refresh_token
        return tokens

    def revoke(self, account: AccountRef) -> bool:
        """Revoke where the platform allows; False where it has no revoke. Never raises for a
        token the platform already forgot."""
        if not self.revoke_url:
            return False
        response = self.http.request("POST", self.revoke_url, data=self.revoke_params(account), idempotent=True)
        return response.status_code < 400

    def revoke_params(self, account: AccountRef) -> dict[str, str]:
        return {self.client_id_param: self.client_id or "", "client_secret": self.client_secret or "",
                "token": account.access_token}

    # --- hooks for quirks
    def check_token_response(self, response: httpx.Response, body: dict[str, Any]) -> None:
        """Raise for an OAuth error (RFC 6749 shape by default; some platforms answer 200 + error)."""
        error = body.get("error")
        if isinstance(error, dict):  # Graph-style errors on token endpoints
            raise self.map_error(response, body)
        if error or response.status_code >= 400:
            description = body.get("error_description") or body.get("message") or "the platform refused the login"
            if response.status_code >= 500 or error in ("server_error", "temporarily_unavailable"):
                raise Transient(f"{self.display_name} could not complete the login right now; try again.",
                                platform=self.name, code="oauth_unavailable", platform_code=error,
                                http_status=response.status_code)
            if response.status_code == 429:
                raise RateLimited(f"{self.display_name} is limiting logins; try again shortly.", platform=self.name,
                                  retry_after=retry_after_seconds(response) or 60, http_status=429)
            if error in ("invalid_grant", "invalid_token", "unauthorized_client", "access_denied"):
                raise Reauthorize(f"{self.display_name} refused the login ({_short(description)}); connect the "
                                  f"account again.", platform=self.name, code="oauth_invalid_grant",
                                  platform_code=error, http_status=response.status_code)
            raise Rejected(f"{self.display_name} refused the login: {_short(description)}", platform=self.name,
                           code="oauth_error", platform_code=error, http_status=response.status_code)

    def parse_token_response(self, body: dict[str, Any]) -> TokenSet:
        access = body.get("access_token")
        if not access:
            raise Rejected(f"{self.display_name} answered the login without a token.", platform=self.name,
                           code="oauth_error")
        return TokenSet(
            access_token=access,
            refresh_token=body.get("refresh_token") or None,
            expires_at=TokenSet.expiry(body.get("expires_in")),
            refresh_expires_at=TokenSet.expiry(body.get("refresh_token_expires_in") or body.get("refresh_expires_in")),
            scope=body.get("scope"),
            extra={k: v for k, v in body.items() if k not in ("access_token", "refresh_token")},
        )

    def fetch_accounts(self, tokens: TokenSet) -> list[AccountProfile]:
        """The accounts this login can publish to (one for most platforms)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- publishing
    def compose_caption(self, content: PostContent) -> str:
        """Caption + hashtags + mentions in this platform's conventions. Hashtags and mentions
        already present in the caption are not repeated."""
        caption = (content.caption or "").strip()
        present = {w.lower() for w in caption.replace("\n", " ").split(" ") if w}
        tags = []
        for raw in content.hashtags:
            tag = "#" + raw.strip().lstrip("#").replace(" ", "")
            if len(tag) > 1 and tag.lower() not in present and tag not in tags:
                tags.append(tag)
        mentions = []
        for raw in content.mentions:
            mention = "@" + raw.strip().lstrip("@")
            if len(mention) > 1 and mention.lower() not in present and mention not in mentions:
                mentions.append(mention)
        tail = " ".join(mentions + tags)
        if caption and tail:
            return f"{caption}\n\n{tail}"
        return caption or tail

    def validate(self, content: PostContent, media: MediaInfo | None = None) -> list[Issue]:
        """Every reason this platform would refuse the post: its content rules (`check_content`)
        and its options (`option_issues`)."""
        return self.check_content(content, media) + self.option_issues(content)

    def check_content(self, content: PostContent, media: MediaInfo | None = None) -> list[Issue]:
        """The content rules (caption, hashtags, media); platforms extend it."""
        return self.requirements.check(self.display_name, content, self.compose_caption(content), media)

    def option_issues(self, content: PostContent) -> list[Issue]:
        """One `Issue` (field `options.<name>`) per option this platform declares whose value it
        would not accept. Options it does not declare are not its business (the request decides
        about names no selected platform knows); a null value means "not set"."""
        issues = []
        for name, value in content.extra.items():
            declared = self.options.get(name)
            if declared is None or value is None:
                continue
            try:
                declared.deserialize(value, name, content.extra)
            except ValidationError as exc:
                issues.append(Issue(f"options.{name}", "invalid_option",
                                    f"{self.display_name} option {name}: {option_messages(exc)}"))
        return issues

    # ------------------------------------------------------------------------- steps
    def publish_step(self, job: PublishJob) -> StepResult:
        """Perform the step the checkpoint names (`step_<stage>`), or the first one."""
        checkpoint = dict(job.checkpoint or {})
        if not checkpoint.get("stage"):
            # rows the request did not validate (older rows, other writers) are checked once here
            issues = self.option_issues(job.content)
            if issues:
                raise Rejected(issues[0].message, platform=self.name, code="invalid_option")
            checkpoint["stage"] = self.start_stage(job)
        return self.run_step(job, checkpoint)

    def start_stage(self, job: PublishJob) -> str:
        """The stage of an empty checkpoint (a hook: LinkedIn starts text posts elsewhere)."""
        return self.first_stage

    def run_step(self, job: PublishJob, checkpoint: dict[str, Any]) -> StepResult:
        """Call `step_<stage>` for the checkpoint's stage. Steps that only plan (no platform
        effect) call it again with the planned checkpoint."""
        stage = checkpoint.get("stage")
        step = getattr(self, f"step_{stage}", None) if isinstance(stage, str) and stage.isidentifier() else None
        if not callable(step):
            raise Rejected(f"The saved {self.display_name} progress is not understood (stage {str(stage)[:40]!r}); "
                           f"retry the post.", platform=self.name, code="bad_checkpoint")
        return step(job, checkpoint)

    def step_has_effect(self, job: PublishJob) -> bool:
        """Whether the next `publish_step(job)` may change anything on the platform. The engine
        writes its write-ahead `in_flight` marker only before such steps; a step that only reads
        (a status poll) is simply done again after a crash. Platforms name their reading stages."""
        return (job.checkpoint.get("stage") or None) not in self.reading_stages

    def may_be_live(self, checkpoint: Mapping[str, Any] | None) -> bool:
        """Whether the post may already be public at this checkpoint. A post that cannot go on from
        such a checkpoint ends `unconfirmed` (Retry asks the platform first), never as a plain
        failure: the creator must not be told it failed when it may be live."""
        return ((checkpoint or {}).get("stage") or None) in self.live_stages

    def reconcile(self, job: PublishJob) -> StepResult:
        """Settle an unknown outcome from the platform's records. Return the checkpoint to resume
        from (the effect happened, or it provably did not); raise `UnknownOutcome` if it cannot be
        settled."""
        raise UnknownOutcome(f"{self.display_name} cannot confirm whether the post went out.",
                             platform=self.name, code="unconfirmed")

    def fetch_metrics(self, account: AccountRef, platform_post_id: str) -> Metrics:
        raise NotImplementedError

    def quota(self, account: AccountRef) -> Quota | None:
        """The platform's own quota report, where it has one (Instagram); None elsewhere."""
        return None

    # ------------------------------------------------------------------------- first comment
    def first_comment_issues(self, text: str) -> list[Issue]:
        """Why this platform would refuse `text` as a post's first comment (none: it takes it)."""
        if self.first_comment is None:
            return [Issue("first_comment", "first_comment_unsupported",
                          f"{self.display_name} has no first comment through its API.")]
        return self.first_comment.issues(self.display_name, text)

    def post_comment(self, account: AccountRef, target: CommentTarget, message: str) -> str:
        """Post `message` as the first comment under the live post `target` (one platform-side
        effect) and return the platform's id of the comment. Raises the taxonomy's errors; a
        failure after the request was sent is `UnknownOutcome`."""
        raise Rejected(f"{self.display_name} has no first comment through its API.", platform=self.name,
                       code="first_comment_unsupported")

    def find_comment(self, account: AccountRef, target: CommentTarget, message: str, since: datetime) -> str | None:
        """The id of the comment with `message` the account made under `target` at or after
        `since` (naive UTC), or None when the platform's records show there is none. Raises
        `UnknownOutcome` when the platform cannot be asked (e.g. the app may not read comments)."""
        raise UnknownOutcome(f"{self.display_name} cannot say whether the comment was posted.", platform=self.name,
                             code="unconfirmed")

    # ------------------------------------------------------------------------- webhooks
    def webhook_signed(self, headers: Mapping[str, str], body: bytes, now: float) -> bool:
        """Whether a delivery to `/webhooks/<webhook>` is signed by this platform (hook)."""
        return False

    def read_webhook(self, payload: dict[str, Any]) -> WebhookEvent | None:
        """What a signed delivery asks of the bridge, or None when it is not this platform's."""
        return None

    # ------------------------------------------------------------------------- errors
    def map_error(self, response: httpx.Response, body: Any = None) -> PlatformError:
        """Map an error response into the taxonomy. Platforms override with their own codes and
        fall back to this generic mapping by HTTP status."""
        status = response.status_code
        if status == 401:
            return TokenExpired(f"{self.display_name} no longer accepts the saved login; refreshing it.",
                                platform=self.name, http_status=status)
        if status == 429:
            return RateLimited(f"{self.display_name} is limiting requests; the post will continue when it allows.",
                               platform=self.name, retry_after=retry_after_seconds(response) or 60, http_status=status)
        if status >= 500:
            return Transient(f"{self.display_name} had a temporary problem.", platform=self.name,
                             code="platform_unavailable", http_status=status)
        return Rejected(f"{self.display_name} refused the request (HTTP {status}).", platform=self.name,
                        http_status=status)

    def raise_for(self, response: httpx.Response, *, sent_effect: bool = False) -> None:
        """Raise the mapped error for a failed response. With `sent_effect` (a non-idempotent
        call), a 5xx may have taken effect: it becomes `UnknownOutcome`."""
        if response.status_code < 400:
            return
        error = self.map_error(response, self._json(response, strict=False))
        if sent_effect and isinstance(error, Transient):
            raise UnknownOutcome(f"{self.display_name} failed after the request was sent; checking whether it took "
                                 f"effect.", platform=self.name, code="unknown_outcome",
                                 platform_code=error.platform_code, http_status=error.http_status)
        raise error

    def _json(self, response: httpx.Response, strict: bool = True) -> Any:
        try:
            return response.json()
        except ValueError:
            if not strict or response.status_code >= 400:
                return {}
            raise Transient(f"{self.display_name} answered with something that is not JSON.", platform=self.name,
                            code="bad_response", http_status=response.status_code) from None


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from `Retry-After` (delta or HTTP date), or from `x-rate-limit-reset` (epoch)."""
    raw = response.headers.get("Retry-After")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                when = parsedate_to_datetime(raw)
                return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                return None
    reset = response.headers.get("x-rate-limit-reset")
    if reset and reset.isascii() and reset.isdigit() and len(reset) <= 12:  # int() refuses 4,300 digits and more
        return max(0.0, int(reset) - datetime.now(timezone.utc).timestamp())
    return None


def _short(text: Any, limit: int = 200) -> str:
    value = str(text).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"
