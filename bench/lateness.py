"""Benchmark (2): posts due in the same second, sandbox platforms answering at once.

Lateness of each post = arrival of its publishing call (TikTok's `video/init`, as the sandbox
logged it) minus its `scheduled_at`. Prints p50/p99/max, calls made early, posts published twice,
and CPU per post before and after the due instant. Target: p99 <= 2 s for 1,000 posts.

    .venv/bin/python -m bench.lateness [--posts 1000] [--workers 2] [--worker-args '...']
"""
from __future__ import annotations

import argparse
import sys

from bench.common import add_run_options, apply_prearm, describe_workers, due_run, report_cpu, say

TARGET_P99 = 2.0


def run(args) -> dict:
    say(f"(2) lateness: {args.posts} posts due in the same second, platforms answering at once")
    r = due_run(posts=args.posts, latency=args.latency, workers=args.workers, worker_args=args.worker_args,
                call_timeout=args.timeout, publish_timeout=args.timeout, lead=args.lead, profile=args.profile,
                platform_cap=args.platform_cap, quiet_wait=args.quiet_wait)
    if r["profiles"]:
        say(f"  worker samples (GIL holder, raw stacks; python -m bench.profile FILES): {' '.join(r['profiles'])}")
    s = r["summary"]
    if s is None:
        say("  no publishing call seen")
        return {**r, "row": ("(2) 1,000 due in one second: p99 to the publishing call", f"<= {TARGET_P99:g} s",
                             "no call seen", False)}
    say(f"  publishing calls: {r['called']}/{args.posts}{'' if r['complete'] else ' INCOMPLETE'} "
        f"({r['calls_in_log']} in the log); reads before the due time: {r['reads_before_due']}; "
        f"statuses: {r['statuses']}")
    say(f"  lateness scheduled_at -> publishing call: p50 {s['p50']:.2f} s, p99 {s['p99']:.2f} s, "
        f"max {s['max']:.2f} s, min {s['min']:.2f} s; early: {r['early']}; published twice: {r['published_twice']}")
    report_cpu(f"from the hand-over to the due instant ({r['lead']:.0f} s lead, pre-arming)", r["cpu_before_due"],
               args.posts)
    report_cpu("from the due instant to the last publishing call", r["cpu_calls"], args.posts, r["counts_calls"])
    report_cpu("from the due instant until all published", r["cpu_all"], args.posts, r["counts_all"])
    met = r["complete"] and s["p99"] <= TARGET_P99 and r["early"] == 0 and r["published_twice"] == 0
    measured = (f"p50 {s['p50']:.2f} s, p99 {s['p99']:.2f} s, max {s['max']:.2f} s; {r['called']:,} of "
                f"{args.posts:,} called; early {r['early']}, twice {r['published_twice']}")
    say(f"SUMMARY (2): {args.posts:,} posts due in the same second "
        f"({describe_workers(args.workers, args.worker_args)}, scheduled {r['lead']:.0f} s ahead, pre-armed {r['prearm']:g} s early): {measured} "
        f"(target p99 <= {TARGET_P99:g} s: {'met' if met else 'NOT met'})")
    return {**r, "row": (f"(2) {args.posts:,} due in one second: scheduled_at -> publishing call",
                         f"p99 <= {TARGET_P99:g} s", measured, met)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.lateness", description=__doc__.split("\n\n")[0])
    add_run_options(parser, posts=1000, latency=0.0, timeout=180.0,
                    timeout_help="give up waiting for publishing calls after this")
    args = parser.parse_args(argv)
    apply_prearm(args)
    say(f"command: python -m bench.lateness {' '.join(sys.argv[1:] if argv is None else argv)}")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
