"""Raw HTTP against /rest/v1: tokens, error mapping, bad bodies, unknown names, injection."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import psycopg
import pytest

from koepon.localstack.api.errors import status_for
from koepon.settings import ANON_KEY, JWT_SECRET

NOW = int(time.time())


def _tok(claims: dict, key: str = JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def _unsigned(claims: dict) -> str:
    import base64
    import json

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


BAD_TOKENS = {
    "expired": (_tok({"role": "authenticated", "exp": NOW - 120}), "PGRST303"),
    "not_yet_valid": (_tok({"role": "authenticated", "nbf": NOW + 300, "exp": NOW + 900}), "PGRST303"),
    "issued_in_future": (_tok({"role": "authenticated", "iat": NOW + 300, "exp": NOW + 900}), "PGRST303"),
    "alg_none": (_unsigned({"role": "service_role", "exp": NOW + 900}), "PGRST301"),
    "hs384": (_tok({"role": "authenticated", "exp": NOW + 900}, alg="HS384"), "PGRST301"),
    "wrong_key": (_tok({"role": "authenticated", "exp": NOW + 900}, key="x" * 40), "PGRST301"),
    "service_role_wrong_key": (_tok({"role": "service_role", "exp": NOW + 900}, key="y" * 40), "PGRST301"),
    "garbage": ("not-a-jwt", "PGRST301"),
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_bad_tokens_get_401_with_pgrst_body(api_url, kind):
    token, code = BAD_TOKENS[kind]
    r = httpx.get(f"{api_url}/rest/v1/gachas", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["code"] == code and set(body) == {"code", "message", "details", "hint"}


def test_token_within_leeway_is_accepted(api_url):
    # The clock is read here, not at import: collection can take longer than the leeway.
    token = _tok({"role": "anon", "exp": int(time.time()) - 10})
    assert httpx.get(f"{api_url}/rest/v1/gachas", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_unknown_role_is_401(api_url):
    token = _tok({"role": "superuser_wannabe", "exp": NOW + 900})
    r = httpx.get(f"{api_url}/rest/v1/gachas", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["code"] == "22023"


H = {"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"}


def test_malformed_json_is_400_pgrst102(api_url):
    r = httpx.post(f"{api_url}/rest/v1/rpc/get_gacha", content=b"{not json", headers=H)
    assert r.status_code == 400 and r.json()["code"] == "PGRST102"


def test_wrong_argument_type_is_400_22p02(api_url):
    r = httpx.post(f"{api_url}/rest/v1/rpc/get_gacha", json={"p_gacha_id": "not-a-uuid"}, headers=H)
    assert r.status_code == 400 and r.json()["code"] == "22P02"


def test_oversized_body_is_413(api_url):
    r = httpx.post(f"{api_url}/rest/v1/rpc/get_gacha", content=b'{"p_gacha_id":"' + b"a" * (2 << 20) + b'"}',
                   headers={**H, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_unknown_function_and_view_are_404(api_url):
    r = httpx.post(f"{api_url}/rest/v1/rpc/no_such_function", json={}, headers=H)
    assert r.status_code == 404 and r.json()["code"] == "PGRST202"
    r = httpx.post(f"{api_url}/rest/v1/rpc/get_gacha", json={"p_wrong_name": 1}, headers=H)
    assert r.status_code == 404 and r.json()["code"] == "PGRST202"
    r = httpx.get(f"{api_url}/rest/v1/no_such_view", headers=H)
    assert r.status_code == 404 and r.json()["code"] == "PGRST205"


def test_anonymous_permission_error_is_401_and_signed_in_is_403(api_url):
    r = httpx.post(f"{api_url}/rest/v1/rpc/get_medal_balances", json={}, headers=H)
    assert r.status_code == 401 and r.json()["code"] == "42501"
    # A signed-in fan calling a function only the service role may execute: PostgREST's 403.
    signup = httpx.post(f"{api_url}/auth/v1/signup", headers=H,
                        json={"email": f"perm-{time.time_ns()}@example.com", "password": "long-enough-pw"})
    token = signup.json()["access_token"]
    r = httpx.post(f"{api_url}/rest/v1/rpc/service_prepare_payment", json={"p_order_id": str(uuid.uuid4())},
                   headers={**H, "Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["code"] == "42501", r.text


# (query key, value, expected status): a refusal is PostgREST's parse error; an accepted one
# treats the text as a literal value and matches nothing.
INJECTIONS = [
    ("select", 'id,title";drop table app.gachas;--', 400),
    ("order", "title;drop table app.gachas", 400),
    ("order", "title.desc,(select 1)", 400),
    ("limit", "1;drop table app.gachas", 400),
    ("offset", "0 or 1=1", 400),
    ('title"; drop table app.gachas; --', "eq.x", 400),
    ("title", "eq.x'); drop table app.gachas; --", 200),
    ("title", "in.(a,b');drop table app.gachas;--)", 200),
    ("or", "(title.eq.a,id.eq.b);drop table app.gachas", 400),
    ("select", "title::text);drop table app.gachas;--", 400),
]


@pytest.mark.parametrize("key,value,status", INJECTIONS)
def test_injection_through_the_query_string_never_reaches_sql(api_url, seeded_db_url, key, value, status):
    with psycopg.connect(seeded_db_url) as conn:
        before = conn.execute("select count(*) from app.gachas").fetchone()[0]
    r = httpx.get(f"{api_url}/rest/v1/gachas", params={key: value}, headers=H)
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json() == [], "the text is a literal that matches no gacha"
    else:
        assert r.json()["code"] == "PGRST100"
    with psycopg.connect(seeded_db_url) as conn:
        assert conn.execute("select count(*) from app.gachas").fetchone()[0] == before


def test_count_exact_sets_content_range_and_206(api_url):
    r = httpx.get(f"{api_url}/rest/v1/gachas", params={"select": "id", "limit": "1"},
                  headers={**H, "Prefer": "count=exact"})
    total = int(r.headers["Content-Range"].split("/")[1])
    assert r.headers["Content-Range"].startswith("0-0/")
    assert r.status_code == (206 if total > 1 else 200)


def test_object_accept_header_demands_exactly_one_row(api_url):
    r = httpx.get(f"{api_url}/rest/v1/gachas", headers={**H, "Accept": "application/vnd.pgrst.object+json"})
    assert r.status_code == 406 and r.json()["code"] == "PGRST116"


def test_cors_preflight_and_exposed_headers(api_url):
    r = httpx.options(f"{api_url}/rest/v1/gachas", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "apikey, content-type"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    r = httpx.get(f"{api_url}/rest/v1/gachas", headers={**H, "Origin": "http://localhost:3000"})
    assert "Content-Range" in r.headers["access-control-expose-headers"]


def test_openapi_describes_functions_with_comments(api_url):
    spec = httpx.get(f"{api_url}/rest/v1/").json()
    assert spec["openapi"].startswith("3.")
    post = spec["paths"]["/rpc/create_order"]["post"]
    assert post["description"] and "p_gacha_id" in post["requestBody"]["content"]["application/json"]["schema"][
        "properties"]


def test_schema_cache_reloads_on_notify(api_url, seeded_db_url):
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        conn.execute("create function public.koepon_reload_probe() returns int language sql as 'select 7'")
        conn.execute("grant execute on function public.koepon_reload_probe() to anon")
        conn.execute("notify pgrst, 'reload schema'")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = httpx.post(f"{api_url}/rest/v1/rpc/koepon_reload_probe", json={}, headers=H)
        if r.status_code == 200:
            break
        time.sleep(0.1)
    assert r.status_code == 200 and r.json() == 7
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        conn.execute("drop function public.koepon_reload_probe()")
        conn.execute("notify pgrst, 'reload schema'")


@pytest.mark.parametrize("sqlstate,anon,status", [
    ("P0001", False, 400), ("P0002", False, 500), ("42501", True, 401), ("42501", False, 403),
    ("23505", False, 409), ("23503", False, 409), ("23502", False, 400), ("25006", False, 405),
    ("42883", False, 404), ("42P01", False, 404), ("42P17", False, 500), ("08006", False, 503),
    ("53300", False, 503), ("53400", False, 500), ("57014", False, 500), ("40001", False, 500),
    ("28000", False, 403), ("22P02", False, 400), ("PT409", False, 409), ("PT429", True, 429),
])
def test_sqlstate_to_http_mapping_matches_postgrest(sqlstate, anon, status):
    assert status_for(sqlstate, anon) == status
