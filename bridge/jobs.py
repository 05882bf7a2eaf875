"""RQ entry points only, named by their dotted path in `bridge.queue`. Each takes ids, builds
nothing heavy, and calls the engine or a service."""
from __future__ import annotations

import os
import threading

from bridge.config import Settings
from bridge.engine import run_post, wake
from bridge.engine.n8n import notify
from bridge.runtime import Runtime
from bridge.services.events import deliver

_lock = threading.Lock()
_runtime: Runtime | None = None
_runtime_pid: int | None = None


def set_runtime(rt: Runtime) -> None:
    """The worker process's runtime (set by `aurareels-bridge worker` / `up`)."""
    global _runtime, _runtime_pid
    _runtime, _runtime_pid = rt, os.getpid()


def runtime() -> Runtime:
    """The runtime for this process. A job runs in a child forked from the worker: the child must
    not use the database connections it inherited (the parent's threads use the same sockets),
    so it drops them without closing and opens its own."""
    global _runtime, _runtime_pid
    with _lock:
        if _runtime is None:
            _runtime, _runtime_pid = Runtime.from_settings(Settings.from_env()), os.getpid()
        elif _runtime_pid != os.getpid():
            _runtime.engine.dispose(close=False)
            _runtime_pid = os.getpid()
        return _runtime


def publish_post(post_id: int, platform: str | None = None) -> str:
    """The next step of a post (now, or a follow-up). `platform` is carried for the queue's
    dashboards; the engine reads the post's own."""
    return run_post(runtime(), post_id)


def wake_post(post_id: int, scheduled_at: str, platform: str | None = None) -> str:
    """A scheduled wake-up, on time or early (pre-armed): publishes only if the post is still
    scheduled for that time, and never before it."""
    return wake(runtime(), post_id, scheduled_at, platform)


def post_first_comment(post_id: int) -> str:
    """The first comment of a published post, once."""
    from bridge.services.first_comments import run

    return run(runtime(), post_id)


def notify_n8n(post_id: int) -> str:
    return notify(runtime(), post_id)


def deliver_event(event: str, post_id: int, event_id: str) -> int:
    return deliver(runtime(), event, post_id, event_id)


def noop() -> None:
    """For measuring RQ's own throughput."""
