"""The draw matches the published odds (chi-square over 200,000 SQL draws) and pity fires exactly."""

from __future__ import annotations

import json

import psycopg
from economy_helpers import make_gacha
from scipy.stats import chisquare

RATES = [("a", "N", 600_000), ("b", "R", 300_000), ("c", "SR", 89_900), ("d", "SSR", 10_000), ("e", "UR", 100)]
DRAWS = 200_000


def _draw(conn, rates, draws: int) -> list[int]:
    """Counts per item of `draws` rolls through the functions the fulfilment uses: fair_roll
    (rejection sampling) then pick_entry."""
    entries = [[name, rarity, rate] for name, rarity, rate in rates]
    rows = conn.execute(
        """select private.pick_entry(%s::jsonb,
                    private.fair_roll(extensions.digest('koepon statistics', 'sha256'), 'stats', n, 1000000)) ->> 0,
                  count(*)
             from generate_series(0, %s - 1) n group by 1""",
        (json.dumps(entries), draws)).fetchall()
    observed = dict(rows)
    assert sum(observed.values()) == draws
    return [observed.get(name, 0) for name, _r, _p in rates]


def test_chi_square_accepts_the_published_odds(econ_url):
    with psycopg.connect(econ_url) as conn:
        obs = _draw(conn, RATES, DRAWS)
    exp = [DRAWS * rate / 1_000_000 for _n, _r, rate in RATES]
    stat, p = chisquare(obs, exp)
    assert p > 0.001, (obs, exp, stat, p)
    assert obs[-1] > 0, "the 100 ppm item must be drawable"


def test_a_draw_with_other_odds_than_published_is_caught(econ_url):
    """Koepon's own draw, fed a table 2 points off the published odds (N 58% instead of 60%, R 32%
    instead of 30%), fails the same check: the check has power against odds that were changed."""
    shifted = [("a", "N", 580_000), ("b", "R", 320_000), *RATES[2:]]
    draws = 50_000
    with psycopg.connect(econ_url) as conn:
        obs = _draw(conn, shifted, draws)
    published = [draws * rate / 1_000_000 for _n, _r, rate in RATES]
    assert chisquare(obs, published).pvalue < 0.001, obs


def test_pity_fires_exactly_at_its_pull(econ_url):
    pity_pulls = 30
    with psycopg.connect(econ_url, autocommit=True) as conn:
        v = str(conn.execute("select econ_test.vtuber('sv@t')").fetchone()[0])
        g = make_gacha(conn, v, [{"name": "n", "rarity": "N", "rate_ppm": 980_000},
                                 {"name": "u", "rarity": "UR", "rate_ppm": 10_000},
                                 {"name": "s", "rarity": "SSR", "rate_ppm": 10_000}],
                       pity_pulls=pity_pulls, pity_rarity="SSR")
        fans = [str(conn.execute("select econ_test.fan(%s)", (f"sf{i}@t",)).fetchone()[0]) for i in range(4)]
        for fan in fans:
            for k in range(15):
                o = conn.execute("select private.create_order(%s, %s, 10, %s, now(), extensions.gen_random_bytes(32), "
                                 "'c')", (fan, g, f"k{k}")).fetchone()[0]
                conn.execute("select private.fulfill_order(%s, 'stripe', %s, 1000, 'JPY', now(), null, null)",
                             (o["order_id"], f"pi_{fan}_{k}"))
        fired = 0
        for fan in fans:
            pulls = conn.execute("select rarity, pity from app.pulls where user_id = %s and gacha_id = %s order by id",
                                 (fan, g)).fetchall()
            assert len(pulls) == 150
            streak = 0
            for rarity, pity in pulls:
                assert pity == (streak == pity_pulls - 1), (streak, rarity, pity)
                if pity:
                    fired += 1
                    assert rarity in ("SSR", "UR")
                streak = 0 if rarity in ("SSR", "UR") else streak + 1
                assert streak < pity_pulls
        assert fired > 0, "with 2% top rarity and a 30-pull ceiling, pity must fire in 600 pulls"
