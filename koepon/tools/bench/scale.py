"""scale: the read paths at 1M fans / 10M pulls / 10M ledger entries over 90 days of history (times
--scale-factor), against a small-data run of the same queries in the same process; then the sales
dashboards and the rollup job at that size (dashboard.py).

History is generated with set-based SQL, consistent by construction (every order fulfilled with
10 pulls, 10 rewards, one pull_grant; the rest of the ledger is admin adjustments whose running
balances come from a window sum; balances = Σ ledger). The bulk load runs with
session_replication_role = replica (FK checks and user triggers off) in the benchmark's
throwaway database only. With the triggers off, the rows the sign-up triggers would have made for
each fan (profile, 'fan' role, committed next seed) are inserted set-based beside auth.users, and
checked afterwards (one trigger call per fan took 9 minutes for 1M fans). The secondary indexes of
the four history tables are dropped for the load and built again after it from their own
definitions (one sorted build instead of 10M random insertions per index)."""

from __future__ import annotations

import math
import re
import sys
import time

import psycopg

from ...settings import superuser_url
from . import dashboard, data
from .env import BenchDB, has_function
from .scenarios import Skip, row, target
from .tools import pgbench

FULL = {"fans": 1_000_000, "orders": 1_000_000, "ledger": 10_000_000}  # orders are 10-pull: 10M pulls
DAYS = dashboard.DAYS  # 90 days: the VTuber's dashboard reads 90 days (11k orders a day at sf 1)

SCALE_TABLE = """
create table if not exists bench.so (n integer primary key, order_id uuid not null, user_id uuid not null,
                                     gacha_id uuid not null, vtuber_id uuid not null, created_at timestamptz not null);
grant select on bench.so to anon, authenticated, service_role;
"""

