-- The (paid day, previous paid day) counts the rollup job keeps so that the unique paying fans of
-- a window in the past are a sum over rollup rows, against an independent computation from the
-- orders: a fan paying V on January 1 and 9 (first run), then a fulfilment the job sees only in
-- the second run but dated January 5, between them (January 9's previous day moves from the 1st
-- to the 5th); a second fan paying V and W on the same days; and past windows read through
-- get_my_sales / admin_get_sales / admin_get_kpis while someone paid after them.
begin;
select plan(13);

insert into econ_test.ids values ('v', econ_test.vtuber('v@gap', 'Vee')), ('w', econ_test.vtuber('w@gap', 'Wes'));
insert into econ_test.ids values
  ('gv', econ_test.gacha(econ_test.id('v'), '[{"name":"n","rarity":"N","rate_ppm":1000000}]')),
  ('gw', econ_test.gacha(econ_test.id('w'), '[{"name":"a","rarity":"N","rate_ppm":1000000}]')),
  ('admin', tests.create_user('admin@gap')), ('a', econ_test.fan('a@gap')), ('b', econ_test.fan('b@gap'));
insert into app.user_roles (user_id, role) values (econ_test.id('admin'), 'admin');

create function pg_temp.paid(p_fan text, p_gacha text, p_key text, p_t timestamptz) returns uuid
language sql as $$
  select (private.fulfill_order(
            (private.create_order(econ_test.id(p_fan), econ_test.id(p_gacha), 1, p_key, p_t,
                                  extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid,
            'stripe', 'pi_' || p_key, 100, 'JPY', p_t, extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid
$$;

select pg_temp.paid('a', 'gv', 'a1', '2026-01-01 12:00+09'), pg_temp.paid('a', 'gv', 'a9', '2026-01-09 12:00+09'),
       pg_temp.paid('b', 'gv', 'bv2', '2026-01-02 12:00+09'), pg_temp.paid('b', 'gw', 'bw2', '2026-01-02 13:00+09'),
       pg_temp.paid('b', 'gw', 'bw7', '2026-01-07 12:00+09');
select ok((private.refresh_rollups('2026-01-10 00:00+09') ->> 'rows')::integer > 0, 'first run');
select set_eq($$select jst_date, prev_jst_date, fans from app.fan_gaps_daily
               where vtuber_id = econ_test.id('v') and fans <> 0$$,
              $$values ('2026-01-01'::date, '-infinity'::date, 1::bigint), ('2026-01-09', '2026-01-01', 1),
                       ('2026-01-02', '-infinity', 1)$$,
              'after the first run: V''s fans by paid day and previous paid day');

-- The late fulfilment, dated January 5, seen by the second run.
insert into econ_test.ids values ('late', pg_temp.paid('a', 'gv', 'a5', '2026-01-12 12:00+09'));
update app.orders set fulfilled_at = '2026-01-05 12:00+09' where id = econ_test.id('late');
select ok((private.refresh_rollups(now()) ->> 'rows')::integer > 0, 'second run');

create temporary view expected_days as    -- (VTuber, fan, JST day) of every paid, fulfilled order
select distinct o.vtuber_id, o.user_id, (o.fulfilled_at at time zone 'Asia/Tokyo')::date as d
from app.orders o where o.fulfilled_at is not null;
select set_eq($$select vtuber_id, jst_date, prev_jst_date, fans from app.fan_gaps_daily where fans <> 0$$,
              $$select vtuber_id, d, prev, count(*) from (
                  select vtuber_id, d, coalesce(lag(d) over (partition by vtuber_id, user_id order by d), '-infinity') as prev
                  from expected_days) x group by 1, 2, 3$$,
              'per VTuber: (paid day, previous paid day) counts equal the orders after a day is added in the middle');
select is((select array_agg(prev_jst_date order by prev_jst_date) from app.fan_gaps_daily
            where vtuber_id = econ_test.id('v') and jst_date = '2026-01-09' and fans <> 0),
          array['2026-01-05'::date], 'January 9''s previous paid day moved from the 1st to the 5th');
select set_eq($$select jst_date, prev_jst_date, users from app.platform_fan_gaps_daily where users <> 0$$,
              $$select d, prev, count(*) from (
                  select d, coalesce(lag(d) over (partition by user_id order by d), '-infinity') as prev
                  from (select distinct user_id, d from expected_days) u) x group by 1, 2$$,
              'on the platform: (paid day, previous paid day) counts equal the orders (a fan paying two VTubers on a day once)');

-- Past windows (fan a paid V after each of them).
select tests.authenticate_as(econ_test.id('admin'));
select is((public.admin_get_sales(econ_test.id('v'), '2026-01-02', '2026-01-06') -> 'totals' ->> 'paying_fans')::bigint,
          2::bigint, 'V, January 2..6: fans a (5th) and b (2nd)');
select is((public.admin_get_sales(econ_test.id('v'), '2026-01-06', '2026-01-08') -> 'totals' ->> 'paying_fans')::bigint,
          0::bigint, 'V, January 6..8: nobody');
select is((public.admin_get_sales(econ_test.id('v'), '2026-01-01', '2026-01-05') -> 'totals' ->> 'paying_fans')::bigint,
          2::bigint, 'V, January 1..5: a (twice, counted once) and b');
select is((public.admin_get_sales(null, '2026-01-02', '2026-01-07') -> 'totals' ->> 'paying_fans')::bigint,
          2::bigint, 'platform, January 2..7: users a and b (a fan paying two VTubers is one user, as in the KPIs)');
select is((public.admin_get_kpis('2026-01-02', '2026-01-07') ->> 'paying_users')::bigint,
          2::bigint, 'KPIs, January 2..7: users a and b');
select is((public.admin_get_kpis('2026-01-06', '2026-01-07') ->> 'paying_users')::bigint,
          1::bigint, 'KPIs, January 6..7: user b (W on the 7th)');
select tests.as_postgres();
select tests.authenticate_as((select user_id from app.vtubers where id = econ_test.id('v')));
select is((public.get_my_sales('2026-01-03', '2026-01-05') -> 'totals' ->> 'paying_fans')::bigint,
          1::bigint, 'the VTuber''s own report, January 3..5: fan a');

select tests.clear_authentication();
select * from finish();
rollback;
