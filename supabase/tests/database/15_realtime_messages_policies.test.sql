-- Who may receive and send on which Realtime topic: the RLS policies on realtime.messages.
-- Realtime checks a join by inserting a probe row for the topic as itself, then selecting it
-- back as the caller (select = may receive), and a send by inserting as the caller (insert =
-- may send); these tests do the same.
begin;
select plan(16);

create temp table ids (k text primary key, v uuid) on commit drop;
grant select on ids to anon, authenticated;
insert into ids values ('fan', tests.create_user('rt-fan@t')), ('other', tests.create_user('rt-other@t')),
                       ('vuser', tests.create_user('rt-v@t'));
insert into app.vtubers (user_id, name, status, approved_at)
select v, 'Vee', 'approved', now() from ids where k = 'vuser';
insert into app.gachas (vtuber_id, title, start_at, end_at)
select id, 'G', now() - interval '1 day', now() + interval '1 day' from app.vtubers where name = 'Vee';
insert into ids select 'gacha', id from app.gachas where title = 'G';
insert into app.orders (user_id, gacha_id, vtuber_id, pull_count, amount_jpy, medals, idempotency_key, expires_at)
select (select v from ids where k = 'fan'), g.id, g.vtuber_id, 10, 1000, 100, 'k1', now() + interval '30 minutes'
  from app.gachas g where g.title = 'G';
insert into ids select 'order', id from app.orders where idempotency_key = 'k1';

create temp table topics on commit drop as
select 'order:' || (select v from ids where k = 'order') as order_topic,
       'gacha:' || (select v from ids where k = 'gacha') || ':feed' as feed_topic;
grant select on topics to anon, authenticated;

-- Probe rows as Realtime inserts them (as itself, before switching to the caller).
insert into realtime.messages (id, topic, extension)
select '00000000-0000-4000-9000-000000000001'::uuid, order_topic, 'broadcast' from topics
union all select '00000000-0000-4000-9000-000000000002'::uuid, order_topic, 'presence' from topics
union all select '00000000-0000-4000-9000-000000000003'::uuid, feed_topic, 'broadcast' from topics
union all select '00000000-0000-4000-9000-000000000004'::uuid, feed_topic, 'presence' from topics
union all select '00000000-0000-4000-9000-000000000005'::uuid, 'order:not-a-uuid', 'broadcast'
union all select '00000000-0000-4000-9000-000000000006'::uuid, 'gacha:' || gen_random_uuid() || ':feedx', 'broadcast';

create function pg_temp.visible() returns text[] language sql as $$
  select coalesce(array_agg(right(id::text, 1) order by id), '{}') from realtime.messages
   where id::text like '00000000-0000-4000-9000-%'
$$;

-- The order's fan
select tests.authenticate_as((select v from ids where k = 'fan'));
select is(pg_temp.visible(), array['1', '3', '4'],
          'the fan may receive broadcasts on their order topic and the launch feed (broadcast and presence)');
select throws_ok($$insert into realtime.messages (topic, extension) select order_topic, 'broadcast' from topics$$,
                 '42501', null, 'the fan may not send on their order topic (only the database does)');
select throws_ok($$insert into realtime.messages (topic, extension) select feed_topic, 'broadcast' from topics$$,
                 '42501', null, 'nobody may broadcast on a launch feed');
select lives_ok($$insert into realtime.messages (topic, extension) select feed_topic, 'presence' from topics$$,
                'a watcher may share presence on a launch feed');
select throws_ok($$insert into realtime.messages (topic, extension) select order_topic, 'presence' from topics$$,
                 '42501', null, 'presence is not shared on an order topic');
select is(private.can_receive_order_topic('order:not-a-uuid'), false, 'a malformed order topic is no error, just no');
reset role;

-- Another fan
select tests.authenticate_as((select v from ids where k = 'other'));
select is(pg_temp.visible(), array['3', '4'], 'another fan sees only the launch feed, never the order');
select throws_ok($$insert into realtime.messages (topic, extension) select order_topic, 'broadcast' from topics$$,
                 '42501', null, 'another fan may not send on the order topic');
reset role;

-- Anonymous visitors
select tests.clear_authentication();
select is(pg_temp.visible(), array['3', '4'], 'an anonymous visitor may watch the launch feed only');
select lives_ok($$insert into realtime.messages (topic, extension) select feed_topic, 'presence' from topics$$,
                'an anonymous watcher may share presence on a launch feed');
select throws_ok($$insert into realtime.messages (topic, extension) values ('anything', 'broadcast')$$,
                 '42501', null, 'an anonymous visitor may not send anywhere else');
reset role;

-- The live-pull trigger writes to realtime.messages, never failing the payment.
delete from realtime.messages;
update app.orders set status = 'failed' where id = (select v from ids where k = 'order');
select results_eq($$select topic, event, private, payload ->> 'status' from realtime.messages$$,
                  $$select order_topic, 'status', true, 'failed' from topics$$,
                  'a failed order is broadcast on its private order topic');
delete from realtime.messages;
update app.orders set expires_at = expires_at + interval '1 minute' where id = (select v from ids where k = 'order');
select is((select count(*)::int from realtime.messages), 0, 'an update that changes nothing a fan watches sends nothing');

-- Launch-feed opt-in
select tests.authenticate_as((select v from ids where k = 'fan'));
select is(public.set_show_in_launch_feed(true), '{"show_in_launch_feed": true}'::jsonb, 'a fan may opt in');
reset role;
select is((select show_in_launch_feed from app.profiles where user_id = (select v from ids where k = 'fan')), true,
          'the opt-in is stored on the profile');
select is((select show_in_launch_feed from app.profiles where user_id = (select v from ids where k = 'other')), false,
          'the launch feed is anonymous by default');

select * from finish();
rollback;
