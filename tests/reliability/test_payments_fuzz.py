"""Fuzzing the payment service: schemathesis over the OpenAPI document it serves (/openapi.json),
every operation as anon, fan and admin, schema-valid and schema-violating examples.

Checks (schemathesis's own, against the document): never a server error, every status code and
content type documented for the operation, every answer shaped as documented (errors are
{code, message} with a snake_case code). Nothing a refusal touches is written (row counts of the
money tables unchanged after a refused call).

Bounded profile: KOEPON_FUZZ_PAYMENTS_EXAMPLES examples per operation and role (default 25).
"""

from __future__ import annotations

import os

import httpx
import psycopg
import pytest
import schemathesis
from reliability_support import ADMIN, FAN, fuzz_operation, raise_rate_limits, sign_in
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from koepon.localstack.api.testing import running_api
from koepon.localstack.fakes.serve import running_payments

EXAMPLES = int(os.environ.get("KOEPON_FUZZ_PAYMENTS_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MONEY_TABLES = ("orders", "payments", "payment_events", "pulls", "medal_ledger", "refunds", "user_rewards")


@pytest.fixture(scope="module")
def stack(seeded_db_url):
    raise_rate_limits(seeded_db_url)
    with running_api(seeded_db_url) as api_url, running_payments(api_url) as pay:
        yield api_url, pay.payments_url


@pytest.fixture(scope="module")
def tokens(stack):
    api_url, _ = stack
    return {"anon": None, "fan": sign_in(api_url, FAN).token, "admin": sign_in(api_url, ADMIN).token}


def _counts(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("select " + ", ".join(f"(select count(*) from app.{t})" for t in MONEY_TABLES)).fetchone()
    return dict(zip(MONEY_TABLES, row, strict=True))


@pytest.mark.parametrize("role", ["anon", "fan", "admin"])
def test_schemathesis_every_payment_service_operation(stack, tokens, seeded_db_url, role):
    _, base = stack
    spec = httpx.get(base + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /payments/stripe/payment-intents", "POST /payments/komoju/sessions",
        "POST /payments/refunds/{refund_id}/execute", "POST /webhooks/stripe", "POST /webhooks/komoju",
        "POST /payments/rewards/{user_reward_id}/download", "GET /health", "GET /ready"}
    auth = {"Authorization": f"Bearer {tokens[role]}"} if tokens[role] else {}
    failures: dict[str, str] = {}
    counts: dict[str, int] = {}
    statuses: dict[str, set[int]] = {}
    before = _counts(seeded_db_url)
    for op in operations:
        _fuzz(op, base, auth, failures, counts, statuses)
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())
    # An operation without inputs (GET /health, /ready) has one example; the others many.
    assert len(counts) == len(operations), counts
    assert all(n >= min(EXAMPLES, 10) for k, n in counts.items() if k.startswith("POST")), counts
    # No fuzzed call paid, refunded or recorded anything (they are all refused or read-only).
    after = _counts(seeded_db_url)
    assert {t: (before[t], after[t]) for t in MONEY_TABLES if before[t] != after[t]} == {}
    print(f"schemathesis payments as {role}: " + ", ".join(
        f"{k} {counts[k]} examples {sorted(statuses[k])}" for k in sorted(counts)))


def _fuzz(op, base, auth, failures, counts, statuses):
    def check_case(case, label):
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        headers = {k: v for k, v in headers.items() if isinstance(v, str) and v.isascii() and v.strip()}
        case.headers = {**headers, **auth}
        response = case.call(base_url=base, timeout=10)
        statuses.setdefault(label, set()).add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except AssertionError as exc:  # schemathesis raises its failures as AssertionError subclasses
            failures.setdefault(label, f"{response.status_code} {response.text[:300]}\n    {exc!s:.600}")

    fuzz_operation(op, EXAMPLES, counts, check_case)
