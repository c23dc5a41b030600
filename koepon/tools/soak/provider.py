"""The payment provider's actions: paying orders in many scenarios (duplicates, late, forged, ...)."""

from __future__ import annotations

import random

from ...localstack.fakes import events as ev
from ...settings import SERVICE_ROLE_KEY
from .clients import Api, Job


class ProviderActions:
    """The payment provider's actions (a part of Soak: self is the running Soak)."""

    # -- the provider ----------------------------------------------------------------------------
    def provider_pay(self, job: Job, rng: random.Random) -> None:
        """Schedules the provider's events for one payment, per its scenario."""
        ob = self.stack.outbox
        oid, amt, s = job.order_id, job.amount, job.scenario
        d = lambda: rng.uniform(0.0, 0.5)  # noqa: E731 - a small random delivery delay
        if s == "abandoned":
            self.rec.fault("orders abandoned unpaid")
            return
        if job.provider == "stripe":
            succeeded = ev.stripe_outcome_events(oid, amt, "succeeded", pi_id=job.ref)[0]
            if s in ("stripe_ok", "clock_expiry_then_paid"):
                if s == "clock_expiry_then_paid":
                    self.expire_now(oid)
                ob.send("stripe", succeeded, delay=d())
            elif s == "stripe_duplicate":
                for _ in range(rng.randint(2, 4)):
                    ob.send("stripe", succeeded, delay=d())
                self.rec.fault("duplicate deliveries")
            elif s == "stripe_refund_before_success":
                part = max(1, amt // rng.choice([2, 4, 1]))
                with self.lock:
                    self.provider_refunded.add(oid)
                ob.send("stripe", ev.stripe_event("charge.refunded", ev.stripe_charge(
                    ev.stripe_payment_intent(oid, amt, pi_id=job.ref, status="succeeded"), amount_refunded=part)))
                ob.send("stripe", succeeded, delay=0.3 + d())
                self.rec.fault("out of order: refund before success")
            elif s == "stripe_fail_then_success":
                ob.send("stripe", ev.stripe_outcome_events(oid, amt, "failed", pi_id=job.ref)[0])
                ob.send("stripe", succeeded, delay=0.3 + d())
                self.rec.fault("success after failure")
            elif s == "stripe_fail":
                ob.send("stripe", ev.stripe_outcome_events(oid, amt, "failed", pi_id=job.ref)[0], delay=d())
                return
            elif s == "stripe_amount_mismatch":
                bad = ev.stripe_outcome_events(oid, amt + rng.choice([1, -1, 1000]), "succeeded", pi_id=job.ref)[0]
                ob.send("stripe", bad, delay=d(), kind="webhook stripe payment_intent.succeeded (wrong amount)")
                self.rec.fault("payments with a changed amount")
                return
            elif s == "stripe_forged_then_ok":
                ob.send("stripe", succeeded, forged=rng.choice(["wrong_secret", "stale", "edited"]))
                ob.send("stripe", succeeded, delay=0.2 + d())
                self.rec.fault("forged/stale/edited deliveries")
            elif s == "stripe_dispute":
                ob.send("stripe", succeeded, delay=d())
                pi = ev.stripe_payment_intent(oid, amt, pi_id=job.ref, status="succeeded")
                ob.send("stripe", ev.stripe_event("charge.dispute.created", ev.stripe_dispute(pi)), delay=1 + d())
                self.rec.fault("disputes")
            elif s == "stripe_partial_refunds":
                with self.lock:
                    self.provider_refunded.add(oid)
                ob.send("stripe", succeeded, delay=d())
                pi = ev.stripe_payment_intent(oid, amt, pi_id=job.ref, status="succeeded")
                first = max(1, amt // 3)
                # cumulative amounts, the full one sometimes delivered before the partial one
                e1 = ev.stripe_event("charge.refunded", ev.stripe_charge(pi, amount_refunded=first))
                e2 = ev.stripe_event("charge.refunded", ev.stripe_charge(pi, amount_refunded=amt))
                if rng.random() < 0.3:
                    e1, e2 = e2, e1
                    self.rec.fault("out of order: full refund before partial")
                ob.send("stripe", e1, delay=1 + d())
                ob.send("stripe", e2, delay=1.5 + d())
                self.rec.fault("provider refunds (partial, full)")
        else:
            pid = ev.komoju_payment_id(job.ref)  # the payment KOMOJU makes for that session
            authorized, captured = ev.komoju_outcome_events(oid, amt, "succeeded", payment_id=pid, session_id=job.ref)
            if s == "komoju_konbini_late":
                ob.send("komoju", authorized, delay=d())
                ob.send("komoju", captured, delay=rng.uniform(1, 6))   # the fan pays at the shop later
                if rng.random() < 0.3:
                    ob.send("komoju", captured, delay=rng.uniform(2, 8))
                    self.rec.fault("duplicate deliveries")
                self.rec.fault("konbini: authorized, captured late")
            elif s == "komoju_expired_then_captured":
                ob.send("komoju", ev.komoju_outcome_events(oid, amt, "expired", payment_id=pid,
                                                           session_id=job.ref)[0])
                ob.send("komoju", captured, delay=0.5 + d())
                self.rec.fault("success after expiry")
            elif s == "komoju_refunded":
                with self.lock:
                    self.provider_refunded.add(oid)
                ob.send("komoju", captured, delay=d())
                ob.send("komoju", ev.komoju_outcome_events(oid, amt, "refunded", payment_id=pid,
                                                           session_id=job.ref)[0], delay=1 + d())
                self.rec.fault("provider refunds (partial, full)")
            else:  # clock_expiry_then_paid
                self.expire_now(oid)
                ob.send("komoju", captured, delay=d())
        with self.lock:
            self.paid[oid] = job

    def expire_now(self, order_id: str) -> None:
        """Fault: the clock jumps 31 minutes for one order (its expiry is moved into the past); the
        sweeper expires it, releasing its reservations; then the provider's success arrives."""
        with self.stack.connect() as conn:
            conn.execute("update app.orders set expires_at = now() - interval '1 second' "
                         "where id = %s and status = 'pending'", (order_id,))
        svc = Api(self, SERVICE_ROLE_KEY, name="service")
        svc.rpc("service_expire_orders", {}, kind="service_expire_orders (sweeper)")
        self.rec.fault("clock jumps: order expired before its payment")
