"""The inbox and its state machine, called as the payment service calls it (service_role)."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from koepon.localstack.fakes import events as ev


def _state(shop, order_id):
    return shop.row(
        "select o.status, o.refunded_jpy, (select count(*) from app.pulls p where p.order_id = o.id), "
        "(select coalesce(sum(l.delta), 0) from app.medal_ledger l where l.order_id = o.id), "
        "(select count(*) from app.user_rewards r join app.pulls p on p.id = r.pull_id "
        "  where p.order_id = o.id and r.revoked_at is null) "
        "from app.orders o where o.id = %s", (order_id,))


def _payment(shop, order_id, provider="stripe"):
    return shop.row("select status, refunded_jpy, refunds_applied_jpy, flagged, flag_reason, disputed "
                    "from app.payments where order_id = %s and provider = %s", (order_id, provider))


def test_succeeded_fulfils_once_and_duplicates_are_no_ops(shop):
    _, order, amount = shop.order()
    [event] = ev.stripe_outcome_events(order, amount, "succeeded")
    first = shop.deliver("stripe", event)
    assert first["outcome"] == "fulfilled" and first["duplicate"] is False and first["order_id"] == order
    again = shop.deliver("stripe", event)
    assert again["duplicate"] is True and again["outcome"] == "fulfilled"
    assert _state(shop, order) == ("fulfilled", 0, 10, 100, 10)
    # The same payment under a new event id (Stripe resends as a new event): no second effect.
    event2 = {**event, "id": "evt_other"}
    assert shop.deliver("stripe", event2)["outcome"] == "already_paid"
    assert _state(shop, order) == ("fulfilled", 0, 10, 100, 10)
    assert shop.row("select count(*) from app.payment_events where order_id = %s", (order,))[0] == 2


def test_ten_identical_deliveries_at_once_fulfil_once(shop):
    _, order, amount = shop.order()
    [event] = ev.stripe_outcome_events(order, amount, "succeeded")
    results, errors = [], []
    barrier = threading.Barrier(10)

    def deliver():
        try:
            barrier.wait()
            results.append(shop.deliver("stripe", event))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(r["duplicate"] for r in results) == [False] + [True] * 9
    assert _state(shop, order) == ("fulfilled", 0, 10, 100, 10)
    assert shop.row("select count(*) from app.medal_ledger where order_id = %s", (order,))[0] == 1


def test_refund_before_succeeded_converges_to_the_in_order_state(shop):
    _, in_order, amount = shop.order()
    _, reversed_order, _ = shop.order()
    for order, seq in ((in_order, ("succeeded", "refunded")), (reversed_order, ("refunded", "succeeded"))):
        pi = "pi_" + order.replace("-", "")[:24]
        for outcome in seq:
            [e] = ev.stripe_outcome_events(order, amount, outcome, pi_id=pi)
            r = shop.deliver("stripe", e)
            if outcome == "refunded" and seq[0] == "refunded":
                assert r["outcome"] == "refund_deferred"
    assert _state(shop, in_order) == ("fulfilled", amount, 10, 0, 0)
    assert _state(shop, reversed_order) == _state(shop, in_order)
    assert _payment(shop, reversed_order)[:3] == ("refunded", amount, amount)
    assert shop.row("select count(*) from app.refunds where order_id = %s and status = 'completed'",
                    (reversed_order,))[0] == 1


def test_succeeded_after_expired_honours_the_payment(shop):
    _, order, amount = shop.order()
    pid = "kp" + order.replace("-", "")[:20]
    [expired] = ev.komoju_outcome_events(order, amount, "expired", payment_id=pid)
    assert shop.deliver("komoju", expired)["outcome"] == "order_expired"
    assert _state(shop, order)[0] == "expired"
    # The money arrived after all: the provider is authoritative, the order is fulfilled once.
    captured = ev.komoju_event("payment.captured", ev.komoju_payment(order, amount, payment_id=pid))
    assert shop.deliver("komoju", captured)["outcome"] == "fulfilled"
    assert _state(shop, order) == ("fulfilled", 0, 10, 100, 10)
    # And a late expiry never moves it back.
    late = ev.komoju_event("payment.expired", ev.komoju_payment(order, amount, status="expired", payment_id=pid))
    assert shop.deliver("komoju", late)["outcome"] == "ignored_paid"
    assert _state(shop, order)[0] == "fulfilled"


def test_failed_after_succeeded_is_ignored(shop):
    _, order, amount = shop.order()
    pi = "pi_" + order.replace("-", "")[:24]
    [ok] = ev.stripe_outcome_events(order, amount, "succeeded", pi_id=pi)
    [failed] = ev.stripe_outcome_events(order, amount, "failed", pi_id=pi)
    shop.deliver("stripe", ok)
    assert shop.deliver("stripe", failed)["outcome"] == "ignored_paid"
    assert _state(shop, order)[0] == "fulfilled"


def test_failed_then_canceled_from_pending(shop):
    _, order, amount = shop.order()
    [failed] = ev.stripe_outcome_events(order, amount, "failed")
    assert shop.deliver("stripe", failed)["outcome"] == "order_failed"
    assert _state(shop, order)[0] == "failed"
    assert _payment(shop, order)[0] == "failed"


def test_partial_then_full_refund(shop):
    _, order, amount = shop.order()
    pi = "pi_" + order.replace("-", "")[:24]
    [ok] = ev.stripe_outcome_events(order, amount, "succeeded", pi_id=pi)
    shop.deliver("stripe", ok)
    pi_obj = ev.stripe_payment_intent(order, amount, pi_id=pi, status="succeeded")
    partial = ev.stripe_event("charge.refunded", ev.stripe_charge(pi_obj, amount_refunded=300))
    full = ev.stripe_event("charge.refunded", ev.stripe_charge(pi_obj, amount_refunded=amount))
    assert shop.deliver("stripe", partial)["outcome"] == "refund_recorded"
    assert _payment(shop, order)[:3] == ("partially_refunded", 300, 300)
    st = _state(shop, order)
    assert st[0] == "fulfilled" and st[1] == 300 and st[3] == 0 and st[4] == 0  # first refund voids the pulls
    assert shop.deliver("stripe", full)["outcome"] == "refund_recorded"
    assert _payment(shop, order)[:3] == ("refunded", amount, amount)
    assert _state(shop, order)[1] == amount
    # The partial one again, late and under a new id: cumulative amounts never go back.
    again = {**partial, "id": "evt_late_partial"}
    assert shop.deliver("stripe", again)["outcome"] == "refund_already_recorded"
    assert shop.row("select array_agg(amount_jpy order by amount_jpy) from app.refunds where order_id = %s",
                    (order,))[0] == [300, amount - 300]


def test_komoju_konbini_authorized_then_captured_later(shop):
    _, order, amount = shop.order()
    authorized, captured = ev.komoju_outcome_events(order, amount, "succeeded")
    before = shop.row("select expires_at from app.orders where id = %s", (order,))[0]
    r = shop.deliver("komoju", authorized)
    assert r["outcome"] == "awaiting_payment"
    assert _state(shop, order)[0] == "pending"
    after = shop.row("select expires_at from app.orders where id = %s", (order,))[0]
    assert after > before, "the order waits for the konbini payment deadline"
    assert shop.deliver("komoju", captured)["outcome"] == "fulfilled"
    assert _state(shop, order) == ("fulfilled", 0, 10, 100, 10)


def test_amount_tampering_is_flagged_not_fulfilled(shop):
    _, order, amount = shop.order()
    [event] = ev.stripe_outcome_events(order, amount, "succeeded")
    event["data"]["object"]["amount_received"] = 100
    event["data"]["object"]["amount"] = 100
    r = shop.deliver("stripe", event)
    assert r["outcome"] == "flagged_amount_mismatch"
    assert _state(shop, order)[0] == "pending" and _state(shop, order)[2] == 0
    assert _payment(shop, order)[3:5] == (True, "amount_mismatch")
    usd = ev.komoju_outcome_events(order, amount, "succeeded")[1]
    usd["data"]["currency"] = "USD"
    assert shop.deliver("komoju", usd)["outcome"] == "flagged_amount_mismatch"
    assert _state(shop, order)[2] == 0


def test_dispute_flags_order_and_fan(shop):
    user, order, amount = shop.order()
    pi = "pi_" + order.replace("-", "")[:24]
    shop.deliver("stripe", ev.stripe_outcome_events(order, amount, "succeeded", pi_id=pi)[0])
    pi_obj = ev.stripe_payment_intent(order, amount, pi_id=pi, status="succeeded")
    dispute = ev.stripe_dispute(pi_obj)
    assert shop.deliver("stripe", ev.stripe_event("charge.dispute.created", dispute))["outcome"] == "dispute_recorded"
    closed = ev.stripe_event("charge.dispute.closed", {**dispute, "status": "lost"})
    assert shop.deliver("stripe", closed)["outcome"] == "dispute_recorded"
    assert shop.row("select disputed from app.orders where id = %s", (order,))[0] is True
    assert shop.row("select flagged from app.profiles where user_id = %s", (user,))[0] is True
    assert shop.row("select status from app.disputes where order_id = %s", (order,))[0] == "lost"


def test_unknown_types_and_unknown_orders_are_recorded(shop):
    r = shop.deliver("stripe", ev.stripe_event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert r["outcome"] == "ignored" and r["duplicate"] is False
    ping = ev.komoju_event("ping", {})
    assert shop.deliver("komoju", ping)["outcome"] == "ignored"
    stray = ev.stripe_outcome_events("00000000-0000-4000-8000-000000000000", 1000, "succeeded")[0]
    assert shop.deliver("stripe", stray)["outcome"] == "order_not_found"


def test_bad_arguments_are_400_and_write_nothing(shop):
    before = shop.row("select count(*) from app.payment_events")[0]
    for args in (("paypal", "e1", "t", {}), ("stripe", "", "t", {}), ("stripe", "e1", "t", [1])):
        with pytest.raises(psycopg.Error) as exc:
            shop.service("select public.service_record_payment_event(%s, %s, %s, %s)",
                         (args[0], args[1], args[2], json.dumps(args[3])))
        assert exc.value.sqlstate == "PT400"
    assert shop.row("select count(*) from app.payment_events")[0] == before


def test_attach_and_prepare(shop):
    user, order, amount = shop.order()
    prep = shop.service("select public.service_prepare_payment(%s, %s)", (order, user))
    assert prep["amount_jpy"] == amount and prep["status"] == "pending" and prep["payments"] == []
    stranger = shop.fan()
    with pytest.raises(psycopg.Error) as exc:
        shop.service("select public.service_prepare_payment(%s, %s)", (order, stranger))
    assert exc.value.sqlstate == "PT404"
    p = shop.service("select public.service_attach_payment(%s, 'stripe', 'pi_attach_1')", (order,))
    assert p["payment_ref"] == "pi_attach_1" and p["provider_payment_id"] == "pi_attach_1"
    _, other, _ = shop.order()
    with pytest.raises(psycopg.Error) as exc:
        shop.service("select public.service_attach_payment(%s, 'stripe', 'pi_attach_1')", (other,))
    assert exc.value.sqlstate == "PT409"
    # A charge.refunded names only the PaymentIntent: the attached reference finds the order.
    shop.deliver("stripe", ev.stripe_outcome_events(order, amount, "succeeded", pi_id="pi_attach_1")[0])
    charge = ev.stripe_charge(ev.stripe_payment_intent(order, amount, pi_id="pi_attach_1", metadata={}),
                              amount_refunded=amount)
    assert shop.deliver("stripe", ev.stripe_event("charge.refunded", charge))["order_id"] == order
    with pytest.raises(psycopg.Error) as exc:
        shop.service("select public.service_attach_payment(%s, 'stripe', 'pi_x')", (order,))
    assert exc.value.sqlstate == "PT409"


def test_no_api_role_but_service_role_may_call(shop):
    user, order, _ = shop.order()
    with psycopg.connect(shop.url) as conn:
        conn.execute("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
                     (json.dumps({"sub": user, "role": "authenticated"}),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select public.service_record_payment_event('stripe', 'x', 'y', '{}')")


def test_event_naming_another_order_than_its_payment_is_flagged(shop):
    _, own, amount = shop.order()
    _, victim, _ = shop.order()
    shop.service("select public.service_attach_payment(%s, 'stripe', 'pi_own_payment')", (own,))
    [event] = ev.stripe_outcome_events(victim, amount, "succeeded", pi_id="pi_own_payment")
    r = shop.deliver("stripe", event)
    assert r["outcome"] == "flagged_payment_order_mismatch"
    assert _state(shop, victim)[0] == "pending" and _state(shop, own)[0] == "pending"
    assert _payment(shop, own)[3:5] == (True, "payment_order_mismatch")
    assert shop.deliver("stripe", event)["duplicate"] is True
