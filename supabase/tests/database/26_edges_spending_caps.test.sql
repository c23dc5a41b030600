-- Minors' spending caps: table-driven, JST day and month, pending + fulfilled orders, time passed in.
begin;
select plan(31);

-- The economy fixture (supabase/tests/economy_fixture.sql) is installed with the test helpers.

create schema edges_t;
grant usage on schema edges_t to anon, authenticated, service_role;
-- An order for fan k at time t (JST literal), single or ten pull.
create function edges_t.buy(p_k text, p_n integer, p_key text, p_t timestamptz) returns jsonb
language sql as $$
  select private.create_order(econ_test.id(p_k), econ_test.id('g'), p_n, p_key, p_t, extensions.gen_random_bytes(32), 'cs')
$$;

-- The error an SQL text raises, as {sqlstate, message, detail, hint}.
create function edges_t.err(p_sql text) returns jsonb
language plpgsql as $$
declare m text; d text; h text; c text;
begin
  execute p_sql;
  return null;
exception when others then
  get stacked diagnostics c = returned_sqlstate, m = message_text, d = pg_exception_detail, h = pg_exception_hint;
  return jsonb_build_object('sqlstate', c, 'message', m, 'detail', d, 'hint', h);
end $$;
grant execute on function edges_t.err(text) to anon, authenticated, service_role;

-- The same, paid and fulfilled at once (a paid order counts whatever its age).
create function edges_t.paid(p_k text, p_n integer, p_key text, p_t timestamptz) returns jsonb
language sql as $$
  select private.fulfill_order((edges_t.buy(p_k, p_n, p_key, p_t) ->> 'order_id')::uuid, 'stripe',
                               'pi_' || p_k || '_' || p_key, p_n * 100, 'JPY', p_t, extensions.gen_random_bytes(32), 'cs')
$$;

insert into econ_test.ids values ('v', econ_test.vtuber('v@t'));
insert into econ_test.ids values
  ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"a","rarity":"N","rate_ppm":1000000}]')),
  ('adult', econ_test.fan('adult@t')),
  ('m13', econ_test.fan('m13@t', date '2013-06-01')),
  ('m17', econ_test.fan('m17@t', date '2009-06-01')),
  ('kid', econ_test.fan('kid@t', date '2015-01-01')),
  ('bday13', econ_test.fan('bday13@t', date '2013-11-26')),
  ('bday18', econ_test.fan('bday18@t', date '2008-11-26')),
  ('m15', econ_test.fan('m15@t', date '2012-01-01')),
  ('nobirth', tests.create_user('nobirth@t'));

-- ---- the table ----
select results_eq($$ select min_age, max_age, daily_cap_jpy, monthly_cap_jpy from app.spending_caps order by min_age $$,
                  $$ values (0, 12, 0, 0), (13, 15, 1000, 5000), (16, 17, 2000, 10000) $$,
                  'caps: under 13 none, 13-15 ¥1,000/¥5,000, 16-17 ¥2,000/¥10,000');
select throws_ok($$ insert into app.spending_caps values (15, 16, 1, 1) $$, '23P01', null, 'age bands cannot overlap');

-- ---- adults are not capped ----
select lives_ok($$ select edges_t.buy('adult', 10, 'a' || n, timestamptz '2026-11-25 12:00+09') from generate_series(1, 6) n $$,
                'an adult buys ¥6,000 in a day');

-- ---- under 13: refused ----
select throws_ok($$ select edges_t.buy('kid', 1, 'k1', timestamptz '2026-11-25 12:00+09') $$, 'PT422',
                 'minor_under_13_cannot_purchase', 'an 11-year-old cannot buy');
select is((select count(*)::integer from app.orders where user_id = econ_test.id('kid')), 0, '... and no order exists');
select throws_ok($$ select edges_t.buy('nobirth', 1, 'n1', timestamptz '2026-11-25 12:00+09') $$, 'PT422',
                 'birth_date_required', 'no birth date, no first purchase');

-- ---- the JST birthday decides the band ----
select throws_ok($$ select edges_t.buy('bday13', 1, 'b1', timestamptz '2026-11-25 23:59+09') $$, 'PT422',
                 'minor_under_13_cannot_purchase', 'the day before the 13th birthday (JST): refused');
select lives_ok($$ select edges_t.buy('bday13', 1, 'b2', timestamptz '2026-11-25 15:01+00') $$,
                '15:01 UTC is already the 13th birthday in Tokyo: allowed');
select lives_ok($$ select edges_t.buy('bday18', 10, 'c' || n, timestamptz '2026-11-26 00:00+09') from generate_series(1, 3) n $$,
                'from the 18th birthday (JST) no cap');

-- ---- 13-15: ¥1,000 a day, ¥5,000 a month ----
select lives_ok($$ select edges_t.paid('m13', 1, 'd' || n, timestamptz '2026-11-25 09:00+09') from generate_series(1, 9) n $$,
                '13-year-old: ¥900 of singles');
select throws_ok($$ select edges_t.paid('m13', 10, 'd10', timestamptz '2026-11-25 10:00+09') $$, 'PT422',
                 'spending_cap_exceeded', 'a ¥1,000 ten-pull would pass the day''s ¥1,000');