GEN_SQL = """
set session_replication_role = replica;
set work_mem = '256MB';
-- Seeds as fans get them now (sql/economy/10_fairness.sql): each fan's committed next seed (made
-- by the profile trigger when the fan was created) becomes the active pair with a client seed the
-- fan chose, and a fresh next seed is committed; backdated before the history's first order.
insert into app.fairness_seeds (user_id, server_seed, server_seed_hash, client_seed, next_nonce, created_at,
                                committed_at, client_seed_source)
select f.user_id, n.server_seed, n.server_seed_hash, 'bench-' || f.n, 0,
       now() - interval ':days days' - interval '1 hour', now() - interval ':days days' - interval '2 hours', 'fan'
  from bench.fans f join app.fairness_next_seeds n on n.user_id = f.user_id
 where f.n between :flo and :fhi;
update app.fairness_next_seeds n set server_seed = x.seed, server_seed_hash = encode(sha256(x.seed), 'hex'),
                                     committed_at = now() - interval ':days days' - interval '1 hour'
  from (select f.user_id, decode(md5(random()::text || f.n) || md5(f.n || random()::text), 'hex') as seed
          from bench.fans f where f.n between :flo and :fhi) x
 where n.user_id = x.user_id;
insert into bench.so (n, order_id, user_id, gacha_id, vtuber_id, created_at)
select k.k, gen_random_uuid(), f.user_id, b.gacha_id, b.vtuber_id,
       now() - interval '1 hour' - random() * interval ':days days'
  from (select k, :flo + floor((:fhi - :flo + 1) * random() ^ 2)::integer as fn,
               1 + floor(:ng * random())::integer as gn
          from generate_series(:olo, :ohi) k) k
  join bench.fans f on f.n = k.fn join bench.gachas b on b.n = k.gn;
-- Each order is bound to its draw at creation (seed, first nonce, rate table), as create_order does.
insert into app.orders (id, user_id, gacha_id, vtuber_id, pull_count, amount_jpy, medals, currency, idempotency_key,
                        status, provider, provider_payment_id, created_at, expires_at, paid_at, fulfilled_at,
                        seed_id, first_nonce, rate_table_version)
select so.order_id, so.user_id, so.gacha_id, so.vtuber_id, 10, 1000, 100, 'JPY', 'hist-' || so.n, 'fulfilled',
       'stripe', 'pi_hist_' || so.n, so.created_at, so.created_at + interval '30 minutes', so.created_at,
       so.created_at, s.id, so.n::bigint * 10, b.rate_version
  from bench.so so join bench.gachas b on b.gacha_id = so.gacha_id
  join app.fairness_seeds s on s.user_id = so.user_id and s.active
 where so.n between :olo and :ohi;
update app.fairness_seeds s set next_nonce = x.next
  from (select so.user_id, max(so.n)::bigint * 10 + 10 as next from bench.so so
         where so.n between :olo and :ohi group by 1) x
 where s.user_id = x.user_id and s.active;
create temporary table gen_pulls on commit drop as select coalesce(max(id), 0) as before from app.pulls;
-- Each pull's item is drawn by the gacha's rates, as a draw picks it: a roll uniform on [0, 1000000)
-- falls in the cumulative rate range [lo, hi) of one item (in draw order), so the history has every
-- item of a gacha in proportion to its odds (item_pulls_daily: one row per item and day, and the
-- rate audit passes), with the pull's item, rarity and roll consistent.
create temporary table gen_items on commit drop as
select i.gacha_id, i.id as item_id, i.rarity, sum(i.rate_ppm) over w - i.rate_ppm as lo, sum(i.rate_ppm) over w as hi
  from app.gacha_items i join bench.gachas b on b.gacha_id = i.gacha_id
window w as (partition by i.gacha_id order by i.sort_order, i.id);
analyze gen_items;
insert into app.pulls (order_id, user_id, gacha_id, gacha_item_id, rarity, seed_id, nonce, roll, rate_table_version,
                       pity, created_at)
select x.order_id, x.user_id, x.gacha_id, it.item_id, it.rarity, x.seed_id, x.nonce, x.roll, x.rate_version, false,
       x.created_at
  from (select so.order_id, so.user_id, so.gacha_id, s.id as seed_id, so.n::bigint * 10 + g as nonce,
               floor(random() * 1000000)::integer as roll, b.rate_version, so.created_at
          from bench.so so join bench.gachas b on b.gacha_id = so.gacha_id
          join app.fairness_seeds s on s.user_id = so.user_id and s.active cross join generate_series(0, 9) g
         where so.n between :olo and :ohi
        offset 0) x  -- a fence: each row's roll is drawn once, then compared with both bounds
  join gen_items it on it.gacha_id = x.gacha_id and x.roll >= it.lo and x.roll < it.hi;
insert into app.user_rewards (user_id, source, pull_id, gacha_item_id, content_bucket, content_path, created_at)
select p.user_id, 'pull', p.id, p.gacha_item_id, 'rewards', 'bench/history.png', p.created_at
  from app.pulls p where p.id > (select before from gen_pulls);
create temporary table gen_ledger on commit drop as
select so.user_id, so.vtuber_id, 100::bigint as delta, 'pull_grant' as reason, so.order_id, null::text as note,
       so.created_at
  from bench.so so where so.n between :olo and :ohi
union all
select so.user_id, so.vtuber_id, 5, 'admin_adjustment', null, 'bench history',
       so.created_at + (a * interval '1 minute')
  from bench.so so cross join generate_series(1, :adj) a where so.n between :olo and :ohi;
insert into app.medal_ledger (user_id, vtuber_id, delta, reason, previous_balance, new_balance, order_id, note,
                              created_at)
select user_id, vtuber_id, delta, reason, bal - delta, bal, order_id, note, created_at
  from (select l.*, sum(l.delta) over (partition by l.user_id, l.vtuber_id order by l.created_at, l.reason
                                       rows unbounded preceding) as bal
          from gen_ledger l) x
 order by created_at;
insert into app.medal_balances (user_id, vtuber_id, balance, updated_at)
select user_id, vtuber_id, sum(delta), max(created_at) from gen_ledger group by 1, 2;
set session_replication_role = origin;
"""

# Fans as the sign-up path makes them (auth.users, then private.handle_new_user: a profile named
# after the address's local part with the birth date from the metadata, the 'fan' role; then
# profiles_after_insert_commit_seed: a committed next server seed), set-based with triggers off.
FANS_SQL = f"""
set session_replication_role = replica;
insert into bench.fans (n, user_id) select n, gen_random_uuid() from generate_series(:lo, :hi) n;
{data.USERS_SQL.replace("{table}", "bench.fans").replace("%(prefix)s", "'bench-fan-'")
                .replace("%(lo)s", ":lo").replace("%(hi)s", ":hi")};
insert into app.profiles (user_id, display_name, birth_date)
select f.user_id, 'bench-fan-' || f.n, date '1990-01-01' from bench.fans f where f.n between :lo and :hi;
insert into app.user_roles (user_id, role) select f.user_id, 'fan' from bench.fans f where f.n between :lo and :hi;
insert into app.fairness_next_seeds (user_id, server_seed, server_seed_hash, committed_at)
select x.user_id, x.seed, encode(sha256(x.seed), 'hex'), now()
  from (select f.user_id, extensions.gen_random_bytes(32) as seed from bench.fans f where f.n between :lo and :hi) x;
set session_replication_role = origin;
"""
# What the triggers guarantee, checked after the load: 0 fans without a profile, role or seed.
FANS_CHECK = """
select count(*) from bench.fans f
 where f.n between %(lo)s and %(hi)s
   and (not exists (select 1 from app.profiles p where p.user_id = f.user_id)
        or not exists (select 1 from app.user_roles r where r.user_id = f.user_id and r.role = 'fan')
        or not exists (select 1 from app.fairness_next_seeds s where s.user_id = f.user_id)
        or not exists (select 1 from auth.users u where u.id = f.user_id))"""
