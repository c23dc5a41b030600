"""The benchmark scenarios (docs/performance.md). Each returns a dict: rows (measured runs with ratios), targets
(PASS/MISS, never asserted), checks and notes."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable

from ...settings import ANON_KEY
from . import ab, profile
from .env import BenchDB, has_function, mint_token
from .tools import Run, percentiles, pgbench, wrk

# Upper bounds on throughput used to size the queues of pending orders / fans per run
# (a client that runs out aborts loudly: it is reported as an error, never hidden).
CAP_FULFIL = 2000
CAP_BARE = 4000
CAP_ORDER_SQL = 5000
CAP_ORDER_HTTP = 3000


class Skip(Exception):
    """A scenario whose prerequisites are not in the repository yet."""


def row(run: Run, baseline: Run | None = None, what: str | None = None) -> dict:
    d = run.as_dict()
    d["what"] = what or run.label
    if baseline is not None and baseline.throughput:
        d["baseline"] = baseline.label
        d["ratio"] = round(run.throughput / baseline.throughput, 3)
    return d


def target(name: str, value, goal: str, ok: bool | None) -> dict:
    return {"target": name, "value": value, "goal": goal,
            "status": "n/a" if ok is None else ("PASS" if ok else "MISS")}


def rounds_rows(res: dict) -> list[dict]:
    """Every run of an interleaved comparison as a table row, the subject's with its round's ratio."""
    out = []
    for i, (a, b) in enumerate(res["runs"], 1):
        out.append(row(a, what=f"{a.label} (round {i})"))
        out.append(row(b, a, what=f"{b.label} (round {i})"))
    return out


# ---------------------------------------------------------------------------------------------
# fulfil-sql and hot-gacha
# ---------------------------------------------------------------------------------------------
FULFIL_SCRIPT = """\\set k :k + 1
\\set n :nbase + :client_id * :per + :k
begin;
select set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role":"service_role"}', true);
select public.service_fulfill_order((select q.order_id from bench.q q where q.n = :n), 'stripe',
                                    'pi_' || (:n)::text, 1000, 'JPY');
commit;
"""

# The same rows as a fulfilment (order -> fulfilled, seed nonce, 10 pulls, 10 rewards, balance,
# ledger entry) written by one bare statement with no checks, draws or locks beyond the writes.
BARE_SCRIPT = """\\set k :k + 1
\\set n :nbase + :client_id * :per + :k
begin;
with o as (
  update app.orders x set status = 'fulfilled', provider = 'stripe', provider_payment_id = 'pb_' || (:n)::text,
         paid_at = now(), fulfilled_at = now()
   where x.id = (select q.order_id from bench.q q where q.n = :n)
  returning x.id, x.user_id, x.gacha_id, x.vtuber_id, x.medals),
s as (
  update app.fairness_seeds s set next_nonce = s.next_nonce + 10 from o
   where s.user_id = o.user_id and s.active returning s.id, s.next_nonce - 10 as nonce0),
p as (
  insert into app.pulls (order_id, user_id, gacha_id, gacha_item_id, rarity, seed_id, nonce, roll,
                         rate_table_version, pity)
  select o.id, o.user_id, o.gacha_id, b.item_id, b.rarity, s.id, s.nonce0 + g, g, b.rate_version, false
    from o cross join s join bench.gachas b on b.gacha_id = o.gacha_id cross join generate_series(0, 9) g
  returning id, user_id, gacha_item_id),
r as (
  insert into app.user_rewards (user_id, source, pull_id, gacha_item_id, content_bucket, content_path)
  select p.user_id, 'pull', p.id, p.gacha_item_id, 'rewards', 'bench/bare.png' from p),
m as (
  insert into app.medal_balances as m (user_id, vtuber_id, balance)
  select o.user_id, o.vtuber_id, o.medals from o
  on conflict (user_id, vtuber_id) do update set balance = m.balance + excluded.balance, updated_at = now()
  returning m.user_id, m.vtuber_id, m.balance)
select 1 / (select count(*)::integer from m);
insert into app.medal_ledger (user_id, vtuber_id, delta, reason, previous_balance, new_balance, order_id)
select o.user_id, o.vtuber_id, o.medals, 'pull_grant', b.balance - o.medals, b.balance, o.id
  from app.orders o join app.medal_balances b on b.user_id = o.user_id and b.vtuber_id = o.vtuber_id
 where o.id = (select q.order_id from bench.q q where q.n = :n);
