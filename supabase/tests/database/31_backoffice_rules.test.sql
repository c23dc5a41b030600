-- The VTuber's and the admin's side, rules: keyset pages, filters, VTuber profile validation,
-- audited admin actions, reconciliation filed once, and the sales rollups checked against an
-- independent computation from the base tables over a history whose refunds and chargebacks
-- cross a month boundary; monthly statements closed, immutable, hash-chained, exported.
begin;
select plan(67);

-- ---------------------------------------------------------------------------------------
-- A generated history (JST): January and February 2026, two VTubers
-- ---------------------------------------------------------------------------------------
insert into econ_test.ids values ('v', econ_test.vtuber('v@t', 'Vee')), ('w', econ_test.vtuber('w@t', 'Wes'));
insert into econ_test.ids values
  ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"n","rarity":"N","rate_ppm":700000},
                                             {"name":"r","rarity":"R","rate_ppm":250000},
                                             {"name":"s","rarity":"SR","rate_ppm":50000}]')),
  ('g2', econ_test.gacha(econ_test.id('w'), '[{"name":"a","rarity":"N","rate_ppm":1000000}]')),
  ('x', econ_test.exchange_item(econ_test.id('v'), 10)),
  ('f1', econ_test.fan('f1@t')), ('f2', econ_test.fan('f2@t')), ('f3', econ_test.fan('f3@t')),
  ('f4', econ_test.fan('f4@t')), ('admin', tests.create_user('admin@t'));
insert into app.user_roles (user_id, role) values (econ_test.id('admin'), 'admin');
insert into econ_test.ids values
  ('o1', econ_test.paid('f1', 10, 'a', '2026-01-10 12:00+09')),
  ('o2', econ_test.paid('f2', 1, 'b', '2026-01-31 23:30+09')),   -- the last evening of January (JST)
  ('o3', econ_test.paid('f1', 1, 'c', '2026-02-01 00:30+09')),   -- February in JST, still January in UTC
  ('o4', econ_test.paid('f3', 10, 'd', '2026-02-03 10:00+09')),
  ('o5', econ_test.paid('f4', 10, 'e', '2026-01-20 10:00+09'));
-- econ_test.paid draws from gacha 'g'; point it at W's gacha for one order of W.
update econ_test.ids set k = 'g_v' where k = 'g';
insert into econ_test.ids values ('g', econ_test.id('g2'));
insert into econ_test.ids values ('w1', econ_test.paid('f1', 1, 'w', '2026-01-15 09:00+09'));
delete from econ_test.ids where k = 'g';
update econ_test.ids set k = 'g' where k = 'g_v';
-- January: a partial refund of o1; medals spent and adjusted.
select private.exchange_medals(econ_test.id('f1'), econ_test.id('x'), 2, 'xk', '2026-01-12 12:00+09');
select private.record_refund(econ_test.id('o1'), 're_1', 300, '2026-01-15 12:00+09');
select private.admin_adjust_medals(econ_test.id('admin'), econ_test.id('f2'), econ_test.id('v'), 5, 'goodwill',
                                   '2026-01-31 23:40+09');
-- February: a refund of January's o2 and chargebacks of January's o5 and o1.
select private.record_refund(econ_test.id('o2'), 're_2', 100, '2026-02-01 01:00+09');
select private.record_dispute(econ_test.id('o5'), 'dp_1', 'needs_response', '2026-02-02 09:00+09');
select private.record_dispute(econ_test.id('o1'), 'dp_2', 'needs_response', '2026-02-02 10:00+09');
select private.record_dispute(econ_test.id('o1'), 'dp_3', 'needs_response', '2026-02-02 11:00+09');

-- The independent computation, from the base tables by order status (not through the ledger).
create temporary view expected_sales as
with paid as (
  select (o.fulfilled_at at time zone 'Asia/Tokyo')::date as d, o.gacha_id, count(*) as n, sum(o.pull_count) as pulls,
         sum(o.amount_jpy) as gross
  from app.orders o where o.status = 'fulfilled' group by 1, 2),
