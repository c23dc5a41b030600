"""Functions as RPC read like tables, and PostgREST's response headers.

Pages: docs.postgrest.org "Functions as RPC", "Pagination and Count", "Prefer Header",
"Errors"; facts from PostgREST's test/spec/Feature/Query/RpcSpec.hs, QuerySpec.hs, RangeSpec.hs.
"""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from conformance import ANON, install

from koepon.localstack.api.testing import running_api
from koepon.settings import ANON_KEY, JWT_SECRET


@pytest.fixture(scope="module")
def base(seeded_db_url):
    install(seeded_db_url)
    with running_api(seeded_db_url) as url:
        yield url


@pytest.fixture(scope="module")
def api(base):
    with httpx.Client(base_url=f"{base}/rest/v1", headers=ANON, timeout=10) as client:
        yield client


# -- RpcSpec.hs --------------------------------------------------------------------------------

def test_filters_select_and_limits_apply_to_function_rows(api):
    for r in (api.post("/rpc/getallprojects?id=gt.1&id=lt.5&select=id", json={}),
              api.get("/rpc/getallprojects?id=gt.1&id=lt.5&select=id")):
        assert (r.status_code, r.json()) == (200, [{"id": 2}, {"id": 3}, {"id": 4}])
    r = api.get("/rpc/getallprojects?id=gt.1&id=lt.5&select=id&limit=2&offset=1")
    assert (r.status_code, r.json(), r.headers["content-range"]) == (200, [{"id": 3}, {"id": 4}], "1-2/*")
    r = api.get("/rpc/getallprojects?select=id,client_id&or=(name.like.OSX,name.like.IOS)&order=id")
    assert r.json() == [{"id": 3, "client_id": 2}, {"id": 4, "client_id": 2}]


def test_count_and_embedding_on_function_rows(api):
    r = api.head("/rpc/getallprojects", headers={"Prefer": "count=exact"})
    assert (r.status_code, r.headers["content-range"]) == (200, "0-4/5")
    r = api.head("/rpc/getallprojects?select=*,clients!inner(*)&clients.id=eq.1", headers={"Prefer": "count=exact"})
    assert (r.status_code, r.headers["content-range"]) == (200, "0-1/2")
    assert r.headers["preference-applied"] == "count=exact"
    r = api.get("/rpc/getallprojects?select=id,clients(id)&order=id")
    assert r.json() == [{"id": 1, "clients": {"id": 1}}, {"id": 2, "clients": {"id": 1}},
                        {"id": 3, "clients": {"id": 2}}, {"id": 4, "clients": {"id": 2}},
                        {"id": 5, "clients": None}]


def test_other_methods_on_rpc_are_405_pgrst101(api):
    for method in ("PATCH", "PUT", "DELETE"):
        r = api.request(method, "/rpc/getallprojects")
        assert (r.status_code, r.json()) == (405, {"message": f"Cannot use the {method} method on RPC",
                                                   "code": "PGRST101", "details": None, "hint": None})


# -- headers --------------------------------------------------------------------------------------

def test_count_is_echoed_in_preference_applied(api):
    r = api.get("/projects?select=id&limit=2", headers={"Prefer": "count=exact"})
    assert (r.status_code, r.headers["content-range"], r.headers["preference-applied"]) == (206, "0-1/5",
                                                                                             "count=exact")
    assert "preference-applied" not in api.get("/projects").headers


def test_offset_past_the_end_is_416_with_the_total(api):
    # QuerySpec / RangeSpec: "Content-Range: */<total>" on the 416
    r = api.get("/projects?offset=100", headers={"Prefer": "count=exact"})
    assert r.status_code == 416
    assert r.headers["content-range"] == "*/5"
    assert r.json() == {"code": "PGRST103", "hint": None, "message": "Requested range not satisfiable",
                        "details": "An offset of 100 was requested, but there are only 5 rows."}


@pytest.mark.parametrize("path", ["/rest/v1/", "/rest/v1"])
def test_bad_token_on_the_root_path_is_401(base, path):
    forged = jwt.encode({"role": "anon", "exp": int(time.time()) + 60}, "not-the-secret", algorithm="HS256")
    expired = jwt.encode({"role": "anon", "exp": int(time.time()) - 3600}, JWT_SECRET, algorithm="HS256")
    for tok, code in ((forged, "PGRST301"), (expired, "PGRST303")):
        r = httpx.get(base + path, headers={"apikey": ANON_KEY, "Authorization": f"Bearer {tok}"})
        assert (r.status_code, r.json()["code"]) == (401, code)
    assert httpx.get(base + path, headers=ANON).status_code == 200
