"""The first comment of a live post: posted once, right after the post is published.

When a post with a first comment is published, the engine writes a `pending` row in
`{prefix}aurareels_bridge_first_comments` in the same transaction as the `published` status
(`on_published`), and hands it over (`hand_over`): a job `first-comment-<post id>` posts it. The
post's own status is never touched again: a comment that fails leaves the post published, and
nothing here can send the post twice.

Exactly once, as the engine does for posts: a run claims the row with one conditional UPDATE
(lease), writes its intent (`in_flight`, with the time the send began) before the platform call,
and records the comment's id after it. A run that finds an intent of a run that died asks the
platform first (`find_comment`: the post's comments) and sends again only when the comment is
provably not there; when the platform cannot be asked (LinkedIn apps without r_member_social)
the comment is `unconfirmed` and never sent again. A lost answer is settled the same way by
the next run. Passing errors are retried after 30 s, 2 and 10 minutes, rate limits when the
platform allows; refusals (comments off, a missing permission) fail the comment with the
platform's reason. The sweeper finds rows whose job was lost (`sweep`).

Statuses: `pending` (to post), `posted`, `failed`, `unconfirmed`.
"""
from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update

from bridge import queue
from bridge.platforms.base import CommentTarget
from bridge.platforms.errors import (
    PlatformError,
    RateLimited,
    Reauthorize,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.registry import client_class, get_client
from bridge.runtime import Runtime
from bridge.store.db import utcnow

log = logging.getLogger(__name__)

RETRY_DELAYS = (30, 120, 600)
# a lost answer is checked after this, so the platform's read shows a comment made meanwhile
SETTLE_SECONDS = 60
BATCH = 500


def lease_seconds() -> float:
    # one platform call per run, each bounded by the HTTP timeout
    return max(120.0, 3 * float(os.environ.get("AURAREELS_HTTP_TIMEOUT", "60")))


# ------------------------------------------------------------------------------ the hand-over
def on_published(conn, rt: Runtime, post_id: int, platform: str, metadata: dict) -> bool:
    """In the transaction that marks the post published: a pending first comment, when the post
    has one and its platform takes it. Returns whether one was written."""
    message = metadata.get("first_comment")
    if not message or client_class(platform).first_comment is None:
        return False
    now = utcnow()
    conn.execute(insert(rt.tables.first_comments).values(
        post_id=post_id, message=message, status="pending", attempts=0, in_flight=0, next_attempt_at=now,
        created_at=now, updated_at=now))
    return True


def hand_over(rt: Runtime, post_id: int, when: datetime | None = None) -> None:
    """Queue the post's first comment (now, or at `when`); the sweeper covers a lost job."""
    try:
        queue.enqueue_first_comment(rt, post_id, when)
    except Exception as exc:  # MySQL holds the row; the sweeper queues it again
        log.warning("could not queue the first comment: %s", type(exc).__name__, extra={"post_id": post_id})


# ------------------------------------------------------------------------------ one run
class _Run:
    def __init__(self, rt: Runtime, post_id: int):
        self.rt, self.post_id = rt, post_id
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self.t = rt.tables.first_comments

    def claim(self) -> bool:
        now = utcnow()
        t = self.t
        with self.rt.engine.begin() as conn:
            return conn.execute(update(t).where(
                t.c.post_id == self.post_id, t.c.status == "pending",
                or_(t.c.lease_until.is_(None), t.c.lease_until < now),
                or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now + timedelta(seconds=1)),
            ).values(lease_owner=self.owner, lease_until=now + timedelta(seconds=lease_seconds()),
                     updated_at=now)).rowcount == 1

    def write(self, **values) -> bool:
        """Change the row under this run's lease (a run that lost it writes nothing)."""
        t = self.t
        with self.rt.engine.begin() as conn:
            return conn.execute(update(t).where(t.c.post_id == self.post_id, t.c.lease_owner == self.owner)
                                .values(updated_at=utcnow(), **values)).rowcount == 1

    def end(self, status: str, **values) -> str:
        self.write(status=status, lease_owner=None, lease_until=None, next_attempt_at=None, **values)
        log.info("first comment %s", status, extra={"post_id": self.post_id})
        return status

    def later(self, seconds: float, **values) -> str:
        when = utcnow() + timedelta(seconds=max(1.0, seconds))
        self.write(lease_owner=None, lease_until=None, next_attempt_at=when, **values)
        hand_over(self.rt, self.post_id, when)
        return "waiting"


