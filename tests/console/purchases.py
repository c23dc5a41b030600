"""Purchases made outside the browser (the supabase client and the fake provider's signed webhook,
as `koepon pay` sends it), for journeys whose subject is another person's screen."""

from __future__ import annotations

import time
import uuid

from koepon.settings import ANON_KEY
from koepon.tools.pay import pay
from supabase import create_client


def paying_fan(api_url: str, payments_url: str, gacha_id: str, pulls: int = 1) -> dict:
    """A new fan with a paid, fulfilled order of `pulls` on `gacha_id`: {email, password, user_id, order_id}."""
    fan = create_client(api_url, ANON_KEY)
    email, password = f"console-buyer-{uuid.uuid4().hex[:8]}@example.com", "buyer-password-123"
    user = fan.auth.sign_up({"email": email, "password": password}).user
    fan.rpc("update_my_profile", {"p_birth_date": "1990-01-01"}).execute()
    order = fan.rpc("create_order", {"p_gacha_id": gacha_id, "p_pull_count": pulls,
                                     "p_idempotency_key": uuid.uuid4().hex}).execute().data
    pay(order["order_id"], provider="stripe", outcome="succeeded", payments_url=payments_url, api_url=api_url,
        echo=lambda _line: None)
    deadline = time.monotonic() + 15
    while fan.rpc("get_order", {"p_order_id": order["order_id"]}).execute().data["status"] != "fulfilled":
        assert time.monotonic() < deadline, "the order was not fulfilled within 15 s"
        time.sleep(0.1)
    return {"email": email, "password": password, "user_id": user.id, "order_id": order["order_id"]}
