-- Catalog schema shape and the hygiene rules of `koepon db lint`, as assertions.
begin;
select plan(30);

select has_table('app', t, format('app.%s exists', t))
from unnest(array['profiles', 'user_roles', 'vtubers', 'vtuber_applications', 'gachas', 'gacha_items',
                  'exchange_items', 'platform_settings', 'audit_log']) t;
select has_view('public', v, format('public.%s exists', v))
from unnest(array['vtubers', 'gachas', 'gacha_items', 'gacha_rarity_odds', 'exchange_items', 'audit_log']) v;

select col_is_pk('app', 'user_roles', array['user_id', 'role'], 'user_roles: one row per (user, role)');
select ok(exists (select 1 from pg_indexes where schemaname = 'app' and indexname = 'vtuber_applications_one_open_per_user'),
          'at most one open application per user (partial unique index)');
select is((select value from app.platform_settings where key = 'max_expected_cost_jpy'), '50000'::jsonb,
          'the expected-cost limit defaults to ¥50,000');
select is_empty($$
  select a.attname from pg_constraint c
  join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
  where c.conrelid = 'app.exchange_items'::regclass and c.contype = 'f'
    and c.confrelid in ('app.gacha_items'::regclass, 'app.gachas'::regclass) $$,
  'no exchange item can require drawn items (no reference to gachas or gacha items)');
select ok(exists (select 1 from pg_trigger where tgrelid = 'auth.users'::regclass
                  and tgname = 'users_after_insert_create_profile'), 'sign-up trigger on auth.users');
select ok((select count(*) from pg_trigger where tgrelid = 'app.audit_log'::regclass and not tgisinternal) = 3,
          'audit_log: chain, no update/delete, no truncate triggers');

-- hygiene (koepon/db/hygiene.py)
select is_empty($$ select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname = 'public' and c.relkind in ('r', 'p', 'm', 'f') $$, 'no table in public');
select is_empty($$ select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname = 'app' and c.relkind in ('r', 'p') and not c.relrowsecurity $$,
                'RLS enabled on every app table');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                   where p.prosecdef and n.nspname in ('public', 'app', 'private')
                     and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c
                                     where c like 'search_path=%') $$,
                'every security definer function pins search_path');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                   where p.prosecdef and n.nspname in ('public', 'app', 'private')
                     and (has_function_privilege('anon', p.oid, 'execute')
                          or exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                                     where a.grantee = 0 and a.privilege_type = 'EXECUTE')) $$,
                'no security definer function is executable by anon or PUBLIC');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                   where p.prosecdef and n.nspname = 'public' $$,
                'public holds no security definer function (they live in private)');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                   where n.nspname = 'public' and obj_description(p.oid, 'pg_proc') is null
                     and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e') $$,
                'every public function has a comment');
select is_empty($$ select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where c.relkind = 'v' and n.nspname in ('public', 'app', 'private')
                     and not coalesce('security_invoker=true' = any (c.reloptions), false) $$,
                'every view is security_invoker');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                   where n.nspname = 'public'
                     and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
                     and exists (select 1 from unnest(coalesce(p.proargnames, '{}')) a where a !~ '^p_') $$,
                'every public function argument is named p_*');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                   where p.prosecdef and n.nspname = 'private' and obj_description(p.oid, 'pg_proc') is null $$,
                'every security definer function says why in its comment');

select * from finish();
rollback;
