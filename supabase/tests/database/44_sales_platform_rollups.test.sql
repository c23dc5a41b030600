-- The rollups that serve the platform's report, against independent computations from the base
-- tables: sales per (JST day, VTuber) (app.vtuber_sales_daily) and pulls per ISO week and item
-- (app.item_pulls_weekly), kept by the job over two runs; and the reports' item figures, which sum
-- whole weeks from the weekly rows and the days at the range's ends from the daily rows, for
-- ranges that start and end on every kind of day (inside one week, across one JST week boundary,
-- exact weeks, whole weeks with odd days at both ends). March 2026: the 1st is a Sunday.
begin;
select plan(33);

insert into econ_test.ids values ('v', econ_test.vtuber('v@pr', 'Vee')), ('w', econ_test.vtuber('w@pr', 'Wes'));
insert into econ_test.ids values
  ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"n","rarity":"N","rate_ppm":600000},
                                             {"name":"r","rarity":"R","rate_ppm":300000},
                                             {"name":"s","rarity":"SR","rate_ppm":100000}]')),
  ('g2', econ_test.gacha(econ_test.id('v'), '[{"name":"m","rarity":"N","rate_ppm":500000},
                                              {"name":"u","rarity":"UR","rate_ppm":500000}]')),
  ('h', econ_test.gacha(econ_test.id('w'), '[{"name":"a","rarity":"N","rate_ppm":800000},
                                             {"name":"b","rarity":"SSR","rate_ppm":200000}]')),
  ('admin', tests.create_user('admin@pr'));
insert into app.user_roles (user_id, role) values (econ_test.id('admin'), 'admin');
insert into econ_test.ids select 'f' || i, econ_test.fan('f' || i || '@pr') from generate_series(1, 4) i;

create function pg_temp.paid(p_fan text, p_gacha text, p_n integer, p_key text, p_t timestamptz) returns uuid
language sql as $$
  select (private.fulfill_order(
            (private.create_order(econ_test.id(p_fan), econ_test.id(p_gacha), p_n, p_key, p_t,
                                  extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid,
            'stripe', 'pi_' || p_key, p_n * 100, 'JPY', p_t, extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid
$$;

-- Sales on Sundays, Mondays and midweek days of four ISO weeks, two of them either side of the
-- JST midnight that ends a week (Sunday 23:30 and Monday 00:30 in Tokyo are both Sunday in UTC).
insert into econ_test.ids values
  ('o1', pg_temp.paid('f1', 'g', 10, 'k1', '2026-03-01 12:00+09')),
  ('o2', pg_temp.paid('f2', 'h', 10, 'k2', '2026-03-02 09:00+09')),
  ('o3', pg_temp.paid('f1', 'g2', 10, 'k3', '2026-03-04 18:00+09')),
  ('o4', pg_temp.paid('f3', 'g', 10, 'k4', '2026-03-08 23:30+09')),
  ('o5', pg_temp.paid('f4', 'g', 1, 'k5', '2026-03-09 00:30+09')),
  ('o6', pg_temp.paid('f2', 'g2', 10, 'k6', '2026-03-11 12:00+09')),
  ('o7', pg_temp.paid('f3', 'h', 10, 'k7', '2026-03-15 20:00+09'));
select private.refresh_rollups('2026-03-12 00:00+09');
insert into econ_test.ids values
  ('o8', pg_temp.paid('f4', 'g', 10, 'k8', '2026-03-17 10:00+09')),
  ('o9', pg_temp.paid('f1', 'h', 1, 'k9', '2026-03-23 08:00+09')),
  ('o10', pg_temp.paid('f2', 'g', 10, 'k10', '2026-03-29 22:00+09'));
select private.record_refund(econ_test.id('o3'), 're_3', 400, '2026-03-16 12:00+09');
select private.record_dispute(econ_test.id('o2'), 'dp_2', 'needs_response', '2026-03-23 09:00+09');
select private.refresh_rollups(now());

-- The rollups' sums, against the rows they sum and against the base tables.
select set_eq($$select jst_date, vtuber_id, paid_orders, pulls, gross_jpy, refund_count, refunds_jpy, chargeback_count,
                     chargebacks_jpy from app.vtuber_sales_daily$$,
              $$select jst_date, vtuber_id, sum(paid_orders)::integer as a, sum(pulls)::integer as b, sum(gross_jpy) as c,
                       sum(refund_count)::integer as d, sum(refunds_jpy) as e, sum(chargeback_count)::integer as f,
                       sum(chargebacks_jpy) as g
                  from app.sales_daily group by 1, 2$$,
              'vtuber_sales_daily is sales_daily summed per (day, VTuber)');
select set_eq($$select jst_date, vtuber_id, gross_jpy, refunds_jpy, chargebacks_jpy from app.vtuber_sales_daily
                 where gross_jpy <> 0 or refunds_jpy <> 0 or chargebacks_jpy <> 0$$,
              $$select d, vtuber_id, sum(gross)::bigint as a, sum(refunds)::bigint as b, sum(chargebacks)::bigint as c from (
                  select (o.fulfilled_at at time zone 'Asia/Tokyo')::date as d, o.vtuber_id, o.amount_jpy as gross,
                         0 as refunds, 0 as chargebacks from app.orders o where o.status in ('fulfilled', 'refunded')
                  union all
                  select (f.completed_at at time zone 'Asia/Tokyo')::date, o.vtuber_id, 0, f.amount_jpy, 0
                    from app.refunds f join app.orders o on o.id = f.order_id where f.status = 'completed'
                  union all
                  select (min(x.created_at) at time zone 'Asia/Tokyo')::date, o.vtuber_id, 0, 0, o.amount_jpy
                    from app.disputes x join app.orders o on o.id = x.order_id group by x.order_id, o.vtuber_id, o.amount_jpy
                ) s group by 1, 2$$,
              'vtuber_sales_daily equals gross, refunds and chargebacks per (day, VTuber) from the orders');
select set_eq($$select week_start, gacha_item_id, gacha_id, vtuber_id, rarity, pulls, pity_pulls from app.item_pulls_weekly$$,
              $$select jst_date - (extract(isodow from jst_date)::integer - 1) as w, gacha_item_id, gacha_id, vtuber_id,
                       rarity, sum(pulls)::integer as a, sum(pity_pulls)::integer as b
                  from app.item_pulls_daily group by 1, 2, 3, 4, 5$$,
              'item_pulls_weekly is item_pulls_daily summed per ISO week');
select set_eq($$select week_start, gacha_item_id, pulls + pity_pulls from app.item_pulls_weekly$$,
              $$select (o.fulfilled_at at time zone 'Asia/Tokyo')::date
                       - (extract(isodow from (o.fulfilled_at at time zone 'Asia/Tokyo')::date)::integer - 1) as w,
                       p.gacha_item_id, count(*)::integer as n
                  from app.pulls p join app.orders o on o.id = p.order_id group by 1, 2$$,
              'item_pulls_weekly equals the pulls per JST ISO week and item');
select is((select array_agg(distinct week_start order by week_start) from app.item_pulls_weekly),
          array['2026-02-23', '2026-03-02', '2026-03-09', '2026-03-16', '2026-03-23']::date[],
          'Sunday 23:30 in Tokyo closes a week, Monday 00:30 opens the next');

-- Independent figures for a range, from the pulls and orders themselves.
create function pg_temp.exp_rarity(p_vtuber uuid, p_from date, p_to date) returns jsonb language sql as $$
  select coalesce(jsonb_agg(jsonb_build_object('rarity', x.rarity, 'pulls', x.pulls, 'pity_pulls', x.pity)
                            order by private.rarity_rank(x.rarity) desc), '[]')
  from (select p.rarity, count(*) filter (where not p.pity) as pulls, count(*) filter (where p.pity) as pity
          from app.pulls p join app.orders o on o.id = p.order_id
         where (p_vtuber is null or o.vtuber_id = p_vtuber)
           and (o.fulfilled_at at time zone 'Asia/Tokyo')::date between p_from and p_to
         group by 1) x
$$;
create function pg_temp.exp_top(p_vtuber uuid, p_from date, p_to date) returns jsonb language sql as $$
  select coalesce(jsonb_agg(jsonb_build_object('gacha_item_id', x.id, 'name', x.name, 'rarity', x.rarity, 'pulls', x.n)
                            order by x.n desc, x.id), '[]')
  from (select i.id, i.name, i.rarity, count(*) as n
          from app.pulls p join app.orders o on o.id = p.order_id join app.gacha_items i on i.id = p.gacha_item_id
         where (p_vtuber is null or o.vtuber_id = p_vtuber)
           and (o.fulfilled_at at time zone 'Asia/Tokyo')::date between p_from and p_to
         group by 1, 2, 3) x
$$;
create function pg_temp.exp_totals(p_from date, p_to date) returns jsonb language sql as $$
  select jsonb_build_object(
    'paid_orders', (select count(*) from app.orders o
                     where (o.fulfilled_at at time zone 'Asia/Tokyo')::date between p_from and p_to),
    'pulls', (select coalesce(sum(o.pull_count), 0) from app.orders o
               where (o.fulfilled_at at time zone 'Asia/Tokyo')::date between p_from and p_to),
    'gross_jpy', (select coalesce(sum(o.amount_jpy), 0) from app.orders o
                   where (o.fulfilled_at at time zone 'Asia/Tokyo')::date between p_from and p_to),
    'refunds_jpy', (select coalesce(sum(f.amount_jpy), 0) from app.refunds f
                     where f.status = 'completed' and (f.completed_at at time zone 'Asia/Tokyo')::date between p_from and p_to),
    'chargebacks_jpy', (select coalesce(sum(o.amount_jpy), 0)
                          from (select order_id, min(created_at) as at from app.disputes group by 1) x
                          join app.orders o on o.id = x.order_id
                         where (x.at at time zone 'Asia/Tokyo')::date between p_from and p_to))
$$;

create temporary table ranges (n integer, lo date, hi date, what text);
insert into ranges values
  (1, '2026-03-01', '2026-03-31', 'Sunday to Tuesday: four whole weeks and a day at each end'),
  (2, '2026-03-02', '2026-03-15', 'Monday to Sunday: exactly two weeks'),
  (3, '2026-03-04', '2026-03-05', 'inside one week'),
  (4, '2026-03-08', '2026-03-09', 'Sunday and Monday: across a week boundary, no whole week'),
  (5, '2026-03-03', '2026-03-23', 'Tuesday to Monday: two whole weeks and odd days at both ends'),
  (6, '2026-02-20', '2026-03-01', 'a week with no sales, then a Sunday');

create temporary table reports (n integer, what text, platform jsonb, vee jsonb, lo date, hi date);
grant select on ranges to authenticated;
grant insert on reports to authenticated;
select tests.authenticate_as(econ_test.id('admin'));
insert into reports
select r.n, r.what, public.admin_get_sales(null, r.lo, r.hi)::jsonb,
       public.admin_get_sales(econ_test.id('v'), r.lo, r.hi)::jsonb, r.lo, r.hi
from ranges r;
select tests.as_postgres();

select is(x.platform -> 'pulls_by_rarity', pg_temp.exp_rarity(null, x.lo, x.hi), 'platform, pulls by rarity: ' || x.what)
from reports x order by x.n;
select is(x.platform -> 'top_items', pg_temp.exp_top(null, x.lo, x.hi), 'platform, top items: ' || x.what)
from reports x order by x.n;
select is(x.vee -> 'pulls_by_rarity', pg_temp.exp_rarity(econ_test.id('v'), x.lo, x.hi), 'one VTuber, pulls by rarity: ' || x.what)
from reports x order by x.n;
select is(x.vee -> 'top_items', pg_temp.exp_top(econ_test.id('v'), x.lo, x.hi), 'one VTuber, top items: ' || x.what)
from reports x order by x.n;
select is(jsonb_build_object('paid_orders', x.platform -> 'totals' -> 'paid_orders', 'pulls', x.platform -> 'totals' -> 'pulls',
                             'gross_jpy', x.platform -> 'totals' -> 'gross_jpy',
                             'refunds_jpy', x.platform -> 'totals' -> 'refunds_jpy',
                             'chargebacks_jpy', x.platform -> 'totals' -> 'chargebacks_jpy'),
          pg_temp.exp_totals(x.lo, x.hi), 'platform totals: ' || x.what)
from reports x where x.n in (1, 5) order by x.n;

select is((select jsonb_agg(jsonb_build_object('jst_date', d ->> 'jst_date', 'gross_jpy', (d ->> 'gross_jpy')::bigint)
                            order by d ->> 'jst_date')
             from reports x cross join jsonb_array_elements(x.platform -> 'days') d where x.n = 1),
          (select jsonb_agg(jsonb_build_object('jst_date', d, 'gross_jpy', g) order by d)
             from (select (o.fulfilled_at at time zone 'Asia/Tokyo')::date::text as d, sum(o.amount_jpy)::bigint as g
                     from app.orders o group by 1
                   union all
                   select (f.completed_at at time zone 'Asia/Tokyo')::date::text, 0 from app.refunds f
                    where (f.completed_at at time zone 'Asia/Tokyo')::date not in
                          (select (o.fulfilled_at at time zone 'Asia/Tokyo')::date from app.orders o)
                   union all
                   select (min(x.created_at) at time zone 'Asia/Tokyo')::date::text, 0 from app.disputes x
                    group by x.order_id
                   having (min(x.created_at) at time zone 'Asia/Tokyo')::date not in
                          (select (o.fulfilled_at at time zone 'Asia/Tokyo')::date from app.orders o)) e),
          'the platform''s days: gross per JST day (a day with only a refund or a chargeback listed at 0)');
select is((select jsonb_object_agg(b ->> 'name', (b ->> 'gross_jpy')::bigint)
             from reports x cross join jsonb_array_elements(x.platform -> 'by_vtuber') b where x.n = 1),
          '{"Vee": 6100, "Wes": 2100}'::jsonb, 'the platform''s by_vtuber: gross per VTuber');

select * from finish();
rollback;
