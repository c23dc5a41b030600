-- Downloads: ownership, revocation, 3 per reward per JST day, the log, and the Storage policy that
-- lets a fan read an object only for a few minutes after an authorised request of theirs.
begin;
select plan(26);

-- Economy test fixture (pgTAP files and pytest load it): a VTuber with a published gacha.
create schema if not exists econ_test;
grant usage on schema econ_test to anon, authenticated, service_role;

-- A fan with a birth date (adult), returns the user id.
create or replace function econ_test.fan(p_email text, p_birth date default date '1990-01-01') returns uuid
language plpgsql as $$
declare v uuid;
begin
  v := tests.create_user(p_email);
  update app.profiles set birth_date = p_birth where user_id = v;
  return v;
end $$;

-- An approved VTuber, returns app.vtubers.id.
create or replace function econ_test.vtuber(p_email text, p_name text default 'Vee') returns uuid
language plpgsql as $$
declare u uuid; v uuid;
begin
  u := tests.create_user(p_email);
  insert into app.user_roles (user_id, role) values (u, 'vtuber') on conflict do nothing;
  insert into app.vtubers (user_id, name, status, approved_at) values (u, p_name, 'approved', now()) returning id into v;
  return v;
end $$;

-- A published gacha. p_items: [{"name":..,"rarity":..,"rate_ppm":..,"stock":..}, ...] in sort order.
create or replace function econ_test.gacha(
  p_vtuber uuid, p_items jsonb, p_cap integer default null, p_pity_pulls integer default null,
  p_pity_rarity text default null, p_price_single integer default 100, p_price_ten integer default 1000,
  p_medals integer default 10, p_bonus integer default 0
) returns uuid
language plpgsql as $$
declare g uuid; e jsonb; n integer := 0;
begin
  insert into app.gachas (vtuber_id, title, price_single, price_ten, medals_per_pull, ten_pull_bonus_medals,
                          start_at, end_at, total_pull_cap, pity_pulls, pity_rarity)
  values (p_vtuber, 'G', p_price_single, p_price_ten, p_medals, p_bonus, timestamptz '2026-01-01 00:00+00',
          timestamptz '2099-01-01 00:00+00', p_cap, p_pity_pulls, p_pity_rarity)
  returning id into g;
  for e in select x from jsonb_array_elements(p_items) x loop
    insert into app.gacha_items (gacha_id, name, rarity, rate_ppm, stock, content_path, sort_order)
    values (g, e ->> 'name', e ->> 'rarity', (e ->> 'rate_ppm')::integer, (e ->> 'stock')::integer,
            'g/' || (e ->> 'name') || '.png', n);
    n := n + 1;
  end loop;
  update app.gachas set status = 'published' where id = g;
  return g;
end $$;

create or replace function econ_test.exchange_item(
  p_vtuber uuid, p_cost integer, p_stock integer default null, p_limit integer default null,
  p_daily integer default null
) returns uuid
language sql as $$
  insert into app.exchange_items (vtuber_id, name, medal_cost, total_stock, per_fan_limit, per_fan_daily_limit,
                                  content_path)
  values (p_vtuber, 'X', p_cost, p_stock, p_limit, p_daily, 'x/item.png') returning id
$$;

create schema edges_t;
grant usage on schema edges_t to anon, authenticated, service_role;
create table edges_t.ids (k text primary key, v uuid not null);
grant select on edges_t.ids to anon, authenticated, service_role;
create function edges_t.id(p_k text) returns uuid language sql stable as $$ select v from edges_t.ids where k = p_k $$;
grant execute on function edges_t.id(text) to anon, authenticated, service_role;
-- A paid, fulfilled order of fan k at time t; returns the order id.
create function edges_t.paid(p_k text, p_n integer, p_key text, p_t timestamptz) returns uuid
language sql as $$
  select (private.fulfill_order(
            (private.create_order(edges_t.id(p_k), edges_t.id('g'), p_n, p_key, p_t, extensions.gen_random_bytes(32), 'cs')
             ->> 'order_id')::uuid,
            'stripe', 'pi_' || p_k || '_' || p_key, p_n * 100, 'JPY', p_t, extensions.gen_random_bytes(32), 'cs')
          ->> 'order_id')::uuid
$$;

insert into edges_t.ids values ('v', econ_test.vtuber('v@t'));
insert into edges_t.ids values
  ('g', econ_test.gacha(edges_t.id('v'), '[{"name":"a","rarity":"N","rate_ppm":1000000}]')),
  ('f', econ_test.fan('f@t')), ('f2', econ_test.fan('f2@t'));
insert into edges_t.ids values ('o', edges_t.paid('f', 1, 'k1', now())), ('o2', edges_t.paid('f', 1, 'k2', now())),
  ('o3', edges_t.paid('f2', 1, 'k3', now()));
insert into edges_t.ids select 'r', r.id from app.user_rewards r join app.pulls p on p.id = r.pull_id
  where p.order_id = edges_t.id('o');
insert into edges_t.ids select 'r2', r.id from app.user_rewards r join app.pulls p on p.id = r.pull_id
  where p.order_id = edges_t.id('o2');
insert into edges_t.ids select 'r3', r.id from app.user_rewards r join app.pulls p on p.id = r.pull_id
  where p.order_id = edges_t.id('o3');
insert into storage.buckets (id, name, public) values ('rewards', 'rewards', false) on conflict do nothing;
insert into storage.objects (bucket_id, name) values ('rewards', 'g/a.png'), ('rewards', 'g/other.png');

