"""The chi-square p-value computed in SQL (regularized upper incomplete gamma) against scipy, and the
rate audit of real fulfilled orders against scipy.stats.chisquare on the same counts."""

from __future__ import annotations

import psycopg
import pytest
from economy_helpers import act_as, make_gacha
from scipy.special import gammaincc
from scipy.stats import chi2, chisquare

GRID = [(df, x) for df in (1, 2, 3, 4, 5, 7, 10, 19, 30, 99, 250, 1000)
        for x in (0.0, 1e-6, 0.05, 0.5, 1.0, df * 0.5, df - 1.0, float(df), df + 1.0, df * 1.5, df * 2.0,
                  df * 4.0, df + 50.0, 300.0, 1500.0)
        if x >= 0]


@pytest.fixture(scope="module")
def conn(econ_url):
    with psycopg.connect(econ_url, autocommit=True) as c:
        yield c


def test_p_value_matches_scipy_over_a_grid(conn):
    rows = conn.execute(
        "select df, x, private.chi_square_p_value(x, df) from unnest(%s::integer[], %s::float8[]) as t (df, x)",
        ([df for df, _x in GRID], [x for _df, x in GRID])).fetchall()
    assert len(rows) == len(GRID)
    worst = 0.0
    for df, x, p in rows:
        want = chi2.sf(x, df)
        # absolute error tiny everywhere, relative error tiny wherever p is not vanishing
        assert abs(p - want) < 1e-12, (df, x, p, want)
        if want > 1e-250:
            rel = abs(p - want) / want
            worst = max(worst, rel)
            assert rel < 1e-9, (df, x, p, want)
    assert worst < 1e-9


def test_gamma_q_matches_scipy_for_non_half_integer_a(conn):
    cases = [(a, x) for a in (0.1, 0.3, 1.7, 2.25, 12.6, 75.3) for x in (0.01, 0.4, 1.0, 3.3, 10.0, 80.0)]
    rows = conn.execute("select a, x, private.gamma_q(a, x) from unnest(%s::float8[], %s::float8[]) as t (a, x)",
                        ([a for a, _ in cases], [x for _, x in cases])).fetchall()
    for a, x, q in rows:
        want = gammaincc(a, x)
        assert abs(q - want) < 1e-12 and (want < 1e-250 or abs(q - want) / want < 1e-9), (a, x, q, want)


# The fan's committed server seed, fixed so the 3,000 draws are the same on every run (the client
# seed 'cs' and the nonces 0..2999 are fixed too): with random seeds the number of natural UR draws,
# and with it the number of pity draws, varied from run to run (two natural URs leave only 5 pity draws).
AUDIT_SERVER_SEED = bytes.fromhex("6b6f65706f6e2072617465206175646974207465737420736565642030303031")
PITY_PULLS = 400


def replay_pity(rarities: list[str]) -> list[bool]:
    """Which draws the pity rule makes pity draws, replayed from the drawn rarities alone: the draw
    after PITY_PULLS - 1 draws in a row without a UR is a pity draw, and any UR resets the streak."""
    streak, flags = 0, []
    for rarity in rarities:
        flags.append(streak >= PITY_PULLS - 1)
        streak = 0 if rarity == "UR" else streak + 1
    return flags


def test_replay_pity_counts_streaks():
    # (a pity draw is a UR: the 400th of each run below)
    assert sum(replay_pity((["N"] * 399 + ["UR"]) * 7 + ["N"] * 200)) == 7
    assert replay_pity(["N"] * 399 + ["UR"])[-1] is True and replay_pity(["N"] * 398 + ["UR"])[-1] is False
    assert sum(replay_pity(["N"] * 200 + ["UR"] + ["N"] * 399 + ["UR"])) == 1


