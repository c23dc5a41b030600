"""webhook: signed Stripe payment_intent.succeeded events -> fulfilment, end to end (wrk replaying
pre-signed bodies), then the same events again (duplicates); baseline fulfil-sql in the same run."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time

from ...settings import STRIPE_WEBHOOK_SECRET
from . import ab, profile
from .scenarios import CAP_FULFIL, FULFIL_SCRIPT, Skip, has_function_url, rounds_rows, row, target
from .tools import pgbench, wrk

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
    transport = opts.get("webhook_transport") or "direct"
    from webhooks.__main__ import DEFAULT_THREADS, default_workers

    # The payment service's own defaults unless told otherwise (what `koepon up` runs).
    workers = opts.get("webhook_workers") or default_workers()
    threads = opts.get("webhook_threads") or DEFAULT_THREADS
    svc = db.start_webhooks(api_workers=opts.get("webhook_api_workers") or 1, workers=workers,
                            direct=transport == "direct", threads=threads)
    batches: list[tuple[int, int, list[str], list[bytes], list[str]]] = []
    per_event: list[dict[str, float]] = []
    per_fulfil: list[dict[str, float]] = []

    def baseline(i: int):
        # fulfil_run (scenarios.py) with PostgreSQL's CPU read around pgbench alone (not the queueing).
        per = math.ceil(CAP_FULFIL * d / c) + 2
        nbase = db.queue_orders(per * c, "spread")
        with profile.PartyCPU(db, {}) as cpu:
            run = pgbench(db.url, FULFIL_SCRIPT, f"fulfil-sql, {c} clients", c, d, {"k": 0, "nbase": nbase, "per": per})
        per_fulfil.append(cpu.ms_per(run.ops))
        return run

    def first(i: int):
        n = math.ceil(CAP_WEBHOOK * d)
        nbase = db.queue_orders(n, "spread")
        with db.connect() as conn:
            orders = [str(r[0]) for r in conn.execute(
                "select order_id from bench.q where n > %s and n <= %s order by n", (nbase, nbase + n))]
        bodies = [json.dumps(stripe_event(o, nbase + k)).encode() for k, o in enumerate(orders)]
        ts = int(time.time())
        sigs = [sign(b, ts=ts) for b in bodies]
        batches.append((nbase, n, orders, bodies, sigs))
        with profile.PartyCPU(db, db.webhook_parties) as cpu:
            run = wrk(svc, _lua(bodies, sigs), f"first deliveries, {c} connections", c, d)
        per_event.append(cpu.ms_per(run.ops))
        return run

    res = ab.interleave(baseline, first, opts.get("rounds") or 1)
    accepted = sum(b.ops - b.errors for _, b in res["runs"])
    fulfilled = 0
    done: set[str] = set()
    with db.connect() as conn:
        for nbase, n, _o, _b, _s in batches:
            got = {str(r[0]) for r in conn.execute(
                "select o.id from app.orders o join bench.q q on q.order_id = o.id where q.n > %s and q.n <= %s "
                "and o.status = 'fulfilled'", (nbase, nbase + n))}
            fulfilled += len(got)
            done = got
    # Replay exactly the last round's events that led to a fulfilment (duplicates).
    _nb, _n, orders, bodies, sigs = batches[-1]
    dup_idx = [k for k, o in enumerate(orders) if o in done] or [0]
    firsts = [b for _, b in res["runs"]]
    dup = wrk(svc, _lua([bodies[k] for k in dup_idx], [sigs[k] for k in dup_idx]),
              f"duplicates, {c} connections", c, d)
    comp = ab.summary(f"webhook first deliveries / fulfil-sql, {c} connections", res, f"fulfil-sql, {c} clients")
    med = comp["ratio"]["median"] or 0
    last = firsts[-1]
    rows = rounds_rows(res) + [row(dup, last)]
    speed = (last.p50_ms / dup.p50_ms) if dup.p50_ms and last.p50_ms else None
    targets = [target(f"first deliveries: median ratio to fulfil-sql at {c} over {res['rounds']} rounds "
                      f"(spread {comp['ratio']['min']}-{comp['ratio']['max']})", med, ">= 0.6", med >= 0.6),
               target("first deliveries events/s (median)", comp["subject_throughput"]["median"], ">= 300",
                      (comp["subject_throughput"]["median"] or 0) >= 300),
               target("duplicates answered faster (p50 first / p50 duplicate)", round(speed or 0, 2), ">= 5",
                      bool(speed and speed >= 5))]
    # Where an event's time goes: CPU ms per first delivery of each party, median over the rounds.
    cpu = {k: ab.spread([e[k] for e in per_event if k in e])["median"] for k in (per_event[0] if per_event else {})}
    fulfil_cpu = ab.spread([f["postgres"] for f in per_fulfil if "postgres" in f])["median"]
    # The ratio two cores could give if CPU were all that limited both sides: a fulfilment's
    # database CPU over an event's CPU in every party (wrk and pgbench, 1-3 %, left out).
    ceiling = round(fulfil_cpu / sum(cpu.values()), 3) if fulfil_cpu and cpu and sum(cpu.values()) else None
    return {"rows": rows, "comparisons": [comp], "targets": targets, "cpu_ms_per_event": cpu,
            "cpu_ms_per_fulfilment": {"postgres": fulfil_cpu}, "cpu_bound_ratio": ceiling,
            "checks": {"events_accepted": accepted, "orders_fulfilled": fulfilled,
                       "every_accepted_event_fulfilled": fulfilled >= accepted},
            "notes": ["Stripe-signed payment_intent.succeeded (metadata.order_id, amount 1000 JPY) pre-signed "
                      "in Python, replayed by wrk; duplicates are the last round's fulfilled events again; "
                      f"payment service: gunicorn {workers} worker(s) x {threads} threads, "
                      + ("its RPCs straight to PostgreSQL over a pool of one connection per thread"
                         if transport == "direct" else
                         f"its RPCs through the API ({opts.get('webhook_api_workers') or 1} worker(s))")]}
