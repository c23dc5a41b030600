"""The soak, bounded (30 s by default; KOEPON_SOAK_SECONDS): fans, VTubers, an admin and the
payment provider doing random valid and invalid operations through the local API and signed
webhooks against their own database and processes; then every invariant (koepon/tools/invariants.py).

`koepon soak --minutes M` runs the same engine longer and prints the figures.
"""

from __future__ import annotations

import os

import psycopg
import pytest

from koepon.tools import invariants
from koepon.tools.soak import Soak, SoakStack, print_report

SECONDS = float(os.environ.get("KOEPON_SOAK_SECONDS", "30"))
SEED = 20261125


@pytest.fixture(scope="module")
def soak_result():
    stack = SoakStack().start()
    try:
        try:
            res = Soak(stack, fans=8, seed=SEED).run(SECONDS)
        except BaseException:
            # The run itself broke (not an invariant): the servers' last words say why.
            print(f"soak (seed {SEED}, {SECONDS:.0f} s) raised; server logs:\n{stack.logs()}")
            raise
        lines: list[str] = []
        print_report(res, echo=lines.append)
        lines.append(f"(seed {SEED}, {SECONDS:.0f} s, load average {os.getloadavg()[0]:.1f})")
        yield res, "\n".join(lines), stack.logs(), stack
    finally:
        stack.stop()


def test_soak_loses_nothing(soak_result):
    res, report, logs, _ = soak_result
    print(report)
    # Each message names what broke: the invariant with its offending row (VIOLATION lines), the
    # failed operation, or the operations answered 5xx, with the servers' log tails.
    assert res.violations == [], "invariants violated:\n  " + "\n  ".join(res.violations) + "\n" + report
    assert res.failures == [], "operations failed:\n  " + "\n  ".join(res.failures) + "\n" + report + "\n" + logs
    answered_5xx = sorted(f"{kind}: {outcome} x{n}" for (kind, outcome), n in res.ops.items()
                          if outcome[:1] == "5")
    assert res.server_errors == 0, "5xx answers:\n  " + "\n  ".join(answered_5xx) + "\n" + report + "\n" + logs


def test_soak_exercised_every_path(soak_result):
    """The run did what it claims: money moved both ways, faults were injected, bad input refused."""
    res, report, _, _ = soak_result
    kinds = {k for k, _ in res.ops}
    outcomes = {(k, o) for k, o in res.ops}
    f = res.figures
    assert res.total_ops > 500, report
    assert f["orders_fulfilled"] > 20 and f["pulls"] > 50, report
    assert f["refunds_completed"] > 0 and f["yen_refunded"] > 0 and f["exchanges"] > 0, report
    assert f["disputes"] > 0 and f["downloads"] > 0 and f["gachas_published"] > 2, report
    for needed in ("webhook komoju payment.captured", "webhook stripe charge.refunded", "publish_gacha",
                   "review_refund", "payment service: execute refund", "refund_event_from_provider"):
        assert needed in kinds, (needed, report)
    for fault in ("duplicate deliveries", "out of order: refund before success", "konbini: authorized, captured late",
                  "success after expiry", "clock jumps: order expired before its payment"):
        assert res.faults[fault] > 0, (fault, report)
    refused = [k for k, o in outcomes if "(bad" in k and o != "ok"]
    assert len(refused) >= 10, report
    # VTubers upload their content (and a wrong type is refused); the admin works the queues.
    for needed, outcome in (("storage upload", "ok"), ("storage upload (replace, x-upsert)", "ok"),
                            ("storage upload (wrong type)", "415 invalid_mime_type"), ("storage list", "ok"),
                            ("admin_list_refund_requests", "ok")):
        assert (needed, outcome) in outcomes, (needed, outcome, report)
    assert any(k.endswith("(page 1)") and o == "ok" for k, o in outcomes), report
    assert any(k.endswith("(bad cursor)") and o == "400 invalid_cursor" for k, o in outcomes), report


