"""Fan and admin endpoints: start a payment at a provider, execute an approved refund.

The amount always comes from the order's snapshot in the database, never from the request.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import urlparse

from flask import Blueprint, current_app, jsonify, request

from ..auth import caller
from ..errors import Problem
from ..providers import ProviderError

bp = Blueprint("payments", __name__, url_prefix="/payments")
log = logging.getLogger("webhooks.payments")


def _json() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Problem(400, "invalid_body", "send a JSON object")
    return data


def _uuid(value, code: str, name: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError) as exc:
        raise Problem(400, code, f"{name} must be a UUID") from exc


def _payable_order(svc, user_id: str, order_id: str) -> dict:
    # The database decides whether this fan may pay now (a suspended account may not).
    order = svc.db.rpc("service_prepare_fan_payment", p_order_id=order_id, p_user_id=user_id)
    if order["status"] != "pending":
        raise Problem(409, "order_not_payable", f"only a pending order can be paid; this one is {order['status']}")
    return order


@bp.post("/stripe/payment-intents")
def create_payment_intent():
    user_id = caller()
    order_id = _uuid(_json().get("order_id"), "invalid_order_id", "order_id")
    svc = current_app.extensions["koepon"]
    order = _payable_order(svc, user_id, order_id)
    pi = svc.stripe.create_payment_intent(order)
    svc.db.rpc("service_attach_payment", p_order_id=order_id, p_provider="stripe", p_provider_payment_id=pi["id"])
    log.info("order %s: PaymentIntent %s for %s JPY", order_id, pi["id"], order["amount_jpy"])
    return jsonify({"order_id": order_id, "provider": "stripe", "payment_intent_id": pi["id"],
                    "client_secret": pi["client_secret"], "amount": order["amount_jpy"], "currency": "JPY"}), 201


@bp.post("/komoju/sessions")
def create_komoju_session():
    user_id = caller()
    data = _json()
    order_id = _uuid(data.get("order_id"), "invalid_order_id", "order_id")
    return_url = data.get("return_url")
    parsed = urlparse(return_url) if isinstance(return_url, str) else None
    if not parsed or parsed.scheme not in ("http", "https") or not parsed.netloc or len(return_url) > 2000:
        raise Problem(400, "invalid_return_url", "return_url must be an http(s) URL")
    svc = current_app.extensions["koepon"]
    order = _payable_order(svc, user_id, order_id)
    session = svc.komoju.create_session(order, return_url)
    svc.db.rpc("service_attach_payment", p_order_id=order_id, p_provider="komoju",
               p_provider_payment_id=session["id"])
    log.info("order %s: KOMOJU session %s for %s JPY", order_id, session["id"], order["amount_jpy"])
    return jsonify({"order_id": order_id, "provider": "komoju", "session_id": session["id"],
                    "session_url": session["session_url"], "amount": order["amount_jpy"], "currency": "JPY"}), 201


@bp.post("/refunds/<refund_id>/execute")
def execute_refund(refund_id: str):
    user_id = caller()
    refund_id = _uuid(refund_id, "invalid_refund_id", "refund_id")
    svc = current_app.extensions["koepon"]
    # The database decides (active admin, approved, not yet executing) and marks it executing
    # exactly once: a second click, or a second admin at the same moment, gets refund_not_approved.
    refund = svc.db.rpc("service_begin_refund_execution", p_refund_id=refund_id, p_user_id=user_id)
    provider = refund["provider"]
    try:
        result = (svc.stripe if provider == "stripe" else svc.komoju).refund(refund)
    except ProviderError as exc:
        svc.db.rpc("service_abort_refund_execution", p_refund_id=refund_id, p_error=exc.message)
        raise
    log.info("refund %s: asked %s to refund %s JPY (%s)", refund_id, provider, refund["amount_jpy"], result["id"])
    # The provider's refund event completes it (service_record_refund through the inbox).
    return jsonify({"refund_id": refund_id, "order_id": refund["order_id"], "provider": provider,
                    "provider_refund_id": result["id"], "amount": refund["amount_jpy"],
                    "status": "submitted"}), 202
