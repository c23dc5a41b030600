"""The payment service over HTTP: configuration, signatures, answers, endpoints, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from webhook_support import sign_up_fan

from koepon.cli import main
from koepon.localstack.fakes import events as ev
from koepon.localstack.fakes.serve import serving
from koepon.localstack.services import free_port, payments_env
from koepon.settings import ANON_KEY, KOMOJU_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET
from supabase import create_client
from webhooks.app import create_app
from webhooks.config import Config, ConfigError

GACHA = "00000000-0000-4000-d000-000000000001"  # seed: 10 pulls ¥3000, 110 medals


def _order(sb, pulls=10):
    return sb.rpc("create_order", {"p_gacha_id": GACHA, "p_pull_count": pulls,
                                   "p_idempotency_key": uuid.uuid4().hex}).execute().data


def _post_event(url, provider, event, *, secret=None, ts=None, body=None, headers=None):
    body = body if body is not None else ev.dumps(event)
    if headers is None:
        headers = (ev.stripe_sign(body, secret or STRIPE_WEBHOOK_SECRET, timestamp=ts) if provider == "stripe"
                   else ev.komoju_sign(body, secret or KOMOJU_WEBHOOK_SECRET, event=event))
    return httpx.post(f"{url}/webhooks/{provider}", content=body, headers=headers, timeout=5)


# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------
def _env(**kw):
    env = payments_env("http://127.0.0.1:9", "http://127.0.0.1:9")
    env.update(kw)
    return {k: v for k, v in env.items() if v is not None}


@pytest.mark.parametrize("missing", ["STRIPE_WEBHOOK_SECRET", "KOMOJU_WEBHOOK_SECRET", "SUPABASE_URL",
                                     "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_JWT_SECRET",
                                     "STRIPE_SECRET_KEY", "KOMOJU_SECRET_KEY"])
def test_refuses_to_start_without_a_secret(missing):
    with pytest.raises(ConfigError, match=missing):
        create_app(_env(**{missing: None}))


def test_refuses_unsafe_configuration():
    with pytest.raises(ConfigError, match="too short"):
        create_app(_env(STRIPE_WEBHOOK_SECRET="short"))
    with pytest.raises(ConfigError, match="live Stripe key"):
        create_app(_env(STRIPE_SECRET_KEY="sk_live_abc"))
    # No provider key and nowhere to find a fake: refuse rather than call the real API with a fake key.
    with pytest.raises(ConfigError, match="no local fake"):
        create_app(_env(STRIPE_API_BASE=None))


def test_the_fakes_are_used_only_when_asked_for_and_say_so():
    cfg = Config.from_env(_env(STRIPE_API_BASE="http://127.0.0.1:5/stripe"))
    assert cfg.stripe_is_fake and cfg.komoju_is_fake
    assert cfg.stripe_api_base == "http://127.0.0.1:5/stripe"
    assert any("using the local fake Stripe API at http://127.0.0.1:5/stripe" in n for n in cfg.notes)
    real = Config.from_env(_env(STRIPE_SECRET_KEY="sk_test_real", STRIPE_API_BASE=None, KOMOJU_SECRET_KEY="k"))
    assert not real.stripe_is_fake and real.stripe_api_base is None and not real.notes
    client = create_app(cfg).test_client()
    assert client.get("/health").get_json()["stripe"] == "fake"
    # The payment service never serves the fakes itself: they are their own server.
    assert client.post("/_fake/stripe/v1/payment_intents", data={"amount": "1000", "currency": "jpy"},
                       headers={"Authorization": "Bearer sk_test_local"}).status_code == 404


@pytest.mark.parametrize("missing", ["STRIPE_SECRET_KEY", "KOMOJU_SECRET_KEY"])
def test_the_service_refuses_to_start_without_a_provider_key(missing, tmp_path):
    """Fail closed: a production service with a key missing exits at start, with the reason,
    instead of quietly talking to fake providers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "KOMOJU_", "SUPABASE_"))}
    env.update(_env(**{missing: None, "STRIPE_API_BASE": None, "KOMOJU_API_BASE": None}))
    res = subprocess.run([sys.executable, "-m", "webhooks", "--port", str(free_port())], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert f"webhooks: refusing to start without {missing}" in res.stderr


# ---------------------------------------------------------------------------------------
# Signatures: checked over the raw body before anything is parsed
# ---------------------------------------------------------------------------------------
def test_stripe_signature_cases(stack):
    api_url, pay, _ = stack
    url = pay.payments_url
    sb, _, _ = sign_up_fan(api_url, "pay")
    order = _order(sb)
    [event] = ev.stripe_outcome_events(order["order_id"], order["amount_jpy"], "succeeded")
    body = ev.dumps(event)

    tampered = body.replace(str(order["amount_jpy"]), "100")
    r = _post_event(url, "stripe", event, body=tampered, headers=ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET))
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature")
    r = _post_event(url, "stripe", event, headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature")
    r = _post_event(url, "stripe", event, ts=int(time.time()) - 301)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature")
    r = _post_event(url, "stripe", event, secret="whsec_not_the_right_secret_at_all")
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature")
    garbage = "not json"
    r = _post_event(url, "stripe", event, body=garbage, headers=ev.stripe_sign(garbage, STRIPE_WEBHOOK_SECRET))
    # Signed by Stripe yet unreadable: no retry can help, so it is acknowledged and refused.
    assert (r.status_code, r.json()["outcome"], r.json()["code"]) == (200, "refused", "invalid_event")
    r = _post_event(url, "stripe", event, body=b"\xff\xfe", headers=ev.stripe_sign("x", STRIPE_WEBHOOK_SECRET))
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature"), "not UTF-8: never verified"
    assert sb.rpc("get_order", {"p_order_id": order["order_id"]}).execute().data["status"] == "pending"

    r = _post_event(url, "stripe", event)
    assert r.status_code == 200 and r.json()["outcome"] == "fulfilled"
    # A replay of the old delivery (its signature now 10 minutes old) is refused; the same event
    # delivered again by Stripe (fresh signature) is a duplicate that changes nothing.
    old = ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET, timestamp=int(time.time()) - 600)
    assert _post_event(url, "stripe", event, headers=old).status_code == 400
    r = _post_event(url, "stripe", event)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    # Secret rotation: a second v1 signature that matches is enough.
    ts = int(time.time())
    good = ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET, timestamp=ts)["Stripe-Signature"]
    rotated = f"{good},v1={'0' * 64}"
    r = _post_event(url, "stripe", event, headers={"Stripe-Signature": rotated, "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["duplicate"] is True
    got = sb.rpc("get_order", {"p_order_id": order["order_id"]}).execute().data
    assert got["status"] == "fulfilled" and len(got["pulls"]) == 10


def test_komoju_signature_cases(stack):
    api_url, pay, _ = stack
    url = pay.payments_url
    sb, _, _ = sign_up_fan(api_url, "pay")
    order = _order(sb)
    _, captured = ev.komoju_outcome_events(order["order_id"], order["amount_jpy"], "succeeded")
    body = ev.dumps(captured)
    r = _post_event(url, "komoju", captured, body=body.replace('"amount":3000', '"amount":300'),
                    headers=ev.komoju_sign(body, KOMOJU_WEBHOOK_SECRET))
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature")
    r = _post_event(url, "komoju", captured, headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature")
    r = _post_event(url, "komoju", captured, secret="not-the-komoju-secret-at-all")
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature")
    r = _post_event(url, "komoju", captured)
    assert r.status_code == 200 and r.json()["outcome"] == "fulfilled"
    # KOMOJU signs no timestamp: a replay verifies, and the inbox makes it harmless.
    r = _post_event(url, "komoju", captured)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    ping = ev.komoju_event("ping", {})
    r = _post_event(url, "komoju", ping)
    assert r.status_code == 200 and r.json()["outcome"] == "ignored"


def test_database_unreachable_is_503_with_retry_after():
    """The answer's speed is measured by `koepon bench webhook`, not here; what bounds it is the API
    client's timeout (0.8 s, no retry), checked as configuration."""
    dead = f"http://127.0.0.1:{free_port()}"
    app = create_app(payments_env(dead, dead))
    assert app.extensions["koepon"].config.api_timeout <= 0.8
    with serving(app) as url:
        [event] = ev.stripe_outcome_events(str(uuid.uuid4()), 1000, "succeeded")
        r = _post_event(url, "stripe", event)
        assert (r.status_code, r.json()["code"]) == (503, "database_unavailable")
        assert r.headers["Retry-After"] == "5"


def test_ten_identical_deliveries_at_once_over_http(stack, seeded_db_url):
    api_url, pay, _ = stack
    sb, _, _ = sign_up_fan(api_url, "pay")
    order = _order(sb)
    [event] = ev.stripe_outcome_events(order["order_id"], order["amount_jpy"], "succeeded")
    body = ev.dumps(event)
    headers = ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET)
    answers = []
    barrier = threading.Barrier(10)

    def send():
        barrier.wait()
        answers.append(_post_event(pay.payments_url, "stripe", event, body=body, headers=headers))

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 10
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 9
    with psycopg.connect(seeded_db_url) as conn:
        grants = conn.execute("select count(*) from app.medal_ledger where order_id = %s and reason = 'pull_grant'",
                              (order["order_id"],)).fetchone()[0]
        pulls = conn.execute("select count(*) from app.pulls where order_id = %s", (order["order_id"],)).fetchone()[0]
    assert (grants, pulls) == (1, 10)


# ---------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------
def test_payment_intent_endpoint_rules(stack):
    api_url, pay, _ = stack
    url = pay.payments_url + "/payments/stripe/payment-intents"
    sb, token, _ = sign_up_fan(api_url, "pay")
    order = _order(sb)
    assert httpx.post(url, json={"order_id": order["order_id"]}).json()["code"] == "not_authenticated"
    r = httpx.post(url, json={"order_id": order["order_id"]}, headers={"Authorization": "Bearer nope"})
    assert (r.status_code, r.json()["code"]) == (401, "invalid_token")
    auth = {"Authorization": f"Bearer {token}"}
    r = httpx.post(url, json={"order_id": "x"}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_order_id")
    r = httpx.post(url, content=b"[", headers={**auth, "Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_body")
    _, other_token, _ = sign_up_fan(api_url, "pay")
    r = httpx.post(url, json={"order_id": order["order_id"]}, headers={"Authorization": f"Bearer {other_token}"})
    assert (r.status_code, r.json()["code"]) == (404, "order_not_found")
    first = httpx.post(url, json={"order_id": order["order_id"]}, headers=auth)
    again = httpx.post(url, json={"order_id": order["order_id"]}, headers=auth)
    assert first.status_code == 201 and again.status_code == 201
    assert first.json()["payment_intent_id"] == again.json()["payment_intent_id"], "idempotent per order"
    assert first.json()["amount"] == 3000 and first.json()["client_secret"].startswith("pi_")
    seen = [q for q in httpx.get(pay.fake_url + "/_requests").json() if q["path"] == "/stripe/v1/payment_intents"
            and q["params"].get("metadata", {}).get("order_id") == order["order_id"]]
    assert seen and all(q["params"]["amount"] == "3000" and q["params"]["currency"] == "jpy" for q in seen)
    assert {q["idempotency_key"] for q in seen} == {f"koepon-order-{order['order_id']}-payment-intent"}
    # Paid: no second payment.
    paid = CliRunner().invoke(main, ["pay", order["order_id"], "--url", pay.payments_url, "--api-url", api_url])
    assert paid.exit_code == 0 and "fulfilled" in paid.output, paid.output
    r = httpx.post(url, json={"order_id": order["order_id"]}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "order_not_payable")


def test_komoju_session_endpoint_rules(stack):
    api_url, pay, _ = stack
    url = pay.payments_url + "/payments/komoju/sessions"
    sb, token, _ = sign_up_fan(api_url, "pay")
    order = _order(sb)
    auth = {"Authorization": f"Bearer {token}"}
    r = httpx.post(url, json={"order_id": order["order_id"], "return_url": "javascript:alert(1)"}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_return_url")
    r = httpx.post(url, json={"order_id": order["order_id"], "return_url": "https://koepon.example/r"}, headers=auth)
    assert r.status_code == 201 and "/sessions/" in r.json()["session_url"]


def test_refund_execution_needs_an_admin_and_an_approved_refund(stack):
    api_url, pay, _ = stack
    sb, token, _ = sign_up_fan(api_url, "pay")
    order = _order(sb)
    paid = CliRunner().invoke(main, ["pay", order["order_id"], "--url", pay.payments_url, "--api-url", api_url])
    assert paid.exit_code == 0 and "fulfilled" in paid.output, paid.output
    refund = sb.rpc("request_refund", {"p_order_id": order["order_id"], "p_reason": "test"}).execute().data
    url = f"{pay.payments_url}/payments/refunds/{refund['refund_id']}/execute"
    r = httpx.post(url, headers={"Authorization": f"Bearer {token}"})
    assert (r.status_code, r.json()["code"]) == (403, "admin_only")
    admin = create_client(api_url, ANON_KEY)
    admin_token = admin.auth.sign_in_with_password({"email": "admin@koepon.local",
                                                    "password": "koepon-admin-pass"}).session.access_token
    r = httpx.post(url, headers={"Authorization": f"Bearer {admin_token}"})
    assert (r.status_code, r.json()["code"]) == (409, "refund_not_approved")
    r = httpx.post(f"{pay.payments_url}/payments/refunds/{uuid.uuid4()}/execute",
                   headers={"Authorization": f"Bearer {admin_token}"})
    assert (r.status_code, r.json()["code"]) == (404, "refund_not_found")


# ---------------------------------------------------------------------------------------
# End to end through the local API
# ---------------------------------------------------------------------------------------
def _wait_fulfilled(sb, order_id):
    got = sb.rpc("get_order", {"p_order_id": order_id}).execute().data
    assert got["status"] == "fulfilled", got
    return got


def test_end_to_end_stripe(stack):
    api_url, pay, _ = stack
    sb, token, _ = sign_up_fan(api_url, "pay")
    order = _order(sb)
    pi = httpx.post(pay.payments_url + "/payments/stripe/payment-intents", json={"order_id": order["order_id"]},
                    headers={"Authorization": f"Bearer {token}"}).json()
    # Stripe reports the payment (the PaymentIntent the service created) through a signed webhook.
    pi_obj = httpx.get(f"{pay.fake_url}/stripe/v1/payment_intents/{pi['payment_intent_id']}",
                       headers={"Authorization": "Bearer sk_test_local"}).json()
    assert pi_obj["metadata"]["order_id"] == order["order_id"] and pi_obj["amount"] == 3000
    succeeded = ev.stripe_event("payment_intent.succeeded",
                                {**pi_obj, "status": "succeeded", "amount_received": pi_obj["amount"]})
    r = _post_event(pay.payments_url, "stripe", succeeded)
    assert r.json()["outcome"] == "fulfilled"
    got = _wait_fulfilled(sb, order["order_id"])
    assert len(got["pulls"]) == 10 and got["medals_granted"] == 110
    assert all(p["reward_id"] for p in got["pulls"])
    assert sum(b["balance"] for b in sb.rpc("get_medal_balances", {}).execute().data) == 110
    assert len(sb.rpc("list_my_rewards", {}).execute().data) == 10


def test_end_to_end_komoju_konbini(stack):
    api_url, pay, _ = stack
    sb, token, _ = sign_up_fan(api_url, "pay")
    order = _order(sb)
    s = httpx.post(pay.payments_url + "/payments/komoju/sessions",
                   json={"order_id": order["order_id"], "return_url": "https://koepon.example/r"},
                   headers={"Authorization": f"Bearer {token}"}).json()
    authorized, captured = ev.komoju_outcome_events(order["order_id"], order["amount_jpy"], "succeeded",
                                                    session_id=s["session_id"])
    assert _post_event(pay.payments_url, "komoju", authorized).json()["outcome"] == "awaiting_payment"
    assert sb.rpc("get_order", {"p_order_id": order["order_id"]}).execute().data["status"] == "pending"
    assert _post_event(pay.payments_url, "komoju", captured).json()["outcome"] == "fulfilled"
    got = _wait_fulfilled(sb, order["order_id"])
    assert len(got["pulls"]) == 10 and got["medals_granted"] == 110
    assert len(sb.rpc("list_my_rewards", {}).execute().data) == 10


def test_koepon_pay_outcomes(stack):
    api_url, pay, _ = stack
    sb, _, _ = sign_up_fan(api_url, "pay")
    failed, disputed = _order(sb), _order(sb)
    run = CliRunner().invoke
    r = run(main, ["pay", failed["order_id"], "--outcome", "failed", "--url", pay.payments_url,
                   "--api-url", api_url])
    assert r.exit_code == 0 and "order_failed" in r.output
    assert sb.rpc("get_order", {"p_order_id": failed["order_id"]}).execute().data["status"] == "failed"
    r = run(main, ["pay", disputed["order_id"], "--url", pay.payments_url, "--api-url", api_url])
    assert "fulfilled" in r.output
    r = run(main, ["pay", disputed["order_id"], "--outcome", "disputed", "--url", pay.payments_url,
                   "--api-url", api_url])
    assert r.exit_code == 0 and "dispute_recorded" in r.output
    r = run(main, ["pay", str(uuid.uuid4()), "--url", pay.payments_url, "--api-url", api_url])
    assert r.exit_code != 0 and "order_not_found" in r.output
