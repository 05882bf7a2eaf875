"""The `/metrics` page: counters of this process plus gauges read from MySQL and Redis."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Gauge, generate_latest
from rq import Queue
from sqlalchemy import func, select

from bridge.queue import QUEUES
from bridge.runtime import Runtime


def render(rt: Runtime) -> tuple[bytes, str]:
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        rows = conn.execute(select(p.c.platform, p.c.status, func.count()).group_by(p.c.platform, p.c.status)).all()
    gauges = CollectorRegistry()
    posts = Gauge("aurareels_posts", "Posts by platform and status", ["platform", "status"], registry=gauges)
    for platform, status, count in rows:
        posts.labels(platform=platform, status=status).set(count)
    depth = Gauge("aurareels_queue_depth", "Jobs waiting per queue", ["queue"], registry=gauges)
    try:
        for name in QUEUES:
            depth.labels(queue=name).set(Queue(name, connection=rt.redis).count)
    except Exception:
        pass
    return generate_latest(REGISTRY) + generate_latest(gauges), CONTENT_TYPE_LATEST
