"""The driver: one claimed post's platform steps, under its lease, from its checkpoint to an outcome.

Before a step that may change something on the platform (`step_has_effect`) the intent
(`in_flight`) is written with the checkpoint; after it, the new checkpoint. A step that only reads
writes nothing and is done again after a crash. A step whose intent is still stored when a run
starts may have taken effect: the platform is asked (`reconcile`) before anything is sent again.

What a platform error means for the post is one table (`ON_ERROR`): refresh the token and go on,
wait for a rate limit, ask the platform what happened, retry with back-off, ask the creator to
reconnect, or fail with the platform's reason. Every wait is data: the post is released with
`next_attempt_at` and a `wait_reason`, and a follow-up job is enqueued for that time.

A post prepared before its time (`prepare`) has done every read its publishing call needs (token
refresh, daily quota, media probe, and the platform's read-only first steps such as TikTok's
creator info), so its first call at the instant is the publishing call itself.
"""
from __future__ import annotations

import enum
import json
import logging
import os
import random
import signal
import time
from datetime import datetime, timedelta

from bridge import queue
from bridge.domain.status import Status, transition
from bridge.engine.caps import PlatformCap
from bridge.engine.leases import lease_until
from bridge.platforms.base import PostContent, PublishJob
from bridge.platforms.errors import (
    PlatformError,
    RateLimited,
    Reauthorize,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.registry import get_client
from bridge.runtime import Runtime
from bridge.services import events, first_comments, oauth, quota
from bridge.store import posts as post_rows
from bridge.store.accounts import mark_needs_reconnect
from bridge.store.db import utcnow
from bridge.timefmt import epoch, fmt

log = logging.getLogger("bridge.engine")

TRANSIENT_DELAYS = (60, 300, 900)  # 1, 5 and 15 minutes, with jitter
# A token refused right after this run refreshed it: runs (each refreshing again) before giving up,
# more of them while an earlier step's outcome is unknown, and the wait before each.
AUTH_RETRIES, AUTH_RETRIES_UNKNOWN, AUTH_RETRY_SECONDS = 2, 5, 10
# A prepared post trusts the quota count it took before its instant unless fewer slots than this
# were left then (other posts of the account prepared for the same instant were not counted yet).
QUOTA_RECHECK_ROOM = 10
READS_AHEAD = 3  # read-only steps a prepared post makes before its instant, at most
MAX_STEPS_PER_RUN = 5000


class Outcome(str, enum.Enum):
    """How a run of a post ends."""

    PUBLISHED = "published"
    FAILED = "failed"
    WAITING = "waiting"  # released with next_attempt_at; a follow-up job is enqueued
    LOST_LEASE = "lost_lease"  # another worker has the post
    PAUSED = "paused"  # (a burst) stepped aside after a call; `loop()` again goes on from here
    CAPPED = "capped"  # the platform's upload cap is full: nothing was sent, the lease is kept
    ERROR = "error"  # an unexpected exception (see bridge.engine.run)


class Driver:
    """Drives one post under the lease of `owner`."""

    def __init__(self, rt: Runtime, post_id: int, owner: str):
        self.rt, self.post_id, self.owner = rt, post_id, owner
        self.post = self.account = self.client = None
        self.platform: str | None = None
        self.metadata: dict = {}
        self.started = False  # `run` was called
        self.prepared = False  # `prepare` ran before the instant
        self.ahead_written = False  # the claim stored the first step's intent (`write_ahead`)
        self.refreshed = False
        self.reconciling = False
        self.unsaved = False  # a checkpoint to write before the next step (see `loop`)
        self.quota_wait: datetime | None = None
        self.quota_room: int | None = None
        self.quota_checked = False  # quota_wait was counted when the post was prepared
        self.quota_recheck = False  # prepared with little daily room: count again at the instant
        self.quota_passed = False
        self.not_before = 0.0
        self._ref = None  # (account row, AccountRef): tokens decrypted once per row
        self._last_progress = 0.0

    # ------------------------------------------------------------------ storage under the lease
    def persist(self, metadata: dict) -> bool:
        now = utcnow()
        with self.rt.engine.begin() as conn:
            return post_rows.write_checkpoint(conn, self.rt.tables, self.post_id, self.owner, metadata,
                                              lease_until(self.rt), now)

    def release(self, next_at: datetime, *, reason: str | None = None, metadata: dict | None = None,
                note: str | None = None) -> Outcome:
        """Let go of the post until `next_at` (why: `reason`, one of `store.posts.WAIT_REASONS`)."""
        if metadata is not None and not metadata.get("reconcile_first"):
            # the step answered (an error that says nothing was done): nothing is in flight
            metadata.pop("in_flight", None)
        values = {"next_attempt_at": next_at, "wait_reason": reason, "updated_at": utcnow()}
        if metadata is not None:
            values["metadata"] = json.dumps(metadata)
        if note is not None:
            values["error_message"] = note
        with self.rt.engine.begin() as conn:
            post_rows.release(conn, self.rt.tables, self.post_id, self.owner, **values)
        try:
            queue.enqueue_step_at(self.rt, self.post_id, next_at, self.platform)
        except Exception as exc:  # the sweeper finds it from next_attempt_at
            log.warning("could not enqueue the next step: %s", type(exc).__name__, extra={"post_id": self.post_id})
        return Outcome.WAITING

    def fail(self, code: str, message: str, *, metadata: dict | None = None) -> Outcome:
        values = {"error_code": code[:64], "error_message": message, "lease_owner": None, "lease_until": None,
                  "next_attempt_at": None, "wait_reason": None}
        if metadata is not None:
            values["metadata"] = json.dumps(metadata)
        with self.rt.engine.begin() as conn:
            changed = transition(conn, self.rt.tables, self.post_id, Status.PUBLISHING, Status.FAILED,
                                 where={"lease_owner": self.owner}, **values)
        if changed:
            log.warning("post failed: %s", code, extra={"post_id": self.post_id})
            events.emit(self.rt, "post.failed", self.post_id)
            _observe("failed", self.platform)
        return Outcome.FAILED

    def succeed(self, result, metadata: dict) -> Outcome:
        metadata.pop("progress", None)
        with self.rt.engine.begin() as conn:
            changed = transition(
                conn, self.rt.tables, self.post_id, Status.PUBLISHING, Status.PUBLISHED,
                where={"lease_owner": self.owner},
                platform_post_id=result.platform_post_id, platform_post_url=result.platform_post_url,
                published_at=utcnow(), error_code=None, error_message=None, lease_owner=None, lease_until=None,
                next_attempt_at=None, wait_reason=None, metadata=json.dumps(metadata))
            # in the same transaction: a published post with a first comment always has it pending
            commented = changed and first_comments.on_published(conn, self.rt, self.post_id, self.platform,
                                                                metadata)
        if changed:
            log.info("post published", extra={"post_id": self.post_id})
            events.emit(self.rt, "post.published", self.post_id)
            _observe("published", self.platform)
        if commented:
            first_comments.hand_over(self.rt, self.post_id)
        return Outcome.PUBLISHED if changed else Outcome.LOST_LEASE

    # ------------------------------------------------------------------------------ preparing
    def setup(self, post, account) -> None:
        self.post, self.account = post, account
        self.platform = post["platform"]
        self.metadata = post_rows.metadata_of(post["metadata"])
        self.client = get_client(self.rt.settings, post["platform"])
        self.content = _content(post, self.metadata)
        self.caption = self.client.compose_caption(self.content)
        self.cap = PlatformCap(self.rt, self.platform)
        scheduled_at = post["scheduled_at"]
        self.not_before = epoch(scheduled_at) if scheduled_at is not None else 0.0

    def prepare(self, post, account) -> None:
        """Before the due time (a pre-armed post, still `scheduled`): what its publishing call
        needs, without changing anything on the platform: the decrypted token (refreshed if due),
        the caption, the daily quota, the media probe (a read of the creator's video), and the
        platform's read-only first steps, whose checkpoint stays in memory until the claim."""
        self.setup(post, account)
        if account is None or not account["is_active"]:
            return
        self.quota_wait = self._quota_wait()
        # Posts of one account armed for one instant do not see each other yet: when the room
        # left is small, the count is taken again at the instant (one query) so they can't overrun it.
        self.quota_recheck = self.quota_room is not None and self.quota_room <= QUOTA_RECHECK_ROOM
        self.prepared = True
        if self.quota_wait is not None:
            return  # it waits for its quota at its time: nothing to read ahead
        if self.content.video_url and self.content.media_type == "video":
            try:
                from bridge.platforms.media import MediaSource

                MediaSource(self.rt.settings, self.content.video_url).probe(ahead=True)
            except Exception:  # the step probes again and handles what it finds
                pass
        try:
            if oauth.due_for_refresh(self.account, oauth.REFRESH_EARLY):
                self.account = oauth.refresh_account(self.rt, self.account["id"])
            self._read_ahead()
        except PlatformError as exc:  # the read is made again at the instant, and handled there
            log.info("reading ahead stopped: %s", exc.code, extra={"post_id": self.post_id})

    def _read_ahead(self) -> None:
        metadata = self.metadata
        if metadata.get("in_flight") is not None or metadata.get("reconcile_first"):
            return
        for _ in range(READS_AHEAD):
            job = self._job(metadata.get("checkpoint") or {})
            if self.client.step_has_effect(job):
                return
            failpoint(self.rt, "before_step")
            result = self.client.publish_step(job)
            failpoint(self.rt, "after_step")
            if result.done or result.wait is not None:
                return  # not a first read: the run makes it again
            metadata["checkpoint"] = result.checkpoint

    def write_ahead(self) -> str | None:
        """For the claim at the instant: the metadata to store with it when the post's first step
        there has an effect (its intent written ahead, as before any such step), so the first
        thing the run does after the claim is that platform call. None: the run writes its own."""
        if not self.prepared or self.quota_wait is not None or self.quota_recheck or self._called():
            return None
        metadata = self.metadata
        if metadata.get("in_flight") is not None or metadata.get("reconcile_first") \
                or oauth.due_for_refresh(self.account, oauth.REFRESH_EARLY):
            return None
        checkpoint = metadata.get("checkpoint") or {}
        if not self.client.step_has_effect(self._job(checkpoint)):
            return None
        return json.dumps({**metadata, "in_flight": checkpoint.get("stage", "start"), "called": True})

    def _account_ref(self):
        if self._ref is None or self._ref[0] is not self.account:
            self._ref = (self.account, oauth.account_ref(self.rt, self.account))
        return self._ref[1]

    def _job(self, checkpoint: dict) -> PublishJob:
        return PublishJob(post_id=self.post_id, account=self._account_ref(), content=self.content,
                          caption=self.caption, checkpoint=dict(checkpoint), progress=self._progress(self.metadata))

    # ------------------------------------------------------------------------------- running
    def run(self, post, account, *, quota_checked: bool = False, pause=None) -> Outcome:
        if not self.prepared:
            self.setup(post, account)
        self.post, self.started = post, True
        if self.account is None or not self.account["is_active"]:
            return self.fail("account_disconnected", "The account was disconnected; connect it again and retry.")
        self.quota_checked = quota_checked
        return self.loop(pause=pause)

    def loop(self, pause=None) -> Outcome:
        """Drive the steps. With `pause` (a burst of prepared posts), after a call the run returns
        PAUSED when `pause()` says others still wait for their first call; `loop()` again goes on
        from the same state."""
        metadata = self.metadata
        for _ in range(MAX_STEPS_PER_RUN):
            if self.unsaved:  # the checkpoint of a call made before the run paused
                self.unsaved = False
                if not self.persist(metadata):
                    return Outcome.LOST_LEASE
            outcome = self._quota_gate()
            if outcome is not None:
                return outcome
            try:
                # The token is refreshed when the row says it is due; a refusal of the platform
                # (TokenExpired) forces a refresh whatever the row says.
                if oauth.due_for_refresh(self.account, oauth.REFRESH_EARLY):
                    self.account = oauth.refresh_account(self.rt, self.account["id"])
                outcome, result = self._step()
            except PlatformError as exc:
                outcome = self._on_error(exc)
                if outcome is None:
                    continue
                return outcome
            if outcome is not None:
                return outcome
            _observe_call(self.platform, "ok")
            wrote = self.reconciling or metadata.get("in_flight") is not None
            metadata["checkpoint"] = result.checkpoint
            metadata.pop("in_flight", None)
            if not self.reconciling:
                metadata.pop("auth_retries", None)
            metadata.pop("transient_attempts", None)
            if result.done:
                return self.succeed(result, metadata)
            if result.wait is not None:
                return self.release(_after(result.wait), reason="processing", metadata=metadata)
            if pause is not None and pause():
                # Other posts of the burst still wait for their publishing call: this one steps
                # aside, and writes its checkpoint when it goes on (its intent is stored: a crash
                # meanwhile makes the next run ask the platform first).
                self.unsaved = wrote
                return Outcome.PAUSED
            if wrote and not self.persist(metadata):
                log.warning("lease lost; another worker has the post", extra={"post_id": self.post_id})
                return Outcome.LOST_LEASE
        return self.release(utcnow(), metadata=metadata)

    def _step(self):
        """The next step: a reconcile when an earlier step's outcome is unknown, else the next
        publish step (its intent written ahead when it has an effect). Returns (outcome, result):
        an outcome when the run ends before any call."""
        metadata, client = self.metadata, self.client
        checkpoint = metadata.get("checkpoint") or {}
        job = self._job(checkpoint)
        # A step that was in flight when its worker died may have taken effect: ask first.
        if metadata.get("in_flight") is not None:
            metadata["reconcile_first"] = True
        self.reconciling = bool(metadata.get("reconcile_first"))
        if self.reconciling:
            self._not_early()
            result = client.reconcile(job)
            metadata.pop("reconcile_first", None)
            metadata.pop("in_flight", None)
            return None, result
        effect = client.step_has_effect(job)
        capped = effect and self._called()
        if capped and not self.cap.acquire(self.owner):
            return Outcome.CAPPED, None
        try:
            if effect:
                # Write-ahead: the intent is stored before the platform call, the result after.
                metadata["in_flight"], metadata["called"] = checkpoint.get("stage", "start"), True
                if self.ahead_written:  # the claim stored it
                    self.ahead_written = False
                elif not self.persist(metadata):
                    return Outcome.LOST_LEASE, None
            failpoint(self.rt, "before_step")
            self._not_early()
            result = client.publish_step(job)
            failpoint(self.rt, "after_step")
        finally:
            if capped:
                self.cap.release(self.owner)
        return None, result

    def _called(self) -> bool:
        """Whether the post's publishing call was made (steps with an effect after it take the cap)."""
        return bool(self.metadata.get("called")) or self.client.may_be_live(self.metadata.get("checkpoint"))

    def _quota_gate(self) -> Outcome | None:
        """Once a run, before the publishing call: a post over its daily quota waits for a slot."""
        metadata = self.metadata
        if self.quota_passed or metadata.get("reconcile_first") or metadata.get("in_flight") is not None \
                or self._called():
            return None
        trusted = self.quota_checked and not self.quota_recheck
        wait = self.quota_wait if trusted else self._quota_wait()
        self.quota_checked = False
        if wait is not None:
            return self.release(wait, reason="quota", metadata=metadata, note=(
                f"Waiting for {self.client.display_name}'s daily limit to free a slot at {fmt(wait)} UTC."))
        self.quota_passed = True
        return None

    def _not_early(self) -> None:
        """Nothing reaches a platform before the post's scheduled time: a claim may come up to a
        second early (RQ's and n8n's clocks are whole seconds); the first call waits for the instant."""
        left = self.not_before - time.time()
        if left > 2.0:  # never expected (the claim checks the time): wait for the time as data
            raise RateLimited("Not due yet.", platform=self.platform, retry_after=left)
        if left > 0:
            time.sleep(left)
        self.not_before = 0.0

    # --------------------------------------------------------------- what each error means
    def _on_error(self, exc: PlatformError) -> Outcome | None:
        """The post's outcome for a platform error (None: handled, go on), from `ON_ERROR`."""
        for kind, label, handle in ON_ERROR:
            if isinstance(exc, kind):
                _observe_call(self.platform, label)
                return handle(self, exc)
        raise exc  # not a PlatformError subclass the table knows: a bug, handled as one

    def _refresh_and_go_on(self, exc: TokenExpired) -> Outcome | None:
        if self.refreshed:
            return self._refused_after_refresh()
        self.refreshed = True
        if self.reconciling:  # the read that checks what happened needs the fresh token: ask again
            self.metadata["reconcile_first"] = True
        try:
            self.account = oauth.refresh_account(self.rt, self.account["id"], force=True)
        except Reauthorize as again:
            return self._reconnect(again)
        except PlatformError as again:
            return self._transient(Transient(again.message, platform=again.platform))
        return None

    def _wait_for_limit(self, exc: RateLimited) -> Outcome:
        if self.reconciling:  # the platform cannot be asked right now: ask later, still sending nothing
            self.metadata["reconcile_first"] = True
        return self.release(_after(exc.retry_after), reason="rate_limit", metadata=self.metadata, note=exc.message)

    def _settle(self, exc: UnknownOutcome) -> Outcome | None:
        if self.reconciling:  # the platform could not tell what happened
            return self.fail("unconfirmed", (
                f"We could not confirm whether {self.client.display_name} published this post. Check the account "
                f"on {self.client.display_name}; Retry checks again before anything is sent."), metadata=self.metadata)
        self.metadata["reconcile_first"] = True  # ask the platform before anything is sent again
        return None

    def _transient(self, exc: PlatformError) -> Outcome:
        metadata, client = self.metadata, self.client
        if self.reconciling:
            metadata["reconcile_first"] = True
        attempts = int(metadata.get("transient_attempts", 0)) + 1
        if attempts > len(TRANSIENT_DELAYS) and (metadata.get("reconcile_first")
                                                  or client.may_be_live(metadata.get("checkpoint"))):
            # the publishing call took effect: the post may be live, so it is not "failed"
            return self.fail("unconfirmed", (
                f"{client.display_name} may already have published this post, but it did not answer when we "
                f"asked how it went ({exc.message}). Check the account on {client.display_name}; Retry asks "
                f"{client.display_name} first and sends nothing again if the post is there."), metadata=metadata)
        if attempts > len(TRANSIENT_DELAYS):
            return self.fail(exc.code or "transient", f"{exc.message} It failed {attempts} times; press Retry to try "
                                                      f"again.", metadata=metadata)
        metadata["transient_attempts"] = attempts
        at = _after(TRANSIENT_DELAYS[attempts - 1] * random.uniform(0.8, 1.2))
        # not counted in retry_count: that counts the creator's retries (seed: retry while < 3)
        return self.release(at, reason="retry", metadata=metadata,
                            note=f"{exc.message} Retrying at {fmt(at)} UTC (attempt {attempts + 1}).")

    def _reconnect(self, exc: Reauthorize) -> Outcome:
        with self.rt.engine.begin() as conn:
            mark_needs_reconnect(conn, self.rt.tables, exc.message, account_id=self.account["id"])
        events.emit(self.rt, "account.needs_reconnect", self.post_id)
        return self.fail("account_needs_reconnect", exc.message, metadata=self.metadata)

    def _reject(self, exc: PlatformError) -> Outcome:
        return self.fail(exc.code, exc.message, metadata=self.metadata)

    def _refused_after_refresh(self) -> Outcome:
        """The platform refused a token this run had just refreshed. That is sometimes a passing
        glitch (a new token not yet known to every server), so the post waits and tries again
        before it gives up. While an earlier step's outcome is unknown the post may well be live:
        it keeps asking longer and, if it must stop, ends `unconfirmed` (Retry asks before it
        sends anything), never as a plain failure."""
        metadata, client = self.metadata, self.client
        if self.reconciling:
            metadata["reconcile_first"] = True
        unknown = bool(metadata.get("reconcile_first")) or client.may_be_live(metadata.get("checkpoint"))
        tries = int(metadata.get("auth_retries", 0)) + 1
        if tries < (AUTH_RETRIES_UNKNOWN if unknown else AUTH_RETRIES):
            metadata["auth_retries"] = tries
            at = _after(AUTH_RETRY_SECONDS * tries)
            return self.release(at, reason="retry", metadata=metadata, note=(
                f"{client.display_name} refused the freshly refreshed login; trying again at {fmt(at)} UTC."))
        metadata.pop("auth_retries", None)
        if unknown:
            return self.fail("unconfirmed", (
                f"We could not confirm whether {client.display_name} published this post: it kept refusing the "
                f"saved login while we checked. Reconnect the account, then Retry; Retry checks before anything "
                f"is sent."), metadata=metadata)
        return self.fail("token_rejected", f"{client.display_name} refused the saved login even after refreshing "
                                           f"it; connect the account again.", metadata=metadata)

    # -------------------------------------------------------------------------------- helpers
    def _quota_wait(self) -> datetime | None:
        post = self.post
        view = quota.usage(self.rt, post["social_account_id"], post["platform"], exclude_post=self.post_id)
        self.quota_room = None if view.limit is None else view.limit - view.used
        if view.used >= view.limit and view.next_slot_at is not None:
            return view.next_slot_at
        return None

    def _progress(self, metadata: dict):
        def report(sent: int, total: int) -> None:
            metadata["progress"] = {"sent": int(sent), "total": int(total),
                                    "percent": round(100.0 * sent / total, 1) if total else None}
            now = time.monotonic()
            if now - self._last_progress >= 2 or sent >= total:
                self._last_progress = now
                self.persist(metadata)

        return report


# What each platform error means for the post: (error class, metric label, handler). The first
# class the error is an instance of wins, so subclasses come before PlatformError.
ON_ERROR = (
    (TokenExpired, "token_expired", Driver._refresh_and_go_on),
    (RateLimited, "rate_limited", Driver._wait_for_limit),
    (UnknownOutcome, "unknown_outcome", Driver._settle),
    (Transient, "transient", Driver._transient),
    (Reauthorize, "reauthorize", Driver._reconnect),
    (PlatformError, "rejected", Driver._reject),
)

_FAILPOINT_HITS: dict[str, int] = {}


def failpoint(rt: Runtime, name: str) -> None:
    """Crash tests: `AURAREELS_FAILPOINT=after_step:3:/tmp/marker` kills this process (SIGKILL)
    the third time it passes `after_step`, once: the marker file records that it fired (jobs may
    run in forked children, which do not share a counter). Unset in production: one attribute read."""
    spec = rt.settings.failpoint
    if not spec:
        return
    target, _, rest = spec.partition(":")
    count, _, marker = rest.partition(":")
    if target != name or (marker and os.path.exists(marker)):
        return
    key = f"{name}:{os.getpid()}"
    _FAILPOINT_HITS[key] = _FAILPOINT_HITS.get(key, 0) + 1
    if _FAILPOINT_HITS[key] >= int(count or 1):
        if marker:
            with open(marker, "w") as handle:
                handle.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def _after(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=max(0.0, float(seconds)))


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


def _observe(outcome: str, platform: str | None) -> None:
    try:
        from bridge.metrics import POSTS_FINISHED

        POSTS_FINISHED.labels(platform=platform, outcome=outcome).inc()
    except Exception:
        pass


def _observe_call(platform: str | None, outcome: str) -> None:
    try:
        from bridge.metrics import PLATFORM_STEPS

        PLATFORM_STEPS.labels(platform=platform, outcome=outcome).inc()
    except Exception:
        pass
