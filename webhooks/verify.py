"""Signature checks over the RAW request body, before anything is parsed. Flask-free."""

from __future__ import annotations

import hashlib
import hmac
import json

import stripe


class BadSignature(Exception):
    """The request is not from the provider (or is too old to be trusted)."""


class BadBody(Exception):
    """Signed, but not an event we can read."""


def stripe_event(raw: bytes, header: str | None, secret: str, tolerance: int = 300) -> dict:
    """Verifies `Stripe-Signature` (t=…,v1=…; any v1 may match during secret rotation) over the raw
    bytes with the stripe library, rejecting timestamps outside the tolerance (replays), then parses."""
    if not header:
        raise BadSignature("missing Stripe-Signature header")
    try:
        payload = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Checked before the signature (the stripe library verifies text): not known to be Stripe's.
        raise BadSignature("the body is not UTF-8, so it cannot carry Stripe's signature") from exc
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(str(exc).split("\n")[0]) from exc
    return _event(payload, id_key="id", type_key="type")


def komoju_event(raw: bytes, header: str | None, secret: str) -> dict:
    """Verifies `X-Komoju-Signature`: hex HMAC-SHA256 of the raw body, compared in constant time.
    KOMOJU signs no timestamp: replays are absorbed by the inbox (one row per event id)."""
    if not header:
        raise BadSignature("missing X-Komoju-Signature header")
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise BadSignature("X-Komoju-Signature does not match the body")
    try:
        payload = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody("the body is not UTF-8") from exc
    return _event(payload, id_key="id", type_key="type")


def _event(payload: str, *, id_key: str, type_key: str) -> dict:
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise BadBody("the body is not JSON") from exc
    if not isinstance(event, dict):
        raise BadBody("the event is not a JSON object")
    eid, etype = event.get(id_key), event.get(type_key)
    if not isinstance(eid, str) or not 1 <= len(eid) <= 255:
        raise BadBody("the event has no id")
    if not isinstance(etype, str) or not 1 <= len(etype) <= 100:
        raise BadBody("the event has no type")
    return event
