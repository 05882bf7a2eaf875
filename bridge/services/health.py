"""Health checks. Each check answers {"ok": bool, ...} and never raises. All of them are cheap
(the endpoint is public and polled): a `SELECT 1`, a PING, one ZCOUNT, two key reads; never a scan
of Redis's keyspace or of a table."""
from __future__ import annotations

import time

from sqlalchemy import text

from bridge.queue import LAST_SWEEP, SCHEDULER_KEY
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
    # configuration warnings (an API version near its sunset) inform; they do not degrade health
    checks["platforms"] = _timed(lambda: _platforms(rt))
    return {"status": status, "checks": checks}


def _platforms(rt: Runtime) -> dict:
    """Each platform's own warnings about its configuration (no network, no secrets)."""
    from bridge.platforms.registry import client_classes

    warnings = [w for cls in client_classes().values() for w in cls(rt.settings).health_warnings()]
    return {"warnings": warnings}


def _db(rt: Runtime) -> dict:
    with rt.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"dialect": rt.engine.dialect.name}


def _redis(rt: Runtime) -> dict:
    rt.redis.ping()
    return {"embedded": rt.redis_is_embedded}


def _workers(rt: Runtime) -> dict:
    """Workers whose beat is fresh: one ZCOUNT on the beats set (never a scan of the keyspace);
    beats older than a day are dropped on the way."""
    from bridge.queue import BEATS_KEY, HEARTBEAT_TTL

    now = time.time()
    with rt.redis.pipeline(transaction=False) as pipe:
        pipe.zcount(BEATS_KEY, now - HEARTBEAT_TTL, "+inf")
        pipe.zremrangebyscore(BEATS_KEY, "-inf", now - 86400)
        alive = int(pipe.execute()[0])
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
