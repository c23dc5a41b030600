"""The soak: actors in threads for a bounded time, then the invariants checked in SQL."""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid

import httpx
import psycopg

from ...localstack import seed as demo
from .. import invariants
from .clients import Api, Job, ok
from .fans import FanActions
from .provider import ProviderActions
from .recorder import Recorder, Result
from .stack import SoakStack
from .staff import StaffActions


# ---------------------------------------------------------------------------------------------
# The soak
# ---------------------------------------------------------------------------------------------
class Soak(FanActions, ProviderActions, StaffActions):
    def __init__(self, stack: SoakStack, *, fans: int = 8, seed: int | None = None):
        self.stack = stack
        self.n_fans = fans
        self.rng = random.Random(seed)
        self.rec = Recorder()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.gachas = [demo.HOSHI_GACHA, demo.LUNA_GACHA]
        self.exchange_items = {k: list(v) for k, v in demo.EXCHANGE_ITEMS.items()}
        self.vtuber_gachas: dict[str, list[str]] = {}
        self.all_orders: list[str] = []        # for "another fan's order" probes
        self.refund_queue: queue.Queue = queue.Queue()
        self.provider_refunded: set[str] = set()   # orders the provider refunded on its own
        self.fan_refunding: set[str] = set()       # orders a fan asked to refund
        self.paid: dict[str, Job] = {}           # orders the provider paid in full, correctly
        self.jobs: list[Job] = []

    # -- helpers -----------------------------------------------------------------------------------
    def sign_in(self, login: tuple[str, str], kind: str = "auth sign in") -> Api:
        api = Api(self)
        r = api.call(kind, "POST", f"{self.stack.api_url}/auth/v1/token", params={"grant_type": "password"},
                     json={"email": login[0], "password": login[1]})
        if not ok(r):
            raise RuntimeError(f"sign in {login[0]} failed: {r.text if r is not None else 'no answer'}")
        body = r.json()
        api.token, api.uid, api.name = body["access_token"], body["user"]["id"], login[0]
        return api

    def sign_up(self) -> Api:
        api = Api(self)
        email = f"soak-{uuid.uuid4().hex[:12]}@example.com"
        r = api.call("auth sign up", "POST", f"{self.stack.api_url}/auth/v1/signup",
                     json={"email": email, "password": "soak-password-123"})
        if not ok(r):
            raise RuntimeError(f"sign up failed: {r.text if r is not None else 'no answer'}")
        body = r.json()
        api.token, api.uid, api.name = body["access_token"], body["user"]["id"], email
        api.rpc("update_my_profile", {"p_birth_date": "1995-05-05"})
        return api

    def loop(self, fn, *args) -> None:
        while not self.stop.is_set():
            try:
                fn(*args)
            except (psycopg.OperationalError, httpx.TransportError, ValueError) as exc:
                # While a component is down (crash suite) an actor's step may be cut short.
                if not self.rec.unavailable_ok.is_set():
                    self._crashed(fn, exc)
                    return
                self.rec._count(f"actor step ({fn.__name__})", "interrupted (component down)")
                time.sleep(0.2)
            except Exception as exc:  # noqa: BLE001 - an actor crash is a soak failure, reported
                self._crashed(fn, exc)
                return

    def _crashed(self, fn, exc: Exception) -> None:
        import traceback

        self.rec.fail(f"actor {fn.__name__} crashed: {exc!r}\n{traceback.format_exc()[-1500:]}")


    # -- the run -----------------------------------------------------------------------------------
    def run(self, seconds: float, *, during=None, echo=lambda _m: None) -> Result:
        """Runs the actors for `seconds`; `during(soak)` (optional) runs in the calling thread
        meanwhile (the crash test injects its faults there). Then drains and checks."""
        t0 = time.monotonic()
        self.stack.outbox.start(self.rec)
        echo(f"soak: signing in {self.n_fans} fans, 2 VTubers, an admin")
        fans = [self.sign_in(demo.FAN), self.sign_in(demo.MINOR)]
        fans += [self.sign_up() for _ in range(max(0, self.n_fans - 2))]
        fan_ids = [f.uid for f in fans]
        vts = [(self.sign_in(demo.HOSHI), demo.HOSHI_VTUBER), (self.sign_in(demo.LUNA), demo.LUNA_VTUBER)]
        adm = self.sign_in(demo.ADMIN)
        threads = []
        for i, f in enumerate(fans):
            st = {"rng": random.Random(self.rng.random() + i), "orders": []}
            threads.append(threading.Thread(target=self.loop, args=(self.fan_step, f, st), daemon=True))
        for i, (vt, vid) in enumerate(vts):
            st = {"rng": random.Random(self.rng.random() + 100 + i), "vtuber_id": vid}
            threads.append(threading.Thread(target=self.loop, args=(self.vtuber_step, vt, st), daemon=True))
        st = {"rng": random.Random(self.rng.random() + 200), "fan_ids": fan_ids}
        threads.append(threading.Thread(target=self.loop, args=(self.admin_step, adm, st), daemon=True))
        for t in threads:
            t.start()
        echo(f"soak: running for {seconds:.0f} s")
        end = time.monotonic() + seconds
        try:
            if during is not None:
                during(self)
            while time.monotonic() < end:
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                if self.rec.failures and len(self.rec.failures) >= 200:
                    break
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=60)
        echo("soak: actors stopped; the provider delivers what is still scheduled")
        # Refunds approved at the end are executed; then every delivery is retried to an answer.
        while True:
            try:
                rid = self.refund_queue.get_nowait()
            except queue.Empty:
                break
            if ok(adm.rpc("review_refund", {"p_refund_id": rid, "p_approve": True, "p_reason": "soak end"},
                          expect=("order_already_refunded", "refund_not_pending"))):
                adm.pay(f"/payments/refunds/{rid}/execute", {}, kind="payment service: execute refund")
        time.sleep(0.3)  # the fake providers' refund deliveries reach the relay
        self.stack.outbox.flush_delays()
        if not self.stack.outbox.drain(timeout=180):
            self.rec.fail(f"the provider's outbox did not drain ({self.stack.outbox.pending()} left)")
        return self.finish(time.monotonic() - t0)

    def finish(self, elapsed: float) -> Result:
        res = Result(seconds=elapsed, fans=self.n_fans)
        with self.stack.connect() as conn:
            # Catch the sales rollups up (the scheduled job's work), so their invariant covers the run.
            conn.execute("select private.refresh_rollups(now())")
            res.checks = [c.name for c in invariants.CHECKS] + ["provider_paid_orders_fulfilled"]
            res.violations = [str(v) for v in invariants.check(conn)]
            res.violations += self.check_paid_orders(conn)
            res.figures = invariants.figures(conn)
        res.ops, res.faults, res.failures = self.rec.ops, self.rec.faults, self.rec.failures
        return res

    def check_paid_orders(self, conn) -> list[str]:
        """Every order the provider paid in full with the right amount was fulfilled exactly once,
        or its payment is flagged for a human with a reason that explains why not."""
        out = []
        with self.lock:
            jobs = list(self.paid.values())
        rows = {str(oid): rest for oid, *rest in conn.execute(
            "select o.id, o.status, (select count(*) from app.pulls p where p.order_id = o.id), "
            "(select string_agg(flag_reason, ',') from app.payments p where p.order_id = o.id and p.flagged) "
            "from app.orders o where o.id = any(%s::uuid[])", ([j.order_id for j in jobs],))}
        for job in jobs:
            status, pulls, flags = rows[str(job.order_id)]
            if status == "fulfilled" and pulls == job.pull_count:
                continue
            if status != "fulfilled" and flags and set(flags.split(",")) <= {"order_cannot_be_fulfilled",
                                                                                 "duplicate_payment"}:
                continue
            out.append(f"provider_paid_orders_fulfilled: order {job.order_id} ({job.scenario}) is {status} "
                       f"with {pulls} pulls, flags {flags}")
        return out
