"""Filters, operators, JSON paths, representations and schema profiles, as PostgREST answers them.

Pages: docs.postgrest.org "Tables and Views" (operators, JSON columns, ordering), "Resource
Representation", "Schemas"; facts from PostgREST's test/spec/Feature/Query/QuerySpec.hs,
JsonOperatorSpec.hs and MultipleSchemaSpec.hs over the same fixture rows.
"""

from __future__ import annotations

from conformance import get


def ids(api, path):
    status, body = get(api, path)
    assert status == 200, body
    return [r["id"] for r in body]


# -- operators (QuerySpec.hs "Filtering response") -------------------------------------------------

def test_array_containment(api):
    assert ids(api, "/complex_items?select=id&arr_data=cs.{2}&order=id") == [2, 3]
    assert ids(api, "/complex_items?select=id&arr_data=cd.{1,2,4}&order=id") == [1, 2]
    assert ids(api, "/complex_items?select=id&arr_data=ov.{3,9}&order=id") == [3]


def test_jsonb_containment(api):
    assert ids(api, '/complex_items?select=id&settings=cs.{"foo":{"int":1}}&order=id') == [1, 2, 3]
    assert ids(api, '/complex_items?select=id&settings=cs.{"foo":{"int":2}}') == []


def test_range_operators(api):
    # PostgreSQL's range operators under PostgREST's names (docs: Operators table)
    assert ids(api, "/ranges?select=id&range=sl.[6,7]&order=id") == [1]          # <<
    assert ids(api, "/ranges?select=id&range=sr.[6,7]&order=id") == [4]          # >>
    assert ids(api, "/ranges?select=id&range=nxr.[3,6]&order=id") == [1, 2]      # &<
    assert ids(api, "/ranges?select=id&range=nxl.[3,6]&order=id") == [2, 3, 4]   # &>
    assert ids(api, "/ranges?select=id&range=adj.(12,15)&order=id") == [4]       # -|-
    assert ids(api, "/ranges?select=id&range=ov.[5,7]&order=id") == [2, 3]       # &&


def test_full_text_search_family(api):
    vec = "text_search_vector"
    assert get(api, f"/tsearch?{vec}=fts.impossible")[1] == [{vec: "'fun':5 'imposs':9 'kind':3"}]
    assert get(api, f"/tsearch?{vec}=fts.fun%26possible")[1] == [{vec: "'also':2 'fun':3 'possibl':8"}]
    assert get(api, f"/tsearch?{vec}=plfts.The%20Fat%20Rats")[1] == [{vec: "'ate':3 'cat':2 'fat':1 'rat':4"}]
    assert get(api, f"/tsearch?{vec}=wfts.The%20Fat%20Rats")[1] == [{vec: "'ate':3 'cat':2 'fat':1 'rat':4"}]
    assert get(api, f"/tsearch?{vec}=phfts.The%20Fat%20Cats")[1] == [{vec: "'ate':3 'cat':2 'fat':1 'rat':4"}]
    assert get(api, f"/tsearch?{vec}=fts(french).amusant")[1] == [
        {vec: "'amus':5 'fair':7 'impossibl':9 'peu':4"}]
    assert len(get(api, f"/tsearch?{vec}=not.fts.impossible%7Cfat%7Cfun")[1]) == 2
    # a text column: PostgREST applies to_tsvector() itself
    assert get(api, "/tsearch_to_tsvector?select=text_search&text_search=fts.impossible")[1] == [
        {"text_search": "It's kind of fun to do the impossible"}]


def test_is_distinct_and_is_unknown(api):
    assert get(api, "/no_pk?select=a&a=isdistinct.2") == (200, [{"a": None}, {"a": "1"}])
    assert get(api, "/no_pk?select=a&a=not.isdistinct.2") == (200, [{"a": "2"}])
    assert get(api, "/complex_items?select=id&field_with_space=is.unknown&id=eq.1") == (400, {
        "code": "42804", "details": None, "hint": None,
        "message": "argument of IS UNKNOWN must be type boolean, not type text"})


def test_any_all_modifiers(api):
    # QuerySpec.hs "any/all quantifiers"
    assert ids(api, "/projects?id=eq(any).{3,4,5}&order=id") == [3, 4, 5]
    assert ids(api, "/projects?id=gt(all).{4,3}") == [5]
    assert ids(api, "/projects?id=lte(all).{4,3}&order=id") == [1, 2, 3]
    assert ids(api, "/articles?body=like(any).{%plan%,%brain%}&select=id&order=id") == [1, 2]
    assert ids(api, "/articles?body=ilike(all).{%plan%,%greatness%}&select=id") == [1]
    assert ids(api, "/articles?body=match(any).{stop,thing}&select=id") == [1]
    assert ids(api, "/articles?body=imatch(any).{stop,thing}&select=id&order=id") == [1, 2]


def test_match_and_in_with_quotes(api):
    assert ids(api, "/articles?body=match.^Stop&select=id") == [2]
    assert ids(api, '/projects?name=in.("Windows 7",IOS)&order=id') == [1, 3]
    assert ids(api, "/projects?id=in.()") == []


def test_unknown_operator_is_pgrst100(api):
    status, body = get(api, "/projects?id=foo.1")
    assert (status, body["code"]) == (400, "PGRST100")


# -- JSON paths (JsonOperatorSpec.hs) ----------------------------------------------------------------

