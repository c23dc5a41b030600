"""Fuzzing the payment service: schemathesis over its own OpenAPI document (GET /openapi.json),
every operation as anon, a fan and an admin, schema-valid and schema-violating examples. Every
answer is below 500 (a 502 is allowed only as the provider's own refusal) and every refusal is
`{code, message}`.

KOEPON_FUZZ_PAYMENTS_EXAMPLES (default 15) sets the examples per operation and role."""

from __future__ import annotations

import json
import os
import uuid

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from koepon.localstack.api.testing import running_api
from koepon.localstack.fakes.serve import running_payments
from koepon.settings import ANON_KEY
from supabase import create_client

EXAMPLES = int(os.environ.get("KOEPON_FUZZ_PAYMENTS_EXAMPLES", "15"))
PROFILE = {"deadline": None, "database": None, "derandomize": True, "suppress_health_check": list(HealthCheck)}


@pytest.fixture(scope="module")
def stack(seeded_db_url):
    with running_api(seeded_db_url) as api_url, running_payments(api_url) as pay:
        yield api_url, pay


@pytest.fixture(scope="module")
def tokens(stack):
    api_url, _ = stack
    fan = create_client(api_url, ANON_KEY).auth.sign_up(
        {"email": f"pf-{uuid.uuid4().hex[:8]}@example.com", "password": "long-enough-pw"}).session.access_token
    admin = create_client(api_url, ANON_KEY).auth.sign_in_with_password(
        {"email": "admin@koepon.local", "password": "koepon-admin-pass"}).session.access_token
    return {"anon": None, "fan": fan, "admin": admin}


def test_the_service_serves_its_openapi_document(stack):
    _, pay = stack
    spec = httpx.get(f"{pay.payments_url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/health", "/payments/stripe/payment-intents", "/payments/komoju/sessions",
                                  "/payments/refunds/{refund_id}/execute",
                                  "/payments/rewards/{user_reward_id}/download", "/webhooks/stripe",
                                  "/webhooks/komoju"}


def _problem(r: httpx.Response) -> str | None:
    if r.status_code >= 500 and not (r.status_code == 502 and _code(r) == "provider_error"):
        return f"{r.status_code}: {r.text[:300]}"
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            return f"{r.status_code} non-JSON refusal: {r.text[:200]}"
        if not (isinstance(body, dict) and isinstance(body.get("code"), str) and body["code"] and "message" in body):
            return f"{r.status_code} refusal not shaped {{code, message}}: {r.text[:200]}"
    return None


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json().get("code"))
    except ValueError:
        return ""


@pytest.mark.parametrize("role", ["anon", "fan", "admin"])
def test_schemathesis_every_operation(stack, tokens, role):
    _, pay = stack
    schema = schemathesis.openapi.from_dict(httpx.get(f"{pay.payments_url}/openapi.json").json())
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) == 7
    failures: dict[str, str] = {}
    counts: dict[str, int] = {}
    token = tokens[role]
    for op in operations:
        _fuzz(pay, op, token, failures, counts)
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())
    assert all(counts.get(f"{op.method.upper()} {op.path}", 0) > 0 for op in operations)
    sent = sum(v for k, v in counts.items() if k != "unsendable")
    assert sent - counts.get("unsendable", 0) >= 7 * min(EXAMPLES, 10), counts
    print(f"payment service schemathesis as {role}: {len(operations)} operations, {sent} examples "
          f"({counts.get('unsendable', 0)} unsendable)")


def _fuzz(pay, op, token, failures, counts):
        label = f"{op.method.upper()} {op.path}"
        strategy = st.one_of(op.as_strategy(generation_mode=GenerationMode.POSITIVE),
                             op.as_strategy(generation_mode=GenerationMode.NEGATIVE))

        @settings(max_examples=EXAMPLES, **PROFILE)
        @given(strategy)
        def run(case):
            from schemathesis.core import NotSet

            counts[label] = counts.get(label, 0) + 1
            body = None if isinstance(case.body, NotSet) else case.body
            headers = {k: v for k, v in (case.headers or {}).items()
                       if isinstance(v, str) and v.isascii() and v.strip() and k.lower() != "authorization"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            raw = json.dumps(body, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass") \
                if body is not None else None
            try:
                r = httpx.request(case.method, pay.payments_url + case.formatted_path, params=case.query or None,
                                  content=raw, headers={**headers, "Content-Type": "application/json"}, timeout=30)
            except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
                # A request the HTTP client refuses to build (illegal header or URL): never sent. Counted
                # apart so a test that sends nothing cannot pass.
                counts["unsendable"] = counts.get("unsendable", 0) + 1
                return
            problem = _problem(r)
            if problem and label not in failures:
                failures[label] = f"{problem}\n    body={raw!r:.300}"

        run()
