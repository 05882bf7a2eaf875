"""Reliability run 4: posts scheduled across daylight-saving changes go out at the right instant.

A daylight-saving change cannot be waited for, so the run makes one: a zone compiled with `zic`
whose clocks spring forward one minute about a minute from now and fall back two minutes later.
AURAREELS_TIMEZONE names it; posts are scheduled through the API with naive wall times (before,
inside and after the gap; the ambiguous minute; after) and ISO instants with `Z` or an offset,
to all six platforms; real workers publish them. Each must go out at its UTC instant: never early,
and late only by the platform's own processing. (America/New_York's 2026 changes are checked
without waiting in tests/test_time_dst.py.)
"""
from __future__ import annotations

import calendar
import json
import shutil
import subprocess
import time
import zoneinfo
from datetime import datetime, timezone

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from tests.conftest import make_jwt
from tests.reliability.conftest import assert_no_secret_in
from tests.reliability.harness import P, TAG, Storm, StormPlan, tag

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]

SHIFT = 60  # seconds the clocks move
# Meta's clients poll processing every 30 s; the others finish within seconds.
TOLERANCE = {"instagram": 45.0, "facebook": 45.0}
DEFAULT_TOLERANCE = 20.0


def _until(epoch: int) -> str:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return f"{moment.year} {moment.strftime('%b')} {moment.day} {moment.strftime('%H:%M:%S')}u"


def compile_zone(directory, name: str, spring: int, fall: int) -> None:
    source = directory / "storm.zone"
    source.write_text(f"Zone {name} 0:00 - STD {_until(spring)}\n"
                      f"\t\t0:00 0:{SHIFT // 60:02d} DST {_until(fall)}\n"
                      f"\t\t0:00 - STD\n")
    subprocess.run(["zic", "-d", str(directory / "zoneinfo"), str(source)], check=True)


def wall(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def cases(spring: int, fall: int) -> list[tuple[str, str, int]]:
    """(label, what the request sends, the UTC instant it means). Wall time is UTC+0 before the
    spring change and after the fall one, UTC+0:01 between them."""
    iso = lambda epoch, offset: datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + offset
    return [
        ("naive, before the gap", wall(spring - 20), spring - 20),
        ("naive, inside the gap (lands after it)", wall(spring + 20), spring + 20),
        ("naive, summer time", wall(spring + SHIFT + 40), spring + 40),
        ("ISO Z, summer time", iso(spring + 50, "Z"), spring + 50),
        ("naive, ambiguous (first occurrence)", wall(fall + 20), fall + 20 - SHIFT),
        ("ISO offset, ambiguous second occurrence", iso(fall + 20, "+00:00"), fall + 20),
        ("ISO offset, ambiguous first occurrence", iso(fall + 20, "+00:01"), fall + 20 - SHIFT),
        ("naive, after the change", wall(fall + SHIFT + 20), fall + SHIFT + 20),
    ]


@pytest.mark.skipif(not shutil.which("zic"), reason="zic (the time zone compiler) is needed")
def test_posts_across_dst_changes_go_out_at_the_right_instant(own_redis, own_mariadb, secret_watch, tmp_path):
    now = int(time.time())
    spring = now + 75
    fall = spring + 120
    name = f"Storm/Shift{now}"
    compile_zone(tmp_path, name, spring, fall)
    saved = zoneinfo.TZPATH
    zoneinfo.reset_tzpath(to=[str(tmp_path / "zoneinfo"), *saved])
    import os

    tzpath = os.pathsep.join([str(tmp_path / "zoneinfo"), *saved])
    storm = Storm(StormPlan(name="time", posts=0, accounts=6, fault_rate=0.0, kill_every=None, workers=2,
                            timezone=name, window=0, lead=0, extra_env={"PYTHONTZPATH": tzpath}),
                  own_redis, own_mariadb)
    try:
        storm.setup()
        by_user = storm.connect_accounts()
        storm.fleet.start_all()
        expected: dict[tuple[str, int], tuple[str, str, int]] = {}
        client = storm.client()
        for n, (label, raw, instant) in enumerate(cases(spring, fall)):
            for user, accounts in by_user.items():
                video = f"storm-{storm.run_id}-job-{user}-{n}"
                from sqlalchemy import insert

                with storm.rt.engine.begin() as conn:
                    conn.execute(insert(storm.rt.tables.videos).values(
                        job_id=video, wp_user_id=user, mp4_url="https://media.sandbox.aurareels.test/videos/t.mp4"
                                                               "?size=200000&duration=12"))
                answer = client.post(f"{P}/schedule", headers={"Authorization": f"Bearer {make_jwt(user)}"}, json={
                    "video_job_id": video, "accounts": accounts, "caption": f"Storm post {tag(storm.run_id, n)}",
                    "privacy_level": "PUBLIC", "scheduled_at": raw})
                assert answer.status_code == 200, (label, answer.get_data(as_text=True))
                for post in answer.get_json()["posts"]:
                    assert post["scheduled_at"] == wall(instant), (label, raw, post["scheduled_at"], wall(instant))
                    expected[(post["platform"], n)] = (label, raw, instant)
        registry = ScheduledJobRegistry("publish", connection=storm.rt.redis)
        p = storm.rt.tables.posts
        with storm.rt.engine.connect() as conn:
            rows = conn.execute(select(p.c.id, p.c.platform, p.c.caption, p.c.scheduled_at)).all()
        for row in rows:
            n = int(TAG.search(row.caption).group(2))
            armed = registry.get_scheduled_time(f"wake-{row.id}")
            # the wake-up runs early to prepare; the post goes out at the instant (checked below)
            assert calendar.timegm(armed.utctimetuple()) == expected[(row.platform, n)][2] - storm.rt.settings.prearm_seconds, row
        deadline = fall + SHIFT + 20 + 240
        while time.time() < deadline:
            counts = storm.status_counts()
            if counts and all(status in ("published", "failed", "cancelled") for status in counts):
                break
            time.sleep(2)
        result = storm.report()
    finally:
        storm.fleet.stop()
        zoneinfo.reset_tzpath(to=saved)
    try:
        assert_no_secret_in(storm.worker_logs(), secret_watch)
    finally:
        storm.close()

    outcomes = []
    for name_ in [k for k in result["per_platform"]]:
        emulator = storm.sandbox.emulator(name_)
        for record in emulator.published:
            text = " ".join(str(record.get(k) or "") for k in ("caption", "text", "title"))
            match = TAG.search(text)
            if match and match.group(1) == storm.run_id:
                label, raw, instant = expected[(name_, int(match.group(2)))]
                outcomes.append({"platform": name_, "case": label, "sent": raw, "due_utc": wall(instant),
                                 "lateness": round(float(record["created_at"]) - instant, 1)})
    result["time_cases"] = outcomes
    result["zone"] = {"name": "synthetic zone (zic)", "spring_forward_utc": wall(spring), "fall_back_utc": wall(fall),
                      "shift_seconds": SHIFT}
    (storm.dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    assert result["totals"]["published"] == result["totals"]["posts"] == len(expected), result["per_platform"]
    assert len(outcomes) == len(expected)  # each once
    for outcome in outcomes:
        tolerance = TOLERANCE.get(outcome["platform"], DEFAULT_TOLERANCE)
        assert -1.0 <= outcome["lateness"] <= tolerance, outcome
