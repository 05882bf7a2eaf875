"""Benchmarks (b) and (c): a large burst of due posts against slow platforms, and RQ's ceiling.

(b) 10,000 posts due at once, every sandbox answer held 250 ms: time from the due instant until
    every post's first platform call (TikTok's `creator_info`). Target: <= 60 s on 2 cores.
(c) RQ's own no-op job throughput with the same worker command and options, printed beside (b)
    as the ceiling any publish rate is under (and the forking default for reference).

    .venv/bin/python -m bench.throughput [--only b|c] [--posts 10000] [--latency 0.25]
                                         [--workers 2] [--concurrency 150] [--noop-jobs 10000]
"""
from __future__ import annotations

import argparse
import sys

from bench.common import add_run_options, apply_prearm, due_run, noop_run, report_cpu, say

TARGET_SECONDS = 60.0


def run_b(args) -> dict:
    say(f"(b) throughput: {args.posts} posts due at once, every platform answer after "
        f"{args.latency * 1000:.0f} ms")
    r = due_run(posts=args.posts, latency=args.latency, workers=args.workers, concurrency=args.concurrency,
                first_timeout=args.timeout, publish_timeout=args.timeout, lead=args.lead,
                profile=args.profile, platform_cap=args.platform_cap, quiet_wait=args.quiet_wait)
    if r["profiles"]:
        say(f"  worker samples (GIL holder, raw stacks; python -m bench.profile FILES): {' '.join(r['profiles'])}")
    s = r["summary"]
    if s is None:
        say("  no first call seen")
        return r
    say(f"  first calls: {r['first_calls']}/{args.posts}{'' if r['complete'] else ' INCOMPLETE (timed out)'}; "
        f"statuses at the end: {r['statuses']}")
    say(f"  after the due instant: first call of every post by {s['max']:.1f} s (p50 {s['p50']:.1f} s, "
        f"p99 {s['p99']:.1f} s); {r['first_calls'] / max(s['max'], 1e-9):.0f} posts/s started")
    if r["published"]:
        say(f"  all {args.posts} published {r['cpu_all']['wall']:.1f} s after the due instant")
    report_cpu(f"from the hand-over to the due instant ({r['lead']:.0f} s lead, pre-arming)", r["cpu_before_due"],
               args.posts)
    report_cpu("until the last first call", r["cpu_first"], args.posts, r["counts_first"])
    return r


def run_c(args, label: str, concurrency: int) -> dict:
    r = noop_run(jobs=args.noop_jobs, workers=args.workers, concurrency=concurrency, timeout=args.timeout,
                 quiet_wait=args.quiet_wait)
    say(f"(c) RQ no-op ceiling, {label}: {r['jobs'] - r['left']}/{r['jobs']} jobs in {r['seconds']:.1f} s = "
        f"{r['rate']:.0f} jobs/s with worker start-up, {r['drain_rate']:.0f} jobs/s first job to last "
        f"({r['drain_seconds']:.1f} s){'' if r['done'] else ' INCOMPLETE'}; machine "
        f"{100 * r['busy_before']:.0f}% busy before")
    report_cpu("", r["cpu"], r["jobs"], unit="job")
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("b", "c"), help="run only (b) or only (c)")
    add_run_options(parser, posts=10_000, latency=0.25, concurrency=150, timeout=300.0,
                    timeout_help="give up after this many seconds")
    parser.add_argument("--noop-jobs", type=int, default=10_000)
    args = parser.parse_args(argv)
    apply_prearm(args)
    say(f"command: python -m bench.throughput {' '.join(sys.argv[1:] if argv is None else argv)}")

    b = run_b(args) if args.only != "c" else None
    mode = f"{args.workers} worker(s) x {args.concurrency} thread(s)" if args.concurrency > 1 else \
        f"{args.workers} forking worker(s)"
    c = run_c(args, mode, args.concurrency) if args.only != "b" else None
    forking = run_c(args, f"{args.workers} forking worker(s) (the default worker)", 1) \
        if args.only != "b" and args.concurrency > 1 else None

    if b is not None and b["summary"] is not None:
        s = b["summary"]
        met = b["complete"] and s["max"] <= TARGET_SECONDS
        ceiling = f"; RQ no-op ceiling {c['drain_rate']:.0f} jobs/s same workers" if c else ""
        if forking:
            ceiling += f", {forking['drain_rate']:.0f} jobs/s forking"
        say(f"SUMMARY (b): {args.posts:,} posts due at once, platform answers after {args.latency * 1000:.0f} ms "
            f"({mode}, 2 cores, scheduled {b['lead']:.0f} s ahead, pre-armed {b['prearm']:g} s early): every first "
            f"platform call within {s['max']:.1f} s (first {s['min']:.2f} s) "
            f"({'complete' if b['complete'] else 'INCOMPLETE'}; target <= {TARGET_SECONDS:g} s: "
            f"{'met' if met else 'NOT met'}){ceiling}")
    elif c is not None:
        say(f"SUMMARY (c): RQ no-op ceiling {c['drain_rate']:.0f} jobs/s ({mode})"
            + (f", {forking['drain_rate']:.0f} jobs/s forking" if forking else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