def test_rate_audit_of_real_draws_agrees_with_scipy(econ_url):
    with psycopg.connect(econ_url, autocommit=True) as c:
        v = str(c.execute("select econ_test.vtuber('audit_v@t')").fetchone()[0])
        fan = str(c.execute("select econ_test.fan('audit_f@t')").fetchone()[0])
        g = make_gacha(c, v, [{"name": "n", "rarity": "N", "rate_ppm": 700_000},
                              {"name": "r", "rarity": "R", "rate_ppm": 250_000},
                              {"name": "sr", "rarity": "SR", "rate_ppm": 49_900},
                              {"name": "ur", "rarity": "UR", "rate_ppm": 100}],
                       pity_pulls=PITY_PULLS, pity_rarity="UR")  # a ceiling keeps the expected cost publishable
        assert c.execute("update app.fairness_next_seeds set server_seed = %s, "
                         "server_seed_hash = encode(extensions.digest(%s::bytea, 'sha256'), 'hex') "
                         "where user_id = %s", (AUDIT_SERVER_SEED, AUDIT_SERVER_SEED, fan)).rowcount == 1
        # 300 ten-pull orders, fulfilled through the real path (3,000 draws, a few of them pity draws)
        c.execute("""
            select private.fulfill_order(
                     (private.create_order(%s, %s, 10, 'audit' || n, now(), extensions.gen_random_bytes(32), 'cs')
                      ->> 'order_id')::uuid,
                     'stripe', 'pi_audit_' || n, 1000, 'JPY', now(), extensions.gen_random_bytes(32), 'cs')
            from generate_series(1, 300) n""", (fan, g))
        drawn = c.execute("select p.rarity, p.pity, s.server_seed = %s from app.pulls p "
                          "join app.fairness_seeds s on s.id = p.seed_id "
                          "where p.gacha_id = %s order by p.nonce", (AUDIT_SERVER_SEED, g)).fetchall()
        with c.transaction():
            act_as(c, None, "anon")
            audit = c.execute("select public.get_rate_audit(%s)", (g,)).fetchone()[0]
    assert len(drawn) == 3000 and all(fixed for _r, _p, fixed in drawn)
    # Every pull's pity flag is the one the streak rule gives, every pity draw is a UR, and the audit
    # counts exactly those. A natural UR (expected 0.3 in 3,000 draws) costs at most one pity draw:
    # with k of them at least 3000 // 400 - k pity draws happen (7 with none).
    assert [p for _r, p, _f in drawn] == replay_pity([r for r, _p, _f in drawn])
    assert all(r == "UR" for r, p, _f in drawn if p)
    natural_ur = sum(1 for r, p, _f in drawn if r == "UR" and not p)
    n = audit["draws"]
    assert audit["pity_draws"] == sum(1 for _r, p, _f in drawn if p)
    assert n + audit["pity_draws"] == 3000 and audit["pity_draws"] >= 3000 // PITY_PULLS - natural_ur
    # This seed draws no more than one natural UR, so the audit is checked with the pity draws the
    # flaky version needed (>= 6) on every run.
    assert natural_ur <= 1 and audit["pity_draws"] >= 3000 // PITY_PULLS - 1
    items = audit["by_item"]
    obs = [it["observed"] for it in items]
    exp = [float(it["expected"]) for it in items]
    assert sum(obs) == n and abs(sum(exp) - n) < 1e-6
    assert sum(it["pity_draws"] for it in items) == audit["pity_draws"]
    stat, p = chisquare(obs, exp)
    assert audit["item_test"]["df"] == len(items) - 1
    assert abs(audit["item_test"]["statistic"] - stat) < 1e-9 * max(1.0, stat)
    assert abs(audit["item_test"]["p_value"] - p) < 1e-10
    assert audit["item_test"]["reliable"] is False  # the 100 ppm item expects 0.3 draws
    rob = [r["observed"] for r in audit["by_rarity"]]
    rexp = [float(r["expected"]) for r in audit["by_rarity"]]
    rstat, rp = chisquare(rob, rexp)
    assert abs(audit["rarity_test"]["p_value"] - rp) < 1e-10 and abs(audit["rarity_test"]["statistic"] - rstat) < 1e-9
