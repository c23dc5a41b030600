"""Interleaved baseline/subject rounds: a ratio that means something on a shared machine.

One baseline run followed by one subject run measures the machine's load as much as the code (two
such runs of the same code an hour apart gave 0.70 and 0.64). Here the two alternate in short rounds
(A B, then B A, ...: a drift in load or table size favours neither side) and each round gives its
own ratio; the result is the median ratio with its spread, and the 1-minute load average before the
first round and after every run beside it."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable

from .tools import Run


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def interleave(baseline: Callable[[int], Run], subject: Callable[[int], Run], rounds: int) -> dict:
    """Runs baseline(i) and subject(i) for i in 0..rounds-1, alternating which goes first. Returns
    {runs: [(baseline Run, subject Run)], ratio / p99_ratio: {median, min, max, each}, load}."""
    pairs: list[tuple[Run, Run]] = []
    load_before = loadavg()
    during: list[float | None] = []
    for i in range(max(1, rounds)):
        if i % 2 == 0:
            a = baseline(i)
            during.append(loadavg())
            b = subject(i)
            during.append(loadavg())
        else:
            b = subject(i)
            during.append(loadavg())
            a = baseline(i)
            during.append(loadavg())
        pairs.append((a, b))
    ratios = [b.throughput / a.throughput for a, b in pairs if a.throughput]
    p99s = [b.p99_ms / a.p99_ms for a, b in pairs if a.p99_ms and b.p99_ms]
    seen = [x for x in during if x is not None]
    return {"runs": pairs, "rounds": len(pairs), "ratio": spread(ratios), "p99_ratio": spread(p99s),
            "load": {"before": load_before, "during_min": min(seen) if seen else None,
                     "during_max": max(seen) if seen else None, "during": during}}


def spread(values: list[float]) -> dict:
    if not values:
        return {"median": None, "min": None, "max": None, "each": []}
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "each": [round(v, 3) for v in values]}


def summary(name: str, ab: dict, baseline_label: str) -> dict:
    """The JSON (and printed) form of one interleaved comparison."""
    a = [p[0] for p in ab["runs"]]
    b = [p[1] for p in ab["runs"]]
    return {"what": name, "baseline": baseline_label, "rounds": ab["rounds"], "ratio": ab["ratio"],
            "p99_ratio": ab["p99_ratio"], "load": ab["load"],
            "subject_throughput": spread([r.throughput for r in b]),
            "baseline_throughput": spread([r.throughput for r in a]),
            "subject_p99_ms": spread([r.p99_ms for r in b if r.p99_ms is not None]),
            "baseline_p99_ms": spread([r.p99_ms for r in a if r.p99_ms is not None])}
