"""`aurareels-bridge worker`: RQ worker(s) with RQ's scheduler.

The engine issue adds the sweeper and the periodic jobs here. In the embedded run (`up`) the
worker is a SimpleWorker: the in-process Redis stand-in cannot be shared with forked children.
"""
from __future__ import annotations

import logging

from rq import Queue, SimpleWorker, Worker

from bridge.runtime import Runtime

log = logging.getLogger(__name__)

QUEUES = ("publish", "default")


def queues(rt: Runtime) -> list[Queue]:
    return [Queue(name, connection=rt.redis) for name in QUEUES]


def run_worker(rt: Runtime, *, burst: bool = False, embedded: bool = False) -> int:
    worker_cls = SimpleWorker if (embedded or rt.redis_is_embedded) else Worker
    worker = worker_cls(queues(rt), connection=rt.redis)
    log.info("worker %s starting on queues %s", worker.name, ",".join(QUEUES))
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    return 0
