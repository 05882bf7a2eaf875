"""`aurareels-bridge`: migrate, serve, worker, up, sandbox, reencrypt-tokens."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from bridge.config import ConfigError, Settings

log = logging.getLogger("bridge.cli")


def _settings(embedded: bool = False, served_at: str | None = None) -> Settings:
    """Settings from the environment. `served_at` (the address `serve` or `up` listens on) is the
    public URL when AURAREELS_PUBLIC_URL is unset, so OAuth redirects and consent pages name the
    port the bridge really serves."""
    environ = dict(os.environ)
    if served_at and not environ.get("AURAREELS_PUBLIC_URL", "").strip():
        environ["AURAREELS_PUBLIC_URL"] = served_at
    try:
        return Settings.from_env(environ, embedded=embedded)
    except ConfigError as exc:
        print(f"aurareels-bridge: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _local_url(host: str, port: int) -> str:
    """The URL a browser on this machine uses for a server bound to `host`:`port`."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bind(host: str, port: int, app=None, **options):
    """A threaded HTTP server bound now (port 0 picks a free one); `serve` and `up` set its app
    once the settings, which need the port, are known."""
    from werkzeug.serving import make_server

    try:
        return make_server(host, port, app, threaded=True, **options)
    except OSError as exc:
        print(f"aurareels-bridge: cannot listen on {host}:{port} ({exc.strerror or exc})", file=sys.stderr)
        raise SystemExit(2) from None


def _stop_on_sigterm() -> None:
    """SIGTERM ends the process as Ctrl-C does, so `finally` blocks run (a shared sandbox this
    process serves is unregistered at once instead of expiring)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


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
    from bridge.app import create_app

    server = _bind(args.host, args.port)
    url = _local_url(args.host, server.server_port)
    settings = _settings(served_at=url)
    server.app = create_app(runtime=_runtime(settings))
    print(f"serving on {url}", flush=True)
    _stop_on_sigterm()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        _close_sandbox(settings)
    return 0


def _close_sandbox(settings: Settings) -> None:
    """Stop serving the deployment's sandbox if this process serves it."""
    if settings.sandbox:
        from bridge.sandbox.shared import world_for

        world_for(settings).close()


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
    """All in one: migrate, the API in a thread, the worker in the main thread. In sandbox mode
    also the demo: a video job `demo` of user 1, a login for that user and a walk-through."""
    from bridge.app import create_app
    from bridge.services.demo import demo_token, walkthrough
    from bridge.store.migrate import migrate
    from bridge.worker import run_worker

    server = _bind(args.host, args.port)
    url = _local_url(args.host, server.server_port)
    settings = _settings(embedded=True, served_at=url)
    rt = _runtime(settings)
    migrate(rt.engine, settings.table_prefix)
    if settings.sandbox:
        _seed_demo(rt)
    server.app = create_app(runtime=rt)
    threading.Thread(target=server.serve_forever, name="api", daemon=True).start()
    print(f"AuraReels Social Bridge is up at {url}", flush=True)
    print(f"  health:   {url}/health", flush=True)
    print(f"  docs:     {url}/docs", flush=True)
    print(f"  database: {settings.database_url.split('://', 1)[0]}, queue: "
          f"{'embedded' if rt.redis_is_embedded else 'redis'}, sandbox: {'on' if settings.sandbox else 'off'}",
          flush=True)
    if settings.sandbox:
        print("", walkthrough(url, demo_token(settings)), sep="\n", flush=True)
    elif rt.redis_is_embedded:
        print(f"  demo login (WordPress user 1, 24 h): {demo_token(settings)}", flush=True)
    _stop_on_sigterm()
    try:
        return run_worker(rt, burst=False, embedded=True)
    finally:
        server.shutdown()
        _close_sandbox(settings)


def _seed_demo(rt) -> bool:
    """The demo video job; a database that refuses it (a site's own uploader table may ask for
    more than the four columns the bridge knows) leaves `up` running without it."""
    from sqlalchemy.exc import SQLAlchemyError

    from bridge.services.demo import seed_demo_video

    try:
        seed_demo_video(rt)
        return True
    except SQLAlchemyError as exc:
        print(f"aurareels-bridge: the demo video job could not be created ({type(exc).__name__}); "
              f"publish a video of your own instead", file=sys.stderr)
        return False


def cmd_sandbox(args) -> int:
    """The emulators of the six platforms, served once for every process of a sandbox deployment.
    With AURAREELS_REDIS_URL it registers there, so `serve`, gunicorn and every `worker` with
    AURAREELS_SANDBOX=1 find it; AURAREELS_SANDBOX_URL, when set, is the address it advertises."""
    import time

    import redis

    from bridge.config import shared_sandbox_settings
    from bridge.sandbox.core import Sandbox, guarded, request_handler
    from bridge.sandbox.shared import Registration, registered_url

    try:
        redis_url, advertised = shared_sandbox_settings()
    except ConfigError as exc:
        print(f"aurareels-bridge: {exc}", file=sys.stderr)
        return 2
    # its control API answers loopback callers, and others (the API in another container) with the key
    control_key = (os.environ.get("N8N_API_KEY") or "").strip() or None
    server = _bind(args.host, args.port, guarded(Sandbox(), control_key), request_handler=request_handler())
    url = advertised or _local_url(args.host, server.server_port)
    registration = None
    if redis_url:
        registration = Registration(redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=10), url)
        deadline = time.monotonic() + 20
        while not registration.claim():
            if time.monotonic() > deadline:
                print(f"aurareels-bridge: a sandbox is already registered at {registered_url(registration.client)}; "
                      f"stop it first", file=sys.stderr)
                server.server_close()
                return 1
            time.sleep(1)  # the registration of a server that stopped expires within its time to live
        registration.start()
    print(f"sandbox serving at {url}" + (" (registered in Redis)" if registration else ""), flush=True)
    _stop_on_sigterm()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if registration:
            registration.close()
        server.server_close()
    return 0


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
    for name, fn, helptext, port in (
        ("serve", cmd_serve, "the HTTP API only", 8080),
        ("up", cmd_up, "all in one: migrate, API, worker, scheduler, sweeper", 8080),
        ("sandbox", cmd_sandbox, "the platform emulators, shared by every process of a sandbox deployment", 9100),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=port)
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
