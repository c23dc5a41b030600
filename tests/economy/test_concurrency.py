"""Many concurrent clients, random economy operations, then the invariants (pgledger/TigerBeetle style).

40 connections act as fans, the payment service and an admin through the public API (role and JWT
claims set as PostgREST does): orders (with replayed and reused keys), repeated and concurrent
fulfilments of the same orders, failures, exchanges racing for the last units, admin adjustments.
Any error other than a documented refusal (PTxxx) fails the test — deadlocks included.
"""

from __future__ import annotations

import collections
import random
import threading

import psycopg
import pytest
from economy_helpers import act_as, make_gacha

THREADS = 40
OPS_PER_THREAD = 150
FANS = 24


@pytest.fixture(scope="module")
def world(econ_url):
    with psycopg.connect(econ_url, autocommit=True) as conn:
        v1 = str(conn.execute("select econ_test.vtuber('cv1@t', 'One')").fetchone()[0])
        v2 = str(conn.execute("select econ_test.vtuber('cv2@t', 'Two')").fetchone()[0])
        admin = str(conn.execute("select tests.create_user('cadmin@t')").fetchone()[0])
        conn.execute("insert into app.user_roles (user_id, role) values (%s, 'admin')", (admin,))
        fans = [str(conn.execute("select econ_test.fan(%s)", (f"cf{i}@t",)).fetchone()[0]) for i in range(FANS)]
        gachas = {
            # capped, with a stocked rare item: both live in shards and are contended
            "capped": make_gacha(conn, v1, [{"name": "n", "rarity": "N", "rate_ppm": 700_000},
                                            {"name": "r", "rarity": "SR", "rate_ppm": 250_000, "stock": 900},
                                            {"name": "s", "rarity": "SSR", "rate_ppm": 50_000, "stock": 60}],
                                 cap=1500, pity_pulls=20, pity_rarity="SSR"),
            "open": make_gacha(conn, v2, [{"name": "n", "rarity": "N", "rate_ppm": 900_000},
                                          {"name": "s", "rarity": "SSR", "rate_ppm": 100_000}]),
        }
        items = {
            "scarce": str(conn.execute("select econ_test.exchange_item(%s, 5, 12, null, null)", (v1,)).fetchone()[0]),
            "limited": str(conn.execute("select econ_test.exchange_item(%s, 3, 400, 6, 3)", (v1,)).fetchone()[0]),
            "open": str(conn.execute("select econ_test.exchange_item(%s, 2)", (v2,)).fetchone()[0]),
        }
        # starting medals so exchanges race from the start
        for f in fans:
            for v in (v1, v2):
                conn.execute("select private.post_medals(%s, %s, 40, 'admin_adjustment', null, null, 'start', now())",
                             (f, v))
    return {"url": econ_url, "vtubers": [v1, v2], "admin": admin, "fans": fans, "gachas": gachas, "items": items}


