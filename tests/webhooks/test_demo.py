"""`koepon demo` end to end against stacks on ephemeral ports.

Stripe: the payment service and the fake providers exactly as `koepon up` runs them (`python -m webhooks
--port N` under gunicorn, `python -m koepon.localstack.fakes`, the service configured only by the
environment `koepon up` gives it). KOMOJU: the service and the fakes in threads (koepon.localstack.fakes.serve).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from koepon.cli import main
from koepon.localstack import services
from koepon.localstack.api.storage import ensure_demo_bytes
from koepon.localstack.api.testing import running_api
from koepon.localstack.fakes.serve import running_payments


@pytest.fixture(scope="module")
def api(seeded_db_url):
    with tempfile.TemporaryDirectory(prefix="koepon-demo-storage-") as tmp:
        ensure_demo_bytes(seeded_db_url, Path(tmp))
        with running_api(seeded_db_url, storage_root=Path(tmp)) as api_url:
            yield api_url


@pytest.fixture(scope="module")
def gunicorn_service(api, seeded_db_url, tmp_path_factory):
    port, fakes_port = services.free_port(), services.free_port()
    url, fakes_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{fakes_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "KOMOJU_", "SUPABASE_"))}
    env.update(services.service_env(seeded_db_url))
    env.update(services.payments_env(api, fakes_url))
    logs = tmp_path_factory.mktemp("webhooks")
    log = logs / "webhooks.log"
    fakes = services.spawn(services.fakes_argv(fakes_port, url), logs / "fakes.log", env, fakes_url + "/health")
    with open(log, "wb") as out:
        proc = subprocess.Popen(services.payments_argv(port), env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, log
    finally:
        for p in (proc, fakes):
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=15)


def _check(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = result.output
    for line in ("A fan signs up", "They read the odds", "The ten results arrive over Realtime, in draw order",
                 "The order page agrees (get_order)", "They exchange medals",
                 "They download a reward through a signed URL", "The admin approves it", "demo finished"):
        assert line in out
    assert "order refunded ¥3000; 10 rewards revoked" in out
    # The demo ends on the VTuber's side: today's sales and the open statement, the demo's own
    # paid and refunded ¥3,000 included.
    sales = re.search(r"reads their sales .*\n\s+last day \S+: (\d+) paid orders, gross ¥(\d+), refunds ¥(\d+)", out)
    assert sales and int(sales[1]) >= 1 and int(sales[2]) >= 3000 and int(sales[3]) >= 3000, out
    statement = re.search(r"open statement for \d{4}-\d{2}\n\s+gross ¥(\d+) - refunds ¥(\d+)", out)
    assert statement and int(statement[1]) >= 3000 and int(statement[2]) >= 3000, out


def test_koepon_demo_against_the_service_as_koepon_up_runs_it(api, gunicorn_service):
    url, log = gunicorn_service
    _check(CliRunner().invoke(main, ["demo", "--api-url", api, "--url", url]))
    text = log.read_text()
    assert "using the local fake Stripe API" in text
    assert "charge.refunded" in text, "the fake Stripe delivered the refund event to the service"


def test_koepon_demo_with_komoju(api):
    with running_payments(api) as pay:
        _check(CliRunner().invoke(main, ["demo", "--api-url", api, "--url", pay.payments_url,
                                         "--provider", "komoju"]))
