"""Posts: publish now, schedule, list, read, reschedule, cancel, retry.

Everything a post needs is checked before a row is written: the video belongs to the user and has
an MP4, every account belongs to the user and is usable, and the content fits each platform (its
caption, from `captions` where the request names the platform, counted the platform's way,
hashtags, mentions, privacy, media type, size and duration, the first comment; see
`bridge.services.composer`). Then one row per account is written in one transaction, all under one
`group_id`, and handed to the engine.

`retry_count` counts the creator's retries (the seed's rule: a post may be retried while it is
below 3). The engine's own retries of passing errors are not counted in it: they show as a post
waiting (`wait_reason` `retry`, `next_attempt_at`) and end in `failed` with a message when they run out.
"""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bridge import queue
from bridge.domain.status import Status, transition
from bridge.errors import ApiError, Conflict, NotFound, ValidationFailed
from bridge.platforms.base import PostContent
from bridge.platforms.registry import client_class, privacy_values
from bridge.runtime import Runtime
from bridge.services import composer
from bridge.services.accounts import reconnect_message
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


def _accounts(rt: Runtime, user_id: int, ids: list[int], *, usable: bool = True) -> list:
    """The user's active accounts `ids`, in that order (404 for any other). With `usable`, an
    account that must be connected again is a 409 that says so."""
    a = rt.tables.accounts
    with rt.engine.connect() as conn:
        rows = {int(r["id"]): r for r in conn.execute(
            select(a).where(a.c.id.in_(ids), a.c.wp_user_id == user_id, a.c.is_active == 1)).mappings()}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound(f"Account {missing[0]} was not found.", code="account_not_found")
    stale = [rows[i] for i in ids if rows[i]["needs_reconnect"]]
    if stale and usable:
        raise Conflict(reconnect_message(stale[0]), code="account_needs_reconnect")
    return [rows[i] for i in ids]


def validate_for_accounts(rt: Runtime, content: PostContent, accounts: list) -> None:
    """Every rule each account's platform would apply, before anything is stored: its content
    rules and its options (422 naming each field, e.g. `tiktok.options.photo_cover_index`)."""
    sub = composer.Submission(content)
    platforms = list(dict.fromkeys(account["platform"] for account in accounts))
    composer.refuse(composer.request_issues(sub, platforms),
                    composer.check(rt, sub, accounts, composer.probe(rt, content)))


def check_submission(rt: Runtime, sub: composer.Submission, accounts: list) -> list[composer.AccountCheck]:
    """Everything `/publish` and `/schedule` check (422 when anything is refused); returns each
    account's post as it will be stored."""
    platforms = list(dict.fromkeys(account["platform"] for account in accounts))
    problems = composer.request_issues(sub, platforms)
    checks = composer.check(rt, sub, accounts, composer.probe(rt, sub.content))
    composer.refuse(problems, checks)
    return checks


def new_group_id() -> str:
    """The opaque id shared by the posts of one submission."""
    return uuid.uuid4().hex


def post_values(user_id: int, video, account, check: composer.AccountCheck, body: dict, *, status: Status,
                scheduled_at: datetime | None, group_id: str, now: datetime) -> dict:
    """The row of one account's post."""
    content = check.content
    metadata = {"title": content.title, "media_type": content.media_type, "options": content.extra}
    if check.first_comment:
        metadata["first_comment"] = check.first_comment
    return dict(
        wp_user_id=user_id, video_job_id=video["job_id"], social_account_id=account["id"],
        platform=account["platform"], status=status.value, scheduled_at=scheduled_at,
        video_url=video["mp4_url"], thumbnail_url=content.thumbnail_url, caption=content.caption,
        hashtags=json.dumps(content.hashtags), mentions=json.dumps(content.mentions),
        location=body.get("location"), privacy_level=content.privacy_level,
        allow_comments=int(bool(content.allow_comments)), allow_duet=int(bool(content.allow_duet)),
        allow_stitch=int(bool(content.allow_stitch)), retry_count=0, metadata=json.dumps(metadata),
        next_attempt_at=(scheduled_at or now) if status is not Status.DRAFT else None, group_id=group_id,
        created_at=now, updated_at=now,
    )


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
    """Validate, store one row per account under one group id, hand over to the engine.
    `scheduled_at` is naive UTC (None: publish now)."""
    if scheduled_at is not None:
        check_scheduled_at(scheduled_at)
    account_ids = list(dict.fromkeys(int(i) for i in body["accounts"]))
    video = _video(rt, user_id, body["video_job_id"])
    accounts = _accounts(rt, user_id, account_ids)
    sub = composer.submission(body, video["mp4_url"], video["thumbnail_url"])
    checks = check_submission(rt, sub, accounts)
    status = Status.SCHEDULED if scheduled_at else Status.PUBLISHING
    route = "schedule" if scheduled_at else "publish"

    def produce(conn) -> dict:
        p = rt.tables.posts
        now, group_id = utcnow(), new_group_id()
        created = []
        for account, check in zip(accounts, checks):
            post_id = conn.execute(insert(p).values(**post_values(
                user_id, video, account, check, body, status=status, scheduled_at=scheduled_at, group_id=group_id,
                now=now))).inserted_primary_key[0]
            item = {"id": int(post_id), "platform": account["platform"], "status": status.value,
                    "account_name": account["account_name"], "group_id": group_id}
            if scheduled_at:
                item["scheduled_at"] = fmt(scheduled_at)
            created.append(item)
        message = "Posts scheduled successfully" if scheduled_at else "Publishing initiated"
        return {"success": True, "message": message, "group_id": group_id, "posts": created}

    answer = idempotent(rt, user_id, route, idem_key, {**body, "scheduled_at": fmt(scheduled_at)}, produce)
    for item in answer["posts"]:
        queue.hand_over(rt, item["id"], scheduled_at, user_id)
    return answer


