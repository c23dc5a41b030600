"""The payment service as a production service: poison events by SQLSTATE class, request ids,
CORS, security headers, compression, per-fan rate limits in the database, /health and /ready,
Prometheus metrics, JSON logs.

The SQLSTATE classes are driven through a stand-in for the Supabase API that answers every RPC
with a PostgREST error body of the class under test (the real `supabase` client parses it); the
poison event that started this (a \\u0000 PostgreSQL cannot store) also runs end to end through
the local API and a real database.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import uuid

import httpx
import psycopg
import psycopg.conninfo
import pytest
from flask import Flask, jsonify, request
from webhook_support import sign_up_fan

from koepon.localstack.api.testing import running_api
from koepon.localstack.fakes import events as ev
from koepon.localstack.fakes.serve import serving
from koepon.localstack.services import free_port, payments_env
from koepon.settings import STRIPE_WEBHOOK_SECRET
from webhooks.app import create_app
from webhooks.db import classify
from webhooks.observability import logging_config

GACHA = "00000000-0000-4000-d000-000000000001"  # seed: 10 pulls ¥3000


class StubApi:
    """Answers /rest/v1/rpc/<name> with `self.error` (a PostgREST error) or `self.result`; keeps
    the headers of every call."""

    def __init__(self):
        self.error: tuple[int, str] | None = None
        self.result: object = {"received": True, "duplicate": False, "outcome": "fulfilled", "order_id": None}
        self.calls: list[tuple[str, dict]] = []
        app = Flask("stub-api")

        @app.post("/rest/v1/rpc/<name>")
        def rpc(name):
            self.calls.append((name, dict(request.headers)))
            if self.error:
                status, code = self.error
                return jsonify({"code": code, "message": f"stub {code}", "details": None, "hint": None}), status
            return jsonify(self.result)

        self.app = app


@pytest.fixture(scope="module")
def stub():
    s = StubApi()
    with serving(s.app) as url:
        s.url = url
        yield s


@pytest.fixture(scope="module")
def stub_service(stub):
    app = create_app(payments_env(stub.url, f"http://127.0.0.1:{free_port()}"))
    with serving(app) as url:
        yield url


def _stripe_event(order_id: str | None = None, amount: int = 1000) -> dict:
    [event] = ev.stripe_outcome_events(order_id or str(uuid.uuid4()), amount, "succeeded")
    return event


def _deliver(url: str, event: dict, headers: dict | None = None) -> httpx.Response:
    body = ev.dumps(event)
    return httpx.post(f"{url}/webhooks/stripe", content=body,
                      headers={**ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET), **(headers or {})}, timeout=5)


# ---------------------------------------------------------------------------------------
# Poison events: decided per SQLSTATE class
# ---------------------------------------------------------------------------------------
PERMANENT = [(400, "22P05"), (400, "22001"), (400, "22P02"), (409, "23505"), (409, "23503"), (400, "21000"),
             (400, "54001")]
TRANSIENT = [(500, "40001"), (500, "40P01"), (500, "57014"), (503, "08006"), (503, "53300"), (500, "55P03"),
             (500, "58030"), (503, "PGRST001"), (503, "PGRST003")]
FAULT = [(404, "42883"), (403, "42501"), (500, "XX000"), (400, "P0001"), (404, "PGRST202")]


@pytest.mark.parametrize(("status", "sqlstate"), PERMANENT)
def test_a_verified_event_that_can_never_succeed_is_answered_so_the_provider_stops(stub, stub_service, status,
                                                                                   sqlstate, caplog):
    stub.error = (status, sqlstate)
    event = _stripe_event()
    with caplog.at_level(logging.ERROR, logger="webhooks.inbox"):
        r = _deliver(stub_service, event)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "refused" and r.json()["received"] is True
    assert r.json()["code"] in ("invalid_input", "constraint_violation", "input_too_complex")
    refusal = [rec for rec in caplog.records if rec.__dict__.get("event_id") == event["id"]]
    assert refusal and refusal[0].outcome == "refused" and refusal[0].sqlstate == sqlstate


@pytest.mark.parametrize(("status", "sqlstate"), TRANSIENT)
def test_a_transient_failure_is_503_so_the_provider_retries(stub, stub_service, status, sqlstate):
    stub.error = (status, sqlstate)
    r = _deliver(stub_service, _stripe_event())
    assert (r.status_code, r.json()["code"]) == (503, "database_unavailable")
    assert r.headers["Retry-After"] == "5"


@pytest.mark.parametrize(("status", "sqlstate"), FAULT)
def test_a_fault_of_the_deployment_is_500_and_retried(stub, stub_service, status, sqlstate):
    stub.error = (status, sqlstate)
    r = _deliver(stub_service, _stripe_event())
    assert (r.status_code, r.json()["code"]) == (500, "server_error")


def test_every_sqlstate_class_has_one_decision():
    assert {c: classify(c) for c in ("PT404", "22P05", "23505", "40001", "57014", "08006", "42883", "XX000",
                                     None, "PGRST000", "PGRST116")} == {
        "PT404": "pt", "22P05": "permanent", "23505": "permanent", "40001": "transient", "57014": "transient",
        "08006": "transient", "42883": "fault", "XX000": "fault", None: "transient", "PGRST000": "transient",
        "PGRST116": "fault"}


def test_the_pt400_refusal_of_a_verified_event_stops_the_provider(stub, stub_service):
    """An event id or type out of the inbox's bounds (PT400) is permanent too: 200, refused."""
    stub.error = (400, "PT400")
    r = _deliver(stub_service, _stripe_event())
    assert (r.status_code, r.json()["outcome"]) == (200, "refused")


