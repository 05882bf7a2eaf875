"""The publishing engine: a post reaches its platform once, or visibly not at all.

`run_post()` is what every wake-up calls (RQ's scheduler, the internal endpoint n8n calls, the
sweeper, a retry). It:

1. claims the post with one conditional UPDATE (scheduled -> publishing, or a publishing post
   whose lease is free and whose next step is due) and takes a lease in MySQL, renewed by a
   heartbeat thread while it works. Two wake-ups for one post: one claims, the other returns.
2. drives the platform's steps; after each one the checkpoint (publish id, container id, upload
   session and offset, ...) is written to the post's `metadata` before the next step, under the
   lease. A worker killed at any point leaves the checkpoint of the last finished step; the
   sweeper resumes from it once the lease has run out.
3. on a processing wait, a rate limit or a transient error it releases the lease with
   `next_attempt_at` and enqueues a follow-up job for that time: no sleeping in a worker.
4. on an unknown outcome (timeout or 5xx after a non-idempotent call) it asks the platform
   (`reconcile`) before anything is sent again; if that cannot settle it, the post fails with
   code `unconfirmed` and is never retried automatically.

MySQL is the truth: Redis only carries wake-ups, and the sweeper rebuilds them from MySQL.
"""
from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from bridge.domain.status import Status, transition
from bridge.platforms.base import PostContent, PublishJob
from bridge.platforms.errors import (
    PlatformError,
    RateLimited,
    Reauthorize,
    Rejected,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.registry import get_client
from bridge.runtime import Runtime
from bridge.services import events, oauth, quota, scheduler
from bridge.store.db import utcnow
from bridge.timefmt import fmt, iso_z

log = logging.getLogger("bridge.engine")

TRANSIENT_DELAYS = (60, 300, 900)  # 1, 5 and 15 minutes, with jitter
# A token refused right after this run refreshed it: runs (each refreshing again) before giving up,
# more of them while an earlier step's outcome is unknown, and the wait before each.
AUTH_RETRIES, AUTH_RETRIES_UNKNOWN, AUTH_RETRY_SECONDS = 2, 5, 10
MAX_STEPS_PER_RUN = 5000
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}"


def lease_seconds() -> int:
    return int(os.environ.get("AURAREELS_LEASE_SECONDS", "90"))


def missed_after() -> timedelta:
    return timedelta(hours=float(os.environ.get("AURAREELS_MISSED_AFTER_HOURS", "24")))


