"""Health checks. Each check answers {"ok": bool, ...} and never raises."""
from __future__ import annotations

import time

from sqlalchemy import text

from bridge.queue import HEARTBEAT_PREFIX, LAST_SWEEP, SCHEDULER_KEY
from bridge.runtime import Runtime


def _timed(fn) -> dict:
    started = time.perf_counter()
    try:
        detail = fn() or {}
        return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1), **detail}
    except Exception as exc:  # a health check reports failures, it does not raise them
        return {"ok": False, "error": type(exc).__name__}


def check_health(rt: Runtime) -> dict:
    checks = {"database": _timed(lambda: _db(rt)), "redis": _timed(lambda: _redis(rt))}
    if checks["redis"]["ok"]:
        checks["workers"] = _timed(lambda: _workers(rt))
        checks["scheduler"] = _timed(lambda: _scheduler(rt))
    else:  # heartbeats live in Redis: without it, nothing can be said of workers
        checks["workers"] = checks["scheduler"] = {"ok": False, "error": "redis unavailable"}
    status = "ok" if all(c["ok"] for c in checks.values()) else "degraded"
    return {"status": status, "checks": checks}


def _db(rt: Runtime) -> dict:
    with rt.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"dialect": rt.engine.dialect.name}


def _redis(rt: Runtime) -> dict:
    rt.redis.ping()
    return {"embedded": rt.redis_is_embedded}


def _workers(rt: Runtime) -> dict:
    alive = sum(1 for _ in rt.redis.scan_iter(match=HEARTBEAT_PREFIX + "*", count=100))
    if alive == 0:
        raise RuntimeError("no worker heartbeat")
    return {"alive": alive}


def _scheduler(rt: Runtime) -> dict:
    """A worker stamps SCHEDULER_KEY while its RQ scheduler runs; the sweeper stamps each sweep."""
    if not rt.redis.exists(SCHEDULER_KEY):
        raise RuntimeError("no scheduler")
    last = rt.redis.get(LAST_SWEEP)
    age = time.time() - float(last) if last else None
    if age is None or age > 3 * rt.settings.sweep_seconds + 10:
        raise RuntimeError("sweeper is late")
    return {"last_sweep_seconds_ago": round(age, 1)}
