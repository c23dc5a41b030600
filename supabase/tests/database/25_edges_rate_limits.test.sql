-- Rate limits: the pre-request hook's windows, driven with explicit times through
-- private.check_request_at(p_now), as PostgREST would call it (role, claims, path, headers set).
begin;
select plan(43);

select tests.create_user('rl1@t', '{}', '00000000-0000-4000-8000-0000000000a1');
select tests.create_user('rl2@t', '{}', '00000000-0000-4000-8000-0000000000a2');
select tests.create_user('rl3@t', '{}', '00000000-0000-4000-8000-0000000000a3');
select tests.create_user('rl4@t', '{}', '00000000-0000-4000-8000-0000000000a4');

-- ---- shape ----
select ok((select 'pgrst.db_pre_request=private.check_request' = any (s.setconfig)
             from pg_db_role_setting s where s.setrole = 'authenticator'::regrole and s.setdatabase = 0),
          'the authenticator role names private.check_request as pgrst.db_pre_request');
select is((select c.relpersistence::text from pg_class c where c.oid = 'app.rate_limit_hits'::regclass), 'u',
          'the counters are an UNLOGGED table');
select ok(not (select p.prosecdef from pg_proc p where p.oid = 'private.check_request()'::regprocedure),
          'the hook is security invoker (anon may run it; no definer is exposed to anon)');
select ok(has_function_privilege('anon', 'private.check_request()', 'execute')
          and has_function_privilege('authenticated', 'private.check_request()', 'execute'),
          'anon and authenticated can run the hook');
select ok(not has_function_privilege('anon', 'public.service_sweep_rate_limits()', 'execute')
          and not has_function_privilege('authenticated', 'public.service_sweep_rate_limits()', 'execute')
          and has_function_privilege('service_role', 'public.service_sweep_rate_limits()', 'execute'),
          'only service_role sweeps');
select is((select jsonb_object_agg(bucket, per_minute) from app.rate_limit_rules),
          '{"ip": 20, "user": 100, "create_order": 5, "exchange_medals": 10, "payments": 20}'::jsonb, 'the limits');
select ok(not has_function_privilege('anon', 'public.service_take_payment_request(uuid)', 'execute')
          and not has_function_privilege('authenticated', 'public.service_take_payment_request(uuid)', 'execute')
          and has_function_privilege('service_role', 'public.service_take_payment_request(uuid)', 'execute'),
          'only service_role counts payment-service requests');
select ok(not has_function_privilege('anon', 'public.service_ping()', 'execute')
          and not has_function_privilege('authenticated', 'public.service_ping()', 'execute')
          and has_function_privilege('service_role', 'public.service_ping()', 'execute'),
          'only service_role pings');

-- ---- a signed-in user: 100 per minute, sliding window ----
select tests.authenticate_as('00000000-0000-4000-8000-0000000000a1');
select set_config('request.path', '/rpc/get_order', true), set_config('request.method', 'POST', true),
       set_config('request.headers', '{"x-forwarded-for": "198.51.100.1"}', true);
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 10:00:00+00') from generate_series(1, 100) $$,
                '100 requests in a minute pass');
select throws_ok($$ select private.check_request_at(timestamptz '2026-11-25 10:00:59+00') $$, 'PT429', 'rate_limited',
                 'the 101st in the same minute is refused');
select is((select hits from app.rate_limit_hits where subject = 'u:00000000-0000-4000-8000-0000000000a1'
            and bucket = 'user'), 100, 'the refused request was not counted (rolled back)');
select throws_ok($$ select private.check_request_at(timestamptz '2026-11-25 10:01:00+00') $$, 'PT429', 'rate_limited',
                 'sliding window: at the start of the next minute the previous 100 still weigh fully');
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 10:01:30+00') from generate_series(1, 50) $$,
                'half-way through the next minute: 100 x 0.5 + 50 = 100 pass');
select throws_ok($$ select private.check_request_at(timestamptz '2026-11-25 10:01:30+00') $$, 'PT429', 'rate_limited',
                 '... and the 51st of that minute is refused');
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 10:03:00+00') from generate_series(1, 100) $$,
                'two minutes later the window is clear again');

select tests.authenticate_as('00000000-0000-4000-8000-0000000000a2');
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 10:00:30+00') from generate_series(1, 100) $$,
                'another user has a budget of their own (same address)');

-- RLS: a user sees and writes only their own counters
select is((select count(*)::integer from app.rate_limit_hits where subject <> 'u:00000000-0000-4000-8000-0000000000a2'),
          0, 'a user sees only their own counters');
select throws_ok($$ insert into app.rate_limit_hits (subject, bucket, window_start) values
                    ('u:00000000-0000-4000-8000-0000000000a1', 'user', timestamptz '2026-11-25 10:05:00+00') $$,
                 '42501', null, 'a user cannot write another subject''s counter');
select throws_ok($$ delete from app.rate_limit_hits $$, '42501', null, 'a user cannot delete counters');

