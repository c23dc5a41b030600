"""The inbox acts at the time it is given (p_now), through the economy's cores: a fulfilment made
by an event records that time, not the transaction's clock."""

from __future__ import annotations

import json

from koepon.localstack.fakes import events as ev


def test_a_payment_event_fulfils_at_the_inbox_time(shop):
    _, order, amount = shop.order()
    [event] = ev.stripe_outcome_events(order, amount, "succeeded")
    # 90 seconds after the transaction's own clock: a core reading now() would record that instead.
    res = shop.row("select private.record_payment_event('stripe', %s, %s, %s, now() + interval '90 seconds'), "
                   "now() + interval '90 seconds'", (event["id"], event["type"], json.dumps(event)))
    assert res[0]["outcome"] == "fulfilled", res[0]
    at = res[1]
    o = shop.row("select paid_at, fulfilled_at, (select min(p.created_at) from app.pulls p where p.order_id = o.id), "
                 "(select max(p.created_at) from app.pulls p where p.order_id = o.id), "
                 "(select l.created_at from app.medal_ledger l where l.order_id = o.id) "
                 "from app.orders o where o.id = %s", (order,))
    assert o == (at, at, at, at, at)
