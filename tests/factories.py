"""Rows as the WordPress side writes them: videos, accounts, posts."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from sqlalchemy import insert

from bridge.store.db import utcnow

SANDBOX_VIDEO = "https://media.sandbox.aurareels.test/videos/clip.mp4?size=3000000&duration=20"


def later(days: int = 30, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC time `days` ahead, within the 365 days a post may be scheduled ahead."""
    return (utcnow() + timedelta(days=days)).strftime(fmt)


def add_video(rt, user_id: int, job_id: str | None = None, mp4_url: str | None = SANDBOX_VIDEO) -> str:
    job_id = job_id or f"job-{user_id}-{uuid.uuid4().hex[:12]}"
    with rt.engine.begin() as conn:
        conn.execute(insert(rt.tables.videos).values(job_id=job_id, wp_user_id=user_id, mp4_url=mp4_url,
                                                     thumbnail_url="https://media.sandbox.aurareels.test/images/t.jpg"))
    return job_id


def add_account(rt, user_id: int, platform: str = "tiktok", *, account_id: str | None = None, active: int = 1,
                access_token: str = "act.sandbox-access", refresh_token: str | None = "rft.sandbox-refresh",
                expires_in: timedelta = timedelta(days=30), **extra) -> int:
    values = dict(
        wp_user_id=user_id, platform=platform, account_id=account_id or f"{platform}-{user_id}",
        account_name=f"{platform} of {user_id}", account_username=f"@{platform}{user_id}",
        access_token=rt.vault.encrypt(access_token),
        refresh_token=rt.vault.encrypt(refresh_token) if refresh_token else None,
        token_expires_at=utcnow() + expires_in, is_active=active,
    )
    values.update(extra)
    with rt.engine.begin() as conn:
        return int(conn.execute(insert(rt.tables.accounts).values(**values)).inserted_primary_key[0])


def add_post(rt, user_id: int, account_id: int, *, platform: str = "tiktok", status: str = "scheduled",
             scheduled_at: datetime | None = None, **extra) -> int:
    now = utcnow()
    values = dict(
        wp_user_id=user_id, video_job_id="job-x", social_account_id=account_id, platform=platform, status=status,
        scheduled_at=scheduled_at if scheduled_at is not None else (now + timedelta(hours=1)
                                                                    if status == "scheduled" else None),
        video_url=SANDBOX_VIDEO, caption="Hello", hashtags=json.dumps(["#a"]), mentions=json.dumps([]),
        retry_count=0, metadata=json.dumps({}), created_at=now, updated_at=now,
    )
    values.update(extra)
    with rt.engine.begin() as conn:
        return int(conn.execute(insert(rt.tables.posts).values(**values)).inserted_primary_key[0])