ref as (
  select (f.completed_at at time zone 'Asia/Tokyo')::date as d, o.gacha_id, count(*) as n, sum(f.amount_jpy) as amt
  from app.refunds f join app.orders o on o.id = f.order_id where f.status = 'completed' group by 1, 2),
cb as (
  select (min(x.created_at) at time zone 'Asia/Tokyo')::date as d, o.gacha_id, o.amount_jpy
  from app.disputes x join app.orders o on o.id = x.order_id group by x.order_id, o.gacha_id, o.amount_jpy),
cbd as (select d, gacha_id, count(*) as n, sum(amount_jpy) as amt from cb group by 1, 2),
keys as (select d, gacha_id from paid union select d, gacha_id from ref union select d, gacha_id from cbd)
select k.d as jst_date, k.gacha_id, coalesce(p.n, 0)::integer as paid_orders, coalesce(p.pulls, 0)::integer as pulls,
       coalesce(p.gross, 0)::bigint as gross_jpy, coalesce(r.n, 0)::integer as refund_count,
       coalesce(r.amt, 0)::bigint as refunds_jpy, coalesce(c.n, 0)::integer as chargeback_count,
       coalesce(c.amt, 0)::bigint as chargebacks_jpy
from keys k left join paid p using (d, gacha_id) left join ref r using (d, gacha_id) left join cbd c using (d, gacha_id);

create temporary view actual_sales as
select jst_date, gacha_id, paid_orders, pulls, gross_jpy, refund_count, refunds_jpy, chargeback_count, chargebacks_jpy
from app.sales_daily;

-- ---------------------------------------------------------------------------------------
-- Rollups: first up to the end of January (JST), then the rest
-- ---------------------------------------------------------------------------------------
select is(private.refresh_rollups('2026-02-01 00:00:02+09') ->> 'through', '2026-01-31T15:00:00+00:00',
          'the watermark stops a few seconds before the run');
select set_eq('select * from actual_sales',
              $$select * from expected_sales where jst_date < '2026-02-01'
                 and (paid_orders > 0 or refund_count > 0)$$,
              'after the first run the rollups hold exactly January');
select is((select sum(gross_jpy)::integer from app.sales_daily where vtuber_id = econ_test.id('v')), 2100,
          'January gross of V: 1000 + 100 + 1000');

-- ---- payouts: close January ----
select throws_ok($$ select private.close_payout_month('2026-02-01', econ_test.id('admin'), '2026-02-10 00:00+09') $$,
                 'PT409', 'month_not_over', 'a month closes only after it ended');
select is(private.close_payout_month('2026-01-01', econ_test.id('admin'), '2026-02-01 00:00:02+09') ->> 'statements',
          '2', 'closing January writes one statement per VTuber with sales');
select is((select jsonb_build_object('gross', gross_jpy, 'refunds', refunds_jpy, 'chargebacks', chargebacks_jpy,
                                     'net', net_jpy, 'bps', share_bps, 'share', vtuber_share_jpy,
                                     'platform', platform_fee_jpy, 'tax_gross', consumption_tax_in_gross_jpy,
                                     'carried_in', carried_in_jpy, 'payable', payable_jpy, 'carried_out', carried_out_jpy)
           from app.payout_statements where vtuber_id = econ_test.id('v') and month = '2026-01-01'),
          '{"gross": 2100, "refunds": 300, "chargebacks": 0, "net": 1800, "bps": 7000, "share": 1260,
            "platform": 540, "tax_gross": 190, "carried_in": 0, "payable": 1260, "carried_out": 0}'::jsonb,
          'January statement of V: 70 % of net, tax contained in the gross');
create temporary table jan_before as select * from app.payout_statements where month = '2026-01-01';
select throws_ok($$ select private.close_payout_month('2026-01-01', null, now()) $$, 'PT409', 'month_already_closed',
                 'a month closes once');