# Atomic "take a slot if fewer than cap are held": slots are sorted-set members scored by expiry,
# so a slot of a killed worker frees itself.
_SLOT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  return 1
end
return 0
"""
DEFAULT_CONCURRENCY = 20


def concurrency_cap(platform: str) -> int:
    raw = os.environ.get(f"AURAREELS_CONCURRENCY_{platform.upper()}")
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else DEFAULT_CONCURRENCY


class _PlatformSlot:
    """At most `concurrency_cap(platform)` posts of one platform are driven at once, fleet-wide."""

    def __init__(self, rt: Runtime, platform: str, owner: str):
        self.rt, self.key, self.owner = rt, f"bridge:conc:{platform}", owner
        self.cap = concurrency_cap(platform)

    def acquire(self) -> bool:
        now = time.time()
        try:
            return bool(self.rt.redis.eval(_SLOT_SCRIPT, 1, self.key, now, now + 4 * lease_seconds(), self.cap,
                                           self.owner))
        except Exception:  # no Redis, no cap: MySQL's claim still guarantees one publisher per post
            return True

    def release(self) -> None:
        try:
            self.rt.redis.zrem(self.key, self.owner)
        except Exception:
            pass


class _Lease:
    """Keeps a post's lease alive while a worker drives it."""

    def __init__(self, rt: Runtime, post_id: int, owner: str):
        self.rt, self.post_id, self.owner = rt, post_id, owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{post_id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        interval = max(1.0, lease_seconds() / 3)
        p = self.rt.tables.posts
        while not self._stop.wait(interval):
            try:
                with self.rt.engine.begin() as conn:
                    conn.execute(update(p).where(p.c.id == self.post_id, p.c.lease_owner == self.owner)
                                 .values(lease_until=utcnow() + timedelta(seconds=lease_seconds())))
            except Exception as exc:  # the next step's write will find out if the lease is gone
                log.warning("lease renewal failed: %s", type(exc).__name__, extra={"post_id": self.post_id})


# ------------------------------------------------------------------------------------ claim
def claim(rt: Runtime, post_id: int, owner: str, expected_scheduled_at: str | None = None) -> str:
    """Try to take the post. Returns "claimed", or why not: "not_found", "stale", "not_due",
    "missed", "busy", "final:<status>"."""
    p = rt.tables.posts
    now = utcnow()
    lease_until = now + timedelta(seconds=lease_seconds())
    with rt.engine.begin() as conn:
        row = conn.execute(select(p.c.status, p.c.scheduled_at, p.c.next_attempt_at, p.c.lease_until)
                           .where(p.c.id == post_id)).mappings().first()
        if row is None:
            return "not_found"
        status = row["status"]
        if status == Status.SCHEDULED.value:
            scheduled_at = row["scheduled_at"]
            if expected_scheduled_at and (scheduled_at is None or iso_z(scheduled_at) != expected_scheduled_at):
                return "stale"
            if scheduled_at is not None and scheduled_at > now + timedelta(seconds=1):
                return "not_due"
            if scheduled_at is not None and now - scheduled_at > missed_after():
                transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.FAILED, error_code="missed",
                           error_message=f"Not published: it was due at {fmt(scheduled_at)} UTC and the bridge could "
                                         f"not send it within {missed_after()}; schedule it again.",
                           next_attempt_at=None)
                events.emit(rt, "post.failed", post_id)
                return "missed"
            won = transition(conn, rt.tables, post_id, Status.SCHEDULED, Status.PUBLISHING,
                             lease_owner=owner, lease_until=lease_until, next_attempt_at=None)
            return "claimed" if won else "busy"
        if status == Status.PUBLISHING.value:
            if expected_scheduled_at:
                return "busy"
            result = conn.execute(
                update(p).where(
                    p.c.id == post_id, p.c.status == Status.PUBLISHING.value,
                    or_(p.c.lease_until.is_(None), p.c.lease_until < now),
                    or_(p.c.next_attempt_at.is_(None), p.c.next_attempt_at <= now + timedelta(seconds=1)),
                ).values(lease_owner=owner, lease_until=lease_until, updated_at=now))
            if result.rowcount == 1:
                return "claimed"
            return "not_due" if row["next_attempt_at"] and row["next_attempt_at"] > now else "busy"
        return f"final:{status}"


# ------------------------------------------------------------------------------------- run
def run_post(rt: Runtime, post_id: int, expected_scheduled_at: str | None = None) -> str:
    """Wake a post: claim it, then drive it until it is done, waits, or fails. Returns the outcome."""
    from bridge.logs import post_id_var

    post_id_var.set(post_id)
    owner = f"{PROCESS_ID}:{uuid.uuid4().hex[:8]}"
    claimed = claim(rt, post_id, owner, expected_scheduled_at)
    if claimed != "claimed":
        if claimed == "not_due":
            _requeue_when_due(rt, post_id)
        log.info("post not claimed: %s", claimed, extra={"post_id": post_id})
        return claimed
    with _Lease(rt, post_id, owner):
        driver = _Driver(rt, post_id, owner)
        slot = _PlatformSlot(rt, driver.platform(), owner)
        if not slot.acquire():
            # the platform has its share of posts in flight: step back for a moment
            return driver.release(utcnow() + timedelta(seconds=random.uniform(1, 3)))
        try:
            return driver.run()
        except Exception:
            # An unexpected bug: keep the post publishing with its checkpoint, free the lease and
            # try again later rather than lose it or resend blindly.
            log.exception("unexpected error while publishing", extra={"post_id": post_id})
            _Driver(rt, post_id, owner).release(utcnow() + timedelta(seconds=300), note="internal error; retrying")
            return "error"
        finally:
            slot.release()


