"""Writes and the Prefer header, as PostgREST answers them.

Pages: docs.postgrest.org "Tables and Views" (Insert, Upsert, PUT, Update, Delete), "Prefer
Header"; facts from PostgREST's test/spec/Feature/Query/InsertSpec.hs, UpsertSpec.hs,
UpdateSpec.hs, DeleteSpec.hs and Preferences/MaxAffectedSpec.hs.
"""

from __future__ import annotations


def prefer(*values):
    return {"Prefer": ", ".join(values)}


def test_insert_with_embedded_representation(api):
    # InsertSpec: "includes related data after insert"
    r = api.post("/projects?select=id,name,clients(id,name)", json={"id": 6, "name": "New Project", "client_id": 2},
                 headers=prefer("return=representation", "count=exact"))
    assert r.status_code == 201
    assert r.json() == [{"id": 6, "name": "New Project", "clients": {"id": 2, "name": "Apple"}}]
    assert r.headers["content-range"] == "*/1"
    assert r.headers["preference-applied"] == "return=representation, count=exact"
    assert "location" not in r.headers


def test_insert_minimal_and_headers_only(api):
    r = api.post("/projects", json={"id": 12, "name": "New Project", "client_id": 2})
    assert (r.status_code, r.content) == (201, b"")
    assert "location" not in r.headers and "content-type" not in r.headers
    r = api.post("/projects?select=name,client_id", json={"id": 11, "name": "New Project", "client_id": 2},
                 headers=prefer("return=headers-only"))
    assert (r.status_code, r.content) == (201, b"")
    assert r.headers["location"] == "/projects?id=eq.11"
    assert r.headers["content-range"] == "*/*"
    assert r.headers["preference-applied"] == "return=headers-only"


def test_bulk_insert_needs_matching_keys_unless_columns(api):
    r = api.post("/tiobe_pls", json=[{"name": "Go", "rank": 9}, {"name": "Rust"}])
    assert (r.status_code, r.json()) == (400, {"message": "All object keys must match", "code": "PGRST102",
                                               "hint": None, "details": None})
    r = api.post("/tiobe_pls?columns=name,rank", json=[{"name": "Go", "rank": 9}, {"name": "Rust"}],
                 headers=prefer("return=representation"))
    assert (r.status_code, r.json()) == (201, [{"name": "Go", "rank": 9}, {"name": "Rust", "rank": None}])


def test_missing_default(api):
    r = api.post("/with_defaults?columns=id,label,note", json=[{"id": 1}, {"id": 2, "label": "given"}],
                 headers=prefer("return=representation", "missing=default"))
    assert r.status_code == 201
    assert r.json() == [{"id": 1, "label": "fallback", "note": None}, {"id": 2, "label": "given", "note": None}]
    assert r.headers["preference-applied"] == "missing=default, return=representation"


def test_upsert_merge_and_ignore_duplicates(api):
    # UpsertSpec: "INSERTs and UPDATEs rows on pk conflict" (201), "UPDATEs rows on pk conflict" (200)
    r = api.post("/tiobe_pls", json=[{"name": "Javascript", "rank": 6}, {"name": "Java", "rank": 2}],
                 headers=prefer("return=representation", "resolution=merge-duplicates"))
    assert r.status_code == 201
    assert r.json() == [{"name": "Javascript", "rank": 6}, {"name": "Java", "rank": 2}]
    assert r.headers["preference-applied"] == "resolution=merge-duplicates, return=representation"
    r = api.post("/tiobe_pls", json=[{"name": "Java", "rank": 3}, {"name": "C", "rank": 1}],
                 headers=prefer("return=representation", "resolution=merge-duplicates"))
    assert (r.status_code, r.json()) == (200, [{"name": "Java", "rank": 3}, {"name": "C", "rank": 1}])
    r = api.post("/tiobe_pls", json=[{"name": "Java", "rank": 99}, {"name": "Kotlin", "rank": 20}],
                 headers=prefer("return=representation", "resolution=ignore-duplicates"))
    assert (r.status_code, r.json()) == (201, [{"name": "Kotlin", "rank": 20}])
    r = api.post("/tiobe_pls?on_conflict=name", json={"name": "Kotlin", "rank": 21},
                 headers=prefer("resolution=merge-duplicates"))
    assert r.status_code == 200
    assert api.get("/tiobe_pls?name=eq.Kotlin").json() == [{"name": "Kotlin", "rank": 21}]


