"""The all-in-one `up` as a demo: a video to publish, a login, and the steps to follow.

In sandbox mode `up` gives WordPress user 1 a video job `demo` (the sandbox media host's real
five-second MP4, `bridge.sandbox.demo_video`), prints a login token for that user and a
walk-through a newcomer pastes into a shell: connect, publish, schedule a minute ahead, list.
"""
from __future__ import annotations

import time

import jwt
from sqlalchemy import insert, select, update

from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.platforms.media import SANDBOX_MEDIA_HOST
from bridge.sandbox.demo_video import DEMO_PATH, demo_url

DEMO_JOB_ID = "demo"
DEMO_USER_ID = 1
DEMO_THUMBNAIL = f"https://{SANDBOX_MEDIA_HOST}/images/aurareels-demo.jpg"


def seed_demo_video(rt: Runtime) -> str:
    """Make the video job `demo` of user 1 point at the demo video (created when absent, put
    back when changed). Returns its job id."""
    videos = rt.tables.videos
    values = {"wp_user_id": DEMO_USER_ID, "mp4_url": demo_url(), "thumbnail_url": DEMO_THUMBNAIL}
    with rt.engine.begin() as conn:
        found = conn.execute(select(videos.c.id).where(videos.c.job_id == DEMO_JOB_ID)).first()
        if found is None:
            conn.execute(insert(videos).values(job_id=DEMO_JOB_ID, **values))
        else:
            conn.execute(update(videos).where(videos.c.id == found.id).values(**values))
    return DEMO_JOB_ID


def demo_token(settings: Settings, ttl: int = 86400) -> str:
    """A WordPress JWT of user 1, as the site's JWT plugin would issue it, valid `ttl` seconds."""
    now = int(time.time())
    claims = {"iss": settings.wp_url, "iat": now, "nbf": now, "exp": now + ttl,
              "data": {"user": {"id": str(DEMO_USER_ID)}}}
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


def walkthrough(base_url: str, token: str) -> str:
    """The steps `up` prints, ready to paste into a POSIX shell (they need curl and python3)."""
    api = f"{base_url}/wp-json/aurareels/v1/social"
    auth = '-H "Authorization: Bearer $TOKEN"'
    body = "-H 'Content-Type: application/json'"
    first_id = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"accounts\"][0][\"id\"])'"
    auth_url = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"auth_url\"])'"
    in_a_minute = ("python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) + "
                   "d.timedelta(minutes=1)).strftime(\"%Y-%m-%dT%H:%M:%SZ\"))'")
    return f"""Try it: paste these lines into a shell (sandbox platforms; nothing leaves this machine).

  BRIDGE={api}
  TOKEN={token}

  # 1. Connect a TikTok account: open the address this prints in a browser and press Allow
  curl -s -X POST {auth} $BRIDGE/accounts/connect/tiktok | {auth_url}

  # 2. Publish the demo video (video job "demo") to it now
  ACCOUNT=$(curl -s {auth} $BRIDGE/accounts | {first_id})
  curl -s -X POST {auth} {body} -d '{{"video_job_id": "demo", "accounts": ['$ACCOUNT'], "caption": "Hello from AuraReels #demo", "privacy_level": "PUBLIC"}}' $BRIDGE/publish

  # 3. Schedule it once more, a minute ahead
  AT=$({in_a_minute})
  curl -s -X POST {auth} {body} -d '{{"video_job_id": "demo", "accounts": ['$ACCOUNT'], "caption": "A minute later", "privacy_level": "PUBLIC", "scheduled_at": "'$AT'"}}' $BRIDGE/schedule

  # 4. List the posts: each says "published", with its TikTok URL, once TikTok has processed it (within a minute)
  curl -s {auth} $BRIDGE/posts

  # 5. What TikTok itself published (the sandbox's own record)
  curl -s {base_url}/_sandbox/control/state/tiktok

The demo video plays at {base_url}/_sandbox/{SANDBOX_MEDIA_HOST}{DEMO_PATH}
"""
