"""A tiny fake of the Stripe and KOMOJU HTTP APIs (the parts Koepon calls), for tests and `koepon up`.

Stripe (under /stripe, form-encoded, `Authorization: Bearer sk_test_…`, `Idempotency-Key`):
  POST /v1/payment_intents, GET /v1/payment_intents/<id>, POST /v1/refunds
KOMOJU (under /komoju, JSON, HTTP basic auth with the secret key, `Idempotency-Key`):
  POST /api/v1/sessions, GET /api/v1/sessions/<id>, POST /api/v1/payments/<id>/refund

Objects are shaped like the providers' documented ones (koepon.localstack.fakes.events). A refund also
sends the provider's refund event, signed like the real one, to the configured webhook URL
(after the response, in a thread), as the real providers do. Test-only extra:
GET /_requests lists the requests received (method, path, idempotency key, params).
"""

from __future__ import annotations

import json
import threading
import time

import httpx
from flask import Flask, jsonify, request

from . import events as ev


def _stripe_params() -> dict:
    """Stripe's form encoding (`metadata[order_id]=…`, `a[b][c]=…`) as nested dicts."""
    out: dict = {}
    for key, value in request.form.items(multi=False):
        parts = key.replace("]", "").split("[")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
    return out


def create_fake_app(stripe_webhook: tuple[str, str] | None = None,
                    komoju_webhook: tuple[str, str] | None = None, deliver_delay: float = 0.05) -> Flask:
    app = Flask("koepon-fake-providers")
    lock = threading.Lock()
    state: dict = {"idem": {}, "pi": {}, "sessions": {}, "komoju_payments": {}, "requests": []}

    def deliver(target: tuple[str, str] | None, provider: str, event: dict) -> None:
        if not target:
            return
        url, secret = target
        body = ev.dumps(event)

        def send():
            time.sleep(deliver_delay)
            headers = ev.sign(provider, body, secret, event=event)
            for _ in range(3):  # the providers retry; so does the fake (briefly)
                try:
                    if httpx.post(url, content=body, headers=headers, timeout=5).status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)

        threading.Thread(target=send, daemon=True).start()

    def idempotent(scope: str, make):
        key = request.headers.get("Idempotency-Key")
        with lock:
            state["requests"].append({"method": request.method, "path": request.path, "idempotency_key": key,
                                      "params": request.get_json(silent=True) or _stripe_params()})
            if key and (scope, key) in state["idem"]:
                return state["idem"][(scope, key)]
            result = make()
            if key:
                state["idem"][(scope, key)] = result
            return result

    def stripe_error(status: int, message: str, code: str = "parameter_invalid"):
        return jsonify({"error": {"type": "invalid_request_error", "code": code, "message": message}}), status

    def stripe_auth():
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bearer sk_test_") or auth.startswith("Bearer rk_test_")

    @app.post("/stripe/v1/payment_intents")
    def stripe_create_pi():
        if not stripe_auth():
            return stripe_error(401, "Invalid API Key provided", "api_key_invalid")
        p = _stripe_params()
        try:
            amount = int(p.get("amount", ""))
        except ValueError:
            return stripe_error(400, "Missing required param: amount.")
        if amount < 50 or p.get("currency", "").lower() != "jpy":
            return stripe_error(400, "Invalid amount or currency")

        def make():
            pi = ev.stripe_payment_intent(p.get("metadata", {}).get("order_id", ""), amount,
                                          metadata=p.get("metadata", {}))
            pi["description"] = p.get("description")
            state["pi"][pi["id"]] = pi
            return pi
        return jsonify(idempotent("pi", make))

    @app.get("/stripe/v1/payment_intents/<pi_id>")
    def stripe_get_pi(pi_id):
        if not stripe_auth():
            return stripe_error(401, "Invalid API Key provided", "api_key_invalid")
        pi = state["pi"].get(pi_id)
        return jsonify(pi) if pi else stripe_error(404, f"No such payment_intent: '{pi_id}'", "resource_missing")

    @app.post("/stripe/v1/refunds")
    def stripe_refund():
        if not stripe_auth():
            return stripe_error(401, "Invalid API Key provided", "api_key_invalid")
        p = _stripe_params()
        pi_id = p.get("payment_intent", "")
        # A PaymentIntent the fake did not create (paid through `koepon pay`) is taken as paid.
        pi = state["pi"].get(pi_id)
        try:
            amount = int(p["amount"]) if "amount" in p else (pi["amount"] if pi else 0)
        except ValueError:
            return stripe_error(400, "Invalid integer: amount")
        if not pi_id.startswith("pi_") or amount <= 0:
            return stripe_error(400, "Invalid payment_intent or amount")
        key = request.headers.get("Idempotency-Key")
        fresh = not (key and ("refund", key) in state["idem"])

        def make():
            base = pi or ev.stripe_payment_intent(p.get("metadata", {}).get("order_id", ""), amount, pi_id=pi_id,
                                                  metadata={})
            base = {**base, "status": "succeeded", "amount_received": base["amount"]}
            state["pi"][pi_id] = base
            refunded = state.setdefault("refunded", {}).get(pi_id, 0) + amount
            state["refunded"][pi_id] = refunded
            refund = ev.stripe_refund(base, amount, metadata=p.get("metadata"))
            refund["_event"] = ev.stripe_event("charge.refunded", ev.stripe_charge(base, amount_refunded=refunded))
            return refund
        refund = idempotent("refund", make)
        if fresh:
            deliver(stripe_webhook, "stripe", refund["_event"])
        return jsonify({k: v for k, v in refund.items() if k != "_event"})

    # -- KOMOJU ----------------------------------------------------------------------------------
    def komoju_error(status: int, code: str, message: str):
        return jsonify({"error": {"code": code, "message": message, "param": None}}), status

    def komoju_auth():
        auth = request.authorization
        return bool(auth and auth.username and auth.username.startswith("sk_test_"))

    @app.post("/komoju/api/v1/sessions")
    def komoju_create_session():
        if not komoju_auth():
            return komoju_error(401, "unauthorized", "The secret key is invalid")
        body = request.get_json(silent=True) or {}
        amount, currency, return_url = body.get("amount"), body.get("currency"), body.get("return_url")
        if not isinstance(amount, int) or amount <= 0 or currency != "JPY" or not return_url:
            return komoju_error(422, "bad_request", "amount, currency (JPY) and return_url are required")

        def make():
            order_id = (body.get("metadata") or {}).get("order_id", "")
            s = ev.komoju_session(order_id, amount, return_url, base=request.host_url + "komoju")
            s["metadata"] = body.get("metadata") or {}
            s["payment_data"] = body.get("payment_data") or {}
            state["sessions"][s["id"]] = s
            return s
        return jsonify(idempotent("session", make))

    @app.get("/komoju/api/v1/sessions/<sid>")
    def komoju_get_session(sid):
        if not komoju_auth():
            return komoju_error(401, "unauthorized", "The secret key is invalid")
        s = state["sessions"].get(sid)
        return jsonify(s) if s else komoju_error(404, "not_found", "The requested resource could not be found")

    @app.post("/komoju/api/v1/payments/<pid>/refund")
    def komoju_refund(pid):
        if not komoju_auth():
            return komoju_error(401, "unauthorized", "The secret key is invalid")
        body = request.get_json(silent=True) or {}
        amount = body.get("amount")
        if not isinstance(amount, int) or amount <= 0:
            return komoju_error(422, "bad_request", "amount must be a positive integer")
        key = request.headers.get("Idempotency-Key")
        fresh = not (key and ("komoju_refund", key) in state["idem"])

        def make():
            # A payment the fake did not see (paid through `koepon pay`) is taken as captured.
            pay = state["komoju_payments"].get(pid) or ev.komoju_payment("", amount, payment_id=pid)
            pay = json.loads(json.dumps(pay))
            pay["refunds"] = [*pay.get("refunds", []), ev.komoju_refund(pay, amount)]
            pay["amount_refunded"] = sum(r["amount"] for r in pay["refunds"])
            full = pay["amount_refunded"] >= pay["amount"]
            pay["status"] = "refunded" if full else "captured"
            state["komoju_payments"][pid] = pay
            return {"payment": pay, "_event": ev.komoju_event("payment.refunded" if full else
                                                              "payment.refund.created", pay)}
        result = idempotent("komoju_refund", make)
        if fresh:
            deliver(komoju_webhook, "komoju", result["_event"])
        return jsonify(result["payment"])

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    @app.get("/_requests")
    def requests_seen():
        return jsonify(state["requests"])

    return app