commit;
"""


def fulfil_run(db: BenchDB, label: str, script: str, clients: int, duration: float, gacha: str,
                cap: int) -> Run:
    per = math.ceil(cap * duration / clients) + 2
    nbase = db.queue_orders(per * clients, gacha)
    return pgbench(db.url, script, label, clients, duration, {"k": 0, "nbase": nbase, "per": per})


def _fulfilled_check(db: BenchDB) -> dict:
    with db.connect() as conn:
        bad = conn.execute("""
          select count(*) from app.orders o where o.status = 'fulfilled' and o.provider_payment_id like 'pi\\_%%'
             and (select count(*) from app.pulls p where p.order_id = o.id) <> o.pull_count""").fetchone()[0]
        ledger = conn.execute("""
          select count(*) from app.medal_balances b
           where b.balance <> (select coalesce(sum(l.delta), 0) from app.medal_ledger l
                                where l.user_id = b.user_id and l.vtuber_id = b.vtuber_id)""").fetchone()[0]
    return {"fulfilled_orders_with_wrong_pull_count": bad, "balances_not_equal_to_ledger_sum": ledger}


def fulfil_sql(db: BenchDB, opts: dict) -> dict:
    if not has_function_url(db, "public.service_fulfill_order(uuid,text,text,integer,text)"):
        raise Skip("public.service_fulfill_order is not in the repository yet")
    d = opts["duration"]
    conc = opts.get("concurrency") or [8, 32]
    rounds = opts.get("rounds") or 1
    rows, targets, runs, comparisons = [], [], {}, []
    for c in conc:
        res = ab.interleave(
            lambda i, c=c: fulfil_run(db, f"bare transaction, {c} clients", BARE_SCRIPT, c, d, "spread", CAP_BARE),
            lambda i, c=c: fulfil_run(db, f"service_fulfill_order, {c} clients", FULFIL_SCRIPT, c, d, "spread",
                                      CAP_FULFIL),
            rounds)
        runs[c] = res["runs"][-1][1]
        rows += rounds_rows(res)
        comp = ab.summary(f"service_fulfill_order / bare transaction, {c} clients", res, "bare transaction")
        comparisons.append(comp)
        med = comp["ratio"]["median"] or 0
        targets.append(target(f"{c} clients: median ratio to bare over {res['rounds']} interleaved rounds "
                              f"(spread {comp['ratio']['min']}-{comp['ratio']['max']})", med, ">= 0.85", med >= 0.85))
    cpu = {}
    if not opts.get("smoke"):
        # One client, nothing else on the connection: the CPU the database spends per fulfilment,
        # and per bare transaction (what the same writes cost with no logic) beside it, alternating
        # in rounds as the throughput runs do (a loaded machine makes every call cost more cycles).
        fs, bs = [], []
        for i in range(rounds):
            if i % 2 == 0:
                fs.append(profile.fulfil_cpu(db, 320))
                bs.append(profile.bare_cpu(db, 320))
            else:
                bs.append(profile.bare_cpu(db, 320))
                fs.append(profile.fulfil_cpu(db, 320))
        fms = [r["backend_cpu_ms_per_call"] for r in fs if r["backend_cpu_ms_per_call"] is not None]
        bms = [r["backend_cpu_ms_per_call"] for r in bs if r["backend_cpu_ms_per_call"] is not None]
        cpu = {"fulfilment": fs[-1], "bare": bs[-1], "fulfilment_ms": ab.spread(fms), "bare_ms": ab.spread(bms),
               "bare_over_fulfilment": ab.spread([b / f for f, b in zip(fms, bms, strict=False) if f])}
        f, b = cpu["fulfilment_ms"]["median"], cpu["bare_ms"]["median"]
        targets.append(target(f"database CPU per 10-pull fulfilment, ms, median of {len(fms)} rounds (backend "
                              f"rusage, 1 client; the bare transaction's: {b}; bare / fulfilment "
                              f"{cpu['bare_over_fulfilment']['median']})", f, "<= 0.5", f is not None and f <= 0.5))
    sweep = []
    if not opts.get("smoke") and not opts.get("concurrency"):
        for c in (1, 2, 4, 16, 64):
            sweep.append(row(fulfil_run(db, f"service_fulfill_order, {c} clients", FULFIL_SCRIPT, c,
                                         min(d, 5), "spread", CAP_FULFIL)))
        sweep += [row(r) for r in runs.values()]
        sweep.sort(key=lambda r: r["clients"])
    opts.setdefault("_spread", {}).update(runs)
    return {"rows": rows, "comparisons": comparisons, "targets": targets, "sweep": sweep, "cpu": cpu,
            "checks": _fulfilled_check(db),
            "notes": ["distinct fans (one order each), 10-pull orders spread over the spread gachas, called as "
                      "service_role with PostgREST's role and claims set; baseline writes the same rows in one "
                      "bare statement + ledger insert; baseline and fulfilment alternate in rounds (A B, B A, ...)"]}


def hot_gacha(db: BenchDB, opts: dict) -> dict:
    if not has_function_url(db, "public.service_fulfill_order(uuid,text,text,integer,text)"):
        raise Skip("public.service_fulfill_order is not in the repository yet")
    d = opts["duration"]
    c = max(opts.get("concurrency") or [32])
    spread = opts.get("_spread", {}).get(c)
    if spread is None:
        spread = fulfil_run(db, f"spread, {c} clients", FULFIL_SCRIPT, c, d, "spread", CAP_FULFIL)
    hot = fulfil_run(db, f"one gacha, no cap, {c} clients", FULFIL_SCRIPT, c, d, "hot", CAP_FULFIL)
    hotcap = fulfil_run(db, f"one gacha, total-pull cap, {c} clients", FULFIL_SCRIPT, c, d, "hotcap", CAP_FULFIL)
    rows = [row(spread), row(hot, spread), row(hotcap, spread)]
    targets = []
    for r in rows[1:]:
        targets.append(target(r["what"] + ": ratio to spread", r.get("ratio"), ">= 0.8",
                              (r.get("ratio") or 0) >= 0.8))
    with db.connect() as conn:
        cap = conn.execute("""
          select g.total_pull_cap, (select coalesce(sum(s.remaining), 0) from app.stock_shards s
                                     where s.counter_id = g.id),
                 (select count(*) from app.pulls p where p.gacha_id = g.id),
                 (select coalesce(sum(x.quantity), 0) from app.order_reservations x
                   where x.counter_id = g.id)
            from app.gachas g join bench.gachas b on b.gacha_id = g.id and b.kind = 'hotcap'""").fetchone()
    checks = {"cap_total": cap[0], "cap_remaining": cap[1], "capped_gacha_pulls": cap[2],
              "cap_reserved_by_pending_orders": cap[3],
              "cap_conserved": cap[0] == cap[1] + cap[2] + cap[3]}
    return {"rows": rows, "targets": targets, "checks": checks,
            "notes": ["every order on one gacha; the capped gacha has total_pull_cap = 100,000,000 "
                      "(sharded counter live, never sold out)"]}


def has_function_url(db: BenchDB, sig: str) -> bool:
    with db.connect() as conn:
        return has_function(conn, sig)


# ---------------------------------------------------------------------------------------------
# order-http
# ---------------------------------------------------------------------------------------------
ORDER_SQL_SCRIPT = """\\set k :k + 1
\\set n :nbase + :client_id * :per + :k
\\set f :flo + (:n - :nbase - 1) / 4
begin;
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('sub', f.user_id, 'role', 'authenticated',
                                                          'aud', 'authenticated')::text, true),
       set_config('request.method', 'POST', true), set_config('request.path', '/rpc/create_order', true),
       set_config('request.headers', '{"x-forwarded-for":"127.0.0.1"}', true)
  from bench.fans f where f.n = :f;
