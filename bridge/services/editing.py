"""Editing a draft or a scheduled post (`PATCH /posts/{id}`).

A post can be edited while it is `draft` or `scheduled`; any other status is 409 `not_editable`.
The edited post is validated exactly as `/schedule` validates a new one (every platform rule,
options, privacy, the first comment, a time in the future), so a draft's edit must be complete
too.

A scheduled post's wake-up may already be armed: a worker prepares it up to a minute before its
time and holds the row it loaded then. The edit is one conditional UPDATE (the post still in the
status read) that also clears the post's lease. The armed run's claim at the due time is
conditional on its own lease and on the time, so it fails, and the old text can never go out;
the post is then handed over again and prepared anew from the edited row (at the same time, or
the new one). An edit that comes after the claim finds the post publishing: 409 `not_editable`.
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from sqlalchemy import update

from bridge import queue
from bridge.domain.status import Status
from bridge.errors import Conflict
from bridge.runtime import Runtime
from bridge.services import composer, posts
from bridge.store.db import utcnow

EDITABLE = (Status.DRAFT.value, Status.SCHEDULED.value)
LISTS = ("hashtags", "mentions")
FLAGS = ("allow_comments", "allow_duet", "allow_stitch")


def _not_editable(row) -> Conflict:
    return Conflict(f"This post is {row['status']}; only draft and scheduled posts can be edited.",
                    code="not_editable")


def edited(row, body: dict) -> composer.Submission:
    """The stored post with the request's changes: `captions[platform]` wins over `caption`,
    `options` replaces the post's options, a null `first_comment` removes it."""
    sub = composer.from_row(row)
    content = sub.content
    caption = body.get("caption", content.caption)
    caption = (body.get("captions") or {}).get(row["platform"], caption)
    content = replace(content, caption=caption or "")
    for name in LISTS:
        if name in body:
            content = replace(content, **{name: list(body[name] or [])})
    for name in FLAGS:
        if name in body:
            content = replace(content, **{name: bool(body[name])})
    if "title" in body:
        content = replace(content, title=body["title"])
    if "privacy_level" in body:
        content = replace(content, privacy_level=body["privacy_level"] or None)
    if "options" in body:
        content = replace(content, extra=dict(body["options"] or {}))
    first_comment = body["first_comment"] if "first_comment" in body else sub.first_comment
    return composer.Submission(content, {}, first_comment or None)


def edit(rt: Runtime, user_id: int, post_id: int, body: dict, scheduled_at: datetime | None) -> dict:
    """Apply `body` (and a new `scheduled_at`, naive UTC) to a draft or scheduled post."""
    row = posts._post_row(rt, user_id, post_id)
    if row["status"] not in EDITABLE:
        raise _not_editable(row)
    scheduled = row["status"] == Status.SCHEDULED.value
    when = scheduled_at or (row["scheduled_at"] if scheduled else None)
    if scheduled_at is not None or scheduled:
        posts.check_scheduled_at(when)
    account = posts._accounts(rt, user_id, [int(row["social_account_id"])])[0]
    sub = edited(row, body)
    [check] = posts.check_submission(rt, sub, [account])
    content = check.content
    metadata = posts._metadata(row["metadata"])
    metadata.update({"title": content.title, "media_type": content.media_type, "options": content.extra})
    metadata.pop("first_comment", None)
    if check.first_comment:
        metadata["first_comment"] = check.first_comment
    values = dict(caption=content.caption, hashtags=json.dumps(content.hashtags), mentions=json.dumps(content.mentions),
                  privacy_level=content.privacy_level, allow_comments=int(content.allow_comments),
                  allow_duet=int(content.allow_duet), allow_stitch=int(content.allow_stitch),
                  metadata=json.dumps(metadata), updated_at=utcnow())
    if scheduled:
        # a worker holding the old row's wake-up ready lets go of it: its claim needs its lease
        values.update(scheduled_at=when, next_attempt_at=when, lease_owner=None, lease_until=None)
    elif scheduled_at is not None:
        values["scheduled_at"] = scheduled_at  # a draft's planned time; it stays a draft
    p = rt.tables.posts
    with rt.engine.begin() as conn:
        changed = conn.execute(update(p).where(p.c.id == post_id, p.c.status == row["status"])
                               .values(**values)).rowcount == 1
    if not changed:
        raise _not_editable(posts._post_row(rt, user_id, post_id))
    if scheduled and (rt.settings.scheduler == "rq" or when != row["scheduled_at"]):
        # n8n re-reads the post when it calls, so it needs telling only of a new time
        queue.hand_over(rt, post_id, when, user_id, row["platform"])
    return {"success": True, "message": "Post updated", "post": posts.post_view(posts._post_row(rt, user_id, post_id),
                                                                                full=True)}
