"""Summarize raw stack samples of a worker (`--profile` of the benchmarks; one line per stack,
`frame;frame;... count`): the share of the sampled time per activity (RQ's own bookkeeping, the
engine's database calls, the HTTP client, ...) and the bridge source lines the samples were in.

    .venv/bin/python -m bench.profile FILE [FILE...]
"""
from __future__ import annotations

import collections
import re
import sys


def category(frames: list[str]) -> str:
    names = [f.split(" (")[0] for f in frames]
    runs = [n for n in ("Job.perform", "_first", "_resume") if n in names]
    if runs:
        inner = " ".join(frames[names.index(runs[0]) + 1:])
        if "logging/" in inner:
            sub = "logging"
        elif "sqlalchemy/" in inner or "pymysql/" in inner:
            sub = "database (SQLAlchemy + PyMySQL)"
        elif "httpx/" in inner or "httpcore/" in inner or "h11/" in inner:
            sub = "HTTP client (httpx)"
        elif "redis/" in inner or "rq/" in inner:
            sub = "Redis/RQ calls"
        elif "cryptography/" in inner or "crypto.py" in inner:
            sub = "token decryption"
        else:
            sub = "engine and client Python"
        return ("job: " if runs[0] == "Job.perform" else "pre-armed run: ") + sub
    for marker, label in (("BaseWorker.perform_job", "RQ: per-job bookkeeping"),
                          ("BaseWorker.prepare_execution", "RQ: prepare execution"),
                          ("dequeue_job_and_maintain_ttl", "RQ: dequeue and heartbeats"),
                          ("BaseWorker.work", "RQ: work loop"), ("LeaseKeeper._run", "lease renewal thread"),
                          ("Dispatcher._run", "dispatcher (claims at the instant)"),
                          ("Maintenance.run", "maintenance thread (sweeper, heartbeats)"),
                          ("PubSubWorkerThread.run", "RQ pubsub thread"), ("Timer.run", "job timeout timers")):
        if any(marker in n for n in names):
            return label
    return "other: " + (names[-1] if names else "?")


def main(paths: list[str]) -> int:
    total = 0
    by_category: collections.Counter = collections.Counter()
    by_line: collections.Counter = collections.Counter()
    for path in paths:
        with open(path) as handle:
            for line in handle:
                stack, _, count = line.rstrip().rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                total += n
                frames = stack.split(";")
                by_category[category(frames)] += n
                own = [f for f in frames if "(bridge/" in f or "/bridge/" in f]
                if own:
                    by_line[re.sub(r"\((.*/)?bridge/", "(bridge/", own[-1])] += n
    if not total:
        print("no samples")
        return 1
    print(f"{total} samples")
    for name, n in by_category.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("deepest bridge frame of each sample:")
    for name, n in by_line.most_common(25):
        print(f"  {100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
