"""All the benchmarks in one run, each reported beside its limit (`scripts/bench`):

(2) 1,000 posts due in the same second: p99 <= 2 s from scheduled_at to the publishing call;
(3) 10,000 due at once, every platform answer after 250 ms: the last publishing call <= 60 s after
    the due time, with RQ's own no-op jobs/s on the same workers beside it;
(4) the bridge's Redis wiped 40 s before posts are due: <= 2 s late, exactly once;
(5) none early, none twice, in all of them; CPU per post before and after the due instant.

Two default workers (`aurareels-bridge worker`, no options) unless `--worker-args` says otherwise.

    .venv/bin/python -m bench [--quiet-wait 120] [--worker-args '...']
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

from bench import anatomy, lateness, throughput, wipe
from bench.common import describe_workers, say


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-args", default="")
    parser.add_argument("--quiet-wait", type=float, default=0.0, metavar="SECONDS",
                        help="before each run, wait up to this long for the machine to be mostly idle")
    args = parser.parse_args(argv)
    began = time.time()
    say(f"command: python -m bench {' '.join(sys.argv[1:] if argv is None else argv)}; started "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    common = dict(workers=args.workers, worker_args=args.worker_args, quiet_wait=args.quiet_wait, lead=None,
                  profile=None, platform_cap=None, prearm=None)
    rows = [
        lateness.run(argparse.Namespace(**common, posts=1000, latency=0.0, timeout=180.0))["row"],
        throughput.run(argparse.Namespace(**common, posts=10_000, latency=0.25, timeout=300.0, only=None,
                                          noop_jobs=10_000))["row"],
        wipe.run(argparse.Namespace(**common, posts=200, latency=0.0, timeout=180.0, wipe_before=40.0))["row"],
        anatomy.run(argparse.Namespace(posts=200, threads=16))["row"],
    ]
    say("")
    say(f"| benchmark ({describe_workers(args.workers, args.worker_args)}) | limit | measured | met |")
    say("|---|---|---|---|")
    for row in rows:
        if row is not None:
            name, limit, measured, met = row
            say(f"| {name} | {limit} | {measured} | {'yes' if met else 'NO'} |")
    say(f"(all runs: {(time.time() - began) / 60:.0f} min; load average at the end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
