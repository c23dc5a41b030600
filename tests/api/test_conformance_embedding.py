"""Resource embedding, as PostgREST answers it.

Pages: docs.postgrest.org "Resource Embedding" (references/api/resource_embedding) and "Spread";
facts from PostgREST's test/spec/Feature/Query/QuerySpec.hs, EmbedDisambiguationSpec.hs,
EmbedInnerJoinSpec.hs and SpreadQueriesSpec.hs over the same fixture rows.
"""

from __future__ import annotations

from conformance import FAN_A, FAN_B, GACHA, get, token

# -- QuerySpec.hs "embedding" ---------------------------------------------------------------------

def test_many_to_one_with_renamed_parent(api):
    # QuerySpec: "requesting parent and renaming primary key"
    assert get(api, "/projects?select=name,client:clients(clientId:id,name)&order=id") == (200, [
        {"name": "Windows 7", "client": {"clientId": 1, "name": "Microsoft"}},
        {"name": "Windows 10", "client": {"clientId": 1, "name": "Microsoft"}},
        {"name": "IOS", "client": {"clientId": 2, "name": "Apple"}},
        {"name": "OSX", "client": {"clientId": 2, "name": "Apple"}},
        {"name": "Orphan", "client": None}])


def test_parents_and_children_renamed(api):
    # QuerySpec: "requesting parents and children while renaming them"
    assert get(api, "/projects?id=eq.1&select=myId:id, name, project_client:clients(*), "
                    "project_tasks:tasks(id, name)&project_tasks.order=id") == (200, [
        {"myId": 1, "name": "Windows 7", "project_client": {"id": 1, "name": "Microsoft"},
         "project_tasks": [{"id": 1, "name": "Design w7"}, {"id": 2, "name": "Code w7"}]}])


def test_missing_parent_is_null_and_no_children_is_empty_list(api):
    # QuerySpec: "rows with missing parents are included", "rows with no children return []"
    assert get(api, "/projects?id=in.(1,5)&select=id,clients(id)&order=id") == (
        200, [{"id": 1, "clients": {"id": 1}}, {"id": 5, "clients": None}])
    assert get(api, "/projects?id=in.(5)&select=id,tasks(id)") == (200, [{"id": 5, "tasks": []}])


def test_nested_filter_on_grandchildren(api):
    # QuerySpec: "matches filtering nested items"
    assert get(api, "/clients?select=id,projects(id,tasks(id,name))&projects.tasks.name=like.Design*"
                    "&order=id&projects.order=id&projects.tasks.order=id") == (200, [
        {"id": 1, "projects": [{"id": 1, "tasks": [{"id": 1, "name": "Design w7"}]},
                               {"id": 2, "tasks": [{"id": 3, "name": "Design w10"}]}]},
        {"id": 2, "projects": [{"id": 3, "tasks": [{"id": 5, "name": "Design IOS"}]},
                               {"id": 4, "tasks": [{"id": 7, "name": "Design OSX"}]}]}])


def test_many_to_many_through_junction(api):
    # QuerySpec: "requesting many<->many relation" and its reverse
    assert get(api, "/tasks?select=id,users(id)&order=id&users.order=id") == (200, [
        {"id": 1, "users": [{"id": 1}, {"id": 3}]}, {"id": 2, "users": [{"id": 1}]},
        {"id": 3, "users": [{"id": 1}]}, {"id": 4, "users": [{"id": 1}]},
        {"id": 5, "users": [{"id": 2}, {"id": 3}]}, {"id": 6, "users": [{"id": 2}]},
        {"id": 7, "users": [{"id": 2}]}, {"id": 8, "users": []}])
    assert get(api, "/users?select=id,tasks(id)&order=id&tasks.order=id") == (200, [
        {"id": 1, "tasks": [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]},
        {"id": 2, "tasks": [{"id": 5}, {"id": 6}, {"id": 7}]},
        {"id": 3, "tasks": [{"id": 1}, {"id": 5}]}])


def test_same_relation_twice_under_two_aliases(api):
    # QuerySpec: "works with many to many relation" (aliased embeds, each with its own filter)
    status, body = get(api, "/users?select=id,designTasks:tasks(id,name),codeTasks:tasks(id,name)"
                            "&designTasks.name=like.*Design*&codeTasks.name=like.*Code*&order=id"
                            "&designTasks.order=id&codeTasks.order=id")
    assert status == 200
    assert body[2] == {"id": 3, "designTasks": [{"id": 1, "name": "Design w7"}, {"id": 5, "name": "Design IOS"}],
                       "codeTasks": []}
    assert body[1]["codeTasks"] == [{"id": 6, "name": "Code IOS"}]