-- ---- per-RPC limits ----
select tests.authenticate_as('00000000-0000-4000-8000-0000000000a3');
select set_config('request.path', '/rpc/create_order', true);
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 11:00:00+00') from generate_series(1, 5) $$,
                'create_order: 5 per minute pass');
select throws_ok($$ select private.check_request_at(timestamptz '2026-11-25 11:00:10+00') $$, 'PT429', 'rate_limited',
                 'the 6th create_order is refused');
select set_config('request.path', '/rpc/list_my_orders', true);
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 11:00:10+00') $$,
                'other calls of that user still pass (6 of 100)');
select set_config('request.path', '/rpc/exchange_medals', true);
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 11:00:20+00') from generate_series(1, 10) $$,
                'exchange_medals: 10 per minute pass');
select throws_ok($$ select private.check_request_at(timestamptz '2026-11-25 11:00:20+00') $$, 'PT429', 'rate_limited',
                 'the 11th exchange is refused');
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 11:02:00+00') from generate_series(1, 10) $$,
                'exchange budget back after the window slides past');

-- ---- anonymous clients: 20 per address ----
select tests.clear_authentication();
select set_config('request.path', '/rpc/get_gacha', true),
       set_config('request.headers', '{"x-forwarded-for": "10.0.0.1, 203.0.113.5"}', true);
select is(private.rate_limit_subject(), 'ip:203.0.113.5',
          'anonymous subject: the rightmost x-forwarded-for entry (24_edges_client_address has the rule)');
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:00+00') from generate_series(1, 20) $$,
                'anonymous: 20 per minute pass');
select throws_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:05+00') $$, 'PT429', 'rate_limited',
                 'the 21st from that address is refused');
select set_config('request.headers', '{"x-forwarded-for": "203.0.113.6"}', true);
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:05+00') from generate_series(1, 20) $$,
                'another address has its own budget');
select set_config('request.headers', '{"cf-connecting-ip": "2001:DB8::7", "x-forwarded-for": "203.0.113.5"}', true);
select is(private.rate_limit_subject(), 'ip:2001:db8::7', 'cf-connecting-ip first, in canonical form');
select set_config('request.headers', '{"x-forwarded-for": "<script>"}', true);
select is(private.rate_limit_subject(), 'ip:unknown', 'garbage is not a key');
select set_config('request.headers', '{"x-forwarded-for": "203.0.113.5"}', true);
select set_config('request.path', '/rpc/create_order', true);
select throws_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:30+00') $$, 'PT429', 'rate_limited',
                 'the address stays limited whatever it calls');

-- ---- service_role and direct connections are not limited ----
select tests.authenticate_as_service_role();
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:30+00') from generate_series(1, 500) $$,
                'service_role: 500 requests in a minute pass');
select tests.as_postgres();
select is((select count(*)::integer from app.rate_limit_hits where subject !~ '^(u|ip):'), 0,
          'service_role requests leave no counter');

-- ---- sweep ----
select tests.authenticate_as_service_role();
select cmp_ok(private.sweep_rate_limits(timestamptz '2026-11-25 12:01:10+00'), '>', 0,
              'the sweep deletes windows older than the previous minute');
select is((select count(*)::integer from app.rate_limit_hits
            where window_start < timestamptz '2026-11-25 12:00:00+00'), 0, 'nothing stale remains');
select is((select count(*)::integer from app.rate_limit_hits
            where window_start = timestamptz '2026-11-25 12:00:00+00'), 2, 'the previous minute is kept');

-- ---- the payment service's per-fan limit (service_take_payment_request) ----
select tests.clear_authentication();
select tests.authenticate_as_service_role();
select lives_ok($$ select private.take_payment_request('00000000-0000-4000-8000-0000000000b7',
                                                       timestamptz '2026-11-25 13:00:00+00' + n * interval '1 second')
                    from generate_series(1, 20) n $$, 'twenty requests of one fan in a minute');
select throws_ok($$ select private.take_payment_request('00000000-0000-4000-8000-0000000000b7',
                                                        timestamptz '2026-11-25 13:00:30+00') $$,
                 'PT429', 'rate_limited', 'the 21st is refused');
select is((select sum(hits)::integer from app.rate_limit_hits
            where subject = 'u:00000000-0000-4000-8000-0000000000b7' and bucket = 'payments'), 20,
          'counted as that fan''s in the payments bucket');
select is(auth.uid(), null, 'the service''s own claims are back after the call');

-- ---- read-only transactions (GET, STABLE functions): checked, not counted ----
select tests.as_postgres();
set transaction read only;
select tests.authenticate_as('00000000-0000-4000-8000-0000000000a4');
select set_config('request.path', '/rpc/get_order', true);
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:40+00') from generate_series(1, 200) $$,
                'read-only requests are not counted (and cannot be: no table can be written)');
select tests.clear_authentication();
select set_config('request.headers', '{"x-forwarded-for": "203.0.113.5"}', true);
select throws_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:40+00') $$, 'PT429', 'rate_limited',
                 'but a client already over its limit is refused on reads too');

select * from finish();
rollback;
