"""Computed relationships, related orders, aggregates as hosted Supabase configures them, and
`order` / `limit` on writes, as PostgREST v14 answers them.

Pages: docs.postgrest.org "Resource Embedding" (references/api/resource_embedding: "Computed
Relationships", "Related order"), "Aggregate Functions" (references/api/aggregate_functions: off
unless `db-aggregates-enabled`, which hosted Supabase leaves off), "Tables and Views". Facts from
PostgREST's test/spec/Feature/Query/ComputedRelsSpec.hs, RelatedQueriesSpec.hs,
AggregateFunctionsSpec.hs ("disallowed"), UpdateSpec.hs and DeleteSpec.hs ("with ordering") at
v14.9, over the same fixture rows (tests/api/sql/embed_fixture.sql). PostgREST 13 dropped limited
updates and deletes (CHANGELOG #3013): `limit` on PATCH/DELETE limits nothing.
"""

from __future__ import annotations

from conformance import get

DESIGNERS_OF_GAMES = [
    {"name": "Civilization I", "designer": {"name": "Sid Meier"}},
    {"name": "Civilization II", "designer": {"name": "Sid Meier"}},
    {"name": "Final Fantasy I", "designer": {"name": "Hironobu Sakaguchi"}},
    {"name": "Final Fantasy II", "designer": {"name": "Hironobu Sakaguchi"}}]
GAMES_OF_DESIGNERS = [
    {"name": "Sid Meier", "videogames": [{"name": "Civilization I"}, {"name": "Civilization II"}]},
    {"name": "Hironobu Sakaguchi", "videogames": [{"name": "Final Fantasy I"}, {"name": "Final Fantasy II"}]}]

# -- ComputedRelsSpec.hs ---------------------------------------------------------------------------


def test_computed_many_to_one_with_setof_rows_1_and_without_setof(api):
    # "can define a many-to-one relationship with SETOF and ROWS 1 and embed", "... without SETOF"
    assert get(api, "/videogames?select=name,designer:computed_designers(name)&order=id") == (200, DESIGNERS_OF_GAMES)
    assert get(api, "/videogames?select=name,designer:computed_designers_noset(name)&order=id") == (
        200, DESIGNERS_OF_GAMES)


def test_computed_one_to_many(api):
    # "can define a one-to-many relationship and embed"
    assert get(api, "/designers?select=name,videogames:computed_videogames(name)&order=id"
                    "&videogames.order=id") == (200, GAMES_OF_DESIGNERS)


def test_computed_with_inner_and_exact_count(api):
    # "works with !inner and count=exact"
    r = api.get("/designers?select=name,videogames:computed_videogames!inner(name)"
                "&videogames.name=eq.Civilization%20I", headers={"Prefer": "count=exact"})
    assert (r.status_code, r.json(), r.headers["Content-Range"]) == (
        200, [{"name": "Sid Meier", "videogames": [{"name": "Civilization I"}]}], "0-0/1")
    for fn in ("computed_designers", "computed_designers_noset"):
        r = api.get(f"/videogames?select=name,designer:{fn}!inner(name)&designer.name=like.*Hironobu*&order=id",
                    headers={"Prefer": "count=exact"})
        assert (r.status_code, r.json(), r.headers["Content-Range"]) == (200, [
            {"name": "Final Fantasy I", "designer": {"name": "Hironobu Sakaguchi"}},
            {"name": "Final Fantasy II", "designer": {"name": "Hironobu Sakaguchi"}}], "0-1/2")


def test_computed_on_rpc_results(api):
    # "works with rpc"
    assert get(api, "/rpc/getallvideogames?select=name,designer:computed_designers(name)&order=id") == (
        200, DESIGNERS_OF_GAMES)
    assert get(api, "/rpc/getalldesigners?select=name,videogames:computed_videogames(name)&order=id"
                    "&videogames.order=id") == (200, GAMES_OF_DESIGNERS)


