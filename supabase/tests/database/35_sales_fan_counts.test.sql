-- The sales reports' paying-fan figures, which the rollup job keeps as per-day histograms of each
-- fan's first and last paid day, against an independent count of distinct fans from the orders
-- themselves, over a generated history ingested in several runs: fans paying two VTubers, a fan
-- whose purchases span the edge of the window, a fully refunded order (its fan still paid that
-- day, as the reports have always counted), and a fulfilment the job sees late but dated before
-- the fan's first paid day (the first day moves earlier, the histograms follow). Windows reaching
-- the present use the histograms; windows in the past count the detail rows; both must agree.
begin;
select plan(53);

insert into econ_test.ids values ('v', econ_test.vtuber('v@t', 'Vee')), ('w', econ_test.vtuber('w@t', 'Wes'));
insert into econ_test.ids values
  ('gv', econ_test.gacha(econ_test.id('v'), '[{"name":"n","rarity":"N","rate_ppm":1000000}]')),
  ('gw', econ_test.gacha(econ_test.id('w'), '[{"name":"a","rarity":"N","rate_ppm":1000000}]')),
  ('admin', tests.create_user('admin@t'));
insert into app.user_roles (user_id, role) values (econ_test.id('admin'), 'admin');
insert into econ_test.ids select 'f' || i, econ_test.fan('f' || i || '@t') from generate_series(1, 8) i;
insert into econ_test.ids values ('edge', econ_test.fan('edge@t')), ('late', econ_test.fan('late@t'));

