"""CPU per order of the rollup job (private.refresh_rollups), on a database `koepon bench scale
--keep` left behind: each round queues N orders, fulfils them with 8 pgbench clients, waits out
the watermark's margin and runs the job once on one backend, whose CPU time (/proc/<pid>/stat, so
the server must run on this machine) is divided by the orders it added. With --statements, one
more round runs with pg_stat_statements tracking nested statements, to show where a run's time
goes (tracking costs CPU itself, so those figures read high; compare them with each other).

    KOEPON_DB_PORT=... .venv/bin/koepon bench scale --scale-factor 0.02 --rounds 1 --keep
    KOEPON_DB_PORT=... .venv/bin/python scripts/rollup_job_cpu.py <kept db url> 4000 3 --statements

A run's fixed costs (the rate audit of each gacha drawn, the watermark's lookups) are shared by its
orders, and its index look-ups share pages the more orders it adds: N is the orders one run adds
(at 700 fulfilments a second, pg_cron's minute adds ~42,000; a 5 s cadence ~3,500)."""

from __future__ import annotations

import argparse

import psycopg

from koepon.settings import superuser_url
from koepon.tools.bench.env import BenchDB
from koepon.tools.bench.profile import backend_cpu_s
from koepon.tools.bench.scenarios import FULFIL_SCRIPT
from koepon.tools.bench.tools import pgbench

CLIENTS = 8


def fulfil(db: BenchDB, count: int) -> int:
    """Queues and fulfils `count` orders (rounded down to the clients), each client its own share."""
    per = count // CLIENTS
    nbase = db.queue_orders(per * CLIENTS, "spread")
    run = pgbench(db.url, FULFIL_SCRIPT, "fulfil", CLIENTS, 0, {"k": 0, "nbase": nbase, "per": per},
                  transactions=per)
    if run.errors or run.ops != per * CLIENTS:
        raise SystemExit(f"pgbench fulfilled {run.ops} of {per * CLIENTS} orders: {run.notes}")
    return per * CLIENTS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="the kept bench database's URL")
    ap.add_argument("orders", type=int, nargs="?", default=4000, help="orders per run of the job")
    ap.add_argument("rounds", type=int, nargs="?", default=3)
    ap.add_argument("--statements", action="store_true", help="one more round, each nested statement's time")
    a = ap.parse_args()
    db = BenchDB.attach(a.url)
    # The tooling superuser's session: pg_stat_statements.track is a superuser setting.
    with psycopg.connect(superuser_url(a.url), autocommit=True) as conn:
        conn.execute("select private.refresh_rollups(now())")  # caught up before the first round
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        for i in range(a.rounds + (1 if a.statements else 0)):
            fulfil(db, a.orders)
            conn.execute("select pg_sleep(2.5)")  # the watermark trails now() by 2 s
            traced = i == a.rounds
            if traced:
                conn.execute("set pg_stat_statements.track = 'all'")
                conn.execute("select pg_stat_statements_reset()")
            cpu0 = backend_cpu_s(pid)
            res = conn.execute("select private.refresh_rollups(now())").fetchone()[0]
            cpu = backend_cpu_s(pid) - cpu0
            n = max(1, res["orders"])
            print(f"round {i + 1}{' (traced)' if traced else ''}: {res['orders']} orders, job CPU {cpu * 1000:.0f} ms"
                  f" = {cpu * 1e6 / n:.1f} us per order")
            if traced:
                conn.execute("set pg_stat_statements.track = 'top'")
                for total_ms, calls, query in conn.execute("""
                    select total_exec_time, calls, query from pg_stat_statements
                     where dbid = (select oid from pg_database where datname = current_database())
                       and query not like '%pg_stat_statements%'
                     order by total_exec_time desc limit 15"""):
                    print(f"  {total_ms * 1000 / n:7.1f} us/order  {calls:5d} calls  {' '.join(query.split())[:110]}")


if __name__ == "__main__":
    main()
