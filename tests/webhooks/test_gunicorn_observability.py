"""The payment service as it runs in production (`python -m webhooks`: gunicorn, two worker
processes): metrics summed over the workers, JSON log lines with the request id, no version in
`Server`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import httpx
import pytest
from flask import Flask, jsonify

from koepon.localstack.fakes.serve import serving
from koepon.localstack.services import free_port, payments_env


@pytest.fixture(scope="module")
def service():
    stub = Flask("stub-api")

    @stub.post("/rest/v1/rpc/<name>")
    def rpc(name):
        return jsonify({"ok": True})

    with serving(stub) as stub_url:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "KOMOJU_", "SUPABASE_",
                                                                         "PROMETHEUS_"))}
        env.update(payments_env(stub_url, f"http://127.0.0.1:{free_port()}"))
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([sys.executable, "-m", "webhooks", "--port", str(port), "--workers", "2",
                                     "--threads", "2"], env=env, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
            url = f"http://127.0.0.1:{port}"
            try:
                deadline = time.monotonic() + 30
                while True:
                    assert proc.poll() is None, "the service exited at start"
                    try:
                        if httpx.get(url + "/health", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "the service did not answer"
                    time.sleep(0.2)
                yield url, err
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)


def _count(text: str, route: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "koepon_payments_http_requests_total" and s.labels.get("route") == route)


def test_metrics_are_summed_over_every_worker(service):
    url, _ = service
    with httpx.Client() as client:  # keep-alive per connection; new connections spread over workers
        for i in range(20):
            with httpx.Client() as fresh:
                assert fresh.get(url + "/ready", headers={"X-Request-Id": f"probe-{i}"}).status_code == 200
        scrapes = [httpx.get(url + "/metrics").text for _ in range(6)]
        assert client.get(url + "/health").headers["Server"] == "gunicorn", "no framework version"
    # Whichever worker answers the scrape, it reports all 20 answers.
    assert [_count(t, "/ready") for t in scrapes] == [20.0] * 6
    assert "koepon_payments_worker_threads 4.0" in scrapes[-1], "two workers of two threads each"


def test_log_lines_are_json_with_the_request_id(service):
    url, err = service
    httpx.get(url + "/health", headers={"X-Request-Id": "log-line-check"})
    time.sleep(0.5)
    err.seek(0)
    lines = [line for line in err.read().decode().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is JSON, gunicorn's own included
    mine = [e for e in entries if e.get("request_id") == "log-line-check"]
    assert mine and mine[0]["logger"] == "webhooks.access" and mine[0]["status"] == 200
    assert {"timestamp", "level", "message"} <= set(mine[0])
    assert any(e["logger"].startswith("gunicorn") for e in entries)


def test_an_idle_keep_alive_connection_outlives_the_clients_idle_pool(service):
    """A client reuses an idle connection for up to 5 s (httpx's keepalive_expiry; a load balancer for
    longer): the service must not close it first, or a request sent just as it closes is reset."""
    import http.client

    url, _ = service
    host, port = url.removeprefix("http://").split(":")
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
