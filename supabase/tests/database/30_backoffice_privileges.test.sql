-- The privilege matrix of the VTuber's and the admin's side (admin queues, VTuber profile, sales
-- analytics, payouts, scheduled-job entry points): every new RPC as anon, a fan, another fan, the
-- owning VTuber, another VTuber, an admin and the service role; allowed ('ok') or denied with its
-- SQLSTATE (and message for our PTxyz codes). Each probe's effects are rolled back.
begin;
-- Personas (fixed ids) and a probe that runs SQL as one of them: supabase/tests/catalog_fixture.sql.
select tests.catalog_personas();

create temporary table matrix (object text, sql text, expected text[]);
grant select on matrix to anon, authenticated, service_role;
-- personas, in order: anon, fan, other_fan, owner, other_vtuber, admin, service_role
insert into matrix values
  ('admin_list_users', 'select public.admin_list_users()',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_list_orders', 'select public.admin_list_orders(p_status => ''fulfilled'')',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_list_payment_events', 'select public.admin_list_payment_events()',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_list_refund_requests', 'select public.admin_list_refund_requests()',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_list_disputes', 'select public.admin_list_disputes()',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_list_vtuber_applications', 'select public.admin_list_vtuber_applications()',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_list_audit_log', 'select public.admin_list_audit_log()',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_list_reconciliation_issues', 'select public.admin_list_reconciliation_issues()',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_resolve_reconciliation_issue', 'select public.admin_resolve_reconciliation_issue(-1, ''checked'')',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only',
         'PT404 issue_not_found', '42501']),
  ('update_my_vtuber_profile', 'select public.update_my_vtuber_profile(p_description => ''hello'')',
   array['42501', 'PT403 not_a_vtuber', 'PT403 not_a_vtuber', 'ok', 'ok', 'PT403 not_a_vtuber', '42501']),
  ('get_my_vtuber_profile', 'select public.get_my_vtuber_profile()',
   array['42501', 'PT403 not_a_vtuber', 'PT403 not_a_vtuber', 'ok', 'ok', 'PT403 not_a_vtuber', '42501']),
  ('admin_set_revenue_share',
   'select public.admin_set_revenue_share(''10000000-0000-4000-b000-000000000002'', 6000, ''contract'')',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('get_my_sales', 'select public.get_my_sales()',
   array['42501', 'PT403 not_a_vtuber', 'PT403 not_a_vtuber', 'ok', 'ok', 'PT403 not_a_vtuber', '42501']),
  ('admin_get_sales', 'select public.admin_get_sales()',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_get_kpis', 'select public.admin_get_kpis()',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('get_my_payout_statement', 'select public.get_my_payout_statement()',
   array['42501', 'PT403 not_a_vtuber', 'PT403 not_a_vtuber', 'ok', 'ok', 'PT403 not_a_vtuber', '42501']),
  ('admin_close_payout_month', 'select public.admin_close_payout_month(''2026-01'')',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_export_payout_statements', 'select public.admin_export_payout_statements(''2026-01'')',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only',
         'PT409 month_not_closed', '42501']),
  ('service_refresh_rollups', 'select public.service_refresh_rollups()',
   array['42501', '42501', '42501', '42501', '42501', '42501', 'ok']),
  ('service_reconcile', 'select public.service_reconcile()',
   array['42501', '42501', '42501', '42501', '42501', '42501', 'ok']);

select plan((select count(*)::integer * 7 from matrix) + 2);

select is(tests.probe(p.persona, m.sql), m.expected[p.n], m.object || ' as ' || p.persona)
from matrix m
cross join unnest(array['anon', 'fan', 'other_fan', 'owner', 'other_vtuber', 'admin', 'service_role'])
  with ordinality p (persona, n)
order by m.object, p.n;

-- The rollups and statements are read only through the RPCs above.
select is((select count(*)::integer from information_schema.role_table_grants g
           where g.table_schema = 'app' and g.grantee in ('anon', 'authenticated')
             and g.table_name in ('sales_daily', 'item_pulls_daily', 'fan_sales_daily', 'medals_daily',
                                  'exchanges_daily', 'payout_statements', 'payout_months', 'reconciliation_issues',
                                  'rollup_state', 'job_state', 'item_draws', 'rate_audits',
                                  'fan_gaps_daily', 'platform_fan_gaps_daily')), 0,
          'no API role has a grant on the rollups, statements or reconciliation tables');
select is((select count(*)::integer from pg_proc p join pg_namespace n on n.oid = p.pronamespace
           where n.nspname = 'private' and p.proname in ('refresh_rollups', 'reconcile', 'close_payout_month')
             and (has_function_privilege('anon', p.oid, 'execute')
                  or has_function_privilege('authenticated', p.oid, 'execute'))), 0,
          'the job bodies are not executable by anon or authenticated');

select * from finish();
rollback;
