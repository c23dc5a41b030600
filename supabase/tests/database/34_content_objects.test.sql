-- Publishing a gacha and creating or re-pointing an exchange item refuse content that is not in
-- Storage (storage.objects): fans must never pay for a reward whose download can only fail.
-- Fixture: supabase/tests/catalog_fixture.sql (its personas' objects exist).
begin;
select plan(9);
select tests.catalog_personas();

insert into app.gachas (id, vtuber_id, title, start_at, end_at) values
  ('10000000-0000-4000-d000-0000000000c1', '10000000-0000-4000-b000-000000000002', 'Missing content',
   now() - interval '1 day', now() + interval '30 days');
insert into app.gacha_items (gacha_id, name, rarity, rate_ppm, content_path, sort_order) values
  ('10000000-0000-4000-d000-0000000000c1', 'up', 'N', 900000, '10000000-0000-4000-b000-000000000002/d/n.mp3', 0),
  ('10000000-0000-4000-d000-0000000000c1', 'not up', 'SR', 100000, '10000000-0000-4000-b000-000000000002/c/missing.mp3', 1);

select is(tests.probe('owner', $$select public.publish_gacha('10000000-0000-4000-d000-0000000000c1')$$),
          'PT422 content_object_missing', 'an item whose content was never uploaded: publish refused');
select throws_like($$ select private.require_content_object('rewards', '10000000-0000-4000-b000-000000000002/c/missing.mp3') $$,
                   '%content_object_missing%', 'the helper names the stable code');
select is((select status from app.gachas where id = '10000000-0000-4000-d000-0000000000c1'), 'draft',
          'the refused gacha stays a draft');
-- The same object in another bucket does not count.
insert into storage.objects (bucket_id, name) values ('avatars', '10000000-0000-4000-b000-000000000002/c/missing.mp3');
select is(tests.probe('owner', $$select public.publish_gacha('10000000-0000-4000-d000-0000000000c1')$$),
          'PT422 content_object_missing', 'an object of that name in another bucket does not count');
insert into storage.objects (bucket_id, name) values ('rewards', '10000000-0000-4000-b000-000000000002/c/missing.mp3');
select is(tests.probe('owner', $$select public.publish_gacha('10000000-0000-4000-d000-0000000000c1')$$),
          'ok', 'once uploaded: published');

select is(tests.probe('owner', $$select public.create_exchange_item('x', 10, '10000000-0000-4000-b000-000000000002/c/none.mp3')$$),
          'PT422 content_object_missing', 'an exchange item whose content is missing: not created');
select is(tests.probe('owner', $$select public.create_exchange_item('x', 10, '10000000-0000-4000-b000-000000000002/x/voice.mp3')$$),
          'ok', 'control: with its content uploaded it is created');
select is(tests.probe('owner', $$select public.update_exchange_item('10000000-0000-4000-f000-000000000001',
                                  '{"content_path": "10000000-0000-4000-b000-000000000002/c/none.mp3"}')$$),
          'PT422 content_object_missing', 're-pointing an active exchange item at missing content: refused');
select is(tests.probe('owner', $$select public.update_exchange_item('10000000-0000-4000-f000-000000000001',
                                  '{"medal_cost": 7}')$$),
          'ok', 'control: other changes of an item whose content exists still work');

select * from finish();
rollback;
