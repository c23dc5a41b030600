"""The payment provider's outbox: signed deliveries, due at a given time, retried until answered."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from ...localstack.fakes import events as ev
from ...settings import KOMOJU_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET

if TYPE_CHECKING:
    from .recorder import Recorder
    from .stack import SoakStack


# ---------------------------------------------------------------------------------------------
# The provider's deliveries
# ---------------------------------------------------------------------------------------------
@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    provider: str = field(compare=False)
    event: dict = field(compare=False)
    kind: str = field(compare=False)
    forged: str | None = field(compare=False, default=None)
    attempts: int = field(compare=False, default=0)


class Outbox:
    """The provider's webhook queue: due times (delays, reordering), signing at send time,
    retries until the service answers with anything but a 5xx or a connection error."""

    def __init__(self, stack: SoakStack):
        self.stack = stack
        self.heap: list[Delivery] = []
        self.cv = threading.Condition()
        self.seq = 0
        self.inflight = 0
        self.stopped = False
        self.rec: Recorder | None = None
        self.threads: list[threading.Thread] = []

    def start(self, rec: Recorder, workers: int = 3) -> None:
        self.rec = rec
        for _ in range(workers):
            t = threading.Thread(target=self._work, daemon=True)
            t.start()
            self.threads.append(t)

    def send(self, provider: str, event: dict, *, delay: float = 0.0, kind: str | None = None,
             forged: str | None = None) -> None:
        import heapq

        with self.cv:
            self.seq += 1
            heapq.heappush(self.heap, Delivery(time.monotonic() + delay, self.seq, provider, event,
                                               kind or f"webhook {provider} {event['type']}", forged))
            self.cv.notify()

    def flush_delays(self) -> None:
        """Everything scheduled for later is due now (the end of a run)."""
        import heapq

        with self.cv:
            now = time.monotonic()
            for d in self.heap:
                d.due = min(d.due, now)
            heapq.heapify(self.heap)
            self.cv.notify_all()

    def drain(self, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        with self.cv:
            while self.heap or self.inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(min(left, 0.2))
        return True

    def pending(self) -> int:
        with self.cv:
            return len(self.heap) + self.inflight

    def stop(self) -> None:
        with self.cv:
            self.stopped = True
            self.cv.notify_all()

    def _work(self) -> None:
        import heapq

        http = httpx.Client(timeout=10)
        while True:
            with self.cv:
                while not self.stopped and (not self.heap or self.heap[0].due > time.monotonic()):
                    wait = (self.heap[0].due - time.monotonic()) if self.heap else 0.5
                    self.cv.wait(max(0.01, min(wait, 0.5)))
                if self.stopped:
                    return
                d = heapq.heappop(self.heap)
                self.inflight += 1
            try:
                self._deliver(http, d)
            finally:
                with self.cv:
                    self.inflight -= 1
                    self.cv.notify_all()

    def _deliver(self, http: httpx.Client, d: Delivery) -> None:
        rec = self.rec
        body = ev.dumps(d.event)
        secret = STRIPE_WEBHOOK_SECRET if d.provider == "stripe" else KOMOJU_WEBHOOK_SECRET
        if d.forged == "wrong_secret":
            forged = "whsec_forged_by_an_attacker_0000" if d.provider == "stripe" else "forged-komoju-secret-000000"
            headers = ev.sign(d.provider, body, forged, event=d.event)
        elif d.forged == "stale":
            headers = ev.stripe_sign(body, secret, timestamp=int(time.time()) - 3600)
        elif d.forged == "edited":
            headers = ev.sign(d.provider, body, secret)
            body = body.replace('"amount":', '"amount":1', 1)
        else:
            headers = ev.sign(d.provider, body, secret, event=d.event)
        d.attempts += 1
        try:
            r = http.post(f"{self.stack.payments_url}/webhooks/{d.provider}", content=body.encode(),
                          headers=headers)
        except httpx.TransportError as exc:
            if rec.unavailable_ok.is_set():
                rec._count(d.kind, "connection error (component down, retried)")
            else:
                rec.transport_error(d.kind, exc)
            rec.fault("provider retries (no answer)")
            self._retry(d)
            return
        if r.status_code >= 500:
            code = rec.code_of(r)
            if r.status_code == 503 and code == "database_unavailable":
                # The documented answer that asks the provider to retry (Retry-After): not a loss.
                rec._count(d.kind, "503 database_unavailable (retried)")
                rec.fault("provider retries (503 database_unavailable)")
            else:
                rec.response(d.kind, r)
            self._retry(d)
            return
        if d.forged:
            rec.response(d.kind + " (forged: " + d.forged + ")", r, invalid=True, expect=("invalid_signature",))
            return
        rec.response(d.kind, r)

    def _retry(self, d: Delivery) -> None:
        import heapq

        with self.cv:
            if d.attempts > 200:
                self.rec.fail(f"{d.kind}: gave up after {d.attempts} attempts")
                return
            d.due = time.monotonic() + min(0.2 * d.attempts, 2.0)
            heapq.heappush(self.heap, d)
            self.cv.notify()
