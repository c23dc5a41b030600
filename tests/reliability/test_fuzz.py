"""Fuzzing: schemathesis over the OpenAPI the local API serves (every operation, as anon and as
a fan, schema-valid and schema-violating examples) and hypothesis over the money-moving RPCs'
arguments (bounds, unicode, huge numbers, nulls, wrong types).

Checks: never a 5xx; every refusal is JSON with a documented code (docs/errors.md, or one of
PostgREST's own codes for requests that never reach our functions); a refused call writes
nothing (row counts of every app table unchanged).

Bounded profile: KOEPON_FUZZ_EXAMPLES examples per operation and role (default 12) for
schemathesis, KOEPON_FUZZ_RPC_EXAMPLES per RPC (default 100) for hypothesis.
"""

from __future__ import annotations

import json
import os
import uuid

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_support import (
    FAN,
    FUZZ_PROFILE,
    HOSHI_EXCHANGE_UNLIMITED,
    HOSHI_GACHA,
    anon,
    documented_codes,
    fuzz_operation,
    raise_rate_limits,
    sign_in,
    table_counts,
)

# The same predicate the local Auth uses to refuse a NUL in JSON (PostgreSQL cannot store it).
from koepon.localstack.api.auth import _has_nul

EXAMPLES = int(os.environ.get("KOEPON_FUZZ_EXAMPLES", "12"))
RPC_EXAMPLES = int(os.environ.get("KOEPON_FUZZ_RPC_EXAMPLES", "100"))

# PostgREST's own answers to requests that never reach a Koepon function (docs/errors.md, "Malformed
# requests"): unknown function/column, bad JSON/filter/range, wrong argument types (class 22).
POSTGREST_OWN = ("PGRST", "22", "42703", "42883", "42501", "42P01", "21000")


def acceptable(r, documented: set[str]) -> str | None:
    if r.status_code >= 500:
        return f"{r.status_code}: {r.text[:300]}"
    if r.status_code < 400:
        return None
    try:
        body = r.json()
    except ValueError:
        return f"{r.status_code} non-JSON error body: {r.text[:200]}"
    code, message = str(body.get("code", "")), str(body.get("message", ""))
    if message in documented or code.startswith(POSTGREST_OWN):
        return None
    return f"{r.status_code} undocumented {code} {message}: {r.text[:200]}"


@pytest.fixture(scope="module")
def api(api_url, seeded_db_url):
    raise_rate_limits(seeded_db_url)
    return api_url


@pytest.fixture(scope="module")
def clients(api):
    return {"anon": anon(api), "fan": sign_in(api, FAN, "fan")}


@pytest.mark.parametrize("role", ["anon", "fan"])
def test_schemathesis_every_operation(api, clients, seeded_db_url, role):
    client = clients[role]
    spec = client.http.get("/rest/v1/", headers=client.headers()).json()
    schema = schemathesis.openapi.from_dict(spec)
    documented = documented_codes()
    failures: dict[str, str] = {}
    counts: dict[str, int] = {}
    known: dict[str, int] = {}
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 60
    for op in operations:
        _fuzz_operation(api, client, op, documented, failures, counts, known)
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())
    assert len(counts) == len(operations)
    assert sum(counts.values()) >= 200, "at least 200 examples per role in CI"
    assert known.get("unsent", 0) < sum(counts.values()) / 10, f"{known.get('unsent')} examples were never sent"
    print(f"schemathesis as {role}: {len(operations)} operations, {sum(counts.values())} examples, "
          f"{known.get('nul', 0)} with NUL bytes, {known.get('unsent', 0)} the HTTP client refused to send")


def _fuzz_operation(api, client, op, documented, failures, counts, known):
        def check_case(case, label):
            from schemathesis.core import NotSet

            body = None if isinstance(case.body, NotSet) else case.body
            query = {k: v for k, v in (case.query or {}).items()}
            headers = {**{k: v for k, v in (case.headers or {}).items()
                          if k.lower() not in ("authorization", "apikey")}, **client.headers()}
            headers = {k: v for k, v in headers.items() if isinstance(v, str) and v.isascii() and v.strip()}
            raw = json.dumps(body, default=lambda o: o.decode("latin-1") if isinstance(o, bytes) else str(o),
                             ensure_ascii=False).encode("utf-8", "surrogatepass") if body is not None else None
            if raw is not None and _has_nul(body):
                known["nul"] = known.get("nul", 0) + 1
            try:
                r = client.http.request(case.method, "/rest/v1" + case.formatted_path, params=query,
                                        content=raw, headers={**headers, "Content-Type": "application/json"})
            except (httpx.LocalProtocolError, httpx.InvalidURL):
                # The HTTP client itself refuses to send it (illegal header or URL): nothing reached
                # the API. Counted, so a suite where that is most examples shows up.
                known["unsent"] = known.get("unsent", 0) + 1
                return
            except httpx.HTTPError as exc:
                # A timeout or a dropped connection is the API failing to answer: a failure.
                if label not in failures:
                    failures[label] = f"no answer: {type(exc).__name__}: {exc}\n    body={raw!r:.300}"
                return
            problem = acceptable(r, documented)
            if problem and label not in failures:
                failures[label] = f"{problem}\n    body={raw!r:.300} query={query!r:.200}"

        fuzz_operation(op, EXAMPLES, counts, check_case)


