"""The process-wide parts every layer shares: settings, database engine, tables, vault, Redis.

Built once per process (`Runtime.from_settings`) and handed to the app, the CLI and the jobs, so
no module reaches for globals or the environment on its own.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import redis as redis_lib
from sqlalchemy import Engine

from bridge.config import Settings
from bridge.crypto import TokenVault
from bridge.store.db import make_engine
from bridge.store.tables import Tables, tables_for

_embedded_redis_lock = threading.Lock()
_embedded_redis_server = None


def embedded_redis_server():
    """One in-process Redis stand-in shared by every thread of the all-in-one `up` run."""
    global _embedded_redis_server
    with _embedded_redis_lock:
        if _embedded_redis_server is None:
            import fakeredis

            _embedded_redis_server = fakeredis.FakeServer()
        return _embedded_redis_server


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    tables: Tables
    vault: TokenVault
    _redis: redis_lib.Redis | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine | None = None) -> "Runtime":
        return cls(
            settings=settings,
            engine=engine or make_engine(settings.database_url),
            tables=tables_for(settings.table_prefix),
            vault=TokenVault.from_settings(settings),
        )

    @property
    def redis(self) -> redis_lib.Redis:
        """Redis for RQ, locks and quotas. Without a URL the embedded stand-in serves (the `up` run)."""
        if self._redis is None:
            if self.settings.redis_url:
                self._redis = redis_lib.Redis.from_url(
                    self.settings.redis_url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30
                )
            else:
                import fakeredis

                self._redis = fakeredis.FakeRedis(server=embedded_redis_server())
        return self._redis

    @property
    def redis_is_embedded(self) -> bool:
        return not self.settings.redis_url
