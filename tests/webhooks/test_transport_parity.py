"""The payment service's two ways to the database give a provider the same answer.

Without PAYMENTS_DATABASE_URL every RPC goes through the Supabase API (supabase-py -> the local
API, PostgREST's behaviour); with it, over a pooled psycopg connection as `service_role`
(webhooks/db_direct.py). Here one database makes the inbox raise each SQLSTATE class on demand,
and the same signed event is delivered to a payment service on each transport: the HTTP status,
the body and Retry-After must be equal, and equal to what the error classification promises. The
direct transport's own rules (the role it runs as, nothing left in the session, no prepared
statements, a dead database) are checked beside.
"""

from __future__ import annotations

import contextlib
import json
import uuid

import httpx
import psycopg
import pytest

from koepon.localstack.api.testing import running_api
from koepon.localstack.fakes import events as ev
from koepon.localstack.fakes.serve import serving
from koepon.localstack.services import free_port, payments_env
from koepon.settings import STRIPE_WEBHOOK_SECRET
from webhooks.app import create_app
from webhooks.config import Config, ConfigError
from webhooks.db import RpcError, ServerFault, Unavailable
from webhooks.db_direct import DirectDatabase

# The inbox stand-in: raises what parity.next_error says, else answers with who it ran as.
_STAND_IN = """
create schema parity;
create table parity.next_error (sqlstate text, message text, detail text, hint text);
grant usage on schema parity to service_role;
grant select on parity.next_error to service_role;
create table parity.calls (event_id text);
grant insert on parity.calls to service_role;
create or replace function public.service_record_payment_event(p_provider text, p_event_id text, p_type text,
                                                                p_payload jsonb) returns jsonb
language plpgsql set search_path = '' as $$
declare
  e parity.next_error;
begin
  insert into parity.calls values (p_event_id);  -- undone with the call when it raises
  select * into e from parity.next_error limit 1;
  if e.sqlstate is not null and e.hint is not null then
    raise exception using errcode = e.sqlstate, message = e.message, detail = e.detail, hint = e.hint;
  elsif e.sqlstate is not null then
    raise exception using errcode = e.sqlstate, message = e.message, detail = e.detail;
  end if;
  return jsonb_build_object('provider', p_provider, 'event_id', p_event_id, 'duplicate', false, 'order_id', null,
                            'outcome', 'ignored', 'detail', jsonb_build_object(
                              'current_user', current_user, 'auth_role', auth.role(),
                              'request_id', current_setting('request.headers', true)::jsonb ->> 'x-request-id',
                              'amount', p_payload -> 'data' -> 'object' -> 'amount'));
end
$$;
"""

# (sqlstate, message, detail, hint): one of every decision the classification makes.
ERRORS = [
    ("PT400", "invalid_event_id", "p_event_id is 1 to 255 characters", None),
    ("PT404", "order_not_found", "no such order", None),
    ("PT409", "order_not_payable", "only a pending order can be paid", None),
    ("PT429", "rate_limited", "too many requests", "retry after 17 seconds"),
    ("22P05", "unsupported Unicode escape sequence", "\\u0000 cannot be converted to text.", None),
    ("22001", "value too long for type character varying(255)", "d", None),
    ("23505", "duplicate key value violates unique constraint", "Key (x)=(1) already exists.", None),
    ("21000", "more than one row returned by a subquery", "d", None),
    ("54001", "stack depth limit exceeded", "d", None),
    ("40001", "could not serialize access due to concurrent update", "d", None),
    ("40P01", "deadlock detected", "d", None),
    ("55P03", "could not obtain lock on row", "d", None),
    ("57014", "canceling statement due to statement timeout", "d", None),
    ("53300", "too many connections", "d", None),
    ("58030", "could not read file", "d", None),
    ("42501", "permission denied for function x", "d", None),
    ("XX000", "internal error", "d", None),
    ("P0001", "a plain raise", "d", None),
]


