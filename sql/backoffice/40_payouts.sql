-- Monthly payout statements. Per VTuber and JST month, from the sales rollups:
--   net      = gross - refunds - chargebacks - provider fees   (refunds and chargebacks on the
--              day they happened, so a refund of an earlier month's sale is this month's adjustment)
--   share    = trunc(net x share_bps / 10000)                 (the VTuber's revenue share)
--   platform = net - share
--   balance  = share + carried_in (the previous statement's negative balance, if any)
--   payable  = max(balance, 0); carried_out = min(balance, 0)  (a negative balance carries over)
-- Every amount is tax-inclusive yen; the 10 % consumption tax contained is trunc(x x 10 / 110).
-- An admin (or an operator with `koepon payouts close`) closes a month: its statements are
-- written once, never changed, hash-chained, and the chain's head goes to the audit log.

create or replace function private.parse_month(p_month text) returns date
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_month is null or p_month !~ '^[0-9]{4}-(0[1-9]|1[0-2])$' then
    raise exception using errcode = 'PT400', message = 'invalid_month', detail = 'a JST month as YYYY-MM';
  end if;
  return to_date(p_month || '-01', 'YYYY-MM-DD');
end
$$;
comment on function private.parse_month(text) is 'YYYY-MM as the first day of that month, else invalid_month.';
revoke all on function private.parse_month(text) from public;
grant execute on function private.parse_month(text) to authenticated, service_role;

-- The statement figures of a month for every VTuber with activity or a balance carried in.
create or replace function private.payout_figures(p_month date, p_vtuber_id uuid)
returns table (
  vtuber_id uuid, month date, gross_jpy bigint, refunds_jpy bigint, chargebacks_jpy bigint,
  provider_fees_jpy bigint, net_jpy bigint, share_bps integer, vtuber_share_jpy bigint, platform_fee_jpy bigint,
  consumption_tax_in_gross_jpy bigint, consumption_tax_in_share_jpy bigint, carried_in_jpy bigint,
  balance_jpy bigint, payable_jpy bigint, carried_out_jpy bigint
)
language sql stable security definer
set search_path = ''
as $$
  with sales as (
    select d.vtuber_id, sum(d.gross_jpy)::bigint as gross, sum(d.refunds_jpy)::bigint as refunds,
           sum(d.chargebacks_jpy)::bigint as chargebacks, sum(d.provider_fees_jpy)::bigint as fees
    from app.sales_daily d
    where d.jst_date >= p_month and d.jst_date < (p_month + interval '1 month')::date
      and (p_vtuber_id is null or d.vtuber_id = p_vtuber_id)
    group by 1),
  carry as (
    select distinct on (s.vtuber_id) s.vtuber_id, s.carried_out_jpy
    from app.payout_statements s
    where s.month < p_month and (p_vtuber_id is null or s.vtuber_id = p_vtuber_id)
    order by s.vtuber_id, s.month desc),
  base as (
    select coalesce(s.vtuber_id, c.vtuber_id) as vtuber_id, coalesce(s.gross, 0) as gross,
           coalesce(s.refunds, 0) as refunds, coalesce(s.chargebacks, 0) as chargebacks, coalesce(s.fees, 0) as fees,
           coalesce(c.carried_out_jpy, 0) as carried_in
    from sales s full join carry c on c.vtuber_id = s.vtuber_id
    where s.vtuber_id is not null or c.carried_out_jpy < 0),
  f as (
    select b.*, b.gross - b.refunds - b.chargebacks - b.fees as net, private.share_bps(b.vtuber_id) as bps
    from base b),
  g as (
    select f.*, trunc(f.net * f.bps / 10000.0)::bigint as share from f)
  select g.vtuber_id, p_month, g.gross, g.refunds, g.chargebacks, g.fees, g.net, g.bps, g.share, g.net - g.share,
         trunc(g.gross * 10 / 110.0)::bigint, trunc(g.share * 10 / 110.0)::bigint, g.carried_in,
         g.share + g.carried_in, greatest(g.share + g.carried_in, 0), least(g.share + g.carried_in, 0)
  from g
$$;
comment on function private.payout_figures(date, uuid) is
  'security definer: a month''s statement figures (all VTubers, or one) from the rollups and the previous '
  'closed statements; callers check who may see them.';
revoke all on function private.payout_figures(date, uuid) from public;
grant execute on function private.payout_figures(date, uuid) to authenticated, service_role;

create or replace function private.statement_hash(p_prev_hash text, p_row jsonb) returns text
language sql immutable
set search_path = ''
as $$
  select encode(pg_catalog.sha256(convert_to(coalesce(p_prev_hash, '') || '|' || p_row::text, 'UTF8')), 'hex')
$$;
comment on function private.statement_hash(text, jsonb) is
  'SHA-256 (hex) of a statement''s figures chained to the previous statement''s hash.';
revoke all on function private.statement_hash(text, jsonb) from public;
grant execute on function private.statement_hash(text, jsonb) to authenticated, service_role;

create or replace function private.close_payout_month(p_month date, p_actor uuid, p_now timestamptz) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_end timestamptz := (p_month + interval '1 month')::timestamp at time zone 'Asia/Tokyo';
  v_last date;
  v_through timestamptz;
  v_prev text;
  v_row jsonb;
  v_rows jsonb := '[]';
  v_audit bigint;
  r record;
begin
  perform pg_catalog.pg_advisory_xact_lock(7253301);
  if p_now < v_end then
    raise exception using errcode = 'PT409', message = 'month_not_over',
      detail = format('%s ends at %s', to_char(p_month, 'YYYY-MM'), v_end);
  end if;
  if exists (select 1 from app.payout_months m where m.month = p_month) then
    raise exception using errcode = 'PT409', message = 'month_already_closed',
      detail = 'a closed month never changes: later refunds land in the next month';
  end if;
  select max(m.month) into v_last from app.payout_months m;
  if v_last is not null and p_month <> (v_last + interval '1 month')::date then
    raise exception using errcode = 'PT409', message = 'month_out_of_order',
      detail = format('months close in order: the next one to close is %s',
                      to_char(v_last + interval '1 month', 'YYYY-MM'));
  end if;
  -- Everything up to the month's end must be in the rollups first.
  perform private.refresh_rollups(p_now);
  select s.through into v_through from app.rollup_state s;
  if v_through < v_end then
    raise exception using errcode = 'PT409', message = 'rollups_behind',
      detail = format('the rollups reach %s; retry once they pass %s (a transaction is still open)', v_through, v_end);
  end if;
  select s.hash into v_prev from app.payout_statements s order by s.id desc limit 1;
  for r in select * from private.payout_figures(p_month, null) f order by f.vtuber_id loop
    v_row := to_jsonb(r);
    v_prev := private.statement_hash(v_prev, v_row);
    v_rows := v_rows || jsonb_build_array(v_row || jsonb_build_object('hash', v_prev));
  end loop;
  v_audit := private.append_audit(p_actor, 'payouts.close', 'month', to_char(p_month, 'YYYY-MM'),
    jsonb_build_object('statements', jsonb_array_length(v_rows), 'last_hash', v_prev,
                       'payable_jpy', (select coalesce(sum((e ->> 'payable_jpy')::bigint), 0)
                                       from jsonb_array_elements(v_rows) e),
                       'by', case when p_actor is null then 'operator' else 'admin' end));
  insert into app.payout_statements (
    vtuber_id, month, gross_jpy, refunds_jpy, chargebacks_jpy, provider_fees_jpy, net_jpy, share_bps,
    vtuber_share_jpy, platform_fee_jpy, consumption_tax_in_gross_jpy, consumption_tax_in_share_jpy, carried_in_jpy,
    balance_jpy, payable_jpy, carried_out_jpy, closed_at, closed_by, prev_hash, hash, audit_id)
  select (e ->> 'vtuber_id')::uuid, p_month, (e ->> 'gross_jpy')::bigint, (e ->> 'refunds_jpy')::bigint,
         (e ->> 'chargebacks_jpy')::bigint, (e ->> 'provider_fees_jpy')::bigint, (e ->> 'net_jpy')::bigint,
         (e ->> 'share_bps')::integer, (e ->> 'vtuber_share_jpy')::bigint, (e ->> 'platform_fee_jpy')::bigint,
         (e ->> 'consumption_tax_in_gross_jpy')::bigint, (e ->> 'consumption_tax_in_share_jpy')::bigint,
         (e ->> 'carried_in_jpy')::bigint, (e ->> 'balance_jpy')::bigint, (e ->> 'payable_jpy')::bigint,
         (e ->> 'carried_out_jpy')::bigint, p_now, p_actor,
         lag(e ->> 'hash') over (order by n), e ->> 'hash', v_audit
  from jsonb_array_elements(v_rows) with ordinality x (e, n)
  order by n;
  -- The first statement of this close chains to the last one of the previous close.
  insert into app.payout_months (month, closed_at, closed_by, statements, last_hash, audit_id)
  values (p_month, p_now, p_actor, jsonb_array_length(v_rows), v_prev, v_audit);
  return jsonb_build_object('month', to_char(p_month, 'YYYY-MM'), 'statements', jsonb_array_length(v_rows),
                            'last_hash', v_prev, 'audit_id', v_audit);
end
$$;
comment on function private.close_payout_month(date, uuid, timestamptz) is
  'security definer: writes a month''s statements (immutable, hash-chained) and the audit entry; the caller '
  'checks who may close.';
revoke all on function private.close_payout_month(date, uuid, timestamptz) from public;
grant execute on function private.close_payout_month(date, uuid, timestamptz) to service_role;

-- The first statement of a close has lag() = null: give it the previous close's last hash.
create or replace function private.payout_statements_before_insert_chain() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.prev_hash is null then
    select s.hash into new.prev_hash from app.payout_statements s order by s.id desc limit 1;
  end if;
  return new;
end
$$;
comment on function private.payout_statements_before_insert_chain() is
  'security definer: the trigger reads the last statement''s hash whatever the caller, to link the chain.';
revoke all on function private.payout_statements_before_insert_chain() from public;
drop trigger if exists payout_statements_before_insert_chain on app.payout_statements;
create trigger payout_statements_before_insert_chain
  before insert on app.payout_statements
  for each row execute function private.payout_statements_before_insert_chain();

create or replace function private.admin_close_payout_month(p_month text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
begin
  return private.close_payout_month(private.parse_month(p_month), v_admin, now());
end
$$;
comment on function private.admin_close_payout_month(text) is
  'security definer: admins close a month (writes statements nobody else may write).';
revoke all on function private.admin_close_payout_month(text) from public;
grant execute on function private.admin_close_payout_month(text) to authenticated;

create or replace function public.admin_close_payout_month(p_month text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_close_payout_month(p_month) $$;
comment on function public.admin_close_payout_month(text) is
  'Admin: closes a JST month (YYYY-MM): catches the rollups up, writes every VTuber''s statement (immutable, '
  'hash-chained), audits the chain head; returns {month, statements, last_hash, audit_id}. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_month (PT400), month_not_over, month_already_closed, '
  'month_out_of_order, rollups_behind (PT409).';
revoke all on function public.admin_close_payout_month(text) from public, anon, authenticated, service_role;
grant execute on function public.admin_close_payout_month(text) to authenticated;

create or replace function private.statement_json(p_vtuber_id uuid, p_month date) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select to_jsonb(s) - 'id' - 'month' - 'closed_by' - 'audit_id'
              || jsonb_build_object('month', to_char(s.month, 'YYYY-MM'), 'status', 'closed')
     from app.payout_statements s where s.vtuber_id = p_vtuber_id and s.month = p_month),
    (select to_jsonb(f) - 'month' || jsonb_build_object('month', to_char(p_month, 'YYYY-MM'), 'status', 'open',
                                                        'fresh_through', (select r.through from app.rollup_state r))
     from private.payout_figures(p_month, p_vtuber_id) f),
    jsonb_build_object('vtuber_id', p_vtuber_id, 'month', to_char(p_month, 'YYYY-MM'), 'status', 'open',
                       'gross_jpy', 0, 'refunds_jpy', 0, 'chargebacks_jpy', 0, 'provider_fees_jpy', 0, 'net_jpy', 0,
                       'share_bps', private.share_bps(p_vtuber_id), 'vtuber_share_jpy', 0, 'platform_fee_jpy', 0,
                       'consumption_tax_in_gross_jpy', 0, 'consumption_tax_in_share_jpy', 0, 'carried_in_jpy', 0,
                       'balance_jpy', 0, 'payable_jpy', 0, 'carried_out_jpy', 0,
                       'fresh_through', (select r.through from app.rollup_state r)))
$$;
comment on function private.statement_json(uuid, date) is
  'security definer: one VTuber''s statement of a month: the closed one, else the open figures so far.';
revoke all on function private.statement_json(uuid, date) from public;
grant execute on function private.statement_json(uuid, date) to authenticated, service_role;

create or replace function private.get_my_payout_statement(p_month text) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
begin
  return private.statement_json(v.id, coalesce(private.parse_month(p_month),
                                               date_trunc('month', private.jst_date(now()))::date));
end
$$;
comment on function private.get_my_payout_statement(text) is
  'security definer: an approved VTuber reads their own statement, never another''s.';
revoke all on function private.get_my_payout_statement(text) from public;
grant execute on function private.get_my_payout_statement(text) to authenticated;

create or replace function public.get_my_payout_statement(p_month text default null) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.get_my_payout_statement(coalesce(p_month, to_char(now() at time zone 'Asia/Tokyo', 'YYYY-MM')))
$$;
comment on function public.get_my_payout_statement(text) is
  'VTuber: their statement of a JST month (YYYY-MM, default the current one): status closed (final, with hash) or '
  'open (the figures so far); gross, refunds, chargebacks, provider fees, net, share_bps, vtuber_share, '
  'platform_fee, consumption tax contained, carried in/out, payable. Errors: not_authenticated (PT401), '
  'not_a_vtuber, vtuber_not_approved (PT403), invalid_month (PT400).';
revoke all on function public.get_my_payout_statement(text) from public, anon, authenticated, service_role;
grant execute on function public.get_my_payout_statement(text) to authenticated;

create or replace function private.payout_csv(p_month date, p_vtuber_id uuid) returns text
language sql stable security definer
set search_path = ''
as $$
  select 'month,vtuber_id,vtuber_name,gross_jpy,refunds_jpy,chargebacks_jpy,provider_fees_jpy,net_jpy,share_bps,'
         'vtuber_share_jpy,platform_fee_jpy,consumption_tax_in_gross_jpy,consumption_tax_in_share_jpy,'
         'carried_in_jpy,balance_jpy,payable_jpy,carried_out_jpy,closed_at,hash' || E'\n'
      || coalesce(string_agg(concat_ws(',', to_char(s.month, 'YYYY-MM'), s.vtuber_id,
                                       '"' || replace(v.name, '"', '""') || '"', s.gross_jpy, s.refunds_jpy,
                                       s.chargebacks_jpy, s.provider_fees_jpy, s.net_jpy, s.share_bps,
                                       s.vtuber_share_jpy, s.platform_fee_jpy, s.consumption_tax_in_gross_jpy,
                                       s.consumption_tax_in_share_jpy, s.carried_in_jpy, s.balance_jpy,
                                       s.payable_jpy, s.carried_out_jpy,
                                       to_char(s.closed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), s.hash)
                             || E'\n', '' order by s.id), '')
  from app.payout_statements s join app.vtubers v on v.id = s.vtuber_id
  where s.month = p_month and (p_vtuber_id is null or s.vtuber_id = p_vtuber_id)
$$;
comment on function private.payout_csv(date, uuid) is
  'security definer: a closed month''s statements as CSV (RFC 4180, header line); callers check access.';
revoke all on function private.payout_csv(date, uuid) from public;
grant execute on function private.payout_csv(date, uuid) to authenticated, service_role;

create or replace function private.admin_export_payout_statements(p_month text) returns text
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_month date := private.parse_month(p_month);
begin
  perform v_admin;
  if not exists (select 1 from app.payout_months m where m.month = v_month) then
    raise exception using errcode = 'PT409', message = 'month_not_closed',
      detail = 'only a closed month exports: close it with admin_close_payout_month';
  end if;
  return private.payout_csv(v_month, null);
end
$$;
comment on function private.admin_export_payout_statements(text) is
  'security definer: every statement of a closed month as CSV, for admins only.';
revoke all on function private.admin_export_payout_statements(text) from public;
grant execute on function private.admin_export_payout_statements(text) to authenticated;

create or replace function public.admin_export_payout_statements(p_month text) returns text
language sql stable
set search_path = ''
as $$ select private.admin_export_payout_statements(p_month) $$;
comment on function public.admin_export_payout_statements(text) is
  'Admin: the statements of a closed JST month (YYYY-MM) as CSV text with a header line. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_month (PT400), month_not_closed (PT409).';
revoke all on function public.admin_export_payout_statements(text) from public, anon, authenticated, service_role;
grant execute on function public.admin_export_payout_statements(text) to authenticated;
