"""Run the fake providers and the payment service in threads on ephemeral ports (tests, demo)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from werkzeug.serving import make_server

from webhooks.app import create_app

from ...settings import KOMOJU_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET
from ..services import free_port, payments_env
from .providers import create_fake_app


@contextlib.contextmanager
def serving(wsgi_app, port: int = 0) -> Iterator[str]:
    server = make_server("127.0.0.1", port, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@dataclass
class PaymentsStack:
    payments_url: str
    fake_url: str
    env: dict[str, str]


@contextlib.contextmanager
def running_payments(api_url: str, cors_origins: str = "", db_url: str | None = None) -> Iterator[PaymentsStack]:
    """The payment service for `api_url`, with the fake providers delivering their events to it;
    `cors_origins` (comma-separated) are the browser origins allowed on /payments/* (the console's);
    with `db_url`, its RPCs go to that database directly (PAYMENTS_DATABASE_URL), else through the API."""
    app_port, fake_port = free_port(), free_port()
    payments_url = f"http://127.0.0.1:{app_port}"
    fake = create_fake_app(stripe_webhook=(payments_url + "/webhooks/stripe", STRIPE_WEBHOOK_SECRET),
                           komoju_webhook=(payments_url + "/webhooks/komoju", KOMOJU_WEBHOOK_SECRET))
    with serving(fake, fake_port) as fake_url:
        env = payments_env(api_url, fake_url, db_url)
        if cors_origins:
            env["PAYMENTS_CORS_ORIGINS"] = cors_origins
        app = create_app(env)
        try:
            with serving(app, app_port):
                yield PaymentsStack(payments_url, fake_url, env)
        finally:
            app.extensions["koepon"].db.close()
