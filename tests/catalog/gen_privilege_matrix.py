"""Generates supabase/tests/database/10_catalog_privileges.test.sql; run it after editing the matrix."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent.parent / "supabase" / "tests" / "database" / "10_catalog_privileges.test.sql"
setup = ("-- Personas (fixed ids) and a probe that runs SQL as one of them: "
         "supabase/tests/catalog_fixture.sql.\nselect tests.catalog_personas();\n")
D = "'10000000-0000-4000-d000-000000000001'"
P = "'10000000-0000-4000-d000-000000000002'"
DI = "'10000000-0000-4000-e000-000000000001'"
E = "'10000000-0000-4000-f000-000000000001'"
A = "'10000000-0000-4000-c000-000000000001'"
FAN = "'10000000-0000-4000-a000-000000000004'"
OWNER = "'10000000-0000-4000-a000-000000000002'"
OVT = "'10000000-0000-4000-b000-000000000002'"
ok = 'ok'
no = '42501'
nv = 'PT403 not_a_vtuber'
ao = 'PT403 admin_only'
PATH = "'10000000-0000-4000-b000-000000000002/i.mp3'"
# personas: anon, fan, other_fan, owner, other_vtuber, admin, service_role
rows = [
    ("get_my_profile", "select public.get_my_profile()", [no, ok, ok, ok, ok, ok, no]),
    ("update_my_profile", "select public.update_my_profile(p_display_name => 'New name')",
     [no, ok, ok, ok, ok, ok, no]),
    ("submit_vtuber_application", "select public.submit_vtuber_application('Name', 'About me')",
     [no, 'PT409 application_already_open', ok, 'PT409 already_a_vtuber', 'PT409 already_a_vtuber', ok, no]),
    ("withdraw_vtuber_application", f"select public.withdraw_vtuber_application({A})",
     [no, ok] + ['PT404 application_not_found'] * 4 + [no]),
    ("list_my_applications", "select public.list_my_applications()", [no, ok, ok, ok, ok, ok, no]),
    ("list_vtuber_applications", "select public.list_vtuber_applications()", [no, ao, ao, ao, ao, ok, no]),
    ("review_vtuber_application", f"select public.review_vtuber_application({A}, 'approve', 'welcome')",
     [no, ao, ao, ao, ao, ok, no]),
    ("create_gacha", "select public.create_gacha('T', now(), now() + interval '1 day')",
     [no, nv, nv, ok, ok, nv, no]),
    ("update_gacha (draft)", f"""select public.update_gacha({D}, '{{"title": "x"}}')""",
     [no, nv, nv, ok, 'PT404 gacha_not_found', nv, no]),
    ("update_gacha (published)", f"""select public.update_gacha({P}, '{{"title": "x"}}')""",
     [no, nv, nv, 'PT409 gacha_not_draft', 'PT403 not_gacha_owner', nv, no]),
    ("add_gacha_item", f"select public.add_gacha_item({D}, 'I', 'R', 1, {PATH})",
     [no, nv, nv, ok, 'PT404 gacha_not_found', nv, no]),
    ("add_gacha_item (published)", f"select public.add_gacha_item({P}, 'I', 'R', 1, {PATH})",
     [no, nv, nv, 'PT409 gacha_not_draft', 'PT403 not_gacha_owner', nv, no]),
    ("update_gacha_item", f"""select public.update_gacha_item({DI}, '{{"rate_ppm": 1}}')""",
     [no, nv, nv, ok, 'PT404 gacha_item_not_found', nv, no]),
    ("remove_gacha_item", f"select public.remove_gacha_item({DI})",
     [no, nv, nv, ok, 'PT404 gacha_item_not_found', nv, no]),
    ("publish_gacha", f"select public.publish_gacha({D})", [no, nv, nv, ok, 'PT404 gacha_not_found', nv, no]),
    ("end_gacha", f"select public.end_gacha({P})", [no, nv, nv, ok, 'PT403 not_gacha_owner', ok, no]),
    ("list_my_gachas", "select public.list_my_gachas()", [no, nv, nv, ok, ok, nv, no]),
    ("create_exchange_item", f"select public.create_exchange_item('N', 10, {PATH})",
     [no, nv, nv, ok, 'PT400 invalid_content_path', nv, no]),
    ("update_exchange_item", f"""select public.update_exchange_item({E}, '{{"medal_cost": 5}}')""",
     [no, nv, nv, ok, 'PT403 not_exchange_item_owner', nv, no]),
    ("retire_exchange_item", f"select public.retire_exchange_item({E})",
     [no, nv, nv, ok, 'PT403 not_exchange_item_owner', nv, no]),
    ("list_my_exchange_items", "select public.list_my_exchange_items()", [no, nv, nv, ok, ok, nv, no]),
    ("get_gacha (published)", f"select public.get_gacha({P})", [ok] * 7),
    ("get_gacha (draft)", f"select public.get_gacha({D})", ['PT404 gacha_not_found'] * 7),
    ("admin_suspend_user", f"select public.admin_suspend_user({FAN}, 'spam')", [no, ao, ao, ao, ao, ok, no]),
    ("admin_unsuspend_user", f"select public.admin_unsuspend_user({FAN}, 'ok')",
     [no, ao, ao, ao, ao, 'PT409 status_unchanged', no]),
    ("admin_suspend_vtuber", f"select public.admin_suspend_vtuber({OVT}, 'spam')", [no, ao, ao, ao, ao, ok, no]),
    ("admin_unsuspend_vtuber", f"select public.admin_unsuspend_vtuber({OVT}, 'ok')",
     [no, ao, ao, ao, ao, 'PT409 status_unchanged', no]),
    ("admin_suspend_gacha", f"select public.admin_suspend_gacha({P}, 'odds')", [no, ao, ao, ao, ao, ok, no]),
    ("admin_unsuspend_gacha", f"select public.admin_unsuspend_gacha({P}, 'ok')",
     [no, ao, ao, ao, ao, 'PT409 status_unchanged', no]),
    ("admin_grant_role", f"select public.admin_grant_role({FAN}, 'vtuber', 'approved offline')",
     [no, ao, ao, ao, ao, ok, no]),
    ("admin_revoke_role", f"select public.admin_revoke_role({OWNER}, 'vtuber', 'left')",
     [no, ao, ao, ao, ao, ok, no]),
    ("verify_audit_chain", "select public.verify_audit_chain()", [no, ao, ao, ao, ao, ok, ok]),
    ("private.append_audit", "select private.append_audit(null, 'x', null, null, null)", [no] * 7),
    ("private.admin_set_role", f"select private.admin_set_role({FAN}, 'admin', true, 'x')",
     [no, ao, ao, ao, ao, ok, no]),
    ("private.is_admin", "select private.is_admin()", [no, ok, ok, ok, ok, ok, ok]),
]
tables = ['profiles', 'user_roles', 'vtubers', 'vtuber_applications', 'gachas', 'gacha_items', 'exchange_items',
          'platform_settings', 'audit_log']
public_read = {'vtubers', 'gachas', 'gacha_items', 'exchange_items', 'platform_settings'}
service_write = {'gachas', 'gacha_items', 'exchange_items'}
inserts = {
    'gachas': f"insert into app.gachas (vtuber_id, title, start_at, end_at) "
              f"values ({OVT}, 'x', now(), now() + interval '1 day')",
    'gacha_items': f"insert into app.gacha_items (gacha_id, name, rarity, rate_ppm, content_path) "
                   f"values ({D}, 'x', 'N', 1, 'a/b')",
    'exchange_items': f"insert into app.exchange_items (vtuber_id, name, medal_cost, content_path) "
                      f"values ({OVT}, 'x', 1, 'a/b')",
}
cols = {'profiles': 'display_name', 'user_roles': 'role', 'vtubers': 'name', 'vtuber_applications': 'status',
        'gachas': 'title', 'gacha_items': 'name', 'exchange_items': 'name', 'platform_settings': 'value',
        'audit_log': 'action'}
for t in tables:
    rows.append((f"select app.{t}", f"select count(*) from app.{t}", [ok if t in public_read else no] + [ok] * 6))
    w = [no] * 6 + [ok if t in service_write else no]
    rows.append((f"insert app.{t}", inserts.get(t, f"insert into app.{t} select * from app.{t} where false"), w))
    rows.append((f"update app.{t}", f"update app.{t} set {cols[t]} = {cols[t]} where false", w))
    rows.append((f"delete app.{t}", f"delete from app.{t} where false", w))
rows.append(("content paths of app.gacha_items", "select content_path from app.gacha_items", [no] * 6 + [ok]))
rows.append(("content paths of app.exchange_items", "select content_path from app.exchange_items", [no] * 6 + [ok]))
rows.append(("user_id of app.vtubers", "select user_id from app.vtubers", [no] * 6 + [ok]))
for v in ['vtubers', 'gachas', 'gacha_items', 'gacha_rarity_odds', 'exchange_items']:
    rows.append((f"view public.{v}", f"select count(*) from public.{v}", [ok] * 7))
    # every public view has INSTEAD OF triggers (sql/catalog/55_read_only_views.sql), so even a join
    # view reaches the privilege check (42501) instead of the rewriter's 55000
    rows.append((f"write view public.{v}", f"delete from public.{v} where false", [no] * 7))
rows.append(("view public.audit_log", "select count(*) from public.audit_log", [no] + [ok] * 6))

personas = ['anon', 'fan', 'other_fan', 'owner', 'other_vtuber', 'admin', 'service_role']


def q(s):
    return "'" + s.replace("'", "''") + "'"


vals = []
for obj, sql, exp in rows:
    assert len(exp) == 7, obj
    for p, e in zip(personas, exp, strict=True):
        vals.append(f"  ({q(obj)}, {q(p)}, {q(sql)}, {q(e)})")
visible = [
    ("fan sees only their own profile", "fan", "select count(*) from app.profiles", "1"),
    ("fan is a fan only, whatever their sign-up metadata said", "fan",
     "select string_agg(role, ',') from app.user_roles", "fan"),
    ("admin sees every profile", "admin", "select count(*) from app.profiles", "5"),
    ("fan sees only their own application", "fan", "select count(*) from app.vtuber_applications", "1"),
    ("other fan sees no application", "other_fan", "select count(*) from app.vtuber_applications", "0"),
    ("admin sees every application", "admin", "select count(*) from app.vtuber_applications", "1"),
    ("anon sees the published gacha only", "anon", "select count(*) from app.gachas", "1"),
    ("fan sees the published gacha only", "fan", "select count(*) from app.gachas", "1"),
    ("other VTuber cannot see the owner's draft", "other_vtuber", "select count(*) from app.gachas", "1"),
    ("owner sees their draft too", "owner", "select count(*) from app.gachas", "2"),
    ("admin sees every gacha", "admin", "select count(*) from app.gachas", "2"),
    ("anon sees the published gacha's items only", "anon", "select count(*) from app.gacha_items", "2"),
    ("owner sees the items of their draft", "owner", "select count(*) from app.gacha_items", "4"),
    ("the disclosure view never shows drafts, even to their owner", "owner",
     "select count(*) from public.gachas", "1"),
    ("anon reads the published odds: 100.0000%", "anon",
     "select sum(odds_percent)::text from public.gacha_items", "100.0000"),
    ("fan reads no audit log", "fan", "select count(*) from public.audit_log", "0"),
    ("anon sees approved VTubers", "anon", "select count(*) from public.vtubers", "2"),
]
vis = ",\n".join(f"  ({q(a)}, {q(b)}, {q(c)}, {q(d)})" for a, b, c, d in visible)
matrix = ",\n".join(vals)
out = f"""-- The privilege matrix: every catalog table, view and function as anon, a fan, another fan,
-- the owning VTuber, another VTuber, an admin and the service role; allowed ('ok') or denied
-- with its SQLSTATE (and message for our PTxyz codes). Each probe's effects are rolled back.
-- Generated by tests/catalog/gen_privilege_matrix.py; edit that and regenerate.
begin;
{setup}
create function tests.scalar_as(p_persona text, p_sql text) returns text language plpgsql as $$
declare
  v text;
begin
  if p_persona = 'anon' then perform tests.clear_authentication();
  else perform tests.authenticate_as(tests.persona_id(p_persona));
  end if;
  execute p_sql into v;
  perform tests.as_postgres();
  return v;
end
$$;
grant execute on function tests.scalar_as(text, text) to anon, authenticated, service_role;

create temporary table matrix (object text, persona text, sql text, expected text);
insert into matrix (object, persona, sql, expected) values
{matrix};
create temporary table visibility (description text, persona text, sql text, expected text);
insert into visibility values
{vis};

select plan((select count(*)::integer from matrix) + (select count(*)::integer from visibility) + 1);

select is(tests.probe(persona, sql), expected, format('%s as %s', object, persona)) from matrix;
select is(tests.scalar_as(persona, sql), expected, description) from visibility;
select is((select count(*)::integer from matrix), {len(vals)}, 'the matrix covers every object for every persona');

select * from finish();
rollback;
"""


if __name__ == "__main__":
    TARGET.write_text(out)
    print(f"{TARGET.name}: {len(vals)} matrix probes")