def test_computed_on_written_rows(api):
    # "works with mutations" (rolled back by deleting what it wrote)
    rep = {"Prefer": "return=representation"}
    r = api.post("/videogames?select=name,designer:computed_designers(name)", headers=rep,
                 json={"id": 5, "name": "Chrono Trigger", "designer_id": 2})
    assert (r.status_code, r.json()) == (201, [{"name": "Chrono Trigger", "designer": {"name": "Hironobu Sakaguchi"}}])
    r = api.patch("/designers?select=name,videogames:computed_videogames(name)&id=eq.1&videogames.order=id",
                  headers=rep, json={"name": "Sidney K. Meier"})
    assert (r.status_code, r.json()) == (200, [
        {"name": "Sidney K. Meier", "videogames": [{"name": "Civilization I"}, {"name": "Civilization II"}]}])
    r = api.delete("/videogames?select=name,designer:computed_designers(name)&id=eq.5", headers=rep)
    assert (r.status_code, r.json()) == (200, [{"name": "Chrono Trigger", "designer": {"name": "Hironobu Sakaguchi"}}])
    assert api.patch("/designers?id=eq.1", json={"name": "Sid Meier"}).status_code == 204


def test_computed_relationship_overrides_the_foreign_key_one(api):
    # "can override many-to-one and one-to-many relationships": functions named after the table
    assert get(api, "/videogames?select=*,designers!inner(*)") == (200, [])
    assert get(api, "/designers?select=*,videogames!inner(*)") == (200, [])


def test_computed_after_a_normal_embed(api):
    # "creates queries with the right aliasing when following a normal embed"
    assert get(api, "/projects?select=name,clients(name,computed_projects(name))&order=id&limit=1") == (
        200, [{"name": "Windows 7", "clients": {"name": "Microsoft", "computed_projects": {"name": "Windows 7"}}}])


def test_computed_is_null_filter(api):
    # RelatedQueriesSpec "related conditions through null operator on embed"
    assert get(api, "/projects?select=name,computed_clients()&computed_clients=is.null") == (
        200, [{"name": "Orphan"}])


# -- RelatedQueriesSpec.hs "related orders" --------------------------------------------------------


def test_related_order_on_many_to_one(api):
    assert get(api, "/projects?select=id,clients(name)&order=clients(name).nullsfirst,id") == (200, [
        {"id": 5, "clients": None}, {"id": 3, "clients": {"name": "Apple"}}, {"id": 4, "clients": {"name": "Apple"}},
        {"id": 1, "clients": {"name": "Microsoft"}}, {"id": 2, "clients": {"name": "Microsoft"}}])
    assert get(api, "/projects?select=id,client:clients(name)&order=client(name).asc,id") == (200, [
        {"id": 3, "client": {"name": "Apple"}}, {"id": 4, "client": {"name": "Apple"}},
        {"id": 1, "client": {"name": "Microsoft"}}, {"id": 2, "client": {"name": "Microsoft"}},
        {"id": 5, "client": None}])
    assert get(api, "/videogames?select=id,computed_designers(id)&order=computed_designers(id).desc,id") == (200, [
        {"id": 3, "computed_designers": {"id": 2}}, {"id": 4, "computed_designers": {"id": 2}},
        {"id": 1, "computed_designers": {"id": 1}}, {"id": 2, "computed_designers": {"id": 1}}])


def test_related_order_on_one_to_one_jsonb_path(api):
    asc = [{"id": 2, "trash_details": {"id": 2, "jsonb_col": {"key": 6}}},
           {"id": 3, "trash_details": {"id": 3, "jsonb_col": {"key": 8}}},
           {"id": 1, "trash_details": {"id": 1, "jsonb_col": {"key": 10}}}]
    assert get(api, "/trash?select=id,trash_details(id,jsonb_col)&order=trash_details(jsonb_col->key).asc") == (
        200, asc)
    assert get(api, "/trash?select=id,trash_details(id,jsonb_col)&order=trash_details(jsonb_col->key).desc") == (
        200, asc[::-1])


def test_related_order_inside_an_embedded_resource(api):
    # "works on an embedded resource"
    status, body = get(api, "/users?select=name,tasks(id,name,projects(id,name))"
                            "&tasks.order=projects(id).desc,name&order=id&limit=1")
    assert status == 200
    assert body == [{"name": "Angela Martin", "tasks": [
        {"id": 4, "name": "Code w10", "projects": {"id": 2, "name": "Windows 10"}},
        {"id": 3, "name": "Design w10", "projects": {"id": 2, "name": "Windows 10"}},
        {"id": 2, "name": "Code w7", "projects": {"id": 1, "name": "Windows 7"}},
        {"id": 1, "name": "Design w7", "projects": {"id": 1, "name": "Windows 7"}}]}]


