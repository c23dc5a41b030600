"""The interleaved comparison of `koepon bench`: baseline and subject alternate which goes first, and
the reported ratio is the median of the rounds' own ratios with its spread."""

from __future__ import annotations

from koepon.tools.bench import ab
from koepon.tools.bench.tools import Run


def _run(label: str, tput: float, p99: float) -> Run:
    return Run(label, "fake", 1, 1.0, ops=1, throughput=tput, p50_ms=1.0, p95_ms=p99, p99_ms=p99)


def test_rounds_alternate_and_the_median_of_round_ratios_is_reported():
    order: list[str] = []
    base = [100.0, 200.0, 100.0]
    subj = [90.0, 100.0, 80.0]

    def a(i):
        order.append(f"A{i}")
        return _run("a", base[i], 10.0)

    def b(i):
        order.append(f"B{i}")
        return _run("b", subj[i], 20.0 + i)

    res = ab.interleave(a, b, 3)
    assert order == ["A0", "B0", "B1", "A1", "A2", "B2"]
    assert res["ratio"] == {"median": 0.8, "min": 0.5, "max": 0.9, "each": [0.9, 0.5, 0.8]}
    assert res["p99_ratio"]["median"] == 2.1
    assert len(res["load"]["during"]) == 6
    s = ab.summary("b / a", res, "a")
    assert s["subject_throughput"]["median"] == 90.0 and s["baseline_throughput"]["median"] == 100.0
