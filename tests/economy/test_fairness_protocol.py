"""Provably fair against a hostile operator (docs/fairness.md): commit before the fan chooses,
draws bound at order time, published rate tables — and `koepon fairness verify` catching an
operator who bypasses the API."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import psycopg
import pytest
from click.testing import CliRunner
from economy_helpers import act_as, make_gacha

from koepon.cli import main
from koepon.tools import fairness

ITEMS = [{"name": "n", "rarity": "N", "rate_ppm": 900000}, {"name": "s", "rarity": "SSR", "rate_ppm": 100000}]


def _fan_call(conn, fan: str, sql: str, args=()):
    """One public RPC as the fan, as PostgREST would run it."""
    with conn.transaction():
        act_as(conn, fan)
        return conn.execute(sql, args).fetchone()[0]


def _error(conn, fan: str | None, sql: str, args=()) -> tuple[str, str]:
    with pytest.raises(psycopg.Error) as exc:
        if fan is None:
            conn.execute(sql, args)
        else:
            _fan_call(conn, fan, sql, args)
    return exc.value.diag.sqlstate, exc.value.diag.message_primary


def _order(conn, fan: str, gacha: str, count: int, key: str | None = None) -> dict:
    return _fan_call(conn, fan, "select public.create_order(%s, %s, %s)", (gacha, count, key or uuid.uuid4().hex))


def _pay(conn, order: dict) -> None:
    res = conn.execute("select private.fulfill_order(%s, 'stripe', %s, %s, 'JPY', now(), "
                       "extensions.gen_random_bytes(32), 'unused')",
                       (order["order_id"], "pi_" + uuid.uuid4().hex, order["amount_jpy"])).fetchone()[0]
    assert res["fulfilled"] is True


def _verify(conn_url: str, fan: str, *extra: str) -> tuple[int, dict]:
    res = CliRunner().invoke(main, ["--db-url", conn_url, "fairness", "verify", "--user", fan, "--json", *extra])
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.output)


@pytest.fixture()
def conn(econ_url):
    with psycopg.connect(econ_url, autocommit=True) as c:
        yield c


@pytest.fixture()
def vtuber(conn):
    return str(conn.execute("select econ_test.vtuber(%s)", (f"v{uuid.uuid4().hex[:8]}@t",)).fetchone()[0])


@pytest.fixture()
def fan(conn):
    return str(conn.execute("select econ_test.fan(%s)", (f"f{uuid.uuid4().hex[:8]}@t",)).fetchone()[0])


def test_the_server_seed_is_committed_before_the_fan_chooses(conn, fan):
    state = _fan_call(conn, fan, "select public.get_fairness()")
    assert state["active"] is False and state["seed_id"] is None, "a new fan has no pair the server paired"
    committed = state["next"]["server_seed_hash"]
    assert state["server_seed_hash"] == committed  # the next pull would use the committed seed
    res = _fan_call(conn, fan, "select public.set_client_seed('my-own-seed')")
    assert res["revealed"] is None
    assert res["active"]["server_seed_hash"] == committed, "the seed shown before the choice is the one used"
    assert res["active"]["client_seed"] == "my-own-seed" and res["active"]["client_seed_source"] == "fan"
    assert res["next"]["server_seed_hash"] != committed, "a fresh next seed is committed only afterwards"


def test_a_first_order_without_a_client_seed_uses_the_fans_request(conn, fan, vtuber):
    g = make_gacha(conn, vtuber, ITEMS)
    committed = _fan_call(conn, fan, "select public.get_fairness()")["next"]["server_seed_hash"]
    key = "device-chosen-" + uuid.uuid4().hex
    order = _order(conn, fan, g, 1, key)
    assert order["server_seed_hash"] == committed
    assert order["client_seed"] == hashlib.sha256(key.encode()).hexdigest()
    assert order["first_nonce"] == 0


def _grind(table: list, client_seed: str) -> bytes:
    """What a hostile operator would do knowing the client seed: find a server seed whose first ten
    pulls are all N (about one try in three on a 10 % SSR gacha)."""
    while True:
        seed = os.urandom(32)
        if all(fairness.pick(table, fairness.roll(seed, client_seed, n, 1_000_000))[1] == "N" for n in range(10)):
            return seed


def test_an_operator_cannot_grind_the_server_seed_after_seeing_the_client_seed(conn, econ_url, fan, vtuber):
    g = make_gacha(conn, vtuber, ITEMS)
    table = _fan_call(conn, fan, "select public.list_rate_table_log(0, 1000)")
    table = next(e["entries"] for e in table if e["gacha_id"] == g)
    seen = _fan_call(conn, fan, "select public.get_fairness()")["next"]["server_seed_hash"]
    client_seed = "fan-" + uuid.uuid4().hex[:8]
    # The operator sees the client seed arrive and grinds against it before handling the request,
    # then handles it with the grinded seed as the randomness every internal path takes.
    grinded = _grind(table, client_seed)
    active = conn.execute("select private.rotate_fairness_seed(%s, %s, %s, now())",
                          (fan, grinded, client_seed)).fetchone()[0]["active"]
    assert active["server_seed_hash"] == seen != fairness.seed_hash(grinded), (
        "the pair uses the seed committed before the fan chose; the grinded one is only the next commitment")
    # The next seed was committed after the server saw this client seed: never paired with it.
    assert _error(conn, None, "select private.rotate_fairness_seed(%s, %s, %s, now())",
                  (fan, os.urandom(32), client_seed)) == ("PT409", "client_seed_reused")
    order = conn.execute("select private.create_order(%s, %s, 10, %s, now(), %s, %s)",
                         (fan, g, "grind-1", grinded, client_seed)).fetchone()[0]
    assert order["server_seed_hash"] == seen, "create_order's randomness never replaces an active pair's seed"

    # Last resort: swap the seed of the unpaid order's pair bypassing the API, then take the payment.
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute("update app.fairness_seeds set server_seed = %s, server_seed_hash = %s where id = %s",
                     (grinded, fairness.seed_hash(grinded), order["seed_id"]))
    _pay(conn, order)
    pulls = _fan_call(conn, fan, "select public.get_order(%s)", (order["order_id"],))["pulls"]
    assert {p["rarity"] for p in pulls} == {"N"}, "the swap worked: ten N"
    _fan_call(conn, fan, "select public.rotate_fairness_seed()")
    code, rep = _verify(econ_url, fan)
    assert code == 0, "the rewritten history is self-consistent: only what the fan kept can expose it"
    path = f"/tmp/receipts-{uuid.uuid4().hex}.json"
    with open(path, "w") as f:
        json.dump([order], f)
    try:
        code, rep = _verify(econ_url, fan, "--receipts", path)
    finally:
        os.unlink(path)
    assert code == 1
    assert any(m.startswith(f"receipt {order['order_id']}: server_seed_hash") for m in rep["mismatches"]), rep


def test_the_outcome_is_fixed_by_create_orders_answer(conn, econ_url, fan, vtuber):
    g = make_gacha(conn, vtuber, ITEMS)
    _fan_call(conn, fan, "select public.set_client_seed('bound')")
    a = _order(conn, fan, g, 10)
    b = _order(conn, fan, g, 1)
    assert (a["first_nonce"], b["first_nonce"]) == (0, 10), "each order owns its nonces from creation"
    assert a["rate_table_version"] == b["rate_table_version"] and a["pity_rate_table_version"] is None
    table = _fan_call(conn, fan, "select public.get_rate_table(%s)", (a["rate_table_version"],))
    _pay(conn, b)  # fulfilled out of creation order: the draw still uses the bound nonces
    _pay(conn, a)
    seed = _fan_call(conn, fan, "select public.rotate_fairness_seed()")["revealed"]
    secret = bytes.fromhex(seed["server_seed"])
    assert fairness.seed_hash(secret) == a["server_seed_hash"]
    for answer in (a, b):
        rolls = [fairness.roll(secret, answer["client_seed"], n, table["total_ppm"])
                 for n in range(answer["first_nonce"], answer["first_nonce"] + answer["pull_count"])]
        expected = [fairness.pick(table["entries"], r)[0] for r in rolls]
        got = _fan_call(conn, fan, "select public.get_order(%s)", (answer["order_id"],))
        assert [p["gacha_item_id"] for p in sorted(got["pulls"], key=lambda p: p["nonce"])] == expected
    code, rep = _verify(econ_url, fan)
    assert code == 0 and rep["pulls"] == 11, rep


def test_unpaid_orders_burn_their_nonces_and_are_recomputable(conn, econ_url, fan, vtuber):
    g = make_gacha(conn, vtuber, ITEMS)
    _fan_call(conn, fan, "select public.set_client_seed('unpaid')")
    expired = _order(conn, fan, g, 10)
    failed = _order(conn, fan, g, 1)
    paid = _order(conn, fan, g, 10)
    assert _error(conn, fan, "select public.rotate_fairness_seed()") == ("PT409", "fairness_seed_in_use")
    assert _error(conn, fan, "select public.set_client_seed('again')") == ("PT409", "fairness_seed_in_use")
    conn.execute("select private.expire_orders(now() + interval '31 minutes', %s, %s, 10)",
                 (fan, expired["order_id"]))
    conn.execute("select private.fail_order(%s, 'failed', now())", (failed["order_id"],))
    _pay(conn, paid)
    revealed = _fan_call(conn, fan, "select public.rotate_fairness_seed()")["revealed"]
    assert [(o["status"], o["first_nonce"]) for o in revealed["orders"]] == [
        ("expired", 0), ("failed", 10), ("fulfilled", 11)]
    # The seed is public now: a late payment for the expired order would let the payer choose.
    assert _error(conn, None, "select private.fulfill_order(%s, 'stripe', 'pi_late', 1000, 'JPY', now(), "
                  "extensions.gen_random_bytes(32), 'c')", (expired["order_id"],)) == (
        "PT409", "order_cannot_be_fulfilled")
    code, rep = _verify(econ_url, fan)
    assert code == 0, rep
    by_id = {o["order_id"]: o for o in rep["orders"]}
    assert len(by_id[expired["order_id"]]["would_have_drawn"]) == 10
    assert len(by_id[failed["order_id"]]["would_have_drawn"]) == 1
    assert len(by_id[paid["order_id"]]["drawn"]) == 10
    assert by_id[expired["order_id"]]["nonces"] == [0, 9]


def test_rates_changed_behind_the_fans_back_are_caught_from_public_data(conn, econ_url, fan, vtuber):
    g = make_gacha(conn, vtuber, ITEMS)
    mine = next(e for e in _fan_call(conn, fan, "select public.list_rate_table_log(0, 1000)") if e["gacha_id"] == g)
    n_item, ssr = (str(x) for x in conn.execute(
        "select array_agg(id order by rarity) from app.gacha_items where gacha_id = %s", (g,)).fetchone()[0])
    _fan_call(conn, fan, "select public.set_client_seed('tamper')")

    def move_rates(n_rate: int, ssr_rate: int) -> None:
        # The database owner bypasses the freeze triggers (hosted allows postgres this).
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            conn.execute("update app.gacha_items set rate_ppm = case rarity when 'N' then %s else %s end "
                         "where gacha_id = %s", (n_rate, ssr_rate, g))

    # 1. Rates moved from SSR to N while an order is created and paid: the draw uses the table
    #    published (and bound at order time), never the live items.
    move_rates(999_999, 1)
    order = _order(conn, fan, g, 10)
    _pay(conn, order)
    move_rates(900_000, 100_000)
    pulls = _fan_call(conn, fan, "select public.get_order(%s)", (order["order_id"],))["pulls"]
    assert {p["rate_table_version"] for p in pulls} == {order["rate_table_version"]} == {mine["version"]}

    # 2. The operator goes further: records the moved table and rebinds a pending order to it.
    victim = _order(conn, fan, g, 10)
    move_rates(999_999, 1)
    tampered = conn.execute("select (private.rate_table(%s, false)).version", (g,)).fetchone()[0]
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute("update app.orders set rate_table_version = %s where id = %s", (tampered, victim["order_id"]))
    _pay(conn, victim)
    move_rates(900_000, 100_000)
    _fan_call(conn, fan, "select public.rotate_fairness_seed()")
    code, rep = _verify(econ_url, fan)
    assert code == 1
    assert (f"order {victim['order_id']}: committed base rate table {tampered} is not the gacha's published "
            f"{mine['version']}") in rep["mismatches"], rep

    # 3. ... and rewrites the published log to match: the chain breaks.
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute("update app.rate_table_log set version = %s where gacha_id = %s and not pity", (tampered, g))
    code, rep = _verify(econ_url, fan)
    assert code == 1 and any("its hash does not match its content" in m for m in rep["mismatches"]), rep

    # 4. ... and recomputes the chain from there: consistent again, but not with a copy of the
    #    entry anyone saved when it was published.
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute("""
          do $$
          declare r record; v_prev text;
          begin
            select hash into v_prev from app.rate_table_log where seq < %(seq)s order by seq desc limit 1;
            for r in select * from app.rate_table_log where seq >= %(seq)s order by seq loop
              update app.rate_table_log set prev_hash = v_prev,
                     hash = private.rate_table_log_hash(v_prev, seq, gacha_id, pity, version, published_at)
               where seq = r.seq returning hash into v_prev;
            end loop;
          end $$""".replace("%(seq)s", str(int(mine["seq"]))))
    code, rep = _verify(econ_url, fan)
    # consistent chain; the orders bound to the real table now disagree with the rewritten log
    assert code == 1 and not any("rate-table log" in m for m in rep["mismatches"]), rep
    code, rep = _verify(econ_url, fan, "--expect-log", f"{mine['seq']}:{mine['hash']}")
    assert f"rate-table log entry {mine['seq']}: hash " in " ".join(rep["mismatches"]), rep

    # 5. Rewriting the published table's content in place never hashes to its version.
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute("update app.rate_tables set entries = %s where version = %s",
                     (json.dumps([[n_item, "N", 999_999], [ssr, "SSR", 1]]), mine["version"]))
    code, rep = _verify(econ_url, fan)
    assert code == 1 and any("do not hash to its version" in m for m in rep["mismatches"]), rep


def test_get_fairness_pages_through_every_revealed_seed(conn, econ_url, fan):
    for i in range(25):
        _fan_call(conn, fan, "select public.set_client_seed(%s)", (f"s{i}",))
    first = _fan_call(conn, fan, "select public.get_fairness(20, 0)")
    second = _fan_call(conn, fan, "select public.get_fairness(20, 20)")
    assert first["revealed_total"] == 24  # the 25th pair is active
    ids = [s["seed_id"] for s in first["revealed"] + second["revealed"]]
    assert len(ids) == len(set(ids)) == 24
    assert _error(conn, fan, "select public.get_fairness(0, 0)") == ("PT400", "invalid_pagination")
    code, rep = _verify(econ_url, fan)
    assert code == 0 and rep["seeds"] == 24


SEED_FAN = ("fan@koepon.local", "koepon-fan-pass")
SEED_GACHA = "00000000-0000-4000-d000-000000000001"  # the seed's on-sale gacha


def test_verify_over_http_reads_only_what_the_fans_api_answers(seeded_db_url, api_url):
    import httpx

    from koepon.settings import ANON_KEY

    with httpx.Client(base_url=api_url, headers={"apikey": ANON_KEY}, timeout=30) as http:
        r = http.post("/auth/v1/token?grant_type=password", json={"email": SEED_FAN[0], "password": SEED_FAN[1]})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        state = http.post("/rest/v1/rpc/get_fairness", json={}, headers=auth).json()
        r = http.post("/rest/v1/rpc/set_client_seed", json={"p_seed": "http-" + uuid.uuid4().hex[:10]}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["active"]["server_seed_hash"] == state["next"]["server_seed_hash"]
        order = http.post("/rest/v1/rpc/create_order", json={"p_gacha_id": SEED_GACHA, "p_pull_count": 1,
                                                            "p_idempotency_key": uuid.uuid4().hex}, headers=auth)
        assert order.status_code == 200, order.text
        order = order.json()
        with psycopg.connect(seeded_db_url, autocommit=True) as c:
            _pay(c, order)
        r = http.post("/rest/v1/rpc/rotate_fairness_seed", json={}, headers=auth)
        assert r.status_code == 200, r.text
        assert http.post("/rest/v1/rpc/get_rate_table", json={"p_version": order["rate_table_version"]}
                         ).json()["version"] == order["rate_table_version"], "anyone reads the table"
    res = CliRunner().invoke(main, ["fairness", "verify", "--api-url", api_url, "--token", token, "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    mine = next(o for o in rep["orders"] if o["order_id"] == order["order_id"])
    assert mine["check"] == "ok" and mine["revealed"] is True and len(mine["drawn"]) == 1
    assert rep["pulls"] >= 1


def test_pulls_of_the_first_protocol_stay_verifiable(conn, econ_url, fan, vtuber):
    """An order created before draws were bound (no seed, nonces or tables on the order) is drawn at
    fulfilment from the pair's next nonce, as it was, and verifies beside bound orders."""
    g = make_gacha(conn, vtuber, ITEMS, pity_pulls=5, pity_rarity="SSR")
    _fan_call(conn, fan, "select public.set_client_seed('old-and-new')")
    bound = _order(conn, fan, g, 10)
    old = _order(conn, fan, g, 10)
    with conn.transaction():  # make `old` look like an order of the first protocol
        conn.execute("update app.orders set seed_id = null, first_nonce = null, rate_table_version = null, "
                     "pity_rate_table_version = null where id = %s", (old["order_id"],))
        conn.execute("update app.fairness_seeds set next_nonce = 10 where id = %s", (bound["seed_id"],))
    _pay(conn, old)
    _pay(conn, bound)
    pulls = _fan_call(conn, fan, "select public.get_order(%s)", (old["order_id"],))["pulls"]
    assert sorted(p["nonce"] for p in pulls) == list(range(10, 20)), "drawn from the pair's next nonce"
    assert _fan_call(conn, fan, "select public.get_fairness()")["next_nonce"] == 20
    _fan_call(conn, fan, "select public.rotate_fairness_seed()")
    code, rep = _verify(econ_url, fan)
    assert code == 0, rep
    assert rep["pulls"] == 20
    by_id = {o["order_id"]: o for o in rep["orders"]}
    assert by_id[old["order_id"]]["protocol"] == 1 and by_id[bound["order_id"]]["protocol"] == 2
    # and a tampered roll of the old order is still caught
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute("update app.pulls set roll = (roll + 1) %% 1000000 where id = %s", (pulls[0]["pull_id"],))
    code, rep = _verify(econ_url, fan)
    assert code == 1 and any(m.startswith(f"pull {pulls[0]['pull_id']} ") for m in rep["mismatches"]), rep


def test_no_pair_is_ever_activated_with_a_seed_made_in_the_same_request(conn, fan, vtuber):
    g = make_gacha(conn, vtuber, ITEMS)
    conn.execute("delete from app.fairness_next_seeds where user_id = %s", (fan,))
    assert _error(conn, fan, "select public.set_client_seed('fresh')") == ("PT409", "fairness_seed_not_committed")
    assert _error(conn, fan, "select public.create_order(%s, 1, 'k')", (g,)) == ("PT409", "fairness_seed_not_committed")
    committed = _fan_call(conn, fan, "select public.get_fairness()")["next"]["server_seed_hash"]  # commits one
    assert _fan_call(conn, fan, "select public.set_client_seed('fresh')")["active"]["server_seed_hash"] == committed
