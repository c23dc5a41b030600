"""One identity's HTTP client of the local API and the payment service, and the payment jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from ...settings import ANON_KEY

if TYPE_CHECKING:
    from .run import Soak


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------
class Api:
    """One identity's HTTP client of the local API (and of the payment service)."""

    def __init__(self, soak: Soak, token: str | None = None, uid: str | None = None, name: str = "anon"):
        self.soak, self.token, self.uid, self.name = soak, token, uid, name
        self.http = httpx.Client(timeout=30)

    def headers(self) -> dict:
        h = {"apikey": ANON_KEY}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def call(self, kind: str, method: str, url: str, *, invalid: bool = False, expect: tuple[str, ...] = (),
             **kw) -> httpx.Response | None:
        rec = self.soak.rec
        headers = {**self.headers(), **kw.pop("headers", {})}
        try:
            r = self.http.request(method, url, headers=headers, **kw)
        except httpx.TransportError as exc:
            rec.transport_error(kind, exc)
            return None
        ok = rec.response(kind, r, invalid=invalid, expect=expect)
        r.ok_ = ok  # type: ignore[attr-defined]
        return r

    def rpc(self, fn: str, args: dict | None = None, *, kind: str | None = None, invalid: bool = False,
            expect: tuple[str, ...] = ()) -> httpx.Response | None:
        return self.call(kind or fn, "POST", f"{self.soak.stack.api_url}/rest/v1/rpc/{fn}", json=args or {},
                         invalid=invalid, expect=expect)

    def pay(self, path: str, body: dict, *, kind: str, invalid: bool = False,
            expect: tuple[str, ...] = ()) -> httpx.Response | None:
        return self.call(kind, "POST", f"{self.soak.stack.payments_url}{path}", json=body, invalid=invalid,
                         expect=expect, headers={"Authorization": f"Bearer {self.token}"})


def ok(r: httpx.Response | None) -> bool:
    return r is not None and getattr(r, "ok_", False)


PAY_SCENARIOS = [  # (name, weight)
    ("stripe_ok", 20), ("stripe_duplicate", 8), ("stripe_refund_before_success", 4),
    ("stripe_fail_then_success", 4), ("stripe_fail", 4), ("stripe_amount_mismatch", 3),
    ("stripe_forged_then_ok", 4), ("stripe_dispute", 4), ("stripe_partial_refunds", 5),
    ("komoju_konbini_late", 10), ("komoju_expired_then_captured", 4), ("komoju_refunded", 4),
    ("clock_expiry_then_paid", 4), ("abandoned", 6),
]


@dataclass
class Job:
    order_id: str
    amount: int
    pull_count: int
    provider: str
    ref: str | None         # PaymentIntent id / KOMOJU session id
    scenario: str
