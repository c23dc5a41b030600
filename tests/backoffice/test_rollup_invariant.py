"""The soak's invariant "rollups equal the base tables once caught up" holds after a refresh and
names the day and gacha when a rollup row is wrong."""

from __future__ import annotations

import psycopg

from koepon.tools import invariants

# Every event of these histories falls on one JST day (yesterday's, 01:00-04:00 JST), whatever the
# time the test runs: times relative to now() straddle JST midnight from 15:00 UTC on, and a
# rollup change meant to break one row would then break one row per day.
_BASE = "((date_trunc('day', now() at time zone 'Asia/Tokyo') - interval '23 hours') at time zone 'Asia/Tokyo')"


def _rollup_violations(conn):
    return [v for v in invariants.check(conn) if v.check == "rollups_equal_base_tables"]


def test_rollups_equal_base_tables_and_the_check_can_fail(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(f"""
            insert into econ_test.ids values ('v', econ_test.vtuber('v@inv'));
            insert into econ_test.ids values
              ('g', econ_test.gacha(econ_test.id('v'), '[{{"name":"n","rarity":"N","rate_ppm":1000000}}]')),
              ('f', econ_test.fan('f@inv')), ('f2', econ_test.fan('f2@inv'));
            insert into econ_test.ids values
              ('o1', econ_test.paid('f', 10, 'a', {_BASE})),
              ('o2', econ_test.paid('f2', 1, 'b', {_BASE} + interval '1 hour'));
            select private.record_refund(econ_test.id('o1'), 're_inv', 400, {_BASE} + interval '2 hours');
            select private.record_dispute(econ_test.id('o2'), 'dp_inv', 'needs_response', {_BASE} + interval '2 hours');
        """)
        conn.execute("select private.refresh_rollups(now())")
        assert conn.execute("select sum(gross_jpy), sum(refunds_jpy), sum(chargebacks_jpy) from app.sales_daily"
                            ).fetchone() == (1100, 400, 100)
        assert _rollup_violations(conn) == []
        conn.execute("update app.sales_daily set refunds_jpy = refunds_jpy + 1 where refunds_jpy > 0")
        broken = _rollup_violations(conn)
        assert len(broken) == 1 and broken[0].row["expected"] != broken[0].row["rolled_up"]


def _detail_violations(conn):
    return [v for v in invariants.check(conn) if v.check == "rollup_details_equal_base_tables"]


def test_rollup_details_equal_base_tables_and_each_can_fail(fresh_db_url):
    """Pulls per item, sales and first payments per fan, medal flows and exchanges per JST day: equal
    after a refresh, and a wrong row in any of those rollups is named."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(f"""
            insert into econ_test.ids values ('v', econ_test.vtuber('v@det'));
            insert into econ_test.ids values
              ('g', econ_test.gacha(econ_test.id('v'), '[{{"name":"n","rarity":"N","rate_ppm":1000000}}]')),
              ('f', econ_test.fan('f@det'));
            insert into econ_test.ids values ('o1', econ_test.paid('f', 10, 'a', {_BASE}));
            insert into econ_test.ids values ('x', econ_test.exchange_item(econ_test.id('v'), 10));
            select private.exchange_medals(econ_test.id('f'), econ_test.id('x'), 2, 'det-1',
                                           {_BASE} + interval '2 hours');
            select private.record_refund(econ_test.id('o1'), 're_det', 400, {_BASE} + interval '150 minutes');
        """)
        conn.execute("select private.refresh_rollups(now())")
        assert conn.execute("select count(*) from app.exchanges_daily").fetchone()[0] == 1
        assert _detail_violations(conn) == []
        for table, column in [("item_pulls_daily", "pulls"), ("fan_sales_daily", "gross_jpy"),
                              ("medals_daily", "spent"), ("exchanges_daily", "quantity")]:
            with conn.transaction():
                conn.execute(f"update app.{table} set {column} = {column} + 1")
                broken = _detail_violations(conn)
                assert [v.row["rollup"] for v in broken] == [table], broken
                raise psycopg.Rollback()  # undo the damage before the next rollup is broken


def test_rollup_sums_equal_rollup_rows_and_each_can_fail(fresh_db_url):
    """The platform report's rollups (sales per day and VTuber, pulls per ISO week and item) equal
    the rows they sum after a refresh, and a wrong row in either is named."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(f"""
            insert into econ_test.ids values ('v', econ_test.vtuber('v@sum'));
            insert into econ_test.ids values
              ('g', econ_test.gacha(econ_test.id('v'), '[{{"name":"n","rarity":"N","rate_ppm":1000000}}]')),
              ('f', econ_test.fan('f@sum'));
            insert into econ_test.ids values ('o1', econ_test.paid('f', 10, 'a', {_BASE}));
            select private.record_refund(econ_test.id('o1'), 're_sum', 400, {_BASE} + interval '1 hour');
        """)
        conn.execute("select private.refresh_rollups(now())")
        assert conn.execute("select gross_jpy, refunds_jpy from app.vtuber_sales_daily").fetchall() == [(1000, 400)]
        assert conn.execute("select pulls + pity_pulls from app.item_pulls_weekly").fetchall() == [(10,)]
        assert [v for v in invariants.check(conn) if v.check == "rollup_sums_equal_rollup_rows"] == []
        for table, column in [("vtuber_sales_daily", "refunds_jpy"), ("item_pulls_weekly", "pity_pulls")]:
            with conn.transaction():
                conn.execute(f"update app.{table} set {column} = {column} + 1")
                broken = [v for v in invariants.check(conn) if v.check == "rollup_sums_equal_rollup_rows"]
                assert [v.row["rollup"] for v in broken] == [table], broken
                raise psycopg.Rollback()  # undo the damage before the next rollup is broken
