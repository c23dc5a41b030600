"""The fake providers' browser-facing parts the console pays through: Stripe.js's confirmation
(publishable key + client secret) and KOMOJU's hosted konbini page."""

from __future__ import annotations

import json
import time

from koepon.localstack.fakes.providers import create_fake_app

SK = {"Authorization": "Bearer sk_test_local"}


def _intent(client, amount=3000):
    r = client.post("/stripe/v1/payment_intents", data={"amount": amount, "currency": "jpy",
                                                         "metadata[order_id]": "o-1"}, headers=SK)
    assert r.status_code == 200
    return r.get_json()


def _deliveries(monkeypatch):
    """The signed events the fake sends (from its delivery thread), captured instead of posted."""
    sent = []

    class Answer:
        status_code = 200

    def post(url, content, headers, timeout):
        sent.append((url, json.loads(content)))
        return Answer()
    monkeypatch.setattr("koepon.localstack.fakes.providers.httpx.post", post)
    return sent


def _until(sent, n):
    deadline = time.monotonic() + 5
    while len(sent) < n:
        assert time.monotonic() < deadline, f"expected {n} deliveries, got {sent}"
        time.sleep(0.01)
    time.sleep(0.05)  # and no more than n
    return [e["type"] for _u, e in sent]


def test_stripe_confirmation_takes_the_publishable_key_and_the_client_secret(monkeypatch):
    sent = _deliveries(monkeypatch)
    app = create_fake_app(stripe_webhook=("http://payments/webhooks/stripe", "whsec_" + "x" * 20), deliver_delay=0)
    client = app.test_client()
    pi = _intent(client)
    url = f"/stripe/v1/payment_intents/{pi['id']}/confirm"
    card = {"payment_method_data[type]": "card", "payment_method_data[card][number]": "4242424242424242"}

    pre = client.options(url)
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == "*"
    r = client.post(url, data={"key": "sk_test_local", "client_secret": pi["client_secret"], **card})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "api_key_invalid"
    r = client.post(url, data={"key": "pk_test_local", "client_secret": pi["client_secret"] + "x", **card})
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "resource_missing"
    assert sent == []

    declined = {**card, "payment_method_data[card][number]": "4000000000000002"}
    r = client.post(url, data={"key": "pk_test_local", "client_secret": pi["client_secret"], **declined})
    assert r.status_code == 402 and r.get_json()["error"]["code"] == "card_declined"
    assert _until(sent, 1) == ["payment_intent.payment_failed"]

    r = client.post(url, data={"key": "pk_test_local", "client_secret": pi["client_secret"], **card})
    assert r.status_code == 200 and r.get_json()["status"] == "succeeded"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert _until(sent, 2) == ["payment_intent.payment_failed", "payment_intent.succeeded"]
    assert sent[-1][1]["data"]["object"]["amount_received"] == 3000
    assert sent[-1][1]["data"]["object"]["metadata"] == {"order_id": "o-1"}

    r = client.post(url, data={"key": "pk_test_local", "client_secret": pi["client_secret"], **card})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "payment_intent_unexpected_state"
    assert _until(sent, 2) == ["payment_intent.payment_failed", "payment_intent.succeeded"]  # nothing twice


def test_komoju_hosted_page_shows_the_slip_and_pays_once(monkeypatch):
    sent = _deliveries(monkeypatch)
    app = create_fake_app(komoju_webhook=("http://payments/webhooks/komoju", "k" * 20), deliver_delay=0)
    client = app.test_client()
    r = client.post("/komoju/api/v1/sessions", json={"amount": 300, "currency": "JPY", "return_url": "http://shop/back",
                                                     "metadata": {"order_id": "o-2"}},
                    headers={"Authorization": "Basic c2tfdGVzdF9sb2NhbF9rb21vanU6"})
    assert r.status_code == 200
    session = r.get_json()
    path = "/" + session["session_url"].split("/", 3)[3]
    page = client.get(path).get_data(as_text=True)
    assert "¥300（税込）" in page and 'id="receipt"' in page and 'href="http://shop/back"' in page
    assert sent == []
    assert 'id="paid"' in client.post(path).get_data(as_text=True)
    client.post(path)  # a second press pays nothing twice
    assert _until(sent, 2) == ["payment.authorized", "payment.captured"]
    assert sent[-1][1]["data"]["metadata"] == {"order_id": "o-2"}
    assert client.get("/komoju/sessions/nope").status_code == 404
