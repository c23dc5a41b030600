"""`koepon demo` end to end against a stack on ephemeral ports (API + payment service + fake providers)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from koepon.api.storage import ensure_demo_bytes
from koepon.api.testing import running_api
from koepon.cli import main
from koepon.fakes.serve import running_payments


@pytest.fixture(scope="module")
def stack(seeded_db_url):
    with tempfile.TemporaryDirectory(prefix="koepon-demo-storage-") as tmp:
        ensure_demo_bytes(seeded_db_url, Path(tmp))
        with running_api(seeded_db_url, storage_root=Path(tmp)) as api_url, running_payments(api_url) as pay:
            yield api_url, pay


@pytest.mark.parametrize("provider", ["stripe", "komoju"])
def test_koepon_demo_runs_to_the_end(stack, provider):
    api_url, pay = stack
    result = CliRunner().invoke(main, ["demo", "--api-url", api_url, "--url", pay.payments_url,
                                       "--provider", provider])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = result.output
    for line in ("A fan signs up", "They see their 10 pulls", "They exchange medals",
                 "They download a reward through a signed URL", "The admin approves it", "demo finished"):
        assert line in out
    assert "order refunded ¥3000; 10 rewards revoked" in out
