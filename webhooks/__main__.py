"""`python -m webhooks --port N`: the payment service under gunicorn (threaded workers).

Configuration comes from the environment (webhooks/config.py). Local conveniences:
  * no STRIPE_SECRET_KEY / KOMOJU_SECRET_KEY: the fake providers are served by this process
    under /_fake (logged at start);
  * --db-url URL without SUPABASE_URL: a local API (koepon.api) is started for that database on
    an ephemeral port and used as SUPABASE_URL, with the local keys (benchmarks, tests).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import subprocess
import sys
import time
import urllib.request

from gunicorn.app.base import BaseApplication

from . import observability
from .app import create_app
from .config import Config, ConfigError


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self._app, self._options = app, options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._app


def _local_api(db_url: str) -> str:
    from koepon.api.testing import free_port

    port = free_port()
    workers = os.environ.get("WEBHOOKS_API_WORKERS", str(min(os.cpu_count() or 1, 2)))
    proc = subprocess.Popen([sys.executable, "-m", "koepon.api", "--port", str(port), "--db-url", db_url,
                             "--workers", workers],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(proc.terminate)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"webhooks: the local API for --db-url exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("webhooks: the local API for --db-url did not start")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webhooks", description="Koepon payment service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=54329)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEBHOOKS_WORKERS", "2")))
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--db-url", default=None,
                        help="local only: serve this database through a local API when SUPABASE_URL is unset")
    args = parser.parse_args(argv)
    observability.configure_logging()
    multiproc = observability.prepare_multiprocess_metrics()

    env = dict(os.environ)
    if args.db_url and not env.get("SUPABASE_URL"):
        from koepon.settings import JWT_SECRET, KOMOJU_WEBHOOK_SECRET, SERVICE_ROLE_KEY, STRIPE_WEBHOOK_SECRET

        env["SUPABASE_URL"] = _local_api(args.db_url)
        env.setdefault("SUPABASE_SERVICE_ROLE_KEY", SERVICE_ROLE_KEY)
        env.setdefault("SUPABASE_JWT_SECRET", JWT_SECRET)
        env.setdefault("STRIPE_WEBHOOK_SECRET", STRIPE_WEBHOOK_SECRET)
        env.setdefault("KOMOJU_WEBHOOK_SECRET", KOMOJU_WEBHOOK_SECRET)
    try:
        config = Config.from_env(env, self_url=f"http://{args.host}:{args.port}")
        app = create_app(config)
    except ConfigError as exc:
        sys.exit(f"webhooks: {exc}")
    logging.getLogger("webhooks").info("payment service on http://%s:%s (Supabase API %s)", args.host, args.port,
                                       config.supabase_url)
    if config.serve_fakes and args.workers > 1:
        # The in-process fake providers keep what they created (PaymentIntents, sessions, refunds)
        # per process, as one provider would: with one worker, a refund finds its payment.
        args.threads, args.workers = args.threads * args.workers, 1
        logging.getLogger("webhooks").info("fake providers in-process: one worker with %s threads", args.threads)
    _Gunicorn(app, {"bind": f"{args.host}:{args.port}", "workers": args.workers, "threads": args.threads,
                    "worker_class": "gthread", "timeout": 30, "graceful_timeout": 5,
                    "accesslog": None, "errorlog": "-", "loglevel": "info",
                    "logconfig_dict": observability.logging_config(),
                    "post_worker_init": lambda worker: observability.metrics().threads.set(args.threads),
                    "child_exit": lambda _server, worker: multiproc(worker.pid),
                    # One control socket per user would be shared by every instance: none.
                    "control_socket_disable": True}).run()


if __name__ == "__main__":
    main()
