"""Best times to post, learned from the user's own published posts.

Method (the README says the same):

1. Take the user's posts published in the last 180 days that have synced figures (at most 2,000,
   newest first), optionally of one platform or account. Each post's engagement rate is
   (likes + comments + shares + saves) / views (reach where a platform reports no views).
2. Divide each rate by the median rate of that post's platform among these posts, so a platform
   whose audience engages more does not own every slot, and one viral post does not move the
   baseline: 1.0 is the user's usual on that platform.
3. Group the posts by the weekday and hour of their publication in the site's zone
   (`AURAREELS_TIMEZONE`). A slot's score is the mean of its relative rates shrunk toward a prior
   with the weight of PRIOR_WEIGHT posts: score = (sum + k * prior) / (n + k). The prior is 1.0,
   or 1.0 + DEFAULT_BONUS in the slots the platform's published defaults name, so a slot seen
   once or twice cannot outrank a well-sampled one by luck.
4. Slots with at least MIN_SLOT_POSTS posts are ranked by score (then by sample size) and the best
   five are answered with `basis: "own_posts"`. With fewer than MIN_POSTS usable posts, or no slot
   sampled enough, the answer is the platform's general defaults, `basis: "default"`.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from statistics import median

from bridge.errors import NotFound
from bridge.runtime import Runtime
from bridge.store import analytics as store
from bridge.store.db import utcnow

LOOKBACK = timedelta(days=180)
MAX_POSTS = 2000
MIN_POSTS = 10
MIN_SLOT_POSTS = 2
PRIOR_WEIGHT = 3.0
DEFAULT_BONUS = 0.1
SLOTS = 5

# General best times (weekday 0 = Monday, hour in the audience's local time, taken as the site's
# zone), the consensus of the yearly studies Sprout Social and Hootsuite publish (2024-2025):
# weekday mornings for Facebook, X and LinkedIn, late mornings for Instagram, afternoons for
# TikTok and YouTube. Best first.
DEFAULTS: dict[str, tuple[tuple[int, int], ...]] = {
    "tiktok": ((1, 16), (2, 17), (3, 16), (4, 17), (2, 14)),
    "instagram": ((1, 11), (2, 11), (3, 10), (1, 14), (4, 10)),
    "facebook": ((1, 9), (2, 9), (3, 9), (0, 9), (2, 12)),
    "youtube": ((4, 15), (3, 15), (2, 16), (5, 11), (6, 11)),
    "twitter": ((1, 9), (2, 9), (3, 9), (1, 12), (2, 12)),
    "linkedin": ((1, 8), (2, 8), (3, 9), (1, 10), (2, 12)),
}
GENERAL = ((1, 10), (2, 10), (3, 10), (1, 14), (2, 14))


def default_slots(platform: str | None) -> list[dict]:
    slots = DEFAULTS.get(platform or "", GENERAL)
    return [{"weekday": weekday, "hour": hour, "score": round(1.0 - 0.05 * rank, 3), "sample_size": 0}
            for rank, (weekday, hour) in enumerate(slots)]


def _prior(platform: str, weekday: int, hour: int) -> float:
    return 1.0 + DEFAULT_BONUS if (weekday, hour) in DEFAULTS.get(platform, ()) else 1.0


def rank_slots(samples: list[tuple[str, datetime, float]], zone) -> list[dict]:
    """Best slots of (platform, published_at naive UTC, engagement rate) samples; [] when no slot
    has enough posts."""
    by_platform: dict[str, list[float]] = defaultdict(list)
    for platform, _, rate in samples:
        by_platform[platform].append(rate)
    usual = {platform: median(rates) for platform, rates in by_platform.items()}
    slots: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for platform, published_at, rate in samples:
        local = published_at.replace(tzinfo=timezone.utc).astimezone(zone)
        relative = rate / usual[platform] if usual[platform] > 0 else 1.0
        slots[(local.weekday(), local.hour)].append((relative, _prior(platform, local.weekday(), local.hour)))
    ranked = []
    for (weekday, hour), values in slots.items():
        if len(values) < MIN_SLOT_POSTS:
            continue
        prior = sum(p for _, p in values) / len(values)
        score = (sum(r for r, _ in values) + PRIOR_WEIGHT * prior) / (len(values) + PRIOR_WEIGHT)
        ranked.append({"weekday": weekday, "hour": hour, "score": round(score, 3), "sample_size": len(values)})
    ranked.sort(key=lambda s: (-s["score"], -s["sample_size"], s["weekday"], s["hour"]))
    return ranked[:SLOTS]


def best_times(rt: Runtime, user_id: int, *, platform: str | None = None, account_id: int | None = None,
               now: datetime | None = None) -> dict:
    now = now or utcnow()
    t = rt.tables
    with rt.engine.connect() as conn:
        if account_id is not None:
            account = store.owned_account(conn, t, user_id, account_id)
            if account is None:
                raise NotFound("This account was not found.", code="account_not_found")
            platform = platform or account["platform"]
        rows = store.published_figures(conn, t, user_id, now - LOOKBACK, platform=platform, account_id=account_id,
                                       limit=MAX_POSTS)
    samples = [(platform, published_at, int(engaged) / int(seen))
               for published_at, platform, engaged, seen in rows if seen and published_at is not None]
    zone = rt.settings.tz
    slots = rank_slots(samples, zone) if len(samples) >= MIN_POSTS else []
    basis = "own_posts" if slots else "default"
    return {"success": True, "basis": basis, "platform": platform, "timezone": rt.settings.timezone,
            "posts_analyzed": len(samples), "slots": slots or default_slots(platform)}