select private.check_request();
select public.create_order(b.gacha_id, 10, 'pb-' || (:n)::text)
  from bench.fans f join bench.gachas b on b.kind = 'spread' and b.n = 1 + f.n % :ng where f.n = :f;
commit;
"""


def _lua_str_list(name: str, items: list[str]) -> str:
    return name + " = {" + ",".join(json.dumps(s) for s in items) + "}\n"


def _order_http_run(db: BenchDB, api: str, conns: int, duration: float, ng: int, spread: list[str],
                    run_tag: str) -> Run:
    # Each fan makes at most 4 orders (create_order's limit is 5 a minute), as in the pgbench
    # baseline; there a fan's orders come one after the other from one client. Here request i goes
    # to fan i mod M of its block of 4·M requests, so a fan's orders are M requests apart and never
    # in flight together (consecutive requests for one fan queued on that fan's rate-limit counter
    # row, a wait the baseline does not have).
    spacing = max(64, 8 * conns)
    nfans = math.ceil(CAP_ORDER_HTTP * duration / 4) + spacing
    flo = db.new_fans(nfans)
    ids = db.fan_ids(flo, nfans)
    tokens = ["Bearer " + mint_token(u) for u in ids]
    gachas = [spread[(flo + i) % ng] for i in range(nfans)]
    lua = (_lua_str_list("tokens", tokens) + _lua_str_list("gachas", gachas) +
           f'anon = {json.dumps(ANON_KEY)}\nrun = {json.dumps(run_tag)}\nspacing = {spacing}\n' + """
