"""Benchmark (3): a large burst of due posts against slow platforms, beside RQ's own ceiling.

10,000 posts due at once, every sandbox answer held 250 ms: time from the due instant until the
last post's publishing call (TikTok's `video/init`). Target: <= 60 s on 2 cores. Beside it, RQ's
own no-op job throughput with the same worker command and options (the ceiling any rate of jobs
is under; pre-armed posts make their publishing call without a job of their own at the instant).

    .venv/bin/python -m bench.throughput [--only burst|noop] [--posts 10000] [--latency 0.25]
                                         [--workers 2] [--worker-args '...'] [--noop-jobs 10000]
"""
from __future__ import annotations

import argparse
import sys

from bench.common import add_run_options, apply_prearm, describe_workers, due_run, noop_run, report_cpu, say

TARGET_SECONDS = 60.0


def run_burst(args) -> dict:
    say(f"(3) burst: {args.posts} posts due at once, every platform answer after {args.latency * 1000:.0f} ms")
    r = due_run(posts=args.posts, latency=args.latency, workers=args.workers, worker_args=args.worker_args,
                call_timeout=args.timeout, publish_timeout=args.timeout, lead=args.lead, profile=args.profile,
                platform_cap=args.platform_cap, quiet_wait=args.quiet_wait)
    if r["profiles"]:
        say(f"  worker samples (GIL holder, raw stacks; python -m bench.profile FILES): {' '.join(r['profiles'])}")
    s = r["summary"]
    if s is None:
        say("  no publishing call seen")
        return r
    say(f"  publishing calls: {r['called']}/{args.posts}{'' if r['complete'] else ' INCOMPLETE (timed out)'}; "
        f"statuses at the end: {r['statuses']}")
    say(f"  after the due instant: last publishing call at {s['max']:.1f} s (p50 {s['p50']:.1f} s, p99 "
        f"{s['p99']:.1f} s, first {s['min']:.2f} s); {r['called'] / max(s['max'], 1e-9):.0f} posts/s; early "
        f"{r['early']}, published twice {r['published_twice']}")
    if r["published"]:
        say(f"  all {args.posts} published {r['cpu_all']['wall']:.1f} s after the due instant")
    report_cpu(f"from the hand-over to the due instant ({r['lead']:.0f} s lead, pre-arming)", r["cpu_before_due"],
               args.posts)
    report_cpu("from the due instant to the last publishing call", r["cpu_calls"], args.posts, r["counts_calls"])
    return r


def run_noop(args) -> dict:
    r = noop_run(jobs=args.noop_jobs, workers=args.workers, worker_args=args.worker_args, timeout=args.timeout,
                 quiet_wait=args.quiet_wait)
    say(f"(3) RQ no-op ceiling, {describe_workers(args.workers, args.worker_args)}: {r['jobs'] - r['left']}/"
        f"{r['jobs']} jobs in {r['seconds']:.1f} s = {r['rate']:.0f} jobs/s with worker start-up, "
        f"{r['drain_rate']:.0f} jobs/s first job to last ({r['drain_seconds']:.1f} s)"
        f"{'' if r['done'] else ' INCOMPLETE'}; "
        f"machine {100 * r['busy_before']:.0f}% busy before")
    report_cpu("", r["cpu"], r["jobs"], unit="job")
    return r


def run(args) -> dict:
    burst = run_burst(args) if args.only != "noop" else None
    noop = run_noop(args) if args.only != "burst" else None
    mode = describe_workers(args.workers, args.worker_args)
    row = None
    if burst is not None and burst["summary"] is not None:
        s = burst["summary"]
        met = burst["complete"] and s["max"] <= TARGET_SECONDS and burst["early"] == 0 and burst["published_twice"] == 0
        rate = burst["called"] / max(s["max"], 1e-9)
        ceiling = f"; RQ no-op jobs on the same workers {noop['drain_rate']:.0f} jobs/s" if noop else ""
        measured = (f"last publishing call {s['max']:.1f} s after the due time (p50 {s['p50']:.1f} s), "
                    f"{burst['called']:,} of {args.posts:,} called, {rate:.0f} posts/s{ceiling}; early "
                    f"{burst['early']}, twice {burst['published_twice']}")
        say(f"SUMMARY (3): {args.posts:,} posts due at once, platform answers after {args.latency * 1000:.0f} ms "
            f"({mode}, scheduled {burst['lead']:.0f} s ahead, pre-armed {burst['prearm']:g} s early): {measured} "
            f"(target <= {TARGET_SECONDS:g} s: {'met' if met else 'NOT met'})")
        row = (f"(3) {args.posts:,} due at once, answers after {args.latency * 1000:.0f} ms: due time -> last "
               f"publishing call", f"<= {TARGET_SECONDS:g} s", measured, met)
    elif noop is not None:
        say(f"SUMMARY (3, ceiling): RQ no-op jobs {noop['drain_rate']:.0f} jobs/s ({mode})")
    return {"burst": burst, "noop": noop, "row": row}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("burst", "noop"), help="run only the burst or only RQ's no-op ceiling")
    add_run_options(parser, posts=10_000, latency=0.25, timeout=300.0, timeout_help="give up after this many seconds")
    parser.add_argument("--noop-jobs", type=int, default=10_000)
    args = parser.parse_args(argv)
    apply_prearm(args)
    say(f"command: python -m bench.throughput {' '.join(sys.argv[1:] if argv is None else argv)}")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
