"""Drafts: saved without going anywhere, then published now or scheduled.

`POST /drafts` takes the body of `/publish` and stores one `draft` post per account under one
group id. Nothing is queued, nothing reaches a platform and nothing counts against a quota (the
quota counts published and publishing posts only). A draft is saved as it is, so it is checked
less than a post that goes out:

* refused (404/422): a video or account that is not the user's, a video without its MP4 yet, the
  body's shape, options no selected platform takes or of the wrong type (the stored options are
  read by the worker as they are), a first comment none of the platforms takes;
* reported, not refused: everything else a platform would refuse (caption length, hashtags,
  privacy, media type, the first comment's length, an account to connect again), as `issues` on
  each post of the answer. The video itself is not probed.

`POST /posts/{id}/publish` and `POST /posts/{id}/schedule` move a draft on with every check of
`/publish` and `/schedule` at that moment (the video's current MP4 included); a post that is not a
draft is 409.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import insert

from bridge import queue
from bridge.domain.status import Status, transition
from bridge.platforms.base import Issue
from bridge.runtime import Runtime
from bridge.services import composer, posts
from bridge.services.accounts import reconnect_message
from bridge.store.db import utcnow
from bridge.timefmt import fmt

# what a draft may not hold even as work in progress
REFUSED = frozenset({"unknown_option", "invalid_option", "first_comment_unsupported"})


def create_drafts(rt: Runtime, user_id: int, body: dict, idem_key: str | None = None) -> dict:
    account_ids = list(dict.fromkeys(int(i) for i in body["accounts"]))
    video = posts._video(rt, user_id, body["video_job_id"])
    accounts = posts._accounts(rt, user_id, account_ids, usable=False)
    sub = composer.submission(body, video["mp4_url"], video["thumbnail_url"])
    platforms = list(dict.fromkeys(account["platform"] for account in accounts))
    problems = composer.request_issues(sub, platforms)
    checks = composer.check(rt, sub, accounts, None)
    for check in checks:
        if check.account["needs_reconnect"]:
            check.issues.append(Issue("account", "account_needs_reconnect", reconnect_message(check.account)))
    composer.refuse([i for i in problems if i.code in REFUSED],
                    [replace(c, issues=[i for i in c.issues if i.code in REFUSED]) for c in checks])

    def produce(conn) -> dict:
        p = rt.tables.posts
        now, group_id = utcnow(), posts.new_group_id()
        created = []
        for account, check in zip(accounts, checks):
            post_id = conn.execute(insert(p).values(**posts.post_values(
                user_id, video, account, check, body, status=Status.DRAFT, scheduled_at=None, group_id=group_id,
                now=now))).inserted_primary_key[0]
            created.append({"id": int(post_id), "platform": account["platform"], "status": Status.DRAFT.value,
                            "account_name": account["account_name"], "group_id": group_id,
                            "issues": [{"field": i.field, "code": i.code, "message": i.message} for i in check.issues]})
        return {"success": True, "message": "Draft saved", "group_id": group_id, "posts": created}

    return posts.idempotent(rt, user_id, "drafts", idem_key, body, produce)


def _ready(rt: Runtime, user_id: int, post_id: int, action: str):
    """The draft with every check of `/publish` passed now: (row, account check, video)."""
    row = posts._post_row(rt, user_id, post_id)
    if row["status"] != Status.DRAFT.value:
        raise posts._wrong_state(row, action, "draft")
    video = posts._video(rt, user_id, row["video_job_id"])
    account = posts._accounts(rt, user_id, [int(row["social_account_id"])])[0]
    sub = composer.from_row(row)
    sub.content = replace(sub.content, video_url=video["mp4_url"])
    [check] = posts.check_submission(rt, sub, [account])
    return row, check, video


def _moved(rt: Runtime, user_id: int, post_id: int, row, check, video, to: Status, when: datetime | None) -> dict:
    with rt.engine.begin() as conn:
        changed = transition(conn, rt.tables, post_id, Status.DRAFT, to, scheduled_at=when,
                             next_attempt_at=when or utcnow(), video_url=video["mp4_url"],
                             caption=check.content.caption, privacy_level=check.content.privacy_level,
                             lease_owner=None, lease_until=None)
    if not changed:
        raise posts._wrong_state(posts._post_row(rt, user_id, post_id), "moved on", "draft")
    queue.hand_over(rt, post_id, when, user_id, row["platform"])
    return posts.post_view(posts._post_row(rt, user_id, post_id), full=True)


def publish(rt: Runtime, user_id: int, post_id: int) -> dict:
    """A draft goes out now."""
    row, check, video = _ready(rt, user_id, post_id, "published from a draft")
    post = _moved(rt, user_id, post_id, row, check, video, Status.PUBLISHING, None)
    return {"success": True, "message": "Publishing initiated", "post": post}


def schedule(rt: Runtime, user_id: int, post_id: int, when: datetime) -> dict:
    """A draft becomes scheduled for `when` (naive UTC)."""
    posts.check_scheduled_at(when)
    row, check, video = _ready(rt, user_id, post_id, "scheduled from a draft")
    post = _moved(rt, user_id, post_id, row, check, video, Status.SCHEDULED, when)
    return {"success": True, "message": f"Post scheduled for {fmt(when)} UTC", "post": post}
