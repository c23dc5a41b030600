begin;
select plan(64);

-- The economy fixture (supabase/tests/economy_fixture.sql) is installed with the test helpers.

insert into econ_test.ids values ('v', econ_test.vtuber('v@t')), ('v2', econ_test.vtuber('v2@t', 'Other'));
insert into econ_test.ids values ('f', econ_test.fan('f@t')), ('f2', econ_test.fan('f2@t'));
insert into econ_test.ids select 'admin', tests.create_user('a@t');
insert into app.user_roles (user_id, role) values (econ_test.id('admin'), 'admin');
insert into econ_test.ids values
  ('x', econ_test.exchange_item(econ_test.id('v'), 30, 5, 4, 2)),
  ('xfree', econ_test.exchange_item(econ_test.id('v'), 10)),
  ('x2', econ_test.exchange_item(econ_test.id('v2'), 1));

-- ---- fairness: test vectors of docs/fairness.md ----
select is(encode(sha256(decode('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex')), 'hex'),
          '630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd', 'vector: seed commitment');
select is((select array_agg(private.fair_roll(decode('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex'),
                                              'koepon', n, 1000000) order by n) from generate_series(0, 4) n),
          array[722706, 728870, 585462, 603252, 327039]::bigint[], 'vector: rolls of nonces 0..4');
select is(private.fair_roll(decode('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex'), 'koepon', 0, 3),
          2::bigint, 'vector: range 3');
select is(private.fair_roll(decode('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex'), 'koepon', 5114, 1000000),
          224859::bigint, 'vector: round 0 rejected, round 1 used');
select is(private.pick_entry('[["11111111-1111-1111-1111-111111111111","N",700000],["22222222-2222-2222-2222-222222222222","SR",299900],["33333333-3333-3333-3333-333333333333","UR",100]]', 999899) ->> 1,
          'SR', 'vector: 999899 is the SR item');
select is(private.pick_entry('[["11111111-1111-1111-1111-111111111111","N",700000],["22222222-2222-2222-2222-222222222222","SR",299900],["33333333-3333-3333-3333-333333333333","UR",100]]', 999900) ->> 1,
          'UR', 'vector: 999900 is the 100 ppm item');
select is(encode(sha256(convert_to(e'11111111-1111-1111-1111-111111111111:N:700000\n22222222-2222-2222-2222-222222222222:SR:299900\n33333333-3333-3333-3333-333333333333:UR:100', 'UTF8')), 'hex'),
          '936e1131b984bb4b1ccb45c4a7327d4f452b37af26b6055af7ea9ddf05c966e4', 'vector: rate table version');
select throws_ok($$ select private.fair_roll('\x00', 'c', 0, 0) $$, 'PT400', 'invalid_range', 'range 1..1000000');

-- ---- seeds through the API ----
grant select on econ_test.ids to authenticated;
select tests.authenticate_as(econ_test.id('f'));
create temp table s0 as select get_fairness() j;
select ok((select j ->> 'server_seed_hash' from s0) ~ '^[0-9a-f]{64}$', 'get_fairness shows the commitment');
select is((select j ->> 'server_seed' from s0), null, 'never the active server seed');
select is((select (j ->> 'next_nonce')::int from s0), 0, 'nonce starts at 0');
select is(get_fairness() ->> 'seed_id', (select j ->> 'seed_id' from s0), 'one active seed');
select is((set_client_seed('my-seed') -> 'revealed'), 'null'::jsonb, 'an unused pair keeps its server seed');
select is(get_fairness() ->> 'client_seed', 'my-seed', 'the client seed is set');
select throws_ok($$ select set_client_seed('has space') $$, 'PT400', 'invalid_client_seed', 'printable, no spaces');
select throws_ok($$ select set_client_seed(repeat('a', 65)) $$, 'PT400', 'invalid_client_seed', 'at most 64');
create temp table r1 as select rotate_fairness_seed() j;
select is((select j -> 'revealed' ->> 'seed_id' from r1),
          (select id::text from app.fairness_seeds where client_seed = 'my-seed'), 'rotation reveals the old seed');
select is(encode(sha256(decode((select j -> 'revealed' ->> 'server_seed' from r1), 'hex')), 'hex'),
          (select j ->> 'server_seed_hash' from s0), 'the revealed seed matches its commitment');