def test_empty_embeds_filter_but_show_nothing(api):
    # QuerySpec: "empty embed"
    assert get(api, "/projects?select=id,name,clients!inner()&clients.id=eq.2&order=id") == (
        200, [{"id": 3, "name": "IOS"}, {"id": 4, "name": "OSX"}])
    assert get(api, "/clients?select=id,name,projects!inner()&projects.name=eq.IOS") == (
        200, [{"id": 2, "name": "Apple"}])
    assert get(api, "/users?select=*,tasks!inner()&tasks.id=eq.3") == (200, [{"id": 1, "name": "Angela Martin"}])
    assert get(api, "/users?select=*,tasks!inner(projects(clients()),users_tasks(),name)&tasks.id=eq.3") == (
        200, [{"id": 1, "name": "Angela Martin", "tasks": [{"name": "Design w10"}]}])


def test_filter_on_a_resource_not_embedded_is_pgrst108(api):
    # QuerySpec: "errs when the embedded resource doesn't exist and an embedded filter is applied to it"
    assert get(api, "/clients?select=*&non_existent_projects.name=like.*NonExistent*") == (400, {
        "hint": "Verify that 'non_existent_projects' is included in the 'select' query parameter.",
        "details": None, "code": "PGRST108",
        "message": "'non_existent_projects' is not an embedded resource in this request"})
    assert get(api, "/clients?select=id,projects(id,tasks(id,name))&projects.tasks2.name=like.Design*")[1][
        "message"] == "'tasks2' is not an embedded resource in this request"


# -- EmbedInnerJoinSpec.hs and null filtering ------------------------------------------------------

def test_inner_join_drops_parents_without_a_match(api):
    assert get(api, "/projects?select=id,clients!inner(name)&clients.name=eq.Apple&order=id") == (
        200, [{"id": 3, "clients": {"name": "Apple"}}, {"id": 4, "clients": {"name": "Apple"}}])
    # without !inner the parents stay, the embed is null (docs: "Top-level filtering")
    assert get(api, "/projects?select=id,clients(name)&clients.name=eq.Apple&id=in.(1,3)&order=id") == (
        200, [{"id": 1, "clients": None}, {"id": 3, "clients": {"name": "Apple"}}])


def test_null_filtering_on_embedded_resources(api):
    # docs: "Null filtering on Embedded Resources" — `rel=not.is.null` acts as !inner, `is.null` as an anti-join
    assert get(api, "/projects?select=id,clients(id)&clients=is.null") == (200, [{"id": 5, "clients": None}])
    rows = get(api, "/projects?select=id,clients(id)&clients=not.is.null&order=id")[1]
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert get(api, "/projects?select=id,tasks(id)&tasks=is.null") == (200, [{"id": 5, "tasks": []}])


# -- EmbedDisambiguationSpec.hs ----------------------------------------------------------------

def test_ambiguous_embed_is_300_pgrst201_with_the_candidates(api):
    # EmbedDisambiguationSpec: "errs on an ambiguous embed that has a circular reference"
    r = api.get("/agents?select=*,departments(*)")
    assert r.status_code == 300
    assert r.json() == {
        "details": [
            {"cardinality": "one-to-many",
             "relationship": "departments_head_id_fkey using agents(id) and departments(head_id)",
             "embedding": "agents with departments"},
            {"cardinality": "many-to-one",
             "relationship": "agents_department_id_fkey using agents(department_id) and departments(id)",
             "embedding": "agents with departments"}],
        "hint": "Try changing 'departments' to one of the following: 'departments!departments_head_id_fkey', "
                "'departments!agents_department_id_fkey'. Find the desired relationship in the 'details' key.",
        "message": "Could not embed because more than one relationship was found for 'agents' and 'departments'",
        "code": "PGRST201"}


def test_hints_disambiguate_by_constraint_and_column(api):
    assert get(api, "/agents?select=id,departments!agents_department_id_fkey(id)") == (200, [])
    assert get(api, "/agents?select=id,departments!department_id(id)") == (200, [])
    # the constraint or the FK column as the target itself (tables only)
    assert get(api, "/projects?select=id,client(name)&id=eq.3") == (200, [{"id": 3, "client": {"name": "Apple"}}])
    assert get(api, "/projects?select=id,client_id(name)&id=eq.3") == (200, [{"id": 3, "client_id": {"name": "Apple"}}])


