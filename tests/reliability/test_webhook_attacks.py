"""Webhook attacks against the payment service (its real HTTP endpoints, on an ephemeral port,
in front of the local API and a throwaway seeded database).

Forged signatures, replays beyond the tolerance, replays of processed event ids, bodies edited
after signing, changed amounts and currencies, and foreign or unknown order ids: none may
fulfil an order that was not paid in full, and none may fulfil one twice.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import psycopg
import pytest
from reliability_support import FAN, HOSHI_GACHA, raise_rate_limits, sign_in, sign_up

from koepon.localstack.fakes import events as ev
from koepon.localstack.fakes.serve import running_payments
from koepon.settings import KOMOJU_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET


@pytest.fixture(scope="module")
def stack(api_url, seeded_db_url):
    raise_rate_limits(seeded_db_url)
    with running_payments(api_url) as pay:
        yield api_url, pay.payments_url, seeded_db_url


@pytest.fixture(scope="module")
def fan(stack):
    return sign_in(stack[0], FAN)


def _order(fan, pulls: int = 1) -> tuple[str, int]:
    r = fan.rpc("create_order", {"p_gacha_id": HOSHI_GACHA, "p_pull_count": pulls,
                                 "p_idempotency_key": uuid.uuid4().hex})
    assert r.status_code == 200, r.text
    return r.json()["order_id"], r.json()["amount_jpy"]


def _pi(stack, fan, order_id: str) -> str:
    r = httpx.post(f"{stack[1]}/payments/stripe/payment-intents", json={"order_id": order_id},
                   headers={"Authorization": f"Bearer {fan.token}"})
    assert r.status_code == 201, r.text
    return r.json()["payment_intent_id"]


def _state(db_url: str, order_id: str) -> dict:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "select o.status, o.provider_payment_id, "
            "(select count(*) from app.pulls p where p.order_id = o.id), "
            "(select coalesce(sum(l.delta), 0) from app.medal_ledger l where l.order_id = o.id), "
            "(select count(*) from app.user_rewards r join app.pulls p on p.id = r.pull_id where p.order_id = o.id) "
            "from app.orders o where o.id = %s", (order_id,)).fetchone()
    return dict(zip(("status", "payment_id", "pulls", "medals", "rewards"), row, strict=True))


def _post_stripe(stack, body: str, headers: dict) -> httpx.Response:
    return httpx.post(f"{stack[1]}/webhooks/stripe", content=body.encode(), headers=headers)


def _signed_stripe(stack, event: dict, *, secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None):
    body = ev.dumps(event)
    return _post_stripe(stack, body, ev.stripe_sign(body, secret, timestamp))


def _paid(order_id: str, amount: int, pi_id: str, **kw) -> dict:
    return ev.stripe_outcome_events(order_id, amount, "succeeded", pi_id=pi_id, **kw)[0]


UNPAID = {"status": "pending", "payment_id": None, "pulls": 0, "medals": 0, "rewards": 0}


def test_forged_signatures_are_refused(stack, fan):
    order_id, amount = _order(fan)
    pi = _pi(stack, fan, order_id)
    event = _paid(order_id, amount, pi)
    body = ev.dumps(event)
    good = ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET)["Stripe-Signature"]
    t = int(time.time())
    forged_headers = {
        "wrong_secret": ev.stripe_sign(body, "whsec_attacker_guess_0123456789")["Stripe-Signature"],
        "no_header": None,
        "empty": "",
        "v0_only": f"t={t},v0={good.split('v1=')[1]}",
        "t_only": f"t={t}",
        "signature_of_another_body": ev.stripe_sign(body + " ", STRIPE_WEBHOOK_SECRET)["Stripe-Signature"],
        "garbage": "v1=deadbeef",
        "swapped_timestamp": f"t={t + 1},v1={good.split('v1=')[1]}",
    }
    for name, header in forged_headers.items():
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers["Stripe-Signature"] = header
        r = _post_stripe(stack, body, headers)
        assert r.status_code == 400 and r.json()["code"] == "invalid_signature", (name, r.text)
    # KOMOJU: HMAC with another secret, upper-case garbage, missing header.
    kev = ev.komoju_outcome_events(order_id, amount, "succeeded")[1]
    kbody = ev.dumps(kev)
    for name, headers in {
        "wrong_secret": ev.komoju_sign(kbody, "attacker-komoju-secret-000"),
        "missing": {"Content-Type": "application/json"},
        "stripe_style": ev.stripe_sign(kbody, KOMOJU_WEBHOOK_SECRET),
        "truncated": {**ev.komoju_sign(kbody, KOMOJU_WEBHOOK_SECRET),
                      "X-Komoju-Signature": ev.komoju_sign(kbody, KOMOJU_WEBHOOK_SECRET)["X-Komoju-Signature"][:-2]},
    }.items():
        r = httpx.post(f"{stack[1]}/webhooks/komoju", content=kbody.encode(), headers=headers)
        assert r.status_code == 400 and r.json()["code"] == "invalid_signature", (name, r.text)
    assert _state(stack[2], order_id) == {**UNPAID, "payment_id": None}


def test_replay_beyond_the_tolerance_is_refused(stack, fan):
    order_id, amount = _order(fan)
    pi = _pi(stack, fan, order_id)
    event = _paid(order_id, amount, pi)
    for age in (301, 3600, 86400 * 30):
        r = _signed_stripe(stack, event, timestamp=int(time.time()) - age)
        assert r.status_code == 400 and r.json()["code"] == "invalid_signature", (age, r.text)
    assert _state(stack[2], order_id)["status"] == "pending"
    # Inside the tolerance the same event is accepted: the refusal above was the timestamp.
    r = _signed_stripe(stack, event, timestamp=int(time.time()) - 60)
    assert r.status_code == 200 and r.json()["outcome"] == "fulfilled", r.text


def test_replay_of_a_processed_event_fulfils_once(stack, fan):
    order_id, amount = _order(fan, pulls=10)
    pi = _pi(stack, fan, order_id)
    event = _paid(order_id, amount, pi)
    first = _signed_stripe(stack, event)
    assert first.status_code == 200 and first.json()["outcome"] == "fulfilled", first.text
    after = _state(stack[2], order_id)
    assert after["status"] == "fulfilled" and after["pulls"] == 10 and after["rewards"] == 10
    for _ in range(5):
        r = _signed_stripe(stack, event)  # freshly signed: the provider re-delivering
        assert r.status_code == 200 and r.json()["duplicate"] is True, r.text
    # Same payment under a NEW event id (the provider's own retry of a different event).
    again = _signed_stripe(stack, {**event, "id": "evt_" + uuid.uuid4().hex})
    assert again.status_code == 200 and again.json()["outcome"] == "already_paid", again.text
    # The processed event id replayed with another order in its body: still a duplicate, no effect.
    other_id, other_amount = _order(fan)
    hijack = _paid(other_id, other_amount, "pi_" + uuid.uuid4().hex[:24])
    hijack["id"] = event["id"]
    r = _signed_stripe(stack, hijack)
    assert r.status_code == 200 and r.json()["duplicate"] is True, r.text
    assert _state(stack[2], order_id) == after
    assert _state(stack[2], other_id) == UNPAID


def test_body_edited_after_signing_is_refused(stack, fan):
    order_id, amount = _order(fan, pulls=10)
    pi = _pi(stack, fan, order_id)  # the expensive order has a real PaymentIntent the swap could aim at
    cheap_id, cheap_amount = _order(fan)
    event = _paid(cheap_id, cheap_amount, "pi_" + uuid.uuid4().hex[:24])
    body = ev.dumps(event)
    headers = ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET)
    edits = {
        "order_swapped": body.replace(cheap_id, order_id),
        "amount_raised": body.replace(f'"amount":{cheap_amount}', f'"amount":{amount}')
                             .replace(f'"amount_received":{cheap_amount}', f'"amount_received":{amount}'),
        "trailing_space": body + " ",
        "reformatted": json.dumps(event, indent=1),
        "type_changed": body.replace("payment_intent.succeeded", "payment_intent.canceled"),
    }
    for name, edited in edits.items():
        assert edited != body, name
        r = _post_stripe(stack, edited, headers)
        assert r.status_code == 400 and r.json()["code"] == "invalid_signature", (name, r.text)
    kev = ev.komoju_outcome_events(order_id, amount, "succeeded")[1]
    kbody = ev.dumps(kev)
    kheaders = ev.komoju_sign(kbody, KOMOJU_WEBHOOK_SECRET)
    r = httpx.post(f"{stack[1]}/webhooks/komoju", content=kbody.replace('"captured"', '"authorized"', 1).encode(),
                   headers=kheaders)
    assert r.status_code == 400 and r.json()["code"] == "invalid_signature", r.text
    assert _state(stack[2], order_id) == UNPAID, "the order the swapped body aimed at is not paid"
    with psycopg.connect(stack[2]) as conn:
        attached = conn.execute("select payment_ref from app.payments where order_id = %s", (order_id,)).fetchone()
    assert attached == (pi,), "the PaymentIntent the swap aimed at was attached to it"
    assert _state(stack[2], cheap_id) == UNPAID
    with psycopg.connect(stack[2]) as conn:
        recorded = conn.execute("select count(*) from app.payment_events where event_id = any(%s)",
                                ([event["id"], kev["id"]],)).fetchone()[0]
    assert recorded == 0, "a refused delivery records nothing"


@pytest.mark.parametrize("provider", ["stripe", "komoju"])
def test_changed_amount_or_currency_never_fulfils(stack, fan, provider):
    for amount_delta, currency in ((-1, "jpy"), (1, "jpy"), (0, "usd"), (None, "jpy")):
        order_id, amount = _order(fan, pulls=10)
        paid = 1 if amount_delta is None else amount + amount_delta
        if provider == "stripe":
            pi = _pi(stack, fan, order_id)
            event = ev.stripe_event("payment_intent.succeeded",
                                    ev.stripe_payment_intent(order_id, paid, pi_id=pi, currency=currency,
                                                             status="succeeded"))
            r = _signed_stripe(stack, event)
        else:
            payment = ev.komoju_payment(order_id, paid, currency=currency.upper())
            event = ev.komoju_event("payment.captured", payment)
            body = ev.dumps(event)
            r = httpx.post(f"{stack[1]}/webhooks/komoju", content=body.encode(),
                           headers=ev.komoju_sign(body, KOMOJU_WEBHOOK_SECRET))
        # Acknowledged (the provider must stop retrying) but flagged, never fulfilled.
        assert r.status_code == 200, r.text
        assert r.json()["outcome"] == "flagged_amount_mismatch", (amount_delta, currency, r.text)
        st = _state(stack[2], order_id)
        assert st["status"] == "pending" and st["pulls"] == 0 and st["medals"] == 0, st


def test_foreign_or_unknown_order_ids(stack, fan):
    api = stack[0]
    victim = sign_up(api, name="victim")
    victim_id, _ = _order(victim, pulls=10)
    # 1. An order id nobody has: recorded, acknowledged, nothing fulfilled.
    ghost = str(uuid.uuid4())
    r = _signed_stripe(stack, _paid(ghost, 300, "pi_" + uuid.uuid4().hex[:24]))
    assert r.status_code == 200 and r.json()["outcome"] == "order_not_found", r.text
    # 2. Not an id at all (injection attempts in metadata).
    for junk in ("'; delete from app.orders; --", "../../admin", "0" * 500):
        r = _signed_stripe(stack, _paid(junk, 300, "pi_" + uuid.uuid4().hex[:24]))
        assert r.status_code == 200 and r.json()["outcome"] == "order_not_found", r.text
    # 4. The fan cannot start a payment for someone else's order through the service either.
    r = httpx.post(f"{stack[1]}/payments/stripe/payment-intents", json={"order_id": victim_id},
                   headers={"Authorization": f"Bearer {fan.token}"})
    assert r.status_code == 404 and r.json()["code"] == "order_not_found", r.text
    assert _state(stack[2], victim_id) == UNPAID


def test_event_naming_a_foreign_order_is_flagged_not_retried_forever(stack, fan):
    victim = sign_up(stack[0], name="victim2")
    own_id, own_amount = _order(fan)
    own_pi = _pi(stack, fan, own_id)
    victim_id, _ = _order(victim, pulls=10)
    r = _signed_stripe(stack, _paid(victim_id, own_amount, own_pi))
    # Whatever happens, the victim's order is not paid by the fan's payment...
    assert _state(stack[2], victim_id) == UNPAID
    assert _state(stack[2], own_id) == UNPAID
    # ...and the event is acknowledged (recorded, flagged), not answered 5xx for ever.
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "flagged_payment_order_mismatch", r.text
    with psycopg.connect(stack[2]) as conn:
        flagged = conn.execute("select flagged, flag_reason from app.payments where order_id = %s and provider = "
                               "'stripe'", (own_id,)).fetchone()
    assert flagged == (True, "payment_order_mismatch")


def test_unsigned_payment_endpoints_need_a_real_user(stack, fan):
    order_id, _ = _order(fan)
    from reliability_support import forged_service_tokens

    for name, tok in forged_service_tokens().items():
        r = httpx.post(f"{stack[1]}/payments/stripe/payment-intents", json={"order_id": order_id},
                       headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 401, (name, r.text)
