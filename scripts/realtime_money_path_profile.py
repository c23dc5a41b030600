"""The profile behind docs/performance.md "Where the cost on the money path was": interleaved
rounds of pgbench fulfil-sql with (N) no slot, (P10/P50) a wal2json slot polled over SQL every
10/50 ms as the Realtime server used to, (T) the broadcast trigger disabled. Run with the
worktree's venv and KOEPON_DB_PORT set: `.venv/bin/python scripts/realtime_money_path_profile.py`
(D=seconds per run, R=rounds); writes realtime-poll-profile.json here."""
import json, os, statistics, sys, threading, time
import psycopg
from koepon.tools.bench.env import BenchDB
from koepon.tools.bench.realtime import _defines, _cpu_seconds
from koepon.tools.bench.scenarios import FULFIL_SCRIPT
from koepon.tools.bench.tools import pgbench
from koepon.settings import superuser_url

D = float(os.environ.get("D", "8")); R = int(os.environ.get("R", "3")); C = 8
db = BenchDB()
res = {}
try:
    db.new_fans(200)
    db.warm_rate_tables()
    def poller(interval, stop, out):
        with psycopg.connect(superuser_url(db.url), autocommit=True) as conn:
            slot = f"prof_{os.getpid()}_{int(interval*1000)}"
            conn.execute("select pg_create_logical_replication_slot(%s, 'wal2json', true)", (slot,))
            pid = conn.execute("select pg_backend_pid()").fetchone()[0]
            out["pid"] = pid; out["cpu0"] = _cpu_seconds(pid); out["polls"] = 0; out["rows"] = 0
            out["ready"].set()
            while not stop.is_set():
                rows = conn.execute(
                    "select data from pg_logical_slot_get_changes(%s, null, 1000, 'format-version', '2', "
                    "'include-timestamp', 'true', 'include-type-oids', 'true', 'include-pk', 'true', "
                    "'include-transaction', 'false', 'actions', 'insert,update,delete', 'add-tables', 'realtime.*')",
                    (slot,)).fetchall()
                out["polls"] += 1; out["rows"] += len(rows)
                time.sleep(interval)
            out["cpu"] = _cpu_seconds(pid) - out["cpu0"]
    su = psycopg.connect(superuser_url(db.url), autocommit=True)
    for r in range(R):
        for cond in ("N", "P10", "P50", "T"):
            stop = threading.Event(); out = {"ready": threading.Event()}; th = None
            if cond.startswith("P"):
                th = threading.Thread(target=poller, args=(int(cond[1:]) / 1000, stop, out)); th.start(); out["ready"].wait()
            if cond == "T":
                su.execute("alter table app.orders disable trigger orders_after_update_broadcast")
            load = os.getloadavg()[0]
            run = pgbench(db.url, FULFIL_SCRIPT, f"{cond} r{r}", C, D, _defines(db, C, D))
            if cond == "T":
                su.execute("alter table app.orders enable trigger orders_after_update_broadcast")
            if th:
                stop.set(); th.join()
            rec = {"tps": run.throughput, "ops": run.ops, "load": load}
            if th:
                rec.update(polls=out["polls"], rows=out["rows"], slot_cpu=out["cpu"],
                           slot_cpu_ms_per_fulfil=1000 * out["cpu"] / max(run.ops, 1))
            res.setdefault(cond, []).append(rec)
            print(cond, r, json.dumps(rec), flush=True)
    for cond, recs in res.items():
        if cond == "N": continue
        ratios = [x["tps"] / n["tps"] for x, n in zip(recs, res["N"])]
        print(cond, "ratio to N: median", round(statistics.median(ratios), 3), "min", round(min(ratios), 3),
              "max", round(max(ratios), 3), flush=True)
    json.dump(res, open("realtime-poll-profile.json", "w"), indent=1)
finally:
    db.close()
