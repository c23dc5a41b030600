"""A tiny fake of the Stripe and KOMOJU HTTP APIs (the parts Koepon calls), for tests and `koepon up`.

Stripe (under /stripe, form-encoded, `Authorization: Bearer sk_test_…`, `Idempotency-Key`):
  POST /v1/payment_intents, GET /v1/payment_intents/<id>, POST /v1/refunds
  POST /v1/payment_intents/<id>/confirm — what Stripe.js calls from the browser with the publishable
  key and the client secret (CORS open, as Stripe's): the fan's card confirmation, which the
  console's checkout uses; it delivers `payment_intent.succeeded` (or `payment_failed` for Stripe's
  declining test card 4000 0000 0000 0002) to the payment service, signed.
KOMOJU (under /komoju, JSON, HTTP basic auth with the secret key, `X-KOMOJU-IDEMPOTENCY`):
  POST /api/v1/sessions, GET /api/v1/sessions/<id>, POST /api/v1/payments/<id>/refund
  GET /sessions/<id> — the hosted payment page (`session_url`): for konbini it shows the payment
  slip; "pay at the store" (POST) later delivers `payment.authorized` then `payment.captured`.

Objects are shaped like the providers' documented ones (koepon.localstack.fakes.events). A refund also
sends the provider's refund event, signed like the real one, to the configured webhook URL
(after the response, in a thread), as the real providers do. Test-only extra:
GET /_requests lists the requests received (method, path, idempotency key, params).
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time

import httpx
from flask import Flask, Response, jsonify, request

from . import events as ev

# KOMOJU's idempotency header (its docs, "Idempotent requests"); Stripe's is Idempotency-Key.
KOMOJU_IDEMPOTENCY = "X-KOMOJU-IDEMPOTENCY"


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


def _rid_pm() -> str:
    return "pm_" + secrets.token_hex(12)


def create_fake_app(stripe_webhook: tuple[str, str] | None = None,
                    komoju_webhook: tuple[str, str] | None = None, deliver_delay: float = 0.05) -> Flask:
    app = Flask("koepon-fake-providers")
    lock = threading.Lock()
    state: dict = {"idem": {}, "pi": {}, "sessions": {}, "komoju_payments": {}, "requests": [], "refunded": {}}

    def deliver(target: tuple[str, str] | None, provider: str, *events: dict) -> None:
        """Deliver events in the background, in the order given (one thread for them all, so a
        provider's sequence such as KOMOJU's authorized-then-captured arrives in that order)."""
        if not target:
            return
        url, secret = target

        def send_one(event: dict) -> None:
            body = ev.dumps(event)
            headers = ev.sign(provider, body, secret, event=event)
            for _ in range(3):  # the providers retry; so does the fake (briefly)
                try:
                    if httpx.post(url, content=body, headers=headers, timeout=5).status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)

        def send():
            time.sleep(deliver_delay)
            for event in events:
                send_one(event)

        threading.Thread(target=send, daemon=True).start()

    def idempotent(scope: str, make, header: str = "Idempotency-Key"):
        """Stripe's `Idempotency-Key`, KOMOJU's `X-KOMOJU-IDEMPOTENCY`: each reads only its own."""
        key = request.headers.get(header)
        with lock:
            state["requests"].append({"method": request.method, "path": request.path, "idempotency_key": key,
                                      "params": request.get_json(silent=True) or _stripe_params()})
            if key and (scope, key) in state["idem"]:
                return state["idem"][(scope, key)]
            result = make()
            if key:
                state["idem"][(scope, key)] = result
            return result

    def stripe_error(status: int, message: str, code: str = "parameter_invalid", param: str | None = None):
        # Stripe's error object: {"error": {code, doc_url, message, param, request_log_url, type}}.
        return jsonify({"error": {
            "code": code, "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            "message": message, "param": param,
            "request_log_url": f"https://dashboard.stripe.com/test/logs/req_{secrets.token_hex(7)}",
            "type": "invalid_request_error"}}), status

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

    # Stripe's declining test card; any other number is accepted, as in Stripe's test mode.
    declined_cards = {"4000000000000002"}

    @app.route("/stripe/v1/payment_intents/<pi_id>/confirm", methods=["POST", "OPTIONS"])
    def stripe_confirm_pi(pi_id):
        """Stripe.js's confirmation from the browser: authenticated by the publishable key and the
        PaymentIntent's client secret (never the secret key), answered with CORS open as Stripe's API is."""
        cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Authorization"}
        if request.method == "OPTIONS":
            return Response(status=204, headers=cors)

        def answer(body, status=200):
            if isinstance(body, tuple):  # stripe_error's (response, status)
                body, status = body
            resp = body if isinstance(body, Response) else jsonify(body)
            resp.status_code = status
            resp.headers.update(cors)
            return resp
        p = _stripe_params()
        key = p.get("key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not key.startswith("pk_test_"):
            return answer(stripe_error(401, "Invalid API Key provided", "api_key_invalid"))
        pi = state["pi"].get(pi_id)
        if pi is None or p.get("client_secret") != pi["client_secret"]:
            return answer(stripe_error(404, f"No such payment_intent: '{pi_id}'", "resource_missing", "intent"))
        if pi["status"] == "succeeded":
            return answer(stripe_error(400, "This PaymentIntent's payment_method could not be updated because it has "
                                       "a status of succeeded.", "payment_intent_unexpected_state"))
        card = (p.get("payment_method_data") or {}).get("card") or {}
        number = str(card.get("number", "")).replace(" ", "")
        if number in declined_cards:
            failed = {**pi, "status": "requires_payment_method",
                      "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline",
                                             "message": "Your card was declined.", "type": "card_error"}}
            state["pi"][pi_id] = failed
            deliver(stripe_webhook, "stripe", ev.stripe_event("payment_intent.payment_failed", failed))
            err = {"error": {**failed["last_payment_error"], "payment_intent": failed,
                             "doc_url": "https://stripe.com/docs/error-codes/card-declined"}}
            return answer(jsonify(err), 402)
        paid = {**pi, "status": "succeeded", "amount_received": pi["amount"], "latest_charge": "ch_" + pi_id[3:],
                "payment_method": _rid_pm()}
        state["pi"][pi_id] = paid
        deliver(stripe_webhook, "stripe", ev.stripe_event("payment_intent.succeeded", paid))
        return answer(paid)

    @app.post("/stripe/v1/refunds")
    def stripe_refund():
        """As strict as Stripe: an unknown PaymentIntent is 404 resource_missing; more than what remains
        is 400 amount_too_large, and nothing left at all is 400 charge_already_refunded. The fake
        knows the PaymentIntents it created (the payment service creates every one); it takes them as
        paid, since the fan's confirmation happens in Stripe.js, which the fake does not run."""
        if not stripe_auth():
            return stripe_error(401, "Invalid API Key provided", "api_key_invalid")
        p = _stripe_params()
        key = request.headers.get("Idempotency-Key")
        with lock:
            if key and ("refund", key) in state["idem"]:
                # A retry with the same key gets the first answer, whatever happened since (Stripe).
                return jsonify({k: v for k, v in state["idem"][("refund", key)].items() if k != "_event"})
        pi_id = p.get("payment_intent", "")
        if not pi_id:
            return stripe_error(400, "Missing required param: payment_intent.", "parameter_missing", "payment_intent")
        pi = state["pi"].get(pi_id)
        if pi is None:
            return stripe_error(404, f"No such payment_intent: '{pi_id}'", "resource_missing", "payment_intent")
        refunded = state["refunded"].get(pi_id, 0)
        remaining = pi["amount"] - refunded
        try:
            amount = int(p["amount"]) if "amount" in p else remaining
        except ValueError:
            return stripe_error(400, "Invalid integer: " + p["amount"], "parameter_invalid_integer", "amount")
        if remaining <= 0:
            return stripe_error(400, f"Charge ch_{pi_id[3:]} has already been refunded.", "charge_already_refunded")
        if amount <= 0:
            return stripe_error(400, "This value must be greater than or equal to 1.", "parameter_invalid_integer",
                                "amount")
        if amount > remaining:
            # Stripe's two wordings: before any refund, and after a partial one.
            limit = (f"charge amount (¥{remaining:,})" if refunded == 0
                     else f"unrefunded amount on charge (¥{remaining:,})")
            return stripe_error(400, f"Refund amount (¥{amount:,}) is greater than {limit}", "amount_too_large",
                                "amount")

        def make():
            base = {**state["pi"][pi_id], "status": "succeeded"}
            base["amount_received"] = base["amount"]
            state["pi"][pi_id] = base
            total = state["refunded"].get(pi_id, 0) + amount
            state["refunded"][pi_id] = total
            refund = ev.stripe_refund(base, amount, metadata=p.get("metadata"))
            refund["_event"] = ev.stripe_event("charge.refunded", ev.stripe_charge(base, amount_refunded=total))
            return refund
        refund = idempotent("refund", make)
        deliver(stripe_webhook, "stripe", refund["_event"])
        return jsonify({k: v for k, v in refund.items() if k != "_event"})

    # -- KOMOJU ----------------------------------------------------------------------------------
    def komoju_error(status: int, code: str, message: str, param: str | None = None):
        return jsonify({"error": {"code": code, "message": message, "param": param}}), status

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
        return jsonify(idempotent("session", make, KOMOJU_IDEMPOTENCY))

    @app.get("/komoju/api/v1/sessions/<sid>")
    def komoju_get_session(sid):
        if not komoju_auth():
            return komoju_error(401, "unauthorized", "The secret key is invalid")
        s = state["sessions"].get(sid)
        return jsonify(s) if s else komoju_error(404, "not_found", "The requested resource could not be found")

    def komoju_known_payment(pid: str) -> dict | None:
        """A payment of a session this fake created (its id is derived from the session's, see
        events.komoju_payment_id), or one it has refunded before."""
        if pid in state["komoju_payments"]:
            return state["komoju_payments"][pid]
        for s in state["sessions"].values():
            if ev.komoju_payment_id(s["id"]) == pid:
                order_id = (s.get("metadata") or {}).get("order_id", "")
                return ev.komoju_payment(order_id, s["amount"], payment_id=pid, session_id=s["id"])
        return None

    @app.post("/komoju/api/v1/payments/<pid>/refund")
    def komoju_refund(pid):
        """As strict as KOMOJU: an unknown payment is 404 not_found; a refund of more than remains is
        422 unprocessable_entity on `amount` (KOMOJU documents no refund-specific code, only its
        generic ones), all in KOMOJU's error object {"error": {code, message, param}}."""
        if not komoju_auth():
            return komoju_error(401, "unauthorized", "The secret key is invalid")
        body = request.get_json(silent=True) or {}
        key = request.headers.get(KOMOJU_IDEMPOTENCY)
        with lock:
            if key and ("komoju_refund", key) in state["idem"]:
                return jsonify(state["idem"][("komoju_refund", key)]["payment"])
            known = komoju_known_payment(pid)
        if known is None:
            return komoju_error(404, "not_found", "The requested resource could not be found but may be available "
                                "again in the future")
        amount = body.get("amount", known["amount"] - known.get("amount_refunded", 0))
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return komoju_error(422, "bad_request", "amount must be a positive integer", param="amount")
        remaining = known["amount"] - known.get("amount_refunded", 0)
        if amount > remaining:
            return komoju_error(422, "unprocessable_entity",
                                f"The refund amount ({amount}) exceeds the refundable amount ({remaining})",
                                param="amount")

        def make():
            pay = json.loads(json.dumps(komoju_known_payment(pid)))
            pay["refunds"] = [*pay.get("refunds", []), ev.komoju_refund(pay, amount)]
            pay["amount_refunded"] = sum(r["amount"] for r in pay["refunds"])
            full = pay["amount_refunded"] >= pay["amount"]
            pay["status"] = "refunded" if full else "captured"
            state["komoju_payments"][pid] = pay
            return {"payment": pay, "_event": ev.komoju_event("payment.refunded" if full else
                                                              "payment.refund.created", pay)}
        result = idempotent("komoju_refund", make, KOMOJU_IDEMPOTENCY)
        deliver(komoju_webhook, "komoju", result["_event"])
        return jsonify(result["payment"])


    @app.route("/komoju/sessions/<sid>", methods=["GET", "POST"])
    def komoju_hosted_page(sid):
        """KOMOJU's hosted page (`session_url`), reduced to konbini: the payment slip (store, receipt
        number, deadline); "pay at the store" stands in for the fan paying days later and delivers
        KOMOJU's `payment.authorized` and `payment.captured` events."""
        s = state["sessions"].get(sid)
        if s is None:
            return Response("<!doctype html><title>KOMOJU</title><p>Session not found</p>", 404,
                            mimetype="text/html")
        pid = ev.komoju_payment_id(sid)
        order_id = (s.get("metadata") or {}).get("order_id", "")
        back = html.escape(s.get("return_url") or "", quote=True)
        if request.method == "POST":
            if not s.get("completed_at"):
                s["completed_at"] = ev._iso()
                s["status"] = "completed"
                deliver(komoju_webhook, "komoju", *ev.komoju_outcome_events(
                    order_id, s["amount"], "succeeded", payment_id=pid, session_id=sid))
            note = '<p id="paid">お支払いを受け付けました / Payment received.</p>'
        else:
            note = ""
        receipt = pid[:4].upper() + "-" + pid[4:12].upper()
        page = f"""<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>KOMOJU (local fake)</title>
</head><body><h1>コンビニ払い / Konbini payment (local fake KOMOJU)</h1>
<dl><dt>お支払い金額 / Amount</dt><dd id="amount">¥{s['amount']:,}（税込）</dd>
<dt>店舗 / Store</dt><dd>ローソン / Lawson</dd>
<dt>受付番号 / Receipt number</dt><dd id="receipt">{html.escape(receipt)}</dd>
<dt>お支払い期限 / Deadline</dt><dd>{html.escape(s['expires_at'])}</dd></dl>{note}
<form method="post"><button type="submit" id="pay-at-store">
店頭で支払う（シミュレート） / Pay at the store</button></form>
<p><a id="return" href="{back}">ショップに戻る / Back to the shop</a></p></body></html>"""
        return Response(page, mimetype="text/html")

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    @app.get("/_requests")
    def requests_seen():
        return jsonify(state["requests"])

    return app