def _requeue_when_due(rt: Runtime, post_id: int) -> None:
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        row = conn.execute(select(p.c.status, p.c.scheduled_at, p.c.next_attempt_at)
                           .where(p.c.id == post_id)).mappings().first()
    if row is None:
        return
    when = row["scheduled_at"] if row["status"] == "scheduled" else row["next_attempt_at"]
    if when is not None and rt.settings.scheduler == "rq" or row["status"] == "publishing":
        try:
            if row["status"] == "scheduled":
                scheduler.hand_over(rt, post_id, when)
            elif when is not None:
                scheduler.enqueue_step_at(rt, post_id, when)
        except Exception:
            pass


class _Driver:
    def __init__(self, rt: Runtime, post_id: int, owner: str):
        self.rt, self.post_id, self.owner = rt, post_id, owner
        self.p = rt.tables.posts
        self.refreshed = False
        self._last_progress = 0.0

    # --- storage under the lease
    def _load(self):
        a = self.rt.tables.accounts
        with self.rt.engine.connect() as conn:
            post = conn.execute(select(self.p).where(self.p.c.id == self.post_id)).mappings().first()
            account = conn.execute(select(a).where(a.c.id == post["social_account_id"])).mappings().first()
        return post, account

    def platform(self) -> str:
        with self.rt.engine.connect() as conn:
            return conn.execute(select(self.p.c.platform).where(self.p.c.id == self.post_id)).scalar()

    def _owned(self):
        return and_(self.p.c.id == self.post_id, self.p.c.status == Status.PUBLISHING.value,
                    self.p.c.lease_owner == self.owner)

    def persist(self, metadata: dict) -> bool:
        with self.rt.engine.begin() as conn:
            result = conn.execute(update(self.p).where(self._owned()).values(
                metadata=json.dumps(metadata),
                lease_until=utcnow() + timedelta(seconds=lease_seconds()), updated_at=utcnow()))
        return result.rowcount == 1

    def release(self, next_at: datetime, *, metadata: dict | None = None, note: str | None = None,
                count_retry: bool = False) -> str:
        if metadata is not None and not metadata.get("reconcile_first"):
            # the step answered (an error that says nothing was done): nothing is in flight
            metadata.pop("in_flight", None)
        values = {"lease_owner": None, "lease_until": None, "next_attempt_at": next_at, "updated_at": utcnow()}
        if metadata is not None:
            values["metadata"] = json.dumps(metadata)
        if note is not None:
            values["error_message"] = note
        if count_retry:
            values["retry_count"] = self.p.c.retry_count + 1
            values["last_retry_at"] = utcnow()
        with self.rt.engine.begin() as conn:
            conn.execute(update(self.p).where(self._owned()).values(**values))
        try:
            scheduler.enqueue_step_at(self.rt, self.post_id, next_at)
        except Exception as exc:  # the sweeper finds it from next_attempt_at
            log.warning("could not enqueue the next step: %s", type(exc).__name__, extra={"post_id": self.post_id})
        return "waiting"

    def fail(self, code: str, message: str, *, metadata: dict | None = None) -> str:
        values = {"error_code": code[:64], "error_message": message, "lease_owner": None, "lease_until": None,
                  "next_attempt_at": None}
        if metadata is not None:
            values["metadata"] = json.dumps(metadata)
        with self.rt.engine.begin() as conn:
            changed = transition(conn, self.rt.tables, self.post_id, Status.PUBLISHING, Status.FAILED,
                                 where={"lease_owner": self.owner}, **values)
        if changed:
            log.warning("post failed: %s", code, extra={"post_id": self.post_id})
            events.emit(self.rt, "post.failed", self.post_id)
            _observe("failed", self._platform)
        return "failed"

    def succeed(self, result, metadata: dict) -> str:
        metadata.pop("progress", None)
        with self.rt.engine.begin() as conn:
            changed = transition(
                conn, self.rt.tables, self.post_id, Status.PUBLISHING, Status.PUBLISHED,
                where={"lease_owner": self.owner},
                platform_post_id=result.platform_post_id, platform_post_url=result.platform_post_url,
                published_at=utcnow(), error_code=None, error_message=None, lease_owner=None, lease_until=None,
                next_attempt_at=None, metadata=json.dumps(metadata))
        if changed:
            log.info("post published", extra={"post_id": self.post_id})
            events.emit(self.rt, "post.published", self.post_id)
            _observe("published", self._platform)
        return "published" if changed else "lost_lease"

    # --- the loop
    def run(self) -> str:
        post, account = self._load()
        self._platform = post["platform"]
        metadata = _metadata(post["metadata"])
        if account is None or not account["is_active"]:
            return self.fail("account_disconnected", "The account was disconnected; connect it again and retry.")
        client = get_client(self.rt.settings, post["platform"])
        content = _content(post, metadata)
        caption = client.compose_caption(content)

        for _ in range(MAX_STEPS_PER_RUN):
            checkpoint = metadata.get("checkpoint") or {}
            if not checkpoint and not metadata.get("reconcile_first"):
                wait = self._quota_wait(post)
                if wait is not None:
                    return self.release(wait, metadata=metadata, note=(
                        f"Waiting for {client.display_name}'s daily limit to free a slot at {fmt(wait)} UTC."))
            try:
                account = oauth.refresh_account(self.rt, account["id"])
            except Reauthorize as exc:
                events.emit(self.rt, "account.needs_reconnect", self.post_id)
                return self.fail("account_needs_reconnect", exc.message, metadata=metadata)
            except RateLimited as exc:
                return self.release(_after(exc.retry_after), metadata=metadata, note=exc.message)
            except Transient as exc:
                return self._transient(exc, metadata)
            except PlatformError as exc:
                return self.fail(exc.code, exc.message, metadata=metadata)

            job = PublishJob(post_id=self.post_id, account=oauth.account_ref(self.rt, account), content=content,
                             caption=caption, checkpoint=dict(checkpoint), progress=self._progress(metadata))
            # A step that was in flight when its worker died may have taken effect: ask first.
            if metadata.get("in_flight") is not None:
                metadata["reconcile_first"] = True
            reconciling = bool(metadata.get("reconcile_first"))
            try:
                if reconciling:
                    result = client.reconcile(job)
                    metadata.pop("reconcile_first", None)
                    metadata.pop("in_flight", None)
                else:
                    # Write-ahead: the intent is stored before the platform call, the result after.
                    metadata["in_flight"] = checkpoint.get("stage", "start")
                    if not self.persist(metadata):
                        return "lost_lease"
                    failpoint("before_step")
                    result = client.publish_step(job)
                    failpoint("after_step")
            except TokenExpired:
                if self.refreshed:
                    return self._refused_after_refresh(client, metadata)
                self.refreshed = True
                try:
                    account = oauth.refresh_account(self.rt, account["id"], force=True)
                except Reauthorize as again:
                    events.emit(self.rt, "account.needs_reconnect", self.post_id)
                    return self.fail("account_needs_reconnect", again.message, metadata=metadata)
                except PlatformError as again:
                    return self._transient(Transient(again.message, platform=again.platform), metadata)
                continue
            except RateLimited as exc:
                _observe_call(post["platform"], "rate_limited")
                return self.release(_after(exc.retry_after), metadata=metadata, note=exc.message)
            except UnknownOutcome as exc:
                _observe_call(post["platform"], "unknown_outcome")
                settled = self._settle(client, job, metadata, exc)
                if isinstance(settled, str):
                    return settled
                result = settled
            except Transient as exc:
                _observe_call(post["platform"], "transient")
                return self._transient(exc, metadata)
            except Reauthorize as exc:
                self._mark_reconnect(account["id"], exc.message)
                return self.fail("account_needs_reconnect", exc.message, metadata=metadata)
            except Rejected as exc:
                _observe_call(post["platform"], "rejected")
                return self.fail(exc.code, exc.message, metadata=metadata)

            _observe_call(post["platform"], "ok")
            metadata["checkpoint"] = result.checkpoint
            metadata.pop("in_flight", None)
            if not reconciling:
                metadata.pop("auth_retries", None)
            metadata.pop("transient_attempts", None)
            if result.done:
                return self.succeed(result, metadata)
            if not self.persist(metadata):
                log.warning("lease lost; another worker has the post", extra={"post_id": self.post_id})
                return "lost_lease"
            if result.wait is not None:
                return self.release(_after(result.wait), metadata=metadata)
        return self.release(utcnow(), metadata=metadata)

    def _settle(self, client, job: PublishJob, metadata: dict, original: UnknownOutcome):
        """Ask the platform what happened; never resend before it answers."""
        try:
            return client.reconcile(job)
        except TokenExpired:
            # The read that checks what happened needs a fresh token; the step may well have gone
            # out, so ask again after refreshing, never fail or resend on this.
            metadata["reconcile_first"] = True
            try:
                oauth.refresh_account(self.rt, job.account.id, force=True)
            except Reauthorize as exc:
                events.emit(self.rt, "account.needs_reconnect", self.post_id)
                return self.fail("account_needs_reconnect", exc.message, metadata=metadata)
            except PlatformError:
                pass
            return self.release(_after(5), metadata=metadata, note=original.message)
        except UnknownOutcome:
            return self.fail("unconfirmed", (
                f"We could not confirm whether {client.display_name} published this post. Check the account on "
                f"{client.display_name}; Retry checks again before anything is sent."), metadata=metadata)
        except (Transient, RateLimited) as exc:
            # The platform cannot be asked right now: check again later, still without resending.
            metadata["reconcile_first"] = True
            delay = exc.retry_after if isinstance(exc, RateLimited) else 60
            return self.release(_after(delay), metadata=metadata, note=original.message)
        except PlatformError as exc:
            return self.fail(exc.code, exc.message, metadata=metadata)

    def _refused_after_refresh(self, client, metadata: dict) -> str:
        """The platform refused a token this run had just refreshed. That is sometimes a passing
        glitch (a new token not yet known to every server), so the post waits and tries again
        before it gives up. While an earlier step's outcome is unknown the post may well be live:
        it keeps asking longer and, if it must stop, ends `unconfirmed` (Retry asks before it
        sends anything), never as a plain failure."""
        unknown = bool(metadata.get("reconcile_first"))
        tries = int(metadata.get("auth_retries", 0)) + 1
        if tries < (AUTH_RETRIES_UNKNOWN if unknown else AUTH_RETRIES):
            metadata["auth_retries"] = tries
            at = _after(AUTH_RETRY_SECONDS * tries)
            return self.release(at, metadata=metadata, note=(
                f"{client.display_name} refused the freshly refreshed login; trying again at {fmt(at)} UTC."))
        metadata.pop("auth_retries", None)
        if unknown:
            return self.fail("unconfirmed", (
                f"We could not confirm whether {client.display_name} published this post: it kept refusing the "
                f"saved login while we checked. Reconnect the account, then Retry; Retry checks before anything "
                f"is sent."), metadata=metadata)
        return self.fail("token_rejected", f"{client.display_name} refused the saved login even after refreshing "
                                           f"it; connect the account again.", metadata=metadata)

    def _transient(self, exc: PlatformError, metadata: dict) -> str:
        attempts = int(metadata.get("transient_attempts", 0)) + 1
        if attempts > len(TRANSIENT_DELAYS):
            return self.fail(exc.code or "transient", f"{exc.message} It failed {attempts} times; press Retry to try "
                                                      f"again.", metadata=metadata)
        metadata["transient_attempts"] = attempts
        delay = TRANSIENT_DELAYS[attempts - 1] * random.uniform(0.8, 1.2)
        return self.release(_after(delay), metadata=metadata, count_retry=True,
                            note=f"{exc.message} Retrying at {fmt(_after(delay))} UTC (attempt {attempts + 1}).")

    def _quota_wait(self, post) -> datetime | None:
        view = quota.usage(self.rt, post["social_account_id"], post["platform"], exclude_post=self.post_id)
        if view.used >= view.limit and view.next_slot_at is not None:
            return view.next_slot_at
        return None

    def _mark_reconnect(self, account_id: int, reason: str) -> None:
        a = self.rt.tables.accounts
        with self.rt.engine.begin() as conn:
            conn.execute(update(a).where(a.c.id == account_id).values(
                needs_reconnect=1, reconnect_reason=reason[:255], updated_at=utcnow()))
        events.emit(self.rt, "account.needs_reconnect", self.post_id)

    def _progress(self, metadata: dict):
        def report(sent: int, total: int) -> None:
            metadata["progress"] = {"sent": int(sent), "total": int(total),
                                    "percent": round(100.0 * sent / total, 1) if total else None}
            now = time.monotonic()
            if now - self._last_progress >= 2 or sent >= total:
                self._last_progress = now
                self.persist(metadata)

        return report


