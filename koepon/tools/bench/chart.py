"""`python -m koepon.tools.bench.chart RESULTS.json OUT.png`: throughput against concurrency for fulfil-sql
and order-http (from the sweeps of a full `koepon bench` run)."""

from __future__ import annotations

import json
import sys


def plot(results: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    series = [("fulfil-sql", "service_fulfill_order (pgbench)", "o-"), ("order-http", "create_order via /rest/v1 (wrk)",
                                                                         "s-")]
    for name, label, style in series:
        res = results["scenarios"].get(name, {})
        pts = sorted((r["clients"], r["throughput"]) for r in res.get("sweep", []))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    for name, match, style, label in (("fulfil-sql", "bare transaction", "x", "bare transaction (fulfil baseline)"),
                                      ("order-http", "pgbench", "+", "create_order via pgbench (order baseline)")):
        res = results["scenarios"].get(name, {})
        pts = sorted((r["clients"], r["throughput"]) for r in res.get("rows", []) if r["what"].startswith(match))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, markersize=9, linestyle="none", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients / connections")
    ax.set_ylabel("operations per second")
    cpus = results.get("machine", {}).get("cpus", "?")
    ax.set_title(f"Throughput vs concurrency ({cpus} cores, generator on the same machine)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        plot(json.load(f), sys.argv[2])