def test_invariants_catch_corruption(soak_result):
    """The checks can fail: after the run, each corruption (made as the table owner behind every
    function's back, inside a transaction that is rolled back) is caught by the check meant for it."""
    stack = soak_result[3]
    corruptions = {
        "ledger_sum_equals_balance": "update app.medal_balances set balance = balance + 1 "
                                     "where (user_id, vtuber_id) = (select user_id, vtuber_id from app.medal_balances "
                                     "order by balance desc limit 1)",
        # (a pull whose reward was downloaded when there is one: its download log rows go too)
        "fulfilled_exactly_once": "alter table app.pulls disable trigger user; "
                                  "alter table app.downloads disable trigger user; "
                                  "create temp table victim on commit drop as select coalesce("
                                  "(select max(p.id) from app.pulls p join app.orders o on o.id = p.order_id "
                                  "join app.user_rewards r on r.pull_id = p.id "
                                  "join app.downloads d on d.user_reward_id = r.id "
                                  "where o.status = 'fulfilled' and o.refunded_jpy = 0), "
                                  "(select max(id) from app.pulls where order_id = (select id from app.orders "
                                  "where status = 'fulfilled' and refunded_jpy = 0 limit 1))) as id; "
                                  "delete from app.downloads where user_reward_id in (select r.id from "
                                  "app.user_rewards r where r.pull_id = (select id from victim)); "
                                  "delete from app.user_rewards where pull_id = (select id from victim); "
                                  "delete from app.pulls where id = (select id from victim)",
        "no_pulls_without_payment": "alter table app.orders disable trigger user; update app.orders set status = "
                                    "'expired', paid_at = null, fulfilled_at = null "
                                    "where id = (select id from app.orders where status = 'fulfilled' limit 1)",
        # (one step off whichever way the check constraint allows: the item may be sold out)
        "item_stock_bounds": "update app.gacha_items set stock_remaining = case when stock_remaining > 0 "
                             "then stock_remaining - 1 else stock_remaining + 1 end "
                             "where id = (select id from app.gacha_items where stock > 0 order by id limit 1)",
        "refund_within_payment": "update app.refunds set amount_jpy = amount_jpy + 1 where id = "
                                 "(select id from app.refunds where status = 'completed' limit 1)",
        "audit_chain": "alter table app.audit_log disable trigger user; update app.audit_log set details = "
                       "'{\"forged\": true}' where id = (select id from app.audit_log order by id offset 1 limit 1)",
        "books_balance": "update app.payments set amount_jpy = amount_jpy - 100 where (order_id, provider) = "
                         "(select p.order_id, p.provider from app.payments p join app.orders o on o.id = p.order_id "
                         "and o.provider_payment_id = p.provider_payment_id where o.status = 'fulfilled' limit 1)",
        "rollups_equal_base_tables": "update app.sales_daily set gross_jpy = gross_jpy + 1 "
                                     "where (jst_date, gacha_id) = (select jst_date, gacha_id from app.sales_daily "
                                     "where paid_orders > 0 limit 1)",
        "rollup_details_equal_base_tables": "update app.item_pulls_daily set pulls = pulls + 1 where "
                                            "(jst_date, gacha_item_id) = (select jst_date, gacha_item_id "
                                            "from app.item_pulls_daily limit 1)",
        "fan_counts_equal_rollup_details": "update app.fan_counts_daily set last_fans = last_fans + 1 where "
                                           "(vtuber_id, jst_date) = (select vtuber_id, jst_date "
                                           "from app.fan_counts_daily limit 1)",
        "fan_gaps_equal_rollup_details": "update app.fan_gaps_daily set fans = fans + 1 where "
                                         "(vtuber_id, jst_date, prev_jst_date) = (select vtuber_id, jst_date, "
                                         "prev_jst_date from app.fan_gaps_daily limit 1)",
        "rate_audits_equal_rollup_details": "update app.rate_audits set statistic = statistic + 1 "
                                            "where gacha_id = (select gacha_id from app.rate_audits "
                                            "where draws > 0 limit 1)",
        "rollup_sums_equal_rollup_rows": "update app.item_pulls_weekly set pulls = pulls + 1 where "
                                         "(week_start, gacha_item_id) = (select week_start, gacha_item_id "
                                         "from app.item_pulls_weekly limit 1)",
    }
    res, report = soak_result[0], soak_result[1]
    with psycopg.connect(stack.db_url) as conn:
        for name, sql in corruptions.items():
            with conn.transaction(force_rollback=True):
                touched = conn.execute(sql).rowcount  # of its last statement
                found = invariants.check(conn)
            caught = {v.check for v in found}
            # Not caught: either the corruption found no row to corrupt in this run (touched 0: see the
            # run's figures) or the check missed it (then its query is wrong).
            assert name in caught, (f"{name} not caught; the corruption changed {touched} row(s); caught: "
                                    f"{sorted(caught)}; figures: {res.figures}\n{report}")
        after = invariants.check(conn)
        assert after == [], "violations after the rolled-back corruptions:\n" + "\n".join(map(str, after))
