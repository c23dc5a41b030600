"""`python -m webhooks --port N`: the payment service under gunicorn (threaded workers).

All configuration comes from the environment (webhooks/config.py), locally as in production:
the service refuses to start when a key or secret is missing. The local stack (`koepon up`)
passes the fake providers' base URLs and local test keys explicitly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from . import observability
from .app import create_app
from .config import Config, ConfigError

# Measured with `koepon bench webhook` on two cores shared with PostgreSQL (docs/performance.md,
# "The webhook path without the API hop"): one process of 16 threads gave 0.72 of fulfil-sql and
# 1.4 ms of the service's CPU per event; two of 8 gave 0.50 and 1.7 ms, four of 4 gave 0.31 and
# 2.4 ms. A request thread mostly waits for the database (the GIL is free meanwhile), and every
# extra process costs CPU of its own; so one process per two cores, 16 threads each.
DEFAULT_THREADS = 16

# Seconds an idle keep-alive connection stays open. gunicorn's default (2 s) is shorter than its
# clients keep idle connections for reuse (httpx 5 s, a load balancer's idle timeout: AWS ALB 60 s),
# so the service closed connections its clients were about to reuse: a request sent as the server
# closed was answered with "Connection reset by peer" or "Server disconnected". The side that keeps
# a connection open longer must be the server; 75 s outlasts the usual load balancer's 60 s.
KEEPALIVE = 75


def default_workers() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


class _NoAccessLine(Logger):
    """gunicorn writes no access line here (accesslog None; `webhooks.access` is the access log),
    yet with a logconfig_dict it still computes every access line's fields for every request
    (3-6 % of the service's CPU under a webhook burst, py-spy): skip that."""

    def access(self, resp, req, environ, request_time):
        return None


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self._app, self._options = app, options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webhooks", description="Koepon payment service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=54329)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEBHOOKS_WORKERS") or default_workers()))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("WEBHOOKS_THREADS") or DEFAULT_THREADS))
    args = parser.parse_args(argv)
    observability.configure_logging()
    multiproc = observability.prepare_multiprocess_metrics()

    try:
        config = Config.from_env(os.environ)
        if not os.environ.get("PAYMENTS_DB_POOL_SIZE"):
            # One connection per request thread: a thread never waits for another's connection.
            config = replace(config, db_pool_size=args.threads)
        app = create_app(config)
    except ConfigError as exc:
        sys.exit(f"webhooks: {exc}")
    logging.getLogger("webhooks").info(
        "payment service on http://%s:%s (Supabase API %s; database %s)", args.host, args.port, config.supabase_url,
        "direct, pooled" if config.database_url else "through the API")
    _Gunicorn(app, {"bind": f"{args.host}:{args.port}", "workers": args.workers, "threads": args.threads,
                    "worker_class": "gthread", "timeout": 30, "graceful_timeout": 5,
                    "keepalive": KEEPALIVE,
                    "accesslog": None, "errorlog": "-", "loglevel": "info", "logger_class": _NoAccessLine,
                    "logconfig_dict": observability.logging_config(),
                    "post_worker_init": lambda worker: observability.metrics().threads.set(args.threads),
                    "child_exit": lambda _server, worker: multiproc(worker.pid),
                    # One control socket per user would be shared by every instance: none.
                    "control_socket_disable": True}).run()


if __name__ == "__main__":
    main()