select throws_ok($$ select private.close_payout_month('2026-03-01', null, now()) $$, 'PT409', 'month_out_of_order',
                 'months close in order');
select throws_ok($$ update app.payout_statements set payable_jpy = 0 $$, 'PT409', 'statement_closed',
                 'a closed statement can never change, not even for the owner of the tables');
select throws_ok($$ delete from app.payout_months $$, 'PT409', 'statement_closed', 'nor can a closed month be reopened');

-- A later refund of a January sale, after January closed.
select private.record_refund(econ_test.id('o5'), 're_3', 200, '2026-02-05 12:00+09');

select ok(private.refresh_rollups(now()) ->> 'through' is not null, 'the second run catches up');
select set_eq('select * from actual_sales', 'select * from expected_sales',
              'caught up, the rollups equal the independent computation (refunds and chargebacks on their own day)');
select set_eq($$select jst_date, gacha_item_id, pulls + pity_pulls from app.item_pulls_daily$$,
              $$select (o.fulfilled_at at time zone 'Asia/Tokyo')::date, p.gacha_item_id, count(*)::integer
                from app.pulls p join app.orders o on o.id = p.order_id group by 1, 2$$,
              'pulls per item and day equal the pulls table');
select set_eq($$select vtuber_id, jst_date, granted, spent, clawed_back, adjusted from app.medals_daily$$,
              $$select vtuber_id, (created_at at time zone 'Asia/Tokyo')::date as d,
                       coalesce(sum(delta) filter (where reason = 'pull_grant'), 0)::bigint as granted,
                       coalesce(-sum(delta) filter (where reason = 'exchange'), 0)::bigint as spent,
                       coalesce(-sum(delta) filter (where reason = 'refund_clawback'), 0)::bigint as clawed,
                       coalesce(sum(delta) filter (where reason = 'admin_adjustment'), 0)::bigint as adjusted
                from app.medal_ledger group by 1, 2$$,
              'medal flows per VTuber and day equal the ledger');
select is((select sum(granted - spent - clawed_back + adjusted)::bigint from app.medals_daily),
          (select sum(balance)::bigint from app.medal_balances), 'outstanding medals equal the balances');
select set_eq($$select vtuber_id, jst_date, user_id, gross_jpy from app.fan_sales_daily$$,
              $$select vtuber_id, (fulfilled_at at time zone 'Asia/Tokyo')::date, user_id, sum(amount_jpy)::bigint
                from app.orders where status = 'fulfilled' group by 1, 2, 3$$,
              'paying fans per VTuber and day equal the orders');
select is(private.refresh_rollups(now()) ->> 'rows', '0', 'a run with nothing new adds nothing');
select set_eq('select * from actual_sales', 'select * from expected_sales', 'and the rollups still match');

-- ---- the reports ----
-- The reports are json (sent as built); compared here as jsonb, with its operators.
create temporary table sales_reports (k text primary key, r jsonb);
grant select, insert on sales_reports to authenticated;
select tests.authenticate_as((select user_id from app.vtubers where id = econ_test.id('v')));
insert into sales_reports values ('V', public.get_my_sales('2026-01-01', '2026-02-28')::jsonb);
select is((public.get_my_sales('2026-01-01', '2026-02-28')::jsonb -> 'totals')
            - 'net_jpy' - 'vtuber_share_jpy' - 'platform_fee_jpy' - 'provider_fees_jpy',
          '{"paid_orders": 5, "pulls": 32, "gross_jpy": 3200, "refunds_jpy": 600, "chargebacks_jpy": 2000,
            "paying_fans": 4, "new_fans": 4, "arppu_jpy": 800}'::jsonb,
          'the VTuber''s totals: only their own sales (W''s order of F1 is not in it)');
select is(public.get_my_sales('2026-02-01', '2026-02-28')::jsonb -> 'days' -> 0 ->> 'returning_fans', '1',
          'F1 paid in January and again on February 1: a returning fan');
