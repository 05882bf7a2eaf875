"""The analytics summary of a user: what their posts published in a window gathered, in total, per
platform and per account, and their ten best posts by engagement.

The figures are each post's latest (the seed's analytics row), counted for the posts published in
the window: "what did my posts of March do", the question a creator's dashboard asks. Engagements
are likes + comments + shares + saves; the engagement rate is engagements per 100 views.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from bridge.errors import NotFound, ValidationFailed
from bridge.runtime import Runtime
from bridge.services.analytics import engagements
from bridge.store import analytics as store
from bridge.store.db import utcnow
from bridge.timefmt import fmt

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=366)
TOP_POSTS = 10


def _totals(rows) -> dict:
    def total(name: str) -> int:
        return sum(int(r[name] or 0) for r in rows)

    def reported(name: str) -> int | None:  # None when no post's platform reports it
        values = [int(r[name]) for r in rows if r[name] is not None]
        return sum(values) if values else None

    views = total("views")
    engaged = total("likes") + total("comments") + total("shares") + (reported("saves") or 0)
    return {"posts": total("posts"), "synced_posts": total("synced_posts"), "views": views, "likes": total("likes"),
            "comments": total("comments"), "shares": total("shares"), "saves": reported("saves"),
            "reach": reported("reach"), "engagements": engaged,
            "engagement_rate": round(engaged * 100 / views, 2) if views else None}


def _top_view(row) -> dict:
    views = int(row["views"] or 0)
    engaged = engagements(row["likes"] or 0, row["comments"] or 0, row["shares"] or 0, row["saves"])
    return {"id": int(row["id"]), "platform": row["platform"], "social_account_id": int(row["social_account_id"]),
            "account_name": row["account_name"], "caption": row["caption"],
            "platform_post_url": row["platform_post_url"], "published_at": fmt(row["published_at"]),
            "views": views, "likes": int(row["likes"] or 0), "comments": int(row["comments"] or 0),
            "shares": int(row["shares"] or 0), "saves": None if row["saves"] is None else int(row["saves"]),
            "reach": None if row["reach"] is None else int(row["reach"]), "engagements": engaged,
            "engagement_rate": round(engaged * 100 / views, 2) if views else None,
            "synced_at": fmt(row["last_synced_at"])}


def summary(rt: Runtime, user_id: int, *, start: datetime | None = None, end: datetime | None = None,
            platform: str | None = None, account_id: int | None = None) -> dict:
    """Totals over the user's posts published in [start, end] (naive UTC; default the last 30
    days), optionally of one platform or one of the user's accounts."""
    end = end or utcnow()
    start = start or end - DEFAULT_WINDOW
    if start > end:
        raise ValidationFailed("'from' is after 'to'; give a window that starts before it ends.",
                               code="invalid_window", errors={"from": ["must not be after 'to'"]})
    if end - start > MAX_WINDOW:
        raise ValidationFailed("The window is longer than 366 days; ask for a shorter one.", code="window_too_long",
                               errors={"from": ["at most 366 days before 'to'"]})
    t = rt.tables
    with rt.engine.connect() as conn:
        if account_id is not None and store.owned_account(conn, t, user_id, account_id) is None:
            raise NotFound("This account was not found.", code="account_not_found")
        groups = store.summary_groups(conn, t, user_id, start, end, platform=platform, account_id=account_id)
        top = store.top_posts(conn, t, user_id, start, end, limit=TOP_POSTS, platform=platform,
                              account_id=account_id)
    by_platform: dict[str, list] = {}
    by_account: dict[int, list] = {}
    for group in groups:
        by_platform.setdefault(group["platform"], []).append(group)
        by_account.setdefault(int(group["social_account_id"]), []).append(group)
    accounts = []
    for account, rows in sorted(by_account.items()):
        accounts.append({"id": account, "platform": rows[0]["platform"], "account_name": rows[0]["account_name"],
                         "account_username": rows[0]["account_username"], **_totals(rows)})
    return {"success": True, "from": fmt(start), "to": fmt(end), "platform": platform, "account_id": account_id,
            "totals": _totals(groups), "platforms": {name: _totals(rows) for name, rows in sorted(by_platform.items())},
            "accounts": accounts, "top_posts": [_top_view(r) for r in top]}
