"""The local API is the edge: a client's own X-Forwarded-For or CF-Connecting-IP does not choose
the address the database sees (private.request_client_ip, the key of anonymous rate limits and of
the download log), and an idle keep-alive connection is kept longer than clients keep theirs.

uvicorn trusts X-Forwarded-For from 127.0.0.1 by default and would hand the spoofed address to the
app as the client's; both ways the API is served are checked: the process `koepon up` starts and the
in-process server tests and tools use.
"""

from __future__ import annotations

import os
import subprocess

import httpx
import psycopg
import pytest

from koepon.localstack.api.testing import running_api
from koepon.localstack.services import api_argv, free_port, wait_http
from koepon.settings import ANON_KEY


@pytest.fixture(scope="module")
def echo_db(seeded_db_url):
    """A test-only RPC answering what the database takes for the client's address."""
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        conn.execute("""
          create function public.test_client_ip() returns text language sql stable security definer
          set search_path = '' as $$ select private.request_client_ip() $$;
          revoke all on function public.test_client_ip() from public;
          grant execute on function public.test_client_ip() to anon;
        """)
    return seeded_db_url


@pytest.fixture(scope="module", params=["process", "in-process"])
def served(request, echo_db):
    if request.param == "in-process":
        with running_api(echo_db) as url:
            yield url
        return
    port = free_port()
    proc = subprocess.Popen(api_argv(port, echo_db), env={**os.environ, "KOEPON_DB_URL": echo_db},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client_ip(url: str, **headers) -> str:
    res = httpx.post(f"{url}/rest/v1/rpc/test_client_ip", json={},
                     headers={"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}", **headers})
    assert res.status_code == 200, res.text
    return res.json()


def test_a_spoofed_x_forwarded_for_does_not_change_the_address_the_database_sees(served):
    assert _client_ip(served) == "127.0.0.1"
    assert _client_ip(served, **{"X-Forwarded-For": "203.0.113.7"}) == "127.0.0.1"
    assert _client_ip(served, **{"X-Forwarded-For": "203.0.113.7, 198.51.100.2", "X-Real-IP": "203.0.113.8",
                                 "Forwarded": "for=203.0.113.9"}) == "127.0.0.1"


def test_a_client_sent_cf_connecting_ip_does_not_change_it_either(served):
    """The database reads CF-Connecting-IP first, as hosted Supabase's Cloudflare edge sets it; the
    local API stands in for that edge, so it writes the header itself whatever the client sent."""
    assert _client_ip(served, **{"CF-Connecting-IP": "203.0.113.10"}) == "127.0.0.1"
    assert _client_ip(served, **{"CF-Connecting-IP": "203.0.113.10", "X-Forwarded-For": "203.0.113.11"}) == "127.0.0.1"


def test_an_idle_keep_alive_connection_outlives_the_clients_idle_pool(served):
    """httpx reuses an idle connection for up to 5 s: the API must not close it first, or a request
    sent just as it closes is reset (uvicorn's default keep-alive is those same 5 s)."""
    import http.client
    import time

    host, port = served.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().read() and conn.sock is not None
        sock = conn.sock
        time.sleep(httpx.Limits().keepalive_expiry + 0.5)
        conn.request("GET", "/health")  # http.client does not reconnect: this is the same connection
        assert conn.sock is sock
        assert conn.getresponse().status == 200
    finally:
        conn.close()
