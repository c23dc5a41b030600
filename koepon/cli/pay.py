"""`koepon pay ORDER_ID`: `stripe trigger` without the internet (koepon/tools/pay.py)."""

from __future__ import annotations

import click

from ..settings import API_PORT, PAYMENTS_PORT
from ..tools.pay import OUTCOMES, pay


def register(main: click.Group) -> None:
    @main.command("pay")
    @click.argument("order_id")
    @click.option("--provider", type=click.Choice(["stripe", "komoju"]), default="stripe", show_default=True)
    @click.option("--outcome", type=click.Choice(OUTCOMES), default="succeeded", show_default=True)
    @click.option("--url", "payments_url", default=f"http://127.0.0.1:{PAYMENTS_PORT}", show_default=True,
                  help="The payment service.")
    @click.option("--api-url", default=f"http://127.0.0.1:{API_PORT}", show_default=True,
                  help="The Supabase API (to read the order's amount).")
    def pay_cmd(order_id, provider, outcome, payments_url, api_url):
        """Send the provider's signed webhook event(s) for ORDER_ID to the payment service."""
        pay(order_id, provider=provider, outcome=outcome, payments_url=payments_url, api_url=api_url)
