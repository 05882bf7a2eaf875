"""Health checks. Each check answers {"ok": bool, ...} and never raises."""
from __future__ import annotations

import time

from sqlalchemy import text

from bridge.runtime import Runtime


def _timed(fn) -> dict:
    started = time.perf_counter()
    try:
        detail = fn() or {}
        return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1), **detail}
    except Exception as exc:  # a health check reports failures, it does not raise them
        return {"ok": False, "error": type(exc).__name__}


def check_health(rt: Runtime) -> dict:
    checks = {
        "database": _timed(lambda: _db(rt)),
        "redis": _timed(lambda: _redis(rt)),
    }
    status = "ok" if all(c["ok"] for c in checks.values()) else "degraded"
    return {"status": status, "checks": checks}


def _db(rt: Runtime) -> dict:
    with rt.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"dialect": rt.engine.dialect.name}


def _redis(rt: Runtime) -> dict:
    rt.redis.ping()
    return {"embedded": rt.redis_is_embedded}