select is((edges_t.err($$ select edges_t.paid('m13', 10, 'd10', timestamptz '2026-11-25 10:00+09') $$) ->> 'hint')::jsonb
            -> 'remaining_jpy', '100'::jsonb, 'the remaining ¥100 is in the error (hint JSON)');
select ok((edges_t.err($$ select edges_t.paid('m13', 10, 'd10', timestamptz '2026-11-25 10:00+09') $$) ->> 'detail')
          like '%¥100 remaining%', 'and in the human detail');
select lives_ok($$ select edges_t.paid('m13', 1, 'd11', timestamptz '2026-11-25 23:59+09') $$, 'the last ¥100 of the day');
select throws_ok($$ select edges_t.paid('m13', 1, 'd12', timestamptz '2026-11-25 23:59:59+09') $$, 'PT422',
                 'spending_cap_exceeded', 'nothing left today');
select is(edges_t.buy('m13', 1, 'd11', timestamptz '2026-11-25 23:59:59+09') ->> 'created', 'false',
          'replaying an existing order''s key is not a new purchase (no cap check)');
-- the next JST day starts at 15:00 UTC
select lives_ok($$ select edges_t.paid('m13', 10, 'e1', timestamptz '2026-11-25 15:00+00') $$,
                'a new JST day (00:00 JST = 15:00 UTC): ¥1,000 again');
select lives_ok($$ select edges_t.paid('m13', 10, 'e' || n, (date '2026-11-25' + n) + time '12:00' at time zone 'Asia/Tokyo')
                   from generate_series(2, 4) n $$, 'three more days: ¥5,000 this month');
select is((edges_t.err($$ select edges_t.paid('m13', 1, 'e5', timestamptz '2026-11-30 12:00+09') $$) ->> 'hint')::jsonb
            - 'daily_cap_jpy' - 'monthly_cap_jpy',
          '{"remaining_jpy": 0, "remaining_today_jpy": 1000, "remaining_this_month_jpy": 0}'::jsonb,
          'the month''s ¥5,000 are spent although today''s ¥1,000 are not');
select lives_ok($$ select edges_t.paid('m13', 10, 'f1', timestamptz '2026-11-30 15:00+00') $$,
                'December 1st in Tokyo (still November 30th in UTC): a new month');

-- ---- what counts: pending and fulfilled; not expired, failed or canceled ----
select lives_ok($$ select edges_t.buy('m15', 10, 'p1', timestamptz '2026-11-25 10:00+09') $$, 'a pending ¥1,000 order');
select throws_ok($$ select edges_t.buy('m15', 1, 'p2', timestamptz '2026-11-25 10:29+09') $$, 'PT422',
                 'spending_cap_exceeded', 'a pending order counts while it can still be paid');
select lives_ok($$ select edges_t.buy('m15', 1, 'p3', timestamptz '2026-11-25 10:31+09') $$,
                'once it is past its 30-minute expiry it no longer counts');
select lives_ok($$ select private.fail_order((edges_t.buy('m15', 1, 'p3', timestamptz '2026-11-25 10:32+09') ->> 'order_id')::uuid,
                                             'canceled', timestamptz '2026-11-25 10:32+09') $$, 'cancel it');
select lives_ok($$ select private.fulfill_order((edges_t.buy('m15', 10, 'p4', timestamptz '2026-11-25 10:33+09') ->> 'order_id')::uuid,
                                                'stripe', 'pi_m15', 1000, 'JPY', timestamptz '2026-11-25 10:34+09',
                                                extensions.gen_random_bytes(32), 'cs') $$,
                'a canceled order frees its amount: ¥1,000 bought and paid');
select throws_ok($$ select edges_t.buy('m15', 1, 'p5', timestamptz '2026-11-25 23:00+09') $$, 'PT422',
                 'spending_cap_exceeded', 'a fulfilled order counts for the rest of the day');

-- ---- 16-17: ¥2,000 a day; the table, not code, decides ----
select lives_ok($$ select edges_t.paid('m17', 10, 'q' || n, timestamptz '2026-11-25 12:00+09') from generate_series(1, 2) n $$,
                '17-year-old: ¥2,000 a day');
select throws_ok($$ select edges_t.paid('m17', 1, 'q3', timestamptz '2026-11-25 12:00+09') $$, 'PT422',
                 'spending_cap_exceeded', 'not ¥2,100');
update app.spending_caps set daily_cap_jpy = 3000 where min_age = 16;
select lives_ok($$ select edges_t.paid('m17', 1, 'q3', timestamptz '2026-11-25 12:00+09') $$,
                'raising the cap in the table lets the order through');

-- ---- the fan's own view ----
select tests.authenticate_as(econ_test.id('m17'));
select is(public.get_my_spending_limits() - 'spent_this_month_jpy' - 'spent_today_jpy' - 'remaining_jpy'
          - 'daily_cap_jpy',
          '{"birth_date_set": true, "capped": true, "can_purchase": true, "monthly_cap_jpy": 10000}'::jsonb,
          'get_my_spending_limits: capped, with the caps');
select tests.authenticate_as(econ_test.id('adult'));
select is(public.get_my_spending_limits(), '{"birth_date_set": true, "capped": false}'::jsonb, 'adults: not capped');

select * from finish();
rollback;
