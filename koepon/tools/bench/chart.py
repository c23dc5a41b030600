"""`python -m koepon.tools.bench.chart RESULTS.json OUT.png`: throughput against concurrency for fulfil-sql
and order-http (from the sweeps of a full `koepon bench` run).

`python -m koepon.tools.bench.chart --rounds BEFORE.json [BEFORE2.json ...] -- AFTER.json [...] OUT.png`: the
median ratio of every interleaved comparison (bars) with its spread over the rounds (whiskers), before and
after a change, beside the targets."""

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


def _comparisons(paths: list[str]) -> dict[str, dict]:
    out = {}
    for path in paths:
        with open(path) as f:
            res = json.load(f)
        for scen in res["scenarios"].values():
            for c in scen.get("comparisons", []):
                out[c["what"]] = c
    return out


def plot_rounds(before: list[str], after: list[str], out: str, goals: dict[str, float] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b, a = _comparisons(before), _comparisons(after)
    names = [n for n in a if n in b] + [n for n in a if n not in b]
    fig, ax = plt.subplots(figsize=(8, 4.6), dpi=120)
    width = 0.38
    for off, data, label in ((-width / 2, b, "before"), (width / 2, a, "after")):
        xs, ys, lo, hi = [], [], [], []
        for i, n in enumerate(names):
            r = data.get(n, {}).get("ratio") or {}
            if r.get("median") is None:
                continue
            xs.append(i + off)
            ys.append(r["median"])
            lo.append(r["median"] - r["min"])
            hi.append(r["max"] - r["median"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=4, label=f"{label} (median, whiskers: min-max of rounds)")
    for i, n in enumerate(names):
        goal = (goals or {}).get(n.split(",")[0])
        if goal:
            ax.plot([i - 0.45, i + 0.45], [goal, goal], "k--", linewidth=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.replace(" / ", "\n/ ") for n in names], fontsize=7)
    ax.set_ylabel("throughput ratio to the same-run baseline")
    ax.set_title("Interleaved rounds: subject / baseline (dashed: target)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


GOALS = {"service_fulfill_order / bare transaction": 0.85, "webhook first deliveries / fulfil-sql": 0.6,
         "create_order over HTTP / pgbench": 0.75}


if __name__ == "__main__":
    if sys.argv[1] == "--rounds":
        args = sys.argv[2:]
        cut = args.index("--")
        plot_rounds(args[:cut], args[cut + 1:-1], args[-1], GOALS)
    else:
        with open(sys.argv[1]) as f:
            plot(json.load(f), sys.argv[2])