def test_put_single_row_upsert(api):
    # UpsertSpec "with PUT"
    full = prefer("return=representation")
    r = api.put("/tiobe_pls?name=eq.Swift", json=[{"name": "Swift", "rank": 19}], headers=full)
    assert (r.status_code, r.json()) == (201, [{"name": "Swift", "rank": 19}])
    r = api.put("/tiobe_pls?name=eq.Swift", json={"name": "Swift", "rank": 13}, headers=full)
    assert (r.status_code, r.json()) == (200, [{"name": "Swift", "rank": 13}])
    r = api.put("/tiobe_pls?name=eq.Swift", json={"name": "Swift", "rank": 12}, headers=prefer("return=minimal"))
    assert (r.status_code, r.headers["preference-applied"]) == (204, "return=minimal")
    r = api.put("/tiobe_pls?rank=eq.19", json=[{"name": "Go", "rank": 19}])
    assert (r.status_code, r.json()) == (405, {
        "message": "Filters must include all and only primary key columns with 'eq' operators",
        "code": "PGRST105", "details": None, "hint": None})
    r = api.put("/tiobe_pls?name=eq.MATLAB", json=[{"name": "Perl", "rank": 17}])
    assert (r.status_code, r.json()["code"]) == (400, "PGRST115")
    r = api.put("/tiobe_pls?name=eq.Javascript&offset=1", json=[{"name": "Javascript", "rank": 1}])
    assert (r.status_code, r.json()["code"]) == (400, "PGRST114")


def test_patch_and_delete_with_representation(api):
    r = api.patch("/projects?id=eq.12", json={"name": "Renamed"}, headers=prefer("return=representation"))
    assert (r.status_code, r.json()) == (200, [{"id": 12, "name": "Renamed", "client_id": 2}])
    assert r.headers["content-range"] == "0-0/*"
    r = api.delete("/projects?id=eq.12", headers=prefer("return=representation", "count=exact"))
    assert (r.status_code, r.json()) == (200, [{"id": 12, "name": "Renamed", "client_id": 2}])
    assert r.headers["content-range"] == "*/1"


def test_max_affected_with_strict_handling(api):
    # MaxAffectedSpec: over the limit -> 400 PGRST124 and nothing written
    r = api.patch("/tiobe_pls?rank=gt.0", json={"rank": 50}, headers=prefer("handling=strict", "max-affected=1"))
    assert r.status_code == 400
    assert r.json()["code"] == "PGRST124"
    assert r.json()["message"] == "Query result exceeds max-affected preference constraint"
    assert api.get("/tiobe_pls?rank=eq.50").json() == []
    r = api.delete("/tiobe_pls?name=eq.Kotlin", headers=prefer("handling=strict", "max-affected=1"))
    assert (r.status_code, r.headers["preference-applied"]) == (204, "handling=strict, max-affected=1")
    r = api.delete("/tiobe_pls?name=eq.Swift", headers=prefer("handling=lenient", "max-affected=0"))
    assert (r.status_code, r.headers["preference-applied"]) == (204, "handling=lenient")


def test_strict_handling_refuses_unknown_preferences(api):
    r = api.get("/tiobe_pls", headers=prefer("handling=strict", "anything"))
    assert (r.status_code, r.json()) == (400, {"code": "PGRST122", "hint": None,
                                               "message": "Invalid preferences given with handling=strict",
                                               "details": "Invalid preferences: anything"})


def test_tx_rollback_is_ignored_where_db_tx_end_does_not_allow_it(api):
    # hosted Supabase keeps db-tx-end = commit: the preference is neither honoured nor echoed
    r = api.post("/tiobe_pls", json={"name": "Zig", "rank": 30}, headers=prefer("tx=rollback"))
    assert r.status_code == 201 and "preference-applied" not in r.headers
    assert api.get("/tiobe_pls?name=eq.Zig").json() == [{"name": "Zig", "rank": 30}]


def test_content_profile_for_writes(api):
    r = api.post("/parents", json={"id": 3, "name": "x"}, headers={"Content-Profile": "v2"})
    # anon holds only SELECT on v2.parents: the insert reaches PostgreSQL in v2 and is refused there
    assert (r.status_code, r.json()["code"]) == (401, "42501")