def test_a_signed_but_unreadable_body_is_refused_not_retried(stub, stub_service, caplog):
    from koepon.settings import KOMOJU_WEBHOOK_SECRET

    stub.calls.clear()
    for body in ("[]", '{"id": "only-an-id"}', "not json"):
        with caplog.at_level(logging.ERROR, logger="webhooks.inbox"):
            r = httpx.post(f"{stub_service}/webhooks/komoju", content=body,
                           headers=ev.komoju_sign(body, KOMOJU_WEBHOOK_SECRET))
        assert (r.status_code, r.json()["outcome"], r.json()["code"]) == (200, "refused", "invalid_event"), body
    assert stub.calls == [], "nothing reached the database"
    logged = [rec for rec in caplog.records if rec.__dict__.get("code") == "invalid_event"]
    assert len(logged) == 3 and logged[1].event_id == "only-an-id" and len(logged[0].body_sha256) == 64
    # Unsigned, the same bodies are 400: only the provider's own mistakes are acknowledged.
    r = httpx.post(f"{stub_service}/webhooks/komoju", content="[]", headers={"X-Komoju-Signature": "0" * 64})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature")


def test_nul_in_metadata_end_to_end_is_refused_once_and_not_retried(stack, seeded_db_url, caplog):
    """The poison event itself: a correctly signed Stripe event with \\u0000 in its metadata (22P05)."""
    api_url, pay, _ = stack
    sb, _, _ = sign_up_fan(api_url, "prod")
    order = sb.rpc("create_order", {"p_gacha_id": GACHA, "p_pull_count": 10,
                                    "p_idempotency_key": uuid.uuid4().hex}).execute().data
    event = _stripe_event(order["order_id"], order["amount_jpy"])
    event["data"]["object"]["metadata"]["note"] = "a\u0000b"
    event["data"]["object"]["description"] = "\u0000"
    with caplog.at_level(logging.ERROR, logger="webhooks.inbox"):
        r = _deliver(pay.payments_url, event)
    assert r.status_code == 200, r.text
    assert (r.json()["outcome"], r.json()["code"]) == ("refused", "invalid_input")
    assert "22P05" in r.json()["message"]
    assert any(rec.__dict__.get("event_id") == event["id"] for rec in caplog.records)
    with psycopg.connect(seeded_db_url) as conn:
        stored = conn.execute("select count(*) from app.payment_events where event_id = %s", (event["id"],))
        assert stored.fetchone()[0] == 0
    assert sb.rpc("get_order", {"p_order_id": order["order_id"]}).execute().data["status"] == "pending"


