"""POST /webhooks/stripe: verify the raw body's signature, then one call to the inbox."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .. import verify
from ..errors import Problem
from ._inbox import record, refuse_unreadable

bp = Blueprint("stripe_webhook", __name__)


@bp.post("/webhooks/stripe")
def stripe_webhook():
    svc = current_app.extensions["koepon"]
    raw = request.get_data(cache=False)  # the bytes as sent: never parsed before the check
    try:
        event = verify.stripe_event(raw, request.headers.get("Stripe-Signature"),
                                    svc.config.stripe_webhook_secret, svc.config.webhook_tolerance)
    except verify.BadSignature as exc:
        raise Problem(400, "invalid_signature", str(exc)) from exc
    except verify.BadBody as exc:
        # Signed by the provider, yet unreadable: a retry can never help (see _inbox.refuse_unreadable).
        return jsonify(refuse_unreadable("stripe", raw, str(exc)))
    return jsonify(record(svc, "stripe", event))