request = function()
  local i = counter * nthreads + tid
  counter = counter + 1
  local f = (math.floor(i / (4 * spacing)) * spacing + i % spacing) % #tokens + 1
  local body = '{"p_gacha_id":"' .. gachas[f] .. '","p_pull_count":10,"p_idempotency_key":"' .. run .. '-' .. i .. '"}'
  return wrk.format("POST", "/rest/v1/rpc/create_order",
                    {["Authorization"] = tokens[f], ["apikey"] = anon, ["Content-Type"] = "application/json"}, body)
end
""")
    with profile.PartyCPU(db, {"API": db.api_pids[api]}) as cpu:
        run = wrk(api, lua, f"POST /rest/v1/rpc/create_order, {conns} connections", conns, duration)
    run.cpu_ms_per_request = cpu.ms_per(run.ops)
    return run


def order_http(db: BenchDB, opts: dict) -> dict:
    if not has_function_url(db, "public.create_order(uuid,integer,text)"):
        raise Skip("public.create_order is not in the repository yet")
    d = opts["duration"]
    api = opts["api"]()
    ng = db._spread_count()
    spread = db.gacha_ids("spread")
    conc = opts.get("concurrency") or [32]
    rounds = opts.get("rounds") or 1
    rows, targets, comparisons = [], [], []

    def baseline(c: int) -> Run:
        per = math.ceil(CAP_ORDER_SQL * d / c) + 2
        flo = db.new_fans(math.ceil(per * c / 4) + 1)
        nbase = db.queued
        db.queued += per * c
        # The database's CPU per transaction here is what the HTTP path's is compared with.
        with profile.PartyCPU(db, {}) as cpu:
            run = pgbench(db.url, ORDER_SQL_SCRIPT, f"pgbench: same transaction, {c} clients", c, d,
                          {"k": 0, "nbase": nbase, "per": per, "flo": flo, "ng": ng})
        run.cpu_ms_per_request = cpu.ms_per(run.ops)
        run.cpu_ms_per_request["pgbench"] = round(run.generator_cpu_s * 1000 / run.ops, 3) if run.ops else None
        return run

    for c in conc:
        res = ab.interleave(lambda i, c=c: baseline(c),
                            lambda i, c=c: _order_http_run(db, api, c, d, ng, spread, f"w{c}-{time.time_ns()}"),
                            rounds)
        rows += rounds_rows(res)
        comp = ab.summary(f"create_order over HTTP / pgbench, {c} connections", res, "pgbench, same transaction")
        # Where a request's time goes: CPU ms per request of the API and of PostgreSQL (median of rounds).
        per = [b.cpu_ms_per_request for _a, b in res["runs"]]
        comp["cpu_ms_per_request"] = {k: ab.spread([p[k] for p in per if k in p])["median"] for k in per[0]}
        base = [a.cpu_ms_per_request for a, _b in res["runs"]]
        comp["baseline_cpu_ms_per_request"] = {k: ab.spread([p[k] for p in base if p.get(k) is not None])["median"]
                                               for k in base[0]}
        comparisons.append(comp)
        med, p99 = comp["ratio"]["median"] or 0, comp["p99_ratio"]["median"]
        targets.append(target(f"{c} connections: median ratio to pgbench over {res['rounds']} rounds "
                              f"(spread {comp['ratio']['min']}-{comp['ratio']['max']})", med, ">= 0.75", med >= 0.75))
        targets.append(target(f"{c} connections: median p99 relative to pgbench's p99 "
                              f"(spread {comp['p99_ratio']['min']}-{comp['p99_ratio']['max']})", p99, "<= 1.5",
                              p99 is not None and p99 <= 1.5))
    hook = profile.check_request_cpu(db, 200 if opts.get("smoke") else 1000)
    targets.append(target("pre-request hook (private.check_request, signed-in create_order: two buckets): "
                          f"statements on the counters per request (backend CPU {hook['backend_cpu_ms_per_request']} "
                          f"ms, executor {hook['hook_exec_ms_per_request']} ms per request)",
                          hook["counter_statements_per_request"], "1", hook["counter_statements_per_request"] == 1))
    sweep = []
    if not opts.get("smoke") and not opts.get("concurrency"):
        for c in (1, 2, 4, 8, 16, 64):
            sweep.append(row(_order_http_run(db, api, c, min(d, 5), ng, spread, f"s{c}-{time.time_ns()}")))
        sweep += [r for r in rows if r["tool"] == "wrk"][-1:]
        sweep.sort(key=lambda r: r["clients"])
    return {"rows": rows, "comparisons": comparisons, "targets": targets, "sweep": sweep, "check_request": hook,
            "notes": [f"API: python -m koepon.localstack.api --workers {opts['api_workers']} (uvicorn), "
                      "fans' HS256 JWTs "
                      "minted for fresh fans, each fan at most 4 orders (create_order limit is 5/min/fan); "
                      "the pgbench baseline runs what PostgREST runs for the request: role + claims + request "
                      "GUCs, the pre-request hook private.check_request(), the call"]}


# ---------------------------------------------------------------------------------------------
# catalog-http
# ---------------------------------------------------------------------------------------------
CATALOG_SQL_SCRIPT = """\\set g random(1, :ng)
begin isolation level read committed read only;
select set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true),
       set_config('request.method', 'GET', true), set_config('request.path', '/rpc/get_gacha', true),
       set_config('request.headers', '{"x-forwarded-for":"127.0.0.1"}', true);
