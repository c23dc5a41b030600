"""The real Python client as the checklist: every public builder method of the pinned `postgrest`
package (what `supabase.table(...)` returns) driven once against the local API, each with the
answer hosted PostgREST gives over the same rows (tests/api/sql/embed_fixture.sql)."""

from __future__ import annotations

import pytest
from conformance import install
from postgrest.exceptions import APIError

from koepon.localstack.api.testing import running_api
from koepon.settings import ANON_KEY
from supabase import create_client


@pytest.fixture(scope="module")
def sb(seeded_db_url):
    install(seeded_db_url)
    with running_api(seeded_db_url) as url:
        yield create_client(url, ANON_KEY)


def ids(res):
    return [r["id"] for r in res.data]


def test_select_with_embedding_and_count(sb):
    res = sb.table("projects").select("id, name, clients(name)", count="exact").eq("id", 3).execute()
    assert res.data == [{"id": 3, "name": "IOS", "clients": {"name": "Apple"}}]
    assert res.count == 1
    head = sb.table("projects").select("*", count="exact", head=True).execute()
    assert head.count == 5 and head.data == []


def test_comparison_filters(sb):
    t = sb.table("projects").select("id").order("id")
    assert ids(t.eq("client_id", 1).execute()) == [1, 2]
    assert ids(sb.table("projects").select("id").neq("client_id", 1).order("id").execute()) == [3, 4]
    assert ids(sb.table("projects").select("id").gt("id", 3).order("id").execute()) == [4, 5]
    assert ids(sb.table("projects").select("id").gte("id", 4).order("id").execute()) == [4, 5]
    assert ids(sb.table("projects").select("id").lt("id", 2).execute()) == [1]
    assert ids(sb.table("projects").select("id").lte("id", 2).order("id").execute()) == [1, 2]
    assert ids(sb.table("projects").select("id").like("name", "Windows*").order("id").execute()) == [1, 2]
    assert ids(sb.table("projects").select("id").ilike("name", "ios").execute()) == [3]
    assert ids(sb.table("projects").select("id").is_("client_id", "null").execute()) == [5]
    assert ids(sb.table("projects").select("id").in_("id", [1, 4]).order("id").execute()) == [1, 4]


def test_quantified_pattern_filters(sb):
    t = sb.table("articles").select("id").order("id")
    assert ids(t.like_any_of("body", "*plan*,*brain*").execute()) == [1, 2]
    assert ids(sb.table("articles").select("id").like_all_of("body", "*plan*,*greatness*").execute()) == [1]
    assert ids(sb.table("articles").select("id").ilike_any_of("body", "*STOP*,*FEZ*").order("id").execute()) == [2, 3]
    assert ids(sb.table("articles").select("id").ilike_all_of("body", "*IT*,*FEZ*").execute()) == [3]


def test_array_and_json_containment(sb):
    assert ids(sb.table("complex_items").select("id").contains("arr_data", [2]).order("id").execute()) == [2, 3]
    assert ids(sb.table("complex_items").select("id").cs("arr_data", [3]).execute()) == [3]
    res = sb.table("complex_items").select("id").contained_by("arr_data", [1, 2, 4]).order("id").execute()
    assert ids(res) == [1, 2]
    assert ids(sb.table("complex_items").select("id").cd("arr_data", [1]).execute()) == [1]
    assert ids(sb.table("complex_items").select("id").contains("settings", {"foo": {"int": 1}}).order("id")
               .execute()) == [1, 2, 3]
    assert ids(sb.table("complex_items").select("id").overlaps("arr_data", [3, 9]).execute()) == [3]
    assert ids(sb.table("complex_items").select("id").ov("arr_data", [3]).execute()) == [3]


def test_range_filters(sb):
    t = lambda: sb.table("ranges").select("id").order("id")  # noqa: E731 - a fresh builder per query
    # the client sends exclusive bounds: (5,8) is [6,8), (3,6) is [4,6), (12,15) is [13,15)
    assert ids(t().range_lt("range", (5, 8)).execute()) == [1]
    assert ids(t().sl("range", (5, 8)).execute()) == [1]
    assert ids(t().range_gt("range", (5, 8)).execute()) == [4]
    assert ids(t().sr("range", (5, 8)).execute()) == [4]
    assert ids(t().range_lte("range", (3, 6)).execute()) == [1]
    assert ids(t().nxr("range", (3, 6)).execute()) == [1]
    assert ids(t().range_gte("range", (3, 6)).execute()) == [3, 4]
    assert ids(t().nxl("range", (3, 6)).execute()) == [3, 4]
    assert ids(t().range_adjacent("range", (12, 15)).execute()) == [4]
    assert ids(t().adj("range", (12, 15)).execute()) == [4]


