"""The soak, bounded (30 s by default; KOEPON_SOAK_SECONDS): fans, VTubers, an admin and the
payment provider doing random valid and invalid operations through the local API and signed
webhooks against their own database and processes; then every invariant (koepon/invariants.py).

`koepon soak --minutes M` runs the same engine longer and prints the figures.
"""

from __future__ import annotations

import os

import pytest

from koepon.soak import Soak, SoakStack, print_report

SECONDS = float(os.environ.get("KOEPON_SOAK_SECONDS", "30"))


@pytest.fixture(scope="module")
def soak_result():
    stack = SoakStack().start()
    try:
        res = Soak(stack, fans=8, seed=20261125).run(SECONDS)
        lines: list[str] = []
        print_report(res, echo=lines.append)
        yield res, "\n".join(lines), stack.logs()
    finally:
        stack.stop()


def test_soak_loses_nothing(soak_result):
    res, report, logs = soak_result
    print(report)
    assert res.violations == [], report
    assert res.failures == [], report + "\n" + logs
    assert res.server_errors == 0, report


def test_soak_exercised_every_path(soak_result):
    """The run did what it claims: money moved both ways, faults were injected, bad input refused."""
    res, report, _ = soak_result
    kinds = {k for k, _ in res.ops}
    outcomes = {(k, o) for k, o in res.ops}
    f = res.figures
    assert res.total_ops > 500, report
    assert f["orders_fulfilled"] > 20 and f["pulls"] > 50, report
    assert f["refunds_completed"] > 0 and f["yen_refunded"] > 0 and f["exchanges"] > 0, report
    assert f["disputes"] > 0 and f["downloads"] > 0 and f["gachas_published"] > 2, report
    for needed in ("webhook komoju payment.captured", "webhook stripe charge.refunded", "publish_gacha",
                   "review_refund", "payment service: execute refund", "refund_event_from_provider"):
        assert needed in kinds, (needed, report)
    for fault in ("duplicate deliveries", "out of order: refund before success", "konbini: authorized, captured late",
                  "success after expiry", "clock jumps: order expired before its payment"):
        assert res.faults[fault] > 0, (fault, report)
    refused = [k for k, o in outcomes if "(bad" in k and o != "ok"]
    assert len(refused) >= 10, report
