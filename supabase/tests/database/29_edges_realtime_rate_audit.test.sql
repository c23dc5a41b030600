-- Realtime publication and the rate audit (observed vs published odds, chi-square in SQL).
begin;
select plan(24);

-- The economy fixture (supabase/tests/economy_fixture.sql) is installed with the test helpers.

create schema edges_t;
grant usage on schema edges_t to anon, authenticated, service_role;

insert into econ_test.ids values ('v', econ_test.vtuber('v@t'));
insert into econ_test.ids values
  ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"ssr","rarity":"SSR","rate_ppm":100000},
                                           {"name":"r","rarity":"R","rate_ppm":300000},
                                           {"name":"n1","rarity":"N","rate_ppm":300000},
                                           {"name":"n2","rarity":"N","rate_ppm":300000}]', null, 5, 'SSR')),
  ('f', econ_test.fan('f@t')), ('f2', econ_test.fan('f2@t'));
create table edges_t.snap (who text primary key, a jsonb);
grant select, insert on edges_t.snap to anon, authenticated;
select econ_test.paid('f', 10, 'k' || n, now()) from generate_series(1, 20) n;
select econ_test.paid('f2', 10, 'j' || n, now()) from generate_series(1, 10) n;
insert into edges_t.snap select 'truth', jsonb_object_agg(x.name, x.c)
  from (select i.name, count(p.id) as c from app.gacha_items i left join app.pulls p on p.gacha_item_id = i.id
        where i.gacha_id = econ_test.id('g') group by i.name) x;

-- ---- Realtime ----
select is((select array_agg(tablename::text order by tablename::text collate "C") from pg_publication_tables
            where pubname = 'supabase_realtime' and schemaname = 'app'),
          array['orders', 'pulls'], 'orders and pulls are published to Realtime');
select lives_ok($$ do $d$
  declare t text;
  begin
    foreach t in array array['orders', 'pulls'] loop
      if not exists (select 1 from pg_publication_tables p
                     where p.pubname = 'supabase_realtime' and p.schemaname = 'app' and p.tablename = t) then
        execute format('alter publication supabase_realtime add table app.%I', t);
      end if;
    end loop;
  end $d$ $$, 'the guarded publication step re-runs');
select tests.authenticate_as(econ_test.id('f'));
select is((select count(distinct user_id)::integer from app.pulls), 1, 'RLS: a fan''s Realtime stream holds only their pulls');
select is((select count(distinct user_id)::integer from app.orders), 1, '... and only their orders');

-- ---- the incomplete gamma function ----
select tests.clear_authentication();
select ok(abs(private.gamma_q(1, 2.5) - exp(-2.5)) < 1e-13, 'Q(1, x) = exp(-x)');
select ok(abs(private.gamma_q(0.5, 0.3) - 0.4385780260809997) < 1e-12, 'Q(1/2, x) = erfc(sqrt x), series branch');
select ok(abs(private.gamma_q(0.5, 4) - 0.004677734981047266) < 1e-13, 'Q(1/2, x) = erfc(sqrt x), continued fraction');
select ok(abs(private.chi_square_p_value(3.841458820694124, 1) - 0.05) < 1e-12, 'chi2(1) critical value at 5%');
select ok(abs(private.chi_square_p_value(23.209251158954356, 10) - 0.01) < 1e-12, 'chi2(10) critical value at 1%');
select ok(abs(private.chi_square_p_value(10, 2) - exp(-5.0)) < 1e-14, 'chi2(2): p = exp(-x/2)');
select is(private.chi_square_p_value(1e6, 3), 0::double precision, 'far tail: 0, no underflow error');
select is(private.chi_square_p_value(0, 3), 1::double precision, 'statistic 0: p = 1');
select is(private.chi_square_test('[{"expected": 20, "observed": 10}, {"expected": 20, "observed": 20},
                                     {"expected": 20, "observed": 30}]') - 'p_value',
          '{"statistic": 10, "df": 2, "min_expected": 20, "reliable": true}'::jsonb, 'Pearson statistic');

-- ---- get_rate_audit ----
select lives_ok($$ insert into edges_t.snap select 'anon', public.get_rate_audit(econ_test.id('g')) $$,
                'anyone (anon) can audit a published gacha');
select is((public.get_rate_audit(econ_test.id('g')) ->> 'draws')::bigint + (public.get_rate_audit(econ_test.id('g')) ->> 'pity_draws')::bigint,
          300::bigint, 'it counts every draw of every fan');
select is((select jsonb_object_agg(e ->> 'name', (e ->> 'observed')::bigint + (e ->> 'pity_draws')::bigint)
             from jsonb_array_elements(public.get_rate_audit(econ_test.id('g')) -> 'by_item') e),
          (select a from edges_t.snap where who = 'truth'),
          'per item counts are the pulls'' counts');
select is((select (e ->> 'pity_draws')::bigint from jsonb_array_elements(public.get_rate_audit(econ_test.id('g')) -> 'by_rarity') e
            where e ->> 'rarity' = 'N'), 0::bigint, 'pity draws (SSR only) are set apart from the tested draws');
select is(public.get_rate_audit(econ_test.id('g')) -> 'rarity_test' ->> 'df', '2', 'rarity test: 3 rarities, 2 df');
select is(public.get_rate_audit(econ_test.id('g')) -> 'item_test' ->> 'df', '3', 'item test: 4 items, 3 df');
select ok((public.get_rate_audit(econ_test.id('g')) -> 'item_test' ->> 'p_value')::double precision
            = private.chi_square_p_value((public.get_rate_audit(econ_test.id('g')) -> 'item_test' ->> 'statistic')::double precision, 3),
          'p-value = Q(df/2, statistic/2)');
select throws_ok($$ select user_id from app.pulls $$, '42501', null, 'anon reads no user, seed or roll of a pull');
select tests.authenticate_as(econ_test.id('f'));
select is(public.get_rate_audit(econ_test.id('g')), (select a from edges_t.snap where who = 'anon'),
          'a signed-in fan sees the same audit as anon (every fan''s draws, not only their own)');
select tests.as_postgres();
update app.gachas set status = 'suspended' where id = econ_test.id('g');
select tests.clear_authentication();
select throws_ok($$ select public.get_rate_audit(econ_test.id('g')) $$, 'PT404', 'gacha_not_found',
                 'a suspended gacha is not audited publicly');
select throws_ok($$ select public.get_rate_audit(gen_random_uuid()) $$, 'PT404', 'gacha_not_found', 'unknown gacha');

select * from finish();
rollback;
