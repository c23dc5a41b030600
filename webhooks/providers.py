"""Outbound calls to the providers: Stripe through the `stripe` library, KOMOJU over its REST API.

Idempotency keys are derived from our ids, so a retried request never creates a second
PaymentIntent, session or refund.
"""

from __future__ import annotations

import random
import time

import httpx
import stripe

from .config import Config


class ProviderError(Exception):
    def __init__(self, provider: str, message: str, status: int = 502):
        super().__init__(f"{provider}: {message}")
        self.provider, self.message, self.status = provider, message, status


class Stripe:
    def __init__(self, cfg: Config, base: str | None):
        kwargs = {"base_addresses": {"api": base}} if base else {}
        self._client = stripe.StripeClient(cfg.stripe_secret_key, max_network_retries=1,
                                           http_client=stripe.HTTPXClient(timeout=cfg.provider_timeout,
                                                                            allow_sync_methods=True),
                                           **kwargs)

    def create_payment_intent(self, order: dict) -> dict:
        try:
            pi = self._client.v1.payment_intents.create(
                params={"amount": order["amount_jpy"], "currency": "jpy",
                        "automatic_payment_methods": {"enabled": True},
                        "description": f"Koepon order {order['order_id']}",
                        "metadata": {"order_id": order["order_id"], "user_id": order["user_id"],
                                     "gacha_id": order["gacha_id"], "pull_count": str(order["pull_count"])}},
                options={"idempotency_key": f"koepon-order-{order['order_id']}-payment-intent"})
        except stripe.StripeError as exc:
            raise ProviderError("stripe", exc.user_message or str(exc)) from exc
        return {"id": pi.id, "client_secret": pi.client_secret, "status": pi.status, "amount": pi.amount,
                "currency": pi.currency}

    def refund(self, refund: dict) -> dict:
        try:
            r = self._client.v1.refunds.create(
                params={"payment_intent": refund["provider_payment_id"], "amount": refund["amount_jpy"],
                        "metadata": {"refund_id": refund["refund_id"], "order_id": refund["order_id"]}},
                options={"idempotency_key": f"koepon-refund-{refund['refund_id']}"})
        except stripe.StripeError as exc:
            raise ProviderError("stripe", exc.user_message or str(exc)) from exc
        return {"id": r.id, "status": r.status, "amount": r.amount}


class Komoju:
    """KOMOJU's REST API. Every POST carries KOMOJU's idempotency header, so it is retried the way the
    `stripe` library retries (its max_network_retries): after a connection that failed or was reset
    (the request may or may not have arrived), and after KOMOJU's 409 for a key whose first request
    is still being processed. A timeout is not retried: the fan gets a 502 at once and may ask again
    (the same key then returns the same object)."""

    RETRIES = 2
    RETRY_DELAY = 0.5  # seconds before the first retry, doubled for each further one (as Stripe's)

    def __init__(self, cfg: Config, base: str | None):
        self._base = (base or "https://komoju.com").rstrip("/")
        self._http = httpx.Client(auth=(cfg.komoju_secret_key, ""), timeout=cfg.provider_timeout)

    def _post(self, path: str, body: dict, idempotency_key: str) -> dict:
        # KOMOJU's header (docs: "Idempotent requests"); it ignores a generic Idempotency-Key.
        headers = {"X-KOMOJU-IDEMPOTENCY": idempotency_key, "Accept": "application/json"}
        for attempt in range(self.RETRIES + 1):
            last = attempt == self.RETRIES
            try:
                r = self._http.post(f"{self._base}/api/v1{path}", json=body, headers=headers)
            except httpx.TimeoutException as exc:
                raise ProviderError("komoju", f"unreachable: {exc}") from exc
            except httpx.TransportError as exc:
                if last:
                    raise ProviderError("komoju", f"unreachable: {exc}") from exc
            else:
                if r.status_code != 409 or last:
                    break
            time.sleep(self.RETRY_DELAY * 2 ** attempt * random.uniform(0.75, 1.0))
        if r.status_code >= 400:
            try:
                msg = r.json().get("error", {}).get("message") or r.text
            except ValueError:
                msg = r.text
            raise ProviderError("komoju", f"HTTP {r.status_code}: {msg}")
        return r.json()

    def create_session(self, order: dict, return_url: str) -> dict:
        s = self._post("/sessions", {
            "amount": order["amount_jpy"], "currency": "JPY", "return_url": return_url,
            "default_locale": "ja", "metadata": {"order_id": order["order_id"]},
            "payment_data": {"external_order_num": order["order_id"],
                             "metadata": {"order_id": order["order_id"]}},
        }, f"koepon-order-{order['order_id']}-session")
        return {"id": s["id"], "session_url": s["session_url"], "status": s.get("status"),
                "expires_at": s.get("expires_at")}

    def refund(self, refund: dict) -> dict:
        r = self._post(f"/payments/{refund['provider_payment_id']}/refund",
                       {"amount": refund["amount_jpy"], "description": f"Koepon refund {refund['refund_id']}"},
                       f"koepon-refund-{refund['refund_id']}")
        refunds = r.get("refunds") or []
        return {"id": refunds[-1]["id"] if refunds else None, "status": r.get("status"),
                "amount": refund["amount_jpy"]}