select is((public.get_my_sales('2026-01-01', '2026-02-28')::jsonb -> 'exchanges_by_item' -> 0 ->> 'quantity'), '2',
          'exchange redemptions by item');
select is((select sum((e ->> 'pulls')::integer + (e ->> 'pity_pulls')::integer)
           from jsonb_array_elements(public.get_my_sales('2026-01-01', '2026-02-28')::jsonb -> 'pulls_by_rarity') e), 32::bigint,
          'pulls by rarity add up to the pulls');
select throws_ok($$ select public.get_my_sales('2026-03-01', '2026-01-01') $$, 'PT400', 'invalid_date_range',
                 'an inverted range is refused');
select throws_ok($$ select public.admin_get_sales() $$, 'PT403', 'admin_only', 'a VTuber cannot read the platform''s sales');
select tests.authenticate_as(econ_test.id('admin'));
select is((public.admin_get_sales(null, '2026-01-01', '2026-02-28')::jsonb -> 'totals' ->> 'gross_jpy'), '3300',
          'the admin sees everyone''s sales');
insert into sales_reports values ('platform', public.admin_get_sales(null, '2026-01-01', '2026-02-28')::jsonb);
select is(public.admin_get_kpis('2026-01-01', '2026-02-28') - 'from' - 'to' - 'fresh_through' - 'failed_jobs_24h'
            - 'rate_audit_alerts' - 'open_reconciliation_issues' - 'refund_requests_awaiting_review',
          '{"gmv_jpy": 3300, "paid_orders": 6, "refunds_jpy": 600, "refund_count": 3, "chargebacks_jpy": 2000,
            "chargeback_count": 2, "refund_rate": 0.181818, "dispute_rate": 0.333333, "paying_users": 4,
            "outstanding_medals": 115}'::jsonb,
          'admin KPIs: GMV, paying users, refund and dispute rates, outstanding medals');
select tests.as_postgres();