def run(rt: Runtime, post_id: int) -> str:
    """Post (or settle) the first comment of a published post. Returns what became of it."""
    from bridge.services import oauth

    job = _Run(rt, post_id)
    if not job.claim():
        return "not_claimed"
    p, a = rt.tables.posts, rt.tables.accounts
    with rt.engine.connect() as conn:
        row = conn.execute(select(job.t).where(job.t.c.post_id == post_id)).mappings().first()
        post = conn.execute(select(p).where(p.c.id == post_id)).mappings().first()
        account = (conn.execute(select(a).where(a.c.id == post["social_account_id"])).mappings().first()
                   if post else None)
    if post is None or post["status"] != "published" or not post["platform_post_id"]:
        return job.end("failed", error_code="post_not_live", error_message="The post is not live, so its first "
                                                                           "comment was not posted.")
    if account is None or not account["is_active"]:
        return job.end("failed", error_code="account_disconnected",
                       error_message="The account was disconnected before the first comment was posted.")
    client = get_client(rt.settings, post["platform"])
    target = CommentTarget(post["platform_post_id"], post["platform_post_url"])
    message, in_flight = row["message"], bool(row["in_flight"])
    attempts, refreshed = int(row["attempts"] or 0), False
    while True:
        sending = False
        try:
            if refreshed or oauth.due_for_refresh(account, oauth.REFRESH_EARLY):
                account = oauth.refresh_account(rt, int(account["id"]), force=refreshed)
            ref = oauth.account_ref(rt, account)
            if in_flight:
                found = client.find_comment(ref, target, message, row["sent_at"] or post["published_at"])
                if found:
                    return job.end("posted", platform_comment_id=str(found)[:255], in_flight=0, error_code=None,
                                   error_message=None)
            # write-ahead: the intent is stored before the call, so a crash is settled by asking
            attempts += 1
            if not job.write(in_flight=1, sent_at=utcnow(), attempts=attempts):
                return "lost_lease"
            in_flight = sending = True
            comment_id = client.post_comment(ref, target, message)
            return job.end("posted", platform_comment_id=str(comment_id)[:255], in_flight=0, error_code=None,
                           error_message=None)
        except TokenExpired as exc:
            if sending:  # refused: nothing was posted
                in_flight = False
                job.write(in_flight=0)
            if refreshed:
                return _failed(job, client, Reauthorize(exc.message, platform=client.name, code="token_rejected"))
            refreshed = True
        except UnknownOutcome as exc:
            if sending:  # the answer was lost: the next run asks the platform before anything is sent
                return job.later(SETTLE_SECONDS, error_message=exc.message)
            return _unconfirmed(job, client, exc)
        except RateLimited as exc:
            return job.later(exc.retry_after or 60, in_flight=0 if sending else int(in_flight))
        except Transient as exc:
            if not sending:
                attempts += 1  # a read or a refresh that failed counts too, so the tries are bounded
            if attempts > len(RETRY_DELAYS):
                if in_flight and not sending:
                    return _unconfirmed(job, client, exc)
                return job.end("failed", in_flight=0, error_code=(exc.code or "transient")[:64], error_message=(
                    f"{client.display_name} could not take the first comment ({exc.message.rstrip('.')}); it was "
                    f"tried {attempts} times."))
            return job.later(RETRY_DELAYS[attempts - 1], attempts=attempts, in_flight=0 if sending else int(in_flight),
                             error_message=exc.message)
        except PlatformError as exc:
            if in_flight and not sending:
                # the comments cannot be read to settle an earlier send: never send it again
                return _unconfirmed(job, client, exc)
            return _failed(job, client, exc)


def _unconfirmed(job: _Run, client, exc: PlatformError) -> str:
    return job.end("unconfirmed", error_code="unconfirmed", error_message=(
        f"{client.display_name} did not confirm the first comment and cannot be asked ({exc.message.rstrip('.')}); "
        f"check the post on {client.display_name}."))


def _failed(job: _Run, client, exc: PlatformError) -> str:
    if isinstance(exc, Reauthorize):
        message = (f"{client.display_name} does not let this login post comments ({exc.message.rstrip('.')}); "
                   f"connect the account again and allow it, then comment on the post yourself.")
    else:
        message = f"{client.display_name} refused the first comment: {exc.message}"
    return job.end("failed", in_flight=0, error_code=(exc.code or "rejected")[:64], error_message=message)


# ------------------------------------------------------------------------------ the sweeper's part
def due(rt: Runtime) -> list[int]:
    """Pending first comments that are due and held by no live lease (the sweeper queues those
    whose job was lost: Redis wiped, a worker killed)."""
    t = rt.tables.first_comments
    now = utcnow()
    with rt.engine.connect() as conn:
        return [int(i) for i in conn.execute(select(t.c.post_id).where(
            t.c.status == "pending", or_(t.c.lease_until.is_(None), t.c.lease_until < now),
            or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now - timedelta(seconds=5)),
        ).limit(BATCH)).scalars()]