# ---------------------------------------------------------------------------------------
# Request ids
# ---------------------------------------------------------------------------------------
def test_request_id_is_accepted_returned_and_sent_to_the_database(stub, stub_service):
    stub.error = None
    stub.calls.clear()
    r = _deliver(stub_service, _stripe_event(), headers={"X-Request-Id": "req-123.abc"})
    assert r.status_code == 200 and r.headers["X-Request-Id"] == "req-123.abc"
    [(name, headers)] = stub.calls
    assert name == "service_record_payment_event" and headers["X-Request-Id"] == "req-123.abc"
    # Missing or not a plain token (a log-injection attempt): a fresh one is generated.
    for given in (None, "bad id\"}, {\"x\": 1", "x" * 200):
        stub.calls.clear()
        r = _deliver(stub_service, _stripe_event(), headers={"X-Request-Id": given} if given else None)
        rid = r.headers["X-Request-Id"]
        assert rid != given and len(rid) == 32 and stub.calls[0][1]["X-Request-Id"] == rid


def test_json_log_lines_carry_the_request_id(stub):
    import logging.config

    app = create_app(payments_env(stub.url, f"http://127.0.0.1:{free_port()}"))
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    cfg = logging_config()
    formatter = logging.config.DictConfigurator(cfg).configure_custom(dict(cfg["formatters"]["json"]))
    keep = Keep()
    keep.setFormatter(formatter)
    keep.addFilter(logging.config.DictConfigurator(cfg).configure_custom(dict(cfg["filters"]["request_id"])))
    access = logging.getLogger("webhooks.access")
    access.addHandler(keep)
    access.setLevel(logging.INFO)
    try:
        app.test_client().get("/health", headers={"X-Request-Id": "trace-7"})
    finally:
        access.removeHandler(keep)
    [line] = records
    entry = json.loads(line)
    assert entry["request_id"] == "trace-7" and entry["status"] == 200 and entry["route"] == "/health"
    assert {"timestamp", "level", "logger", "message", "duration_ms"} <= set(entry)


# ---------------------------------------------------------------------------------------
# CORS, security headers, compression
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cors_app(stub):
    env = payments_env(stub.url, f"http://127.0.0.1:{free_port()}")
    env["PAYMENTS_CORS_ORIGINS"] = "https://koepon.example, http://127.0.0.1:54323"
    return create_app(env).test_client()


