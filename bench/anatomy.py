"""The anatomy of one publish run: what each post costs the bridge, measured in this process.

Runs `engine.run_post` directly (no RQ, one post at a time) for `--posts` due posts against the
stand-alone sandbox, and counts per post: SQL statements by kind, connection checkouts (each one a
pre-ping, and a rollback when it is returned), Redis commands, platform calls by path, and CPU time
(this process, which also serves the sandbox). Use it to see what an engine change saves.

    .venv/bin/python -m bench.anatomy [--posts 200]
"""
from __future__ import annotations

import argparse
import collections
import sys
import time

from sqlalchemy import event

from bench.common import Bench, due_at, say


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.anatomy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=200)
    args = parser.parse_args(argv)

    from bridge import engine, jobs
    from bridge.timefmt import iso_z

    with Bench(workers=0) as bench:
        rt = bench.rt
        jobs.set_runtime(rt)
        statements: collections.Counter = collections.Counter()
        checkouts = [0]

        @event.listens_for(rt.engine, "before_cursor_execute")
        def _statement(conn, cursor, statement, parameters, context, executemany):
            statements[statement.split(None, 1)[0].upper()] += 1

        @event.listens_for(rt.engine, "commit")
        def _commit(conn):
            statements["COMMIT"] += 1

        @event.listens_for(rt.engine, "checkout")
        def _checkout(dbapi_connection, record, proxy):
            checkouts[0] += 1

        accounts = bench.accounts(args.posts)
        when, due = due_at(1.0)
        post_ids = bench.posts(accounts, when)
        while time.time() < due + 0.05:
            time.sleep(0.05)
        statements.clear()
        checkouts[0] = 0
        logged = len(bench.sandbox.log)
        redis_before = int(bench.redis.info("stats")["total_commands_processed"])
        cpu = time.process_time()
        outcomes = collections.Counter(engine.run_post(rt, post_id, iso_z(when)) for post_id in post_ids)
        cpu = time.process_time() - cpu
        redis_commands = int(bench.redis.info("stats")["total_commands_processed"]) - redis_before - 1
        calls = collections.Counter(f"{e['platform']} {e['method']} {e['path']}"
                                    for e in list(bench.sandbox.log)[logged:])
    n = args.posts
    say(f"{n} posts, outcomes {dict(outcomes)}")
    say(f"per post: {1000 * cpu / n:.1f} ms CPU (engine, HTTP client and the sandbox server in this process)")
    say(f"  SQL statements {sum(statements.values()) / n:.1f}: "
        + ", ".join(f"{k} {v / n:.1f}" for k, v in statements.most_common()))
    say(f"  connection checkouts {checkouts[0] / n:.1f} (each: a pre-ping, and a rollback on return unless the "
        f"transaction was still open)")
    say(f"  Redis commands {redis_commands / n:.1f} (server-wide count)")
    say(f"  platform calls {sum(calls.values()) / n:.1f}: " + ", ".join(f"{k} {v / n:.1f}" for k, v in calls.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
