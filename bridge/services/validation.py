"""`POST /validate`: every rule `/publish` and `/schedule` would apply, for every account at once,
without creating anything.

Beyond what the create routes check, it asks each account what it allows right now (TikTok's
creator info: the privacy levels offered, the longest video; read at most once a minute per
account) and reports the daily quota the post will meet at its time. A video or account that is
not the user's is 404, as on the create routes; everything else is in the report.
"""
from __future__ import annotations

from datetime import datetime

from bridge.errors import ApiError
from bridge.platforms.base import Issue
from bridge.runtime import Runtime
from bridge.services import composer, posts
from bridge.store.db import utcnow


def validate(rt: Runtime, user_id: int, body: dict, scheduled_at: datetime | None) -> dict:
    account_ids = list(dict.fromkeys(int(i) for i in body["accounts"]))
    media_issue = None
    try:
        video = posts._video(rt, user_id, body["video_job_id"])
        video_url, thumbnail = video["mp4_url"], video["thumbnail_url"]
    except ApiError as exc:
        if exc.status == 404:
            raise
        video_url, thumbnail, media_issue = None, None, Issue("video", exc.code, exc.message)
    accounts = posts._accounts(rt, user_id, account_ids, usable=False)
    sub = composer.submission(body, video_url, thumbnail)
    media = None
    if media_issue is None:
        try:
            media = composer.probe(rt, sub.content)
        except ApiError as exc:
            media_issue = Issue("video", exc.code, exc.message)
    platforms = list(dict.fromkeys(account["platform"] for account in accounts))
    problems = composer.request_issues(sub, platforms)
    if scheduled_at is not None and scheduled_at <= utcnow():
        problems.append(Issue("scheduled_at", "scheduled_in_past",
                              "The scheduled time is in the past; choose a time in the future."))
    checks = composer.check(rt, sub, accounts, media, live=True, scheduled_at=scheduled_at, media_issue=media_issue)
    return composer.report(problems, checks)
