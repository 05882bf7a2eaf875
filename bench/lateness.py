"""Benchmark (a): posts due in the same second, sandbox platforms answering at once.

Lateness of each post = time of its first platform call (TikTok's `creator_info`, the first step of
a publish run, as the sandbox logged it) minus its `scheduled_at`. Prints p50/p99/max, totals and
a one-line summary. Target: p99 <= 2 s for 1,000 posts.

    .venv/bin/python -m bench.lateness [--posts 1000] [--workers 2] [--concurrency 100]
"""
from __future__ import annotations

import argparse
import sys

from bench.common import add_run_options, apply_prearm, due_run, report_cpu, say

TARGET_P99 = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.lateness", description=__doc__.split("\n\n")[0])
    add_run_options(parser, posts=1000, latency=0.0, concurrency=100, timeout=180.0,
                    timeout_help="give up waiting for first calls after this")
    args = parser.parse_args(argv)
    apply_prearm(args)

    say(f"(a) lateness: {args.posts} posts due in the same second; command: "
        f"python -m bench.lateness {' '.join(sys.argv[1:] if argv is None else argv)}")
    r = due_run(posts=args.posts, latency=args.latency, workers=args.workers, concurrency=args.concurrency,
                first_timeout=args.timeout, publish_timeout=args.timeout, lead=args.lead,
                profile=args.profile, platform_cap=args.platform_cap, quiet_wait=args.quiet_wait)
    if r["profiles"]:
        say(f"  worker samples (GIL holder, raw stacks; python -m bench.profile FILES): {' '.join(r['profiles'])}")
    s = r["summary"]
    if s is None:
        say("  no first call seen")
        return 1
    say(f"  first calls: {r['first_calls']}/{args.posts} ({r['first_calls_in_log']} creator_info calls in the log)"
        f"{'' if r['complete'] else ' INCOMPLETE'}; statuses: {r['statuses']}")
    say(f"  lateness scheduled_at -> first platform call: p50 {s['p50']:.2f} s, p99 {s['p99']:.2f} s, "
        f"max {s['max']:.2f} s, min {s['min']:.2f} s")
    report_cpu(f"from the hand-over to the due instant ({r['lead']:.0f} s lead, pre-arming)", r["cpu_before_due"],
               args.posts)
    report_cpu("until the last first call", r["cpu_first"], args.posts, r["counts_first"])
    report_cpu("until all published", r["cpu_all"], args.posts, r["counts_all"])
    met = r["complete"] and s["p99"] <= TARGET_P99
    mode = f"{args.workers} worker(s) x {args.concurrency} thread(s)" if args.concurrency > 1 else \
        f"{args.workers} forking worker(s)"
    say(f"SUMMARY (a): {args.posts:,} posts due in the same second (sandbox, {mode}, scheduled {r['lead']:.0f} s "
        f"ahead, pre-armed {r['prearm']:g} s early): first platform call p50 {s['p50']:.2f} s, p99 {s['p99']:.2f} s, "
        f"max {s['max']:.2f} s, min {s['min']:.2f} s after scheduled_at "
        f"(target p99 <= {TARGET_P99:g} s: {'met' if met else 'NOT met'}; early: {'none' if s['min'] >= 0 else 'YES'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
