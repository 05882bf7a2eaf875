"""What one submission asks of each account, and every rule each platform would apply to it.

A submission is the body of `/publish`, `/schedule`, `/drafts` or `/validate`, or a stored post
after an edit. For each platform it becomes that platform's post: its caption (`captions`
replaces `caption` for the platforms it names), the privacy it is stored with (the creator's
choice, else the platform's default), and the first comment where the platform takes one (TikTok
has none: its posts go out without it).

`check()` applies, per account, what the platform would refuse (caption counted the platform's
way, hashtags, mentions, title, media type, size and duration, privacy, options, the first
comment's length) and, when asked for the composer (`live=True`), what the account allows right
now (TikTok's creator info) and the daily quota the post will meet. Refusals are `issues`;
`warnings` never refuse (a quota only makes a post wait). `refuse()` turns the issues into the
422 that `/publish` and `/schedule` answer.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bridge.errors import ApiError, ValidationFailed
from bridge.platforms.base import Issue, MediaInfo, PostContent
from bridge.platforms.errors import PlatformError
from bridge.platforms.media import MediaSource
from bridge.platforms.registry import client_class, get_client, option_names
from bridge.runtime import Runtime
from bridge.services import accounts as account_service
from bridge.services import quota
from bridge.timefmt import fmt


@dataclass
class Submission:
    """What a creator asked, before each platform's choices."""

    content: PostContent
    captions: dict[str, str] = field(default_factory=dict)
    first_comment: str | None = None

    def for_platform(self, platform: str) -> PostContent:
        """The post as `platform` receives it: its own caption, and its privacy."""
        own = replace(self.content, caption=self.captions.get(platform, self.content.caption))
        return replace(own, privacy_level=privacy_for(platform, own))

    def first_comment_for(self, platform: str) -> str | None:
        """The first comment a post to `platform` carries (None where the platform has none)."""
        if not self.first_comment or client_class(platform).first_comment is None:
            return None
        return self.first_comment


def privacy_for(platform: str, content: PostContent) -> str | None:
    """The privacy a post to `platform` is stored with: the creator's choice, else the platform's
    default (none for TikTok, whose validation then refuses the post)."""
    return content.privacy_level or client_class(platform).default_privacy


def submission(body: dict, video_url: str | None, thumbnail_url: str | None = None) -> Submission:
    """A request body (`/publish`, `/schedule`, `/drafts`, `/validate`) as a submission."""
    content = PostContent(
        caption=body.get("caption") or "",
        hashtags=list(body.get("hashtags") or []),
        mentions=list(body.get("mentions") or []),
        title=body.get("title"),
        # no default here: each platform has its own (TikTok none: the creator must choose)
        privacy_level=body.get("privacy_level") or None,
        allow_comments=body.get("allow_comments", True),
        allow_duet=body.get("allow_duet", True),
        allow_stitch=body.get("allow_stitch", True),
        video_url=video_url,
        thumbnail_url=body.get("thumbnail_url") or thumbnail_url,
        media_type=body.get("media_type") or "video",
        extra=dict(body.get("options") or {}),
    )
    return Submission(content, dict(body.get("captions") or {}), body.get("first_comment") or None)


def from_row(row) -> Submission:
    """A stored post as the submission it came from (its platform's caption is its caption)."""

    def loaded(raw, kind):
        try:
            value = json.loads(raw) if raw else kind()
        except ValueError:
            return kind()
        return value if isinstance(value, kind) else kind()

    metadata = loaded(row["metadata"], dict)
    content = PostContent(
        caption=row["caption"] or "", hashtags=loaded(row["hashtags"], list), mentions=loaded(row["mentions"], list),
        title=metadata.get("title"), privacy_level=row["privacy_level"] or None,
        allow_comments=bool(row["allow_comments"]), allow_duet=bool(row["allow_duet"]),
        allow_stitch=bool(row["allow_stitch"]), video_url=row["video_url"], thumbnail_url=row["thumbnail_url"],
        media_type=metadata.get("media_type") or "video", extra=dict(metadata.get("options") or {}),
    )
    return Submission(content, {}, metadata.get("first_comment") or None)


@dataclass
class AccountCheck:
    """One account's post and what its platform (and, live, the account) says of it."""

    account: Any
    platform: str
    content: PostContent
    first_comment: str | None
    issues: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    caption_length: int = 0
    caption_limit: int = 0
    quota: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.issues

    def view(self) -> dict:
        """The shape `/validate` answers for one account."""
        client = client_class(self.platform)
        return {
            "id": int(self.account["id"]), "platform": self.platform, "ok": self.ok,
            "errors": [_issue(i) for i in self.issues], "warnings": [_issue(i) for i in self.warnings],
            "caption_length": self.caption_length, "caption_limit": self.caption_limit,
            "caption_counting": client.requirements.caption_counting,
            "first_comment": self.first_comment is not None, "privacy_level": self.content.privacy_level,
            "quota": self.quota,
        }


def _issue(issue: Issue) -> dict:
    return {"field": issue.field, "code": issue.code, "message": issue.message}


