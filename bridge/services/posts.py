"""Posts: publish now, schedule, list, read, reschedule, cancel, retry.

Everything a post needs is checked before a row is written: the video belongs to the user and has
an MP4, every account belongs to the user and is usable, and the content fits each platform (its
caption counted the platform's way, hashtags, mentions, privacy, media type, size and duration).
Then one row per account is written in one transaction and handed to the engine.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bridge import queue
from bridge.domain.status import Status, transition
from bridge.errors import ApiError, Conflict, NotFound, ValidationFailed
from bridge.platforms.base import MediaInfo, PostContent
from bridge.platforms.errors import PlatformError
from bridge.platforms.media import MediaSource
from bridge.platforms.registry import client_class, get_client, option_names, privacy_values
from bridge.runtime import Runtime
from bridge.store.db import utcnow
from bridge.store.posts import waiting
from bridge.timefmt import fmt

log = logging.getLogger(__name__)

# every privacy value some platform accepts (each client declares its own)
PLATFORM_PRIVACY = privacy_values()


# ----------------------------------------------------------------------------- idempotency
def idempotent(rt: Runtime, user_id: int, route: str, key: str | None, body: dict, produce):
    """Run `produce(conn)` once per (user, route, key); a repeat returns the first answer.

    The key's row is inserted in the same transaction as the posts, so a crash leaves neither;
    a concurrent duplicate waits on the unique key and then reads the stored answer.
    """
    if not key:
        with rt.engine.begin() as conn:
            return produce(conn)
    if len(key) > 128:
        raise ValidationFailed("The Idempotency-Key header is longer than 128 characters.",
                               code="invalid_idempotency_key")
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    t = rt.tables.requests
    try:
        with rt.engine.begin() as conn:
            conn.execute(insert(t).values(wp_user_id=user_id, route=route, idem_key=key, request_hash=digest))
            answer = produce(conn)
            conn.execute(update(t).where(t.c.wp_user_id == user_id, t.c.route == route, t.c.idem_key == key)
                         .values(status_code=200, response=json.dumps(answer)))
            return answer
    except IntegrityError:
        with rt.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.wp_user_id == user_id, t.c.route == route,
                                               t.c.idem_key == key)).mappings().first()
        if row is None or row["response"] is None:
            raise Conflict("The same request is still being processed.", code="request_in_progress") from None
        if row["request_hash"] != digest:
            raise ApiError("This Idempotency-Key was already used for a different request.", status=422,
                           code="idempotency_key_reused") from None
        return json.loads(row["response"])


# ------------------------------------------------------------------------------- creation
def _video(rt: Runtime, user_id: int, job_id: str):
    v = rt.tables.videos
    with rt.engine.connect() as conn:
        row = conn.execute(select(v).where(v.c.job_id == job_id)).mappings().first()
    if row is None or int(row["wp_user_id"]) != user_id:
        raise NotFound("This video was not found.", code="video_not_found")
    if not row["mp4_url"]:
        raise ApiError("This video has no MP4 yet; wait until processing finishes.", status=422,
                       code="video_not_ready")
    return row


def _accounts(rt: Runtime, user_id: int, ids: list[int]) -> list:
    a = rt.tables.accounts
    with rt.engine.connect() as conn:
        rows = {int(r["id"]): r for r in conn.execute(
            select(a).where(a.c.id.in_(ids), a.c.wp_user_id == user_id, a.c.is_active == 1)).mappings()}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound(f"Account {missing[0]} was not found.", code="account_not_found")
    stale = [rows[i] for i in ids if rows[i]["needs_reconnect"]]
    if stale:
        raise Conflict(f"The {stale[0]['platform']} account {stale[0]['account_name']} must be connected again "
                       f"before it can publish.", code="account_needs_reconnect")
    return [rows[i] for i in ids]


def _content(body: dict, video) -> PostContent:
    return PostContent(
        caption=body.get("caption") or "",
        hashtags=list(body.get("hashtags") or []),
        mentions=list(body.get("mentions") or []),
        title=body.get("title"),
        # no default here: each platform has its own (TikTok none: the creator must choose)
        privacy_level=body.get("privacy_level") or None,
        allow_comments=body.get("allow_comments", True),
        allow_duet=body.get("allow_duet", True),
        allow_stitch=body.get("allow_stitch", True),
        video_url=video["mp4_url"],
        thumbnail_url=body.get("thumbnail_url") or video["thumbnail_url"],
        media_type=body.get("media_type") or "video",
        extra=dict(body.get("options") or {}),
    )


def _probe(rt: Runtime, url: str) -> MediaInfo:
    try:
        return MediaSource(rt.settings, url).probe()
    except PlatformError as exc:
        raise ApiError(exc.message, status=422, code=exc.code if exc.code.startswith("media") else "video_unreachable",
                       errors={"video": [exc.message]}) from None


def privacy_for(platform: str, content: PostContent) -> str | None:
    """The privacy a post to `platform` is stored with: the creator's choice, else the platform's
    default (none for TikTok, whose validation then refuses the post)."""
    return content.privacy_level or client_class(platform).default_privacy


def unknown_option_issues(content: PostContent, platforms: list[str]) -> dict[str, list[str]]:
    """Options that none of the selected platforms accepts are refused (a typo must not be
    silently dropped, nor anything stored that no platform reads)."""
    known = option_names()
    errors: dict[str, list[str]] = {}
    for name in content.extra:
        takers = known.get(name, ())
        if any(platform in takers for platform in platforms):
            continue
        where = f"it applies to {', '.join(takers)} only" if takers else "no platform has it"
        errors[f"options.{name}"] = [f"Unknown option {name[:64]!r} for the selected accounts: {where}."]
    return errors


def validate_for_accounts(rt: Runtime, content: PostContent, accounts: list) -> None:
    """Every rule each account's platform would apply, before anything is stored: its content
    rules and its options (422 naming each field, e.g. `tiktok.options.photo_cover_index`)."""
    platforms = list(dict.fromkeys(account["platform"] for account in accounts))
    errors = unknown_option_issues(content, platforms)
    first = ("unknown_option", next(iter(errors.values()))[0]) if errors else None
    media = _probe(rt, content.video_url) if content.media_type == "video" and content.video_url else None
    for platform in platforms:
        client = get_client(rt.settings, platform)
        own = replace(content, privacy_level=privacy_for(platform, content))
        for issue in client.validate(own, media):
            key = f"{platform}.{issue.field}"
            errors.setdefault(key, []).append(issue.message)
            first = first or (issue.code, issue.message)
    if first:
        code, message = first
        raise ValidationFailed(message, code=code, errors=errors)


# The furthest ahead a post may be scheduled: a wake-up parked for years is a job nobody needs.
MAX_SCHEDULE_AHEAD = timedelta(days=365)


def check_scheduled_at(when: datetime, field: str = "scheduled_at") -> None:
    """Refuse (422) a scheduled time (naive UTC) in the past or more than 365 days ahead."""
    if when <= utcnow():
        raise ValidationFailed("The scheduled time is in the past; choose a time in the future.",
                               code="scheduled_in_past", errors={field: ["must be in the future"]})
    if when > utcnow() + MAX_SCHEDULE_AHEAD:
        raise ValidationFailed("The scheduled time is more than 365 days ahead; choose a time within a year.",
                               code="scheduled_too_far", errors={field: ["must be within 365 days"]})


def create_posts(rt: Runtime, user_id: int, body: dict, *, scheduled_at: datetime | None,
                 idem_key: str | None = None) -> dict:
    """Validate, store one row per account, hand over to the engine. `scheduled_at` is naive UTC
    (None: publish now)."""
    if scheduled_at is not None:
        check_scheduled_at(scheduled_at)
    account_ids = list(dict.fromkeys(int(i) for i in body["accounts"]))
    video = _video(rt, user_id, body["video_job_id"])
    accounts = _accounts(rt, user_id, account_ids)
    content = _content(body, video)
    validate_for_accounts(rt, content, accounts)
    status = Status.SCHEDULED if scheduled_at else Status.PUBLISHING
    route = "schedule" if scheduled_at else "publish"

    def produce(conn) -> dict:
        p = rt.tables.posts
        now = utcnow()
        created = []
        for account in accounts:
            post_id = conn.execute(insert(p).values(
                wp_user_id=user_id, video_job_id=video["job_id"], social_account_id=account["id"],
                platform=account["platform"], status=status.value, scheduled_at=scheduled_at,
                video_url=video["mp4_url"], thumbnail_url=content.thumbnail_url, caption=content.caption,
                hashtags=json.dumps(content.hashtags), mentions=json.dumps(content.mentions),
                location=body.get("location"), privacy_level=privacy_for(account["platform"], content),
                allow_comments=int(bool(content.allow_comments)), allow_duet=int(bool(content.allow_duet)),
                allow_stitch=int(bool(content.allow_stitch)), retry_count=0,
                metadata=json.dumps({"title": content.title, "media_type": content.media_type,
                                     "options": content.extra}),
                next_attempt_at=scheduled_at or now, created_at=now, updated_at=now,
            )).inserted_primary_key[0]
            item = {"id": int(post_id), "platform": account["platform"], "status": status.value,
                    "account_name": account["account_name"]}
            if scheduled_at:
                item["scheduled_at"] = fmt(scheduled_at)
            created.append(item)
        message = "Posts scheduled successfully" if scheduled_at else "Publishing initiated"
        return {"success": True, "message": message, "posts": created}

    answer = idempotent(rt, user_id, route, idem_key, {**body, "scheduled_at": fmt(scheduled_at)}, produce)
    for item in answer["posts"]:
        queue.hand_over(rt, item["id"], scheduled_at, user_id)
    return answer


# -------------------------------------------------------------------------------- reading
def _post_row(rt: Runtime, user_id: int, post_id: int):
    p, a = rt.tables.posts, rt.tables.accounts
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(p, a.c.account_name, a.c.account_username, a.c.token_expires_at, a.c.needs_reconnect)
            .join(a, a.c.id == p.c.social_account_id)
            .where(p.c.id == post_id, p.c.wp_user_id == user_id)
        ).mappings().first()
    if row is None:
        raise NotFound("This post was not found.", code="post_not_found")
    return row


def _json_list(raw) -> list:
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _metadata(raw) -> dict:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def post_view(row, *, full: bool = False) -> dict:
    metadata = _metadata(row["metadata"])
    view = {
        "id": int(row["id"]),
        "platform": row["platform"],
        "status": row["status"],
        "caption": row["caption"],
        "platform_post_url": row["platform_post_url"],
        "scheduled_at": fmt(row["scheduled_at"]),
        "published_at": fmt(row["published_at"]),
        "video_job_id": row["video_job_id"],
        "social_account_id": int(row["social_account_id"]),
        "account_name": row["account_name"],
        "error_message": row["error_message"],
        "error_code": row["error_code"],
        "retry_count": int(row["retry_count"] or 0),
        **waiting(row),
    }
    if full:
        view.update({
            "hashtags": _json_list(row["hashtags"]),
            "mentions": _json_list(row["mentions"]),
            "platform_post_id": row["platform_post_id"],
            "video_url": row["video_url"],
            "thumbnail_url": row["thumbnail_url"],
            "privacy_level": row["privacy_level"],
            "last_retry_at": fmt(row["last_retry_at"]),
            "created_at": fmt(row["created_at"]),
            "progress": metadata.get("progress"),
            "outcome_unconfirmed": row["error_code"] == "unconfirmed",
            "account": {
                "id": int(row["social_account_id"]),
                "account_name": row["account_name"],
                "account_username": row["account_username"],
                "token_expires_at": fmt(row["token_expires_at"]),
                "needs_reconnect": bool(row["needs_reconnect"]),
            },
        })
    return view


def get_post(rt: Runtime, user_id: int, post_id: int) -> dict:
    return {"success": True, "post": post_view(_post_row(rt, user_id, post_id), full=True)}


def list_posts(rt: Runtime, user_id: int, query: dict) -> dict:
    p, a = rt.tables.posts, rt.tables.accounts
    conditions = [p.c.wp_user_id == user_id]
    if query.get("status"):
        conditions.append(p.c.status == query["status"])
    if query.get("platform"):
        conditions.append(p.c.platform == query["platform"])
    start, end = query.get("from"), query.get("to")
    if start or end:
        def window(column):
            parts = [column.isnot(None)]
            if start:
                parts.append(column >= start)
            if end:
                parts.append(column <= end)
            return and_(*parts)

        conditions.append(or_(window(p.c.scheduled_at), window(p.c.published_at)))
    page, per_page = query.get("page", 1), query.get("per_page", 20)
    with rt.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(p).where(*conditions)).scalar()
        rows = conn.execute(
            select(p, a.c.account_name).join(a, a.c.id == p.c.social_account_id).where(*conditions)
            .order_by(p.c.created_at.desc(), p.c.id.desc()).limit(per_page).offset((page - 1) * per_page)
        ).mappings().all()
    return {"success": True, "total": int(total), "page": page, "per_page": per_page,
            "posts": [post_view(r) for r in rows]}


# ------------------------------------------------------------------------------- changing
def _wrong_state(row, action: str, allowed: str) -> Conflict:
    return Conflict(f"This post is {row['status']}; only {allowed} posts can be {action}.",
                    code=f"post_{row['status']}")


def reschedule(rt: Runtime, user_id: int, post_id: int, new_time: datetime) -> dict:
    row = _post_row(rt, user_id, post_id)
    if row["status"] != Status.SCHEDULED.value:
        raise _wrong_state(row, "rescheduled", "scheduled")
    check_scheduled_at(new_time)
    with rt.engine.begin() as conn:
        changed = transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.SCHEDULED,
                             scheduled_at=new_time, next_attempt_at=new_time,
                             # a worker holding the old time's wake-up ready lets go of it
                             lease_owner=None, lease_until=None)
    if not changed:
        raise _wrong_state(_post_row(rt, user_id, post_id), "rescheduled", "scheduled")
    queue.hand_over(rt, post_id, new_time, user_id)
    return {"success": True, "message": "Post rescheduled successfully",
            "post": {"id": post_id, "scheduled_at": fmt(new_time)}}


def cancel(rt: Runtime, user_id: int, post_id: int) -> dict:
    row = _post_row(rt, user_id, post_id)
    if row["status"] == Status.DRAFT.value:
        with rt.engine.begin() as conn:
            conn.execute(delete(rt.tables.posts).where(rt.tables.posts.c.id == post_id,
                                                       rt.tables.posts.c.status == "draft"))
        return {"success": True, "message": "Draft deleted successfully"}
    if row["status"] != Status.SCHEDULED.value:
        raise _wrong_state(row, "cancelled", "scheduled or draft")
    with rt.engine.begin() as conn:
        changed = transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.CANCELLED,
                             error_code="cancelled_by_user", next_attempt_at=None)
    if not changed:
        raise _wrong_state(_post_row(rt, user_id, post_id), "cancelled", "scheduled or draft")
    queue.drop(rt, post_id, row["scheduled_at"])
    return {"success": True, "message": "Post cancelled successfully"}


def retry(rt: Runtime, user_id: int, post_id: int) -> dict:
    """Retry a failed post. A post whose outcome was never confirmed is checked against the
    platform first (the engine reconciles before it sends anything again)."""
    row = _post_row(rt, user_id, post_id)
    if row["status"] != Status.FAILED.value:
        raise _wrong_state(row, "retried", "failed")
    if row["needs_reconnect"]:
        raise Conflict("Connect the account again before retrying this post.", code="account_needs_reconnect")
    metadata = _metadata(row["metadata"])
    if row["error_code"] == "unconfirmed":
        metadata["reconcile_first"] = True
    now = utcnow()
    with rt.engine.begin() as conn:
        changed = transition(conn, rt.tables, post_id, Status.FAILED, Status.PUBLISHING,
                             retry_count=int(row["retry_count"] or 0) + 1, last_retry_at=now, error_message=None,
                             error_code=None, next_attempt_at=now, lease_owner=None, lease_until=None,
                             metadata=json.dumps(metadata))
    if not changed:
        raise _wrong_state(_post_row(rt, user_id, post_id), "retried", "failed")
    queue.hand_over(rt, post_id, None, user_id)
    return {"success": True, "message": "Retrying publication",
            "post": {"id": post_id, "status": Status.PUBLISHING.value, "retry_count": int(row["retry_count"] or 0) + 1}}

