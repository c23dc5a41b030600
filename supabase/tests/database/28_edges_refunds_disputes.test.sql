-- Refunds and disputes: request, admin review (audited), provider refunds (idempotent, bounded by
-- the payment, first one revokes rewards and claws back medals with the shortfall recorded), disputes.
begin;
select plan(47);

-- The economy fixture (supabase/tests/economy_fixture.sql) is installed with the test helpers.

insert into econ_test.ids values ('v', econ_test.vtuber('v@t'));
insert into econ_test.ids values
  ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"a","rarity":"N","rate_ppm":1000000}]')),
  ('f', econ_test.fan('f@t')), ('f2', econ_test.fan('f2@t')), ('admin', tests.create_user('admin@t'));
insert into app.user_roles (user_id, role) values (econ_test.id('admin'), 'admin');
insert into econ_test.ids values ('o', econ_test.paid('f', 10, 'k1', now())), ('o2', econ_test.paid('f', 1, 'k2', now())),
  ('o3', econ_test.paid('f2', 10, 'k3', now()));
insert into econ_test.ids select 'pending', (private.create_order(econ_test.id('f'), econ_test.id('g'), 1, 'k4', now(),
  extensions.gen_random_bytes(32), 'cs') ->> 'order_id')::uuid;
-- f has 100 + 10 medals of v

-- ---- request_refund (fan) ----
select tests.authenticate_as(econ_test.id('f'));
select throws_ok($$ select public.request_refund(econ_test.id('o'), '   ') $$, 'PT400', 'invalid_refund_reason',
                 'a reason is required');
select throws_ok($$ select public.request_refund(econ_test.id('o'), repeat('x', 501)) $$, 'PT400', 'invalid_refund_reason',
                 'at most 500 characters');
select throws_ok($$ select public.request_refund(econ_test.id('o3'), 'not mine') $$, 'PT404', 'order_not_found',
                 'another fan''s order is not found');
select throws_ok($$ select public.request_refund(econ_test.id('pending'), 'unpaid') $$, 'PT409', 'order_not_refundable',
                 'an unpaid order cannot be refunded');
select is(public.request_refund(econ_test.id('o'), repeat('y', 500)) ->> 'status', 'requested', '500 characters are fine');
select throws_ok($$ select public.request_refund(econ_test.id('o'), 'again') $$, 'PT409', 'refund_already_requested',
                 'one open request per order');
select is((select count(*)::integer from app.refunds), 1, 'the fan reads their own refund');
select throws_ok($$ select public.review_refund((select id from app.refunds limit 1), true, null) $$, 'PT403', 'admin_only',
                 'a fan cannot review');
select tests.clear_authentication();
select throws_ok($$ select public.request_refund(econ_test.id('o'), 'x') $$, '42501', null, 'anon cannot request');
select tests.as_postgres();
insert into econ_test.ids select 'req', id from app.refunds where order_id = econ_test.id('o');

-- ---- review_refund (admin) ----
select tests.authenticate_as(econ_test.id('admin'));
select throws_ok($$ select public.review_refund(econ_test.id('req'), false, '  ') $$, 'PT400', 'invalid_reason',
                 'a rejection needs a reason');
select throws_ok($$ select public.review_refund(gen_random_uuid(), true, null) $$, 'PT404', 'refund_not_found',
                 'unknown refund');
select is(public.review_refund(econ_test.id('req'), true, 'service failure') - 'refund_id' - 'order_id' - 'user_id'
          - 'reason' - 'reviewed_at' - 'created_at' - 'reviewed_by',
          '{"status": "approved", "amount_jpy": 1000, "review_reason": "service failure", "completed_at": null,
            "medal_shortfall": 0, "medals_clawed_back": 0, "provider_refund_id": null}'::jsonb,
          'approved for what is left of the payment');
select throws_ok($$ select public.review_refund(econ_test.id('req'), false, 'changed my mind') $$, 'PT409',
                 'refund_not_pending', 'a decision is final');