def failpoint(name: str) -> None:
    """Crash tests: `AURAREELS_FAILPOINT=after_step:3:/tmp/marker` kills this process (SIGKILL)
    the third time it passes `after_step`, once: the marker file records that it fired (jobs run
    in forked children, which do not share a counter). Unset in production: one lookup."""
    spec = os.environ.get("AURAREELS_FAILPOINT")
    if not spec:
        return
    target, _, rest = spec.partition(":")
    count, _, marker = rest.partition(":")
    if target != name or (marker and os.path.exists(marker)):
        return
    key = f"{name}:{os.getpid()}"
    _FAILPOINT_HITS[key] = _FAILPOINT_HITS.get(key, 0) + 1
    if _FAILPOINT_HITS[key] >= int(count or 1):
        import signal

        if marker:
            with open(marker, "w") as handle:
                handle.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


_FAILPOINT_HITS: dict[str, int] = {}


def _after(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=max(0.0, float(seconds)))


def _metadata(raw) -> dict:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def _content(post, metadata: dict) -> PostContent:
    def as_list(raw):
        try:
            value = json.loads(raw) if raw else []
        except ValueError:
            return []
        return value if isinstance(value, list) else []

    return PostContent(
        caption=post["caption"] or "", hashtags=as_list(post["hashtags"]), mentions=as_list(post["mentions"]),
        title=metadata.get("title"), privacy_level=post["privacy_level"],
        allow_comments=bool(post["allow_comments"]), allow_duet=bool(post["allow_duet"]),
        allow_stitch=bool(post["allow_stitch"]), video_url=post["video_url"], thumbnail_url=post["thumbnail_url"],
        media_type=metadata.get("media_type") or "video", extra=dict(metadata.get("options") or {}),
    )


def _observe(outcome: str, platform: str) -> None:
    try:
        from bridge.metrics import POSTS_FINISHED

        POSTS_FINISHED.labels(platform=platform, outcome=outcome).inc()
    except Exception:
        pass


def _observe_call(platform: str, outcome: str) -> None:
    try:
        from bridge.metrics import PLATFORM_STEPS

        PLATFORM_STEPS.labels(platform=platform, outcome=outcome).inc()
    except Exception:
        pass
