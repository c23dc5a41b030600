-- Downloads: ownership, revocation, 3 per reward per JST day, the log, and the Storage policy that
-- lets a fan read an object only for a few minutes after an authorised request of theirs.
begin;
select plan(26);

-- The economy fixture (supabase/tests/economy_fixture.sql) is installed with the test helpers.

insert into econ_test.ids values ('v', econ_test.vtuber('v@t'));
insert into econ_test.ids values
  ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"a","rarity":"N","rate_ppm":1000000}]')),
  ('f', econ_test.fan('f@t')), ('f2', econ_test.fan('f2@t'));
insert into econ_test.ids values ('o', econ_test.paid('f', 1, 'k1', now())), ('o2', econ_test.paid('f', 1, 'k2', now())),
  ('o3', econ_test.paid('f2', 1, 'k3', now()));
insert into econ_test.ids select 'r', r.id from app.user_rewards r join app.pulls p on p.id = r.pull_id
  where p.order_id = econ_test.id('o');
insert into econ_test.ids select 'r2', r.id from app.user_rewards r join app.pulls p on p.id = r.pull_id
  where p.order_id = econ_test.id('o2');
insert into econ_test.ids select 'r3', r.id from app.user_rewards r join app.pulls p on p.id = r.pull_id
  where p.order_id = econ_test.id('o3');
insert into storage.buckets (id, name, public) values ('rewards', 'rewards', false) on conflict do nothing;
insert into storage.objects (bucket_id, name) values ('rewards', 'g/a.png'), ('rewards', 'g/other.png');

-- ---- the core: 3 per reward per JST day ----
select is((private.request_download(econ_test.id('f'), econ_test.id('r'), timestamptz '2026-10-25 00:00+09', '198.51.100.7',
                                   'ua') - 'download_id' - 'user_reward_id'),
          '{"bucket": "rewards", "path": "g/a.png", "expires_at": "2026-10-24T15:01:00+00:00", "downloads_today": 1,
            "remaining_today": 2}'::jsonb, 'first download: bucket, path, a 1-minute expiry, 2 left today');
select lives_ok($$ select private.request_download(econ_test.id('f'), econ_test.id('r'), timestamptz '2026-10-25 12:00+09', null, null)
                  from generate_series(1, 2) $$, 'second and third the same JST day');
select throws_ok($$ select private.request_download(econ_test.id('f'), econ_test.id('r'), timestamptz '2026-10-25 23:59:59+09', null,
                                                    null) $$,
                 'PT429', 'download_limit_reached', 'the fourth that JST day is refused');
select lives_ok($$ select private.request_download(econ_test.id('f'), econ_test.id('r2'), timestamptz '2026-10-25 23:59:59+09', null,
                                                   null) $$, 'the limit is per reward');
select is(private.request_download(econ_test.id('f'), econ_test.id('r'), timestamptz '2026-10-25 15:00+00', null, null)
            ->> 'downloads_today', '1', 'at 00:00 JST (15:00 UTC) a new day begins');
select is((select count(*)::integer from app.downloads where user_reward_id = econ_test.id('r')), 4,
          'every authorised download is logged, refusals are not');
select is((select client_ip || ' ' || user_agent from app.downloads where user_reward_id = econ_test.id('r') order by id limit 1),
          '198.51.100.7 ua', 'the log keeps client address and user agent');

-- ---- ownership ----
select throws_ok($$ select private.request_download(econ_test.id('f2'), econ_test.id('r'), now(), null, null) $$,
                 'PT404', 'reward_not_found', 'another fan''s reward is not found');
select throws_ok($$ select private.request_download(econ_test.id('f'), gen_random_uuid(), now(), null, null) $$,
                 'PT404', 'reward_not_found', 'an unknown reward is not found');

-- ---- through the API as the fan ----
select tests.clear_authentication();
select throws_ok($$ select public.request_download(econ_test.id('r2')) $$, '42501', null, 'anon cannot request downloads');
select is((select count(*)::integer from storage.objects), 0, 'anon reads no reward object');
select tests.authenticate_as(econ_test.id('f'));
select set_config('request.headers', '{"user-agent": "koepon-test/1", "x-forwarded-for": "203.0.113.77, 203.0.113.9"}', true);
select is((select count(*)::integer from storage.objects), 0, 'before any request the fan reads no object');
select is(public.request_download(econ_test.id('r2')) ->> 'path', 'g/a.png', 'the fan authorises a download');
select is((select count(*)::integer from storage.objects), 0,
          'even right after, the fan reads no reward object: only the service role signs (for one minute)');
select is((select user_agent || ' ' || client_ip from app.downloads order by id desc limit 1), 'koepon-test/1 203.0.113.9',
          'the API request''s user agent and address are logged');
select throws_ok($$ insert into app.downloads (user_id, user_reward_id, bucket, path, jst_date, expires_at)
                    values (auth.uid(), econ_test.id('r2'), 'rewards', 'g/other.png', current_date, now() + interval '1 hour') $$,
                 '42501', null, 'a fan cannot write the download log');
select is((select count(*)::integer from app.downloads where user_id <> auth.uid()), 0, 'fans read only their own log');

select tests.authenticate_as(econ_test.id('f2'));
select is((select count(*)::integer from storage.objects), 0, 'another fan reads nothing (same path, not their request)');
select tests.as_postgres();
select lives_ok($$ select private.request_download(econ_test.id('f2'), econ_test.id('r3'), now(), null, null) $$,
                'f2 authorises a download of their own reward');
select tests.authenticate_as(econ_test.id('f2'));
select is((select count(*)::integer from storage.objects), 0,
          'a live authorisation of their own gives no Storage read either');
select tests.authenticate_as(econ_test.id('f'));
select throws_ok($$ update app.downloads set expires_at = now() + interval '1 day' $$, '42501', null,
                 'nobody extends a download window');

-- ---- revocation ----
select tests.as_postgres();
update app.user_rewards set revoked_at = now() where id in (econ_test.id('r'), econ_test.id('r2'));
select throws_ok($$ select private.request_download(econ_test.id('f'), econ_test.id('r'), timestamptz '2026-12-01 12:00+09', null,
                                                    null) $$,
                 'PT409', 'reward_revoked', 'a revoked reward cannot be downloaded');
select tests.authenticate_as(econ_test.id('f'));
select is((select count(*)::integer from storage.objects), 0,
          'after revocation the fan still reads nothing');
select tests.as_postgres();
select throws_ok($$ delete from app.downloads $$, 'PT409', 'history_append_only', 'the download log is append-only');
select ok(not has_function_privilege('anon', 'public.request_download(uuid)', 'execute'), 'anon has no execute');
select ok(not (select prosecdef from pg_proc where oid = 'public.request_download(uuid)'::regprocedure),
          'the public function is an invoker wrapper');

select * from finish();
rollback;
