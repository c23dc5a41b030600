"""POST /webhooks/komoju: verify X-Komoju-Signature over the raw body, then one call to the inbox."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .. import verify
from ..errors import Problem
from ._inbox import record, refuse_unreadable

bp = Blueprint("komoju_webhook", __name__)


@bp.post("/webhooks/komoju")
def komoju_webhook():
    svc = current_app.extensions["koepon"]
    raw = request.get_data(cache=False)
    try:
        event = verify.komoju_event(raw, request.headers.get("X-Komoju-Signature"),
                                    svc.config.komoju_webhook_secret)
    except verify.BadSignature as exc:
        raise Problem(400, "invalid_signature", str(exc)) from exc
    except verify.BadBody as exc:
        # Signed by the provider, yet unreadable: a retry can never help (see _inbox.refuse_unreadable).
        return jsonify(refuse_unreadable("komoju", raw, str(exc)))
    return jsonify(record(svc, "komoju", event))