def test_random_concurrent_operations_keep_the_invariants(world):
    url = world["url"]
    orders: list[tuple[str, int]] = []  # (order_id, amount)
    orders_lock = threading.Lock()
    fulfilled_true = collections.Counter()
    unexpected: list[str] = []
    refusals = collections.Counter()
    barrier = threading.Barrier(THREADS)

    def call(conn, who, role, sql, params):
        with conn.transaction():
            act_as(conn, who, role)
            return conn.execute(sql, params).fetchone()[0]

    def worker(seed: int):
        rng = random.Random(seed)
        with psycopg.connect(url, autocommit=True) as conn:
            barrier.wait()
            for _ in range(OPS_PER_THREAD):
                op = rng.choices(["order", "fulfil", "exchange", "adjust", "fail"], [35, 35, 22, 4, 4])[0]
                fan = rng.choice(world["fans"])
                try:
                    if op == "order":
                        g = rng.choice(list(world["gachas"].values()))
                        count = rng.choice([1, 10])
                        key = f"o{rng.randrange(6)}"  # small pool: replays and reused keys happen
                        res = call(conn, fan, "authenticated", "select public.create_order(%s, %s, %s)",
                                   (g, count, key))
                        with orders_lock:
                            orders.append((res["order_id"], res["amount_jpy"]))
                    elif op == "fulfil":
                        with orders_lock:
                            if not orders:
                                continue
                            # recent orders, so several threads hit the same order at once
                            oid, amount = rng.choice(orders[-8:])
                        res = call(conn, None, "service_role",
                                   "select public.service_fulfill_order(%s, %s, %s, %s, %s)",
                                   (oid, "stripe", f"pi_{oid}", amount, "JPY"))
                        if res["fulfilled"]:
                            with orders_lock:
                                fulfilled_true[oid] += 1
                    elif op == "exchange":
                        item = rng.choice(list(world["items"].values()))
                        call(conn, fan, "authenticated", "select public.exchange_medals(%s, %s, %s)",
                             (item, rng.choice([1, 1, 2, 3]), f"x{rng.randrange(8)}"))
                    elif op == "adjust":
                        call(conn, world["admin"], "authenticated",
                             "select public.admin_adjust_medals(%s, %s, %s, %s)",
                             (fan, rng.choice(world["vtubers"]), rng.choice([-30, -5, 5, 25]), "support ticket"))
                    else:
                        with orders_lock:
                            if not orders:
                                continue
                            oid, _ = rng.choice(orders[-8:])
                        call(conn, None, "service_role", "select public.service_fail_order(%s, %s)", (oid, "failed"))
                except psycopg.Error as exc:
                    state = exc.sqlstate or "?"
                    if state.startswith("PT"):
                        refusals[(state, exc.diag.message_primary)] += 1
                    else:
                        unexpected.append(f"{op}: {state} {exc} {exc.diag.message_detail} {exc.diag.context}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    print("refusals:", dict(refusals), "fulfilments:", len(fulfilled_true))
    assert not unexpected, unexpected[:10]
    assert sum(refusals.values()) < THREADS * OPS_PER_THREAD
    allowed = {"idempotency_key_reused", "gacha_sold_out", "insufficient_medals", "out_of_stock",
               "exchange_limit_reached", "payment_already_used", "order_cannot_be_fulfilled"}
    assert {m for _s, m in refusals} <= allowed, refusals

    with psycopg.connect(url) as conn:
        q = lambda sql, *a: conn.execute(sql, a).fetchall()  # noqa: E731
        # Σ ledger = balance for every (fan, VTuber); nothing negative
        assert q("""select b.user_id, b.vtuber_id, b.balance, coalesce(sum(l.delta), 0)
                      from app.medal_balances b left join app.medal_ledger l
                        on l.user_id = b.user_id and l.vtuber_id = b.vtuber_id
                     group by 1, 2, 3 having b.balance <> coalesce(sum(l.delta), 0)""") == []
        assert q("select count(*) from app.medal_balances where balance < 0")[0][0] == 0
        # every entry chains: previous balance = the new balance of the account's entry before it
        assert q("""select count(*) from (select previous_balance, lag(new_balance, 1, 0::bigint)
                      over (partition by user_id, vtuber_id order by id) as before from app.medal_ledger) x
                     where previous_balance <> before""")[0][0] == 0
        # each order fulfilled at most once: one grant, pull_count pulls, exactly one fulfilling call
        n_fulfilled = q("select count(*) from app.orders where status = 'fulfilled'")[0][0]
        assert n_fulfilled > 50
        assert q("""select o.id from app.orders o
                     where (select count(*) from app.pulls p where p.order_id = o.id)
                           <> case when o.status = 'fulfilled' then o.pull_count else 0 end
                        or (select count(*) from app.medal_ledger l where l.order_id = o.id and l.reason = 'pull_grant')
                           <> (o.status = 'fulfilled')::int""") == []
        statuses = dict(q("select id::text, status from app.orders"))
        assert all(n == 1 for n in fulfilled_true.values())
        assert {o for o, s in statuses.items() if s == 'fulfilled'} == set(fulfilled_true)
        assert q("select count(*) from app.user_rewards where source = 'pull'")[0][0] == \
            q("select count(*) from app.pulls")[0][0]
        # reservations: only pending orders hold any
        assert q("""select count(*) from app.order_reservations r join app.orders o on o.id = r.order_id
                     where o.status <> 'pending'""")[0][0] == 0
        # gacha stock and cap within bounds, and conserved: shards + reserved + sold = total
        for item_id, stock, remaining in q("select id, stock, stock_remaining from app.gacha_items "
                                          "where stock is not null"):
            sold = q("select count(*) from app.pulls where gacha_item_id = %s", item_id)[0][0]
            assert 0 <= remaining == stock - sold
            shards = q("select coalesce(sum(remaining), 0) from app.stock_shards where counter_id = %s", item_id)[0][0]
            reserved = q("select coalesce(sum(quantity), 0) from app.order_reservations where counter_id = %s",
                         item_id)[0][0]
            if shards or reserved:
                assert shards + reserved + sold == stock
        g = world["gachas"]["capped"]
        sold = q("select count(*) from app.pulls where gacha_id = %s", g)[0][0]
        shards = q("select coalesce(sum(remaining), 0) from app.stock_shards where counter_id = %s", g)[0][0]
        reserved = q("select coalesce(sum(quantity), 0) from app.order_reservations where counter_id = %s", g)[0][0]
        assert sold <= 1500 and shards + reserved + sold == 1500
        # exchange stock never below zero, conserved; limits by quantity hold; one effect per key
        for _item_id, total in q("select id, total_stock from app.exchange_items where total_stock is not null"):
            assert total >= 0
        scarce = world["items"]["scarce"]
        exchanged = q("select coalesce(sum(quantity), 0) from app.exchanges where exchange_item_id = %s", scarce)[0][0]
        assert exchanged + q("select total_stock from app.exchange_items where id = %s", scarce)[0][0] == 12
        assert exchanged == 12, "the scarce item should have sold out under this load"
        assert q("""select user_id from app.exchanges where exchange_item_id = %s
                     group by user_id having sum(quantity) > 6""", world["items"]["limited"]) == []
        assert q("""select user_id, jst_date from app.exchanges where exchange_item_id = %s
                     group by 1, 2 having sum(quantity) > 3""", world["items"]["limited"]) == []
        assert q("""select e.id from app.exchanges e
                     where (select count(*) from app.user_rewards r where r.exchange_id = e.id) <> e.quantity
                        or (select count(*) from app.medal_ledger l where l.exchange_id = e.id) <> 1
                        or (select -delta from app.medal_ledger l where l.exchange_id = e.id)
                           <> e.medals_spent""") == []
        # idempotency keys: one order / one exchange per (fan, key)
        assert q("select count(*) from app.orders group by user_id, idempotency_key having count(*) > 1") == []
        assert q("select count(*) from app.exchanges group by user_id, idempotency_key having count(*) > 1") == []