select is((select action || ' ' || (actor = econ_test.id('admin'))::text from app.audit_log
            where target_id = econ_test.id('req')::text), 'refund.approve true', 'the approval is audited with its admin');

-- ---- service_get_refund ----
select tests.authenticate_as_service_role();
select is(public.service_get_refund(econ_test.id('req')) ->> 'provider_payment_id', 'pi_f_k1',
          'the payment service gets the provider reference');
select tests.authenticate_as(econ_test.id('f'));
select throws_ok($$ select public.service_get_refund(econ_test.id('req')) $$, '42501', null, 'fans cannot');
select throws_ok($$ select public.service_record_refund(econ_test.id('o'), 're_x', 100) $$, '42501', null,
                 'fans cannot record refunds');
select throws_ok($$ select public.service_record_dispute(econ_test.id('o'), 'dp_x', 'lost') $$, '42501', null,
                 'fans cannot record disputes');

-- ---- service_record_refund: the first (partial) refund voids the pulls ----
select tests.as_postgres();
-- spend 95 of f's 110 medals so the clawback of 100 falls short by 85
select private.post_medals(econ_test.id('f'), econ_test.id('v'), -95, 'admin_adjustment', null, null, 'test spend', now());
select tests.authenticate_as_service_role();
select throws_ok($$ select public.service_record_refund(econ_test.id('o'), 're_1', 0) $$, 'PT400', 'invalid_amount', 'amount > 0');
select throws_ok($$ select public.service_record_refund(econ_test.id('o'), '', 100) $$, 'PT400', 'invalid_provider_refund_id',
                 'a provider refund id');
select throws_ok($$ select public.service_record_refund(gen_random_uuid(), 're_1', 100) $$, 'PT404', 'order_not_found',
                 'unknown order');
select throws_ok($$ select public.service_record_refund(econ_test.id('pending'), 're_1', 100) $$, 'PT409',
                 'order_not_refundable', 'an unpaid order');
select throws_ok($$ select public.service_record_refund(econ_test.id('o'), 're_1', 1001) $$, 'PT409',
                 'refund_exceeds_payment', 'more than the payment');
select is(public.service_record_refund(econ_test.id('o'), 're_1', 400) - 'refund_id' - 'order_id' - 'user_id' - 'reason'
          - 'reviewed_at' - 'created_at' - 'reviewed_by' - 'completed_at' - 'review_reason',
          '{"status": "completed", "amount_jpy": 400, "provider_refund_id": "re_1", "recorded": true,
            "medals_clawed_back": 15, "medal_shortfall": 85, "rewards_revoked": 10, "order_refunded_jpy": 400,
            "fully_refunded": false}'::jsonb,
          'first refund: completes the approved request, revokes 10 rewards, claws back 15 of 100 medals');
select tests.as_postgres();
select is((select balance from app.medal_balances where user_id = econ_test.id('f')), 0::bigint, 'balance 0, never negative');
select is((select sum(delta) from app.medal_ledger where user_id = econ_test.id('f')), 0::numeric, 'sum of ledger = balance');
select is((select delta || ' ' || note from app.medal_ledger where reason = 'refund_clawback'),
          '-15 refund ' || econ_test.id('req'), 'the clawback is a ledger entry naming the refund');
select is((select count(*)::integer from app.user_rewards r join app.pulls p on p.id = r.pull_id
            where p.order_id = econ_test.id('o') and r.revoked_at is null), 0, 'every reward of the order is revoked');
select is((select count(*)::integer from app.user_rewards r join app.pulls p on p.id = r.pull_id
            where p.order_id = econ_test.id('o2') and r.revoked_at is null), 1, 'other orders'' rewards are untouched');
select tests.authenticate_as_service_role();
select is(public.service_record_refund(econ_test.id('o'), 're_1', 400) ->> 'recorded', 'false', 'a replay is not recorded again');
select throws_ok($$ select public.service_record_refund(econ_test.id('o'), 're_1', 300) $$, 'PT409',
                 'provider_refund_id_reused', 'the same provider id with another amount');
