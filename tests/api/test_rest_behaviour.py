"""Raw HTTP against /rest/v1 over test-only objects (tests/api/sql/rest_fixture.sql).

Covers PostgREST's request lifecycle (GUCs, pre-request hook, read-only transactions), RPC
selection and result shapes, reads with every supported query-string feature, writes under RLS,
and every row of the SQLSTATE -> HTTP table, driven by a function that raises the SQLSTATE.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest
from psycopg import sql

from koepon.localstack.api.testing import running_api
from koepon.settings import ANON_KEY, JWT_SECRET, SERVICE_ROLE_KEY

FIXTURE = Path(__file__).with_name("sql") / "rest_fixture.sql"
ALICE = uuid.UUID("aaaaaaaa-0000-4000-8000-000000000001")
BOB = uuid.UUID("bbbbbbbb-0000-4000-8000-000000000002")


def user_token(uid: uuid.UUID) -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(uid), "role": "authenticated", "aud": "authenticated",
                       "iat": now, "exp": now + 600, "email": f"{uid}@example.com"},
                      JWT_SECRET, algorithm="HS256")


ANON = {"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"}
SERVICE = {"apikey": SERVICE_ROLE_KEY, "Authorization": f"Bearer {SERVICE_ROLE_KEY}"}
AS_ALICE = {"apikey": ANON_KEY, "Authorization": f"Bearer {user_token(ALICE)}"}
AS_BOB = {"apikey": ANON_KEY, "Authorization": f"Bearer {user_token(BOB)}"}


@pytest.fixture(scope="module")
def rest_db(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(FIXTURE.read_text())
        for uid in (ALICE, BOB):
            conn.execute("select tests.create_user(%s, '{}'::jsonb, %s)", (f"{uid}@example.com", uid))
        dbname = conn.info.dbname
        conn.execute(sql.SQL("alter role authenticator in database {} set pgrst.db_pre_request = "
                             "'public.test_pre_request'").format(sql.Identifier(dbname)))
    yield db_url
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("alter role authenticator in database {} reset pgrst.db_pre_request")
                     .format(sql.Identifier(dbname)))


@pytest.fixture(scope="module")
def api(rest_db):
    with running_api(rest_db) as url:
        with httpx.Client(base_url=f"{url}/rest/v1", timeout=10) as client:
            yield client


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message", "details", "hint"}, body
    assert body["code"] == code, body
    for key in ("details", "hint"):
        assert body[key] is None or isinstance(body[key], str)
    return body


# ---- request lifecycle ------------------------------------------------------------------

def test_transaction_variables_as_postgrest_sets_them(api):
    r = api.post("/rpc/test_context_volatile", json={},
                 headers={**AS_ALICE, "Cookie": "a=1; b=two", "X-Thing": "Value"})
    assert r.status_code == 200, r.text
    ctx = r.json()
    assert ctx["user"] == "authenticated"
    assert ctx["uid"] == str(ALICE)
    assert ctx["claims"]["role"] == "authenticated" and ctx["claims"]["sub"] == str(ALICE)
    assert ctx["method"] == "POST" and ctx["path"] == "/rpc/test_context_volatile"
    assert ctx["headers"]["x-thing"] == "Value" and "cookie" not in ctx["headers"]
    assert ctx["cookies"] == {"a": "1", "b": "two"}
    assert ctx["read_only"] == "off"
    assert ctx["statement_timeout"] == "8s"  # authenticated's own ALTER ROLE setting
    assert ctx["search_path"] == "public, extensions"
    assert ctx["pre_request_ran"] == "yes"


def test_anonymous_claims_get_the_role_filled_in(api):
    r = api.get("/rpc/test_context")
    assert r.status_code == 200, r.text
    ctx = r.json()
    assert ctx["user"] == "anon" and ctx["claims"] == {"role": "anon"}
    assert ctx["statement_timeout"] == "3s"
    assert ctx["method"] == "GET"


def test_get_and_stable_rpc_run_read_only(api):
    assert api.get("/rpc/test_context", headers=ANON).json()["read_only"] == "on"
    assert api.post("/rpc/test_context", json={}, headers=ANON).json()["read_only"] == "on"
    assert api.post("/rpc/test_context_volatile", json={}, headers=ANON).json()["read_only"] == "off"


def test_get_on_a_writing_function_is_405_read_only(api):
    body = assert_error(api.get("/rpc/test_bump", headers=ANON), 405, "25006")
    assert "read-only" in body["message"]
    assert api.post("/rpc/test_bump", json={}, headers=ANON).status_code == 200


def test_pre_request_hook_can_refuse(api):
    body = assert_error(api.post("/rpc/test_add", json={"a": 1, "b": 2},
                                 headers={**ANON, "X-Block-Me": "yes"}), 429, "PT429")
    assert body["message"] == "rate_limited" and body["details"] == "blocked by the pre-request hook"


def test_response_status_and_headers_gucs(api):
    r = api.post("/rpc/test_respond", json={}, headers=ANON)
    assert r.status_code == 202, r.text
    assert r.headers["x-custom"] == "yes" and r.headers["cache-control"] == "no-store"


def test_a_single_row_rpc_runs_postgrest_s_five_statements(api, rest_db):
    """begin, the settings, the pre-request hook, the call (which reads response.status and
    response.headers itself, as PostgREST's main query does) and commit: no sixth statement for
    the response GUCs."""
    from koepon.db import platform_base
    from koepon.settings import superuser_url

    n = 7
    with psycopg.connect(superuser_url(rest_db), autocommit=True) as su:
        platform_base.ensure_extension(su, "pg_stat_statements")
        dbid = su.execute("select oid from pg_database where datname = current_database()").fetchone()[0]
        su.execute("select pg_stat_statements_reset(0, %s, 0)", (dbid,))
        for _ in range(n):
            r = api.post("/rpc/test_respond", json={}, headers=AS_ALICE)
            assert r.status_code == 202 and r.headers["x-custom"] == "yes", r.text
        rows = su.execute("select regexp_replace(query, '\\s+', ' ', 'g') from pg_stat_statements "
                          "where dbid = %s and toplevel and calls = %s order by query", (dbid, n)).fetchall()
    queries = [q for (q,) in rows]
    assert len(queries) == 5, queries
    assert {"begin", "commit"} <= {q.lower() for q in queries}, queries
    call = next(q for q in queries if '"test_respond"(' in q)
    assert "current_setting" in call, call
    assert any("set_config" in q for q in queries) and any("test_pre_request" in q for q in queries), queries


# ---- RPC selection and shapes -----------------------------------------------------------

def test_argument_names_pick_the_overload(api):
    assert api.post("/rpc/test_add", json={"a": 1, "b": 2}, headers=ANON).json() == 3
    assert api.post("/rpc/test_add", json={"a": 1, "b": 2, "c": 3}, headers=ANON).json() == 6
    body = assert_error(api.post("/rpc/test_add", json={"a": 1}, headers=ANON), 404, "PGRST202")
    assert body["message"] == "Could not find the function public.test_add(a) in the schema cache"
    assert_error(api.post("/rpc/test_add", json={"a": 1, "b": 2, "zz": 3}, headers=ANON), 404, "PGRST202")


def test_defaults_may_be_omitted_and_get_passes_arguments(api):
    assert api.post("/rpc/test_greet", json={}, headers=ANON).json() == "hello world"
    assert api.get("/rpc/test_greet", params={"name": "koepon"}, headers=ANON).json() == "hello koepon"
    assert api.get("/rpc/test_add", params={"a": "2", "b": "5"}, headers=ANON).json() == 7


def test_single_unnamed_json_parameter_gets_the_whole_body(api):
    doc = {"anything": [1, 2, {"x": None}], "p": "q"}
    assert api.post("/rpc/test_echo", json=doc, headers=ANON).json() == doc
    # a single *named* json parameter is called by name like any other
    assert api.post("/rpc/test_named_json", json={"data": {"k": 1}}, headers=ANON).json() == {"got": {"k": 1}}
    assert_error(api.post("/rpc/test_named_json", json={"k": 1}, headers=ANON), 404, "PGRST202")


def test_json_result_is_sent_as_the_function_wrote_it(api):
    # PostgREST selects coalesce(json_agg(pgrst_scalar)->0, 'null'): a json value's own text, not
    # parsed into jsonb (which would sort the keys, drop the repeated one and respace it).
    for r in (api.post("/rpc/test_json_text", json={}, headers=ANON), api.get("/rpc/test_json_text", headers=ANON)):
        assert r.status_code == 200
        assert r.content == b'{"z": 1, "a" : [1,2],  "z": 2}'


def test_result_shapes(api):
    r = api.post("/rpc/test_nothing", json={}, headers=ANON)
    assert r.status_code == 204 and r.content == b""
    assert api.post("/rpc/test_pair", json={"x": 4}, headers=ANON).json() == {"doubled": 8, "squared": 16}
    assert api.post("/rpc/test_series", json={"n": 3}, headers=ANON).json() == [1, 2, 3]
    assert api.post("/rpc/test_series", json={"n": 0}, headers=ANON).json() == []
    assert api.post("/rpc/test_rows", json={"n": 2}, headers=ANON).json() == [
        {"i": 1, "label": "row 1"}, {"i": 2, "label": "row 2"}]
    assert api.post("/rpc/test_null", json={}, headers=ANON).json() is None
    assert api.post("/rpc/test_ids", json={"ids": [1, 2, 3]}, headers=ANON).json() == 6


def test_filters_order_and_limit_apply_to_set_returning_functions(api):
    r = api.post("/rpc/test_rows", json={"n": 10}, params={"i": "gt.5", "order": "i.desc", "limit": "2",
                                                           "select": "i"}, headers=ANON)
    assert r.json() == [{"i": 10}, {"i": 9}]
    r = api.post("/rpc/test_rows", json={"n": 3}, params={"i": "eq.2"},
                 headers={**ANON, "Accept": "application/vnd.pgrst.object+json"})
    assert r.json() == {"i": 2, "label": "row 2"}


def test_wrong_argument_type_and_bad_bodies(api):
    assert_error(api.post("/rpc/test_add", json={"a": "one", "b": 2}, headers=ANON), 400, "22P02")
    assert_error(api.get("/rpc/test_add", params={"a": "x", "b": "1"}, headers=ANON), 400, "22P02")
    assert_error(api.post("/rpc/test_add", content=b'{"a": 1,', headers={**ANON, "Content-Type": "application/json"}),
                 400, "PGRST102")
    r = api.post("/rpc/test_add", content=b"x" * (1024 * 1024 + 1),
                 headers={**ANON, "Content-Type": "application/json"})
    assert r.status_code == 413


# ---- error mapping over HTTP ---------------------------------------------------------------

MAPPING = [
    ("P0001", 400), ("P0002", 500), ("23505", 409), ("23503", 409), ("23502", 400), ("23514", 400),
    ("25006", 405), ("42883", 404), ("42P01", 404), ("42P17", 500), ("22023", 400), ("08006", 503),
    ("53100", 503), ("53400", 500), ("57014", 500), ("40001", 500), ("25P02", 500), ("2D000", 500),
    ("3B000", 500), ("38000", 500), ("39000", 500), ("XX000", 500), ("F0000", 500), ("HV000", 500),
    ("54000", 500), ("55000", 500), ("58000", 500), ("0L000", 403), ("0P000", 403), ("28000", 403),
    ("21000", 500), ("22P02", 400), ("22012", 400), ("PT402", 402), ("PT409", 409), ("PT422", 422),
]


@pytest.mark.parametrize("sqlstate,status", MAPPING)
def test_sqlstate_maps_to_http_status_over_http(api, sqlstate, status):
    body = assert_error(api.post("/rpc/test_raise", json={"p_code": sqlstate}, headers=AS_ALICE),
                        status, sqlstate)
    assert body["message"] == f"raised_{sqlstate}"
    assert body["details"] == f"detail for {sqlstate}" and body["hint"] == f"hint for {sqlstate}"


def test_insufficient_privilege_is_401_for_anon_and_403_for_users(api):
    r = api.post("/rpc/test_raise", json={"p_code": "42501"}, headers=ANON)
    assert_error(r, 401, "42501")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_error(api.post("/rpc/test_raise", json={"p_code": "42501"}, headers=AS_ALICE), 403, "42501")
    # a real missing privilege: anon may not read the notes view
    assert_error(api.get("/test_notes", headers=ANON), 401, "42501")


def test_raise_sqlstate_pgrst_controls_status_headers_and_body(api):
    r = api.post("/rpc/test_raise", json={"p_code": "PGRST"}, headers=ANON)
    assert r.status_code == 418 and r.headers["x-tea"] == "pot"
    assert r.json() == {"code": "X123", "message": "custom_refusal", "details": "the details", "hint": "a hint"}
    assert_error(api.post("/rpc/test_raise", json={"p_code": "PGRST-bad"}, headers=ANON), 500, "PGRST121")


def test_real_constraint_violations(api):
    assert api.post("/rpc/test_unique", json={"p_tag": "once"}, headers=ANON).status_code == 204
    assert_error(api.post("/rpc/test_unique", json={"p_tag": "once"}, headers=ANON), 409, "23505")


# ---- reads --------------------------------------------------------------------------------

def ns(r: httpx.Response) -> list[int]:
    assert r.status_code in (200, 206), r.text
    return [row["n"] for row in r.json()]


def test_filters(api):
    g = lambda **p: ns(api.get("/test_numbers", params={"select": "n", **p}, headers=ANON))  # noqa: E731
    assert g(n="eq.3") == [3]
    assert g(n="lt.3") == [1, 2]
    assert g(n="gte.19") == [19, 20]
    assert g(n="in.(2,4,6)") == [2, 4, 6]
    assert g(n="not.in.(2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19)") == [1, 20]
    assert g(r5="is.null") == [5, 10, 15, 20]
    assert g(fizz="is.true", n="lte.9") == [3, 6, 9]
    assert g(parity="like.ev*", n="lt.5") == [2, 4]
    assert g(parity="ilike.*DD", n="lt.5") == [1, 3]
    assert g(n="neq.1", **{"or": "(n.eq.1,n.eq.2,and(n.gt.18,fizz.is.false))"}) == [2, 19, 20]
    assert g(**{"and": "(n.gt.3,n.lt.6)"}) == [4, 5]
    assert g(**{"not.or": "(n.gt.2,n.lt.2)"}) == [2]


def test_select_aliases_casts_order_limit_offset_range(api):
    r = api.get("/test_numbers", params={"select": "num:n,p:parity,n::text", "order": "n.desc", "limit": "2",
                                          "offset": "1"}, headers=ANON)
    assert r.json() == [{"num": 19, "p": "odd", "n": "19"}, {"num": 18, "p": "even", "n": "18"}]
    assert r.headers["content-range"] == "1-2/*"
    r = api.get("/test_numbers", params={"select": "n", "order": "r5.desc.nullsfirst,n.asc"},
                headers={**ANON, "Range": "0-4"})
    assert ns(r) == [5, 10, 15, 20, 4]
    assert r.headers["content-range"] == "0-4/*"


def test_counts_and_content_range(api):
    r = api.get("/test_numbers", params={"select": "n", "limit": "5"}, headers={**ANON, "Prefer": "count=exact"})
    assert r.status_code == 206 and r.headers["content-range"] == "0-4/20"
    r = api.get("/test_numbers", params={"select": "n", "n": "gt.100"}, headers={**ANON, "Prefer": "count=exact"})
    assert r.status_code == 200 and r.json() == [] and r.headers["content-range"] == "*/0"
    r = api.get("/test_numbers", params={"select": "n"}, headers={**ANON, "Prefer": "count=exact"})
    assert r.status_code == 200 and r.headers["content-range"] == "0-19/20"
    assert_error(api.get("/test_numbers", params={"offset": "50"}, headers={**ANON, "Prefer": "count=exact"}),
                 416, "PGRST103")


def test_singular_object(api):
    r = api.get("/test_numbers", params={"n": "eq.7"},
                headers={**ANON, "Accept": "application/vnd.pgrst.object+json"})
    assert r.json() == {"n": 7, "fizz": False, "parity": "odd", "r5": 2, "data": {"sq": 49}}
    body = assert_error(api.get("/test_numbers", params={"n": "lt.3"},
                                headers={**ANON, "Accept": "application/vnd.pgrst.object+json"}), 406, "PGRST116")
    assert body["details"] == "The result contains 2 rows"


def test_bad_query_strings_are_400(api):
    assert_error(api.get("/test_numbers", params={"n": "zz.3"}, headers=ANON), 400, "PGRST100")
    assert_error(api.get("/test_numbers", params={"limit": "-1"}, headers=ANON), 400, "PGRST100")
    assert_error(api.get("/test_numbers", params={"n": "eq.abc"}, headers=ANON), 400, "22P02")
    assert api.get("/test_numbers", params={"nope": "eq.1"}, headers=ANON).status_code == 400
    assert_error(api.get("/test_nowhere", headers=ANON), 404, "PGRST205")


INJECTIONS = [
    ("select", 'n,parity";drop table app.test_notes;--'),
    ("select", "n::text);drop table app.test_notes;--"),
    ("select", "x:n) from app.test_notes;--"),
    ("order", "n;drop table app.test_notes"),
    ("order", "n.desc,(select 1)"),
    ("order", "n.desc;drop"),
    ("limit", "1;drop table app.test_notes"),
    ("offset", "0 or 1=1"),
    ('n"; drop table app.test_notes; --', "eq.1"),
    ("n", "eq.1); drop table app.test_notes; --"),
    ("parity", "eq.x' or '1'='1"),
    ("n", "in.(1,2');drop table app.test_notes;--)"),
    ("or", "(n.eq.1,n.eq.2);drop table app.test_notes"),
    ("or", "(n.eq.1,n); drop table app.test_notes;--.eq.2)"),
    ("parity", "is.null; drop table app.test_notes"),
]


@pytest.mark.parametrize("key,value", INJECTIONS)
def test_injection_never_reaches_sql(api, rest_db, key, value):
    r = api.get("/test_numbers", params={key: value}, headers=ANON)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        # the value was a value: it matched nothing or was compared as data
        assert isinstance(r.json(), list)
    with psycopg.connect(rest_db) as conn:
        assert conn.execute("select to_regclass('app.test_notes') is not null").fetchone()[0]


def test_injection_through_function_and_relation_names(api, rest_db):
    for path in ('/rpc/test_add";drop table app.test_notes;--', "/test_numbers;drop table app.test_notes",
                 '/test_numbers"x'):
        assert api.post(path, json={"a": 1, "b": 2}, headers=ANON).status_code in (404, 405)
    with psycopg.connect(rest_db) as conn:
        assert conn.execute("select to_regclass('app.test_notes') is not null").fetchone()[0]


# ---- writes under RLS ---------------------------------------------------------------------

def test_insert_update_delete_with_representation_under_rls(api):
    rep = {"Prefer": "return=representation"}
    r = api.post("/test_notes", json={"body": "alice's", "tag": "a1"}, headers={**AS_ALICE, **rep})
    assert r.status_code == 201, r.text
    [note] = r.json()
    assert note["owner"] == str(ALICE) and note["body"] == "alice's"
    r = api.post("/test_notes", json=[{"body": "b1", "tag": "b1"}, {"body": "b2", "tag": "b2"}], headers=AS_BOB)
    assert r.status_code == 201 and r.content == b""
    # RLS: each sees only their own rows
    assert [n["tag"] for n in api.get("/test_notes", params={"order": "tag"}, headers=AS_BOB).json()] == ["b1", "b2"]
    assert [n["tag"] for n in api.get("/test_notes", headers=AS_ALICE).json()] == ["a1"]
    # Bob cannot update or delete Alice's note: zero rows affected
    r = api.patch("/test_notes", params={"id": f"eq.{note['id']}"}, json={"body": "hacked"},
                  headers={**AS_BOB, **rep})
    assert r.status_code == 200 and r.json() == []
    r = api.delete("/test_notes", params={"id": f"eq.{note['id']}"}, headers={**AS_BOB, **rep})
    assert r.status_code == 200 and r.json() == []
    # WITH CHECK: Bob cannot insert a row owned by Alice -> 42501 (403 signed in)
    assert_error(api.post("/test_notes", json={"body": "forged", "owner": str(ALICE)}, headers=AS_BOB),
                 403, "42501")
    # Alice can
    r = api.patch("/test_notes", params={"id": f"eq.{note['id']}"}, json={"body": "edited"},
                  headers={**AS_ALICE, **rep})
    assert r.status_code == 200 and r.json()[0]["body"] == "edited"
    assert r.headers["content-range"] == "0-0/*"
    r = api.patch("/test_notes", params={"tag": "eq.a1"}, json={"body": "minimal"}, headers=AS_ALICE)
    assert r.status_code == 204
    # constraint errors
    assert_error(api.post("/test_notes", json={"body": "dup", "tag": "a1"}, headers=AS_ALICE), 409, "23505")
    assert_error(api.post("/test_notes", json={"body": "x" * 200}, headers=AS_ALICE), 400, "23514")
    assert_error(api.post("/test_notes", json={"body": "orphan", "parent": 999999}, headers=AS_ALICE), 409, "23503")
    assert_error(api.post("/test_notes", json={"tag": "nobody"}, headers=AS_ALICE), 400, "23502")
    assert_error(api.post("/test_notes", json={"nonexistent": 1}, headers=AS_ALICE), 400, "PGRST204")
    r = api.delete("/test_notes", params={"id": f"eq.{note['id']}"}, headers=AS_ALICE)
    assert r.status_code == 204
    assert api.get("/test_notes", headers=AS_ALICE).json() == []


def test_singular_write_that_matches_several_rows_rolls_back(api):
    api.post("/test_notes", json=[{"body": "s1"}, {"body": "s2"}], headers=AS_ALICE)
    r = api.patch("/test_notes", params={"body": "like.s*"}, json={"body": "changed"},
                  headers={**AS_ALICE, "Prefer": "return=representation",
                           "Accept": "application/vnd.pgrst.object+json"})
    assert_error(r, 406, "PGRST116")
    bodies = sorted(n["body"] for n in api.get("/test_notes", params={"body": "like.s*"}, headers=AS_ALICE).json())
    assert bodies == ["s1", "s2"]


def test_service_role_bypasses_rls(api):
    rows = api.get("/test_notes", headers=SERVICE).json()
    assert {r["owner"] for r in rows} >= {str(ALICE), str(BOB)}


def test_openapi_from_the_schema_cache(api):
    spec = api.get("/").json()
    assert spec["openapi"].startswith("3.")
    add = spec["paths"]["/rpc/test_add"]["post"]
    assert "Adds two integers" in (add.get("description") or add.get("summary"))
    assert "/test_numbers" in spec["paths"]
