"""The soak: fans, VTubers, an admin and "the payment provider" doing random valid and invalid
operations against a private Koepon (its own database, local API and payment service on
ephemeral ports) for a bounded time; then every invariant is checked in SQL.

    SoakStack   the world: a throwaway seeded database (or a given one), `python -m koepon.api`,
                `python -m webhooks` (killable, restartable on the same ports), the fake
                Stripe/KOMOJU APIs in this process, and a relay that turns the fakes' webhook
                deliveries into the provider's outbox (so they are retried like Stripe does)
    Outbox      the provider's deliveries: signed at send time, due at a given time, retried on
                503 / connection errors until they are answered (duplicates and reordering are
                scheduled on purpose)
    Recorder    every operation by kind and outcome; a 5xx or an undocumented error code, or an
                invalid call that was accepted, is a failure
    Soak        the actors (threads) and the run: `Soak(stack, fans=8).run(seconds=30)`

A result carries the operation counts, the faults injected, the invariant violations
(`koepon.invariants`) and the failures; `print_report` renders it as tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from . import invariants, testing
from .fakes import events as ev
from .settings import (
    ANON_KEY,
    JWT_SECRET,
    KOMOJU_WEBHOOK_SECRET,
    SERVICE_ROLE_KEY,
    STRIPE_WEBHOOK_SECRET,
)

ROOT = Path(__file__).resolve().parents[1]

# The seed's fixed ids (supabase/seed.sql).
ADMIN = ("admin@koepon.local", "koepon-admin-pass")
HOSHI = ("hoshi@koepon.local", "koepon-vtuber-pass")
LUNA = ("luna@koepon.local", "koepon-vtuber-pass")
SEED_FAN = ("fan@koepon.local", "koepon-fan-pass")
MINOR = ("minor@koepon.local", "koepon-fan-pass")
HOSHI_VTUBER = "00000000-0000-4000-b000-000000000001"
LUNA_VTUBER = "00000000-0000-4000-b000-000000000002"
HOSHI_GACHA = "00000000-0000-4000-d000-000000000001"
LUNA_GACHA = "00000000-0000-4000-d000-000000000002"
ENDED_GACHA = "00000000-0000-4000-d000-000000000003"
DRAFT_GACHA = "00000000-0000-4000-d000-000000000004"
EXCHANGE_ITEMS = {HOSHI_VTUBER: ["00000000-0000-4000-f000-000000000001", "00000000-0000-4000-f000-000000000002",
                                 "00000000-0000-4000-f000-000000000003", "00000000-0000-4000-f000-000000000004"],
                  LUNA_VTUBER: ["00000000-0000-4000-f000-000000000005"]}
RETIRED_EXCHANGE_ITEM = "00000000-0000-4000-f000-000000000006"


def documented_codes() -> set[str]:
    """Every snake_case code and every SQLSTATE/PGRST code docs/errors.md names, and the payment
    service's own answers (docs/payments.md, to which errors.md refers)."""
    text = (ROOT / "docs" / "errors.md").read_text() + (ROOT / "docs" / "payments.md").read_text()
    codes = set(re.findall(r"`([a-z][a-z0-9_]+)`", text))
    codes |= set(re.findall(r"\b(PT\d{3}|PGRST\d{3}|PGRST\d{2}x|\d{2}[0-9A-Z]\d{2})\b", text))
    return codes


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before answering")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


# ---------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    seconds: float
    fans: int
    ops: Counter = field(default_factory=Counter)          # (kind, outcome) -> n
    faults: Counter = field(default_factory=Counter)       # fault -> n
    failures: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    @property
    def total_ops(self) -> int:
        return sum(self.ops.values())

    @property
    def server_errors(self) -> int:
        return sum(n for (_k, outcome), n in self.ops.items() if outcome.startswith("5"))

    @property
    def ok(self) -> bool:
        return not self.failures and not self.violations

    def to_json(self) -> dict:
        by_kind: dict[str, dict[str, int]] = {}
        for (kind, outcome), n in sorted(self.ops.items()):
            by_kind.setdefault(kind, {})[outcome] = n
        return {"seconds": round(self.seconds, 1), "fans": self.fans, "total_ops": self.total_ops,
                "ops": by_kind, "faults": dict(self.faults), "failures": self.failures,
                "violations": self.violations, "invariants_checked": self.checks,
                "figures": {k: (int(v) if hasattr(v, "__int__") else v) for k, v in self.figures.items()},
                "ok": self.ok}


