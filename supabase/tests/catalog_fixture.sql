-- The catalog test personas, installed once with helpers.sql into every test database (never by a
-- migration). A pgTAP file calls tests.catalog_personas() inside its transaction to create them
-- (fixed ids: an admin, the owning VTuber, another VTuber, a fan, another fan, with a draft and a
-- published gacha, an exchange item and an application of the owner), and tests.probe() to run SQL
-- as one of them, rolling its effects back.
create or replace function tests.catalog_personas() returns void language plpgsql as $fixture$
begin
  perform tests.create_user('admin@t.test', '{"display_name":"Admin"}', '10000000-0000-4000-a000-000000000001');
  perform tests.create_user('owner@t.test', '{"display_name":"Owner"}', '10000000-0000-4000-a000-000000000002');
  perform tests.create_user('othervt@t.test', '{"display_name":"Other VTuber"}', '10000000-0000-4000-a000-000000000003');
  perform tests.create_user('fan@t.test', '{"display_name":"Fan","role":"admin"}', '10000000-0000-4000-a000-000000000004');
  perform tests.create_user('otherfan@t.test', '{"display_name":"Other fan"}', '10000000-0000-4000-a000-000000000005');
  insert into app.user_roles (user_id, role) values
    ('10000000-0000-4000-a000-000000000001', 'admin'),
    ('10000000-0000-4000-a000-000000000002', 'vtuber'),
    ('10000000-0000-4000-a000-000000000003', 'vtuber');
  insert into app.vtubers (id, user_id, name) values
    ('10000000-0000-4000-b000-000000000002', '10000000-0000-4000-a000-000000000002', 'Owner VT'),
    ('10000000-0000-4000-b000-000000000003', '10000000-0000-4000-a000-000000000003', 'Other VT');
  -- a draft and a published gacha of the owner; an exchange item of the owner
  insert into app.gachas (id, vtuber_id, title, start_at, end_at) values
    ('10000000-0000-4000-d000-000000000001', '10000000-0000-4000-b000-000000000002', 'Draft',
     now() - interval '1 day', now() + interval '30 days'),
    ('10000000-0000-4000-d000-000000000002', '10000000-0000-4000-b000-000000000002', 'Published',
     now() - interval '1 day', now() + interval '30 days');
  insert into app.gacha_items (id, gacha_id, name, rarity, rate_ppm, stock, content_path) values
    ('10000000-0000-4000-e000-000000000001', '10000000-0000-4000-d000-000000000001', 'D-N', 'N', 600000, null,
     '10000000-0000-4000-b000-000000000002/d/n.mp3'),
    ('10000000-0000-4000-e000-000000000002', '10000000-0000-4000-d000-000000000001', 'D-SR', 'SR', 400000, null,
     '10000000-0000-4000-b000-000000000002/d/sr.mp3'),
    ('10000000-0000-4000-e000-000000000003', '10000000-0000-4000-d000-000000000002', 'P-N', 'N', 900000, 50,
     '10000000-0000-4000-b000-000000000002/p/n.mp3'),
    ('10000000-0000-4000-e000-000000000004', '10000000-0000-4000-d000-000000000002', 'P-SSR', 'SSR', 100000, null,
     '10000000-0000-4000-b000-000000000002/p/ssr.mp3');
  update app.gachas set status = 'published' where id = '10000000-0000-4000-d000-000000000002';
  insert into app.exchange_items (id, vtuber_id, name, medal_cost, content_path) values
    ('10000000-0000-4000-f000-000000000001', '10000000-0000-4000-b000-000000000002', 'Voice', 100,
     '10000000-0000-4000-b000-000000000002/x/voice.mp3');
  insert into app.vtuber_applications (id, user_id, vtuber_name, description) values
    ('10000000-0000-4000-c000-000000000001', '10000000-0000-4000-a000-000000000004', 'Fan VT', 'hello');
  -- The owner's uploaded content (publishing and exchange items need their objects in Storage):
  -- every path above, the exchange item path the privilege matrix creates, drafts' t/1..9.mp3.
  insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
  select 'rewards', '10000000-0000-4000-b000-000000000002/' || p, '10000000-0000-4000-a000-000000000002',
         '10000000-0000-4000-a000-000000000002', '{"mimetype": "audio/mpeg", "size": 1}'
    from unnest(array['d/n.mp3', 'd/sr.mp3', 'p/n.mp3', 'p/ssr.mp3', 'x/voice.mp3', 'i.mp3', 'a.mp3']
                || array(select 't/' || n || '.mp3' from generate_series(1, 9) n)) p
  on conflict do nothing;
end
$fixture$;

create or replace function tests.persona_id(p_persona text) returns uuid language sql immutable as $$
  select case p_persona when 'admin' then '10000000-0000-4000-a000-000000000001'
                        when 'owner' then '10000000-0000-4000-a000-000000000002'
                        when 'other_vtuber' then '10000000-0000-4000-a000-000000000003'
                        when 'fan' then '10000000-0000-4000-a000-000000000004'
                        when 'other_fan' then '10000000-0000-4000-a000-000000000005' end::uuid
$$;

-- 'ok', a bare SQLSTATE (42501, …) or 'PTxyz message'; the statement's effects are undone.
create or replace function tests.probe(p_persona text, p_sql text) returns text language plpgsql as $$
declare
  v_result text;
begin
  if p_persona = 'anon' then perform tests.clear_authentication();
  elsif p_persona = 'service_role' then perform tests.authenticate_as_service_role();
  elsif p_persona = 'postgres' then perform tests.as_postgres();
  else perform tests.authenticate_as(tests.persona_id(p_persona));
  end if;
  begin
    execute p_sql;
    raise exception using errcode = 'ZZOK1';
  exception
    when sqlstate 'ZZOK1' then v_result := 'ok';
    when others then
      v_result := case when sqlstate like 'PT%' then sqlstate || ' ' || sqlerrm else sqlstate end;
  end;
  perform tests.as_postgres();
  return v_result;
end
$$;
grant execute on all functions in schema tests to anon, authenticated, service_role;