def test_json_paths_in_select(api):
    assert get(api, "/complex_items?id=eq.1&select=settings->>foo::json")[1] == [{"foo": {"int": 1, "bar": "baz"}}]
    assert get(api, "/complex_items?id=eq.1&select=myBar:settings->foo->>bar")[1] == [{"myBar": "baz"}]
    assert get(api, "/complex_items?id=eq.1&select=settings->foo->>int::integer")[1] == [{"int": 1}]
    assert get(api, "/json_arr?select=data->>0::int&id=in.(1,2)&order=id")[1] == [{"data": 1}, {"data": 4}]
    assert get(api, "/json_arr?select=data->0->>1::int&id=in.(3,4)&order=id")[1] == [{"data": 8}, {"data": 7}]
    assert get(api, "/json_arr?select=data->c->0->d&id=eq.8")[1] == [{"d": [4, 5, 6, 7, 8]}]
    assert get(api, "/json_arr?select=data->0->0xy1->1->23-xy-45->1->xy-6->>0::int&id=eq.9")[1] == [{"xy-6": 3}]
    # arrays go through to_jsonb()
    assert get(api, "/complex_items?select=a:arr_data->0,b:arr_data->>1&id=eq.3")[1] == [{"a": 1, "b": "2"}]


def test_json_path_errors_come_from_postgresql(api):
    status, body = get(api, "/json_arr?select=data->>c->1")
    assert (status, body["code"], body["message"]) == (404, "42883", "operator does not exist: text -> integer")


def test_json_paths_in_filters_and_order(api):
    assert get(api, "/json_arr?select=data&data->>0=eq.1")[1] == [{"data": [1, 2, 3]}]
    assert get(api, "/json_arr?select=data&data->1->>2=eq.13")[1] == [{"data": [[9, 8, 7], [11, 12, 13]]}]
    assert ids(api, "/json_arr?select=id&or=(data->>0.eq.1,data->>0.eq.4)&order=id") == [1, 2]
    assert ids(api, "/json_arr?select=id&id=in.(1,2)&order=data->>0.desc") == [2, 1]


# -- representations (QuerySpec.hs "Accept headers", docs: Resource Representation) ----------------

def test_unknown_accept_is_406_pgrst107(api):
    r = api.get("/projects", headers={"Accept": "text/unknowntype"})
    assert r.status_code == 406
    assert r.json() == {"message": "None of these media types are available: text/unknowntype",
                        "code": "PGRST107", "details": None, "hint": None}


def test_accept_negotiation(api):
    assert api.get("/projects", headers={"Accept": "*/*"}).status_code == 200
    assert api.get("/projects", headers={"Accept": "text/unknowntype, */*"}).status_code == 200
    r = api.get("/projects", headers={"Accept": "text/csv, */*"})
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    r = api.get("/projects", headers={"Accept": "text/csv, application/json"})
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert api.get("/projects", headers={"Accept": "text/unknowntype, text/csv"}).status_code == 200
    assert api.get("/projects").headers["content-type"] == "application/json; charset=utf-8"


def test_csv(api):
    r = api.get("/projects?select=id,name,client_id&id=in.(1,5)&order=id", headers={"Accept": "text/csv"})
    assert (r.status_code, r.text) == (200, 'id,name,client_id\n1,"Windows 7",1\n5,Orphan,')
    r = api.get("/projects?id=eq.99", headers={"Accept": "text/csv"})
    assert (r.status_code, r.text) == (200, "\n")


def test_singular_media_type(api):
    r = api.get("/projects?id=eq.1", headers={"Accept": "application/vnd.pgrst.object+json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.pgrst.object+json; charset=utf-8"
    assert r.json() == {"id": 1, "name": "Windows 7", "client_id": 1}
    r = api.get("/projects", headers={"Accept": "application/vnd.pgrst.object+json"})
    assert (r.status_code, r.json()["code"]) == (406, "PGRST116")


def test_nulls_stripped(api):
    r = api.get("/projects?id=eq.5", headers={"Accept": "application/vnd.pgrst.array+json;nulls=stripped"})
    assert r.json() == [{"id": 5, "name": "Orphan"}]
    assert r.headers["content-type"] == "application/vnd.pgrst.array+json;nulls=stripped; charset=utf-8"


# -- schema profiles (MultipleSchemaSpec.hs, docs: Schemas) -----------------------------------------

def test_accept_profile_switches_schema(api):
    r = api.get("/parents?order=id", headers={"Accept-Profile": "v2"})
    assert r.status_code == 200
    assert r.json() == [{"id": 1, "name": "parent v2-1"}, {"id": 2, "name": "parent v2-2"}]
    assert r.headers["content-profile"] == "v2"
    assert api.get("/projects").headers["content-profile"] == "public"
    r = api.get("/parents")
    assert (r.status_code, r.json()["code"]) == (404, "PGRST205")


def test_unexposed_profile_is_406_pgrst106(api):
    r = api.get("/parents", headers={"Accept-Profile": "app"})
    assert r.status_code == 406
    assert r.json() == {"code": "PGRST106", "details": None, "message": "Invalid schema: app",
                        "hint": "Only the following schemas are exposed: public, v2"}
    r = api.post("/parents", json={"id": 3}, headers={"Content-Profile": "private"})
    assert (r.status_code, r.json()["code"]) == (406, "PGRST106")