-- The platform's report lists each VTuber with sales (not each gacha and day); a VTuber's lists
-- each gacha and day. Each VTuber's figures equal an independent computation from the orders,
-- refunds and disputes (the share truncated per VTuber and day, as the days' figures are).
select is((select array[r ? 'by_vtuber', r ? 'by_gacha_day'] from sales_reports where k = 'platform'),
          array[true, false], 'the platform report has by_vtuber and no by_gacha_day');
select is((select array[r ? 'by_vtuber', jsonb_array_length(r -> 'by_gacha_day') > 0] from sales_reports where k = 'V'),
          array[false, true], 'a VTuber''s report has by_gacha_day and no by_vtuber');
select set_eq(
  $$select (e ->> 'vtuber_id')::uuid as vtuber_id, e ->> 'name' as name, (e ->> 'paid_orders')::bigint as n,
           (e ->> 'pulls')::bigint as pulls, (e ->> 'gross_jpy')::bigint as gross, (e ->> 'refunds_jpy')::bigint as refunds,
           (e ->> 'chargebacks_jpy')::bigint as cb, (e ->> 'provider_fees_jpy')::bigint as fees,
           (e ->> 'net_jpy')::bigint as net, (e ->> 'vtuber_share_jpy')::bigint as share,
           (e ->> 'platform_fee_jpy')::bigint as platform
    from sales_reports s cross join jsonb_array_elements(s.r -> 'by_vtuber') e where s.k = 'platform'$$,
  $$with f as (select jst_date, gacha_id, provider_fees_jpy from app.sales_daily),
    d as (select g.vtuber_id, e.jst_date, sum(e.paid_orders) as n, sum(e.pulls) as pulls, sum(e.gross_jpy) as gross,
                 sum(e.refunds_jpy) as refunds, sum(e.chargebacks_jpy) as cb, sum(coalesce(f.provider_fees_jpy, 0)) as fees
          from expected_sales e join app.gachas g on g.id = e.gacha_id
          left join f on f.jst_date = e.jst_date and f.gacha_id = e.gacha_id
          group by 1, 2),
    x as (select d.*, d.gross - d.refunds - d.cb - d.fees as net,
                 trunc((d.gross - d.refunds - d.cb - d.fees) * private.share_bps(d.vtuber_id) / 10000.0) as share
          from d)
    select x.vtuber_id, v.name, sum(x.n)::bigint as n, sum(x.pulls)::bigint as pulls, sum(x.gross)::bigint as gross,
           sum(x.refunds)::bigint as refunds, sum(x.cb)::bigint as cb, sum(x.fees)::bigint as fees,
           sum(x.net)::bigint as net, sum(x.share)::bigint as share, sum(x.net - x.share)::bigint as platform
    from x join app.vtubers v on v.id = x.vtuber_id group by 1, 2$$,
  'the platform report: each VTuber''s figures equal the orders, refunds and disputes');
select is((select count(*)::integer from sales_reports s cross join jsonb_array_elements(s.r -> 'by_vtuber') e
           where s.k = 'platform'), 2, 'both VTubers sold: two entries');
select is((select jsonb_object_agg(k.key, (select sum((e ->> k.key)::bigint)
                                           from jsonb_array_elements(s.r -> 'by_vtuber') e))
           from sales_reports s cross join unnest(array['paid_orders', 'pulls', 'gross_jpy', 'refunds_jpy',
                                                        'chargebacks_jpy', 'provider_fees_jpy', 'net_jpy',
                                                        'vtuber_share_jpy', 'platform_fee_jpy']) k(key)
           where s.k = 'platform'),
          (select jsonb_object_agg(k.key, (s.r -> 'totals' ->> k.key)::bigint)
           from sales_reports s cross join unnest(array['paid_orders', 'pulls', 'gross_jpy', 'refunds_jpy',
                                                        'chargebacks_jpy', 'provider_fees_jpy', 'net_jpy',
                                                        'vtuber_share_jpy', 'platform_fee_jpy']) k(key)
           where s.k = 'platform'),
          'the VTubers'' figures add up to the platform''s totals');

-- ---- February: adjustments of January's sales, a negative balance carried over ----
select is((select jan_before.* = s.* from jan_before join app.payout_statements s using (id)
           where jan_before.vtuber_id = econ_test.id('v')), true,
          'the closed January statement is unchanged after a later refund of a January sale');
select is(private.close_payout_month('2026-02-01', null, '2026-03-01 00:00:02+09') ->> 'statements', '1',
          'February closes: a statement for V only (W had no sales and nothing carried in)');
select is((select jsonb_build_object('gross', gross_jpy, 'refunds', refunds_jpy, 'chargebacks', chargebacks_jpy,
                                     'net', net_jpy, 'share', vtuber_share_jpy, 'balance', balance_jpy,
                                     'payable', payable_jpy, 'carried_out', carried_out_jpy)
           from app.payout_statements where vtuber_id = econ_test.id('v') and month = '2026-02-01'),
          '{"gross": 1100, "refunds": 300, "chargebacks": 2000, "net": -1200, "share": -840, "balance": -840,
            "payable": 0, "carried_out": -840}'::jsonb,
          'February of V: January''s refund and chargebacks land here; the negative balance carries out');
select is((private.statement_json(econ_test.id('v'), '2026-03-01') ->> 'carried_in_jpy'), '-840',
          'the open March statement starts with the carried balance');
select is((select count(*)::integer from app.payout_statements s
           where s.prev_hash is distinct from (select p.hash from app.payout_statements p where p.id < s.id
                                               order by p.id desc limit 1)), 0,
          'every statement chains to the one before it');
select is((select count(*)::integer from app.payout_statements s
           where s.hash <> private.statement_hash(s.prev_hash, to_jsonb(s) - 'id' - 'closed_at' - 'closed_by'
                                                               - 'prev_hash' - 'hash' - 'audit_id')), 0,
          'every statement hash recomputes from its stored figures and the previous hash');