def test_nul_bytes_in_arguments_are_4xx(api, clients, seeded_db_url):
    """A NUL byte anywhere a value reaches PostgreSQL: PostgreSQL's own 400, as PostgREST relays it —
    22P05 for a JSON string argument (POST body or GET query), 22021 for a query-string filter value —
    and nothing written."""
    fan = clients["fan"]
    before = table_counts(seeded_db_url)
    unicode_escape = {"code": "22P05", "message": "unsupported Unicode escape sequence",
                      "details": "\\u0000 cannot be converted to text.", "hint": None}
    bad_utf8 = {"code": "22021", "message": 'invalid byte sequence for encoding "UTF8": 0x00',
                "details": None, "hint": None}
    cases = {
        "rpc text arg": (fan.rpc("request_refund", {"p_order_id": str(uuid.uuid4()), "p_reason": "a\x00b"}),
                         unicode_escape),
        "rpc uuid arg": (fan.rpc("request_refund", {"p_order_id": "\x00", "p_reason": "x"}), unicode_escape),
        "rpc idempotency key": (fan.rpc("create_order", {"p_gacha_id": HOSHI_GACHA, "p_pull_count": 1,
                                                         "p_idempotency_key": "k\x00"}), unicode_escape),
        "rpc GET arg": (fan.http.get("/rest/v1/rpc/get_gacha", params={"p_gacha_id": "\x00"},
                                     headers=fan.headers()), unicode_escape),
        "view filter": (fan.http.get("/rest/v1/gachas", params={"title": "eq.a\x00b"}, headers=fan.headers()),
                        bad_utf8),
        "view in filter": (fan.http.get("/rest/v1/gachas", params={"title": "in.(a,\x00)"},
                                        headers=fan.headers()), bad_utf8),
        "rpc jsonb arg": (fan.rpc("update_gacha", {"p_gacha_id": HOSHI_GACHA, "p_patch": {"title": "a\x00"}}),
                          unicode_escape),
        "view PATCH filter": (fan.http.patch("/rest/v1/gachas", params={"id": "eq.\x00"}, json={"title": "x"},
                                             headers=fan.headers()), bad_utf8),
    }
    wrong = {}
    for label, (r, expected) in cases.items():
        if (r.status_code, r.json()) != (400, expected):
            wrong[label] = f"{r.status_code} {r.text[:200]}"
    assert wrong == {}
    assert table_counts(seeded_db_url) == before


def _strings():
    return st.one_of(st.none(), st.text(max_size=300), st.just(""), st.just("x" * 10_000),
                     st.sampled_from(["'; drop table app.orders; --", "💥" * 50, "null", "NaN", "\u202e", "a\x00b"]))


def _ints():
    return st.one_of(st.none(), st.integers(), st.integers(-(2 ** 70), 2 ** 70), st.sampled_from([0, -1, 1, 10]),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5), st.booleans())


def _uuids(*known: str):
    return st.one_of(st.none(), st.uuids().map(str), st.sampled_from([*known, str(uuid.UUID(int=0))]),
                     st.text(max_size=40), st.integers())


RPCS = {
    "create_order": lambda: st.fixed_dictionaries({}, optional={
        "p_gacha_id": _uuids(HOSHI_GACHA), "p_pull_count": _ints(), "p_idempotency_key": _strings()}),
    "exchange_medals": lambda: st.fixed_dictionaries({}, optional={
        "p_exchange_item_id": _uuids(HOSHI_EXCHANGE_UNLIMITED), "p_quantity": _ints(),
        "p_idempotency_key": _strings()}),
    "request_refund": lambda: st.fixed_dictionaries({}, optional={
        "p_order_id": _uuids(), "p_reason": _strings()}),
    "request_download": lambda: st.fixed_dictionaries({}, optional={"p_user_reward_id": _uuids()}),
    "set_client_seed": lambda: st.fixed_dictionaries({}, optional={"p_seed": _strings()}),
    "list_my_orders": lambda: st.fixed_dictionaries({}, optional={"p_limit": _ints(), "p_offset": _ints()}),
    "list_medal_ledger": lambda: st.fixed_dictionaries({}, optional={
        "p_vtuber_id": _uuids(), "p_limit": _ints(), "p_before_id": _ints()}),
    "update_my_profile": lambda: st.fixed_dictionaries({}, optional={
        "p_display_name": _strings(), "p_birth_date": st.one_of(_strings(), st.dates().map(str))}),
}

