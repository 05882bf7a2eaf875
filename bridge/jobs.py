"""RQ entry points only. Each takes ids, builds nothing heavy, and calls a service."""
from __future__ import annotations

import threading

from bridge.runtime import Runtime

_lock = threading.Lock()
_runtime: Runtime | None = None


def set_runtime(rt: Runtime) -> None:
    """The worker process's runtime (set by `aurareels-bridge worker` / `up`)."""
    global _runtime
    _runtime = rt


def runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            from bridge.config import Settings

            _runtime = Runtime.from_settings(Settings.from_env())
        return _runtime


def publish_post(post_id: int) -> str:
    from bridge.engine import run_post

    return run_post(runtime(), post_id)


def wake_post(post_id: int, scheduled_at: str) -> str:
    """A scheduled wake-up: publishes only if the post is still scheduled for that time."""
    from bridge.engine import run_post

    return run_post(runtime(), post_id, expected_scheduled_at=scheduled_at)


def notify_n8n(post_id: int) -> str:
    from bridge.services.n8n import notify

    return notify(runtime(), post_id)


def deliver_event(event: str, post_id: int, event_id: str) -> int:
    from bridge.services.events import deliver

    return deliver(runtime(), event, post_id, event_id)


def noop() -> None:
    """For measuring RQ's own throughput."""
