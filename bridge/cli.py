"""`aurareels-bridge`: migrate, serve, worker, up, reencrypt-tokens."""
from __future__ import annotations

import argparse
import logging
import sys
import threading

from bridge.config import ConfigError, Settings

log = logging.getLogger("bridge.cli")


def _settings(embedded: bool = False) -> Settings:
    try:
        return Settings.from_env(embedded=embedded)
    except ConfigError as exc:
        print(f"aurareels-bridge: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _runtime(settings: Settings, engine=None):
    from bridge.runtime import Runtime

    try:
        return Runtime.from_settings(settings, engine=engine)
    except ValueError as exc:  # the vault refuses an empty key
        print(f"aurareels-bridge: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_migrate(args) -> int:
    from bridge.store.migrate import migrate

    rt = _runtime(_settings())
    applied = migrate(rt.engine, rt.settings.table_prefix)
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


def cmd_serve(args) -> int:
    from werkzeug.serving import run_simple

    from bridge.app import create_app

    app = create_app(runtime=_runtime(_settings()))
    print(f"serving on http://{args.host}:{args.port}", flush=True)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    return 0


def cmd_worker(args) -> int:
    from bridge.store.db import make_engine
    from bridge.worker import DEFAULT_THREADS, default_processes, pool_settings, run_processes, run_worker

    settings = _settings()
    if args.concurrency is not None and args.concurrency < 1:
        print("aurareels-bridge: --concurrency must be at least 1", file=sys.stderr)
        return 2
    if args.fork and (args.concurrency is not None or args.processes is not None):
        print("aurareels-bridge: --fork runs one job at a time; leave out --concurrency and --processes",
              file=sys.stderr)
        return 2
    if args.processes is not None and args.processes < 1:
        print("aurareels-bridge: --processes must be at least 1", file=sys.stderr)
        return 2
    concurrency = args.concurrency or DEFAULT_THREADS
    processes = 1 if args.fork else (args.processes or default_processes())

    def work() -> int:
        pool = pool_settings(concurrency, processes)
        engine = None if args.fork else make_engine(settings.database_url, **pool)
        rt = _runtime(settings, engine)
        return keep_working(rt, lambda: run_worker(rt, burst=args.burst, fork=args.fork, concurrency=concurrency))

    return work() if processes == 1 else run_processes(processes, work)


def keep_working(rt, run, *, max_wait: float = 30.0, sleep=None) -> int:
    """Run the worker; when Redis goes away under it (a restart, a failover, a dropped connection),
    wait for Redis to answer again and start over instead of exiting. Nothing is lost meanwhile:
    MySQL holds every post, and the sweeper re-enqueues what Redis forgot."""
    import time

    import redis
    from rq import Worker

    from bridge.worker import worker_name

    sleep = sleep or time.sleep
    while True:
        try:
            return run()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("Redis is unreachable (%s); the worker waits for it and starts again", type(exc).__name__)
        wait = 0.5
        while True:
            sleep(wait)
            try:
                rt.redis.ping()
                break
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                wait = min(wait * 2, max_wait)
                log.warning("Redis is still unreachable; next try in %.0f s", wait)
        # This process's worker record, if Redis kept it, is stale: RQ refuses to register a
        # worker whose name is still alive.
        rt.redis.delete(Worker.redis_worker_namespace_prefix + worker_name())
        log.info("Redis answers again; the worker starts over")


def cmd_up(args) -> int:
    """All in one: migrate, the API in a thread, the worker in the main thread."""
    from werkzeug.serving import make_server

    from bridge.app import create_app
    from bridge.store.migrate import migrate
    from bridge.worker import run_worker

    settings = _settings(embedded=True)
    rt = _runtime(settings)
    migrate(rt.engine, settings.table_prefix)
    app = create_app(runtime=rt)
    server = make_server(args.host, args.port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="api", daemon=True).start()
    url = f"http://{args.host}:{server.server_port}"
    print(f"AuraReels Social Bridge is up at {url}", flush=True)
    print(f"  health:  {url}/wp-json/aurareels/v1/social/health", flush=True)
    print(f"  docs:    {url}/wp-json/aurareels/v1/social/docs", flush=True)
    print(f"  database: {settings.database_url.split('://', 1)[0]}, queue: "
          f"{'embedded' if rt.redis_is_embedded else 'redis'}, sandbox: {'on' if settings.sandbox else 'off'}",
          flush=True)
    if not settings.redis_url:
        print(f"  demo login (WordPress user 1, 24 h): {_demo_token(settings)}", flush=True)
    try:
        return run_worker(rt, burst=False, embedded=True)
    finally:
        server.shutdown()


def _demo_token(settings: Settings) -> str:
    import time

    import jwt

    now = int(time.time())
    claims = {"iss": settings.wp_url, "iat": now, "nbf": now, "exp": now + 86400, "data": {"user": {"id": "1"}}}
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


def cmd_reencrypt(args) -> int:
    from bridge.services.vault import reencrypt_all

    rt = _runtime(_settings())
    counts = reencrypt_all(rt)
    print(f"re-encrypted {counts['updated']} of {counts['seen']} token values under the current key"
          + (f"; {counts['failed']} could not be decrypted (left as they were)" if counts["failed"] else ""))
    return 1 if counts["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    from bridge.logs import setup_logging

    parser = argparse.ArgumentParser(prog="aurareels-bridge", description="AuraReels Social Bridge")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply sql/ to AURAREELS_DATABASE_URL (idempotent)").set_defaults(fn=cmd_migrate)
    for name, fn, helptext in (
        ("serve", cmd_serve, "the HTTP API only"),
        ("up", cmd_up, "all in one: migrate, API, worker, scheduler, sweeper"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8080)
        p.set_defaults(fn=fn)
    w = sub.add_parser("worker", help="RQ worker with scheduler, sweeper and periodic jobs")
    w.add_argument("--burst", action="store_true", help="drain the queues and exit")
    w.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="run up to N jobs at once in threads of this process (default 100)")
    w.add_argument("--processes", type=int, default=None, metavar="N",
                   help="worker processes this command runs, each with its threads (default: one per two cores)")
    w.add_argument("--fork", action="store_true",
                   help="run each job in a forked child, one at a time (RQ's Worker) instead of threads")
    w.set_defaults(fn=cmd_worker)
    sub.add_parser("reencrypt-tokens", help="re-encrypt every stored token under the current key").set_defaults(
        fn=cmd_reencrypt
    )
    args = parser.parse_args(argv)
    setup_logging()
    return args.fn(args) or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
