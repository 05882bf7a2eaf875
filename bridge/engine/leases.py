"""Leases: which worker holds a post, in MySQL, and the one thread per process that renews them.

A post's own checkpoint writes renew its lease too; the keeper covers long steps (uploads) and
pre-armed posts waiting for their time. A lease that runs out (its worker died) frees the post:
the sweeper resumes it from its checkpoint.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

from bridge.runtime import Runtime
from bridge.store import posts as post_rows
from bridge.store.db import utcnow

log = logging.getLogger("bridge.engine")



def new_owner() -> str:
    """A lease owner unique to one run of one post (it fits `lease_owner`, 64 characters)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_until(rt: Runtime) -> datetime:
    return utcnow() + timedelta(seconds=rt.settings.lease_seconds)


class LeaseKeeper:
    """Renews the leases this process holds, with one thread and one UPDATE per round for all of
    them (a thread per post costs a thread start and a connection per post). A forked child starts
    with nothing held and a thread of its own."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[int, tuple[Runtime, str]] = {}
        self._pid = None
        self._every = 30.0

    def hold(self, rt: Runtime, post_id: int, owner: str) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._held, self._pid = {}, os.getpid()
                threading.Thread(target=self._run, name="leases", daemon=True).start()
            self._every = min(self._every, max(1.0, rt.settings.lease_seconds / 3))
            self._held[post_id] = (rt, owner)

    def drop(self, post_id: int, owner: str) -> None:
        with self._lock:
            if self._held.get(post_id, (None, None))[1] == owner:
                del self._held[post_id]

    @contextmanager
    def held(self, rt: Runtime, post_id: int, owner: str):
        self.hold(rt, post_id, owner)
        try:
            yield
        finally:
            self.drop(post_id, owner)

    def renew(self) -> int:
        """One round: every held lease runs `lease_seconds` from now. Returns rows renewed."""
        with self._lock:
            by_runtime: dict[int, tuple[Runtime, list[int], list[str]]] = {}
            for post_id, (rt, owner) in self._held.items():
                entry = by_runtime.setdefault(id(rt), (rt, [], []))
                entry[1].append(post_id)
                entry[2].append(owner)
        renewed = 0
        for rt, ids, owners in by_runtime.values():
            until = lease_until(rt)
            for i in range(0, len(ids), 500):
                try:
                    with rt.engine.begin() as conn:
                        renewed += post_rows.renew(conn, rt.tables, ids[i:i + 500], owners[i:i + 500], until)
                except Exception as exc:  # the next step's write finds out if a lease is gone
                    log.warning("lease renewal failed: %s", type(exc).__name__)
        return renewed

    def _run(self) -> None:
        pid = os.getpid()
        wake = threading.Event()
        while pid == os.getpid():
            wake.wait(self._every)
            if pid != os.getpid():
                return
            self.renew()


leases = LeaseKeeper()
