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

import psycopg

from koepon.settings import superuser_url
from koepon.tools.bench.profile import per_call

TODAY = "(now() at time zone 'Asia/Tokyo')::date"
ADMIN = "00000000-0000-4000-8000-00000000bead"  # the bench's admin (koepon/tools/bench/data.py)
CLAIMS = ("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', "
          "json_build_object('sub', %s::uuid, 'role', 'authenticated', 'aud', 'authenticated')::text, true)")
CALLS = {"vt": f"select public.get_my_sales({TODAY} - 89, {TODAY})::text",
         "admin": f"select public.admin_get_sales(null, {TODAY} - 89, {TODAY})::text"}
WARM = 20  # per_call's warm-up calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="the kept bench database's URL")
    ap.add_argument("what", choices=sorted(CALLS))
    ap.add_argument("calls", type=int, nargs="?", default=40)
    ap.add_argument("--statements", action="store_true", help="also each nested statement's time per call")
    a = ap.parse_args()
    with psycopg.connect(superuser_url(a.url), autocommit=True) as c:
        users = [r[0] for r in c.execute("select user_id from bench.vt order by n")]
    # Each call signs in as its caller: the VTuber of its turn, or the admin. per_call warms up,
    # then measures `calls` calls, then traces as many with nested statements tracked.
    callers = [(users[i % len(users)] if a.what == "vt" else ADMIN,) for i in range(WARM + 2 * a.calls)]
    res = per_call(a.url, CALLS[a.what], [()] * len(callers), top=40, setup=CLAIMS, setup_args=callers)
    with psycopg.connect(superuser_url(a.url), autocommit=True) as c, c.transaction():
        c.execute(CLAIMS, callers[-1])
        answer = c.execute(CALLS[a.what]).fetchone()[0]
    print(f"{a.what}: cpu/call {res['backend_cpu_ms_per_call']} ms  wall/call {res['wall_ms_per_call']} ms  "
          f"answer {len(answer):,} bytes")
    if a.statements:
        for st in [st for st in res["statements"] if "set_config" not in st["query"]][:14]:
            print(f"{st['ms_per_call']:>8} ms/call {st['calls']:>6}  {st['query'][:110]}")


if __name__ == "__main__":
    main()