select is((select details ->> 'last_hash' from app.audit_log where action = 'payouts.close' and target_id = '2026-02'),
          (select last_hash from app.payout_months where month = '2026-02-01'),
          'the chain head of each close is in the audit log');
select tests.authenticate_as(econ_test.id('admin'));
select is(public.verify_audit_chain() ->> 'ok', 'true', 'the audit chain holds');
select is(split_part(public.admin_export_payout_statements('2026-01'), E'\n', 1),
          'month,vtuber_id,vtuber_name,gross_jpy,refunds_jpy,chargebacks_jpy,provider_fees_jpy,net_jpy,share_bps,'
          'vtuber_share_jpy,platform_fee_jpy,consumption_tax_in_gross_jpy,consumption_tax_in_share_jpy,'
          'carried_in_jpy,balance_jpy,payable_jpy,carried_out_jpy,closed_at,hash', 'the CSV export has a header');
select is(array_length(string_to_array(rtrim(public.admin_export_payout_statements('2026-01'), E'\n'), E'\n'), 1), 3,
          'and one line per statement');
select throws_ok($$ select public.admin_export_payout_statements('2026-13') $$, 'PT400', 'invalid_month',
                 'a month is YYYY-MM');

-- ---------------------------------------------------------------------------------------
-- Admin queues: keyset pages and filters
-- ---------------------------------------------------------------------------------------
select tests.as_postgres();
select tests.create_user('page' || n || '@q.test') from generate_series(1, 5) n;
select tests.authenticate_as(econ_test.id('admin'));
create temporary table pages as
  with recursive p (n, page) as (
    select 1, public.admin_list_users(p_email_prefix => 'PAGE', p_limit => 2)
    union all
    select n + 1, public.admin_list_users(p_email_prefix => 'page', p_limit => 2, p_cursor => page ->> 'next_cursor')
    from p where page ->> 'next_cursor' is not null)
  select * from p;
select is((select array_agg(jsonb_array_length(page -> 'items') order by n) from pages), array[2, 2, 1],
          'five users in pages of two: 2, 2, 1 (the e-mail prefix is case-insensitive)');
select is((select count(distinct i ->> 'user_id')::integer from pages, jsonb_array_elements(page -> 'items') i), 5,
          'no user repeated or skipped across pages, although they share one created_at');
select is((select page ->> 'next_cursor' from pages where n = 3), null, 'the last page has no cursor');
select is(jsonb_array_length(public.admin_list_users(p_email_prefix => '%') -> 'items'), 0,
          'LIKE wildcards in the prefix are literal');
select is(jsonb_array_length(public.admin_list_users(p_role => 'vtuber') -> 'items'), 2, 'filter by role');
select throws_ok($$ select public.admin_list_users(p_cursor => 'not-a-cursor') $$, 'PT400', 'invalid_cursor',
                 'a forged cursor is refused');
select throws_ok($$ select public.admin_list_users(p_limit => 0) $$, 'PT400', 'invalid_limit', 'limit 1 to 200');
select throws_ok($$ select public.admin_list_users(p_status => 'gone') $$, 'PT400', 'invalid_status', 'known statuses only');
select is(jsonb_array_length(public.admin_list_orders(p_user_id => econ_test.id('f1')) -> 'items'), 3,
          'orders by fan');
select is(jsonb_array_length(public.admin_list_orders(p_from => '2026-02-01 00:00+09', p_to => '2026-03-01 00:00+09')
                             -> 'items'), 2, 'orders by creation time');
select is(jsonb_array_length(public.admin_list_disputes() -> 'items'), 3, 'disputes');
select is(jsonb_array_length(public.admin_list_refund_requests(p_status => 'completed') -> 'items'), 3,
          'refunds by status');
