"""POST /webhooks/komoju: verify X-Komoju-Signature over the raw body, then one call to the inbox."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .. import verify
from ..errors import Problem
from ._inbox import record

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
        raise Problem(400, "invalid_event", str(exc)) from exc
    return jsonify(record(svc, "komoju", event))
