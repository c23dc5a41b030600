"""Economy edges under concurrency, through the public API as PostgREST would call it:
concurrent downloads of one reward never exceed 3 a day; concurrent provider refunds of one order
never exceed the payment and claw back once; refunds racing exchanges and admin adjustments keep
sum(ledger) = balance, no balance negative, and clawed back + shortfall = the order's medals."""

from __future__ import annotations

import collections
import datetime
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from economy_helpers import act_as, make_gacha

THREADS = 32


@pytest.fixture(scope="module")
def world(econ_url):
    with psycopg.connect(econ_url, autocommit=True) as conn:
        v = str(conn.execute("select econ_test.vtuber('ev@t', 'Edges')").fetchone()[0])
        g = make_gacha(conn, v, [{"name": "n", "rarity": "N", "rate_ppm": 800_000},
                                 {"name": "s", "rarity": "SSR", "rate_ppm": 200_000}])
        item = str(conn.execute("select econ_test.exchange_item(%s, 7)", (v,)).fetchone()[0])
    return {"url": econ_url, "vtuber": v, "gacha": g, "item": item}


def _fan(url: str, email: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        return str(conn.execute("select econ_test.fan(%s)", (email,)).fetchone()[0])


def _paid_order(url: str, fan: str, gacha: str, key: str, pulls: int = 10) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        return str(conn.execute(
            """select (private.fulfill_order(
                 (private.create_order(%s, %s, %s, %s, now(), extensions.gen_random_bytes(32), 'cs')
                  ->> 'order_id')::uuid,
                 'stripe', 'pi_' || %s, %s, 'JPY', now(), extensions.gen_random_bytes(32), 'cs') ->> 'order_id')""",
            (fan, gacha, pulls, key, key, 100 * pulls)).fetchone()[0])


def _race(n: int, fn):
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def _call(url: str, user: str | None, role: str, sql: str, params) -> tuple[str, object]:
    """One API call in its own transaction: ('ok', result) or ('err', message) for a documented refusal."""
    with psycopg.connect(url) as conn:
        try:
            with conn.transaction():
                act_as(conn, user, role)
                return "ok", conn.execute(sql, params).fetchone()[0]
        except psycopg.Error as exc:
            state = exc.sqlstate or ""
            if state.startswith("PT") or state == "40001":
                return "err", exc.diag.message_primary
            raise


def test_concurrent_downloads_of_one_reward_never_exceed_three(world):
    url = world["url"]
    fan = _fan(url, "dl@t")
    order = _paid_order(url, fan, world["gacha"], "dl1", pulls=1)
    with psycopg.connect(url, autocommit=True) as conn:
        reward = str(conn.execute("select r.id from app.user_rewards r join app.pulls p on p.id = r.pull_id "
                                  "where p.order_id = %s", (order,)).fetchone()[0])
    results = _race(THREADS, lambda _i: _call(url, fan, "authenticated", "select public.request_download(%s)",
                                              (reward,)))
    outcomes = collections.Counter(kind if kind == "ok" else msg for kind, msg in results)
    assert outcomes == {"ok": 3, "download_limit_reached": THREADS - 3}, outcomes
    assert sorted(r["downloads_today"] for kind, r in results if kind == "ok") == [1, 2, 3]
    with psycopg.connect(url, autocommit=True) as conn:
        logged = conn.execute("select count(*) from app.downloads where user_reward_id = %s", (reward,)).fetchone()[0]
        assert logged == 3


def test_concurrent_refunds_of_one_order_never_exceed_the_payment(world):
    url = world["url"]
    fan = _fan(url, "rf@t")
    order = _paid_order(url, fan, world["gacha"], "rf1")  # ¥1,000, 100 medals
    amounts = [random.Random(i).choice([100, 200, 300, 400]) for i in range(THREADS)]
    # half the calls replay an earlier provider id: one effect per id
    ids = [f"re_{i // 2}" for i in range(THREADS)]
    amounts = [amounts[i - i % 2] for i in range(THREADS)]
    results = _race(THREADS, lambda i: _call(url, None, "service_role",
                                             "select public.service_record_refund(%s, %s, %s)",
                                             (order, ids[i], amounts[i])))
    recorded = [r for kind, r in results if kind == "ok" and r["recorded"]]
    refusals = collections.Counter(r for kind, r in results if kind == "err")
    assert set(refusals) <= {"refund_exceeds_payment"}, refusals
    assert len({r["provider_refund_id"] for r in recorded}) == len(recorded)
    total = sum(r["amount_jpy"] for r in recorded)
    assert 0 < total <= 1000
    with psycopg.connect(url, autocommit=True) as conn:
        refunded, n_rows, n_claw, clawed, short = conn.execute(
            """select o.refunded_jpy, (select count(*) from app.refunds r where r.order_id = o.id),
                      (select count(*) from app.medal_ledger l
                        where l.order_id = o.id and l.reason = 'refund_clawback'),
                      (select sum(r.medals_clawed_back) from app.refunds r where r.order_id = o.id),
                      (select sum(r.medal_shortfall) from app.refunds r where r.order_id = o.id)
                 from app.orders o where o.id = %s""", (order,)).fetchone()
        assert refunded == total and n_rows == len(recorded)
        assert n_claw == 1 and clawed == 100 and short == 0  # the fan still had every medal
        assert conn.execute("select count(*) from app.user_rewards r join app.pulls p on p.id = r.pull_id "
                            "where p.order_id = %s and r.revoked_at is null", (order,)).fetchone()[0] == 0
    # the remaining amount is exactly what a last refund may take
    if total < 1000:
        assert _call(url, None, "service_role", "select public.service_record_refund(%s, 're_last', %s)",
                     (order, 1000 - total))[0] == "ok"
        assert _call(url, None, "service_role", "select public.service_record_refund(%s, 're_over', 1)",
                     (order,)) == ("err", "refund_exceeds_payment")


def test_clawbacks_racing_exchanges_and_adjustments_keep_the_ledger(world):
    url, v, item = world["url"], world["vtuber"], world["item"]
    with psycopg.connect(url, autocommit=True) as conn:
        admin = str(conn.execute("select tests.create_user('edges_admin@t')").fetchone()[0])
        conn.execute("insert into app.user_roles (user_id, role) values (%s, 'admin')", (admin,))
    fans = [_fan(url, f"cl{i}@t") for i in range(6)]
    orders = {f: [_paid_order(url, f, world["gacha"], f"cl{i}_{k}") for k in range(4)] for i, f in enumerate(fans)}
    with psycopg.connect(url, autocommit=True) as conn:
        # fans[0] keeps 50 of its 400 medals: its refunds must fall short whatever the interleaving
        conn.execute("select private.post_medals(%s, %s, -350, 'admin_adjustment', null, null, 'spent', now())",
                     (fans[0], v))
    ops = []
    rng = random.Random(5)
    for f in fans:
        for o in orders[f]:
            ops.append(("refund", f, o))
        ops += [("exchange", f, None)] * 12 + [("adjust", f, None)] * 4
    rng.shuffle(ops)
    unexpected: list[str] = []

    def run(i):
        kind, fan, order = ops[i]
        if kind == "refund":
            return _call(url, None, "service_role", "select public.service_record_refund(%s, %s, 1000)",
                         (order, "cl_" + order))
        if kind == "exchange":
            return _call(url, fan, "authenticated", "select public.exchange_medals(%s, %s, %s)",
                         (item, rng.randint(1, 10), f"x{i}"))
        return _call(url, admin, "authenticated", "select public.admin_adjust_medals(%s, %s, %s, 'race test')",
                     (fan, v, rng.choice([-30, -5, 5, 20])))

    with ThreadPoolExecutor(THREADS) as pool:
        for kind, res in pool.map(run, range(len(ops))):
            if kind == "err" and res not in ("insufficient_medals",):
                unexpected.append(res)
    assert not unexpected, unexpected
    with psycopg.connect(url, autocommit=True) as conn:
        bad = conn.execute(
            """select b.user_id, b.balance, coalesce(sum(l.delta), 0) from app.medal_balances b
                 left join app.medal_ledger l on l.user_id = b.user_id and l.vtuber_id = b.vtuber_id
                group by b.user_id, b.vtuber_id, b.balance having b.balance <> coalesce(sum(l.delta), 0)""").fetchall()
        assert not bad, bad
        assert conn.execute("select count(*) from app.medal_balances where balance < 0").fetchone()[0] == 0
        rows = conn.execute(
            """select o.id, o.medals, r.medals_clawed_back, r.medal_shortfall,
                      (select -coalesce(sum(l.delta), 0) from app.medal_ledger l
                        where l.order_id = o.id and l.reason = 'refund_clawback')
                 from app.orders o join app.refunds r on r.order_id = o.id
                where o.user_id = any(%s::uuid[])""", (fans,)).fetchall()
        assert len(rows) == 24
        for _oid, medals, clawed, short, ledger in rows:
            assert clawed + short == medals and ledger == clawed
        assert sum(short for *_x, short, _l in rows) >= 400 - 50 - 4 * 20, "fans[0]'s clawbacks fall short"


def test_a_revocation_waiting_on_a_download_is_stamped_after_it(world):
    """A download holding the reward's row lock commits while the refund waits for that lock: the
    revocation must not be dated before the download it did not stop (a download's time may be
    later than the refund's own `p_now`, taken when the provider's event arrived)."""
    url = world["url"]
    fan = _fan(url, "dlrace@t")
    order = _paid_order(url, fan, world["gacha"], "dlrace", pulls=1)
    with psycopg.connect(url, autocommit=True) as conn:
        reward, now = conn.execute("select r.id, now() from app.user_rewards r join app.pulls p on p.id = r.pull_id "
                                   "where p.order_id = %s", (order,)).fetchone()
    result: dict = {}
    with psycopg.connect(url) as download, psycopg.connect(url, autocommit=True) as refund, \
            psycopg.connect(url, autocommit=True) as watch:
        download.execute("select private.request_download(%s, %s, %s + interval '1 minute', '127.0.0.1', 'test')",
                         (fan, reward, now))
        refund_pid = refund.execute("select pg_backend_pid()").fetchone()[0]

        def run_refund():
            result["refund"] = refund.execute("select private.record_refund(%s, 're_dlrace', 1, %s)",
                                              (order, now)).fetchone()[0]

        worker = threading.Thread(target=run_refund)
        worker.start()
        for _ in range(500):  # until the refund waits for the reward's row lock (at most 10 s)
            if watch.execute("select wait_event_type = 'Lock' from pg_stat_activity where pid = %s",
                             (refund_pid,)).fetchone()[0]:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the refund never waited for the download's row lock")
        download.commit()
        worker.join(30)
        assert not worker.is_alive()
    assert result["refund"]["rewards_revoked"] == 1
    with psycopg.connect(url, autocommit=True) as conn:
        revoked_at, downloaded_at = conn.execute(
            "select r.revoked_at, (select max(d.created_at) from app.downloads d where d.user_reward_id = r.id) "
            "from app.user_rewards r where r.id = %s", (reward,)).fetchone()
    assert downloaded_at == now + datetime.timedelta(minutes=1)
    assert revoked_at >= downloaded_at, (revoked_at, downloaded_at)
