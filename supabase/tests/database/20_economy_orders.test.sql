begin;
select plan(65);

-- The economy fixture (supabase/tests/economy_fixture.sql) is installed with the test helpers.

create function econ_test.t0() returns timestamptz language sql immutable as $$ select timestamptz '2026-11-25 00:00+00' $$;
grant execute on function econ_test.t0() to anon, authenticated, service_role;

insert into econ_test.ids values ('v', econ_test.vtuber('v@t'));
insert into econ_test.ids values ('f', econ_test.fan('f@t')), ('f2', econ_test.fan('f2@t')),
  ('nobirth', econ_test.fan('nb@t', null)), ('susp', econ_test.fan('s@t'));
update app.profiles set status = 'suspended' where user_id = econ_test.id('susp');
insert into econ_test.ids values
  ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"n","rarity":"N","rate_ppm":900000},
                                             {"name":"s","rarity":"SSR","rate_ppm":100000,"stock":20}]',
                        1000, 10, 'SSR', 100, 900, 10, 5)),
  ('gcap', econ_test.gacha(econ_test.id('v'), '[{"name":"a","rarity":"R","rate_ppm":1000000}]', 12)),
  ('gend', econ_test.gacha(econ_test.id('v'), '[{"name":"a","rarity":"R","rate_ppm":1000000}]'));
update app.gachas set status = 'ended' where id = econ_test.id('gend');
insert into app.gachas (vtuber_id, title, start_at, end_at) values (econ_test.id('v'), 'draft', now(), now() + interval '1 day');
insert into econ_test.ids select 'draft', id from app.gachas where title = 'draft';
-- a fixed seed for the fan, so the draws are deterministic
select private.ensure_fairness_seed(econ_test.id('f'), decode(repeat('ab', 32), 'hex'), 'client', econ_test.t0());

-- ---- create_order: snapshot ----
create temp table o1 as select private.create_order(econ_test.id('f'), econ_test.id('g'), 1, 'k1', econ_test.t0(), extensions.gen_random_bytes(32), 'c') j;
select is((select (j ->> 'amount_jpy')::int from o1), 100, '1 pull costs price_single');
select is((select (j ->> 'medals')::int from o1), 10, '1 pull grants medals_per_pull');
select is((select (j ->> 'expires_at')::timestamptz from o1), econ_test.t0() + interval '30 minutes', 'pending for 30 minutes');
select is((select j ->> 'server_seed_hash' from o1),
          encode(sha256(decode(repeat('ab', 32), 'hex')), 'hex'), 'the seed commitment is returned before payment');
create temp table o10 as select private.create_order(econ_test.id('f'), econ_test.id('g'), 10, 'k10', econ_test.t0(), extensions.gen_random_bytes(32), 'c') j;
select is((select (j ->> 'amount_jpy')::int from o10), 900, '10 pulls cost price_ten');
select is((select (j ->> 'medals')::int from o10), 105, '10 pulls grant 10 x medals_per_pull + bonus');
select is((select j ->> 'order_id' from (select private.create_order(econ_test.id('f'), econ_test.id('g'), 10, 'k10', econ_test.t0(), extensions.gen_random_bytes(32), 'c') j) x),
          (select j ->> 'order_id' from o10), 'the same key returns the same order');
select is((select (j ->> 'created')::boolean from (select private.create_order(econ_test.id('f'), econ_test.id('g'), 10, 'k10', econ_test.t0(), extensions.gen_random_bytes(32), 'c') j) x),
          false, 'a replay says created: false');
select is((select count(*)::int from app.orders where user_id = econ_test.id('f')), 2, 'replays create nothing');

