-- The rate audit the admin KPIs show, kept by the rollup job: all-time draws per item
-- (app.item_draws) and each gacha's chi-square test (app.rate_audits), against an independent
-- count and test computed here from the pulls themselves. Two gachas with four equally likely
-- items; the second's draws are all moved onto one item (a broken draw the audit must flag).
-- The job runs three times: a gacha is retested only when the run adds draws to it.
begin;
select plan(14);

insert into econ_test.ids values ('v', econ_test.vtuber('v@ra', 'Vee'));
insert into econ_test.ids values
  ('fair', econ_test.gacha(econ_test.id('v'), '[{"name":"a","rarity":"N","rate_ppm":250000},
                                                 {"name":"b","rarity":"N","rate_ppm":250000},
                                                 {"name":"c","rarity":"N","rate_ppm":250000},
                                                 {"name":"d","rarity":"N","rate_ppm":250000}]')),
  ('bent', econ_test.gacha(econ_test.id('v'), '[{"name":"a","rarity":"N","rate_ppm":250000},
                                                 {"name":"b","rarity":"N","rate_ppm":250000},
                                                 {"name":"c","rarity":"N","rate_ppm":250000},
                                                 {"name":"d","rarity":"N","rate_ppm":250000}]')),
  ('admin', tests.create_user('admin@ra'));
insert into app.user_roles (user_id, role) values (econ_test.id('admin'), 'admin');
insert into econ_test.ids select 'f' || i, econ_test.fan('f' || i || '@ra') from generate_series(1, 4) i;

create function pg_temp.paid(p_fan text, p_gacha text, p_key text, p_t timestamptz) returns uuid
language sql as $$
  select (private.fulfill_order(
            (private.create_order(econ_test.id(p_fan), econ_test.id(p_gacha), 10, p_key, p_t,
                                  extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid,
            'stripe', 'pi_' || p_key, 1000, 'JPY', p_t, extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid
$$;

-- Independent: draws per item from the pulls, and Pearson's statistic per gacha from them.
create temporary view expected_draws as
select i.id as gacha_item_id, i.gacha_id, count(p.id) filter (where not p.pity) as pulls,
       count(p.id) filter (where p.pity) as pity_pulls
from app.gacha_items i left join app.pulls p on p.gacha_item_id = i.id
where i.gacha_id in (econ_test.id('fair'), econ_test.id('bent'))
group by 1, 2;
create temporary view expected_audit as
select d.gacha_id, sum(d.pulls) as n, sum((d.pulls - t.n / 4.0) ^ 2 / (t.n / 4.0)) as statistic
from expected_draws d join (select gacha_id, sum(pulls) as n from expected_draws group by 1) t using (gacha_id)
group by 1;

-- January 2026: 8 ten-pull orders on each gacha (4 fans, 2 days), then 4 more after the first run.
select ok(count(*) = 16, 'sixteen orders before the first run')
from (select pg_temp.paid('f' || i, g, g || i || '_' || d, '2026-01-01 12:00+09'::timestamptz + (d - 1) * interval '1 day')
      from generate_series(1, 4) i cross join generate_series(1, 2) d cross join unnest(array['fair', 'bent']) g) x;

-- Draws made deterministic (the test must not depend on chance): the fair gacha's draws go round
-- the items a, b, c, d, a (a little skewed: p about 0.002, above the alert threshold); the broken
-- gacha's all land on its first item.
create function pg_temp.rig() returns void language sql as $$
  update app.pulls p set gacha_item_id = i.id
    from (select p.id, (array['a', 'b', 'c', 'd', 'a'])[1 + (row_number() over (order by p.id) - 1) % 5] as name
            from app.pulls p where p.gacha_id = econ_test.id('fair')) x
    join app.gacha_items i on i.gacha_id = econ_test.id('fair') and i.name = x.name
   where p.id = x.id;
  update app.pulls set gacha_item_id = (select id from app.gacha_items
                                         where gacha_id = econ_test.id('bent') and name = 'a')
   where gacha_id = econ_test.id('bent');
$$;
alter table app.pulls disable trigger pulls_before_update_delete_refuse;
select pg_temp.rig();

select ok((private.refresh_rollups('2026-01-05 00:00+09') ->> 'rows')::integer > 0, 'first run');
select set_eq('select gacha_item_id, gacha_id, pulls, pity_pulls from app.item_draws',
              'select gacha_item_id, gacha_id, pulls, pity_pulls from expected_draws where pulls + pity_pulls > 0',
              'after the first run: all-time draws per item equal the pulls');

select pg_temp.paid('f' || i, g, g || i || '_3', '2026-01-06 12:00+09')
  from generate_series(1, 4) i cross join unnest(array['fair', 'bent']) g;
select pg_temp.rig();
alter table app.pulls enable trigger pulls_before_update_delete_refuse;

select ok((private.refresh_rollups(now()) ->> 'rows')::integer > 0, 'second run adds the later orders');
select set_eq('select gacha_item_id, gacha_id, pulls, pity_pulls from app.item_draws',
              'select gacha_item_id, gacha_id, pulls, pity_pulls from expected_draws where pulls + pity_pulls > 0',
              'after the second run: all-time draws per item still equal the pulls (added, not replaced)');
select is((select draws from app.rate_audits where gacha_id = econ_test.id('fair')), 120::bigint,
          'the fair gacha''s audit counts its 120 draws');
select ok((select abs(a.statistic - e.statistic) < 1e-9 from app.rate_audits a
            join expected_audit e using (gacha_id)
           where a.gacha_id = econ_test.id('fair')),
          'its statistic is Pearson''s, computed independently from the pulls');
select ok((select abs(a.statistic - e.statistic) < 1e-9 from app.rate_audits a
            join expected_audit e using (gacha_id)
           where a.gacha_id = econ_test.id('bent')),
          'the broken gacha''s statistic too');
select is((select p_value from app.rate_audits where gacha_id = econ_test.id('bent')),
          private.chi_square_p_value((select statistic from expected_audit
                                       where gacha_id = econ_test.id('bent'))::double precision, 3),
          'its p-value is Q(3/2, statistic/2)');
select is((select p_value from app.rate_audits where gacha_id = econ_test.id('fair')),
          (private.chi_square_test((select jsonb_agg(jsonb_build_object('observed', d.pulls, 'expected', 30))
                                      from expected_draws d where d.gacha_id = econ_test.id('fair'))) ->> 'p_value')
            ::double precision,
          'the fair gacha''s p-value is what the per-request test gave');

-- The KPIs list the broken gacha only (its p-value is far below 0.001: 120 draws on one of four).
select tests.authenticate_as(econ_test.id('admin'));
select is((select jsonb_agg(e ->> 'gacha_id') from jsonb_array_elements(public.admin_get_kpis() -> 'rate_audit_alerts') e
            where (e ->> 'gacha_id')::uuid in (econ_test.id('fair'), econ_test.id('bent'))),
          jsonb_build_array(econ_test.id('bent')), 'the KPIs'' rate audit alerts name the broken gacha, not the fair one');
select tests.as_postgres();

-- A third run with draws on the fair gacha only retests that one.
create temporary table before as select gacha_id, audited_at from app.rate_audits;
select pg_temp.paid('f1', 'fair', 'fair_late', now());
select ok((private.refresh_rollups(now() + interval '3 seconds') ->> 'rows')::integer > 0, 'third run');
select is((select a.audited_at from app.rate_audits a where a.gacha_id = econ_test.id('bent')),
          (select b.audited_at from before b where b.gacha_id = econ_test.id('bent')),
          'a gacha without new draws keeps its audit');
select is((select draws from app.rate_audits where gacha_id = econ_test.id('fair')), 130::bigint,
          'the fair gacha''s audit now counts 130 draws');

select * from finish();
rollback;
