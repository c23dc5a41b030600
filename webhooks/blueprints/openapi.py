"""GET /openapi.json: the payment service's own API, for the frontend and for the fuzz suite.

Every error answer is {code, message} with a stable snake_case code (docs/payments.md lists them).
The document is the contract: the schemathesis suite (tests/reliability/test_payments_fuzz.py)
checks every answer against it as anon, fan and admin.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)

_ERROR = {"type": "object", "required": ["code", "message"],
          "properties": {"code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                         "message": {"type": ["string", "null"]}}}


def _errors(*statuses: int) -> dict:
    text = {400: "Bad request (invalid_body, invalid_order_id, invalid_return_url, invalid_refund_id, ...)",
            401: "No or invalid access token (not_authenticated, invalid_token)",
            403: "Not allowed (admin_only)", 404: "Not found (order_not_found, refund_not_found)",
            405: "Method not allowed", 409: "State conflict (order_not_payable, refund_not_approved, ...)",
            413: "Body too large (payload_too_large)", 429: "Too many requests (rate_limited); see Retry-After",
            500: "Server fault (server_error)", 502: "The provider refused or failed (provider_error)",
            503: "Database unreachable, try again (database_unavailable); see Retry-After"}
    return {str(s): {"description": text[s], "content": {"application/json": {"schema": {"$ref":
            "#/components/schemas/Error"}}}} for s in statuses}


_UUID = {"type": "string", "format": "uuid"}
_PAYMENT_ERRORS = (400, 401, 404, 409, 413, 429, 502, 503)
_WEBHOOK_ANSWER = {"type": "object", "required": ["received"], "properties": {
    "received": {"type": "boolean"}, "duplicate": {"type": ["boolean", "null"]},
    "outcome": {"type": ["string", "null"]}, "order_id": {"type": ["string", "null"]},
    "code": {"type": "string"}, "message": {"type": ["string", "null"]}}}


def _webhook(provider: str, header: str) -> dict:
    return {"post": {
        "tags": ["webhooks"], "operationId": f"{provider}Webhook",
        "summary": f"{provider.capitalize()} event delivery (signed by {provider.capitalize()}; never from a browser)",
        "parameters": [{"name": header, "in": "header", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": {"description": "Recorded (or a duplicate, ignored, or refused for good: outcome)",
                              "content": {"application/json": {"schema": _WEBHOOK_ANSWER}}},
                      **_errors(400, 413, 500, 503)}}}


SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "Koepon payment service", "version": "1",
             "description": "Starts payments at Stripe and KOMOJU for a fan's order, executes approved refunds "
                            "for admins, and receives the providers' webhooks. Fans and admins authenticate with "
                            "their Supabase access token."},
    "components": {
        "securitySchemes": {"supabase": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {"Error": _ERROR},
    },
    "paths": {
        "/health": {"get": {"operationId": "health", "summary": "The process answers (no database call)",
                            "responses": {"200": {"description": "Alive", "content": {"application/json": {
                                "schema": {"type": "object", "required": ["status"],
                                           "properties": {"status": {"const": "ok"}}}}}}}}},
        "/ready": {"get": {"operationId": "ready", "summary": "The database answers within the API timeout",
                           "responses": {"200": {"description": "Ready", "content": {"application/json": {
                               "schema": {"type": "object", "required": ["status"],
                                          "properties": {"status": {"const": "ready"}}}}}},
                               "503": {"description": "Not ready", "content": {"application/json": {
                                   "schema": {"type": "object"}}}}}}},
        "/payments/stripe/payment-intents": {"post": {
            "tags": ["payments"], "operationId": "createPaymentIntent", "security": [{"supabase": []}],
            "summary": "Create (or return the same) Stripe PaymentIntent for the caller's pending order",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["order_id"], "properties": {"order_id": _UUID}}}}},
            "responses": {"201": {"description": "The PaymentIntent to confirm with Stripe.js", "content": {
                "application/json": {"schema": {"type": "object", "required": [
                    "order_id", "provider", "payment_intent_id", "client_secret", "amount", "currency"],
                    "properties": {"order_id": _UUID, "provider": {"const": "stripe"},
                                   "payment_intent_id": {"type": "string"}, "client_secret": {"type": "string"},
                                   "amount": {"type": "integer"}, "currency": {"const": "JPY"}}}}}},
                          **_errors(*_PAYMENT_ERRORS)}}},
        "/payments/komoju/sessions": {"post": {
            "tags": ["payments"], "operationId": "createKomojuSession", "security": [{"supabase": []}],
            "summary": "Create (or return the same) KOMOJU session for the caller's pending order",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["order_id", "return_url"],
                "properties": {"order_id": _UUID, "return_url": {"type": "string", "format": "uri",
                                                                  "maxLength": 2000}}}}}},
            "responses": {"201": {"description": "The session to send the fan to", "content": {
                "application/json": {"schema": {"type": "object", "required": [
                    "order_id", "provider", "session_id", "session_url", "amount", "currency"],
                    "properties": {"order_id": _UUID, "provider": {"const": "komoju"},
                                   "session_id": {"type": "string"}, "session_url": {"type": "string"},
                                   "amount": {"type": "integer"}, "currency": {"const": "JPY"}}}}}},
                          **_errors(*_PAYMENT_ERRORS)}}},
        "/payments/refunds/{refund_id}/execute": {"post": {
            "tags": ["payments"], "operationId": "executeRefund", "security": [{"supabase": []}],
            "summary": "Admin: ask the provider to pay an approved refund back (its webhook completes it)",
            "parameters": [{"name": "refund_id", "in": "path", "required": True, "schema": _UUID}],
            "responses": {"202": {"description": "Submitted to the provider", "content": {"application/json": {
                "schema": {"type": "object", "required": ["refund_id", "status"], "properties": {
                    "refund_id": _UUID, "order_id": _UUID, "provider": {"enum": ["stripe", "komoju"]},
                    "provider_refund_id": {"type": ["string", "null"]}, "amount": {"type": "integer"},
                    "status": {"const": "submitted"}}}}}},
                          **_errors(400, 401, 403, 404, 409, 429, 502, 503)}}},
        "/payments/rewards/{user_reward_id}/download": {"post": {
            "tags": ["downloads"], "operationId": "downloadReward", "security": [{"supabase": []}],
            "summary": "One authorised, logged download of a reward in the caller's box: a URL signed for 60 seconds",
            "parameters": [{"name": "user_reward_id", "in": "path", "required": True, "schema": _UUID}],
            "responses": {"200": {"description": "Authorised and logged", "content": {"application/json": {
                "schema": {"type": "object", "required": ["signed_url", "expires_in"], "properties": {
                    "signed_url": {"type": "string"}, "expires_in": {"const": 60},
                    "remaining_today": {"type": "integer"}}}}}},
                          **_errors(400, 401, 403, 404, 409, 429, 503)}}},
        "/payments/orders/{order_id}/previews": {"post": {
            "tags": ["downloads"], "operationId": "previewOrderResults", "security": [{"supabase": []}],
            "summary": "Previews of the caller's own order's results for 15 minutes after fulfilment: URLs signed for "
                       "60 seconds, not counted as downloads",
            "parameters": [{"name": "order_id", "in": "path", "required": True, "schema": _UUID}],
            "responses": {"200": {"description": "Authorised", "content": {"application/json": {
                "schema": {"type": "object", "required": ["order_id", "previews", "expires_in"], "properties": {
                    "order_id": _UUID, "expires_in": {"const": 60}, "preview_until": {"type": "string"},
                    "previews": {"type": "array", "items": {"type": "object", "properties": {
                        "pull_id": {"type": "integer"}, "gacha_item_id": _UUID, "user_reward_id": _UUID,
                        "mimetype": {"type": ["string", "null"]}, "signed_url": {"type": "string"}}}}}}}}},
                          **_errors(400, 401, 403, 404, 409, 429, 503)}}},
        "/webhooks/stripe": _webhook("stripe", "Stripe-Signature"),
        "/webhooks/komoju": _webhook("komoju", "X-Komoju-Signature"),
    },
}


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