select isnt((select j -> 'next' ->> 'server_seed_hash' from r1), (select j ->> 'server_seed_hash' from s0), 'a new commitment');
-- the next seed was committed after the server saw 'my-seed': it is never paired with it
select is((select j -> 'active' from r1), 'null'::jsonb, 'no pair is active until the fan gives a client seed');
select is(jsonb_array_length(get_fairness() -> 'revealed'), 1, 'revealed seeds are listed');
create temp table s1 as select set_client_seed('mine-2') j;
select is((select j -> 'active' ->> 'server_seed_hash' from s1), (select j -> 'next' ->> 'server_seed_hash' from r1),
          'the client seed activates the seed committed before it was chosen');
select tests.as_postgres();
update app.fairness_seeds set next_nonce = 3 where user_id = econ_test.id('f') and active;
select tests.authenticate_as(econ_test.id('f'));
select isnt((set_client_seed('other') -> 'revealed'), 'null'::jsonb, 'a used pair is rotated when the client seed changes');
select tests.as_postgres();

-- ---- medals: the ledger writer ----
select is(private.post_medals(econ_test.id('f'), econ_test.id('v'), 100, 'admin_adjustment', null, null, 'seed', now()),
          100::bigint, 'post_medals returns the new balance');
select throws_ok($$ select private.post_medals(econ_test.id('f'), econ_test.id('v'), -101, 'admin_adjustment', null, null, 'x', now()) $$,
                 'PT409', 'insufficient_medals', 'never below zero');
select is((select array[previous_balance, new_balance] from app.medal_ledger where user_id = econ_test.id('f') order by id desc limit 1),
          array[0, 100]::bigint[], 'previous and new balance on the entry');
select throws_ok($$ select private.post_medals(econ_test.id('f'), econ_test.id('v'), 5, 'exchange', null, null, null, now()) $$,
                 '23514', null, 'an exchange entry needs its exchange');

-- ---- admin adjustments ----
select tests.authenticate_as(econ_test.id('admin'));
select is((admin_adjust_medals(econ_test.id('f'), econ_test.id('v'), 50, 'goodwill') ->> 'balance')::bigint, 150::bigint,
          'an admin adds medals');
select throws_ok($$ select admin_adjust_medals(econ_test.id('f'), econ_test.id('v'), 5, '  ') $$, 'PT400', 'reason_required', 'a reason is required');
select throws_ok($$ select admin_adjust_medals(econ_test.id('f'), econ_test.id('v'), 0, 'x') $$, 'PT400', 'invalid_delta', 'zero is refused');
select throws_ok($$ select admin_adjust_medals(econ_test.id('f'), econ_test.id('v'), -1000, 'x') $$, 'PT409', 'insufficient_medals', 'no negative balance');
select throws_ok($$ select admin_adjust_medals(gen_random_uuid(), econ_test.id('v'), 1, 'x') $$, 'PT404', 'user_not_found', 'unknown fan');
select throws_ok($$ select admin_adjust_medals(econ_test.id('f'), gen_random_uuid(), 1, 'x') $$, 'PT404', 'vtuber_not_found', 'unknown VTuber');
select tests.as_postgres();
select is((select count(*)::int from app.audit_log where action = 'medals.adjust'), 1, 'the adjustment is audited');
select tests.authenticate_as(econ_test.id('f'));
select throws_ok($$ select admin_adjust_medals(econ_test.id('f'), econ_test.id('v'), 50, 'me') $$, 'PT403', 'admin_only', 'a fan cannot mint medals');
select is((get_medal_balances() -> 0 ->> 'balance')::bigint, 150::bigint, 'get_medal_balances');
select is(jsonb_array_length(list_medal_ledger(econ_test.id('v'), 1, null)), 1, 'the ledger pages');
select is((list_medal_ledger(null, 50, (list_medal_ledger(null, 1, null) -> 0 ->> 'id')::bigint) -> 0 ->> 'new_balance')::bigint,
          100::bigint, 'keyset pagination with p_before_id');
select throws_ok($$ select list_medal_ledger(null, 0, null) $$, 'PT400', 'invalid_pagination', 'limit 1..200');