@pytest.fixture(scope="module")
def parity_db(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(_STAND_IN)
    return db_url


@contextlib.contextmanager
def _service(api_url: str, db_url: str | None):
    app = create_app(payments_env(api_url, f"http://127.0.0.1:{free_port()}", db_url))
    try:
        with serving(app) as url:
            yield url
    finally:
        app.extensions["koepon"].db.close()


@pytest.fixture(scope="module")
def api_and_db(parity_db):
    with running_api(parity_db) as api_url:
        yield api_url, parity_db


@pytest.fixture(scope="module")
def services(api_and_db):
    """{transport: payment service url} for the same database."""
    api_url, db_url = api_and_db
    with _service(api_url, None) as via_api, _service(api_url, db_url) as direct:
        yield {"api": via_api, "direct": direct}


def _set_error(db_url: str, error: tuple | None) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("delete from parity.next_error")
        if error:
            conn.execute("insert into parity.next_error values (%s, %s, %s, %s)", error)


def _deliver(url: str, event: dict, headers: dict | None = None) -> httpx.Response:
    body = ev.dumps(event)
    return httpx.post(f"{url}/webhooks/stripe", content=body,
                      headers={**ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET), **(headers or {})}, timeout=10)


def _event() -> dict:
    [event] = ev.stripe_outcome_events(str(uuid.uuid4()), 1000, "succeeded")
    return event


def _answer(r: httpx.Response) -> tuple:
    return r.status_code, r.json(), r.headers.get("Retry-After")


@pytest.mark.parametrize("error", ERRORS, ids=[e[0] for e in ERRORS])
def test_every_sqlstate_class_gets_the_same_answer_on_both_transports(services, parity_db, error):
    _set_error(parity_db, error)
    event = _event()
    answers = {t: _answer(_deliver(url, event)) for t, url in services.items()}
    assert answers["direct"] == answers["api"], answers
    status, body, retry_after = answers["direct"]
    code = error[0]
    if code in ("PT404", "PT409"):
        # The inbox's own 4xx (not 429): answered 200 so that the provider stops, with its code.
        assert (status, body["outcome"], body["code"], body["message"]) == (200, "refused", error[1], error[2])
    elif code == "PT400":
        assert (status, body["outcome"], body["code"]) == (200, "refused", error[1])
    elif code == "PT429":
        assert (status, body["code"], retry_after) == (429, "rate_limited", "17")
    elif code[:2] in ("21", "22", "23", "54"):
        assert (status, body["outcome"]) == (200, "refused")
        assert body["message"] == f"{code}: {error[1]}"
    elif code[:2] in ("40", "55", "57", "53", "58"):
        assert (status, body["code"], retry_after) == (503, "database_unavailable", "5")
    else:
        assert (status, body["code"]) == (500, "server_error")
        assert code in body["message"]


def test_a_successful_call_runs_as_service_role_with_the_request_id_on_both(api_and_db):
    api_url, db_url = api_and_db
    _set_error(db_url, None)
    seen = {}
    for transport, direct in (("api", None), ("direct", db_url)):
        app = create_app(payments_env(api_url, "http://127.0.0.1:9", direct))
        try:
            with app.test_request_context("/webhooks/stripe", headers={"X-Request-Id": f"rid-{transport}"}):
                app.preprocess_request()
                seen[transport] = app.extensions["koepon"].db.rpc(
                    "service_record_payment_event", p_provider="stripe", p_event_id="e1", p_type="t",
                    p_payload={"data": {"object": {"amount": 1000}}})["detail"]
        finally:
            app.extensions["koepon"].db.close()
    for transport, detail in seen.items():
        assert detail == {"current_user": "service_role", "auth_role": "service_role",
                          "request_id": f"rid-{transport}", "amount": 1000}, transport


def test_a_nul_in_a_text_argument_is_decided_alike(services, parity_db):
    _set_error(parity_db, None)
    event = _event()
    event["id"] = "evt_\u0000nul"
    answers = {t: _answer(_deliver(url, event)) for t, url in services.items()}
    assert answers["direct"] == answers["api"], answers
    assert answers["direct"][0] == 200 and answers["direct"][1]["outcome"] == "refused"


