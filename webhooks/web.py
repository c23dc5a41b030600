"""What a payment service facing browsers and the internet answers with, by well-kept extensions:

* CORS (flask-cors) for the configured frontend origins (PAYMENTS_CORS_ORIGINS, comma-separated)
  on /payments/* only: the webhooks are called by Stripe and KOMOJU servers, never by a browser,
  so they send no CORS headers at all.
* Security headers (flask-talisman) on every answer: `X-Content-Type-Options: nosniff`,
  `X-Frame-Options: DENY` and `Content-Security-Policy: default-src 'none'; frame-ancestors
  'none'` (the service serves JSON, never a page), `Referrer-Policy: no-referrer`, and HSTS when
  the request came over https (directly or `X-Forwarded-Proto: https` from the load balancer).
  gunicorn's `Server` header names no version.
* Response compression (flask-compress: br, gzip, deflate, zstd as the client accepts).
* Per-fan rate limits on /payments/*: counted in the database by the same sliding-window limiter
  the API's pre-request hook uses (bucket `payments` in app.rate_limit_rules), so every instance
  of this stateless service shares them. Over the limit: 429 `rate_limited` with Retry-After.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_compress import Compress
from flask_cors import CORS
from flask_talisman import Talisman

from .auth import caller


def init_app(app: Flask, cors_origins: tuple[str, ...]) -> None:
    if cors_origins:
        CORS(app, resources={r"/payments/*": {"origins": list(cors_origins)}},
             methods=["POST", "OPTIONS"], allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
             expose_headers=["X-Request-Id", "Retry-After"], max_age=600, vary_header=True)
    Talisman(app, force_https=False, frame_options="DENY",
             content_security_policy={"default-src": "'none'", "frame-ancestors": "'none'"},
             referrer_policy="no-referrer", strict_transport_security=True,
             strict_transport_security_max_age=63072000, session_cookie_secure=True)
    app.config.setdefault("COMPRESS_MIN_SIZE", 500)
    Compress(app)

    @app.before_request
    def _rate_limit():
        # Preflights carry no credentials; flask-cors answers them.
        if request.blueprint != "payments" or request.method == "OPTIONS":
            return None
        user_id = caller()
        current_app.extensions["koepon"].db.rpc("service_take_payment_request", p_user_id=user_id)
        return None