def test_full_text_search(sb):
    vec = "text_search_vector"
    want = [{vec: "'ate':3 'cat':2 'fat':1 'rat':4"}]
    assert sb.table("tsearch").select(vec).text_search(vec, "fat & rats").execute().data == want
    assert sb.table("tsearch").select(vec).text_search(vec, "The Fat Rats", {"type": "plain"}).execute().data == want
    assert sb.table("tsearch").select(vec).fts(vec, "fat").execute().data == want
    assert sb.table("tsearch").select(vec).plfts(vec, "The Fat Rats").execute().data == want
    assert sb.table("tsearch").select(vec).phfts(vec, "The Fat Cats").execute().data == want
    assert sb.table("tsearch").select(vec).wfts(vec, '"fat cats"').execute().data == want


def test_match_not_or_filter(sb):
    assert ids(sb.table("projects").select("id").match({"client_id": 2, "name": "OSX"}).execute()) == [4]
    assert ids(sb.table("projects").select("id").not_.is_("client_id", "null").order("id").execute()) == [1, 2, 3, 4]
    assert ids(sb.table("projects").select("id").or_("id.eq.1,name.eq.OSX").order("id").execute()) == [1, 4]
    assert ids(sb.table("projects").select("id").filter("name", "in", '("IOS","OSX")').order("id").execute()) == [3, 4]


def test_order_limit_offset_range(sb):
    assert ids(sb.table("projects").select("id").order("id", desc=True).limit(2).execute()) == [5, 4]
    assert ids(sb.table("projects").select("id").order("id").limit(2).offset(1).execute()) == [2, 3]
    assert ids(sb.table("projects").select("id").order("id").range(1, 2).execute()) == [2, 3]
    res = sb.table("clients").select("id, projects(id)").order("id").order("id", desc=True, foreign_table="projects") \
        .limit(1, foreign_table="projects").execute()
    assert res.data == [{"id": 1, "projects": [{"id": 2}]}, {"id": 2, "projects": [{"id": 4}]}]


def test_single_maybe_single_csv_strip_nulls(sb):
    assert sb.table("projects").select("id, name").eq("id", 1).single().execute().data == {"id": 1, "name": "Windows 7"}
    with pytest.raises(APIError) as err:
        sb.table("projects").select("id").single().execute()
    assert err.value.code == "PGRST116"
    assert sb.table("projects").select("id").eq("id", 99).maybe_single().execute() is None
    assert sb.table("projects").select("id,name").in_("id", [1, 2]).order("id").csv().execute().data == (
        'id,name\n1,"Windows 7"\n2,"Windows 10"')
    assert sb.table("projects").select("id,client_id").eq("id", 5).strip_nulls().execute().data == [{"id": 5}]


def test_explain_is_refused_as_hosted_refuses_it(sb):
    # db-plan-enabled is off on hosted Supabase: the plan media type is not available (406 PGRST107)
    with pytest.raises(APIError) as err:
        sb.table("projects").select("id").explain().execute()
    assert err.value.code == "PGRST107"


def test_insert_upsert_update_delete(sb):
    res = sb.table("tiobe_pls").insert({"name": "Elixir", "rank": 40}).execute()
    assert res.data == [{"name": "Elixir", "rank": 40}]
    res = sb.table("tiobe_pls").insert([{"name": "Nim", "rank": 41}, {"name": "Odin"}], count="exact").execute()
    assert res.data == [{"name": "Nim", "rank": 41}, {"name": "Odin", "rank": None}] and res.count == 2
    res = sb.table("with_defaults").insert([{"id": 10}, {"id": 11, "label": "x"}], default_to_null=False).execute()
    assert res.data == [{"id": 10, "label": "fallback", "note": None}, {"id": 11, "label": "x", "note": None}]
    res = sb.table("tiobe_pls").upsert({"name": "Elixir", "rank": 39}).execute()
    assert res.data == [{"name": "Elixir", "rank": 39}]
    res = sb.table("tiobe_pls").upsert({"name": "Elixir", "rank": 1}, ignore_duplicates=True).execute()
    assert res.data == []
    res = sb.table("tiobe_pls").upsert({"name": "Elixir", "rank": 38}, on_conflict="name").execute()
    assert res.data == [{"name": "Elixir", "rank": 38}]
    res = sb.table("tiobe_pls").update({"rank": 37}).eq("name", "Elixir").execute()
    assert res.data == [{"name": "Elixir", "rank": 37}]
    res = sb.table("tiobe_pls").update({"rank": 0}, returning="minimal").eq("name", "Odin").execute()
    assert res.data == []
    with pytest.raises(APIError) as err:
        sb.table("tiobe_pls").delete().gt("rank", 0).max_affected(1).execute()
    assert err.value.code == "PGRST124"
    res = sb.table("tiobe_pls").delete(count="exact").in_("name", ["Elixir", "Nim", "Odin"]).execute()
    assert sorted(r["name"] for r in res.data) == ["Elixir", "Nim", "Odin"] and res.count == 3


def test_rpc_with_filters(sb):
    res = sb.rpc("getallprojects", {}).select("id").gt("id", 3).order("id").execute()
    assert ids(res) == [4, 5]


def test_schema_switch(sb):
    assert sb.schema("v2").table("parents").select("name").eq("id", 1).execute().data == [{"name": "parent v2-1"}]
