-- Reveal previews: the caller's own fulfilled order, for 15 minutes after fulfilment, rewards not
-- revoked; not a download (nothing counted or logged); no Storage read for fans; who may call it.
begin;
select plan(24);

insert into econ_test.ids values ('v', econ_test.vtuber('v@t'));
insert into econ_test.ids values
  ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"a","rarity":"N","rate_ppm":700000},
                                            {"name":"b","rarity":"SR","rate_ppm":300000}]')),
  ('f', econ_test.fan('f@t')), ('f2', econ_test.fan('f2@t')), ('adm', econ_test.fan('adm@t'));
insert into app.user_roles (user_id, role) values (econ_test.id('adm'), 'admin');
insert into econ_test.ids select 'vu', user_id from app.vtubers where id = econ_test.id('v');
insert into econ_test.ids values ('o', econ_test.paid('f', 10, 'k1', timestamptz '2026-10-25 12:00+09')),
  ('o2', econ_test.paid('f', 1, 'k2', now())), ('o3', econ_test.paid('f2', 1, 'k3', now()));
insert into econ_test.ids values ('pending', (private.create_order(econ_test.id('f'), econ_test.id('g'), 1, 'k4', now(),
                                              extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid);
insert into storage.buckets (id, name, public) values ('rewards', 'rewards', false) on conflict do nothing;
insert into storage.objects (bucket_id, name, metadata) values ('rewards', 'g/a.png', '{"mimetype": "image/png"}'),
  ('rewards', 'g/b.png', '{"mimetype": "image/png"}');

-- ---- the core (time passed in) ----
select is(jsonb_array_length(private.request_reveal_previews(econ_test.id('f'), econ_test.id('o'),
                                                             timestamptz '2026-10-25 12:00+09') -> 'previews'),
          10, 'right after fulfilment: one preview per pull');
select is((select count(distinct e ->> 'path')::integer
             from jsonb_array_elements(private.request_reveal_previews(econ_test.id('f'), econ_test.id('o'),
                                                                       timestamptz '2026-10-25 12:05+09') -> 'previews') e
            where e ->> 'bucket' = 'rewards' and e ->> 'mimetype' = 'image/png'
              and (e ->> 'path') in ('g/a.png', 'g/b.png')),
          (select count(distinct i.content_path)::integer from app.pulls p join app.gacha_items i on i.id = p.gacha_item_id
            where p.order_id = econ_test.id('o')),
          'each preview names the reward''s object and its media type from Storage');
select is((select array_agg((e ->> 'pull_id')::bigint order by (e ->> 'pull_id')::bigint)
             from jsonb_array_elements(private.request_reveal_previews(econ_test.id('f'), econ_test.id('o'),
                                                                       timestamptz '2026-10-25 12:05+09') -> 'previews') e),
          (select array_agg(p.id order by p.id) from app.pulls p where p.order_id = econ_test.id('o')),
          'the previews are exactly the order''s pulls');
select is(private.request_reveal_previews(econ_test.id('f'), econ_test.id('o'), timestamptz '2026-10-25 12:14:59+09')
            ->> 'expires_at', '2026-10-25T03:15:59+00:00', 'the URLs it authorises live one minute');
select throws_ok($$ select private.request_reveal_previews(econ_test.id('f'), econ_test.id('o'),
                                                           timestamptz '2026-10-25 12:15+09') $$,
                 'PT409', 'preview_window_closed', '15 minutes after fulfilment previews end (the reward box remains)');
select throws_ok($$ select private.request_reveal_previews(econ_test.id('f'), econ_test.id('pending'), now()) $$,
                 'PT409', 'order_not_fulfilled', 'an unpaid order has nothing to preview');
select throws_ok($$ select private.request_reveal_previews(econ_test.id('f2'), econ_test.id('o'),
                                                           timestamptz '2026-10-25 12:00+09') $$,
                 'PT404', 'order_not_found', 'another fan''s order is not found');
select throws_ok($$ select private.request_reveal_previews(econ_test.id('f'), gen_random_uuid(), now()) $$,
                 'PT404', 'order_not_found', 'an unknown order is not found');
select is((select count(*)::integer from app.downloads), 0, 'previews are not downloads: nothing is logged or counted');

-- ---- revocation: a refund inside the window stops its previews ----
update app.user_rewards set revoked_at = now()
 where pull_id = (select min(p.id) from app.pulls p where p.order_id = econ_test.id('o'));
select is(jsonb_array_length(private.request_reveal_previews(econ_test.id('f'), econ_test.id('o'),
                                                             timestamptz '2026-10-25 12:01+09') -> 'previews'),
          9, 'a revoked reward is left out');

-- ---- through the API, persona by persona ----
select tests.clear_authentication();
select throws_ok($$ select public.request_reveal_previews(econ_test.id('o2')) $$, '42501', null, 'anon: no execute');
select tests.authenticate_as(econ_test.id('f'));
select is(jsonb_array_length(public.request_reveal_previews(econ_test.id('o2')) -> 'previews'), 1,
          'the fan previews their own fresh order');
select is((select count(*)::integer from storage.objects), 0,
          'and still reads no reward object: only the service role signs (for one minute)');
select is((select count(*)::integer from app.downloads), 0, 'nor is a download logged');
select throws_ok($$ select public.request_reveal_previews(econ_test.id('o3')) $$, 'PT404', 'order_not_found',
                 'another fan''s order: not found');
select tests.authenticate_as(econ_test.id('f2'));
select is(jsonb_array_length(public.request_reveal_previews(econ_test.id('o3')) -> 'previews'), 1,
          'the other fan previews their own');
select throws_ok($$ select public.request_reveal_previews(econ_test.id('o2')) $$, 'PT404', 'order_not_found',
                 'but not the first fan''s');
select tests.authenticate_as(econ_test.id('vu'));
select throws_ok($$ select public.request_reveal_previews(econ_test.id('o2')) $$, 'PT404', 'order_not_found',
                 'the gacha''s VTuber cannot preview a fan''s order');
select tests.authenticate_as(econ_test.id('adm'));
select throws_ok($$ select public.request_reveal_previews(econ_test.id('o2')) $$, 'PT404', 'order_not_found',
                 'nor can an admin: previews are the buyer''s');
select tests.authenticate_as_service_role();
select throws_ok($$ select public.request_reveal_previews(econ_test.id('o2')) $$, '42501', null,
                 'service_role: no execute (the payment service calls it with the fan''s token)');
select tests.as_postgres();
update app.profiles set status = 'suspended' where user_id = econ_test.id('f');
select tests.authenticate_as(econ_test.id('f'));
select throws_ok($$ select public.request_reveal_previews(econ_test.id('o2')) $$, 'PT403', 'account_suspended',
                 'a suspended fan previews nothing');
select tests.as_postgres();

select ok(not (select prosecdef from pg_proc where oid = 'public.request_reveal_previews(uuid)'::regprocedure),
          'the public function is an invoker wrapper');
select ok(not has_function_privilege('authenticated', 'private.request_reveal_previews(uuid, uuid, timestamptz)', 'execute'),
          'the core (which takes a user id) is not callable by fans');
select is((select proconfig from pg_proc where oid = 'private.request_reveal_previews(uuid)'::regprocedure),
          array['search_path=""'], 'the definer pins an empty search_path');

select * from finish();
rollback;