def request_issues(sub: Submission, platforms: list[str]) -> list[Issue]:
    """What the request asks that no selected platform would take: an option none of them
    accepts (a typo is never dropped silently), or a first comment on platforms that have none."""
    known = option_names()
    issues = []
    for name in sub.content.extra:
        takers = known.get(name, ())
        if any(platform in takers for platform in platforms):
            continue
        where = f"it applies to {', '.join(takers)} only" if takers else "no platform has it"
        issues.append(Issue(f"options.{name}", "unknown_option",
                            f"Unknown option {name[:64]!r} for the selected accounts: {where}."))
    if sub.first_comment and not any(client_class(p).first_comment for p in platforms):
        names = ", ".join(client_class(p).display_name for p in platforms)
        issues.append(Issue("first_comment", "first_comment_unsupported",
                            f"{names} take no first comment through their API; leave it out for these accounts."))
    return issues


def probe(rt: Runtime, content: PostContent) -> MediaInfo | None:
    """Size, type and duration of the video (a read of the creator's file, not of a platform).
    Raises a 422 when it cannot be read."""
    if content.media_type != "video" or not content.video_url:
        return None
    try:
        return MediaSource(rt.settings, content.video_url).probe()
    except PlatformError as exc:
        raise ApiError(exc.message, status=422, code=exc.code if exc.code.startswith("media") else "video_unreachable",
                       errors={"video": [exc.message]}) from None


def check(rt: Runtime, sub: Submission, accounts: list, media: MediaInfo | None, *, live: bool = False,
          scheduled_at: datetime | None = None, media_issue: Issue | None = None) -> list[AccountCheck]:
    """Every rule of each account's platform, for every account at once. With `live`, also what
    each account allows now (one creator-info read per TikTok account, cached a minute) and the
    daily quota the post will meet (`scheduled_at`, or now)."""
    checks = []
    for account in accounts:
        platform = account["platform"]
        client = get_client(rt.settings, platform)
        content = sub.for_platform(platform)
        comment = sub.first_comment_for(platform)
        result = AccountCheck(account, platform, content, comment,
                              caption_length=client.requirements.caption_counter(client.compose_caption(content)),
                              caption_limit=client.caption_limit(content))
        result.issues += client.validate(content, media)
        if media_issue is not None:
            result.issues.append(media_issue)
        if comment is not None:
            result.issues += client.first_comment_issues(comment)
        elif sub.first_comment:
            result.warnings.append(Issue("first_comment", "first_comment_unsupported",
                                         f"{client.display_name} takes no first comment; this post goes out "
                                         f"without it."))
        if live:
            _live_checks(rt, client, account, content, media, scheduled_at, result)
        checks.append(result)
    return checks


def _live_checks(rt: Runtime, client, account, content: PostContent, media: MediaInfo | None,
                 scheduled_at: datetime | None, result: AccountCheck) -> None:
    if account["needs_reconnect"]:
        result.issues.append(Issue("account", "account_needs_reconnect", account_service.reconnect_message(account)))
    elif account_service.asks_the_platform(client):
        try:
            options = account_service.live_options(rt, account)
        except ApiError as exc:
            result.warnings.append(Issue("account", "account_options_unavailable",
                                         f"The account's current options could not be read ({exc.message}); they "
                                         f"are checked again before anything is sent."))
        else:
            result.issues += client.account_option_issues(content, media, options)
    view = (quota.usage_when(rt, int(account["id"]), result.platform, scheduled_at) if scheduled_at
            else quota.usage(rt, int(account["id"]), result.platform))
    result.quota = quota.summary(view)
    if view.used >= view.limit and view.next_slot_at is not None:
        result.warnings.append(Issue("quota", "quota_wait", (
            f"The account's limit of {view.limit} {client.display_name} posts a day is reached then; the post waits "
            f"until {fmt(view.next_slot_at)} UTC.")))


def refuse(problems: list[Issue], checks: list[AccountCheck]) -> None:
    """Raise the 422 `/publish` and `/schedule` answer when anything is refused: `errors` keyed by
    the request field (`options.<name>`, `first_comment`) or `<platform>.<field>`."""
    errors: dict[str, list[str]] = {}
    first: tuple[str, str] | None = None
    for issue in problems:
        errors.setdefault(issue.field, []).append(issue.message)
        first = first or (issue.code, issue.message)
    for result in checks:
        for issue in result.issues:
            messages = errors.setdefault(f"{result.platform}.{issue.field}", [])
            if issue.message not in messages:  # two accounts of one platform say the same
                messages.append(issue.message)
            first = first or (issue.code, issue.message)
    if first:
        code, message = first
        raise ValidationFailed(message, code=code, errors=errors)


def report(problems: list[Issue], checks: list[AccountCheck]) -> dict:
    """The `/validate` answer."""
    return {"success": True, "valid": not problems and all(c.ok for c in checks),
            "errors": [_issue(i) for i in problems], "accounts": [c.view() for c in checks]}