BIG_TABLES = ("app.orders", "app.pulls", "app.user_rewards", "app.medal_ledger")
# Secondary indexes (not those behind a primary key or unique constraint, which stay).
INDEXES_SQL = """
select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
  from pg_index i
 where i.indrelid = any (%s::regclass[])
   and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)"""

QUERIES = {
    "get_medal_balances": ("authenticated", "select public.get_medal_balances();"),
    "list_my_rewards (first page)": ("authenticated", "select public.list_my_rewards(50, 0);"),
    "get_order": ("authenticated", "select public.get_order(so.order_id) from bench.so so where so.n = :o;"),
    "get_gacha": ("anon", "select public.get_gacha((select b.gacha_id from bench.gachas b where b.n = :g));"),
}

SCRIPT = """\\set o random(:olo, :ohi)
\\set g random(1, :ng)
begin;
select set_config('role', '{role}', true),
       set_config('request.jwt.claims', {claims}, true)
  from bench.so so where so.n = :o;
{query}
commit;
"""


def _script(role: str, query: str) -> str:
    claims = ("json_build_object('sub', so.user_id, 'role', 'authenticated', 'aud', 'authenticated')::text"
              if role == "authenticated" else "'{\"role\":\"anon\"}'")
    return SCRIPT.format(role=role, claims=claims, query=query)


