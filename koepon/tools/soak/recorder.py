"""The soak's record: every operation by kind and outcome, the faults injected, the failures;
and the result of a run."""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]


def documented_codes() -> set[str]:
    """Every snake_case code and every SQLSTATE/PGRST code docs/errors.md names, and the payment
    service's own answers (docs/payments.md, to which errors.md refers)."""
    text = (ROOT / "docs" / "errors.md").read_text() + (ROOT / "docs" / "payments.md").read_text()
    codes = set(re.findall(r"`([a-z][a-z0-9_]+)`", text))
    codes |= set(re.findall(r"\b(PT\d{3}|PGRST\d{3}|PGRST\d{2}x|\d{2}[0-9A-Z]\d{2})\b", text))
    return codes


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
