"""webhook: signed Stripe payment_intent.succeeded events -> fulfilment, end to end (wrk replaying
pre-signed bodies), then the same events again (duplicates); baseline fulfil-sql in the same run."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time

from ...settings import STRIPE_WEBHOOK_SECRET
from .scenarios import CAP_FULFIL, FULFIL_SCRIPT, Skip, fulfil_run, has_function_url, row, target
from .tools import wrk

CAP_WEBHOOK = 2500


def stripe_event(order_id: str, n: int, amount: int = 1000) -> dict:
    now = int(time.time())
    pi = f"pi_bench_{n}"
    return {"id": f"evt_bench_{n}", "object": "event", "api_version": "2024-06-20", "created": now,
            "livemode": False, "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
                                "currency": "jpy", "status": "succeeded", "created": now, "livemode": False,
                                "metadata": {"order_id": order_id}, "latest_charge": f"ch_bench_{n}"}}}


def sign(payload: bytes, secret: str = STRIPE_WEBHOOK_SECRET, ts: int | None = None) -> str:
    ts = ts or int(time.time())
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def _lua(bodies: list[bytes], sigs: list[str]) -> str:
    return ("bodies = {" + ",".join(json.dumps(b.decode()) for b in bodies) + "}\n"
            "sigs = {" + ",".join(json.dumps(s) for s in sigs) + "}\n" + """
request = function()
  local i = (counter * nthreads + tid) % #bodies + 1
  counter = counter + 1
  return wrk.format("POST", "/webhooks/stripe",
                    {["Stripe-Signature"] = sigs[i], ["Content-Type"] = "application/json"}, bodies[i])
end
""")


def webhook(db, opts: dict) -> dict:
    if not has_function_url(db, "public.service_fulfill_order(uuid,text,text,integer,text)"):
        raise Skip("public.service_fulfill_order is not in the repository yet")
    d = opts["duration"]
    c = max(opts.get("concurrency") or [32])
    base = opts.get("_spread", {}).get(c) or fulfil_run(db, f"fulfil-sql, {c} clients", FULFIL_SCRIPT, c, d,
                                                         "spread", CAP_FULFIL)
    svc = db.start_webhooks()
    n = math.ceil(CAP_WEBHOOK * d)
    nbase = db.queue_orders(n, "spread")
    with db.connect() as conn:
        orders = [str(r[0]) for r in conn.execute("select order_id from bench.q where n > %s and n <= %s order by n",
                                                  (nbase, nbase + n))]
    bodies = [json.dumps(stripe_event(o, nbase + i)).encode() for i, o in enumerate(orders)]
    ts = int(time.time())
    sigs = [sign(b, ts=ts) for b in bodies]
    lua = _lua(bodies, sigs)
    first = wrk(svc, lua, f"first deliveries, {c} connections", c, d)
    # Replay exactly the events delivered (the first `fulfilled` of each thread's sequence are mixed, so
    # replay all bodies that led to a fulfilment: the fulfilled orders' events).
    with db.connect() as conn:
        done = {str(r[0]) for r in conn.execute(
            "select o.id from app.orders o join bench.q q on q.order_id = o.id where q.n > %s and q.n <= %s "
            "and o.status = 'fulfilled'", (nbase, nbase + n))}
    fulfilled = len(done)
    dup_idx = [i for i, o in enumerate(orders) if o in done] or [0]
    dup = wrk(svc, _lua([bodies[i] for i in dup_idx], [sigs[i] for i in dup_idx]),
              f"duplicates, {c} connections", c, d)
    rows = [row(base), row(first, base), row(dup, first)]
    speed = (first.p50_ms / dup.p50_ms) if dup.p50_ms else None
    targets = [target("first deliveries events/s", first.throughput, ">= 300", first.throughput >= 300),
               target("duplicates answered faster (p50 first / p50 duplicate)", round(speed or 0, 2), ">= 5",
                      bool(speed and speed >= 5))]
    return {"rows": rows, "targets": targets,
            "checks": {"events_first_run": first.ops, "orders_fulfilled": fulfilled,
                       "every_accepted_event_fulfilled": fulfilled >= first.ops - first.errors},
            "notes": ["Stripe-signed payment_intent.succeeded (metadata.order_id, amount 1000 JPY) pre-signed "
                      "in Python, replayed by wrk; duplicates are the same bodies again"]}