def _generate(db: BenchDB, sf: float, ng: int, olo: int) -> tuple[int, int, float]:
    fans = max(50, round(FULL["fans"] * sf))
    orders = max(50, round(FULL["orders"] * sf))
    adj = max(0, FULL["ledger"] // FULL["orders"] - 1)
    t0 = time.monotonic()
    flo = _bulk_fans(db, fans)
    _progress(f"{fans:,} fans in {time.monotonic() - t0:.0f} s")
    sql = GEN_SQL
    for k, v in {"flo": flo, "fhi": flo + fans - 1, "olo": olo, "ohi": olo + orders - 1, "ng": ng, "adj": adj,
                 "days": DAYS}.items():
        sql = sql.replace(f":{k}", str(v))
    with db.connect() as conn:
        with conn.transaction():
            indexes = conn.execute(INDEXES_SQL, (list(BIG_TABLES),)).fetchall()
            for name, _ in indexes:
                conn.execute(f"drop index {name}")
            conn.execute(sql)
            _progress(f"{orders:,} orders of history loaded at {time.monotonic() - t0:.0f} s")
            conn.execute("set maintenance_work_mem = '1GB'")
            for _, ddl in indexes:
                conn.execute(ddl)
            _progress(f"{len(indexes)} indexes built at {time.monotonic() - t0:.0f} s")
        for t in (*BIG_TABLES, "app.medal_balances", "app.fairness_seeds", "app.fairness_next_seeds", "bench.so",
                  "auth.users", "app.profiles"):
            conn.execute(f"vacuum analyze {t}")
    _progress(f"history generated in {time.monotonic() - t0:.0f} s")
    return olo + orders - 1, fans, time.monotonic() - t0


def _progress(msg: str) -> None:
    print(f"scale: {msg}", file=sys.stderr, flush=True)


def _bulk_fans(db: BenchDB, count: int) -> int:
    """`count` fans as sign-up makes them, set-based (see FANS_SQL); returns the first n."""
    lo, hi = db.fans + 1, db.fans + count
    with db.connect() as conn:
        with conn.transaction():
            conn.execute(FANS_SQL.replace(":lo", str(lo)).replace(":hi", str(hi)))
        missing = conn.execute(FANS_CHECK, {"lo": lo, "hi": hi}).fetchone()[0]
    if missing:
        raise RuntimeError(f"{missing} bench fans lack what the sign-up triggers make")
    db.fans = hi
    return lo


def _measure(db: BenchDB, tag: str, olo: int, ohi: int, ng: int, duration: float, clients: int) -> dict:
    out = {}
    for name, (role, query) in QUERIES.items():
        out[name] = pgbench(db.url, _script(role, query), f"{name} ({tag})", clients, duration,
                            {"olo": olo, "ohi": ohi, "ng": ng})
    return out


def _plans(db: BenchDB, o: int) -> dict:
    """auto_explain of every statement the functions run (nested), as notices."""
    plans = {}
    # Diagnostics, not the workload: LOAD of a library outside $libdir/plugins and
    # auto_explain's settings need a superuser, so this session is the tooling superuser's
    # (the queries themselves still run under the API role each script sets).
    with psycopg.connect(superuser_url(db.url), autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("load 'auto_explain'")
        conn.execute("set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on; "
                     "set auto_explain.log_analyze = on; set auto_explain.log_level = notice; "
                     "set client_min_messages = notice")
        for name, (role, query) in QUERIES.items():
            notices.clear()
            with conn.transaction():
                conn.execute(_script(role, query).split("begin;\n", 1)[1].rsplit("commit;", 1)[0]
                             .replace(":o", str(o)).replace(":g", "1"))
            text = "\n".join(n for n in notices if "Query Text" in n or "Plan" in n or "Scan" in n)
            seq = sorted(set(re.findall(r"Seq Scan on (\w+)", text)) - {"gachas", "gacha_items", "vtubers", "fans",
                                                                          "rate_tables", "so"})
            big_seq = [t for t in seq if t in ("orders", "pulls", "user_rewards", "medal_ledger", "medal_balances",
                                               "profiles", "users", "fairness_seeds", "exchanges")]
            idx = re.findall(r"Index (?:Only )?Scan (?:Backward )?(?:using|on) (\w+)", text)
            plans[name] = {"index_scans": sorted(set(idx)),
                           "seq_scans_on_big_tables": big_seq, "plan_excerpt": text[:4000]}
    return plans


def scale(db: BenchDB, opts: dict) -> dict:
    with db.connect() as conn:
        for f in ("public.get_medal_balances()", "public.list_my_rewards(integer,integer)",
                  "public.get_gacha(uuid)", "public.get_order(uuid)"):
            if not has_function(conn, f):
                raise Skip(f"{f} is not in the repository yet")
        conn.execute(SCALE_TABLE)
        ng = conn.execute("select count(*) from bench.gachas where kind = 'spread'").fetchone()[0]
    sf = opts["scale_factor"]
    d = opts["duration"] if opts.get("smoke") else min(opts["duration"], 5)
    clients = 4
    small_sf = sf / 100
    ohi_small, _, t_small = _generate(db, small_sf, ng, 1)
    small = _measure(db, f"small, sf {small_sf:g}", 1, ohi_small, ng, d, clients)
    ohi, fans, t_big = _generate(db, sf - small_sf, ng, ohi_small + 1)
    big = _measure(db, f"sf {sf:g}", ohi_small + 1, ohi, ng, d, clients)
    with db.connect() as conn:
        counts = dict(conn.execute("""
          select 'fans', count(*) from bench.fans union all select 'orders', count(*) from app.orders
          union all select 'pulls', count(*) from app.pulls
          union all select 'user_rewards', count(*) from app.user_rewards
          union all select 'medal_ledger', count(*) from app.medal_ledger
          union all select 'db_size_mb', pg_database_size(current_database()) / 1048576""").fetchall())
    plans = _plans(db, ohi)
    rows, targets = [], []
    for name in QUERIES:
        rows += [row(small[name]), row(big[name], small[name])]
        p95 = big[name].p95_ms
        targets.append(target(f"{name} p95 ms at sf {sf:g}", p95, "<= 5", p95 is not None and p95 <= 5))
        targets.append(target(f"{name}: index use, no seq scan on a big table",
                              ", ".join(plans[name]["index_scans"]) or "none", "index scans only",
                              bool(plans[name]["index_scans"]) and not plans[name]["seq_scans_on_big_tables"]))
    dash = dashboard.dashboards(db, opts, d, clients)
    with db.connect() as conn:
        # The history's pulls as the rollups count them (caught up by the dashboards' job runs):
        # items drawn against gachas drawn from (each gacha's items in proportion to its odds, not
        # one item per gacha), and rows whose rarity is not their item's (0 by construction).
        items, gachas, wrong = conn.execute("""
          select count(distinct d.gacha_item_id), count(distinct d.gacha_id),
                 count(*) filter (where d.rarity <> i.rarity)
            from app.item_pulls_daily d join app.gacha_items i on i.id = d.gacha_item_id""").fetchone()
    history = {"items_drawn": items, "gachas_drawn": gachas, "rarity_not_the_items": wrong}
    return {"rows": rows + dash["rows"], "targets": targets + dash["targets"],
            "checks": {"counts": counts, "generate_s": round(t_small + t_big, 1), "history_items": history,
                       "dashboards": dash["checks"]},
            "plans": plans,
            "notes": [f"scale factor {sf:g}: {fans:,} fans with a skewed number of orders (random()^2), "
                      f"10-pull orders over {DAYS} days, {math.floor(FULL['ledger'] / FULL['orders'])} ledger "
                      f"entries per order; {clients} pgbench clients, role and claims set as PostgREST does; "
                      "ratio = small-data throughput kept at scale", *dash["notes"]]}
