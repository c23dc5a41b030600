"""Provably fair draws: the documented vectors, SQL = Python, and `koepon fairness verify`."""

from __future__ import annotations

import json
import os
import random

import psycopg
import pytest
from click.testing import CliRunner
from economy_helpers import make_gacha

from koepon.cli import main
from koepon.tools import fairness

SEED = bytes(range(32))


def test_documented_vectors():
    assert fairness.seed_hash(SEED) == "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
    assert [fairness.roll(SEED, "koepon", n, 1_000_000) for n in range(5)] == [
        722706, 728870, 585462, 603252, 327039]
    assert fairness.roll(SEED, "koepon", 0, 3) == 2
    assert fairness.roll(SEED, "koepon", 5114, 1_000_000) == 224859
    table = [["11111111-1111-1111-1111-111111111111", "N", 700000],
             ["22222222-2222-2222-2222-222222222222", "SR", 299900],
             ["33333333-3333-3333-3333-333333333333", "UR", 100]]
    assert fairness.rate_table_version(table) == "936e1131b984bb4b1ccb45c4a7327d4f452b37af26b6055af7ea9ddf05c966e4"
    assert fairness.pick(table, 999899)[1] == "SR"
    assert fairness.pick(table, 999900)[1] == "UR"
    with pytest.raises(ValueError):
        fairness.roll(SEED, "koepon", 0, 0)


def test_sql_and_python_agree(econ_url):
    rng = random.Random(7)
    ranges = [1, 2, 3, 7, 100, 999_983, 10**6]
    cases = [(os.urandom(32), f"c{rng.randrange(10**6)}", rng.randrange(10**9), rng.choice(ranges))
             for _ in range(300)]
    with psycopg.connect(econ_url) as conn:
        got = conn.execute(
            "select private.fair_roll(s, c, n, r) from unnest(%s::bytea[], %s::text[], %s::bigint[], %s::int[]) "
            "with ordinality as t(s, c, n, r, i) order by i",
            ([c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases], [c[3] for c in cases])).fetchall()
    assert [g[0] for g in got] == [fairness.roll(*c) for c in cases]


def _order_and_fulfil(conn, fan, gacha, count, key, amount):
    order = conn.execute("select private.create_order(%s, %s, %s, %s, now(), extensions.gen_random_bytes(32), 'c')",
                         (fan, gacha, count, key)).fetchone()[0]
    res = conn.execute("select private.fulfill_order(%s, 'stripe', %s, %s, 'JPY', now(), "
                       "extensions.gen_random_bytes(32), 'c')", (order["order_id"], "pi_" + key, amount)).fetchone()[0]
    assert res["fulfilled"] is True
    return order["order_id"]


def test_verify_over_a_rotated_seed(econ_url):
    runner = CliRunner()
    with psycopg.connect(econ_url, autocommit=True) as conn:
        v = str(conn.execute("select econ_test.vtuber('fv@t')").fetchone()[0])
        fan = str(conn.execute("select econ_test.fan('ff@t')").fetchone()[0])
        g = make_gacha(conn, v, [{"name": "n", "rarity": "N", "rate_ppm": 800000},
                                 {"name": "r", "rarity": "SR", "rate_ppm": 190000},
                                 {"name": "s", "rarity": "SSR", "rate_ppm": 10000, "stock": 1000}],
                       pity_pulls=20, pity_rarity="SSR")
        for i in range(6):
            _order_and_fulfil(conn, fan, g, 10, f"v{i}", 1000)
        conn.execute("select private.rotate_fairness_seed(%s, extensions.gen_random_bytes(32), 'next', now())", (fan,))
        _order_and_fulfil(conn, fan, g, 10, "after", 1000)  # under the new, unrevealed seed

        res = runner.invoke(main, ["--db-url", econ_url, "fairness", "verify", "--user", fan, "--json"])
        assert res.exit_code == 0, res.output
        rep = json.loads(res.output)
        assert {k: rep[k] for k in ("seeds", "pulls", "mismatches", "ok")} == {
            "seeds": 1, "pulls": 60, "mismatches": [], "ok": True}
        assert [o["status"] for o in rep["orders"]] == ["fulfilled"] * 7

        seed_id, seed_hex = conn.execute(
            "select id::text, encode(server_seed, 'hex') from app.fairness_seeds where user_id = %s and not active",
            (fan,)).fetchone()
        res = runner.invoke(main, ["--db-url", econ_url, "fairness", "verify", "--user", fan,
                                   "--seed-id", seed_id, "--server-seed", seed_hex])
        assert res.exit_code == 0, res.output
        wrong = ("00" * 32)
        res = runner.invoke(main, ["--db-url", econ_url, "fairness", "verify", "--user", fan,
                                   "--seed-id", seed_id, "--server-seed", wrong])
        assert res.exit_code == 1 and "committed" in res.output

        # Tamper with one recorded roll (bypassing the append-only trigger): verify must notice.
        with conn.transaction():
            conn.execute("alter table app.pulls disable trigger pulls_before_update_delete_refuse")
            conn.execute("update app.pulls set roll = (roll + 1) %% 1000000 where id = "
                         "(select min(id) from app.pulls where seed_id = %s)", (seed_id,))
            conn.execute("alter table app.pulls enable trigger pulls_before_update_delete_refuse")
        res = runner.invoke(main, ["--db-url", econ_url, "fairness", "verify", "--user", fan])
        assert res.exit_code == 1
        assert "MISMATCH pull" in res.output

        res = runner.invoke(main, ["fairness", "roll", "--server-seed", SEED.hex(), "--client-seed", "koepon",
                                   "--nonce", "0"])
        assert res.output.strip() == "722706"