select throws_ok($$ select public.service_record_refund(econ_test.id('o2'), 're_1', 400) $$, 'PT409',
                 'provider_refund_id_reused', 'the same provider id for another order');
select is(public.service_record_refund(econ_test.id('o'), 're_2', 600) - 'refund_id' - 'order_id' - 'user_id' - 'reason'
          - 'reviewed_at' - 'created_at' - 'reviewed_by' - 'completed_at' - 'review_reason',
          '{"status": "completed", "amount_jpy": 600, "provider_refund_id": "re_2", "recorded": true,
            "medals_clawed_back": 0, "medal_shortfall": 0, "rewards_revoked": 0, "order_refunded_jpy": 1000,
            "fully_refunded": true}'::jsonb,
          'a second refund of the rest: recorded without a request, no second clawback');
select throws_ok($$ select public.service_record_refund(econ_test.id('o'), 're_3', 1) $$, 'PT409', 'refund_exceeds_payment',
                 'nothing more than the payment');
select tests.as_postgres();
select is((select count(*)::integer from app.medal_ledger where reason = 'refund_clawback'), 1, 'one clawback per order');
select is((select count(*)::integer from app.audit_log where action = 'refund.record'), 2, 'each provider refund is audited');
select tests.authenticate_as(econ_test.id('f'));
select throws_ok($$ select public.request_refund(econ_test.id('o'), 'more') $$, 'PT409', 'order_already_refunded',
                 'a fully refunded order cannot be asked again');
select throws_ok($$ select public.request_download((select r.id from app.user_rewards r join app.pulls p on p.id = r.pull_id
                                                     where p.order_id = econ_test.id('o') limit 1)) $$,
                 'PT409', 'reward_revoked', 'its rewards cannot be downloaded');

-- rejection path
select tests.authenticate_as(econ_test.id('f'));
select lives_ok($$ select public.request_refund(econ_test.id('o2'), 'please') $$, 'request on the second order');
select tests.authenticate_as(econ_test.id('admin'));
select is(public.review_refund((select id from app.refunds where order_id = econ_test.id('o2')), false, 'not a failure')
            ->> 'status', 'rejected', 'rejected with a reason');
select tests.authenticate_as(econ_test.id('f'));
select is(public.request_refund(econ_test.id('o2'), 'it really failed') ->> 'status', 'requested',
          'after a rejection the fan may ask again');

-- ---- disputes ----
select tests.authenticate_as_service_role();
select throws_ok($$ select public.service_record_dispute(econ_test.id('o3'), 'dp_1', 'Needs Response!') $$, 'PT400',
                 'invalid_dispute_status', 'a status word');
select is(public.service_record_dispute(econ_test.id('o3'), 'dp_1', 'needs_response') - 'order_id' - 'user_id',
          '{"provider_dispute_id": "dp_1", "status": "needs_response", "created": true, "changed": false,
            "order_disputed": true, "user_flagged": true}'::jsonb, 'a dispute flags order and fan');
select is(public.service_record_dispute(econ_test.id('o3'), 'dp_1', 'needs_response') ->> 'created', 'false',
          'a replay changes nothing');
select is(public.service_record_dispute(econ_test.id('o3'), 'dp_1', 'lost') ->> 'changed', 'true', 'a new status is recorded');
select throws_ok($$ select public.service_record_dispute(econ_test.id('o'), 'dp_1', 'lost') $$, 'PT409',
                 'provider_dispute_id_reused', 'one dispute id, one order');
select tests.as_postgres();
select is((select (o.disputed, p.flagged)::text from app.orders o join app.profiles p on p.user_id = o.user_id
            where o.id = econ_test.id('o3')), '(t,t)', 'order disputed, fan flagged');

select * from finish();
rollback;
