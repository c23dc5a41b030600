"""The fake Stripe and KOMOJU APIs refuse refunds as the real ones do, in their error shapes.

Stripe (real `stripe` library against the fake): an unknown PaymentIntent is 404
`resource_missing`; more than remains is 400 `amount_too_large`; nothing left is 400
`charge_already_refunded`; every error is Stripe's object {code, doc_url, message, param,
request_log_url, type}. KOMOJU: {"error": {code, message, param}}, 404 `not_found` for an
unknown payment, 422 `unprocessable_entity` on `amount` for more than remains.
"""

from __future__ import annotations

import httpx
import pytest
import stripe

from koepon.localstack.fakes import events as ev
from koepon.localstack.fakes.providers import create_fake_app
from koepon.localstack.fakes.serve import serving

STRIPE_ERROR_KEYS = {"code", "doc_url", "message", "param", "request_log_url", "type"}


@pytest.fixture(scope="module")
def fake():
    with serving(create_fake_app()) as url:
        yield url


@pytest.fixture(scope="module")
def client(fake):
    return stripe.StripeClient("sk_test_local", base_addresses={"api": fake + "/stripe"}, max_network_retries=0,
                               http_client=stripe.HTTPXClient(allow_sync_methods=True))


def _pi(client, amount=3000):
    return client.v1.payment_intents.create(params={"amount": amount, "currency": "jpy",
                                                    "metadata": {"order_id": "o"}})


def test_stripe_refund_of_an_unknown_payment_intent_is_resource_missing(client, fake):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"payment_intent": "pi_does_not_exist", "amount": 100})
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    assert err.value.param == "payment_intent"
    assert "No such payment_intent: 'pi_does_not_exist'" in str(err.value.user_message or err.value)
    raw = httpx.post(fake + "/stripe/v1/refunds", data={"payment_intent": "pi_nope"},
                     headers={"Authorization": "Bearer sk_test_local"}).json()
    assert set(raw["error"]) == STRIPE_ERROR_KEYS and raw["error"]["type"] == "invalid_request_error"


def test_stripe_refund_of_more_than_remains_is_amount_too_large_then_charge_already_refunded(client):
    pi = _pi(client, 3000)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 3001})
    assert err.value.code == "amount_too_large" and "greater than charge amount (¥3,000)" in str(err.value)
    first = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000})
    assert first.amount == 1000 and first.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2001})
    assert (err.value.http_status, err.value.code, err.value.param) == (400, "amount_too_large", "amount")
    assert "greater than unrefunded amount on charge (¥2,000)" in str(err.value)
    rest = client.v1.refunds.create(params={"payment_intent": pi.id})  # no amount: what remains
    assert rest.amount == 2000
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1})
    assert (err.value.http_status, err.value.code) == (400, "charge_already_refunded")
    assert f"Charge ch_{pi.id[3:]} has already been refunded." in str(err.value)


def test_stripe_retry_with_the_same_idempotency_key_gets_the_first_answer(client):
    pi = _pi(client, 1000)
    a = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000},
                                 options={"idempotency_key": "refund-once"})
    b = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000},
                                 options={"idempotency_key": "refund-once"})
    assert a.id == b.id, "not refused as already refunded: the same request"


def _komoju_session(fake, amount=3000):
    r = httpx.post(fake + "/komoju/api/v1/sessions", auth=("sk_test_local_komoju", ""),
                   json={"amount": amount, "currency": "JPY", "return_url": "https://koepon.example/r",
                         "metadata": {"order_id": "o"}})
    assert r.status_code == 200
    return r.json()


def _komoju_refund(fake, pid, amount, key=None):
    return httpx.post(f"{fake}/komoju/api/v1/payments/{pid}/refund", auth=("sk_test_local_komoju", ""),
                      json={"amount": amount}, headers={"X-KOMOJU-IDEMPOTENCY": key} if key else {})


def test_komoju_refund_of_an_unknown_payment_is_not_found(fake):
    r = _komoju_refund(fake, "a" * 25, 100)
    assert r.status_code == 404
    # KOMOJU's reference gives this message for not_found.
    assert r.json() == {"error": {"code": "not_found", "param": None, "message": "The requested resource could "
                                  "not be found but may be available again in the future"}}


def test_komoju_refund_of_more_than_remains_is_refused_on_amount(fake):
    session = _komoju_session(fake, 3000)
    pid = ev.komoju_payment_id(session["id"])
    assert _komoju_refund(fake, pid, 1000).json()["amount_refunded"] == 1000
    r = _komoju_refund(fake, pid, 2001)
    assert r.status_code == 422
    assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"code", "message", "param"}
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("unprocessable_entity", "amount")
    done = _komoju_refund(fake, pid, 2000).json()
    assert (done["status"], done["amount_refunded"]) == ("refunded", 3000)
    assert _komoju_refund(fake, pid, 1).status_code == 422


def test_payment_service_reports_the_providers_refusal(fake):
    """The service's Stripe client turns the fake's 404 into a 502 provider_error naming the cause."""
    from webhooks.config import Config
    from webhooks.providers import ProviderError, Stripe

    cfg = Config.from_env({"STRIPE_SECRET_KEY": "sk_test_local", "KOMOJU_SECRET_KEY": "sk_test_local_komoju",
                           "STRIPE_API_BASE": fake + "/stripe", "KOMOJU_API_BASE": fake + "/komoju"})
    with pytest.raises(ProviderError) as err:
        Stripe(cfg, cfg.stripe_api_base).refund({"provider_payment_id": "pi_unknown", "amount_jpy": 100,
                                                 "refund_id": "r", "order_id": "o"})
    assert err.value.status == 502 and "No such payment_intent" in err.value.message
