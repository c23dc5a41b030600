"""Provider objects and webhook events shaped like Stripe's and KOMOJU's, and their signatures.

Used by the local fake provider APIs, by `koepon pay`, and by the tests. Signatures are made
with the real `stripe` library (`t=…,v1=…` over "<t>.<raw body>") and real HMAC-SHA256 (KOMOJU's
`X-Komoju-Signature`, hex, over the raw body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import stripe

STRIPE_API_VERSION = "2026-10-28.endive"


def _rid(prefix: str, n: int = 24) -> str:
    return prefix + secrets.token_hex(n // 2)


def _iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------
# Stripe
# ---------------------------------------------------------------------------------------
def stripe_payment_intent(order_id: str, amount: int, *, pi_id: str | None = None, currency: str = "jpy",
                          status: str = "requires_payment_method", metadata: dict | None = None) -> dict:
    pi_id = pi_id or _rid("pi_")
    succeeded = status == "succeeded"
    return {
        "id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_received": amount if succeeded else 0, "application": None, "canceled_at": None,
        "cancellation_reason": None, "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{secrets.token_hex(12)}", "confirmation_method": "automatic",
        "created": int(time.time()), "currency": currency, "customer": None, "description": None,
        "last_payment_error": None, "latest_charge": ("ch_" + pi_id[3:]) if succeeded else None,
        "livemode": False, "metadata": metadata if metadata is not None else {"order_id": order_id},
        "next_action": None, "payment_method": None,
        "automatic_payment_methods": {"enabled": True}, "payment_method_types": ["card"],
        "status": status,
    }


def stripe_charge(pi: dict, *, amount_refunded: int = 0) -> dict:
    amount = pi["amount"]
    return {
        "id": "ch_" + pi["id"][3:], "object": "charge", "amount": amount, "amount_captured": amount,
        "amount_refunded": amount_refunded, "captured": True, "created": int(time.time()),
        "currency": pi["currency"], "disputed": False, "livemode": False, "metadata": dict(pi["metadata"]),
        "paid": True, "payment_intent": pi["id"], "refunded": amount_refunded >= amount,
        "status": "succeeded",
    }


def stripe_dispute(pi: dict, *, status: str = "needs_response", dispute_id: str | None = None) -> dict:
    return {
        "id": dispute_id or _rid("dp_"), "object": "dispute", "amount": pi["amount"],
        "charge": "ch_" + pi["id"][3:], "created": int(time.time()), "currency": pi["currency"],
        "is_charge_refundable": False, "livemode": False, "metadata": {}, "payment_intent": pi["id"],
        "reason": "fraudulent", "status": status,
    }


def stripe_refund(pi: dict, amount: int, *, metadata: dict | None = None) -> dict:
    return {
        "id": _rid("re_"), "object": "refund", "amount": amount, "charge": "ch_" + pi["id"][3:],
        "created": int(time.time()), "currency": pi["currency"], "metadata": metadata or {},
        "payment_intent": pi["id"], "reason": "requested_by_customer", "status": "succeeded",
    }


def stripe_event(event_type: str, obj: dict, *, event_id: str | None = None, created: int | None = None) -> dict:
    return {
        "id": event_id or _rid("evt_"), "object": "event", "api_version": STRIPE_API_VERSION,
        "created": created if created is not None else int(time.time()),
        "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": event_type,
    }


def stripe_sign(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)
    return {"Stripe-Signature": header, "Content-Type": "application/json",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}


def stripe_outcome_events(order_id: str, amount: int, outcome: str, *, pi_id: str | None = None) -> list[dict]:
    """The events Stripe sends for one outcome of paying an order."""
    pi = stripe_payment_intent(order_id, amount, pi_id=pi_id, status="succeeded")
    if outcome == "succeeded":
        return [stripe_event("payment_intent.succeeded", pi)]
    if outcome == "failed":
        failed = {**pi, "status": "requires_payment_method", "amount_received": 0, "latest_charge": None,
                  "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline",
                                         "message": "Your card was declined.", "type": "card_error"}}
        return [stripe_event("payment_intent.payment_failed", failed)]
    if outcome == "refunded":
        return [stripe_event("charge.refunded", stripe_charge(pi, amount_refunded=amount))]
    if outcome == "disputed":
        return [stripe_event("charge.dispute.created", stripe_dispute(pi))]
    raise ValueError(f"unknown outcome {outcome!r}")


# ---------------------------------------------------------------------------------------
# KOMOJU
# ---------------------------------------------------------------------------------------
def komoju_session(order_id: str, amount: int, return_url: str, *, base: str = "https://komoju.com",
                   session_id: str | None = None) -> dict:
    sid = session_id or secrets.token_hex(13)[:25]
    now = time.time()
    return {
        "id": sid, "resource": "session", "mode": "payment", "amount": amount, "currency": "JPY",
        "session_url": f"{base.rstrip('/')}/sessions/{sid}", "return_url": return_url,
        "default_locale": "ja", "payment_methods": [{"type": "credit_card"}, {"type": "konbini"},
                                                    {"type": "paypay"}, {"type": "bank_transfer"}],
        "created_at": _iso(now), "cancelled_at": None, "completed_at": None, "status": "pending",
        "expires_at": _iso(now + 86400), "metadata": {"order_id": order_id}, "payment": None,
        "payment_data": {"external_order_num": order_id, "metadata": {"order_id": order_id}},
    }


def komoju_payment(order_id: str, amount: int, *, status: str = "captured", payment_id: str | None = None,
                   session_id: str | None = None, method: str = "konbini", refunds: list[dict] | None = None,
                   currency: str = "JPY") -> dict:
    now = time.time()
    details = ({"type": "konbini", "store": "lawson", "confirmation_code": None,
                "receipt": secrets.token_hex(4), "instructions_url": "https://komoju.com/ja/instructions/x"}
               if method == "konbini" else {"type": method})
    refunds = refunds or []
    refunded = sum(r["amount"] for r in refunds)
    return {
        "id": payment_id or secrets.token_hex(13)[:25], "resource": "payment", "status": status,
        "amount": amount, "tax": 0, "customer": None,
        "payment_deadline": _iso(now + 3 * 86400), "payment_details": details,
        "payment_method_fee": 0, "total": amount, "currency": currency, "description": None,
        "captured_at": _iso(now) if status in ("captured", "refunded") else None,
        "external_order_num": order_id, "metadata": {"order_id": order_id}, "created_at": _iso(now),
        "amount_refunded": refunded, "locale": "ja", "session": session_id, "customer_family_name": None,
        "customer_given_name": None, "refunds": refunds, "refund_requests": [],
    }


def komoju_refund(payment: dict, amount: int) -> dict:
    return {"id": secrets.token_hex(13)[:25], "resource": "refund", "amount": amount,
            "currency": payment["currency"], "payment": payment["id"], "description": None,
            "created_at": _iso(), "chargeback": False}


def komoju_event(event_type: str, data: dict, *, event_id: str | None = None) -> dict:
    return {"id": event_id or secrets.token_hex(13)[:25], "type": event_type, "resource": "event",
            "data": data, "created_at": _iso(), "reason": None}


def komoju_sign(body: str | bytes, secret: str, *, event: dict | None = None) -> dict[str, str]:
    raw = body.encode() if isinstance(body, str) else body
    sig = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"X-Komoju-Signature": sig, "Content-Type": "application/json",
               "User-Agent": "Komoju-Webhook", "X-Komoju-ID": secrets.token_hex(13)[:25]}
    if event is not None:
        headers["X-Komoju-Event"] = event["type"]
    return headers


def komoju_payment_id(session_id: str) -> str:
    """The id of the payment a fan makes through a session: derived from the session's id, so the
    fake KOMOJU API knows the payments of the sessions it created (and refunds only those)."""
    return hashlib.sha256(f"komoju-payment:{session_id}".encode()).hexdigest()[:25]


def sign(provider: str, body: str, secret: str, *, event: dict | None = None,
         timestamp: int | None = None) -> dict[str, str]:
    """The headers the provider sends with `body`: Stripe's timestamped signature, or KOMOJU's HMAC
    (with its event header when `event` is given). The one place that chooses between them."""
    if provider == "stripe":
        return stripe_sign(body, secret, timestamp)
    return komoju_sign(body, secret, event=event)


def komoju_outcome_events(order_id: str, amount: int, outcome: str, *, payment_id: str | None = None,
                          session_id: str | None = None) -> list[dict]:
    """The events KOMOJU sends for one outcome of paying an order (konbini: authorized, then captured)."""
    pid = payment_id or (komoju_payment_id(session_id) if session_id else secrets.token_hex(13)[:25])
    if outcome == "succeeded":
        return [komoju_event("payment.authorized", komoju_payment(order_id, amount, status="authorized",
                                                                  payment_id=pid, session_id=session_id)),
                komoju_event("payment.captured", komoju_payment(order_id, amount, payment_id=pid,
                                                                session_id=session_id))]
    if outcome == "failed":
        return [komoju_event("payment.failed", komoju_payment(order_id, amount, status="failed", payment_id=pid,
                                                              session_id=session_id))]
    if outcome == "expired":
        return [komoju_event("payment.expired", komoju_payment(order_id, amount, status="expired", payment_id=pid,
                                                               session_id=session_id))]
    if outcome == "refunded":
        pay = komoju_payment(order_id, amount, status="refunded", payment_id=pid, session_id=session_id)
        pay["refunds"] = [komoju_refund(pay, amount)]
        pay["amount_refunded"] = amount
        return [komoju_event("payment.refunded", pay)]
    raise ValueError(f"unknown outcome {outcome!r} for komoju (succeeded, failed, expired, refunded)")


def dumps(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"))


def future(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