class Recorder:
    """Counts operations by kind and outcome; decides what is a failure."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops: Counter = Counter()
        self.faults: Counter = Counter()
        self.failures: list[str] = []
        self.codes = documented_codes()
        # Crash windows: while a component is down, unavailability is the expected answer.
        self.unavailable_ok = threading.Event()

    def fault(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.faults[name] += n

    def fail(self, msg: str) -> None:
        with self.lock:
            if len(self.failures) < 200:
                self.failures.append(msg)

    def _count(self, kind: str, outcome: str) -> None:
        with self.lock:
            self.ops[(kind, outcome)] += 1

    @staticmethod
    def code_of(r: httpx.Response) -> str:
        try:
            body = r.json()
        except ValueError:
            return "non_json"
        if not isinstance(body, dict):
            return "non_object"
        msg = body.get("message")
        if isinstance(msg, str) and re.fullmatch(r"[a-z][a-z0-9_]+", msg):
            return msg
        for key in ("error_code", "code", "error"):
            v = body.get(key)
            if isinstance(v, str) and v:
                return v
        return "no_code"

    def response(self, kind: str, r: httpx.Response, *, invalid: bool = False,
                 expect: tuple[str, ...] = ()) -> bool:
        """Records one answer; True when it was a success (2xx)."""
        if r.status_code < 400:
            self._count(kind, "ok")
            if invalid:
                self.fail(f"{kind}: an invalid call was accepted ({r.status_code}): {r.text[:200]}")
            return True
        code = self.code_of(r)
        outcome = f"{r.status_code} {code}"
        if r.status_code >= 500:
            if self.unavailable_ok.is_set() and r.status_code in (502, 503, 504):
                outcome = f"{r.status_code} {code} (component down)"
            else:
                self.fail(f"{kind}: HTTP {r.status_code} {r.text[:300]}")
        elif code not in self.codes and not (r.status_code == 400 and re.fullmatch(r"22[0-9A-Z]{3}", code)):
            # (class 22, data exceptions such as an out-of-range integer argument, is PostgREST's
            # own 400 for arguments that never reach our functions: docs/errors.md, like 22P02)
            self.fail(f"{kind}: undocumented error code {code!r} (HTTP {r.status_code}): {r.text[:200]}")
        elif expect and code not in expect:
            self.fail(f"{kind}: expected one of {expect}, got {code} (HTTP {r.status_code}): {r.text[:200]}")
        self._count(kind, outcome)
        return False

    def transport_error(self, kind: str, exc: Exception) -> None:
        if self.unavailable_ok.is_set():
            self._count(kind, "connection error (component down)")
        else:
            self._count(kind, "connection error")
            self.fail(f"{kind}: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------
class SoakStack:
    """A private database with the API and the payment service as killable processes."""

    def __init__(self, db_url: str | None = None, *, api_workers: int = 1, webhook_workers: int = 2,
                 relax_rate_limits: bool = True):
        self.owned_db = None
        if db_url is None:
            db_url, self.owned_db = testing.clone("koepon_soak", seeded=True)
        self.db_url = db_url
        self.api_workers, self.webhook_workers = api_workers, webhook_workers
        self.tmp = tempfile.TemporaryDirectory(prefix="koepon-soak-")
        self.api_port, self.pay_port = free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.payments_url = f"http://127.0.0.1:{self.pay_port}"
        self.api_proc: subprocess.Popen | None = None
        self.pay_proc: subprocess.Popen | None = None
        self.outbox = Outbox(self)
        self._servers: list = []
        if relax_rate_limits:
            with self.connect() as conn:
                # The limits are not what the soak is about (the economy-edges tests cover them):
                # lifted in this throwaway database so the soak measures the economy, not 429s.
                conn.execute("update app.rate_limit_rules set per_minute = 1000000")

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.db_url, autocommit=True)

    # -- processes ------------------------------------------------------------------------------
    def start(self) -> SoakStack:
        self._start_fakes()
        self.start_api()
        self.start_payments()
        return self

    def _start_fakes(self) -> None:
        import logging

        from werkzeug.serving import make_server

        from .fakes.providers import create_fake_app

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the report

        relay = make_server("127.0.0.1", 0, self._relay_app, threaded=True)
        relay_url = f"http://127.0.0.1:{relay.port}"
        fake = make_server("127.0.0.1", 0, create_fake_app(
            stripe_webhook=(relay_url + "/stripe", STRIPE_WEBHOOK_SECRET),
            komoju_webhook=(relay_url + "/komoju", KOMOJU_WEBHOOK_SECRET), deliver_delay=0.0), threaded=True)
        self.fake_url = f"http://127.0.0.1:{fake.port}"
        for srv in (relay, fake):
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self._servers.append(srv)

    def _relay_app(self, environ, start_response):
        """The fakes deliver the refund events they emit here; the provider's outbox sends them
        (with retries until the service answers), like Stripe's and KOMOJU's delivery queues."""
        provider = environ.get("PATH_INFO", "").strip("/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if provider in ("stripe", "komoju") and isinstance(event, dict):
            self.outbox.send(provider, event, kind="refund_event_from_provider")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    def _spawn(self, args: list[str], env: dict, log: str) -> subprocess.Popen:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(self.tmp.name, log), "a"), start_new_session=True)

    def start_api(self) -> None:
        # Every soak client signs in from 127.0.0.1: lift the per-IP sign-in limit for it.
        env = dict(os.environ, KOEPON_STORAGE_DIR=os.path.join(self.tmp.name, "storage"),
                   KOEPON_AUTH_SIGN_IN_SIGN_UPS="1000000")
        self.api_proc = self._spawn([sys.executable, "-m", "koepon.api", "--port", str(self.api_port),
                                     "--db-url", self.db_url, "--workers", str(self.api_workers)], env, "api.log")
        self._wait(self.api_url, self.api_proc, "api.log")

    def start_payments(self) -> None:
        env = dict(os.environ, SUPABASE_URL=self.api_url, SUPABASE_SERVICE_ROLE_KEY=SERVICE_ROLE_KEY,
                   SUPABASE_JWT_SECRET=JWT_SECRET, STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
                   KOMOJU_WEBHOOK_SECRET=KOMOJU_WEBHOOK_SECRET, STRIPE_API_BASE=self.fake_url + "/stripe",
                   KOMOJU_API_BASE=self.fake_url + "/komoju")
        for k in ("STRIPE_SECRET_KEY", "KOMOJU_SECRET_KEY"):
            env.pop(k, None)
        self.pay_proc = self._spawn([sys.executable, "-m", "webhooks", "--port", str(self.pay_port),
                                     "--workers", str(self.webhook_workers)], env, "webhooks.log")
        self._wait(self.payments_url, self.pay_proc, "webhooks.log")

    def _wait(self, base: str, proc: subprocess.Popen, log: str) -> None:
        try:
            wait_http(base + "/health", proc)
        except RuntimeError as exc:
            tail = Path(self.tmp.name, log).read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{exc}\n" + "\n".join(tail)) from exc

    @staticmethod
    def kill9(proc: subprocess.Popen | None) -> None:
        """SIGKILL to the process and everything it started (its session)."""
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        self.outbox.stop()
        for p in (self.pay_proc, self.api_proc):
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill9(p)
        for srv in self._servers:
            srv.shutdown()
        if self.owned_db:
            with contextlib.suppress(Exception):
                testing.drop(self.owned_db)
        self.tmp.cleanup()

    def logs(self) -> str:
        out = []
        for name in ("api.log", "webhooks.log"):
            p = Path(self.tmp.name, name)
            if p.exists():
                out.append(f"--- {name} (tail)\n" + "\n".join(p.read_text().splitlines()[-30:]))
        return "\n".join(out)


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
            headers = (ev.stripe_sign(body, "whsec_forged_by_an_attacker_0000") if d.provider == "stripe"
                       else ev.komoju_sign(body, "forged-komoju-secret-000000", event=d.event))
        elif d.forged == "stale":
            headers = ev.stripe_sign(body, secret, timestamp=int(time.time()) - 3600)
        elif d.forged == "edited":
            headers = ev.stripe_sign(body, secret) if d.provider == "stripe" else ev.komoju_sign(body, secret)
            body = body.replace('"amount":', '"amount":1', 1)
        else:
            headers = ev.stripe_sign(body, secret) if d.provider == "stripe" else ev.komoju_sign(body, secret,
                                                                                                  event=d.event)
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


# ---------------------------------------------------------------------------------------------
# The soak
# ---------------------------------------------------------------------------------------------
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


class Soak:
    def __init__(self, stack: SoakStack, *, fans: int = 8, seed: int | None = None):
        self.stack = stack
        self.n_fans = fans
        self.rng = random.Random(seed)
        self.rec = Recorder()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.gachas = [HOSHI_GACHA, LUNA_GACHA]
        self.exchange_items = {k: list(v) for k, v in EXCHANGE_ITEMS.items()}
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

    # -- fans --------------------------------------------------------------------------------------
    def fan_step(self, fan: Api, st: dict) -> None:
        rng = st["rng"]
        op = rng.choices(
            ["order", "order_bad", "exchange", "exchange_bad", "download", "refund", "read", "read_bad",
             "seed", "pay_bad", "medal_view"],
            [30, 6, 14, 3, 9, 5, 16, 5, 2, 2, 4])[0]
        getattr(self, f"fan_{op}")(fan, st, rng)
        time.sleep(rng.uniform(0.0, 0.05))

    def fan_order(self, fan: Api, st: dict, rng: random.Random) -> None:
        with self.lock:
            gacha = rng.choice(self.gachas)
        pulls = rng.choice([1, 1, 10])
        key = uuid.uuid4().hex
        r = fan.rpc("create_order", {"p_gacha_id": gacha, "p_pull_count": pulls, "p_idempotency_key": key},
                    expect=("gacha_sold_out", "gacha_not_on_sale", "spending_cap_exceeded"))
        if not ok(r):
            return
        order = r.json()
        with self.lock:
            self.all_orders.append(order["order_id"])
        st["orders"].append(order["order_id"])
        if rng.random() < 0.15:  # the client retries the same request: the same order
            again = fan.rpc("create_order", {"p_gacha_id": gacha, "p_pull_count": pulls, "p_idempotency_key": key},
                            kind="create_order (same key replayed)")
            if ok(again) and again.json()["order_id"] != order["order_id"]:
                self.rec.fail(f"create_order replay returned another order: {again.text[:200]}")
        if rng.random() < 0.08:  # the same key for another order: refused
            fan.rpc("create_order", {"p_gacha_id": gacha, "p_pull_count": 11 - pulls, "p_idempotency_key": key},
                    kind="create_order (key reused, other args)", invalid=True, expect=("idempotency_key_reused",))
        scenario = rng.choices([s for s, _ in PAY_SCENARIOS], [w for _, w in PAY_SCENARIOS])[0]
        provider = "komoju" if scenario.startswith("komoju") else "stripe"
        if scenario == "clock_expiry_then_paid":
            provider = rng.choice(["stripe", "komoju"])
        if provider == "stripe":
            p = fan.pay("/payments/stripe/payment-intents", {"order_id": order["order_id"]},
                        kind="payment service: create PaymentIntent")
            ref = p.json()["payment_intent_id"] if ok(p) else None
        else:
            p = fan.pay("/payments/komoju/sessions", {"order_id": order["order_id"],
                                                      "return_url": "https://koepon.example/return"},
                        kind="payment service: create KOMOJU session")
            ref = p.json()["session_id"] if ok(p) else None
        if ref is None:
            return
        job = Job(order["order_id"], order["amount_jpy"], pulls, provider, ref, scenario)
        with self.lock:
            self.jobs.append(job)
        self.provider_pay(job, rng)

    def fan_order_bad(self, fan: Api, st: dict, rng: random.Random) -> None:
        key = uuid.uuid4().hex
        case = rng.choice(["pulls_3", "pulls_0", "pulls_huge", "pulls_text", "key_empty", "key_long", "unknown",
                           "draft", "ended", "not_uuid", "null_gacha"])
        args = {"p_gacha_id": HOSHI_GACHA, "p_pull_count": 1, "p_idempotency_key": key}
        expect = {"pulls_3": ("invalid_pull_count",), "pulls_0": ("invalid_pull_count",),
                  "pulls_huge": ("22003",), "pulls_text": ("22P02",),
                  "key_empty": ("invalid_idempotency_key",), "key_long": ("invalid_idempotency_key",),
                  "unknown": ("gacha_not_found",), "draft": ("gacha_not_found", "gacha_not_on_sale"),
                  "ended": ("gacha_not_on_sale",), "not_uuid": ("22P02",),
                  "null_gacha": ("gacha_not_found", "invalid_gacha_id")}[case]
        if case == "pulls_3":
            args["p_pull_count"] = 3
        elif case == "pulls_0":
            args["p_pull_count"] = 0
        elif case == "pulls_huge":
            args["p_pull_count"] = 10 ** 12
        elif case == "pulls_text":
            args["p_pull_count"] = "ten"
        elif case == "key_empty":
            args["p_idempotency_key"] = ""
        elif case == "key_long":
            args["p_idempotency_key"] = "k" * 201
        elif case == "unknown":
            args["p_gacha_id"] = str(uuid.uuid4())
        elif case == "draft":
            args["p_gacha_id"] = DRAFT_GACHA
        elif case == "ended":
            args["p_gacha_id"] = ENDED_GACHA
        elif case == "not_uuid":
            args["p_gacha_id"] = "not-a-uuid"
        elif case == "null_gacha":
            args["p_gacha_id"] = None
        fan.rpc("create_order", args, kind=f"create_order (bad: {case})", invalid=True, expect=expect)

    def fan_exchange(self, fan: Api, st: dict, rng: random.Random) -> None:
        r = fan.rpc("get_medal_balances")
        if not ok(r):
            return
        balances = [b for b in r.json() if b["balance"] > 0]
        if not balances:
            return
        b = rng.choice(balances)
        with self.lock:
            items = list(self.exchange_items.get(b["vtuber_id"], []))
        if not items:
            return
        key = uuid.uuid4().hex
        args = {"p_exchange_item_id": rng.choice(items), "p_quantity": rng.choice([1, 1, 2, 3]),
                "p_idempotency_key": key}
        r = fan.rpc("exchange_medals", args, expect=("insufficient_medals", "out_of_stock", "exchange_limit_reached",
                                                     "exchange_not_available"))
        if ok(r) and rng.random() < 0.2:
            again = fan.rpc("exchange_medals", args, kind="exchange_medals (same key replayed)")
            if ok(again) and again.json()["exchange_id"] != r.json()["exchange_id"]:
                self.rec.fail("exchange_medals replay made a second exchange")

    def fan_exchange_bad(self, fan: Api, st: dict, rng: random.Random) -> None:
        case = rng.choice(["qty_0", "qty_11", "unknown", "retired", "key_empty", "other_vtuber_medals"])
        args = {"p_exchange_item_id": EXCHANGE_ITEMS[HOSHI_VTUBER][0], "p_quantity": 1,
                "p_idempotency_key": uuid.uuid4().hex}
        expect: tuple[str, ...]
        if case == "qty_0":
            args["p_quantity"], expect = 0, ("invalid_quantity",)
        elif case == "qty_11":
            args["p_quantity"], expect = 11, ("invalid_quantity",)
        elif case == "unknown":
            args["p_exchange_item_id"], expect = str(uuid.uuid4()), ("exchange_item_not_found",)
        elif case == "retired":
            args["p_exchange_item_id"], expect = RETIRED_EXCHANGE_ITEM, ("exchange_not_available",)
        elif case == "key_empty":
            args["p_idempotency_key"], expect = "", ("invalid_idempotency_key",)
        else:
            self._exchange_without_medals(fan, args)
            return
        fan.rpc("exchange_medals", args, kind=f"exchange_medals (bad: {case})", invalid=True, expect=expect)

    def _exchange_without_medals(self, fan: Api, args: dict) -> None:
        """A fan short of Luna medals tries Luna's item: insufficient (never paid with Hoshi's medals).

        The provider may fulfil one of this fan's Luna orders between the look and the exchange,
        so an accepted exchange is legitimate only if the ledger shows Luna medals credited after
        the look and before the exchange's own entry.
        """
        kind = "exchange_medals (bad: other_vtuber_medals)"
        before = fan.rpc("list_medal_ledger", {"p_vtuber_id": LUNA_VTUBER, "p_limit": 200}, kind="list_medal_ledger")
        if not ok(before) or (before.json() and before.json()[0]["new_balance"] >= 50):
            return
        seen = {e["id"] for e in before.json()}
        args["p_exchange_item_id"] = EXCHANGE_ITEMS[LUNA_VTUBER][0]
        r = fan.rpc("exchange_medals", args, kind=kind, expect=("insufficient_medals",))
        if not ok(r):
            return
        after = fan.rpc("list_medal_ledger", {"p_vtuber_id": LUNA_VTUBER, "p_limit": 200}, kind="list_medal_ledger")
        if not ok(after):
            return
        entries = after.json()
        debit = next((e for e in entries if e["exchange_id"] == r.json()["exchange_id"]), None)
        credited = debit is not None and any(
            e["id"] not in seen and e["id"] < debit["id"] and e["delta"] > 0 for e in entries)
        if not credited:
            self.rec.fail(f"{kind}: accepted without Luna medals credited since the look: {r.text[:200]}")

    def fan_download(self, fan: Api, st: dict, rng: random.Random) -> None:
        r = fan.rpc("list_my_rewards", {"p_limit": 50})
        if not ok(r) or not r.json():
            return
        reward = rng.choice(r.json())
        fan.rpc("request_download", {"p_user_reward_id": reward["id"]},
                expect=("download_limit_reached", "reward_revoked"))

    def fan_refund(self, fan: Api, st: dict, rng: random.Random) -> None:
        if not st["orders"]:
            return
        oid = rng.choice(st["orders"])
        with self.lock:
            if oid in self.provider_refunded:
                return
            self.fan_refunding.add(oid)
        if rng.random() < 0.15:
            fan.rpc("request_refund", {"p_order_id": oid, "p_reason": rng.choice(["", " ", "x" * 501])},
                    kind="request_refund (bad reason)", invalid=True, expect=("invalid_refund_reason",))
            return
        r = fan.rpc("request_refund", {"p_order_id": oid, "p_reason": "soak: changed my mind"},
                    expect=("order_not_refundable", "order_already_refunded", "refund_already_requested"))
        if ok(r):
            self.refund_queue.put(r.json()["refund_id"])

    def fan_read(self, fan: Api, st: dict, rng: random.Random) -> None:
        which = rng.choice(["get_order", "list_my_orders", "list_my_rewards", "list_medal_ledger", "get_fairness",
                            "get_gacha", "get_my_spending_limits"])
        if which == "get_order":
            if st["orders"]:
                fan.rpc("get_order", {"p_order_id": rng.choice(st["orders"])})
        elif which == "get_gacha":
            with self.lock:
                g = rng.choice(self.gachas)
            fan.rpc("get_gacha", {"p_gacha_id": g})
        else:
            fan.rpc(which, {})

    def fan_read_bad(self, fan: Api, st: dict, rng: random.Random) -> None:
        case = rng.choice(["unknown_order", "other_fans_order", "pagination", "unknown_function", "other_reward"])
        if case == "unknown_order":
            fan.rpc("get_order", {"p_order_id": str(uuid.uuid4())}, kind="get_order (unknown)", invalid=True,
                    expect=("order_not_found",))
        elif case == "other_fans_order":
            with self.lock:
                others = [o for o in self.all_orders[-200:] if o not in st["orders"]]
            if others:
                fan.rpc("get_order", {"p_order_id": rng.choice(others)}, kind="get_order (another fan's)",
                        invalid=True, expect=("order_not_found",))
        elif case == "pagination":
            fan.rpc("list_my_orders", {"p_limit": rng.choice([0, 101, -1])}, kind="list_my_orders (bad page)",
                    invalid=True, expect=("invalid_pagination",))
        elif case == "unknown_function":
            fan.rpc("drop_all_tables", {}, kind="rpc (unknown function)", invalid=True, expect=("PGRST202",))
        else:
            fan.rpc("request_download", {"p_user_reward_id": str(uuid.uuid4())},
                    kind="request_download (not in my box)", invalid=True, expect=("reward_not_found",))

    def fan_seed(self, fan: Api, st: dict, rng: random.Random) -> None:
        if rng.random() < 0.5:
            fan.rpc("set_client_seed", {"p_seed": uuid.uuid4().hex[:16]})
        else:
            fan.rpc("rotate_fairness_seed", {})

    def fan_pay_bad(self, fan: Api, st: dict, rng: random.Random) -> None:
        case = rng.choice(["not_uuid", "unknown", "others", "no_token"])
        if case == "not_uuid":
            fan.pay("/payments/stripe/payment-intents", {"order_id": "1; drop table"},
                    kind="payment service: create PaymentIntent (bad order id)", invalid=True,
                    expect=("invalid_order_id",))
        elif case == "unknown":
            fan.pay("/payments/stripe/payment-intents", {"order_id": str(uuid.uuid4())},
                    kind="payment service: create PaymentIntent (unknown order)", invalid=True,
                    expect=("order_not_found",))
        elif case == "others":
            with self.lock:
                others = [o for o in self.all_orders[-200:] if o not in st["orders"]]
            if others:
                fan.pay("/payments/komoju/sessions", {"order_id": rng.choice(others),
                                                      "return_url": "https://koepon.example/r"},
                        kind="payment service: KOMOJU session (another fan's order)", invalid=True,
                        expect=("order_not_found", "order_not_payable"))
        else:
            fan.call("payment service: create PaymentIntent (no token)", "POST",
                     f"{self.stack.payments_url}/payments/stripe/payment-intents",
                     json={"order_id": str(uuid.uuid4())}, invalid=True, expect=("not_authenticated",),
                     headers={"Authorization": ""})

    def fan_medal_view(self, fan: Api, st: dict, rng: random.Random) -> None:
        r = fan.rpc("get_medal_balances")
        if ok(r):
            for b in r.json():
                if b["balance"] < 0:
                    self.rec.fail(f"negative balance visible to the fan: {b}")

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
            pid = uuid.uuid4().hex[:25]
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

    # -- VTubers -----------------------------------------------------------------------------------
    def vtuber_step(self, vt: Api, st: dict) -> None:
        rng = st["rng"]
        op = rng.choices(["new_gacha", "bad_gacha", "exchange_item", "read"], [3, 2, 1, 3])[0]
        if op == "new_gacha":
            self.vtuber_new_gacha(vt, st, rng)
        elif op == "bad_gacha":
            self.vtuber_bad_gacha(vt, st, rng)
        elif op == "exchange_item":
            r = vt.rpc("create_exchange_item", {
                "p_name": f"soak item {uuid.uuid4().hex[:6]}", "p_medal_cost": rng.choice([10, 20, 50]),
                "p_content_path": f"{st['vtuber_id']}/exchange/soak-{uuid.uuid4().hex[:8]}.png",
                "p_total_stock": rng.choice([None, 3, 20]), "p_per_fan_limit": rng.choice([None, 2]),
                "p_per_fan_daily_limit": rng.choice([None, 1])})
            if ok(r):
                with self.lock:
                    self.exchange_items.setdefault(st["vtuber_id"], []).append(r.json()["id"])
            vt.rpc("create_exchange_item", {"p_name": "free", "p_medal_cost": 0, "p_content_path": "x/y.png"},
                   kind="create_exchange_item (bad cost)", invalid=True,
                   expect=("invalid_medal_cost", "invalid_content_path"))
        else:
            vt.rpc("list_my_gachas", {})
        time.sleep(rng.uniform(0.2, 0.6))

    def vtuber_new_gacha(self, vt: Api, st: dict, rng: random.Random) -> None:
        now = time.time()
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        r = vt.rpc("create_gacha", {"p_title": f"soak gacha {uuid.uuid4().hex[:6]}", "p_start_at": iso(now - 60),
                                    "p_end_at": iso(now + 86400), "p_price_single": rng.choice([100, 300]),
                                    "p_price_ten": rng.choice([1000, 2700]), "p_medals_per_pull": rng.randint(1, 30),
                                    "p_total_pull_cap": rng.choice([None, 30, 200])})
        if not ok(r):
            return
        gid = r.json()["id"]
        rates = [("N", 700000, None), ("R", 250000, rng.choice([None, 40])), ("SSR", 50000, rng.choice([None, 15]))]
        for i, (rarity, rate, stock) in enumerate(rates):
            vt.rpc("add_gacha_item", {"p_gacha_id": gid, "p_name": f"{rarity} item", "p_rarity": rarity,
                                      "p_rate_ppm": rate, "p_stock": stock, "p_sort_order": i,
                                      "p_content_path": f"{st['vtuber_id']}/gacha/soak/{gid}-{i}.png"})
        if ok(vt.rpc("publish_gacha", {"p_gacha_id": gid})):
            with self.lock:
                self.gachas.append(gid)
            self.vtuber_gachas.setdefault(st["vtuber_id"], []).append(gid)
            vt.rpc("update_gacha", {"p_gacha_id": gid, "p_patch": {"price_single": 100}},
                   kind="update_gacha (published: frozen)", invalid=True, expect=("gacha_not_draft",))

    def vtuber_bad_gacha(self, vt: Api, st: dict, rng: random.Random) -> None:
        now = time.time()
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        case = rng.choice(["price", "window", "rates", "no_items", "others_gacha"])
        if case == "price":
            vt.rpc("create_gacha", {"p_title": "cheap", "p_start_at": iso(now), "p_end_at": iso(now + 3600),
                                    "p_price_single": 50}, kind="create_gacha (bad price)", invalid=True,
                   expect=("invalid_price",))
        elif case == "window":
            vt.rpc("create_gacha", {"p_title": "backwards", "p_start_at": iso(now + 3600), "p_end_at": iso(now)},
                   kind="create_gacha (bad window)", invalid=True, expect=("invalid_window",))
        elif case in ("rates", "no_items"):
            r = vt.rpc("create_gacha", {"p_title": "draft", "p_start_at": iso(now - 60), "p_end_at": iso(now + 3600)})
            if not ok(r):
                return
            gid = r.json()["id"]
            if case == "rates":
                vt.rpc("add_gacha_item", {"p_gacha_id": gid, "p_name": "n", "p_rarity": "N", "p_rate_ppm": 999999,
                                          "p_content_path": f"{st['vtuber_id']}/gacha/soak/{gid}.png"})
            vt.rpc("publish_gacha", {"p_gacha_id": gid}, kind=f"publish_gacha (bad: {case})", invalid=True,
                   expect=("rates_must_sum_to_one_million", "gacha_has_no_items"))
        else:
            other = HOSHI_GACHA if st["vtuber_id"] == LUNA_VTUBER else LUNA_GACHA
            vt.rpc("end_gacha", {"p_gacha_id": other}, kind="end_gacha (another VTuber's)", invalid=True,
                   expect=("not_gacha_owner", "gacha_not_found"))

    # -- the admin ---------------------------------------------------------------------------------
    def admin_step(self, adm: Api, st: dict) -> None:
        rng = st["rng"]
        try:
            refund_id = self.refund_queue.get(timeout=0.3)
        except queue.Empty:
            refund_id = None
        if refund_id:
            if rng.random() < 0.1:
                adm.rpc("review_refund", {"p_refund_id": refund_id, "p_approve": False, "p_reason": ""},
                        kind="review_refund (reject without reason)", invalid=True, expect=("invalid_reason",))
            if rng.random() < 0.15:
                adm.rpc("review_refund", {"p_refund_id": refund_id, "p_approve": False, "p_reason": "soak: no"})
            elif ok(adm.rpc("review_refund", {"p_refund_id": refund_id, "p_approve": True, "p_reason": "soak"},
                            expect=("order_already_refunded", "refund_not_pending"))):
                adm.pay(f"/payments/refunds/{refund_id}/execute", {}, kind="payment service: execute refund")
                if rng.random() < 0.2:  # the admin double-clicks: idempotent at the provider
                    adm.pay(f"/payments/refunds/{refund_id}/execute", {},
                            kind="payment service: execute refund (again)", expect=("refund_not_approved",))
        op = rng.random()
        if op < 0.15:
            with self.lock:
                fans = list(st["fan_ids"])
            if fans:
                delta = rng.choice([5, 50, -5, -10_000])
                adm.rpc("admin_adjust_medals", {"p_user_id": rng.choice(fans), "p_vtuber_id": rng.choice(
                    [HOSHI_VTUBER, LUNA_VTUBER]), "p_delta": delta, "p_reason": "soak adjustment"},
                    expect=("insufficient_medals",))
        elif op < 0.2:
            adm.rpc("admin_adjust_medals", {"p_user_id": str(uuid.uuid4()), "p_vtuber_id": HOSHI_VTUBER,
                                            "p_delta": 1, "p_reason": ""}, kind="admin_adjust_medals (bad)",
                    invalid=True, expect=("reason_required", "user_not_found"))
        elif op < 0.25:
            r = adm.rpc("verify_audit_chain", {})
            if ok(r) and not r.json().get("ok"):
                self.rec.fail(f"audit chain broken during the run: {r.text[:300]}")
        elif op < 0.28:
            with self.lock:
                mine = [g for gs in self.vtuber_gachas.values() for g in gs]
            if mine:
                g = rng.choice(mine)
                if ok(adm.rpc("admin_suspend_gacha", {"p_gacha_id": g, "p_reason": "soak: review"})):
                    self.rec.fault("gachas suspended mid-sale")
                    time.sleep(0.2)
                    adm.rpc("admin_unsuspend_gacha", {"p_gacha_id": g, "p_reason": "soak: fine"})

    # -- the run -----------------------------------------------------------------------------------
    def run(self, seconds: float, *, during=None, echo=lambda _m: None) -> Result:
        """Runs the actors for `seconds`; `during(soak)` (optional) runs in the calling thread
        meanwhile (the crash test injects its faults there). Then drains and checks."""
        t0 = time.monotonic()
        self.stack.outbox.start(self.rec)
        echo(f"soak: signing in {self.n_fans} fans, 2 VTubers, an admin")
        fans = [self.sign_in(SEED_FAN), self.sign_in(MINOR)] + [self.sign_up() for _ in range(max(0, self.n_fans - 2))]
        fan_ids = [f.uid for f in fans]
        vts = [(self.sign_in(HOSHI), HOSHI_VTUBER), (self.sign_in(LUNA), LUNA_VTUBER)]
        adm = self.sign_in(ADMIN)
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


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def _table(rows: list[list], echo) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        echo("  ".join(str(c).ljust(w) if j == 0 else str(c).rjust(w) for j, (c, w) in
                       enumerate(zip(row, widths, strict=True))))
        if i == 0:
            echo("  ".join("-" * w for w in widths))


def print_report(res: Result, echo=print) -> None:
    echo(f"\n== soak: {res.seconds:.0f} s, {res.fans} fans + 2 VTubers + admin + provider ==")
    echo(f"operations: {res.total_ops:,}   5xx answers: {res.server_errors}   "
         f"failures: {len(res.failures)}   invariant violations: {len(res.violations)}\n")
    rows = [["operation", "outcome", "count"]]
    for (kind, outcome), n in sorted(res.ops.items()):
        rows.append([kind, outcome, f"{n:,}"])
    _table(rows, echo)
    echo("")
    rows = [["fault injected", "count"]] + [[k, f"{v:,}"] for k, v in sorted(res.faults.items())]
    _table(rows, echo)
    echo("")
    rows = [["figure", "value"]] + [[k, f"{int(v):,}"] for k, v in res.figures.items()]
    _table(rows, echo)
    echo(f"\ninvariants checked ({len(res.checks)}): {', '.join(res.checks)}")
    echo(f"violations: {len(res.violations)}")
    for v in res.violations[:50]:
        echo(f"  VIOLATION {v}")
    for f in res.failures[:50]:
        echo(f"  FAILURE {f}")
    echo("RESULT: " + ("PASS (nothing lost)" if res.ok else "FAIL"))


def run_soak(seconds: float, fans: int = 8, seed: int | None = None, echo=print) -> Result:
    stack = SoakStack()
    try:
        stack.start()
        soak = Soak(stack, fans=fans, seed=seed)
        res = soak.run(seconds, echo=echo)
        if not res.ok:
            echo(stack.logs())
        return res
    finally:
        stack.stop()
