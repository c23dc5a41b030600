"""The payment service's KOMOJU client when a connection to KOMOJU is reset: it sends the same POST
again with KOMOJU's idempotency header (X-KOMOJU-IDEMPOTENCY), as the `stripe` library retries a
network error with its Idempotency-Key, so the fan gets a session and never a second one."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading

import httpx
import pytest

from koepon.localstack.fakes.providers import create_fake_app
from koepon.localstack.fakes.serve import serving
from webhooks.config import Config
from webhooks.providers import Komoju, ProviderError

ORDER = {"order_id": "11111111-2222-3333-4444-555555555555", "amount_jpy": 3000}


class ResetFirst:
    """WSGI middleware resetting the connection (RST, as a peer that went away) of the first `n`
    requests: "before" the fake sees the request, or "after" it made the object (the answer is lost)."""

    def __init__(self, app, when: str, n: int = 1):
        self.app, self.when, self.left = app, when, n
        self.lost: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            reset = self.left > 0 and environ["PATH_INFO"].startswith("/komoju/api/")
            self.left -= reset
        if not reset:
            return self.app(environ, start_response)
        if self.when == "after":
            self.lost.append(json.loads(b"".join(self.app(environ, lambda *a, **k: None))))
        sock = environ["werkzeug.socket"]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        os.close(sock.detach())  # with linger 0 the kernel answers with RST
        raise ConnectionResetError("reset by the test")  # werkzeug treats it as a dropped connection


def _client(url: str) -> Komoju:
    cfg = Config.from_env({"STRIPE_SECRET_KEY": "sk_test_local", "KOMOJU_SECRET_KEY": "sk_test_local_komoju",
                           "STRIPE_API_BASE": url + "/stripe", "KOMOJU_API_BASE": url + "/komoju"})
    client = Komoju(cfg, cfg.komoju_api_base)
    client.RETRY_DELAY = 0.01
    return client


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_reset_connection_is_retried_with_the_same_idempotency_key(when):
    flaky = ResetFirst(create_fake_app(), when)
    with serving(flaky) as url:
        session = _client(url).create_session(ORDER, "https://koepon.example/return")
        seen = [r for r in httpx.get(url + "/_requests").json() if r["path"] == "/komoju/api/v1/sessions"]
        stored = httpx.get(f"{url}/komoju/api/v1/sessions/{session['id']}", auth=("sk_test_local_komoju", ""))
    assert stored.status_code == 200 and session["session_url"]
    key = f"koepon-order-{ORDER['order_id']}-session"
    assert [r["idempotency_key"] for r in seen] == [key] * (2 if when == "after" else 1)
    if when == "after":  # the session made for the lost answer is the one the retry returned
        assert [s["id"] for s in flaky.lost] == [session["id"]]


def test_a_provider_that_keeps_resetting_is_a_502_after_the_retries():
    with serving(ResetFirst(create_fake_app(), "before", n=10)) as url:
        client = _client(url)
        with pytest.raises(ProviderError) as err:
            client.create_session(ORDER, "https://koepon.example/return")
    assert err.value.status == 502 and "unreachable" in err.value.message