def test_related_order_on_a_to_many_embed_is_pgrst118(api):
    # "fails when is not a to-one relationship"
    for path, name in (("/clients?select=*,projects(*)&order=projects(id)", "projects"),
                       ("/clients?select=*,pros:projects(*)&order=pros(id)", "pros")):
        assert get(api, path) == (400, {
            "code": "PGRST118",
            "details": f"'clients' and '{name}' do not form a many-to-one or one-to-one relationship",
            "hint": None, "message": f"A related order on '{name}' is not possible"})
    assert get(api, "/designers?select=id,computed_videogames(id)&order=computed_videogames(id).desc") == (400, {
        "code": "PGRST118",
        "details": "'designers' and 'computed_videogames' do not form a many-to-one or one-to-one relationship",
        "hint": None, "message": "A related order on 'computed_videogames' is not possible"})


def test_related_order_on_a_resource_not_embedded_is_pgrst108(api):
    # "fails when the resource is not embedded"
    assert get(api, "/projects?select=id,clients(name)&order=clientsx(name).nullsfirst") == (400, {
        "code": "PGRST108", "details": None,
        "hint": "Verify that 'clientsx' is included in the 'select' query parameter.",
        "message": "'clientsx' is not an embedded resource in this request"})


# -- AggregateFunctionsSpec.hs "disallowed": hosted Supabase leaves db-aggregates-enabled off -----

AGG_OFF = (400, {"hint": None, "details": None, "code": "PGRST123",
                 "message": "Use of aggregate functions is not allowed"})


def test_aggregates_are_refused_everywhere_as_on_hosted(api):
    # top level, embedded, to-one spread, to-many spread
    assert get(api, "/projects?select=id.sum()") == AGG_OFF
    assert get(api, "/clients?select=name,projects(id.sum())") == AGG_OFF
    assert get(api, "/projects?select=...clients(id.count())") == AGG_OFF
    assert get(api, "/clients?select=...projects(id.count())") == AGG_OFF
    assert get(api, "/projects?select=count()") == AGG_OFF


# -- UpdateSpec.hs / DeleteSpec.hs "with ordering"; limited writes were dropped in PostgREST 13 -----


def test_patch_orders_the_representation_and_limit_limits_nothing(api):
    rep = {"Prefer": "return=representation"}
    # UpdateSpec "with ordering on top-level resource" (here over designers, the fixture's no_pk is read-only)
    r = api.patch("/videogames?designer_id=eq.1&order=id.desc&limit=1&select=id,name", headers=rep,
                  json={"name": "patched"})
    assert (r.status_code, r.json()) == (200, [{"id": 2, "name": "patched"}, {"id": 1, "name": "patched"}])
    # embedded order on the representation (UpdateSpec "works with request method PATCH and embedded resource")
    for i, name in ((1, "Civilization I"), (2, "Civilization II")):
        assert api.patch(f"/videogames?id=eq.{i}", json={"name": name}).status_code == 204
    r = api.patch("/designers?id=eq.1&select=id,name,games:computed_videogames(name)&games.order=name.desc",
                  headers=rep, json={"name": "Sid Meier"})
    assert (r.status_code, r.json()) == (200, [
        {"id": 1, "name": "Sid Meier", "games": [{"name": "Civilization II"}, {"name": "Civilization I"}]}])
    for i, name in ((1, "Civilization I"), (2, "Civilization II")):
        assert api.patch(f"/videogames?id=eq.{i}", json={"name": name}).status_code == 204


def test_delete_orders_the_representation_and_limit_limits_nothing(api):
    rep = {"Prefer": "return=representation"}
    assert api.post("/videogames", json=[{"id": 10, "name": "a", "designer_id": 1},
                                         {"id": 11, "name": "b", "designer_id": 2}]).status_code == 201
    # DeleteSpec "works with request method DELETE and embedded resource"
    r = api.delete("/videogames?id=gte.10&select=id,name,designer:computed_designers(name)&order=id.desc&limit=1",
                   headers=rep)
    assert (r.status_code, r.json()) == (200, [
        {"id": 11, "name": "b", "designer": {"name": "Hironobu Sakaguchi"}},
        {"id": 10, "name": "a", "designer": {"name": "Sid Meier"}}])
    assert get(api, "/videogames?id=gte.10") == (200, [])