create function pg_temp.paid(p_fan text, p_gacha text, p_key text, p_t timestamptz) returns uuid
language sql as $$
  select (private.fulfill_order(
            (private.create_order(econ_test.id(p_fan), econ_test.id(p_gacha), 1, p_key, p_t,
                                  extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid,
            'stripe', 'pi_' || p_key, 100, 'JPY', p_t, extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid
$$;

-- January 2026 (JST), days 1..20: fan i pays on a day when (7i + 3d) mod 5 = 0, V's gacha or W's
-- by the parity of i + d (so several fans pay both VTubers, on different days).
create temporary table history as
select i, d, pg_temp.paid('f' || i, case when (i + d) % 2 = 0 then 'gv' else 'gw' end, 'h' || i || '_' || d,
                          ('2026-01-01 12:00+09'::timestamptz + (d - 1) * interval '1 day' + i * interval '1 minute'))
         as order_id
from generate_series(1, 20) d cross join generate_series(1, 8) i
where (7 * i + 3 * d) % 5 = 0
order by d, i;

-- The edge fan pays V on January 3 and January 15, and is paid up in a full refund on January 16.
select ok(pg_temp.paid('edge', 'gv', 'edge1', '2026-01-03 12:00+09') is not null, 'edge fan pays on Jan 3');
insert into econ_test.ids values ('edge2', pg_temp.paid('edge', 'gv', 'edge2', '2026-01-15 12:00+09'));
select ok(private.record_refund(econ_test.id('edge2'), 're_edge2', 100, '2026-01-16 12:00+09') is not null,
          'the edge fan''s January 15 order is refunded in full');

create temporary view expected_pairs as    -- (VTuber, fan, JST day) of every paid, fulfilled order
select o.vtuber_id, o.user_id, (o.fulfilled_at at time zone 'Asia/Tokyo')::date as d
from app.orders o where o.fulfilled_at is not null;

-- Runs: up to January 6 (the history so far), then up to January 13, then everything.
select ok((private.refresh_rollups('2026-01-06 23:59:59+09') ->> 'rows')::integer > 0, 'first run');

-- The late fan: paid V on January 8 (seen by the second run), then a fulfilment the job sees
-- only in the third run but dated January 5, before that first day.
insert into econ_test.ids values ('late1', pg_temp.paid('late', 'gv', 'late1', '2026-01-08 12:00+09'));
select ok((private.refresh_rollups('2026-01-13 23:59:59+09') ->> 'rows')::integer > 0, 'second run');
select is((select min(jst_date) from app.fan_sales_daily where user_id = econ_test.id('late')), '2026-01-08'::date,
          'the late fan''s first day is January 8 so far');
insert into econ_test.ids values ('late2', pg_temp.paid('late', 'gv', 'late2', '2026-01-18 12:00+09'));
update app.orders set fulfilled_at = '2026-01-05 12:00+09' where id = econ_test.id('late2');
select ok((private.refresh_rollups(now()) ->> 'rows')::integer > 0, 'third run catches up');
select is((select array[min(jst_date), max(jst_date)] from app.fan_sales_daily where user_id = econ_test.id('late')),
          array['2026-01-05', '2026-01-08']::date[],
          'the late fulfilment moved the late fan''s first day earlier (the last day stays January 8)');

-- The histograms themselves against the orders.
select set_eq($$select vtuber_id, jst_date, paying_fans, new_fans, last_fans from app.fan_counts_daily
               where paying_fans <> 0 or new_fans <> 0 or last_fans <> 0$$,
              $$with p as (select vtuber_id, d, count(distinct user_id) as n from expected_pairs group by 1, 2),
                     s as (select vtuber_id, user_id, min(d) as lo, max(d) as hi from expected_pairs group by 1, 2),
                     n as (select vtuber_id, lo as d, count(*) as n from s group by 1, 2),
                     l as (select vtuber_id, hi as d, count(*) as n from s group by 1, 2)
                select p.vtuber_id, p.d, p.n, coalesce(n.n, 0) as new_n, coalesce(l.n, 0) as last_n
                from p left join n using (vtuber_id, d) left join l using (vtuber_id, d)$$,
              'per VTuber and day: paying fans, first paid days, last paid days equal the orders');
select set_eq($$select jst_date, paying_users, new_users, last_users from app.platform_fan_counts_daily
               where paying_users <> 0 or new_users <> 0 or last_users <> 0$$,
              $$with p as (select d, count(distinct user_id) as n from expected_pairs group by 1),
                     s as (select user_id, min(d) as lo from expected_pairs group by 1),
                     n as (select lo as d, count(*) as n from s group by 1),
                     u as (select user_id, max(d) as hi from expected_pairs group by 1),
                     l as (select hi as d, count(*) as n from u group by 1)
                select p.d, p.n, coalesce(n.n, 0) as new_n, coalesce(l.n, 0) as last_n
                from p left join n using (d) left join l using (d)$$,
              'the platform per day: paying users, first and last paid days on the platform equal the orders');

-- The reports, as the admin, for V, W and the whole platform over windows reaching the present
-- (the histogram path) and windows in the past (the detail rows), both edges included.
create temporary table windows (a date, b date);
insert into windows values ('2026-01-10', '2026-01-20'), ('2026-01-01', '2026-01-31'), ('2026-01-16', '2026-02-10'),
                           ('2026-01-04', '2026-01-10'), ('2026-01-15', '2026-01-15'), ('2025-12-01', '2025-12-31');
create temporary table scopes (k text, vtuber_id uuid);
insert into scopes values ('V', econ_test.id('v')), ('W', econ_test.id('w')), ('platform', null);
create temporary table reports (a date, b date, k text, vtuber_id uuid, r jsonb);
grant select on expected_pairs, windows, scopes to authenticated;
grant select, insert on reports to authenticated;
select tests.authenticate_as(econ_test.id('admin'));
insert into reports
select w.a, w.b, s.k, s.vtuber_id, public.admin_get_sales(s.vtuber_id, w.a, w.b)::jsonb from windows w cross join scopes s;

select is(array[(r.r -> 'totals' ->> 'paying_fans')::bigint, (r.r -> 'totals' ->> 'new_fans')::bigint],
          array[(select count(distinct e.user_id) from expected_pairs e
                 where (r.vtuber_id is null or e.vtuber_id = r.vtuber_id) and e.d between r.a and r.b),
                (select count(*) from (select e.user_id from expected_pairs e
                                        where r.vtuber_id is null or e.vtuber_id = r.vtuber_id
                                        group by 1 having min(e.d) between r.a and r.b) x)],
          format('%s, %s..%s: unique paying fans and new fans over the range equal the orders', r.k, r.a, r.b))
from reports r order by r.k, r.a, r.b;

select set_eq(format($$select (e ->> 'jst_date')::date as d, (e ->> 'paying_fans')::bigint as p,
                              (e ->> 'new_fans')::bigint as n, (e ->> 'returning_fans')::bigint as r
                       from jsonb_array_elements(%L::jsonb) e where (e ->> 'paying_fans')::bigint > 0$$, r.r -> 'days'),
              format($$with x as (select * from expected_pairs where %L::uuid is null or vtuber_id = %L::uuid),
                            f as (select user_id, min(d) as lo from x group by 1),
                            p as (select d, count(distinct user_id) as n from x where d between %L and %L group by 1),
                            n as (select lo as d, count(distinct user_id) as n from f group by 1)
                       select p.d, p.n, coalesce(n.n, 0) as new_n, p.n - coalesce(n.n, 0) as ret_n
                       from p left join n using (d)$$, r.vtuber_id, r.vtuber_id, r.a, r.b),
              format('%s, %s..%s: paying, new and returning fans per day equal the orders', r.k, r.a, r.b))
from reports r order by r.k, r.a, r.b;

select is((public.admin_get_kpis(w.a, w.b) ->> 'paying_users')::bigint,
          (select count(distinct e.user_id) from expected_pairs e where e.d between w.a and w.b),
          format('KPIs, %s..%s: paying users equal the orders', w.a, w.b))
from windows w order by w.a, w.b;

-- The edge fan's case spelled out: in January 10..20 the fan paid (January 15, refunded later)
-- and is returning, not new (first paid on January 3).
select is((select (r.r -> 'days') @> jsonb_build_array(jsonb_build_object('jst_date', '2026-01-15',
                                                                           'new_fans', 0))
           from reports r where r.k = 'V' and r.a = '2026-01-15'), true,
          'on January 15 nobody is new to V (the edge fan returns)');
select is((select count(*)::integer from expected_pairs e
           where e.user_id = econ_test.id('edge') and e.d between '2026-01-10' and '2026-01-20'), 1,
          'the edge fan has one paid order inside January 10..20 (the generated history is as intended)');

select tests.clear_authentication();
select * from finish();
rollback;
