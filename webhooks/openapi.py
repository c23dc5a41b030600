"""GET /openapi.json: the payment service's own API as an OpenAPI 3.0 document.

The frontend generates its client from it, and the test suite fuzzes every operation with
schemathesis from it (as anon, a fan and an admin). It describes what the endpoints accept and
answer; every refusal is `{code, message}` (webhooks/errors.py).
"""

from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)

_UUID = {"type": "string", "format": "uuid"}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict:
    return {str(s): {"description": "refused: {code, message}", "content": {"application/json": {"schema": _ERROR}}}
            for s in statuses}


def _json_body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _ok(status: int, description: str, schema: dict) -> dict:
    return {str(status): {"description": description, "content": {"application/json": {"schema": schema}}}}


_FAN = [{"bearerAuth": []}]
_WEBHOOK_BODY = {"type": "object", "description": "the provider's event, exactly as signed"}

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Koepon payment service", "version": "1",
             "description": "Payments at Stripe and KOMOJU for Koepon orders, refunds, reward downloads, and the "
                            "providers' webhooks. Fans and admins authenticate with their Supabase access token."},
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Error": {"type": "object", "required": ["code", "message"],
                      "properties": {"code": {"type": "string"}, "message": {"type": "string", "nullable": True}}},
        },
    },
    "paths": {
        "/health": {"get": {"summary": "The process answers (no database call)", "security": [],
                            "responses": _ok(200, "alive", {"type": "object"})}},
        "/payments/stripe/payment-intents": {"post": {
            "summary": "A Stripe PaymentIntent for the caller's pending order (amount from the order's snapshot)",
            "security": _FAN,
            "requestBody": _json_body({"type": "object", "required": ["order_id"],
                                       "properties": {"order_id": _UUID}}),
            "responses": {**_ok(201, "created (or the same one again)", {"type": "object", "properties": {
                "order_id": _UUID, "provider": {"type": "string"}, "payment_intent_id": {"type": "string"},
                "client_secret": {"type": "string"}, "amount": {"type": "integer"},
                "currency": {"type": "string"}}}),
                **_errors(400, 401, 403, 404, 409, 413, 502, 503)}}},
        "/payments/komoju/sessions": {"post": {
            "summary": "A KOMOJU session for the caller's pending order",
            "security": _FAN,
            "requestBody": _json_body({"type": "object", "required": ["order_id", "return_url"],
                                       "properties": {"order_id": _UUID,
                                                      "return_url": {"type": "string", "format": "uri",
                                                                     "maxLength": 2000}}}),
            "responses": {**_ok(201, "created", {"type": "object"}),
                          **_errors(400, 401, 403, 404, 409, 413, 502, 503)}}},
        "/payments/refunds/{refund_id}/execute": {"post": {
            "summary": "Admin: asks the provider to refund an approved refund (exactly once)",
            "security": _FAN,
            "parameters": [{"name": "refund_id", "in": "path", "required": True, "schema": _UUID}],
            "responses": {**_ok(202, "submitted", {"type": "object"}), **_errors(400, 401, 403, 404, 409, 502, 503)}}},
        "/payments/rewards/{user_reward_id}/download": {"post": {
            "summary": "A URL for one download of a reward in the caller's box, signed for 60 seconds",
            "security": _FAN,
            "parameters": [{"name": "user_reward_id", "in": "path", "required": True, "schema": _UUID}],
            "responses": {**_ok(200, "authorised and logged", {"type": "object", "properties": {
                "signed_url": {"type": "string"}, "expires_in": {"type": "integer"},
                "remaining_today": {"type": "integer"}}}),
                **_errors(400, 401, 403, 404, 409, 429, 503)}}},
        "/webhooks/stripe": {"post": {
            "summary": "Stripe's events, verified by Stripe-Signature over the raw body", "security": [],
            "parameters": [{"name": "Stripe-Signature", "in": "header", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": _json_body(_WEBHOOK_BODY),
            "responses": {**_ok(200, "recorded", {"type": "object"}), **_errors(400, 413, 503)}}},
        "/webhooks/komoju": {"post": {
            "summary": "KOMOJU's events, verified by X-Komoju-Signature over the raw body", "security": [],
            "parameters": [{"name": "X-Komoju-Signature", "in": "header", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": _json_body(_WEBHOOK_BODY),
            "responses": {**_ok(200, "recorded", {"type": "object"}), **_errors(400, 413, 503)}}},
    },
}


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
