"""CI smoke of `koepon bench`: every scenario whose prerequisites are in the repository runs for a
few seconds and reports figures. Targets are printed by the bench, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "koepon" / "localstack" / "api" / "__main__.py"


def _sql_defines(name: str) -> bool:
    return any(f"function public.{name}(" in p.read_text() for p in (ROOT / "supabase" / "migrations").glob("*.sql"))


PREREQUISITES = {
    "fulfil-sql": lambda: _sql_defines("service_fulfill_order"),
    "hot-gacha": lambda: _sql_defines("service_fulfill_order"),
    "order-http": lambda: _sql_defines("create_order") and API.exists(),
    "catalog-http": lambda: _sql_defines("get_gacha") and API.exists(),
    "exchange-race": lambda: _sql_defines("exchange_medals") and API.exists(),
    "webhook": lambda: _sql_defines("service_fulfill_order") and (ROOT / "webhooks" / "__main__.py").exists(),
    "scale": lambda: all(_sql_defines(f) for f in ("get_medal_balances", "list_my_rewards", "get_gacha",
                                                   "get_order")),
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    res = subprocess.run([str(Path(sys.executable).parent / "koepon"), "bench", "--smoke", "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    data["_stdout"] = res.stdout
    return data


@pytest.mark.parametrize("scenario", list(PREREQUISITES))
def test_scenario_reports_figures(smoke: dict, scenario: str) -> None:
    result = smoke["scenarios"][scenario]
    if not PREREQUISITES[scenario]():
        assert "skipped" in result, f"{scenario} ran although its prerequisites are missing"
        pytest.skip(f"{scenario}: {result['skipped']}")
    assert "skipped" not in result, f"{scenario} skipped although its prerequisites exist: {result.get('skipped')}"
    rows = result["rows"]
    assert rows, f"{scenario} reported no measured run"
    for r in rows:
        assert r["ops"] > 0 and r["throughput"] > 0, r
        assert r["p50_ms"] is not None and r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"], r
        assert 0 <= r["generator_cpu_share"] <= 1, r
    for t in result.get("targets", []):
        assert t["status"] in ("PASS", "MISS", "n/a"), t
    assert f"== {scenario} ==" in smoke["_stdout"]


def test_baseline_ratios_reported(smoke: dict) -> None:
    ratios = [r for res in smoke["scenarios"].values() for r in res.get("rows", []) if "ratio" in r]
    if not ratios:
        pytest.skip("no scenario with a baseline has its prerequisites yet")
    for r in ratios:
        assert r["ratio"] > 0 and r["baseline"], r


def test_exchange_race_invariants(smoke: dict) -> None:
    res = smoke["scenarios"]["exchange-race"]
    if "skipped" in res:
        pytest.skip(res["skipped"])
    # The race's outcome is correctness, not speed: it must hold on any machine.
    assert res["checks"]["succeeded"] == 100 and res["checks"]["out_of_stock"] == 100, res["checks"]
    assert res["checks"]["balances_not_equal_to_ledger_sum"] == 0
