"""Benchmark (4): the bridge's Redis wiped shortly before posts are due.

`--posts` posts due at one instant; 40 s before it the bridge's Redis database is wiped (FLUSHDB:
every wake-up, job and lock gone). Lateness of each publishing call after `scheduled_at`, and
posts published twice. Target: every post <= 2 s late, exactly once.

    .venv/bin/python -m bench.wipe [--posts 200] [--wipe-before 40] [--workers 2] [--worker-args '...']
"""
from __future__ import annotations

import argparse
import sys

from bench.common import add_run_options, apply_prearm, describe_workers, due_run, say

TARGET_LATE = 2.0


def run(args) -> dict:
    say(f"(4) Redis wiped {args.wipe_before:g} s before {args.posts} posts are due")
    r = due_run(posts=args.posts, latency=args.latency, workers=args.workers, worker_args=args.worker_args,
                call_timeout=args.timeout, publish_timeout=args.timeout, lead=args.lead, profile=args.profile,
                platform_cap=args.platform_cap, quiet_wait=args.quiet_wait, wipe_before=args.wipe_before)
    s = r["summary"]
    if s is None:
        say("  no publishing call seen")
        return {**r, "row": ("(4) Redis wiped 40 s before due", f"<= {TARGET_LATE:g} s late, once", "no call seen",
                             False)}
    published = r["statuses"].get("published", 0)
    say(f"  publishing calls: {r['called']}/{args.posts}{'' if r['complete'] else ' INCOMPLETE'}; statuses: "
        f"{r['statuses']}; lateness p50 {s['p50']:.2f} s, p99 {s['p99']:.2f} s, max {s['max']:.2f} s, min "
        f"{s['min']:.2f} s; early {r['early']}; published twice {r['published_twice']}")
    met = (r["complete"] and s["max"] <= TARGET_LATE and r["early"] == 0 and r["published_twice"] == 0
           and published == args.posts)
    measured = (f"max {s['max']:.2f} s late (p50 {s['p50']:.2f} s), {published:,} of {args.posts:,} published, "
                f"twice {r['published_twice']}, early {r['early']}")
    say(f"SUMMARY (4): Redis wiped {args.wipe_before:g} s before {args.posts:,} posts were due "
        f"({describe_workers(args.workers, args.worker_args)}): {measured} "
        f"(target <= {TARGET_LATE:g} s late, exactly once: {'met' if met else 'NOT met'})")
    return {**r, "row": (f"(4) Redis wiped {args.wipe_before:g} s before {args.posts:,} posts are due",
                         f"<= {TARGET_LATE:g} s late, exactly once", measured, met)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.wipe", description=__doc__.split("\n\n")[0])
    add_run_options(parser, posts=200, latency=0.0, timeout=180.0, timeout_help="give up after this many seconds")
    parser.add_argument("--wipe-before", type=float, default=40.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    apply_prearm(args)
    say(f"command: python -m bench.wipe {' '.join(sys.argv[1:] if argv is None else argv)}")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
