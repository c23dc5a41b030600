"""`koepon pay ORDER_ID`: `stripe trigger` without the internet.

Builds the provider's event(s) for one outcome of paying an order (the amount read from the order
through the API with the service-role key), signs them with the local webhook secret, and posts
them to the payment service.
"""

from __future__ import annotations

import click
import httpx

from ..localstack.fakes import events as ev
from ..settings import (
    API_PORT,
    KOMOJU_WEBHOOK_SECRET,
    PAYMENTS_PORT,
    SERVICE_ROLE_KEY,
    STRIPE_WEBHOOK_SECRET,
)

OUTCOMES = ("succeeded", "failed", "refunded", "disputed")


class PayError(click.ClickException):
    pass


def order_for_payment(api_url: str, order_id: str, service_key: str = SERVICE_ROLE_KEY) -> dict:
    """The order as the payment service sees it (amount, status, payments), through the API."""
    from postgrest.exceptions import APIError

    from supabase import create_client

    sb = create_client(api_url, service_key)
    try:
        return sb.rpc("service_prepare_payment", {"p_order_id": order_id}).execute().data
    except APIError as exc:
        raise PayError(f"{exc.message}: {exc.details}") from exc
    except httpx.HTTPError as exc:
        raise PayError(f"the API at {api_url} is not reachable ({exc}): is `koepon up` running?") from exc


def build_events(order: dict, provider: str, outcome: str) -> list[dict]:
    payment = next((p for p in order.get("payments", []) if p["provider"] == provider), None)
    paid_by_it = order.get("provider") == provider and order.get("provider_payment_id")
    if provider == "stripe":
        pi_id = (payment or {}).get("provider_payment_id") or (order["provider_payment_id"] if paid_by_it else None)
        return ev.stripe_outcome_events(order["order_id"], order["amount_jpy"], outcome, pi_id=pi_id)
    if outcome == "disputed":
        raise PayError("KOMOJU has no dispute webhook event: use --provider stripe")
    pid = (payment or {}).get("provider_payment_id") or (order["provider_payment_id"] if paid_by_it else None)
    return ev.komoju_outcome_events(order["order_id"], order["amount_jpy"], outcome, payment_id=pid,
                                    session_id=(payment or {}).get("payment_ref"))


def post_event(payments_url: str, provider: str, event: dict, *, stripe_secret: str = STRIPE_WEBHOOK_SECRET,
               komoju_secret: str = KOMOJU_WEBHOOK_SECRET) -> httpx.Response:
    body = ev.dumps(event)
    headers = ev.sign(provider, body, stripe_secret if provider == "stripe" else komoju_secret, event=event)
    try:
        return httpx.post(f"{payments_url.rstrip('/')}/webhooks/{provider}", content=body, headers=headers,
                          timeout=10)
    except httpx.HTTPError as exc:
        raise PayError(f"the payment service at {payments_url} is not reachable ({exc}): "
                       "is `koepon up` running?") from exc


def pay(order_id: str, *, provider: str = "stripe", outcome: str = "succeeded",
        payments_url: str = f"http://127.0.0.1:{PAYMENTS_PORT}", api_url: str = f"http://127.0.0.1:{API_PORT}",
        echo=click.echo) -> list[dict]:
    """Delivers the signed events; returns the service's answers. Raises PayError on a refusal."""
    order = order_for_payment(api_url, order_id)
    answers = []
    for event in build_events(order, provider, outcome):
        r = post_event(payments_url, provider, event)
        answer = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code != 200:
            raise PayError(f"{event['type']}: HTTP {r.status_code} {answer.get('code')}: {answer.get('message')}")
        echo(f"{provider} {event['type']:32} {event['id']}  -> {answer.get('outcome')}"
             f"{' (duplicate)' if answer.get('duplicate') else ''}")
        answers.append(answer)
    return answers