def test_the_direct_transport_keeps_nothing_in_the_session(parity_db):
    """Supavisor in transaction mode hands each transaction any server connection: the role, the
    claims and the timeout are transaction-local, and no statement is prepared on the server."""
    _set_error(parity_db, None)
    db = DirectDatabase(parity_db, timeout=2.0, pool_size=1)
    try:
        for k in range(8):
            db.rpc("service_record_payment_event", p_provider="stripe", p_event_id=f"e{k}", p_type="t",
                   p_payload={"k": k})
        with db._get_pool().connection() as conn:  # the one connection every call above used
            row = conn.execute("select current_user, current_setting('request.jwt.claims', true), "
                               "current_setting('statement_timeout'), "
                               "(select count(*) from pg_prepared_statements)").fetchone()
    finally:
        db.close()
    user = psycopg.conninfo.conninfo_to_dict(parity_db).get("user") or "postgres"
    assert row[0] == user and row[1] in (None, "") and row[2] == "0" and row[3] == 0, row


def test_the_direct_transport_answers_503_when_the_database_is_unreachable():
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    app = create_app(payments_env("http://127.0.0.1:9", "http://127.0.0.1:9", dead))
    try:
        client = app.test_client()
        body = ev.dumps(_event())
        r = client.post("/webhooks/stripe", data=body, headers=ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET))
        assert (r.status_code, r.json["code"], r.headers["Retry-After"]) == (503, "database_unavailable", "5")
        r = client.get("/ready")
        assert (r.status_code, r.json["status"]) == (503, "unavailable")
    finally:
        app.extensions["koepon"].db.close()


def test_errors_raised_by_the_direct_transport_carry_the_database_fields(parity_db):
    db = DirectDatabase(parity_db, timeout=2.0, pool_size=1)
    try:
        _set_error(parity_db, ("PT429", "rate_limited", "too many", "retry after 9 seconds"))
        with pytest.raises(RpcError) as exc:
            db.rpc("service_record_payment_event", p_provider="s", p_event_id="e", p_type="t", p_payload={})
        assert (exc.value.status, exc.value.code, exc.value.detail, exc.value.retry_after) == (
            429, "rate_limited", "too many", 9)
        _set_error(parity_db, ("40001", "serialize", "d", None))
        with pytest.raises(Unavailable):
            db.rpc("service_record_payment_event", p_provider="s", p_event_id="e", p_type="t", p_payload={})
        _set_error(parity_db, None)
        with pytest.raises(ServerFault) as fault:
            db.rpc("service_no_such_function")
        assert fault.value.sqlstate == "42883"
        db.rpc("service_record_payment_event", p_provider="s", p_event_id="kept", p_type="t", p_payload={})
        with psycopg.connect(parity_db) as conn:
            # The settings and the call are one transaction: a call that raised left nothing.
            assert conn.execute("select count(*) filter (where event_id = 'e'), count(*) filter "
                                "(where event_id = 'kept') from parity.calls").fetchone() == (0, 1)
    finally:
        _set_error(parity_db, None)
        db.close()


def test_the_direct_transport_refuses_a_url_that_is_not_postgresql():
    env = payments_env("http://127.0.0.1:9", "http://127.0.0.1:9", "http://db.example.com")
    with pytest.raises(ConfigError, match="PAYMENTS_DATABASE_URL"):
        Config.from_env(env).validate()
    env = {**payments_env("http://127.0.0.1:9", "http://127.0.0.1:9"), "PAYMENTS_DB_POOL_SIZE": "0"}
    with pytest.raises(ConfigError, match="PAYMENTS_DB_POOL_SIZE"):
        Config.from_env(env).validate()
    assert json.dumps(Config.from_env(payments_env("http://x", "http://x")).database_url) == '""'