select private.check_request();
select public.get_gacha((select b.gacha_id from bench.gachas b where b.n = :g));
commit;
"""
CATALOG_BARE_SCRIPT = """\\set g random(1, :ng)
select public.get_gacha((select b.gacha_id from bench.gachas b where b.n = :g));
"""


def catalog_http(db: BenchDB, opts: dict) -> dict:
    if not has_function_url(db, "public.get_gacha(uuid)"):
        raise Skip("public.get_gacha is not in the repository yet")
    d = opts["duration"]
    api = opts["api"]()
    ng = db._spread_count()
    spread = db.gacha_ids("spread")
    rows, targets = [], []
    for c in opts.get("concurrency") or [32]:
        bare = pgbench(db.url, CATALOG_BARE_SCRIPT, f"pgbench: get_gacha alone, {c} clients", c, d, {"ng": ng})
        base = pgbench(db.url, CATALOG_SQL_SCRIPT, f"pgbench: same transaction as anon, {c} clients", c, d,
                       {"ng": ng})
        lua = _lua_str_list("gachas", spread) + f"anon = {json.dumps(ANON_KEY)}\n" + """
request = function()
  counter = counter + 1
  local g = gachas[(counter * nthreads + tid) % #gachas + 1]
  return wrk.format("GET", "/rest/v1/rpc/get_gacha?p_gacha_id=" .. g,
                    {["Authorization"] = "Bearer " .. anon, ["apikey"] = anon})
end
"""
        http = wrk(api, lua, f"GET /rest/v1/rpc/get_gacha (anon), {c} connections", c, d)
        rows += [row(bare), row(base), row(http, base)]
        ratio = http.throughput / base.throughput if base.throughput else 0
        targets.append(target(f"{c} connections: ratio to pgbench", round(ratio, 3), ">= 0.5", ratio >= 0.5))
    return {"rows": rows, "targets": targets,
            "notes": ["anonymous gacha detail with items and odds; the baseline is the transaction PostgREST runs "
                      "(read only, anon role + claims, pre-request hook, call); the bare call is shown for scale"]}


# ---------------------------------------------------------------------------------------------
# exchange-race
# ---------------------------------------------------------------------------------------------
def exchange_race(db: BenchDB, opts: dict) -> dict:
    if not has_function_url(db, "public.exchange_medals(uuid,integer,text)"):
        raise Skip("public.exchange_medals is not in the repository yet")
    import httpx

    api = opts["api"]()
    fans, stock, cost = 200, 100, 100
    flo = db.new_fans(fans)
    ids = db.fan_ids(flo, fans)
    with db.connect() as conn:
        vt = conn.execute("select vtuber_id from bench.gachas where kind = 'spread' order by n limit 1").fetchone()[0]
        item = conn.execute("""insert into app.exchange_items (vtuber_id, name, medal_cost, total_stock, content_path)
                               values (%s, 'Race item', %s, %s, 'bench/race.png') returning id""",
                            (vt, cost, stock)).fetchone()[0]
        conn.execute("""select private.post_medals(f.user_id, %s, 250, 'admin_adjustment', null, null, 'bench race',
                                                   now()) from bench.fans f where f.n between %s and %s""",
                     (vt, flo, flo + fans - 1))
    tokens = [mint_token(u) for u in ids]

    async def race():
        limits = httpx.Limits(max_connections=fans, max_keepalive_connections=fans)
        async with httpx.AsyncClient(base_url=api, limits=limits, timeout=60) as client:
            gate = asyncio.Event()

            async def one(tok: str, i: int):
                await gate.wait()
                t0 = time.perf_counter()
                r = await client.post("/rest/v1/rpc/exchange_medals",
                                      headers={"Authorization": f"Bearer {tok}", "apikey": ANON_KEY},
                                      json={"p_exchange_item_id": str(item), "p_quantity": 1,
                                            "p_idempotency_key": f"race-{i}"})
                return r.status_code, (r.json() if r.content else {}), (time.perf_counter() - t0) * 1000

            tasks = [asyncio.create_task(one(t, i)) for i, t in enumerate(tokens)]
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            gate.set()
            res = await asyncio.gather(*tasks)
            return res, time.perf_counter() - t0

    res, wall = asyncio.run(race())
    ok = sum(1 for s, _, _ in res if s == 200)
    oos = sum(1 for s, b, _ in res if s == 409 and isinstance(b, dict) and b.get("message") == "out_of_stock")
    other = [(s, b.get("message") if isinstance(b, dict) else b) for s, b, _ in res
             if not (s == 200 or (s == 409 and isinstance(b, dict) and b.get("message") == "out_of_stock"))]
    with db.connect() as conn:
        left = conn.execute("select total_stock from app.exchange_items where id = %s", (item,)).fetchone()[0]
        mismatched = conn.execute("""
          select count(*) from app.medal_balances b join bench.fans f on f.user_id = b.user_id
           where f.n between %s and %s and b.balance <> (select coalesce(sum(l.delta), 0) from app.medal_ledger l
                                                         where l.user_id = b.user_id and l.vtuber_id = b.vtuber_id)""",
                                  (flo, flo + fans - 1)).fetchone()[0]
        exchanges = conn.execute("select count(*) from app.exchanges where exchange_item_id = %s",
                                 (item,)).fetchone()[0]
    lat = [ms for _, _, ms in res]
    run = Run("200 fans race for stock 100 (httpx, 200 concurrent POSTs)", "httpx", fans, wall, ops=len(res),
              errors=len(other), throughput=round(len(res) / wall, 1), **percentiles(lat))
    checks = {"succeeded": ok, "out_of_stock": oos, "other_answers": other[:10], "stock_left": left,
              "exchanges_rows": exchanges, "balances_not_equal_to_ledger_sum": mismatched}
    good = ok == stock and oos == fans - stock and left == 0 and exchanges == stock and mismatched == 0
    return {"rows": [row(run)], "checks": checks,
            "targets": [target("exactly 100 succeed, 100 out_of_stock, Σ ledger = balance",
                               f"{ok} ok / {oos} out_of_stock / {mismatched} mismatched", "100 / 100 / 0", good)],
            "notes": ["each fan holds 250 medals; item costs 100, stock 100; all requests released at once"]}


SCENARIOS: dict[str, Callable[[BenchDB, dict], dict]] = {}
