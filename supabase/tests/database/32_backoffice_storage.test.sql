-- Storage by migration: the buckets and their limits, and storage.objects RLS by prefix
-- (a VTuber writes only under "<vtuber_id>/", a fan and anon never; avatars are public to read).
begin;
select plan(14);
select tests.catalog_personas();

select is((select jsonb_agg(jsonb_build_object('id', id, 'public', public, 'limit', file_size_limit) order by id)
           from storage.buckets where id in ('avatars', 'rewards')),
          '[{"id": "avatars", "public": true, "limit": 5242880}, {"id": "rewards", "public": false, "limit": 104857600}]',
          'both buckets exist with their size limits');
select ok((select 'audio/mpeg' = any(allowed_mime_types) and 'video/mp4' = any(allowed_mime_types)
                  and not 'text/html' = any(allowed_mime_types) from storage.buckets where id = 'rewards'),
          'the content bucket takes images, audio and video only');

create temporary table probes (persona text, sql text, expected text);
grant select on probes to anon, authenticated, service_role;
insert into probes values
  ('owner', $$insert into storage.objects (bucket_id, name) values ('rewards', '10000000-0000-4000-b000-000000000002/g/a.mp3')$$, 'ok'),
  ('owner', $$insert into storage.objects (bucket_id, name) values ('avatars', '10000000-0000-4000-b000-000000000002/me.png')$$, 'ok'),
  ('owner', $$insert into storage.objects (bucket_id, name) values ('rewards', '10000000-0000-4000-b000-000000000003/g/a.mp3')$$, '42501'),
  ('owner', $$insert into storage.objects (bucket_id, name) values ('rewards', 'a.mp3')$$, '42501'),
  ('other_vtuber', $$insert into storage.objects (bucket_id, name) values ('rewards', '10000000-0000-4000-b000-000000000002/g/a.mp3')$$, '42501'),
  ('fan', $$insert into storage.objects (bucket_id, name) values ('rewards', '10000000-0000-4000-b000-000000000002/g/a.mp3')$$, '42501'),
  ('fan', $$insert into storage.objects (bucket_id, name) values ('avatars', '10000000-0000-4000-a000-000000000004/me.png')$$, '42501'),
  ('anon', $$insert into storage.objects (bucket_id, name) values ('avatars', 'x/me.png')$$, '42501');
select is(tests.probe(persona, sql), expected, persona || ': ' || substr(sql, 60, 70)) from probes;

-- Existing objects: the owner moves/deletes their own, nobody else touches them.
insert into storage.objects (bucket_id, name) values
  ('rewards', '10000000-0000-4000-b000-000000000002/g/keep.mp3'),
  ('avatars', '10000000-0000-4000-b000-000000000002/face.png');
create function tests.count_as(p_persona text, p_sql text) returns integer language plpgsql as $$
declare v integer;
begin
  if p_persona = 'anon' then perform tests.clear_authentication();
  else perform tests.authenticate_as(tests.persona_id(p_persona)); end if;
  execute p_sql into v;
  perform tests.as_postgres();
  return v;
end $$;
grant execute on function tests.count_as(text, text) to anon, authenticated;
-- Deletes as the Storage API makes them (it sets storage.allow_delete_query in the transaction).
select set_config('storage.allow_delete_query', 'true', true);
select is(tests.count_as('other_vtuber', $$with d as (delete from storage.objects where name like '10000000-0000-4000-b000-000000000002/%' returning 1) select count(*)::integer from d$$),
          0, 'another VTuber deletes nothing under the owner''s prefix');
select is(tests.count_as('owner', $$select count(*)::integer from storage.objects where bucket_id = 'rewards'$$),
          (select count(*)::integer from storage.objects
            where bucket_id = 'rewards' and name like '10000000-0000-4000-b000-000000000002/%'),
          'the owner lists their own content (keep.mp3 and the fixture''s uploads)');
select is(tests.count_as('anon', $$select count(*)::integer from storage.objects where bucket_id = 'avatars'$$), 1,
          'anyone lists the public avatars');
select is(tests.count_as('owner', $$with d as (delete from storage.objects where name = '10000000-0000-4000-b000-000000000002/g/keep.mp3' returning 1) select count(*)::integer from d$$),
          1, 'the owner deletes their own object');

select * from finish();
rollback;
