"""The soak's world: a throwaway seeded database, the local API and the payment service as killable
processes, the fake providers and the relay that hands their events to the outbox."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import psycopg

from ...db import testing
from ...localstack import services
from ...localstack.services import free_port
from ...settings import KOMOJU_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET
from .outbox import Outbox


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------
class SoakStack:
    """A private database with the API and the payment service as killable processes."""

    def __init__(self, db_url: str | None = None, *, api_workers: int = 1, webhook_workers: int = 2,
                 relax_rate_limits: bool = True):
        self.owned_db = None
        if db_url is None:
            db_url, self.owned_db = testing.clone("koepon_soak", seeded=True)
        self.db_url = db_url
        self.api_workers, self.webhook_workers = api_workers, webhook_workers
        self.tmp = tempfile.TemporaryDirectory(prefix="koepon-soak-")
        self.api_port, self.pay_port = free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.payments_url = f"http://127.0.0.1:{self.pay_port}"
        self.api_proc: subprocess.Popen | None = None
        self.pay_proc: subprocess.Popen | None = None
        self.outbox = Outbox(self)
        self._servers: list = []
        if relax_rate_limits:
            with self.connect() as conn:
                # The limits are not what the soak is about (the economy-edges tests cover them):
                # lifted in this throwaway database so the soak measures the economy, not 429s.
                conn.execute("update app.rate_limit_rules set per_minute = 1000000")

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.db_url, autocommit=True)

    # -- processes ------------------------------------------------------------------------------
    def start(self) -> SoakStack:
        self._start_fakes()
        self.start_api()
        self.start_payments()
        return self

    def _start_fakes(self) -> None:
        import logging

        from werkzeug.serving import make_server

        from ...localstack.fakes.providers import create_fake_app

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the report

        relay = make_server("127.0.0.1", 0, self._relay_app, threaded=True)
        relay_url = f"http://127.0.0.1:{relay.port}"
        fake = make_server("127.0.0.1", 0, create_fake_app(
            stripe_webhook=(relay_url + "/stripe", STRIPE_WEBHOOK_SECRET),
            komoju_webhook=(relay_url + "/komoju", KOMOJU_WEBHOOK_SECRET), deliver_delay=0.0), threaded=True)
        self.fake_url = f"http://127.0.0.1:{fake.port}"
        for srv in (relay, fake):
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self._servers.append(srv)

    def _relay_app(self, environ, start_response):
        """The fakes deliver the refund events they emit here; the provider's outbox sends them
        (with retries until the service answers), like Stripe's and KOMOJU's delivery queues."""
        provider = environ.get("PATH_INFO", "").strip("/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if provider in ("stripe", "komoju") and isinstance(event, dict):
            self.outbox.send(provider, event, kind="refund_event_from_provider")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    def _spawn(self, argv: list[str], base: str, env: dict, log: str) -> subprocess.Popen:
        return services.spawn(argv, os.path.join(self.tmp.name, log), env, base + "/health")

    def start_api(self) -> None:
        # Every soak client signs in from 127.0.0.1: lift the per-IP sign-in limit for it.
        self.api_proc = self._spawn(services.api_argv(self.api_port, self.db_url, self.api_workers), self.api_url,
                                    {"KOEPON_STORAGE_DIR": os.path.join(self.tmp.name, "storage"),
                                     "KOEPON_AUTH_SIGN_IN_SIGN_UPS": "1000000"}, "api.log")

    def start_payments(self) -> None:
        self.pay_proc = self._spawn(services.payments_argv(self.pay_port, self.webhook_workers), self.payments_url,
                                    services.payments_env(self.api_url, self.fake_url), "webhooks.log")

    @staticmethod
    def kill9(proc: subprocess.Popen | None) -> None:
        """SIGKILL to the process and everything it started (its session)."""
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        self.outbox.stop()
        for p in (self.pay_proc, self.api_proc):
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill9(p)
        for srv in self._servers:
            srv.shutdown()
        if self.owned_db:
            with contextlib.suppress(Exception):
                testing.drop(self.owned_db)
        self.tmp.cleanup()

    def logs(self) -> str:
        out = []
        for name in ("api.log", "webhooks.log"):
            p = Path(self.tmp.name, name)
            if p.exists():
                out.append(f"--- {name} (tail)\n" + "\n".join(p.read_text().splitlines()[-30:]))
        return "\n".join(out)
