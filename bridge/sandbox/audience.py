"""The emulated audience: how a published post's counts grow with the sandbox clock.

Real metrics change between two reads a day apart; counts that stood still could not show a sync
over simulated days. Each post gets a deterministic audience from its id (a ceiling of views
between a few hundred and some tens of thousands, and its own rates of reach, likes, comments,
shares and saves), revealed as whole hours of its age pass, with a half-life of a day: most of it
arrives in the first week, as with real posts. Nothing arrives in the first hour, so a test that
sets counts (each emulator's `set_metrics`, `engage`, `set_statistics` add to these) and reads them
at once reads exactly what it set.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

HALF_LIFE_HOURS = 24.0


@dataclass(frozen=True)
class Audience:
    views: int = 0
    reach: int = 0
    likes: int = 0
    comments: int = 0
    shares: int = 0
    saves: int = 0


def organic(post_id: str, age_seconds: float) -> Audience:
    """The counts a post of this id has gathered at this age. Never decreases with age."""
    hours = int(max(0.0, float(age_seconds)) // 3600)
    if hours == 0:
        return Audience()
    digest = hashlib.sha256(str(post_id).encode()).digest()

    def unit(i: int) -> float:
        return int.from_bytes(digest[2 * i:2 * i + 2], "big") / 65535

    ceiling = 300 + int(30_000 * unit(0) ** 2)
    views = int(ceiling * (1 - 0.5 ** (hours / HALF_LIFE_HOURS)))
    return Audience(
        views=views,
        reach=int(views * (0.55 + 0.35 * unit(1))),
        likes=int(views * (0.02 + 0.08 * unit(2))),
        comments=int(views * (0.002 + 0.01 * unit(3))),
        shares=int(views * (0.001 + 0.01 * unit(4))),
        saves=int(views * (0.002 + 0.02 * unit(5))),
    )