-- ---- the core: 3 per reward per JST day ----
select is((private.request_download(edges_t.id('f'), edges_t.id('r'), timestamptz '2026-10-25 00:00+09', '198.51.100.7',
                                   'ua') - 'download_id' - 'user_reward_id'),
          '{"bucket": "rewards", "path": "g/a.png", "expires_at": "2026-10-24T15:01:00+00:00", "downloads_today": 1,
            "remaining_today": 2}'::jsonb, 'first download: bucket, path, a 1-minute expiry, 2 left today');
select lives_ok($$ select private.request_download(edges_t.id('f'), edges_t.id('r'), timestamptz '2026-10-25 12:00+09', null, null)
                  from generate_series(1, 2) $$, 'second and third the same JST day');
select throws_ok($$ select private.request_download(edges_t.id('f'), edges_t.id('r'), timestamptz '2026-10-25 23:59:59+09', null,
                                                    null) $$,
                 'PT429', 'download_limit_reached', 'the fourth that JST day is refused');
select lives_ok($$ select private.request_download(edges_t.id('f'), edges_t.id('r2'), timestamptz '2026-10-25 23:59:59+09', null,
                                                   null) $$, 'the limit is per reward');
select is(private.request_download(edges_t.id('f'), edges_t.id('r'), timestamptz '2026-10-25 15:00+00', null, null)
            ->> 'downloads_today', '1', 'at 00:00 JST (15:00 UTC) a new day begins');
select is((select count(*)::integer from app.downloads where user_reward_id = edges_t.id('r')), 4,
          'every authorised download is logged, refusals are not');
select is((select client_ip || ' ' || user_agent from app.downloads where user_reward_id = edges_t.id('r') order by id limit 1),
          '198.51.100.7 ua', 'the log keeps client address and user agent');

-- ---- ownership ----
select throws_ok($$ select private.request_download(edges_t.id('f2'), edges_t.id('r'), now(), null, null) $$,
                 'PT404', 'reward_not_found', 'another fan''s reward is not found');
select throws_ok($$ select private.request_download(edges_t.id('f'), gen_random_uuid(), now(), null, null) $$,
                 'PT404', 'reward_not_found', 'an unknown reward is not found');

-- ---- through the API as the fan ----
select tests.clear_authentication();
select throws_ok($$ select public.request_download(edges_t.id('r2')) $$, '42501', null, 'anon cannot request downloads');
select is((select count(*)::integer from storage.objects), 0, 'anon reads no reward object');
select tests.authenticate_as(edges_t.id('f'));
select set_config('request.headers', '{"user-agent": "koepon-test/1", "x-forwarded-for": "203.0.113.9"}', true);
select is((select count(*)::integer from storage.objects), 0, 'before any request the fan reads no object');
select is(public.request_download(edges_t.id('r2')) ->> 'path', 'g/a.png', 'the fan authorises a download');
select is((select count(*)::integer from storage.objects), 0,
          'even right after, the fan reads no reward object: only the service role signs (for one minute)');
select is((select user_agent || ' ' || client_ip from app.downloads order by id desc limit 1), 'koepon-test/1 203.0.113.9',
          'the API request''s user agent and address are logged');
select throws_ok($$ insert into app.downloads (user_id, user_reward_id, bucket, path, jst_date, expires_at)
                    values (auth.uid(), edges_t.id('r2'), 'rewards', 'g/other.png', current_date, now() + interval '1 hour') $$,
                 '42501', null, 'a fan cannot write the download log');
select is((select count(*)::integer from app.downloads where user_id <> auth.uid()), 0, 'fans read only their own log');

select tests.authenticate_as(edges_t.id('f2'));
select is((select count(*)::integer from storage.objects), 0, 'another fan reads nothing (same path, not their request)');
select tests.as_postgres();
select lives_ok($$ select private.request_download(edges_t.id('f2'), edges_t.id('r3'), now(), null, null) $$,
                'f2 authorises a download of their own reward');
select tests.authenticate_as(edges_t.id('f2'));
select is((select count(*)::integer from storage.objects), 0,
          'a live authorisation of their own gives no Storage read either');
select tests.authenticate_as(edges_t.id('f'));
select throws_ok($$ update app.downloads set expires_at = now() + interval '1 day' $$, '42501', null,
                 'nobody extends a download window');

-- ---- revocation ----
select tests.as_postgres();
update app.user_rewards set revoked_at = now() where id in (edges_t.id('r'), edges_t.id('r2'));
select throws_ok($$ select private.request_download(edges_t.id('f'), edges_t.id('r'), timestamptz '2026-12-01 12:00+09', null,
                                                    null) $$,
                 'PT409', 'reward_revoked', 'a revoked reward cannot be downloaded');
select tests.authenticate_as(edges_t.id('f'));
select is((select count(*)::integer from storage.objects), 0,
          'after revocation the fan still reads nothing');
select tests.as_postgres();
select throws_ok($$ delete from app.downloads $$, 'PT409', 'history_append_only', 'the download log is append-only');
select ok(not has_function_privilege('anon', 'public.request_download(uuid)', 'execute'), 'anon has no execute');
select ok(not (select prosecdef from pg_proc where oid = 'public.request_download(uuid)'::regprocedure),
          'the public function is an invoker wrapper');

select * from finish();
rollback;
