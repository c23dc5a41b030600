"""Database CPU per call, measured on one backend: the backend's own CPU time (utime + stime from
/proc/<pid>/stat, the cluster runs on this machine) over N calls on one connection, and the
statements that spent it (`pg_stat_statements` with track = all, nested statements included).

Throughput ratios move with the load on a shared machine; CPU time per call does much less (a
busy machine slows a call by making it wait, not by making it cost more cycles), so it is the
figure the money path's cost is tracked with."""

from __future__ import annotations

import os
import time

import psycopg

from ...settings import superuser_url
from .env import BenchDB

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def backend_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None  # the server is not on this machine: only pg_stat_statements remains
    return (int(parts[11]) + int(parts[12])) / _TICK  # fields 14 and 15: utime, stime


def _profiling_connection(db: BenchDB | str) -> psycopg.Connection:
    # pg_stat_statements.track is a superuser setting: the tooling superuser's session (the calls
    # themselves run under the API role each caller sets, as PostgREST does).
    return psycopg.connect(superuser_url(db if isinstance(db, str) else db.url), autocommit=True)


def per_call(db: BenchDB | str, sql: str | list[str], args: list, top: int = 40, setup: str | None = None,
             setup_args: list | None = None) -> dict:
    """Runs `sql` once per args item on one connection (`db`: a BenchDB or a database URL, such
    as one `koepon bench scale --keep` left), each call its own transaction (autocommit; with
    `setup`, that statement runs first in the same transaction, as PostgREST sets its GUCs; with
    `setup_args`, one parameter tuple per call is bound into it, e.g. each caller's own claims).
    The first 20 calls warm the caches; the first half of the rest measures the backend CPU and
    the wall time per call with statement tracking as configured; the second half runs with
    track = all to list the statements (nested included) with their time per call of `sql`
    (tracking nested statements costs CPU itself, so those times read high)."""
    stmts = [sql] if isinstance(sql, str) else sql
    if setup_args is not None and setup is None:
        raise ValueError("setup_args without a setup statement to bind them into")
    calls = list(zip(args, setup_args if setup_args is not None else [None] * len(args), strict=True))
    with _profiling_connection(db) as conn:
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]

        def run(batch):
            for a, sa in batch:
                with conn.transaction():
                    if setup:
                        conn.execute(setup, sa)
                    for st in stmts:
                        conn.execute(st, a)

        warm, rest = calls[:20], calls[20:]
        timed, traced = rest[:len(rest) // 2], rest[len(rest) // 2:]
        run(warm)
        cpu0, t0 = backend_cpu_s(pid), time.perf_counter()
        run(timed)
        wall = time.perf_counter() - t0
        cpu1 = backend_cpu_s(pid)
        conn.execute("set pg_stat_statements.track = 'all'")
        conn.execute("set pg_stat_statements.track_utility = off")
        conn.execute("select pg_stat_statements_reset()")
        run(traced)
        rows = conn.execute(
            "select round((total_exec_time / %s)::numeric, 4), calls, round((mean_exec_time)::numeric, 4), "
            "       regexp_replace(left(query, 160), '\\s+', ' ', 'g') "
            "  from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database()) "
            "   and query not ilike '%%pg_stat_statements%%' "
            " order by total_exec_time desc limit %s", (len(traced) or 1, top)).fetchall()
    n = len(timed) or 1
    return {"calls": len(timed),
            "backend_cpu_ms_per_call": round((cpu1 - cpu0) * 1000 / n, 3) if cpu0 is not None else None,
            "wall_ms_per_call": round(wall * 1000 / n, 3),
            "traced_calls": len(traced),
            "statements": [{"ms_per_call": float(r[0]), "calls": r[1], "mean_ms": float(r[2]), "query": r[3]}
                           for r in rows]}


def fulfil_cpu(db: BenchDB, n: int = 800) -> dict:
    """Database CPU per 10-pull fulfilment (public.service_fulfill_order as service_role, one
    order per fresh fan on the spread gachas), one client, nothing else on the connection."""
    nbase = db.queue_orders(n + 20, "spread")
    with db.connect() as conn:
        orders = [(str(r[0]), f"pi_cpu_{r[1]}") for r in conn.execute(
            "select order_id, n from bench.q where n > %s order by n", (nbase,))]
    return per_call(db, "select public.service_fulfill_order(%s, 'stripe', %s, 1000, 'JPY')", orders,
                    setup="select set_config('role', 'service_role', true), "
                          "set_config('request.jwt.claims', '{\"role\":\"service_role\"}', true)")


def inbox_cpu(db: BenchDB, n: int = 800) -> dict:
    """The same figures for a webhook's first delivery without any transport: the inbox call
    (public.service_record_payment_event as service_role) with a Stripe payment_intent.succeeded
    event for a fresh order, what the payment service sends; compare with fulfil_cpu."""
    import json

    from .webhook import stripe_event

    nbase = db.queue_orders(n + 20, "spread")
    with db.connect() as conn:
        rows = [(str(r[0]), r[1]) for r in conn.execute(
            "select order_id, n from bench.q where n > %s order by n", (nbase,))]
    args = []
    for order_id, k in rows:
        event = stripe_event(order_id, k)
        args.append(("stripe", event["id"], event["type"], json.dumps(event)))
    return per_call(db, "select public.service_record_payment_event(%s, %s, %s, %s::jsonb)", args,
                    setup="select set_config('role', 'service_role', true), "
                          "set_config('request.jwt.claims', '{\"role\":\"service_role\"}', true)")


def bare_cpu(db: BenchDB, n: int = 800) -> dict:
    """The same figures for the bare transaction fulfil-sql compares with (the same rows written
    with no logic): what the writes alone cost on this machine."""
    from .scenarios import BARE_SCRIPT

    nbase = db.queue_orders(n + 20, "spread")
    body = BARE_SCRIPT.split("begin;\n", 1)[1].rsplit("commit;", 1)[0]
    stmts = [st.strip().replace("(:n)::text", "(%(n)s)::text").replace(":n", "%(n)s")
             for st in body.split(";\n") if st.strip()]
    return per_call(db, stmts, [{"n": k} for k in range(nbase + 1, nbase + n + 21)])


def check_request_cpu(db: BenchDB, n: int = 1000) -> dict:
    """The cost of PostgREST's pre-request hook for a signed-in create_order request (two buckets:
    per user and per RPC), each call a fresh fan so no limit is reached."""
    lo = db.new_fans(n + 20)
    ids = db.fan_ids(lo, n + 20)
    setup = ("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true), "
             "set_config('request.method', 'POST', true), set_config('request.path', '/rpc/create_order', true), "
             "set_config('request.headers', '{\"x-forwarded-for\":\"127.0.0.1\"}', true)")
    import json

    with _profiling_connection(db) as conn:
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]

        def one(uid: str) -> None:
            with conn.transaction():
                conn.execute(setup, (json.dumps({"sub": uid, "role": "authenticated", "aud": "authenticated"}),))
                conn.execute("select private.check_request()")

        timed, traced = ids[20:20 + n // 2], ids[20 + n // 2:]
        for uid in ids[:20]:
            one(uid)
        cpu0, t0 = backend_cpu_s(pid), time.perf_counter()
        for uid in timed:
            one(uid)
        wall = time.perf_counter() - t0
        cpu1 = backend_cpu_s(pid)
        conn.execute("set pg_stat_statements.track = 'all'")
        conn.execute("set pg_stat_statements.track_utility = off")
        conn.execute("select pg_stat_statements_reset()")
        for uid in traced:
            one(uid)
        nested = conn.execute(
            "select calls, round(mean_exec_time::numeric, 4), round(total_exec_time::numeric, 3), toplevel, "
            "       regexp_replace(left(query, 200), '\\s+', ' ', 'g') "
            "  from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database()) "
            "   and query not ilike '%%set_config%%' and query not ilike '%%pg_stat_statements%%' "
            " order by total_exec_time desc").fetchall()
    # Statements that read or write the counters themselves (not the functions named after them).
    top = sum(float(r[2]) for r in nested if r[3])
    counters = sum(r[0] for r in nested if not r[3] and "rate_limit_" in r[4] and "private.rate_limit" not in r[4])
    m, k = len(timed) or 1, len(traced) or 1
    return {"calls": len(timed), "backend_cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / m, 3)
            if cpu0 is not None else None,
            "wall_ms_per_request": round(wall * 1000 / m, 3),
            "traced_calls": len(traced),
            "hook_exec_ms_per_request": round(top / k, 4),
            "counter_statements_per_request": round(counters / k, 2),
            "nested_statements_per_request": round(sum(r[0] for r in nested if not r[3]) / k, 2),
            "statements": [{"calls": r[0], "mean_ms": float(r[1]), "toplevel": r[3], "query": r[4]} for r in nested]}


def _party_cpu(sids: dict[str, int], postmaster: int | None) -> dict[str, float]:
    """CPU seconds (utime + stime) of live processes: per party, those in its session (a service the
    bench started in a session of its own); for "postgres", the postmaster and its children (every
    backend leads a session of its own, so they are found by parent), those that exited included."""
    out = dict.fromkeys(list(sids) + (["postgres"] if postmaster else []), 0.0)
    by_sid = {sid: k for k, sid in sids.items()}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        cpu = (int(parts[11]) + int(parts[12])) / _TICK
        pid, ppid, sid = int(name), int(parts[1]), int(parts[3])
        if postmaster and pid == postmaster:
            # cutime + cstime: the backends that exited and were reaped (a pgbench run's own
            # connections end before the run is read), so the total covers them too.
            out["postgres"] += cpu + (int(parts[13]) + int(parts[14])) / _TICK
        elif postmaster and ppid == postmaster:
            out["postgres"] += cpu
        elif sid in by_sid:
            out[by_sid[sid]] += cpu
    return out


class PartyCPU:
    """CPU spent by each party of a run (the payment service, the API, PostgreSQL). Used as
    `with PartyCPU(db, {"payments": pid, ...}) as cpu: ...; cpu.ms_per(n)`. A service's processes
    that exit during the run are not counted (the services' pooled connections live through it);
    PostgreSQL backends that exit are (their parent reaps them)."""

    def __init__(self, db: BenchDB, parties: dict[str, int]):
        self.sids = dict(parties)
        self.postmaster = None
        with _profiling_connection(db) as conn:
            backend = conn.execute("select pg_backend_pid()").fetchone()[0]
            try:
                with open(f"/proc/{backend}/stat") as f:
                    self.postmaster = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass  # the server is not on this machine

    def __enter__(self):
        self.t0 = _party_cpu(self.sids, self.postmaster)
        return self

    def __exit__(self, *exc):
        t1 = _party_cpu(self.sids, self.postmaster)
        self.cpu_s = {k: t1[k] - self.t0.get(k, 0.0) for k in t1}

    def ms_per(self, n: int) -> dict[str, float]:
        return {k: round(v * 1000 / n, 3) for k, v in self.cpu_s.items()} if n else {}
