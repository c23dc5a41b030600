"""CPU per call of the 90-day sales report, on a database `koepon bench scale --keep` left behind:
the backend's CPU time (from /proc/<pid>/stat, so the server must run on this machine) over N
calls, each its own transaction with PostgREST's role and claims, and the answer's size; then,
with --statements, each nested statement's time per call (pg_stat_statements, track = all).

    KOEPON_DB_PORT=... .venv/bin/koepon bench scale --scale-factor 0.02 --rounds 1 --keep
    KOEPON_DB_PORT=... .venv/bin/python scripts/sales_report_cpu.py <kept db url> vt 100
    KOEPON_DB_PORT=... .venv/bin/python scripts/sales_report_cpu.py <kept db url> admin 20 --statements

`vt` is get_my_sales of each bench VTuber in turn (their last 90 JST days); `admin` is the
platform's admin_get_sales (p_vtuber_id null) over the same days. CPU time, unlike latency, hardly
moves with the other work on the machine; compare before and after on the same database."""

from __future__ import annotations

import argparse
import time

import psycopg

from koepon.settings import superuser_url
from koepon.tools.bench.profile import backend_cpu_s

TODAY = "(now() at time zone 'Asia/Tokyo')::date"
ADMIN = "00000000-0000-4000-8000-00000000bead"  # the bench's admin (koepon/tools/bench/data.py)
CLAIMS = ("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', "
          "json_build_object('sub', %s::uuid, 'role', 'authenticated', 'aud', 'authenticated')::text, true)")
CALLS = {"vt": f"select public.get_my_sales({TODAY} - 89, {TODAY})::text",
         "admin": f"select public.admin_get_sales(null, {TODAY} - 89, {TODAY})::text"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="the kept bench database's URL")
    ap.add_argument("what", choices=sorted(CALLS))
    ap.add_argument("calls", type=int, nargs="?", default=40)
    ap.add_argument("--statements", action="store_true", help="also each nested statement's time per call")
    a = ap.parse_args()
    # The tooling superuser's session: pg_stat_statements.track is a superuser setting (the calls
    # themselves run as `authenticated`, as PostgREST runs them).
    with psycopg.connect(superuser_url(a.url), autocommit=True) as c:
        users = [r[0] for r in c.execute("select user_id from bench.vt order by n")]
        pid = c.execute("select pg_backend_pid()").fetchone()[0]

        def call(i: int) -> str:
            with c.transaction():
                c.execute(CLAIMS, (users[i % len(users)] if a.what == "vt" else ADMIN,))
                return c.execute(CALLS[a.what]).fetchone()[0]

        for i in range(10):  # warm the caches and the plans
            out = call(i)
        cpu0, t0 = backend_cpu_s(pid), time.perf_counter()
        for i in range(a.calls):
            out = call(i)
        cpu1, t1 = backend_cpu_s(pid), time.perf_counter()
        print(f"{a.what}: cpu/call {1000 * (cpu1 - cpu0) / a.calls:.2f} ms  wall/call "
              f"{1000 * (t1 - t0) / a.calls:.2f} ms  answer {len(out):,} bytes")
        if not a.statements:
            return
        c.execute("set pg_stat_statements.track = 'all'")
        c.execute("select pg_stat_statements_reset()")
        for i in range(a.calls):
            call(i)
        c.execute("set pg_stat_statements.track = 'top'")
        for q, n, ms in c.execute(
                """select left(regexp_replace(query, '\\s+', ' ', 'g'), 110), calls,
                          round(((total_exec_time + total_plan_time) / %s)::numeric, 2)
                   from pg_stat_statements where query not like '%%set_config%%' order by 3 desc limit 14""",
                (a.calls,)):
            print(f"{ms:>8} ms/call {n:>6}  {q}")


if __name__ == "__main__":
    main()
