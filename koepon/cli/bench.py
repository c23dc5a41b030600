"""`koepon bench [SCENARIO ...]`: runs the scenarios against the benchmark's own database and
processes, prints a table per scenario and writes JSON. Targets are reported, never asserted."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import time

import click

from ..tools.bench import realtime, scale, webhook
from ..tools.bench import scenarios as sc
from ..tools.bench.env import BenchDB
from ..tools.bench.tools import NCPU

ORDER = ["fulfil-sql", "order-http", "catalog-http", "hot-gacha", "webhook", "exchange-race", "scale", "realtime"]


def _registry() -> dict:
    reg = {"fulfil-sql": sc.fulfil_sql, "order-http": sc.order_http, "catalog-http": sc.catalog_http,
           "hot-gacha": sc.hot_gacha, "exchange-race": sc.exchange_race,
           "webhook": webhook.webhook, "scale": scale.scale, "realtime": realtime.realtime}
    return reg


def _fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_table(name: str, result: dict, echo=click.echo) -> None:
    echo(f"\n== {name} ==")
    if "skipped" in result:
        echo(f"skipped: {result['skipped']}")
        return
    head = ["what", "tool", "clients", "ops", "ops/s", "p50 ms", "p95 ms", "p99 ms", "errors", "ratio", "gen CPU"]
    table = [head]
    for r in result.get("rows", []):
        table.append([r["what"], r["tool"], _fmt(r["clients"]), _fmt(r["ops"]), _fmt(r["throughput"]),
                      _fmt(r["p50_ms"], 2), _fmt(r["p95_ms"], 2), _fmt(r["p99_ms"], 2), _fmt(r["errors"]),
                      _fmt(r.get("ratio"), 3) + (f" of {r['baseline'].split(',')[0]}" if r.get("ratio") else ""),
                      f"{r['generator_cpu_share'] * 100:.0f}%"])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for i, trow in enumerate(table):
        cells = zip(trow, widths, strict=True)
        echo("  ".join(str(c).ljust(w) if j == 0 else str(c).rjust(w) for j, (c, w) in enumerate(cells)))
        if i == 0:
            echo("  ".join("-" * w for w in widths))
    for r in result.get("rows", []):
        for n in r.get("notes", []):
            echo(f"  note ({r['what']}): {n}")
    for c in result.get("comparisons", []):
        rt, p99, ld = c["ratio"], c["p99_ratio"], c["load"]
        echo(f"  {c['what']}: median ratio {_fmt(rt['median'], 3)} (min {_fmt(rt['min'], 3)}, max "
             f"{_fmt(rt['max'], 3)}, {c['rounds']} interleaved rounds); p99 ratio median {_fmt(p99['median'], 2)}; "
             f"load average before {_fmt(ld['before'], 2)}, during {_fmt(ld['during_min'], 2)}-"
             f"{_fmt(ld['during_max'], 2)}")
        if c.get("cpu_ms_per_request"):
            per = c["cpu_ms_per_request"]
            echo("    CPU ms per request: " + ", ".join(f"{k} {_fmt(v, 3)}" for k, v in per.items()))
        if c.get("baseline_cpu_ms_per_request"):
            per = c["baseline_cpu_ms_per_request"]
            echo("    baseline CPU ms per transaction: " + ", ".join(f"{k} {_fmt(v, 3)}" for k, v in per.items()))
    if result.get("sweep"):
        echo("  throughput vs concurrency: " + ", ".join(f"{r['clients']}→{r['throughput']:,.0f}/s"
                                                         for r in result["sweep"]))
    for t in result.get("targets", []):
        echo(f"  [{t['status']}] {t['target']}: {_fmt(t['value'], 3)} (target {t['goal']})")
    if result.get("cpu_ms_per_event"):
        echo("  CPU ms per event: " + ", ".join(f"{k} {_fmt(v, 3)}" for k, v in result["cpu_ms_per_event"].items()))
    if result.get("cpu_ms_per_fulfilment"):
        echo("  CPU ms per fulfil-sql fulfilment: " + ", ".join(
            f"{k} {_fmt(v, 3)}" for k, v in result["cpu_ms_per_fulfilment"].items())
             + f"; CPU-bound ratio (fulfilment / event): {_fmt(result.get('cpu_bound_ratio'), 3)}")
    if result.get("cpu"):
        c = result["cpu"]
        fm, bm, ratio = c["fulfilment_ms"], c["bare_ms"], c["bare_over_fulfilment"]
        echo(f"  database CPU per call (1 client, median of rounds): fulfilment {_fmt(fm['median'], 3)} ms "
             f"{fm['each']}, bare {_fmt(bm['median'], 3)} ms {bm['each']}, bare / fulfilment "
             f"{_fmt(ratio['median'], 3)}")
    if result.get("checks"):
        echo("  checks: " + json.dumps(result["checks"], default=str))
    for n in result.get("notes", []):
        echo(f"  - {n}")


def machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(next(ln.split()[1] for ln in f if ln.startswith("MemTotal"))) // 1024
    except (OSError, StopIteration):
        pass
    pg = subprocess.run(["pgbench", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpus": NCPU, "cpu_model": cpu, "memory_mb": mem, "kernel": platform.release(),
            "python": platform.python_version(), "pgbench": pg}


def run_bench(names: list[str], duration: float, concurrency: list[int] | None, smoke: bool,
              scale_factor: float, api_workers: int, echo=click.echo, rounds: int = 1,
              webhook_api_workers: int | None = None, webhook_workers: int | None = None,
              webhook_transport: str = "direct", webhook_threads: int | None = None, keep: bool = False) -> dict:
    import signal

    reg = _registry()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))
    db = BenchDB(n_gachas=20 if smoke else 100)
    started = time.monotonic()
    api_url: list[str] = []

    def api():
        if not api_url:
            api_url.append(db.start_api(api_workers))
        return api_url[0]

    opts = {"duration": duration, "concurrency": concurrency, "smoke": smoke, "api": api,
            "api_workers": api_workers, "scale_factor": scale_factor, "rounds": rounds,
            "webhook_api_workers": webhook_api_workers, "webhook_workers": webhook_workers,
            "webhook_transport": webhook_transport, "webhook_threads": webhook_threads}
    out = {"started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
           "options": {k: v for k, v in opts.items() if k != "api"}, "database": db.name, "scenarios": {}}
    try:
        with db.connect() as conn:
            out["server"] = {k: conn.execute(f"show {k}").fetchone()[0] for k in
                             ("server_version", "shared_buffers", "synchronous_commit", "fsync", "max_connections",
                              "wal_level")}
        if db.has_catalog:
            db.warm_rate_tables()
        for name in names:
            t0 = time.monotonic()
            echo(f"... {name}", err=True)
            try:
                res = reg[name](db, opts)
            except sc.Skip as exc:
                res = {"skipped": str(exc)}
            res["elapsed_s"] = round(time.monotonic() - t0, 1)
            out["scenarios"][name] = res
            print_table(name, res, echo)
        for res in out["scenarios"].values():  # internal hand-offs are not results
            res.pop("_spread", None)
    finally:
        db.close(keep=keep)
        if keep:
            echo(f"kept the bench database {db.name} ({db.url})", err=True)
    out["elapsed_s"] = round(time.monotonic() - started, 1)
    echo(f"\ntotal {out['elapsed_s']} s")
    return out


def register(main: click.Group) -> None:
    @main.command("bench")
    @click.argument("scenario", nargs=-1, type=click.Choice(ORDER))
    @click.option("--duration", type=float, default=None, help="Seconds per measured run (default 5; smoke 2).")
    @click.option("--rounds", type=int, default=None,
                  help="Interleaved baseline/subject rounds per comparison (default 3; smoke 1): the ratio "
                       "reported is their median.")
    @click.option("--concurrency", type=int, multiple=True,
                  help="Clients/connections (repeatable); replaces each scenario's default and the sweep.")
    @click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write results here.")
    @click.option("--smoke", is_flag=True, help="Short runs and small data (CI): figures, no targets asserted.")
    @click.option("--scale-factor", type=float, default=None,
                  help="scale: fraction of 1M fans / 10M pulls / 10M ledger entries (default 1; smoke 0.002).")
    @click.option("--api-workers", type=int, default=None,
                  help="API processes (default: one per core; 1 is what koepon up runs).")
    @click.option("--webhook-api-workers", type=int, default=None,
                  help="webhook: processes of the API the payment service calls (default 1, as koepon up).")
    @click.option("--webhook-workers", type=int, default=None,
                  help="webhook: payment service (gunicorn) processes (default: its own, one per two cores).")
    @click.option("--webhook-threads", type=int, default=None,
                  help="webhook: request threads per payment service process (default: its own, 16).")
    @click.option("--webhook-transport", type=click.Choice(["direct", "api"]), default="direct", show_default=True,
                  help="webhook: the payment service's way to the database: PostgreSQL directly over its pool "
                       "(what koepon up configures) or through the Supabase API.")
    @click.option("--keep", is_flag=True,
                  help="Leave the bench database in the cluster afterwards (e.g. to study a scale run's data); "
                       "drop it yourself with dropdb.")
    def bench(scenario, duration, concurrency, json_path, smoke, scale_factor, api_workers, rounds,
              webhook_api_workers, webhook_workers, webhook_threads, webhook_transport, keep):
        """Benchmarks: throughput, latency, contention and scale as ratios to same-run baselines."""
        names = [n for n in ORDER if n in scenario] if scenario else list(ORDER)
        res = run_bench(names, duration or (2 if smoke else 5), list(concurrency) or None, smoke,
                        scale_factor if scale_factor is not None else (0.002 if smoke else 1.0),
                        api_workers or NCPU, rounds=rounds or (1 if smoke else 3),
                        webhook_api_workers=webhook_api_workers, webhook_workers=webhook_workers,
                        webhook_transport=webhook_transport, webhook_threads=webhook_threads, keep=keep)
        if json_path:
            os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
            with open(json_path, "w") as f:
                json.dump(res, f, indent=2, default=str)
