"""Refund execution is authorised in SQL: an active admin, and exactly one provider call per refund."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import psycopg
from click.testing import CliRunner
from webhook_support import sign_up_fan

from koepon.cli import main

GACHA = "00000000-0000-4000-d000-000000000001"  # seed: 10 pulls ¥3000


def _admin(api_url, db_url, *, suspended=False):
    sb, token, uid = sign_up_fan(api_url, "rx", "Refunder")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("insert into app.user_roles (user_id, role) values (%s, 'admin')", (uid,))
        if suspended:
            conn.execute("update app.profiles set status = 'suspended' where user_id = %s", (uid,))
    return sb, token


def _approved_refund(api_url, pay, admin_sb):
    sb, token, _ = sign_up_fan(api_url, "rx", "Refunder")
    order = sb.rpc("create_order", {"p_gacha_id": GACHA, "p_pull_count": 10,
                                    "p_idempotency_key": uuid.uuid4().hex}).execute().data
    # The PaymentIntent is made at the (fake) provider, as a browser would, so that the provider
    # knows the payment it is later asked to refund (an unknown one is Stripe's resource_missing).
    r = httpx.post(f"{pay.payments_url}/payments/stripe/payment-intents", json={"order_id": order["order_id"]},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    r = CliRunner().invoke(main, ["pay", order["order_id"], "--url", pay.payments_url, "--api-url", api_url])
    assert r.exit_code == 0 and "fulfilled" in r.output, r.output
    refund = sb.rpc("request_refund", {"p_order_id": order["order_id"], "p_reason": "test"}).execute().data
    admin_sb.rpc("review_refund", {"p_refund_id": refund["refund_id"], "p_approve": True,
                                   "p_reason": None}).execute()
    return refund["refund_id"]


def _provider_refund_calls(pay, refund_id):
    return [q for q in httpx.get(pay.fake_url + "/_requests").json()
            if q["path"] == "/stripe/v1/refunds" and q["params"].get("metadata", {}).get("refund_id") == refund_id]


def _status(db_url, refund_id):
    with psycopg.connect(db_url) as conn:
        return conn.execute("select status from app.refunds where id = %s", (refund_id,)).fetchone()[0]


def _wait_status(db_url, refund_id, want, tries=100):
    """The fake provider sends its refund event from a thread, after answering the refund call."""
    got = None
    for _ in range(tries):
        got = _status(db_url, refund_id)
        if got == want:
            return got
        time.sleep(0.05)
    return got


def test_a_suspended_admin_cannot_execute_a_refund(stack):
    api_url, pay, db_url = stack
    admin_sb, _ = _admin(api_url, db_url)
    refund_id = _approved_refund(api_url, pay, admin_sb)
    _, suspended_token = _admin(api_url, db_url, suspended=True)
    r = httpx.post(f"{pay.payments_url}/payments/refunds/{refund_id}/execute",
                   headers={"Authorization": f"Bearer {suspended_token}"})
    assert (r.status_code, r.json()["code"]) == (403, "admin_only")
    assert _provider_refund_calls(pay, refund_id) == []
    assert _status(db_url, refund_id) == "approved"


def test_two_admins_clicking_at_once_cause_one_provider_call(stack):
    api_url, pay, db_url = stack
    admin_a, token_a = _admin(api_url, db_url)
    _, token_b = _admin(api_url, db_url)
    refund_id = _approved_refund(api_url, pay, admin_a)
    url = f"{pay.payments_url}/payments/refunds/{refund_id}/execute"
    tokens = [token_a, token_b] * 4
    barrier = threading.Barrier(len(tokens))
    answers: list[httpx.Response] = []

    def click(token):
        barrier.wait()
        answers.append(httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=30))

    threads = [threading.Thread(target=click, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted((a.status_code, a.json().get("code", "")) for a in answers)
    assert outcomes == [(202, "")] + [(409, "refund_not_approved")] * (len(tokens) - 1), outcomes
    assert len(_provider_refund_calls(pay, refund_id)) == 1
    # The fake provider's refund event completed it through the inbox.
    assert _wait_status(db_url, refund_id, "completed") == "completed"
    with psycopg.connect(db_url) as conn:
        actions = [a for (a,) in conn.execute(
            "select action from app.audit_log where target_id = %s order by id", (refund_id,))]
    assert actions.count("refund.execute") == 1


def test_a_refused_provider_call_puts_the_refund_back_to_approved(stack):
    api_url, pay, db_url = stack
    admin_sb, token = _admin(api_url, db_url)
    refund_id = _approved_refund(api_url, pay, admin_sb)
    # The provider refuses the call (no such payment): the refund goes back to approved for a retry.
    # (An id of this run's own: the module's database serves the test on both transports.)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update app.orders set provider_payment_id = %s "
                     "where id = (select order_id from app.refunds where id = %s)",
                     (f"not_a_payment_intent_{uuid.uuid4().hex[:8]}", refund_id))
    r = httpx.post(f"{pay.payments_url}/payments/refunds/{refund_id}/execute",
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code >= 400 and r.json()["code"] == "provider_error", r.text
    assert _status(db_url, refund_id) == "approved"
