-- Reconciliation: compare what the providers told us (app.payments, kept by the inbox) with
-- what we did (app.orders, the ledger) and file each discrepancy once into an admin queue
-- (app.reconciliation_issues; admins list and resolve them in sql/backoffice/10_admin_queues.sql).
--   paid_not_fulfilled        the provider says paid, the order is not fulfilled
--   fulfilled_without_payment the order is fulfilled, no provider payment succeeded for it
--   refund_not_booked         the provider refunded more than our books applied
--   pending_past_expiry       a pending order outlived its deadline (the expiry job is behind)
-- Each check leaves a grace period, so work still in flight is not reported.

create or replace function private.reconcile(p_now timestamptz) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_grace interval := interval '5 minutes';
  v_from timestamptz;
  v_counts jsonb := '{}';
  v_n integer;
begin
  perform pg_catalog.pg_advisory_xact_lock(7253401);
  -- Fulfilments are read from the ledger since the last run (less an hour of overlap: filing
  -- is idempotent), so each run reads only what is new.
  select j.through - interval '1 hour' into v_from from app.job_state j where j.name = 'reconcile';
  v_from := coalesce(v_from, '-infinity');

  insert into app.reconciliation_issues (kind, order_id, detail, detected_at)
  select 'paid_not_fulfilled', p.order_id,
         jsonb_build_object('provider', p.provider, 'payment_status', p.status, 'order_status', o.status,
                            'amount_jpy', p.amount_jpy, 'flag_reason', p.flag_reason), p_now
  from app.payments p join app.orders o on o.id = p.order_id
  where p.status in ('paid', 'partially_refunded', 'refunded') and o.status <> 'fulfilled'
    and p.updated_at < p_now - v_grace
  on conflict (kind, order_id) do nothing;
  get diagnostics v_n = row_count;
  v_counts := v_counts || jsonb_build_object('paid_not_fulfilled', v_n);

  insert into app.reconciliation_issues (kind, order_id, detail, detected_at)
  select 'fulfilled_without_payment', o.id,
         jsonb_build_object('provider', o.provider, 'provider_payment_id', o.provider_payment_id,
                            'amount_jpy', o.amount_jpy, 'fulfilled_at', o.fulfilled_at), p_now
  from app.medal_ledger l join app.orders o on o.id = l.order_id
  where l.reason = 'pull_grant' and l.created_at >= v_from and l.created_at < p_now - v_grace
    and not exists (select 1 from app.payments p where p.order_id = o.id
                     and p.status in ('paid', 'partially_refunded', 'refunded'))
  on conflict (kind, order_id) do nothing;
  get diagnostics v_n = row_count;
  v_counts := v_counts || jsonb_build_object('fulfilled_without_payment', v_n);

  insert into app.reconciliation_issues (kind, order_id, detail, detected_at)
  select 'refund_not_booked', p.order_id,
         jsonb_build_object('provider', p.provider, 'provider_refunded_jpy', p.refunded_jpy,
                            'booked_refunded_jpy', o.refunded_jpy), p_now
  from app.payments p join app.orders o on o.id = p.order_id
  where p.refunded_jpy > o.refunded_jpy and p.status in ('paid', 'partially_refunded', 'refunded')
    and p.updated_at < p_now - v_grace
  on conflict (kind, order_id) do nothing;
  get diagnostics v_n = row_count;
  v_counts := v_counts || jsonb_build_object('refund_not_booked', v_n);

  insert into app.reconciliation_issues (kind, order_id, detail, detected_at)
  select 'pending_past_expiry', o.id, jsonb_build_object('expires_at', o.expires_at), p_now
  from app.orders o
  where o.status = 'pending' and o.expires_at < p_now - v_grace
  on conflict (kind, order_id) do nothing;
  get diagnostics v_n = row_count;
  v_counts := v_counts || jsonb_build_object('pending_past_expiry', v_n);

  insert into app.job_state (name, through, updated_at) values ('reconcile', p_now, now())
  on conflict (name) do update set through = excluded.through, updated_at = excluded.updated_at;
  return jsonb_build_object('filed', v_counts,
                            'open', (select count(*) from app.reconciliation_issues i where i.status = 'open'));
end
$$;
comment on function private.reconcile(timestamptz) is
  'security definer: the scheduled job compares payments with orders and files discrepancies (once each) into '
  'app.reconciliation_issues, which no API role may write.';
revoke all on function private.reconcile(timestamptz) from public;
grant execute on function private.reconcile(timestamptz) to service_role;

create or replace function public.service_reconcile() returns jsonb
language sql
set search_path = ''
as $$ select private.reconcile(now()) $$;
comment on function public.service_reconcile() is
  'Service role: runs the reconciliation now (the scheduled job runs it every five minutes); returns '
  '{filed: {kind: count}, open}.';
revoke all on function public.service_reconcile() from public, anon, authenticated;
grant execute on function public.service_reconcile() to service_role;