def test_self_relationship_children_and_parent(api):
    # EmbedDisambiguationSpec "self reference": table name = children (O2M), FK column = parent (M2O)
    assert get(api, "/family_tree?id=eq.1&select=id,children:family_tree(id)&children.order=id") == (
        200, [{"id": "1", "children": [{"id": "2"}, {"id": "3"}]}])
    assert get(api, "/family_tree?id=eq.2&select=id,parent(id,name)") == (
        200, [{"id": "2", "parent": {"id": "1", "name": "Parental Unit"}}])


def test_no_relationship_is_400_pgrst200(api):
    assert get(api, "/clients?select=*,users(*)") == (400, {
        "code": "PGRST200", "details": "Searched for a foreign key relationship between 'clients' and 'users' "
        "in the schema 'public', but no matches were found.", "hint": None,
        "message": "Could not find a relationship between 'clients' and 'users' in the schema cache"})
    assert get(api, "/projects?select=*,clients!nope(*)")[1]["details"] == (
        "Searched for a foreign key relationship between 'projects' and 'clients' using the hint 'nope' "
        "in the schema 'public', but no matches were found.")


# -- SpreadQueriesSpec.hs -------------------------------------------------------------------------

def test_spread_to_one_lifts_columns(api):
    assert get(api, "/projects?select=id,...clients(client_name:name)&id=in.(1,5)&order=id") == (
        200, [{"id": 1, "client_name": "Microsoft"}, {"id": 5, "client_name": None}])


def test_spread_to_one_with_inner_and_null_filters(api):
    assert get(api, "/projects?select=id,...clients!inner(name)&clients.name=eq.Apple&order=id") == (
        200, [{"id": 3, "name": "Apple"}, {"id": 4, "name": "Apple"}])
    assert get(api, "/projects?select=id,...clients(name)&clients=is.null") == (200, [{"id": 5, "name": None}])


def test_spread_to_many_gives_arrays(api):
    # SpreadQueriesSpec: "one-to-many relationships / should spread a column as a json array"
    assert get(api, "/clients?select=client:name,...projects(name)&order=name&projects.order=name") == (
        200, [{"client": "Apple", "name": ["IOS", "OSX"]},
              {"client": "Microsoft", "name": ["Windows 10", "Windows 7"]}])


# -- Koepon's own views: relationships inferred through views, under RLS ------------------------

def test_koepon_views_embed_through_their_base_tables_keys(api):
    status, body = get(api, f"/gachas?id=eq.{GACHA}&select=title,vtubers(name),gacha_items(name)"
                            "&gacha_items.order=sort_order")
    assert status == 200 and len(body) == 1
    assert body[0]["vtubers"] == {"name": "Hoshi Kirara"}
    assert len(body[0]["gacha_items"]) == 5


def test_embedding_never_reveals_a_draft_gachas_items(api):
    every = get(api, "/gacha_items?select=id,gachas(status)")[1]
    assert every and all(row["gachas"] is not None and row["gachas"]["status"] in ("published", "ended")
                         for row in every)
    total = sum(len(v["gachas"]) for v in get(api, "/vtubers?select=gachas(gacha_items(id))")[1])
    assert total == len(get(api, "/gachas?select=id")[1])
    items = sum(len(g["gacha_items"]) for v in get(api, "/vtubers?select=gachas(gacha_items(id))")[1]
                for g in v["gachas"])
    assert items == len(every) == 12  # 5 + 4 + 3: the draft gacha's two items never appear


def test_embedding_never_reveals_another_fans_orders(api):
    for fan, other in ((FAN_A, FAN_B), (FAN_B, FAN_A)):
        status, body = get(api, f"/gachas?id=eq.{GACHA}&select=id,test_orders(user_id)", headers=token(fan))
        assert status == 200
        assert body[0]["test_orders"] == [{"user_id": str(fan)}]
        status, body = get(api, f"/gachas?select=id,test_orders!inner(user_id)&test_orders.user_id=eq.{other}",
                           headers=token(fan))
        assert (status, body) == (200, [])
    # anon holds no privilege on app.orders: the embed fails as the table read would (401 42501)
    status, body = get(api, f"/gachas?id=eq.{GACHA}&select=id,test_orders(user_id)")
    assert (status, body["code"]) == (401, "42501")


def test_relationships_reload_on_notify(api, seeded_db_url):
    import time

    import psycopg

    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        conn.execute("create table public.notes_reload (id int primary key, project_id int "
                     "references public.projects (id)); grant select on public.notes_reload to anon;"
                     "insert into public.notes_reload values (1, 1)")
        conn.execute("notify pgrst, 'reload schema'")
    deadline = time.monotonic() + 10
    while True:
        status, body = get(api, "/projects?id=eq.1&select=id,notes_reload(id)")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (status, body) == (200, [{"id": 1, "notes_reload": [{"id": 1}]}])
