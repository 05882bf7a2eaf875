"""Prometheus metrics (served at `/metrics`)."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

POSTS_FINISHED = Counter("aurareels_posts_finished_total", "Posts that reached a final state", ["platform", "outcome"])
PLATFORM_STEPS = Counter("aurareels_platform_steps_total", "Publishing steps by outcome", ["platform", "outcome"])
TOKEN_REFRESHES = Counter("aurareels_token_refreshes_total", "Token refreshes that called the platform", ["platform"])
LATENESS = Histogram("aurareels_publish_lateness_seconds", "From scheduled_at to the claim of the post",
                     buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600))
