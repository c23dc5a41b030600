"""`python -m koepon.localstack.fakes --port N --payments-url URL`: the fake Stripe and KOMOJU APIs
as their own server (what `koepon up` runs). Refund events go to URL/webhooks/{stripe,komoju},
signed with the local webhook secrets, as the real providers deliver them."""

from __future__ import annotations

import argparse

from werkzeug.serving import run_simple

from ...settings import KOMOJU_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET
from .providers import create_fake_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m koepon.localstack.fakes",
                                     description="fake Stripe and KOMOJU APIs (local only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--payments-url", required=True, help="the payment service the fakes deliver events to")
    args = parser.parse_args(argv)
    base = args.payments_url.rstrip("/")
    app = create_fake_app(stripe_webhook=(base + "/webhooks/stripe", STRIPE_WEBHOOK_SECRET),
                          komoju_webhook=(base + "/webhooks/komoju", KOMOJU_WEBHOOK_SECRET))
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