-- ---- exchange (x: cost 30, stock 5, lifetime 4, daily 2) ----
create temp table e1 as select exchange_medals(econ_test.id('x'), 2, 'e1') j;
select is((select (j ->> 'medals_spent')::int from e1), 60, 'cost x quantity');
select is((select (j ->> 'balance')::int from e1), 90, 'the balance after the debit');
select is((select jsonb_array_length(j -> 'reward_ids') from e1), 2, 'one reward per unit');
select is(exchange_medals(econ_test.id('x'), 2, 'e1') ->> 'exchange_id', (select j ->> 'exchange_id' from e1), 'same key, same result');
select throws_ok($$ select exchange_medals(econ_test.id('x'), 1, 'e1') $$, 'PT409', 'idempotency_key_reused', 'same key, other quantity');
select throws_ok($$ select exchange_medals(econ_test.id('x'), 1, 'e2') $$, 'PT409', 'exchange_limit_reached', 'daily limit by quantity');
select throws_ok($$ select exchange_medals(econ_test.id('x'), 11, 'e3') $$, 'PT400', 'invalid_quantity', 'quantity 1..10');
select throws_ok($$ select exchange_medals(econ_test.id('x2'), 1, 'e4') $$, 'PT409', 'insufficient_medals', 'medals of VTuber A never buy B''s items');
select throws_ok($$ select exchange_medals(gen_random_uuid(), 1, 'e5') $$, 'PT404', 'exchange_item_not_found', 'unknown item');
select is((select (i ->> 'remaining_today')::int from jsonb_array_elements(list_exchange_items(econ_test.id('v')) -> 'items') i
            where i ->> 'id' = econ_test.id('x')::text), 0, 'the listing shows today''s remaining');
select is((list_exchange_items(econ_test.id('v')) ->> 'balance')::int, 90, 'the listing shows the balance');
select tests.as_postgres();
-- the next JST day (the core takes time as a parameter)
select is((private.exchange_medals(econ_test.id('f'), econ_test.id('x'), 2, 'e6', now() + interval '1 day') ->> 'quantity')::int, 2,
          'the daily limit resets on the next JST day');
select throws_ok($$ select private.exchange_medals(econ_test.id('f'), econ_test.id('x'), 1, 'e7', now() + interval '2 days') $$,
                 'PT409', 'exchange_limit_reached', 'lifetime limit by quantity (4)');
select is((select total_stock from app.exchange_items where id = econ_test.id('x')), 1, 'stock decremented by quantity');
select private.post_medals(econ_test.id('f2'), econ_test.id('v'), 100, 'admin_adjustment', null, null, 'seed', now());
select throws_ok($$ select private.exchange_medals(econ_test.id('f2'), econ_test.id('x'), 2, 'f2a', now()) $$,
                 'PT409', 'out_of_stock', 'only one left');
select is((private.exchange_medals(econ_test.id('f2'), econ_test.id('x'), 1, 'f2b', now()) ->> 'balance')::int, 70, 'the last unit');
select is((private.exchange_medals(econ_test.id('f2'), econ_test.id('xfree'), 1, 'jst1', timestamptz '2026-11-24 14:59+00') ->> 'jst_date'),
          '2026-11-24', '23:59 JST is still the 24th');
select is((private.exchange_medals(econ_test.id('f2'), econ_test.id('xfree'), 1, 'jst2', timestamptz '2026-11-24 15:00+00') ->> 'jst_date'),
          '2026-11-25', '00:00 JST is the 25th');
update app.exchange_items set available_from = now() + interval '1 day' where id = econ_test.id('xfree');
select throws_ok($$ select private.exchange_medals(econ_test.id('f2'), econ_test.id('xfree'), 1, 'w1', now()) $$,
                 'PT409', 'exchange_not_available', 'not before available_from');
update app.exchange_items set available_from = null, status = 'retired' where id = econ_test.id('xfree');
select throws_ok($$ select private.exchange_medals(econ_test.id('f2'), econ_test.id('xfree'), 1, 'w2', now()) $$,
                 'PT409', 'exchange_not_available', 'not once retired');
select is((select sum(delta)::bigint from app.medal_ledger where user_id = econ_test.id('f2')),
          (select balance from app.medal_balances where user_id = econ_test.id('f2') and vtuber_id = econ_test.id('v')),
          'sum of the ledger = balance');
select is((select count(*)::int from app.user_rewards where user_id = econ_test.id('f2') and source = 'exchange'), 3,
          'exchanged units are in the box');
select tests.authenticate_as(econ_test.id('f2'));
select is(jsonb_array_length(list_my_rewards(50, 0)), 3, 'list_my_rewards');
select throws_ok($$ select list_my_rewards(0, 0) $$, 'PT400', 'invalid_pagination', 'limit 1..200');
select throws_ok($$ select list_exchange_items(gen_random_uuid()) $$, 'PT404', 'vtuber_not_found', 'unknown VTuber');
select tests.as_postgres();

select * from finish();
rollback;