-- ---- create_order: refusals ----
select throws_ok($$ select private.create_order(econ_test.id('f'), econ_test.id('g'), 1, 'k10', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT409', 'idempotency_key_reused', 'same key, other count');
select throws_ok($$ select private.create_order(econ_test.id('f'), econ_test.id('gcap'), 10, 'k10', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT409', 'idempotency_key_reused', 'same key, other gacha');
select throws_ok($$ select private.create_order(econ_test.id('f'), econ_test.id('g'), 3, 'k3', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT400', 'invalid_pull_count', 'only 1 or 10 pulls');
select throws_ok($$ select private.create_order(econ_test.id('f'), econ_test.id('g'), 1, '', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT400', 'invalid_idempotency_key', 'a key is required');
select throws_ok($$ select private.create_order(econ_test.id('f'), econ_test.id('draft'), 1, 'kd', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT404', 'gacha_not_found', 'a draft cannot be bought');
select throws_ok($$ select private.create_order(econ_test.id('f'), econ_test.id('gend'), 1, 'ke', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT409', 'gacha_not_on_sale', 'an ended gacha cannot be bought');
select throws_ok($$ select private.create_order(econ_test.id('f'), econ_test.id('g'), 1, 'kb', timestamptz '2025-12-31 23:59+00', extensions.gen_random_bytes(32), 'c') $$,
                 'PT409', 'gacha_not_on_sale', 'not before start_at');
select throws_ok($$ select private.create_order(econ_test.id('f'), econ_test.id('g'), 1, 'ka', timestamptz '2099-01-01 00:00+00', extensions.gen_random_bytes(32), 'c') $$,
                 'PT409', 'gacha_not_on_sale', 'not from end_at');
select throws_ok($$ select private.create_order(econ_test.id('nobirth'), econ_test.id('g'), 1, 'kn', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT422', 'birth_date_required', 'birth date before the first order');
select throws_ok($$ select private.create_order(econ_test.id('susp'), econ_test.id('g'), 1, 'ks', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT403', 'account_suspended', 'a suspended fan cannot buy');
update app.vtubers set status = 'suspended' where id = econ_test.id('v');
select throws_ok($$ select private.create_order(econ_test.id('f'), econ_test.id('g'), 1, 'kv', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT409', 'gacha_not_on_sale', 'a suspended VTuber''s gacha is not on sale');
update app.vtubers set status = 'approved' where id = econ_test.id('v');

-- ---- total-pull cap: reserved by pending orders, released by expiry ----
create temp table c1 as select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 10, 'c1', econ_test.t0(), extensions.gen_random_bytes(32), 'c') j;
select throws_ok($$ select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 10, 'c2', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT409', 'gacha_sold_out', 'a pending 10-pull holds 10 of the cap of 12');
select lives_ok($$ select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 1, 'c3', econ_test.t0(), extensions.gen_random_bytes(32), 'c');
                   select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 1, 'c4', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                'the last two pulls can be bought one by one');
select throws_ok($$ select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 1, 'c5', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT409', 'gacha_sold_out', 'the cap is exhausted by reservations');
select is(private.expire_orders(econ_test.t0() + interval '29 minutes', econ_test.id('f2'), null, 100), 0,
          'nothing expires before 30 minutes');
select is(private.expire_orders(econ_test.t0() + interval '30 minutes', econ_test.id('f2'), null, 100), 3,
          'pending orders expire after 30 minutes');
select is((select sum(remaining)::int from app.stock_shards where counter_id = econ_test.id('gcap')), 12,
          'expiry releases the reservations');
select lives_ok($$ select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 10, 'c6', econ_test.t0() + interval '31 minutes', extensions.gen_random_bytes(32), 'c') $$,
                'released capacity can be bought again');

-- ---- fulfilment ----
select throws_ok(format($$ select private.fulfill_order(%L, 'stripe', 'pi_x', 1000, 'JPY', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                        (select j ->> 'order_id' from o10)), 'PT409', 'amount_mismatch', 'the amount must match the snapshot');
select throws_ok(format($$ select private.fulfill_order(%L, 'stripe', 'pi_x', 900, 'USD', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                        (select j ->> 'order_id' from o10)), 'PT409', 'amount_mismatch', 'the currency must match');
select throws_ok($$ select private.fulfill_order(gen_random_uuid(), 'stripe', 'pi_x', 900, 'JPY', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                 'PT404', 'order_not_found', 'unknown order');
-- the gacha ends meanwhile: a paid order is honoured
update app.gachas set status = 'ended' where id = econ_test.id('g');
select is((private.fulfill_order((select (j ->> 'order_id')::uuid from o10), 'stripe', 'pi_10', 900, 'jpy',
                                 econ_test.t0() + interval '1 minute', extensions.gen_random_bytes(32), 'c') ->> 'fulfilled')::boolean,
          true, 'the first confirmation fulfils (even after the gacha ended)');
select is((private.fulfill_order((select (j ->> 'order_id')::uuid from o10), 'stripe', 'pi_10', 900, 'JPY',
                                 econ_test.t0() + interval '2 minutes', extensions.gen_random_bytes(32), 'c') ->> 'fulfilled')::boolean,
          false, 'a repeated confirmation does nothing');
select is((select count(*)::int from app.pulls where order_id = (select (j ->> 'order_id')::uuid from o10)), 10,
          'ten pulls drawn, once');
select is((select count(*)::int from app.user_rewards r join app.pulls p on p.id = r.pull_id
            where p.order_id = (select (j ->> 'order_id')::uuid from o10)), 10, 'ten rewards in the box');
select is((select balance from app.medal_balances where user_id = econ_test.id('f') and vtuber_id = econ_test.id('v')),
          105::bigint, 'medals credited once');
select is((select count(*)::int from app.medal_ledger where order_id = (select (j ->> 'order_id')::uuid from o10)), 1,
          'one ledger entry for the order');
-- nonces are bound when the order is created: o1 (never paid) took nonce 0, o10 took 1..10
select is((select array_agg(nonce order by nonce) from app.pulls where order_id = (select (j ->> 'order_id')::uuid from o10)),
          array[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]::bigint[], 'nonces 1..10 of the fan''s seed, bound at creation');
select is((select array_agg(roll order by nonce) from app.pulls where order_id = (select (j ->> 'order_id')::uuid from o10)),
          (select array_agg(private.fair_roll(decode(repeat('ab', 32), 'hex'), 'client', n,
                                              case when n = 10 then 100000 else 1000000 end) order by n)
             from generate_series(1, 10) n),
          'each roll is HMAC(server seed, client:nonce) mapped on the table''s range');
-- pity (10 pulls, SSR): with this seed the first nine pulls are N, so the tenth is the pity pull
select is((select array_agg(rarity order by nonce) from app.pulls where order_id = (select (j ->> 'order_id')::uuid from o10)),
          array['N', 'N', 'N', 'N', 'N', 'N', 'N', 'N', 'N', 'SSR'], 'nine N then the pity SSR');
select is((select array_agg(pity order by nonce) from app.pulls where order_id = (select (j ->> 'order_id')::uuid from o10)),
          array[false, false, false, false, false, false, false, false, false, true], 'pity fires exactly at pull 10');
select is((select total_ppm from app.rate_tables t join app.pulls p on p.rate_table_version = t.version
            where p.order_id = (select (j ->> 'order_id')::uuid from o10) and p.pity), 100000,
          'the pity pull used the SSR-only table at its relative rate');
select is((select stock_remaining from app.gacha_items where gacha_id = econ_test.id('g') and rarity = 'SSR'), 19,
          'the drawn stocked item is decremented');
select is((select sum(remaining)::int from app.stock_shards where counter_id =
             (select id from app.gacha_items where gacha_id = econ_test.id('g') and rarity = 'SSR')), 18,
          'stock shards: 20 - 1 sold - 1 reserved by the pending 1-pull order');
select is((select count(*)::int from app.order_reservations where order_id = (select (j ->> 'order_id')::uuid from o10)), 0,
          'a fulfilled order holds no reservation');
select throws_ok(format($$ select private.fulfill_order(%L, 'stripe', 'pi_10', 100, 'JPY', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                        (select j ->> 'order_id' from o1)), 'PT409', 'payment_already_used', 'one payment pays one order');

-- an expired order paid late is honoured while capacity allows
create temp table late as select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 1, 'late', econ_test.t0() + interval '31 minutes', extensions.gen_random_bytes(32), 'c') j;
select private.expire_orders(econ_test.t0() + interval '2 hours', econ_test.id('f2'), null, 100);
select is((select status from app.orders where id = (select (j ->> 'order_id')::uuid from late)), 'expired', 'expired');
select is((private.fulfill_order((select (j ->> 'order_id')::uuid from late), 'komoju', 'kj_1', 100, 'JPY',
                                 econ_test.t0() + interval '3 hours', extensions.gen_random_bytes(32), 'c') ->> 'fulfilled')::boolean,
          true, 'a late payment of an expired order is honoured');
-- ... but not when the capacity is gone
select private.fulfill_order((j ->> 'order_id')::uuid, 'komoju', 'kj_2', 1000, 'JPY', econ_test.t0() + interval '3 hours', extensions.gen_random_bytes(32), 'c')
  from (select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 10, 'fill', econ_test.t0() + interval '3 hours', extensions.gen_random_bytes(32), 'c') j) x;
create temp table late2 as select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 1, 'late2', econ_test.t0() + interval '3 hours', extensions.gen_random_bytes(32), 'c') j;
select private.fail_order((select (j ->> 'order_id')::uuid from late2), 'canceled', econ_test.t0());
select private.fulfill_order((j ->> 'order_id')::uuid, 'komoju', 'kj_3', 100, 'JPY', econ_test.t0() + interval '3 hours', extensions.gen_random_bytes(32), 'c')
  from (select private.create_order(econ_test.id('f2'), econ_test.id('gcap'), 1, 'last', econ_test.t0() + interval '3 hours', extensions.gen_random_bytes(32), 'c') j) x;
select throws_ok(format($$ select private.fulfill_order(%L, 'komoju', 'kj_4', 100, 'JPY', econ_test.t0(), extensions.gen_random_bytes(32), 'c') $$,
                        (select j ->> 'order_id' from late2)), 'PT409', 'order_cannot_be_fulfilled',
                 'a canceled order whose capacity was sold cannot be fulfilled');

-- ---- service_fail_order ----
select is((private.fail_order((select (j ->> 'order_id')::uuid from o1), 'failed', econ_test.t0()) ->> 'changed')::boolean,
          true, 'a pending order fails');
select is((select sum(remaining)::int from app.stock_shards where counter_id =
             (select id from app.gacha_items where gacha_id = econ_test.id('g') and rarity = 'SSR')), 19,
          'failure releases the stock reservation');
select is((private.fail_order((select (j ->> 'order_id')::uuid from o10), 'failed', econ_test.t0()) ->> 'changed')::boolean,
          false, 'a fulfilled order cannot fail');
select throws_ok(format($$ select private.fail_order(%L, 'fulfilled', econ_test.t0()) $$, (select j ->> 'order_id' from o1)),
                 'PT400', 'invalid_status', 'only failed/canceled/expired');

-- ---- append-only history ----
select throws_ok($$ update app.medal_ledger set delta = 1000 $$, 'PT409', 'history_append_only', 'the ledger is append-only');
select throws_ok($$ delete from app.pulls $$, 'PT409', 'history_append_only', 'pulls are append-only');

-- ---- the API as each role ----
grant select on o1, o10, c1, late, late2 to anon, authenticated, service_role;
select tests.authenticate_as(econ_test.id('f'));
select is((get_order((select (j ->> 'order_id')::uuid from o10)) -> 'pulls' -> 9 ->> 'rarity'), 'SSR',
          'the owner reads the order with its pulls');
select is(jsonb_array_length(list_my_orders(20, 0)), 2, 'the owner lists their orders');
select throws_ok($$ select list_my_orders(0, 0) $$, 'PT400', 'invalid_pagination', 'limit 1..100');
select is((select count(*)::int from app.pulls), 10, 'RLS: a fan reads only their pulls');
select throws_ok($$ select public.service_fulfill_order(gen_random_uuid(), 'stripe', 'x', 1, 'JPY') $$,
                 '42501', null, 'a fan cannot fulfil');
select tests.authenticate_as(econ_test.id('f2'));
select throws_ok(format($$ select get_order(%L) $$, (select j ->> 'order_id' from o10)),
                 'PT404', 'order_not_found', 'another fan''s order is not found');
select is((select count(*)::int from app.orders where user_id = econ_test.id('f')), 0, 'RLS hides another fan''s orders');
select throws_ok($$ select server_seed from app.fairness_seeds $$, '42501', null, 'the server seed column is never readable');
select tests.clear_authentication();
select throws_ok($$ select public.create_order(gen_random_uuid(), 1, 'x') $$, '42501', null, 'anon cannot order');
select tests.authenticate_as_service_role();
select is((public.service_fail_order((select (j ->> 'order_id')::uuid from o10), 'failed') ->> 'changed')::boolean, false,
          'the service role calls service_fail_order');
select is((public.service_expire_orders() ->> 'expired')::int >= 0, true, 'the service role sweeps expired orders');
select tests.as_postgres();

select * from finish();
rollback;
