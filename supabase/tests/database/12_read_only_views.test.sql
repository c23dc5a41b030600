-- Read-only views: every public view refuses INSERT/UPDATE/DELETE with a 4xx code, never the
-- rewriter's 55000 (-> 500) a join view gives without INSTEAD OF triggers. The API roles hold no
-- write privilege (42501 -> 401/403); a role that does (the owner) reaches the trigger
-- (read_only_view, PT405). Views are enumerated from the catalog, so a new one is covered.
begin;
select plan(12);

-- One row in every view: an approved VTuber, a published gacha with items, an exchange item and
-- an audit entry.
select tests.create_user('rov@t.test', '{"display_name":"Rov"}', '12000000-0000-4000-a000-000000000001');
insert into app.user_roles (user_id, role) values ('12000000-0000-4000-a000-000000000001', 'vtuber');
insert into app.vtubers (id, user_id, name) values
  ('12000000-0000-4000-b000-000000000001', '12000000-0000-4000-a000-000000000001', 'Rov VT');
insert into app.gachas (id, vtuber_id, title, start_at, end_at) values
  ('12000000-0000-4000-d000-000000000001', '12000000-0000-4000-b000-000000000001', 'Published',
   now() - interval '1 day', now() + interval '30 days');
insert into app.gacha_items (gacha_id, name, rarity, rate_ppm, content_path) values
  ('12000000-0000-4000-d000-000000000001', 'N', 'N', 900000, '12000000-0000-4000-b000-000000000001/p/n.mp3'),
  ('12000000-0000-4000-d000-000000000001', 'SSR', 'SSR', 100000, '12000000-0000-4000-b000-000000000001/p/s.mp3');
update app.gachas set status = 'published' where id = '12000000-0000-4000-d000-000000000001';
insert into app.exchange_items (vtuber_id, name, medal_cost, content_path) values
  ('12000000-0000-4000-b000-000000000001', 'Voice', 100, '12000000-0000-4000-b000-000000000001/x/v.mp3');
select private.append_audit(null, 'test', 'gacha', '12000000-0000-4000-d000-000000000001', '{}');

create function tests.public_views() returns setof text language sql stable as $$
  select c.relname::text from pg_class c
   where c.relnamespace = 'public'::regnamespace and c.relkind = 'v' order by 1
$$;

-- 'view op sqlstate[ message]' for INSERT, UPDATE and DELETE through every public view as p_role
-- (anon, authenticated, service_role or postgres); each statement's effects are undone.
create function tests.view_writes(p_role text) returns text[] language plpgsql as $$
declare
  v_view text;
  v_op text;
  v_sql text;
  v_out text[] := '{}';
  v_col text;
begin
  for v_view in select tests.public_views() loop
    select a.attname into v_col from pg_attribute a
     where a.attrelid = format('public.%I', v_view)::regclass and a.attnum = 1;
    foreach v_op in array array['insert', 'update', 'delete'] loop
      v_sql := case v_op
        when 'insert' then format('insert into public.%I default values', v_view)
        when 'update' then format('update public.%I set %I = %I', v_view, v_col, v_col)
        else format('delete from public.%I', v_view) end;
      begin
        if p_role = 'anon' then perform tests.clear_authentication();
        elsif p_role = 'service_role' then perform tests.authenticate_as_service_role();
        elsif p_role = 'authenticated' then perform tests.authenticate_as('12000000-0000-4000-a000-000000000001');
        else perform tests.as_postgres();
        end if;
        execute v_sql;
        v_out := v_out || format('%s %s ok', v_view, v_op);
        raise exception using errcode = 'P0004', message = 'rollback';
      exception when others then
        if sqlstate <> 'P0004' then
          v_out := v_out || format('%s %s %s%s', v_view, v_op, sqlstate,
                                   case when sqlstate like 'PT%' then ' ' || sqlerrm else '' end);
        end if;
      end;
      perform tests.as_postgres();
    end loop;
  end loop;
  return v_out;
end $$;

create function tests.expected(p_outcome text) returns text[] language sql stable as $$
  select array(select format('%s %s %s', v, op, p_outcome)
                 from tests.public_views() v, unnest(array['insert', 'update', 'delete']) op
                order by v, array_position(array['insert', 'update', 'delete'], op))
$$;

-- Shape: every public view carries the INSTEAD OF triggers and grants the API roles SELECT only.
select cmp_ok((select count(*) from tests.public_views()), '>=', 6::bigint, 'the public views are enumerated');
select is(array(select table_name::text from information_schema.views
                 where table_schema = 'public'
                   and not (is_trigger_insertable_into = 'YES' and is_trigger_updatable = 'YES'
                            and is_trigger_deletable = 'YES') order by 1),
          '{}'::text[], 'every public view has INSTEAD OF insert/update/delete triggers');
select is(array(select format('%s %s %s', r, v, p)
                  from tests.public_views() v,
                       unnest(array['anon', 'authenticated', 'service_role']) r,
                       unnest(array['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
                 where has_table_privilege(r, format('public.%I', v), p) order by 1),
          '{}'::text[], 'no API role holds a write privilege on a public view');
select is(array(select t.tgname::text from pg_trigger t join pg_class c on c.oid = t.tgrelid
                 where c.relnamespace = 'public'::regnamespace and c.relkind = 'v'
                   and t.tgfoid <> 'private.refuse_view_write()'::regprocedure order by 1),
          '{}'::text[], 'the only triggers on public views are the refusals');

-- Every view shows a row to the owner, so UPDATE/DELETE reach the trigger.
create function tests.view_rows(p_view text) returns bigint language plpgsql as $$
declare n bigint;
begin
  execute format('select count(*) from public.%I', p_view) into n;
  return n;
end $$;
select is(array(select v from tests.public_views() v where tests.view_rows(v) = 0 order by 1),
          '{}'::text[], 'fixture: every public view has a row');

-- Behaviour.
select is(tests.view_writes('anon'), tests.expected('42501'), 'anon: every write through a view is 42501');
select is(tests.view_writes('authenticated'), tests.expected('42501'),
          'a signed-in user: every write through a view is 42501');
select is(tests.view_writes('service_role'), tests.expected('42501'),
          'service_role: every write through a view is 42501');
select is(tests.view_writes('postgres'), tests.expected('PT405 read_only_view'),
          'the owner reaches the trigger: read_only_view (PT405), never 55000');
select throws_ok($$delete from public.gachas where id = '12000000-0000-4000-d000-000000000001'$$,
                 'PT405', 'read_only_view', 'a targeted DELETE through a join view is refused');

-- Nothing changed underneath.
select is((select status from app.gachas where id = '12000000-0000-4000-d000-000000000001'), 'published',
          'the gacha is untouched');
select is((select count(*) from app.gacha_items where gacha_id = '12000000-0000-4000-d000-000000000001'),
          2::bigint, 'its items are untouched');

select * from finish();
rollback;
