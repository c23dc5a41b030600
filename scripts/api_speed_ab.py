"""The local API before and after a change, side by side: `create_order` over HTTP on two API
processes serving the same bench database, one running the code of another checkout (BEFORE, put
first on its PYTHONPATH), one this checkout's, driven by wrk in alternating rounds (A B, B A, ...)
with the bench's own request mix (koepon/tools/bench/scenarios.py). Reports per round the
throughput, p99 and each party's CPU per request (the API's processes, PostgreSQL's), and the
median ratio after / before with its spread.

    git archive <commit> | tar -x -C /tmp/before
    KOEPON_DB_PORT=... .venv/bin/python scripts/api_speed_ab.py /tmp/before --rounds 5 --json out.json

Comparing two APIs directly leaves pgbench out: on a shared machine the ratio to pgbench moves with
the load as much as with the code, while two APIs in alternating rounds see the same load."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from koepon.localstack import services
from koepon.settings import paths
from koepon.tools.bench import ab
from koepon.tools.bench.env import BenchDB
from koepon.tools.bench.scenarios import _order_http_run


def start_api(db: BenchDB, workers: int, pythonpath: str) -> tuple[str, int]:
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"KOEPON_STORAGE_DIR": os.path.join(db.tmp.name, f"storage-{port}"),
           "KOEPON_PROJECT": str(paths().root), "PYTHONPATH": pythonpath}
    # `python -m` puts the working directory first on sys.path, before PYTHONPATH: the API starts
    # in a directory without a koepon package, so each runs the checkout it was given.
    here = os.getcwd()
    os.chdir(db.tmp.name)
    try:
        db._spawn(services.api_argv(port, db.url, workers), f"api-{port}.log", url + "/health", env)
    finally:
        os.chdir(here)
    return url, db.procs[-1].pid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("before", help="checkout whose koepon package the 'before' API runs")
    parser.add_argument("--after", default=str(paths().root), help="checkout the 'after' API runs (this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    db = BenchDB(n_gachas=100)
    try:
        db.warm_rate_tables()
        before, before_pid = start_api(db, args.workers, os.path.abspath(args.before))
        after, after_pid = start_api(db, args.workers, os.path.abspath(args.after))
        db.api_pids = {before: before_pid, after: after_pid}
        ng, spread = db._spread_count(), db.gacha_ids("spread")
        for url in (before, after):  # warm both (connections, prepared plans, token caches)
            _order_http_run(db, url, args.connections, 2, ng, spread, f"warm-{time.time_ns()}")
        def run(url: str, tag: str):
            return lambda i: _order_http_run(db, url, args.connections, args.duration, ng, spread,
                                             f"{tag}{i}-{time.time_ns()}")

        res = ab.interleave(run(before, "a"), run(after, "b"), args.rounds)
        rounds = [{"before": a.as_dict(), "after": b.as_dict()} for a, b in res["runs"]]

        def med(side: str, key: str) -> float:
            return round(statistics.median(r[side]["cpu_ms_per_request"][key] for r in rounds), 3)

        out = {"connections": args.connections, "workers": args.workers, "duration_s": args.duration,
               "before": os.path.abspath(args.before), "after": os.path.abspath(args.after),
               "ratio_after_over_before": res["ratio"],
               "p99_ratio_after_over_before": res["p99_ratio"], "load": res["load"],
               "throughput": {"before": ab.spread([a.throughput for a, _ in res["runs"]]),
                              "after": ab.spread([b.throughput for _, b in res["runs"]])},
               "p99_ms": {"before": ab.spread([a.p99_ms for a, _ in res["runs"]]),
                          "after": ab.spread([b.p99_ms for _, b in res["runs"]])},
               "cpu_ms_per_request_median": {side: {k: med(side, k) for k in ("API", "postgres")}
                                             for side in ("before", "after")},
               "rounds": rounds}
        print(json.dumps({k: v for k, v in out.items() if k != "rounds"}, indent=1))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1, default=str)
    finally:
        db.close()


if __name__ == "__main__":
    main()