# -------------------------------------------------------------------------------- reading
def _comment_columns(rt: Runtime) -> list:
    c = rt.tables.first_comments
    return [c.c.status.label("comment_status"), c.c.platform_comment_id.label("comment_platform_id"),
            c.c.error_message.label("comment_error")]


def _post_row(rt: Runtime, user_id: int, post_id: int):
    p, a, c = rt.tables.posts, rt.tables.accounts, rt.tables.first_comments
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(p, a.c.account_name, a.c.account_username, a.c.token_expires_at, a.c.needs_reconnect,
                   a.c.reconnect_reason, a.c.is_active.label("account_active"), a.c.platform.label("account_platform"),
                   *_comment_columns(rt))
            .join(a, a.c.id == p.c.social_account_id)
            .outerjoin(c, c.c.post_id == p.c.id)
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


def first_comment_view(row, metadata: dict) -> dict | None:
    """Where the post's first comment stands: `waiting` until the post is live (`cancelled` with
    the post), then `pending`, `posted` (with the platform's id), `failed` or `unconfirmed`;
    None when it has none."""
    text = metadata.get("first_comment")
    status = row.get("comment_status")
    if not text and status is None:
        return None
    if status is None:
        # no row yet: the post is not live (a post published without one never had it handed over)
        status = {"cancelled": "cancelled", "published": "not_posted"}.get(row["status"], "waiting")
    return {"status": status, "platform_comment_id": row.get("comment_platform_id"),
            "text": text, "error_message": row.get("comment_error") if status in ("failed", "unconfirmed") else None}


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
        "group_id": row["group_id"],
        "first_comment": first_comment_view(row, metadata),
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
                "reconnect_reason": row["reconnect_reason"] if row["needs_reconnect"] else None,
            },
            "title": metadata.get("title"),
            "media_type": metadata.get("media_type") or "video",
            "options": metadata.get("options") or {},
            "allow_comments": bool(row["allow_comments"]),
            "allow_duet": bool(row["allow_duet"]),
            "allow_stitch": bool(row["allow_stitch"]),
        })
    return view


def get_post(rt: Runtime, user_id: int, post_id: int) -> dict:
    return {"success": True, "post": post_view(_post_row(rt, user_id, post_id), full=True)}


def list_posts(rt: Runtime, user_id: int, query: dict) -> dict:
    p, a, c = rt.tables.posts, rt.tables.accounts, rt.tables.first_comments
    conditions = [p.c.wp_user_id == user_id]
    for name in ("status", "platform", "group_id", "video_job_id"):
        if query.get(name):
            conditions.append(p.c[name] == query[name])
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
            select(p, a.c.account_name, *_comment_columns(rt)).join(a, a.c.id == p.c.social_account_id)
            .outerjoin(c, c.c.post_id == p.c.id).where(*conditions)
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


MAX_RETRIES = 3


def retry(rt: Runtime, user_id: int, post_id: int) -> dict:
    """Retry a failed post, while its `retry_count` (the creator's retries) is below 3. A post
    whose outcome was never confirmed is checked against the platform first (the engine
    reconciles before it sends anything again)."""
    row = _post_row(rt, user_id, post_id)
    if row["status"] != Status.FAILED.value:
        raise _wrong_state(row, "retried", "failed")
    if int(row["retry_count"] or 0) >= MAX_RETRIES:
        raise Conflict(f"This post was already retried {MAX_RETRIES} times; create a new post instead.",
                       code="retry_limit_reached")
    if not row["account_active"]:
        raise Conflict(f"The {client_class(row['account_platform']).display_name} account {row['account_name']} was "
                       f"disconnected; reconnect it, then retry this post.", code="account_disconnected")
    if row["needs_reconnect"]:
        raise Conflict(reconnect_message({**row, "platform": row["account_platform"]}),
                       code="account_needs_reconnect")
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

