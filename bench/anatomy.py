"""Benchmark (5), the anatomy of a pre-armed post: what each one costs the bridge before its due
instant (the wake-up's preparation: rows, token, quota, media probe, TikTok's creator_info read)
and from the instant on (the claim, the publishing call, the upload and status steps), measured in
this process.

Prepares `--posts` TikTok posts due a few seconds ahead with the engine's own `prepare` (as a
threaded worker's wake-up does), then lets the engine's dispatcher claim them at their instant and
run them on a pool of threads, and counts per post and per phase: CPU time (this process, which
also serves the sandbox), SQL statements by kind, connection checkouts, Redis commands and platform
calls by path. It also checks that no call that changes anything reached TikTok before the instant.

    .venv/bin/python -m bench.anatomy [--posts 200] [--threads 16]
"""
from __future__ import annotations

import argparse
import collections
import sys
import time

from sqlalchemy import event

from bench.common import PUBLISH_CALL, READ_CALL, Bench, due_at, say


class Counters:
    def __init__(self, bench: Bench):
        self.bench = bench
        self.statements: collections.Counter = collections.Counter()
        self.checkouts = 0
        engine = bench.rt.engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "checkout", self._checkout)

    def _statement(self, conn, cursor, statement, parameters, context, executemany):
        self.statements[statement.split(None, 1)[0].upper()] += 1

    def _commit(self, conn):
        self.statements["COMMIT"] += 1

    def _checkout(self, dbapi_connection, record, proxy):
        self.checkouts += 1

    def start(self) -> None:
        self.statements.clear()
        self.checkouts = 0
        self.logged = len(self.bench.sandbox.log)
        self.redis = int(self.bench.redis.info("stats")["total_commands_processed"])
        self.cpu = time.process_time()

    def report(self, label: str, n: int) -> dict:
        cpu = time.process_time() - self.cpu
        redis = int(self.bench.redis.info("stats")["total_commands_processed"]) - self.redis - 1
        calls = collections.Counter(f"{e['method']} {e['path']}" for e in list(self.bench.sandbox.log)[self.logged:])
        say(f"{label}: {1000 * cpu / n:.1f} ms CPU per post (engine, HTTP client and the sandbox server)")
        say(f"  SQL statements {sum(self.statements.values()) / n:.1f}: "
            + ", ".join(f"{k} {v / n:.1f}" for k, v in self.statements.most_common()))
        say(f"  connection checkouts {self.checkouts / n:.1f}; Redis commands {redis / n:.1f} (server-wide)")
        say(f"  platform calls {sum(calls.values()) / n:.1f}: "
            + ", ".join(f"{k} {v / n:.1f}" for k, v in calls.items()))
        return {"cpu_ms": 1000 * cpu / n, "statements": sum(self.statements.values()) / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.anatomy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16, help="pool threads that run the posts at the instant")
    args = parser.parse_args(argv)
    say(f"command: python -m bench.anatomy {' '.join(sys.argv[1:] if argv is None else argv)}")
    run(args)
    return 0


def run(args) -> dict:
    from bridge import jobs
    from bridge.engine.dispatch import dispatcher
    from bridge.engine.prearm import prepare
    from bridge.timefmt import iso_z
    from bridge.worker import PriorityPool

    say(f"(5) anatomy: {args.posts} pre-armed TikTok posts, prepared before their time and sent at it")
    with Bench(workers=0) as bench:
        rt = bench.rt
        jobs.set_runtime(rt)
        counters = Counters(bench)
        accounts = bench.accounts(args.posts)
        when, due = due_at(10.0 + args.posts * 0.06)
        post_ids = bench.posts(accounts, when)
        pool = PriorityPool(args.threads, name="anatomy")
        dispatcher.attach(pool)
        try:
            counters.start()
            outcomes = collections.Counter(prepare(rt, post_id, when, iso_z(when)) for post_id in post_ids)
            before = counters.report(f"before the due instant ({dict(outcomes)})", args.posts)
            if time.time() >= due:
                say("  WARNING: preparing ended after the due time; the split below is not clean")
            while time.time() < due:
                time.sleep(0.005)
            counters.start()
            deadline = time.monotonic() + 120
            while bench.statuses().get("published", 0) < args.posts and time.monotonic() < deadline:
                time.sleep(0.05)
            after = counters.report(f"from the due instant until published ({bench.statuses()})", args.posts)
        finally:
            dispatcher.hand_back()
            pool.shutdown(wait=True)
        log = bench.sandbox.requests("tiktok")
        early = sum(1 for e in log if e["path"] == PUBLISH_CALL and e["at"] < due)
        reads = sum(1 for e in log if e["path"] == READ_CALL and e["at"] < due)
        twice = bench.published_twice()
    say(f"  before the instant: {reads} creator_info reads; publishing calls before it: {early}; published twice: "
        f"{twice}")
    measured = (f"{before['cpu_ms']:.1f} ms CPU and {before['statements']:.1f} SQL statements per post before the "
                f"instant, {after['cpu_ms']:.1f} ms and {after['statements']:.1f} from it until published; "
                f"early {early}, twice {twice}")
    say(f"SUMMARY (5): {measured}")
    return {"row": ("(5) CPU per post before / after the due instant (one process, sandbox included)",
                    "none early, none twice", measured, early == 0 and twice == 0)}


if __name__ == "__main__":
    sys.exit(main())
