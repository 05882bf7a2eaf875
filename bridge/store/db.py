"""Engine creation. Every MySQL session runs in UTC so that stored DATETIMEs are UTC, and reads
committed data (READ COMMITTED): an UPDATE that scans an index then holds locks only on the rows
it changes, so one worker's claim of a burst never waits for another's, whatever index the
optimizer picks from statistics that lag behind a burst."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, create_engine, event


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine

    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 1800)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("isolation_level", "READ COMMITTED")
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("connect_timeout", 5)
    connect_args.setdefault("charset", "utf8mb4")
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _mysql_utc(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.close()

    return engine


def utcnow() -> datetime:
    """Naive UTC now, to the second: the form stored in the WordPress DATETIME columns."""
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