MONEY_TABLES = ("orders", "pulls", "medal_ledger", "medal_balances", "exchanges", "user_rewards", "refunds")


def money_counts(conn) -> dict[str, int]:
    row = conn.execute("select " + ", ".join(f"(select count(*) from app.{t})" for t in MONEY_TABLES)).fetchone()
    return dict(zip(MONEY_TABLES, row, strict=True))


@pytest.mark.parametrize("fn", sorted(RPCS))
def test_hypothesis_rpc_arguments(api, clients, seeded_db_url, fn):
    fan = clients["fan"]
    documented = documented_codes()
    failures: list[str] = []
    seen: dict[int, int] = {}

    @settings(max_examples=RPC_EXAMPLES, **FUZZ_PROFILE)
    @given(RPCS[fn](), st.sampled_from(["json", "raw"]))
    def run(args, mode):
        before = money_counts(conn) if fn in ("create_order", "exchange_medals", "request_refund") else None
        if mode == "json":
            r = fan.rpc(fn, args)
        else:  # the same object, but as text that JSON parsers may choke on
            r = fan.http.post(f"/rest/v1/rpc/{fn}", content=json.dumps(args, ensure_ascii=False).encode(
                "utf-8", "surrogatepass"), headers={**fan.headers(), "Content-Type": "application/json"})
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        problem = acceptable(r, documented)
        if problem:
            failures.append(f"{args!r:.300}: {problem}")
        if before is not None and r.status_code >= 400:
            after = money_counts(conn)
            changed = {t: (before[t], after[t]) for t in MONEY_TABLES if before[t] != after[t]}
            if changed:
                failures.append(f"{args!r:.300}: refused ({r.status_code}) but wrote {changed}")

    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        run()
    assert failures == [], "\n".join(failures[:10])
    assert sum(seen.values()) >= min(RPC_EXAMPLES, 50)


def test_no_partial_write_on_refusal_mid_transaction(api, clients, seeded_db_url):
    """A 10-pull refused after create_order has written: the order row is inserted, then the
    capacity counters are reserved one by one, and an item with 5 units left refuses the 10th pull
    (gacha_sold_out). Every write of that transaction is gone: no order, no reservation, no shard."""
    fan = clients["fan"]
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        item = str(conn.execute("select id from app.gacha_items where gacha_id = %s order by id limit 1",
                                (HOSHI_GACHA,)).fetchone()[0])
        # Published items are frozen by a trigger; the test's own setup goes around it.
        conn.execute("set session_replication_role = replica")
        conn.execute("update app.gacha_items set stock = 5 where id = %s", (item,))
    try:
        before = table_counts(seeded_db_url)
        r = fan.rpc("create_order", {"p_gacha_id": HOSHI_GACHA, "p_pull_count": 10,
                                     "p_idempotency_key": uuid.uuid4().hex})
        assert r.status_code == 409 and r.json()["message"] == "gacha_sold_out", r.text
        after = table_counts(seeded_db_url)
        assert {t: (before[t], after[t]) for t in before if after[t] != before[t]} == {}
        # The same order for one pull fits in the 5 units: the refusal above was the capacity, after
        # the insert, not the arguments.
        one = fan.rpc("create_order", {"p_gacha_id": HOSHI_GACHA, "p_pull_count": 1,
                                       "p_idempotency_key": uuid.uuid4().hex})
        assert one.status_code == 200, one.text
        with psycopg.connect(seeded_db_url) as conn:
            left = conn.execute("select sum(remaining) from app.stock_shards where counter_id = %s",
                                (item,)).fetchone()[0]
        assert left == 4
    finally:
        with psycopg.connect(seeded_db_url, autocommit=True) as conn:
            conn.execute("set session_replication_role = replica")
            conn.execute("update app.gacha_items set stock = null where id = %s", (item,))
            conn.execute("delete from app.stock_shards where counter_id = %s", (item,))
    r = fan.rpc("exchange_medals", {"p_exchange_item_id": HOSHI_EXCHANGE_UNLIMITED, "p_quantity": 10,
                                    "p_idempotency_key": uuid.uuid4().hex})
    assert r.status_code == 409 and r.json()["message"] == "insufficient_medals", r.text