select tests.as_postgres();
insert into app.payment_events (provider, event_id, type, payload, order_id, outcome, detail) values
  ('stripe', 'evt_1', 'payment_intent.succeeded', '{}', econ_test.id('o1'), 'flagged_amount_mismatch', 'x'),
  ('stripe', 'evt_2', 'payment_intent.succeeded', '{}', econ_test.id('o2'), 'fulfilled', null),
  ('komoju', 'evt_3', 'payment.captured', '{}', null, 'order_not_found', null),
  ('komoju', 'evt_4', 'something.new', '{}', null, 'ignored', null);
select tests.authenticate_as(econ_test.id('admin'));
select is(jsonb_array_length(public.admin_list_payment_events() -> 'items'), 3,
          'flagged events: mismatch, unknown order, unknown type; a fulfilled one is not in the queue');
select is(jsonb_array_length(public.admin_list_payment_events(p_outcome => 'order_not_found') -> 'items'), 1,
          'filter by outcome');
select throws_ok($$ select public.admin_list_payment_events(p_outcome => 'fulfilled') $$, 'PT400', 'invalid_outcome',
                 'only flagged outcomes are a queue');

-- ---------------------------------------------------------------------------------------
-- Reconciliation: filed once, resolved with an audit entry
-- ---------------------------------------------------------------------------------------
select tests.as_postgres();
select private.create_order(econ_test.id('f2'), econ_test.id('g'), 1, 'stale', '2026-02-20 10:00+09',
                            extensions.gen_random_bytes(32), 'cs');
select is(private.reconcile(now()) -> 'filed',
          '{"paid_not_fulfilled": 0, "fulfilled_without_payment": 6, "refund_not_booked": 0,
            "pending_past_expiry": 1}'::jsonb,
          'orders fulfilled without a provider payment and a stale pending order are filed');
select is(private.reconcile(now()) -> 'filed',
          '{"paid_not_fulfilled": 0, "fulfilled_without_payment": 0, "refund_not_booked": 0,
            "pending_past_expiry": 0}'::jsonb, 'each discrepancy is filed once');
select tests.authenticate_as(econ_test.id('admin'));
select is(public.admin_resolve_reconciliation_issue(
            ((public.admin_list_reconciliation_issues(p_kind => 'pending_past_expiry') -> 'items' -> 0 ->> 'id'))::bigint,
            'expired by hand') ->> 'status', 'resolved', 'an admin resolves an issue');
select is((select count(*)::integer from app.audit_log where action = 'reconciliation.resolve'
             and actor = econ_test.id('admin')), 1, 'the resolution is audited');

-- ---------------------------------------------------------------------------------------
-- VTuber profile and revenue share
-- ---------------------------------------------------------------------------------------
select tests.as_postgres();
select tests.authenticate_as((select user_id from app.vtubers where id = econ_test.id('v')));
select is(public.update_my_vtuber_profile(p_links => '["https://www.youtube.com/@vee", "https://x.com/vee"]',
                                          p_avatar_path => econ_test.id('v')::text || '/avatar.png') -> 'links',
          '["https://www.youtube.com/@vee", "https://x.com/vee"]'::jsonb, 'links to allowed hosts are kept, in order');
select throws_ok($$ select public.update_my_vtuber_profile(p_links => '["javascript:alert(1)"]') $$, 'PT400',
                 'invalid_link', 'not an http(s) URL');
select throws_ok($$ select public.update_my_vtuber_profile(p_links => '["https://evil.example/x"]') $$, 'PT400',
                 'invalid_link', 'a host that is not allowed');
select throws_ok(format($$ select public.update_my_vtuber_profile(p_avatar_path => '%s/a.png') $$, econ_test.id('w')),
                 'PT400', 'invalid_image_path', 'an image under another VTuber''s prefix');
select tests.authenticate_as(econ_test.id('admin'));
select is(public.admin_set_revenue_share(econ_test.id('v'), 8000, 'new contract') ->> 'revenue_share_bps', '8000',
          'an admin sets the revenue share');
select is((select details from app.audit_log where action = 'vtuber.revenue_share'),
          '{"from_bps": null, "to_bps": 8000, "reason": "new contract"}'::jsonb, 'audited with before and after');

select * from finish();
rollback;
