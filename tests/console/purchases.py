"""Purchases made outside the browser, the way the console makes them (the payment service creates
the PaymentIntent, the card is confirmed at the fake Stripe with the publishable key and the client
secret, whose signed webhook fulfils the order), for journeys whose subject is another person's screen."""

from __future__ import annotations

import time
import uuid

import httpx

from koepon.settings import ANON_KEY
from supabase import create_client


def paying_fan(stack, gacha_id: str, pulls: int = 1) -> dict:
    """A new fan with a paid, fulfilled order of `pulls` on `gacha_id`: {email, password, user_id, order_id}."""
    fan = create_client(stack.api_url, ANON_KEY)
    email, password = f"console-buyer-{uuid.uuid4().hex[:8]}@example.com", "buyer-password-123"
    res = fan.auth.sign_up({"email": email, "password": password})
    fan.rpc("update_my_profile", {"p_birth_date": "1990-01-01"}).execute()
    order = fan.rpc("create_order", {"p_gacha_id": gacha_id, "p_pull_count": pulls,
                                     "p_idempotency_key": uuid.uuid4().hex}).execute().data
    pi = httpx.post(f"{stack.payments_url}/payments/stripe/payment-intents", json={"order_id": order["order_id"]},
                    headers={"Authorization": f"Bearer {res.session.access_token}"}, timeout=10)
    assert pi.status_code == 201, pi.text
    confirmed = httpx.post(f"{stack.fake_url}/stripe/v1/payment_intents/{pi.json()['payment_intent_id']}/confirm",
                           data={"key": "pk_test_local", "client_secret": pi.json()["client_secret"],
                                 "payment_method_data[type]": "card",
                                 "payment_method_data[card][number]": "4242424242424242"}, timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    deadline = time.monotonic() + 15
    while fan.rpc("get_order", {"p_order_id": order["order_id"]}).execute().data["status"] != "fulfilled":
        assert time.monotonic() < deadline, "the order was not fulfilled within 15 s"
        time.sleep(0.1)
    return {"email": email, "password": password, "user_id": res.user.id, "order_id": order["order_id"]}