def test_cors_only_on_payments_and_only_for_configured_origins(cors_app):
    pre = cors_app.options("/payments/stripe/payment-intents", headers={
        "Origin": "https://koepon.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert pre.status_code == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "https://koepon.example"
    assert "authorization" in pre.headers["Access-Control-Allow-Headers"].lower()
    r = cors_app.post("/payments/stripe/payment-intents", json={}, headers={"Origin": "http://127.0.0.1:54323"})
    assert r.status_code == 401 and r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:54323"
    assert "X-Request-Id" in r.headers["Access-Control-Expose-Headers"]
    evil = cors_app.post("/payments/stripe/payment-intents", json={}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    for path in ("/webhooks/stripe", "/webhooks/komoju"):
        r = cors_app.options(path, headers={"Origin": "https://koepon.example",
                                            "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in r.headers, path
        r = cors_app.post(path, data="{}", headers={"Origin": "https://koepon.example"})
        assert "Access-Control-Allow-Origin" not in r.headers, path


def test_no_cors_without_configured_origins(stub):
    client = create_app(payments_env(stub.url, f"http://127.0.0.1:{free_port()}")).test_client()
    r = client.post("/payments/stripe/payment-intents", json={}, headers={"Origin": "https://koepon.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize(("method", "path"), [("GET", "/health"), ("GET", "/nope"), ("POST", "/webhooks/stripe"),
                                              ("POST", "/payments/komoju/sessions"), ("GET", "/openapi.json"),
                                              ("GET", "/metrics")])
def test_security_headers_on_every_answer(cors_app, method, path):
    r = cors_app.open(path, method=method)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in r.headers, "HSTS only over https"
    secure = cors_app.open(path, method=method, headers={"X-Forwarded-Proto": "https"})
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=63072000")


def test_answers_are_compressed_when_the_client_accepts_it(cors_app):
    r = cors_app.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(r.data))["info"]["title"] == "Koepon payment service"
    assert "Content-Encoding" not in cors_app.get("/openapi.json").headers


# ---------------------------------------------------------------------------------------
# Per-fan rate limits, counted in the database
# ---------------------------------------------------------------------------------------
def test_per_fan_rate_limit_is_shared_by_every_instance(stack, seeded_db_url):
    api_url, pay, _ = stack
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        conn.execute("update app.rate_limit_rules set per_minute = 4 where bucket = 'payments'")
    try:
        _, token, user_id = sign_up_fan(api_url, "prod")
        _, other_token, _ = sign_up_fan(api_url, "prod")
        # A second instance of the service (another process in production) on the same database.
        second = create_app(pay.env)
        with serving(second) as second_url:
            answers = []
            for base in (pay.payments_url, second_url, pay.payments_url, second_url, pay.payments_url):
                answers.append(httpx.post(base + "/payments/stripe/payment-intents", json={"order_id": "x"},
                                          headers={"Authorization": f"Bearer {token}"}))
        assert [a.status_code for a in answers] == [400, 400, 400, 400, 429]
        assert answers[-1].json()["code"] == "rate_limited"
        assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
        other = httpx.post(pay.payments_url + "/payments/stripe/payment-intents", json={"order_id": "x"},
                           headers={"Authorization": f"Bearer {other_token}"})
        assert other.status_code == 400, "another fan has a count of their own"
        with psycopg.connect(seeded_db_url) as conn:
            hits = conn.execute("select sum(hits) from app.rate_limit_hits where subject = %s and bucket = "
                                "'payments'", (f"u:{user_id}",)).fetchone()[0]
        assert hits == 4, "the refused request is not counted (the API's limiter counts committed requests)"
    finally:
        with psycopg.connect(seeded_db_url, autocommit=True) as conn:
            conn.execute("update app.rate_limit_rules set per_minute = 20 where bucket = 'payments'")


def test_webhooks_and_anonymous_calls_are_not_counted(stack, seeded_db_url):
    _, pay, _ = stack
    with psycopg.connect(seeded_db_url) as conn:
        before = conn.execute("select count(*) from app.rate_limit_hits where bucket = 'payments'").fetchone()[0]
    r = httpx.post(pay.payments_url + "/payments/stripe/payment-intents", json={"order_id": "x"})
    assert (r.status_code, r.json()["code"]) == (401, "not_authenticated")
    with psycopg.connect(seeded_db_url) as conn:
        after = conn.execute("select count(*) from app.rate_limit_hits where bucket = 'payments'").fetchone()[0]
    assert after == before


# ---------------------------------------------------------------------------------------
# /health and /ready, here and on the local API
# ---------------------------------------------------------------------------------------
def test_health_and_ready(stack):
    api_url, pay, _ = stack
    assert httpx.get(pay.payments_url + "/health").json()["status"] == "ok"
    r = httpx.get(pay.payments_url + "/ready")
    assert (r.status_code, r.json()["status"], r.json()["database"]) == (200, "ready", "ok")
    assert httpx.get(api_url + "/health").json() == {"status": "ok"}
    r = httpx.get(api_url + "/ready")
    assert (r.status_code, r.json()["status"]) == (200, "ready")
    assert r.json()["pool"]["pool_max"] >= 1


def test_not_ready_when_the_database_is_unreachable():
    dead = f"http://127.0.0.1:{free_port()}"
    client = create_app(payments_env(dead, dead)).test_client()
    assert client.get("/health").status_code == 200
    r = client.get("/ready")
    assert (r.status_code, r.json["status"]) == (503, "unavailable") and r.headers["Retry-After"]


def test_local_api_not_ready_when_its_database_is_gone(fresh_db_url):
    from koepon.db import testing

    with running_api(fresh_db_url) as api_url:
        assert httpx.get(api_url + "/ready").status_code == 200
        name = psycopg.conninfo.conninfo_to_dict(fresh_db_url)["dbname"]
        with psycopg.connect(testing.admin_url(), autocommit=True) as conn:
            conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,))
            conn.execute(f'alter database "{name}" allow_connections false')
        try:
            r = httpx.get(api_url + "/ready", timeout=5)
            assert (r.status_code, r.json()["status"]) == (503, "unavailable")
            assert httpx.get(api_url + "/health").status_code == 200
        finally:
            with psycopg.connect(testing.admin_url(), autocommit=True) as conn:
                conn.execute(f'alter database "{name}" allow_connections true')


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------
def _sample(text: str, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_metrics_count_requests_outcomes_and_provider_calls(stack):
    api_url, pay, _ = stack
    url = pay.payments_url
    before = httpx.get(url + "/metrics").text
    sb, token, _ = sign_up_fan(api_url, "prod")
    order = sb.rpc("create_order", {"p_gacha_id": GACHA, "p_pull_count": 10,
                                    "p_idempotency_key": uuid.uuid4().hex}).execute().data
    r = httpx.post(url + "/payments/stripe/payment-intents", json={"order_id": order["order_id"]},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201
    pi = httpx.get(f"{pay.fake_url}/stripe/v1/payment_intents/{r.json()['payment_intent_id']}",
                   headers={"Authorization": "Bearer sk_test_local"}).json()
    event = ev.stripe_event("payment_intent.succeeded", {**pi, "status": "succeeded", "amount_received": pi["amount"]})
    assert _deliver(url, event).json()["outcome"] == "fulfilled"
    assert _deliver(url, event).json()["duplicate"] is True
    httpx.get(url + "/nope")
    after = httpx.get(url + "/metrics")
    assert after.headers["Content-Type"].startswith("text/plain")
    text = after.text

    def grew(name, **labels):
        return _sample(text, name, **labels) - _sample(before, name, **labels)

    assert grew("koepon_payments_http_requests_total", route="/payments/stripe/payment-intents",
                method="POST", status="201") == 1
    assert grew("koepon_payments_http_requests_total", route="<unmatched>", status="404") == 1
    assert grew("koepon_payments_http_request_duration_seconds_count", route="/webhooks/stripe") == 2
    assert grew("koepon_payments_webhook_events_total", provider="stripe", outcome="fulfilled") == 1
    assert grew("koepon_payments_webhook_events_total", provider="stripe", outcome="duplicate") == 1
    assert grew("koepon_payments_provider_request_duration_seconds_count", provider="stripe",
                operation="create_payment_intent") == 1
    assert "koepon_payments_requests_in_flight" in text


def test_metrics_token_is_required_when_configured(stub):
    env = payments_env(stub.url, f"http://127.0.0.1:{free_port()}")
    env["PAYMENTS_METRICS_TOKEN"] = "scrape-secret-123"
    client = create_app(env).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"}).status_code == 200


def test_provider_errors_are_counted(stub):
    app = create_app(payments_env(stub.url, f"http://127.0.0.1:{free_port()}"))
    from webhooks.observability import metrics

    before = metrics().provider_errors.labels("komoju", "refund")._value.get()
    with app.app_context(), pytest.raises(Exception):  # noqa: B017 - the provider is unreachable
        app.extensions["koepon"].komoju.refund({"provider_payment_id": "p", "amount_jpy": 1, "refund_id": "r",
                                                "order_id": "o"})
    assert metrics().provider_errors.labels("komoju", "refund")._value.get() == before + 1


def test_one_thread_per_request_keeps_in_flight_at_zero_after(stub, stub_service):
    threads = [threading.Thread(target=httpx.get, args=(stub_service + "/health",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = httpx.get(stub_service + "/metrics").text
    # The scrape itself is the one request in flight.
    assert _sample(text, "koepon_payments_requests_in_flight") == 1


def test_the_request_id_reaches_postgresql_in_request_headers(fresh_db_url):
    """Through the local API into the database: what audit rows can read."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("""create function public.echo_request_id() returns text language sql stable
                        as $$ select current_setting('request.headers', true)::json ->> 'x-request-id' $$""")
        conn.execute("grant execute on function public.echo_request_id() to service_role")
    with running_api(fresh_db_url) as api_url:
        app = create_app(payments_env(api_url, f"http://127.0.0.1:{free_port()}"))
        with app.test_request_context("/payments/x", headers={"X-Request-Id": "audit-trail-42"}):
            app.preprocess_request()
            assert app.extensions["koepon"].db.rpc("echo_request_id") == "audit-trail-42"
