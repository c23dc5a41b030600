-- from sql/backoffice/10_admin_queues.sql
-- Admin work queues: keyset-paginated, filterable lists of users, orders, flagged payment events,
-- refund requests, disputes, VTuber applications, reconciliation issues and the audit log.
-- Every list answers {items: [...], next_cursor}; pass next_cursor back as p_cursor for the next
-- page (null when there is none). A cursor is opaque (base64url of the last row's sort key), so
-- a page never skips or repeats rows when new ones arrive between requests.

create or replace function private.page_limit(p_limit integer) returns integer
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_limit is null then
    return 50;
  end if;
  if p_limit not between 1 and 200 then
    raise exception using errcode = 'PT400', message = 'invalid_limit', detail = 'p_limit is 1 to 200';
  end if;
  return p_limit;
end
$$;
comment on function private.page_limit(integer) is 'A page size of 1 to 200 (default 50), else invalid_limit.';
revoke all on function private.page_limit(integer) from public;
grant execute on function private.page_limit(integer) to authenticated;

create or replace function private.encode_cursor(p_key jsonb) returns text
language sql immutable
set search_path = ''
as $$
  select translate(encode(convert_to(p_key::text, 'UTF8'), 'base64'), E'+/=\n', '-_')
$$;
comment on function private.encode_cursor(jsonb) is 'An opaque page cursor: base64url of the sort key.';
revoke all on function private.encode_cursor(jsonb) from public;
grant execute on function private.encode_cursor(jsonb) to authenticated;

create or replace function private.decode_cursor(p_cursor text, p_keys text[]) returns jsonb
language plpgsql immutable
set search_path = ''
as $$
declare
  v_b64 text;
  v jsonb;
begin
  if p_cursor is null then
    return null;
  end if;
  begin
    v_b64 := translate(p_cursor, '-_', '+/');
    v_b64 := v_b64 || repeat('=', (4 - char_length(v_b64) % 4) % 4);
    v := convert_from(decode(v_b64, 'base64'), 'UTF8')::jsonb;
  exception when others then
    v := null;
  end;
  if v is null or jsonb_typeof(v) <> 'object' or not (v ?& p_keys) then
    raise exception using errcode = 'PT400', message = 'invalid_cursor',
      detail = 'p_cursor must be a next_cursor this list returned';
  end if;
  return v;
end
$$;
comment on function private.decode_cursor(text, text[]) is
  'The sort key inside a page cursor (must hold p_keys), else invalid_cursor.';
revoke all on function private.decode_cursor(text, text[]) from public;
grant execute on function private.decode_cursor(text, text[]) to authenticated;

-- A page of rows sorted by the key: the first p_limit items and the cursor after them.
create or replace function private.page(p_rows jsonb, p_limit integer, p_key_fields text[]) returns jsonb
language sql immutable
set search_path = ''
as $$
  select jsonb_build_object(
    'items', coalesce((select jsonb_agg(r order by n) from jsonb_array_elements(p_rows) with ordinality x (r, n)
                       where n <= p_limit), '[]'::jsonb),
    'next_cursor', case when jsonb_array_length(coalesce(p_rows, '[]')) > p_limit then
      private.encode_cursor((select jsonb_object_agg(k, p_rows -> (p_limit - 1) -> k) from unnest(p_key_fields) k))
    end)
$$;
comment on function private.page(jsonb, integer, text[]) is
  'Cuts p_limit + 1 fetched rows into {items, next_cursor} (the cursor holds the last item''s key fields).';
revoke all on function private.page(jsonb, integer, text[]) from public;
grant execute on function private.page(jsonb, integer, text[]) to authenticated;

create or replace function private.check_choice(p_value text, p_allowed text[], p_code text) returns text
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_value is not null and not (p_value = any(p_allowed)) then
    raise exception using errcode = 'PT400', message = p_code,
      detail = format('one of: %s (or null for all)', array_to_string(p_allowed, ', '));
  end if;
  return p_value;
end
$$;
comment on function private.check_choice(text, text[], text) is 'p_value if null or one of p_allowed, else p_code (PT400).';
revoke all on function private.check_choice(text, text[], text) from public;
grant execute on function private.check_choice(text, text[], text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- Users
-- ---------------------------------------------------------------------------------------
create or replace function private.admin_list_users(
  p_email_prefix text, p_status text, p_role text, p_limit integer, p_cursor text
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_limit integer := private.page_limit(p_limit);
  c jsonb := private.decode_cursor(p_cursor, array['created_at', 'user_id']);
  v_prefix text;
  v_rows jsonb;
begin
  perform v_admin, private.check_choice(p_status, array['active', 'suspended'], 'invalid_status'),
          private.check_choice(p_role, array['fan', 'vtuber', 'admin'], 'invalid_role');
  if p_email_prefix is not null and char_length(p_email_prefix) > 320 then
    raise exception using errcode = 'PT400', message = 'invalid_email_prefix', detail = 'at most 320 characters';
  end if;
  -- LIKE wildcards in the prefix are literal characters.
  v_prefix := replace(replace(replace(lower(p_email_prefix), '\', '\\'), '%', '\%'), '_', '\_') || '%';
  select jsonb_agg(to_jsonb(r) order by r.created_at desc, r.user_id desc) into v_rows from (
    select u.id as user_id, u.email::text as email, p.display_name, p.status, p.flagged,
           (select array_agg(x.role order by x.role) from app.user_roles x where x.user_id = u.id) as roles,
           (select v.id from app.vtubers v where v.user_id = u.id) as vtuber_id,
           u.created_at
    from auth.users u join app.profiles p on p.user_id = u.id
    where (p_email_prefix is null or lower(u.email::text) like v_prefix)
      and (p_status is null or p.status = p_status)
      and (p_role is null or exists (select 1 from app.user_roles x where x.user_id = u.id and x.role = p_role))
      and (c is null or (u.created_at, u.id) < ((c ->> 'created_at')::timestamptz, (c ->> 'user_id')::uuid))
    order by u.created_at desc, u.id desc
    limit v_limit + 1) r;
  return private.page(v_rows, v_limit, array['created_at', 'user_id']);
end
$$;
comment on function private.admin_list_users(text, text, text, integer, text) is
  'security definer: reads auth.users, profiles and roles of every user, for admins only.';
revoke all on function private.admin_list_users(text, text, text, integer, text) from public;
grant execute on function private.admin_list_users(text, text, text, integer, text) to authenticated;

create or replace function public.admin_list_users(
  p_email_prefix text default null, p_status text default null, p_role text default null,
  p_limit integer default 50, p_cursor text default null
) returns jsonb
language sql stable
set search_path = ''
as $$ select private.admin_list_users(p_email_prefix, p_status, p_role, p_limit, p_cursor) $$;
comment on function public.admin_list_users(text, text, text, integer, text) is
  'Admin: users newest first, filtered by e-mail prefix (case-insensitive), status (active|suspended) and '
  'role (fan|vtuber|admin); {items: [{user_id, email, display_name, status, flagged, roles, vtuber_id, '
  'created_at}], next_cursor}. Errors: not_authenticated (PT401), admin_only (PT403), invalid_status, '
  'invalid_role, invalid_limit, invalid_cursor, invalid_email_prefix (PT400).';
revoke all on function public.admin_list_users(text, text, text, integer, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_list_users(text, text, text, integer, text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- Orders
-- ---------------------------------------------------------------------------------------
create or replace function private.admin_list_orders(
  p_user_id uuid, p_gacha_id uuid, p_status text, p_from timestamptz, p_to timestamptz,
  p_limit integer, p_cursor text
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_limit integer := private.page_limit(p_limit);
  c jsonb := private.decode_cursor(p_cursor, array['created_at', 'order_id']);
  v_rows jsonb;
begin
  perform v_admin, private.check_choice(p_status, array['pending', 'fulfilled', 'expired', 'failed', 'canceled'],
                                        'invalid_status');
  select jsonb_agg(to_jsonb(r) order by r.created_at desc, r.order_id desc) into v_rows from (
    select o.id as order_id, o.user_id, o.gacha_id, o.vtuber_id, o.pull_count, o.amount_jpy, o.medals,
           o.status, o.provider, o.provider_payment_id, o.refunded_jpy, o.disputed, o.created_at,
           o.expires_at, o.paid_at, o.fulfilled_at
    from app.orders o
    where (p_user_id is null or o.user_id = p_user_id)
      and (p_gacha_id is null or o.gacha_id = p_gacha_id)
      and (p_status is null or o.status = p_status)
      and (p_from is null or o.created_at >= p_from)
      and (p_to is null or o.created_at < p_to)
      and (c is null or (o.created_at, o.id) < ((c ->> 'created_at')::timestamptz, (c ->> 'order_id')::uuid))
    order by o.created_at desc, o.id desc
    limit v_limit + 1) r;
  return private.page(v_rows, v_limit, array['created_at', 'order_id']);
end
$$;
comment on function private.admin_list_orders(uuid, uuid, text, timestamptz, timestamptz, integer, text) is
  'security definer: reads every order, for admins only.';
revoke all on function private.admin_list_orders(uuid, uuid, text, timestamptz, timestamptz, integer, text) from public;
grant execute on function private.admin_list_orders(uuid, uuid, text, timestamptz, timestamptz, integer, text)
  to authenticated;

create or replace function public.admin_list_orders(
  p_user_id uuid default null, p_gacha_id uuid default null, p_status text default null,
  p_from timestamptz default null, p_to timestamptz default null, p_limit integer default 50,
  p_cursor text default null
) returns jsonb
language sql stable
set search_path = ''
as $$ select private.admin_list_orders(p_user_id, p_gacha_id, p_status, p_from, p_to, p_limit, p_cursor) $$;
comment on function public.admin_list_orders(uuid, uuid, text, timestamptz, timestamptz, integer, text) is
  'Admin: orders newest first, filtered by fan, gacha, status and creation time [p_from, p_to); {items, '
  'next_cursor}. Errors: not_authenticated (PT401), admin_only (PT403), invalid_status, invalid_limit, '
  'invalid_cursor (PT400).';
revoke all on function public.admin_list_orders(uuid, uuid, text, timestamptz, timestamptz, integer, text)
  from public, anon, authenticated, service_role;
grant execute on function public.admin_list_orders(uuid, uuid, text, timestamptz, timestamptz, integer, text)
  to authenticated;

-- ---------------------------------------------------------------------------------------
-- Payment events the inbox flagged
-- ---------------------------------------------------------------------------------------
create or replace function private.is_flagged_outcome(p_outcome text) returns boolean
language sql immutable
set search_path = ''
as $$
  select p_outcome like 'flagged\_%' or p_outcome in ('order_not_found', 'ignored', 'invalid_refund_amount')
$$;
comment on function private.is_flagged_outcome(text) is
  'Inbox outcomes an admin must look at: flagged_* (amount or order mismatch, second payment), '
  'order_not_found, ignored (an event type the inbox does not know), invalid_refund_amount.';
revoke all on function private.is_flagged_outcome(text) from public;
grant execute on function private.is_flagged_outcome(text) to authenticated;

create or replace function private.admin_list_payment_events(
  p_outcome text, p_provider text, p_limit integer, p_cursor text
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_limit integer := private.page_limit(p_limit);
  c jsonb := private.decode_cursor(p_cursor, array['received_at', 'provider', 'event_id']);
  v_rows jsonb;
begin
  perform v_admin, private.check_choice(p_provider, array['stripe', 'komoju'], 'invalid_provider');
  if p_outcome is not null and not private.is_flagged_outcome(p_outcome) then
    raise exception using errcode = 'PT400', message = 'invalid_outcome',
      detail = 'a flagged outcome: flagged_*, order_not_found, ignored or invalid_refund_amount';
  end if;
  select jsonb_agg(to_jsonb(r) order by r.received_at desc, r.provider desc, r.event_id desc) into v_rows from (
    select e.provider, e.event_id, e.type, e.order_id, e.outcome, e.detail, e.received_at, e.payload
    from app.payment_events e
    where private.is_flagged_outcome(e.outcome)
      and (p_outcome is null or e.outcome = p_outcome)
      and (p_provider is null or e.provider = p_provider)
      and (c is null or (e.received_at, e.provider, e.event_id)
                        < ((c ->> 'received_at')::timestamptz, c ->> 'provider', c ->> 'event_id'))
    order by e.received_at desc, e.provider desc, e.event_id desc
    limit v_limit + 1) r;
  return private.page(v_rows, v_limit, array['received_at', 'provider', 'event_id']);
end
$$;
comment on function private.admin_list_payment_events(text, text, integer, text) is
  'security definer: reads the payment inbox, for admins only.';
revoke all on function private.admin_list_payment_events(text, text, integer, text) from public;
grant execute on function private.admin_list_payment_events(text, text, integer, text) to authenticated;

create or replace function public.admin_list_payment_events(
  p_outcome text default null, p_provider text default null, p_limit integer default 50, p_cursor text default null
) returns jsonb
language sql stable
set search_path = ''
as $$ select private.admin_list_payment_events(p_outcome, p_provider, p_limit, p_cursor) $$;
comment on function public.admin_list_payment_events(text, text, integer, text) is
  'Admin: provider events the inbox flagged (flagged_amount_mismatch, flagged_payment_order_mismatch, '
  'order_not_found, ignored = unknown type, ...), newest first, by outcome and provider; {items: [{provider, '
  'event_id, type, order_id, outcome, detail, received_at, payload}], next_cursor}. Errors: not_authenticated '
  '(PT401), admin_only (PT403), invalid_outcome, invalid_provider, invalid_limit, invalid_cursor (PT400).';
revoke all on function public.admin_list_payment_events(text, text, integer, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_list_payment_events(text, text, integer, text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- Refund requests (oldest first: a queue)
-- ---------------------------------------------------------------------------------------
create or replace function private.admin_list_refund_requests(p_status text, p_limit integer, p_cursor text)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_limit integer := private.page_limit(p_limit);
  c jsonb := private.decode_cursor(p_cursor, array['created_at', 'refund_id']);
  v_rows jsonb;
begin
  perform v_admin, private.check_choice(p_status, array['requested', 'approved', 'rejected', 'completed'],
                                        'invalid_status');
  select jsonb_agg(to_jsonb(r) order by r.created_at, r.refund_id) into v_rows from (
    select f.id as refund_id, f.order_id, f.user_id, f.reason, f.status, f.amount_jpy, o.amount_jpy as order_amount_jpy,
           o.refunded_jpy as order_refunded_jpy, f.created_at, f.reviewed_at, f.completed_at
    from app.refunds f join app.orders o on o.id = f.order_id
    where (p_status is null or f.status = p_status)
      and (c is null or (f.created_at, f.id) > ((c ->> 'created_at')::timestamptz, (c ->> 'refund_id')::uuid))
    order by f.created_at, f.id
    limit v_limit + 1) r;
  return private.page(v_rows, v_limit, array['created_at', 'refund_id']);
end
$$;
comment on function private.admin_list_refund_requests(text, integer, text) is
  'security definer: reads every refund request with its order, for admins only.';
revoke all on function private.admin_list_refund_requests(text, integer, text) from public;
grant execute on function private.admin_list_refund_requests(text, integer, text) to authenticated;

create or replace function public.admin_list_refund_requests(
  p_status text default 'requested', p_limit integer default 50, p_cursor text default null
) returns jsonb
language sql stable
set search_path = ''
as $$ select private.admin_list_refund_requests(p_status, p_limit, p_cursor) $$;
comment on function public.admin_list_refund_requests(text, integer, text) is
  'Admin: refund requests oldest first (default: awaiting review); act with review_refund (audited); '
  '{items: [{refund_id, order_id, user_id, reason, status, amount_jpy, order_amount_jpy, order_refunded_jpy, '
  'created_at, reviewed_at, completed_at}], next_cursor}. Errors: not_authenticated (PT401), admin_only (PT403), '
  'invalid_status, invalid_limit, invalid_cursor (PT400).';
revoke all on function public.admin_list_refund_requests(text, integer, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_list_refund_requests(text, integer, text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- Disputes
-- ---------------------------------------------------------------------------------------
create or replace function private.admin_list_disputes(p_status text, p_limit integer, p_cursor text)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_limit integer := private.page_limit(p_limit);
  c jsonb := private.decode_cursor(p_cursor, array['created_at', 'provider_dispute_id']);
  v_rows jsonb;
begin
  perform v_admin;
  if p_status is not null and p_status !~ '^[a-z][a-z_]{0,39}$' then
    raise exception using errcode = 'PT400', message = 'invalid_status', detail = 'a provider dispute status';
  end if;
  select jsonb_agg(to_jsonb(r) order by r.created_at desc, r.provider_dispute_id desc) into v_rows from (
    select d.provider_dispute_id, d.order_id, d.user_id, d.status, o.amount_jpy, o.provider, d.created_at, d.updated_at
    from app.disputes d join app.orders o on o.id = d.order_id
    where (p_status is null or d.status = p_status)
      and (c is null or (d.created_at, d.provider_dispute_id)
                        < ((c ->> 'created_at')::timestamptz, c ->> 'provider_dispute_id'))
    order by d.created_at desc, d.provider_dispute_id desc
    limit v_limit + 1) r;
  return private.page(v_rows, v_limit, array['created_at', 'provider_dispute_id']);
end
$$;
comment on function private.admin_list_disputes(text, integer, text) is
  'security definer: reads every dispute with its order, for admins only.';
revoke all on function private.admin_list_disputes(text, integer, text) from public;
grant execute on function private.admin_list_disputes(text, integer, text) to authenticated;

create or replace function public.admin_list_disputes(
  p_status text default null, p_limit integer default 50, p_cursor text default null
) returns jsonb
language sql stable
set search_path = ''
as $$ select private.admin_list_disputes(p_status, p_limit, p_cursor) $$;
comment on function public.admin_list_disputes(text, integer, text) is
  'Admin: provider disputes (chargebacks) newest first, by the provider''s status; {items: [{provider_dispute_id, '
  'order_id, user_id, status, amount_jpy, provider, created_at, updated_at}], next_cursor}. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_status, invalid_limit, invalid_cursor (PT400).';
revoke all on function public.admin_list_disputes(text, integer, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_list_disputes(text, integer, text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- VTuber applications (oldest first: a queue)
-- ---------------------------------------------------------------------------------------
create or replace function private.admin_list_vtuber_applications(p_status text, p_limit integer, p_cursor text)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_limit integer := private.page_limit(p_limit);
  c jsonb := private.decode_cursor(p_cursor, array['created_at', 'application_id']);
  v_rows jsonb;
begin
  perform v_admin, private.check_choice(p_status, array['pending', 'approved', 'rejected', 'withdrawn'],
                                        'invalid_status');
  select jsonb_agg(to_jsonb(r) order by r.created_at, r.application_id) into v_rows from (
    select a.id as application_id, a.user_id, a.vtuber_name, a.description, a.status, a.review_reason,
           a.reviewed_at, a.created_at
    from app.vtuber_applications a
    where (p_status is null or a.status = p_status)
      and (c is null or (a.created_at, a.id) > ((c ->> 'created_at')::timestamptz, (c ->> 'application_id')::uuid))
    order by a.created_at, a.id
    limit v_limit + 1) r;
  return private.page(v_rows, v_limit, array['created_at', 'application_id']);
end
$$;
comment on function private.admin_list_vtuber_applications(text, integer, text) is
  'security definer: reads every VTuber application, for admins only.';
revoke all on function private.admin_list_vtuber_applications(text, integer, text) from public;
grant execute on function private.admin_list_vtuber_applications(text, integer, text) to authenticated;

create or replace function public.admin_list_vtuber_applications(
  p_status text default 'pending', p_limit integer default 50, p_cursor text default null
) returns jsonb
language sql stable
set search_path = ''
as $$ select private.admin_list_vtuber_applications(p_status, p_limit, p_cursor) $$;
comment on function public.admin_list_vtuber_applications(text, integer, text) is
  'Admin: VTuber applications oldest first (default: pending); act with review_vtuber_application (audited); '
  '{items, next_cursor}. Errors: not_authenticated (PT401), admin_only (PT403), invalid_status, invalid_limit, '
  'invalid_cursor (PT400).';
revoke all on function public.admin_list_vtuber_applications(text, integer, text)
  from public, anon, authenticated, service_role;
grant execute on function public.admin_list_vtuber_applications(text, integer, text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- The audit log
-- ---------------------------------------------------------------------------------------
create or replace function private.admin_list_audit_log(
  p_actor uuid, p_action text, p_from timestamptz, p_to timestamptz, p_limit integer, p_cursor text
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_limit integer := private.page_limit(p_limit);
  c jsonb := private.decode_cursor(p_cursor, array['id']);
  v_rows jsonb;
begin
  perform v_admin;
  if p_action is not null and p_action !~ '^[a-z][a-z0-9_.]{0,99}$' then
    raise exception using errcode = 'PT400', message = 'invalid_action', detail = 'an audit action such as refund.approve';
  end if;
  select jsonb_agg(to_jsonb(r) order by r.id desc) into v_rows from (
    select l.id, l.at, l.actor, l.action, l.target_type, l.target_id, l.details, l.hash
    from app.audit_log l
    where (p_actor is null or l.actor = p_actor)
      and (p_action is null or l.action = p_action)
      and (p_from is null or l.at >= p_from)
      and (p_to is null or l.at < p_to)
      and (c is null or l.id < (c ->> 'id')::bigint)
    order by l.id desc
    limit v_limit + 1) r;
  return private.page(v_rows, v_limit, array['id']);
end
$$;
comment on function private.admin_list_audit_log(uuid, text, timestamptz, timestamptz, integer, text) is
  'security definer: reads the audit log, for admins only.';
revoke all on function private.admin_list_audit_log(uuid, text, timestamptz, timestamptz, integer, text) from public;
grant execute on function private.admin_list_audit_log(uuid, text, timestamptz, timestamptz, integer, text)
  to authenticated;

create or replace function public.admin_list_audit_log(
  p_actor uuid default null, p_action text default null, p_from timestamptz default null,
  p_to timestamptz default null, p_limit integer default 50, p_cursor text default null
) returns jsonb
language sql stable
set search_path = ''
as $$ select private.admin_list_audit_log(p_actor, p_action, p_from, p_to, p_limit, p_cursor) $$;
comment on function public.admin_list_audit_log(uuid, text, timestamptz, timestamptz, integer, text) is
  'Admin: audit log newest first, by actor, exact action and time [p_from, p_to); {items: [{id, at, actor, '
  'action, target_type, target_id, details, hash}], next_cursor}. Errors: not_authenticated (PT401), '
  'admin_only (PT403), invalid_action, invalid_limit, invalid_cursor (PT400).';
revoke all on function public.admin_list_audit_log(uuid, text, timestamptz, timestamptz, integer, text)
  from public, anon, authenticated, service_role;
grant execute on function public.admin_list_audit_log(uuid, text, timestamptz, timestamptz, integer, text)
  to authenticated;

-- ---------------------------------------------------------------------------------------
-- Reconciliation issues (filed by the reconciliation job, sql/backoffice/50_reconcile.sql)
-- ---------------------------------------------------------------------------------------
create or replace function private.admin_list_reconciliation_issues(
  p_status text, p_kind text, p_limit integer, p_cursor text
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_limit integer := private.page_limit(p_limit);
  c jsonb := private.decode_cursor(p_cursor, array['id']);
  v_rows jsonb;
begin
  perform v_admin, private.check_choice(p_status, array['open', 'resolved'], 'invalid_status'),
          private.check_choice(p_kind, array['paid_not_fulfilled', 'fulfilled_without_payment',
                                             'refund_not_booked', 'pending_past_expiry'], 'invalid_kind');
  select jsonb_agg(to_jsonb(r) order by r.id) into v_rows from (
    select i.id, i.kind, i.order_id, i.detail, i.status, i.detected_at, i.resolved_at, i.resolved_by, i.resolution
    from app.reconciliation_issues i
    where (p_status is null or i.status = p_status)
      and (p_kind is null or i.kind = p_kind)
      and (c is null or i.id > (c ->> 'id')::bigint)
    order by i.id
    limit v_limit + 1) r;
  return private.page(v_rows, v_limit, array['id']);
end
$$;
comment on function private.admin_list_reconciliation_issues(text, text, integer, text) is
  'security definer: reads reconciliation issues, for admins only.';
revoke all on function private.admin_list_reconciliation_issues(text, text, integer, text) from public;
grant execute on function private.admin_list_reconciliation_issues(text, text, integer, text) to authenticated;

create or replace function public.admin_list_reconciliation_issues(
  p_status text default 'open', p_kind text default null, p_limit integer default 50, p_cursor text default null
) returns jsonb
language sql stable
set search_path = ''
as $$ select private.admin_list_reconciliation_issues(p_status, p_kind, p_limit, p_cursor) $$;
comment on function public.admin_list_reconciliation_issues(text, text, integer, text) is
  'Admin: discrepancies the reconciliation job filed, oldest first (default: open), by kind '
  '(paid_not_fulfilled, fulfilled_without_payment, refund_not_booked, pending_past_expiry); {items, next_cursor}. '
  'Errors: not_authenticated (PT401), admin_only (PT403), invalid_status, invalid_kind, invalid_limit, '
  'invalid_cursor (PT400).';
revoke all on function public.admin_list_reconciliation_issues(text, text, integer, text)
  from public, anon, authenticated, service_role;
grant execute on function public.admin_list_reconciliation_issues(text, text, integer, text) to authenticated;

create or replace function private.admin_resolve_reconciliation_issue(p_issue_id bigint, p_resolution text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_resolution);
  i app.reconciliation_issues;
begin
  select * into i from app.reconciliation_issues x where x.id = p_issue_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'issue_not_found', detail = 'no such reconciliation issue';
  end if;
  if i.status = 'resolved' then
    raise exception using errcode = 'PT409', message = 'issue_already_resolved',
      detail = 'this issue was resolved already';
  end if;
  update app.reconciliation_issues set status = 'resolved', resolved_at = now(), resolved_by = v_admin,
    resolution = v_reason where id = i.id returning * into i;
  perform private.append_audit(v_admin, 'reconciliation.resolve', 'reconciliation_issue', i.id::text,
                               jsonb_build_object('kind', i.kind, 'order_id', i.order_id, 'resolution', v_reason));
  return to_jsonb(i);
end
$$;
comment on function private.admin_resolve_reconciliation_issue(bigint, text) is
  'security definer: admins close a reconciliation issue, which nobody else may write; audited.';
revoke all on function private.admin_resolve_reconciliation_issue(bigint, text) from public;
grant execute on function private.admin_resolve_reconciliation_issue(bigint, text) to authenticated;

create or replace function public.admin_resolve_reconciliation_issue(p_issue_id bigint, p_resolution text)
returns jsonb
language sql
set search_path = ''
as $$ select private.admin_resolve_reconciliation_issue(p_issue_id, p_resolution) $$;
comment on function public.admin_resolve_reconciliation_issue(bigint, text) is
  'Admin: marks a reconciliation issue resolved with what was done (1-1000 characters); audited; returns the '
  'issue. Errors: not_authenticated (PT401), admin_only (PT403), invalid_reason (PT400), issue_not_found (PT404), '
  'issue_already_resolved (PT409).';
revoke all on function public.admin_resolve_reconciliation_issue(bigint, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_resolve_reconciliation_issue(bigint, text) to authenticated;

-- from sql/backoffice/20_vtuber_profile.sql
-- VTuber self-service: their own public profile (name, description, links to allowed hosts,
-- avatar and banner objects under their own prefix of the public avatars bucket), and the
-- revenue share an admin sets (audited).

-- An http(s) URL whose host is one of the platform's allowed link hosts, else null.
create or replace function private.allowed_link(p_url text) returns text
language plpgsql stable
set search_path = ''
as $$
declare
  v_host text;
begin
  if p_url is null or char_length(p_url) > 500
     or p_url !~ '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][^[:space:]<>"]*)?$' then
    return null;
  end if;
  v_host := lower(substring(p_url from '^https?://([A-Za-z0-9.-]+)'));
  if not exists (select 1 from app.platform_settings s, jsonb_array_elements_text(s.value) h
                 where s.key = 'profile_link_hosts' and jsonb_typeof(s.value) = 'array' and h = v_host) then
    return null;
  end if;
  return p_url;
end
$$;
comment on function private.allowed_link(text) is
  'p_url when it is an http(s) URL (at most 500 characters) to a host listed in the profile_link_hosts setting.';
revoke all on function private.allowed_link(text) from public;
grant execute on function private.allowed_link(text) to authenticated;

create or replace function private.vtuber_profile_json(p_vtuber_id uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object('vtuber_id', v.id, 'name', v.name, 'description', v.description, 'links', v.links,
                            'avatar_path', v.avatar_path, 'banner_path', v.banner_path, 'status', v.status,
                            'revenue_share_bps', coalesce(v.revenue_share_bps,
                                                          private.setting_int('default_revenue_share_bps', 7000)),
                            'updated_at', v.updated_at)
  from app.vtubers v where v.id = p_vtuber_id
$$;
comment on function private.vtuber_profile_json(uuid) is
  'security definer: a VTuber''s profile as the owner and admins see it (revenue share included).';
revoke all on function private.vtuber_profile_json(uuid) from public;
grant execute on function private.vtuber_profile_json(uuid) to authenticated;

create or replace function private.update_my_vtuber_profile(
  p_name text, p_description text, p_links jsonb, p_avatar_path text, p_banner_path text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  v_links jsonb;
  v_bad text;
  v_path text;
begin
  if p_name is not null and char_length(btrim(p_name)) not between 1 and 100 then
    raise exception using errcode = 'PT400', message = 'invalid_name', detail = 'a name of 1 to 100 characters';
  end if;
  if p_description is not null and char_length(p_description) > 2000 then
    raise exception using errcode = 'PT400', message = 'invalid_description', detail = 'at most 2000 characters';
  end if;
  if p_links is not null then
    if jsonb_typeof(p_links) <> 'array' or jsonb_array_length(p_links) > 10 then
      raise exception using errcode = 'PT400', message = 'invalid_links', detail = 'an array of at most 10 URLs';
    end if;
    select coalesce(e::text, '') into v_bad from jsonb_array_elements(p_links) e
     where jsonb_typeof(e) <> 'string' or private.allowed_link(e #>> '{}') is null limit 1;
    if found then
      raise exception using errcode = 'PT400', message = 'invalid_link',
        detail = format('%s is not an http(s) URL to an allowed host (YouTube, X, Twitch, ...)', left(v_bad, 200));
    end if;
    -- Duplicates dropped, the VTuber's order kept.
    select coalesce(jsonb_agg(d.e order by d.n), '[]') into v_links
      from (select distinct on (x.e) x.e, x.n from jsonb_array_elements(p_links) with ordinality x (e, n)
            order by x.e, x.n) d;
  end if;
  foreach v_path in array array[p_avatar_path, p_banner_path] loop
    if v_path is not null and v_path <> ''
       and (v_path !~ '^[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}$' or v_path ~ '\.\.' or v_path ~ '//'
            or v_path !~ ('^' || v.id::text || '/') or v_path !~* '\.(png|jpe?g|webp|gif)$') then
      raise exception using errcode = 'PT400', message = 'invalid_image_path',
        detail = format('an image path in the avatars bucket under your prefix: %s/<name>.png|jpg|webp|gif', v.id);
    end if;
  end loop;
  update app.vtubers set
    name = coalesce(btrim(p_name), name),
    description = coalesce(p_description, description),
    links = coalesce(v_links, links),
    avatar_path = case when p_avatar_path is null then avatar_path else nullif(p_avatar_path, '') end,
    banner_path = case when p_banner_path is null then banner_path else nullif(p_banner_path, '') end
  where id = v.id;
  return private.vtuber_profile_json(v.id);
end
$$;
comment on function private.update_my_vtuber_profile(text, text, jsonb, text, text) is
  'security definer: the approved VTuber edits their own row of app.vtubers, which no API role may write.';
revoke all on function private.update_my_vtuber_profile(text, text, jsonb, text, text) from public;
grant execute on function private.update_my_vtuber_profile(text, text, jsonb, text, text) to authenticated;

create or replace function public.update_my_vtuber_profile(
  p_name text default null, p_description text default null, p_links jsonb default null,
  p_avatar_path text default null, p_banner_path text default null
) returns jsonb
language sql
set search_path = ''
as $$ select private.update_my_vtuber_profile(p_name, p_description, p_links, p_avatar_path, p_banner_path) $$;
comment on function public.update_my_vtuber_profile(text, text, jsonb, text, text) is
  'VTuber: updates their own public profile (null = unchanged; '''' clears an image): name (1-100), description '
  '(<= 2000), links (array of <= 10 http(s) URLs to allowed hosts: YouTube, X, Twitch, ...), avatar and banner '
  'paths in the avatars bucket under "<vtuber_id>/"; returns the profile. Errors: not_authenticated (PT401), '
  'account_suspended, not_a_vtuber, vtuber_not_approved (PT403), invalid_name, invalid_description, invalid_links, '
  'invalid_link, invalid_image_path (PT400).';
revoke all on function public.update_my_vtuber_profile(text, text, jsonb, text, text)
  from public, anon, authenticated, service_role;
grant execute on function public.update_my_vtuber_profile(text, text, jsonb, text, text) to authenticated;

create or replace function private.get_my_vtuber_profile() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
begin
  return private.vtuber_profile_json(v.id);
end
$$;
comment on function private.get_my_vtuber_profile() is
  'security definer: the approved VTuber reads their own profile with its revenue share.';
revoke all on function private.get_my_vtuber_profile() from public;
grant execute on function private.get_my_vtuber_profile() to authenticated;

create or replace function public.get_my_vtuber_profile() returns jsonb
language sql stable
set search_path = ''
as $$ select private.get_my_vtuber_profile() $$;
comment on function public.get_my_vtuber_profile() is
  'VTuber: their own profile {vtuber_id, name, description, links, avatar_path, banner_path, status, '
  'revenue_share_bps, updated_at}. Errors: not_authenticated (PT401), account_suspended, not_a_vtuber, '
  'vtuber_not_approved (PT403).';
revoke all on function public.get_my_vtuber_profile() from public, anon, authenticated, service_role;
grant execute on function public.get_my_vtuber_profile() to authenticated;

create or replace function private.admin_set_revenue_share(p_vtuber_id uuid, p_share_bps integer, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  v app.vtubers;
begin
  if p_share_bps is not null and p_share_bps not between 0 and 10000 then
    raise exception using errcode = 'PT400', message = 'invalid_share',
      detail = 'p_share_bps is 0 to 10000 basis points (null = the platform default)';
  end if;
  select * into v from app.vtubers x where x.id = p_vtuber_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'vtuber_not_found', detail = 'no such VTuber';
  end if;
  update app.vtubers set revenue_share_bps = p_share_bps where id = v.id;
  perform private.append_audit(v_admin, 'vtuber.revenue_share', 'vtuber', v.id::text,
                               jsonb_build_object('from_bps', v.revenue_share_bps, 'to_bps', p_share_bps,
                                                  'reason', v_reason));
  return private.vtuber_profile_json(v.id);
end
$$;
comment on function private.admin_set_revenue_share(uuid, integer, text) is
  'security definer: admins set app.vtubers.revenue_share_bps, which nobody else may write; audited.';
revoke all on function private.admin_set_revenue_share(uuid, integer, text) from public;
grant execute on function private.admin_set_revenue_share(uuid, integer, text) to authenticated;

create or replace function public.admin_set_revenue_share(p_vtuber_id uuid, p_share_bps integer, p_reason text)
returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_revenue_share(p_vtuber_id, p_share_bps, p_reason) $$;
comment on function public.admin_set_revenue_share(uuid, integer, text) is
  'Admin: sets a VTuber''s revenue share in basis points (null = the default_revenue_share_bps setting); '
  'applies to months closed afterwards; audited (from, to, reason); returns the profile. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_share, invalid_reason (PT400), vtuber_not_found (PT404).';
revoke all on function public.admin_set_revenue_share(uuid, integer, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_set_revenue_share(uuid, integer, text) to authenticated;

-- from sql/backoffice/30_sales_rollups.sql
-- Sales analytics. A scheduled job (private.refresh_rollups, every minute) adds what is new in
-- the base tables to the rollup tables; dashboards read only the rollups. Fulfilment does no
-- extra work for them: the job finds new paid orders through the medal ledger (one pull_grant
-- entry per fulfilled order, append-only, indexed by a BRIN index on created_at).
--
-- The watermark: each run adds the rows stamped in [through, hi) and moves `through` to hi.
-- Rows are stamped with their transaction's start time (now()), so hi stays behind the start of
-- every transaction still open in this database (pg_stat_activity): no row stamped before hi can
-- still appear, and each row is added exactly once. Two more seconds of margin cover a session
-- whose start the job's role could not see.

create or replace function private.jst_date(p_at timestamptz) returns date
language sql immutable parallel safe
set search_path = ''
as $$ select (p_at at time zone 'Asia/Tokyo')::date $$;
comment on function private.jst_date(timestamptz) is 'The JST calendar day of an instant.';
revoke all on function private.jst_date(timestamptz) from public;
grant execute on function private.jst_date(timestamptz) to authenticated, service_role;

create or replace function private.refresh_rollups(p_now timestamptz) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_from timestamptz;
  v_hi timestamptz := p_now - interval '2 seconds';
  v_open timestamptz;
  v_rows bigint := 0;
  v_n bigint;
begin
  -- One refresh at a time (a second caller waits, then finds nothing new).
  perform pg_catalog.pg_advisory_xact_lock(7253201);
  select s.through into v_from from app.rollup_state s for update;
  select min(a.xact_start) into v_open from pg_catalog.pg_stat_activity a
   where a.datname = pg_catalog.current_database() and a.pid <> pg_catalog.pg_backend_pid()
     and a.xact_start is not null;
  v_hi := least(v_hi, coalesce(v_open, v_hi));
  if v_hi <= v_from then
    return jsonb_build_object('through', v_from, 'rows', 0);
  end if;

  -- Paid orders and pulls, on the JST day of fulfilment.
  insert into app.sales_daily as s (jst_date, gacha_id, vtuber_id, paid_orders, pulls, gross_jpy)
  select private.jst_date(o.fulfilled_at), o.gacha_id, o.vtuber_id, count(*), sum(o.pull_count), sum(o.amount_jpy)
  from app.medal_ledger l join app.orders o on o.id = l.order_id
  where l.reason = 'pull_grant' and l.created_at >= v_from and l.created_at < v_hi
  group by 1, 2, 3
  on conflict (jst_date, gacha_id) do update
    set paid_orders = s.paid_orders + excluded.paid_orders, pulls = s.pulls + excluded.pulls,
        gross_jpy = s.gross_jpy + excluded.gross_jpy;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  insert into app.item_pulls_daily as s (jst_date, gacha_item_id, gacha_id, vtuber_id, rarity, pulls, pity_pulls)
  select private.jst_date(o.fulfilled_at), p.gacha_item_id, p.gacha_id, o.vtuber_id, p.rarity,
         count(*) filter (where not p.pity), count(*) filter (where p.pity)
  from app.medal_ledger l join app.orders o on o.id = l.order_id join app.pulls p on p.order_id = o.id
  where l.reason = 'pull_grant' and l.created_at >= v_from and l.created_at < v_hi
  group by 1, 2, 3, 4, 5
  on conflict (jst_date, gacha_item_id) do update
    set pulls = s.pulls + excluded.pulls, pity_pulls = s.pity_pulls + excluded.pity_pulls;

  insert into app.fan_sales_daily as s (vtuber_id, jst_date, user_id, paid_orders, gross_jpy)
  select o.vtuber_id, private.jst_date(o.fulfilled_at), o.user_id, count(*), sum(o.amount_jpy)
  from app.medal_ledger l join app.orders o on o.id = l.order_id
  where l.reason = 'pull_grant' and l.created_at >= v_from and l.created_at < v_hi
  group by 1, 2, 3
  on conflict (vtuber_id, jst_date, user_id) do update
    set paid_orders = s.paid_orders + excluded.paid_orders, gross_jpy = s.gross_jpy + excluded.gross_jpy;

  insert into app.fan_firsts as s (vtuber_id, user_id, first_jst_date)
  select o.vtuber_id, o.user_id, min(private.jst_date(o.fulfilled_at))
  from app.medal_ledger l join app.orders o on o.id = l.order_id
  where l.reason = 'pull_grant' and l.created_at >= v_from and l.created_at < v_hi
  group by 1, 2
  on conflict (vtuber_id, user_id) do update set first_jst_date = least(s.first_jst_date, excluded.first_jst_date);

  -- Medal flows, on the JST day of the ledger entry.
  insert into app.medals_daily as s (jst_date, vtuber_id, granted, spent, clawed_back, adjusted)
  select private.jst_date(l.created_at), l.vtuber_id,
         coalesce(sum(l.delta) filter (where l.reason = 'pull_grant'), 0),
         coalesce(-sum(l.delta) filter (where l.reason = 'exchange'), 0),
         coalesce(-sum(l.delta) filter (where l.reason = 'refund_clawback'), 0),
         coalesce(sum(l.delta) filter (where l.reason = 'admin_adjustment'), 0)
  from app.medal_ledger l
  where l.created_at >= v_from and l.created_at < v_hi
  group by 1, 2
  on conflict (vtuber_id, jst_date) do update
    set granted = s.granted + excluded.granted, spent = s.spent + excluded.spent,
        clawed_back = s.clawed_back + excluded.clawed_back, adjusted = s.adjusted + excluded.adjusted;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  -- Refunds on the JST day they completed (whatever month the sale was in).
  insert into app.sales_daily as s (jst_date, gacha_id, vtuber_id, refund_count, refunds_jpy)
  select private.jst_date(f.completed_at), o.gacha_id, o.vtuber_id, count(*), sum(f.amount_jpy)
  from app.refunds f join app.orders o on o.id = f.order_id
  where f.status = 'completed' and f.completed_at >= v_from and f.completed_at < v_hi
  group by 1, 2, 3
  on conflict (jst_date, gacha_id) do update
    set refund_count = s.refund_count + excluded.refund_count, refunds_jpy = s.refunds_jpy + excluded.refunds_jpy;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  -- Chargebacks on the JST day of an order's first dispute: the order's amount.
  insert into app.sales_daily as s (jst_date, gacha_id, vtuber_id, chargeback_count, chargebacks_jpy)
  select private.jst_date(d.created_at), o.gacha_id, o.vtuber_id, count(*), sum(o.amount_jpy)
  from app.disputes d join app.orders o on o.id = d.order_id
  where d.created_at >= v_from and d.created_at < v_hi
    and not exists (select 1 from app.disputes e where e.order_id = d.order_id
                     and (e.created_at, e.provider_dispute_id) < (d.created_at, d.provider_dispute_id))
  group by 1, 2, 3
  on conflict (jst_date, gacha_id) do update
    set chargeback_count = s.chargeback_count + excluded.chargeback_count,
        chargebacks_jpy = s.chargebacks_jpy + excluded.chargebacks_jpy;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  insert into app.exchanges_daily as s (jst_date, exchange_item_id, vtuber_id, exchanges, quantity, medals_spent)
  select x.jst_date, x.exchange_item_id, x.vtuber_id, count(*), sum(x.quantity), sum(x.medals_spent)
  from app.exchanges x
  where x.created_at >= v_from and x.created_at < v_hi
  group by 1, 2, 3
  on conflict (jst_date, exchange_item_id) do update
    set exchanges = s.exchanges + excluded.exchanges, quantity = s.quantity + excluded.quantity,
        medals_spent = s.medals_spent + excluded.medals_spent;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  update app.rollup_state set through = v_hi, runs = runs + 1, last_run_at = p_now, last_rows = v_rows;
  return jsonb_build_object('from', v_from, 'through', v_hi, 'rows', v_rows);
end
$$;
comment on function private.refresh_rollups(timestamptz) is
  'security definer: the scheduled job adds the base-table rows stamped since the watermark to the rollups '
  '(reads pg_stat_activity to hold the watermark behind open transactions).';
revoke all on function private.refresh_rollups(timestamptz) from public;
grant execute on function private.refresh_rollups(timestamptz) to service_role;

create or replace function public.service_refresh_rollups() returns jsonb
language sql
set search_path = ''
as $$ select private.refresh_rollups(now()) $$;
comment on function public.service_refresh_rollups() is
  'Service role: adds what is new since the watermark to the sales rollups now (the scheduled job does this '
  'every minute); returns {from, through, rows}.';
revoke all on function public.service_refresh_rollups() from public, anon, authenticated;
grant execute on function public.service_refresh_rollups() to service_role;

create or replace function private.check_date_range(p_from date, p_to date) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_from is null or p_to is null or p_from > p_to or p_to - p_from > 366 then
    raise exception using errcode = 'PT400', message = 'invalid_date_range',
      detail = 'p_from <= p_to (JST days, both included), at most 367 days';
  end if;
end
$$;
comment on function private.check_date_range(date, date) is 'Raises invalid_date_range unless p_from <= p_to within 367 days.';
revoke all on function private.check_date_range(date, date) from public;
grant execute on function private.check_date_range(date, date) to authenticated;

create or replace function private.share_bps(p_vtuber_id uuid) returns integer
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select v.revenue_share_bps from app.vtubers v where v.id = p_vtuber_id),
                  private.setting_int('default_revenue_share_bps', 7000))
$$;
comment on function private.share_bps(uuid) is
  'security definer: a VTuber''s revenue share in basis points (their own or the platform default).';
revoke all on function private.share_bps(uuid) from public;
grant execute on function private.share_bps(uuid) to authenticated;

-- The report both the VTuber (their own id) and admins (any id, or null for everyone) read.
create or replace function private.sales_report(p_vtuber_id uuid, p_from date, p_to date) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_days jsonb;
  v_gachas jsonb;
  v_rarity jsonb;
  v_medals jsonb;
  v_exchanges jsonb;
  v_top jsonb;
  v_totals jsonb;
  v_outstanding bigint;
begin
  perform private.check_date_range(p_from, p_to);
  with s as (
    select d.jst_date, d.vtuber_id, sum(d.paid_orders) as paid_orders, sum(d.pulls) as pulls,
           sum(d.gross_jpy) as gross_jpy, sum(d.provider_fees_jpy) as provider_fees_jpy,
           sum(d.refunds_jpy) as refunds_jpy, sum(d.refund_count) as refund_count,
           sum(d.chargebacks_jpy) as chargebacks_jpy, sum(d.chargeback_count) as chargeback_count
    from app.sales_daily d
    where (p_vtuber_id is null or d.vtuber_id = p_vtuber_id) and d.jst_date between p_from and p_to
    group by 1, 2),
  split as (
    select s.*, s.gross_jpy - s.refunds_jpy - s.chargebacks_jpy - s.provider_fees_jpy as net_jpy,
           trunc((s.gross_jpy - s.refunds_jpy - s.chargebacks_jpy - s.provider_fees_jpy)
                 * private.share_bps(s.vtuber_id) / 10000.0)::bigint as vtuber_share_jpy
    from s),
  day as (
    select x.jst_date, sum(x.paid_orders)::bigint as paid_orders, sum(x.pulls)::bigint as pulls,
           sum(x.gross_jpy)::bigint as gross_jpy, sum(x.provider_fees_jpy)::bigint as provider_fees_jpy,
           sum(x.refunds_jpy)::bigint as refunds_jpy, sum(x.refund_count)::bigint as refund_count,
           sum(x.chargebacks_jpy)::bigint as chargebacks_jpy, sum(x.chargeback_count)::bigint as chargeback_count,
           sum(x.net_jpy)::bigint as net_jpy, sum(x.vtuber_share_jpy)::bigint as vtuber_share_jpy,
           sum(x.net_jpy - x.vtuber_share_jpy)::bigint as platform_fee_jpy
    from split x group by 1),
  fans as (
    select f.jst_date, count(distinct f.user_id) as paying_fans,
           count(distinct f.user_id) filter (where ff.first_jst_date = f.jst_date) as new_fans
    from app.fan_sales_daily f join app.fan_firsts ff on ff.vtuber_id = f.vtuber_id and ff.user_id = f.user_id
    where (p_vtuber_id is null or f.vtuber_id = p_vtuber_id) and f.jst_date between p_from and p_to
    group by 1)
  select coalesce(jsonb_agg(jsonb_build_object(
           'jst_date', d.jst_date, 'paid_orders', d.paid_orders, 'pulls', d.pulls, 'gross_jpy', d.gross_jpy,
           'refund_count', d.refund_count, 'refunds_jpy', d.refunds_jpy, 'chargeback_count', d.chargeback_count,
           'chargebacks_jpy', d.chargebacks_jpy, 'provider_fees_jpy', d.provider_fees_jpy, 'net_jpy', d.net_jpy,
           'platform_fee_jpy', d.platform_fee_jpy, 'vtuber_share_jpy', d.vtuber_share_jpy,
           'paying_fans', coalesce(f.paying_fans, 0), 'new_fans', coalesce(f.new_fans, 0),
           'returning_fans', coalesce(f.paying_fans - f.new_fans, 0),
           'arppu_jpy', case when f.paying_fans > 0 then round(d.gross_jpy::numeric / f.paying_fans) end)
           order by d.jst_date), '[]'),
         jsonb_build_object(
           'paid_orders', coalesce(sum(d.paid_orders), 0), 'pulls', coalesce(sum(d.pulls), 0),
           'gross_jpy', coalesce(sum(d.gross_jpy), 0), 'refunds_jpy', coalesce(sum(d.refunds_jpy), 0),
           'chargebacks_jpy', coalesce(sum(d.chargebacks_jpy), 0),
           'provider_fees_jpy', coalesce(sum(d.provider_fees_jpy), 0), 'net_jpy', coalesce(sum(d.net_jpy), 0),
           'platform_fee_jpy', coalesce(sum(d.platform_fee_jpy), 0),
           'vtuber_share_jpy', coalesce(sum(d.vtuber_share_jpy), 0))
    into v_days, v_totals
  from day d left join fans f on f.jst_date = d.jst_date;

  -- Unique paying fans over the whole range (a fan paying on two days counts once).
  select v_totals || jsonb_build_object(
           'paying_fans', count(distinct (f.vtuber_id, f.user_id)),
           'new_fans', count(distinct (f.vtuber_id, f.user_id)) filter (where ff.first_jst_date between p_from and p_to),
           'arppu_jpy', case when count(distinct (f.vtuber_id, f.user_id)) > 0
                             then round((v_totals ->> 'gross_jpy')::numeric / count(distinct (f.vtuber_id, f.user_id))) end)
    into v_totals
  from app.fan_sales_daily f join app.fan_firsts ff on ff.vtuber_id = f.vtuber_id and ff.user_id = f.user_id
  where (p_vtuber_id is null or f.vtuber_id = p_vtuber_id) and f.jst_date between p_from and p_to;

  select coalesce(jsonb_agg(jsonb_build_object(
           'jst_date', d.jst_date, 'gacha_id', d.gacha_id, 'title', g.title, 'paid_orders', d.paid_orders,
           'pulls', d.pulls, 'gross_jpy', d.gross_jpy, 'refunds_jpy', d.refunds_jpy,
           'chargebacks_jpy', d.chargebacks_jpy, 'provider_fees_jpy', d.provider_fees_jpy)
           order by d.jst_date, d.gacha_id), '[]')
    into v_gachas
  from app.sales_daily d join app.gachas g on g.id = d.gacha_id
  where (p_vtuber_id is null or d.vtuber_id = p_vtuber_id) and d.jst_date between p_from and p_to;

  select coalesce(jsonb_agg(jsonb_build_object('rarity', r.rarity, 'pulls', r.pulls, 'pity_pulls', r.pity_pulls)
                            order by private.rarity_rank(r.rarity) desc), '[]')
    into v_rarity
  from (select i.rarity, sum(i.pulls)::bigint as pulls, sum(i.pity_pulls)::bigint as pity_pulls
        from app.item_pulls_daily i
        where (p_vtuber_id is null or i.vtuber_id = p_vtuber_id) and i.jst_date between p_from and p_to
        group by 1) r;

  select coalesce(jsonb_agg(jsonb_build_object('gacha_item_id', t.gacha_item_id, 'name', gi.name,
                                               'rarity', t.rarity, 'pulls', t.pulls) order by t.pulls desc, t.gacha_item_id), '[]')
    into v_top
  from (select i.gacha_item_id, i.rarity, sum(i.pulls + i.pity_pulls)::bigint as pulls
        from app.item_pulls_daily i
        where (p_vtuber_id is null or i.vtuber_id = p_vtuber_id) and i.jst_date between p_from and p_to
        group by 1, 2 order by 3 desc, 1 limit 10) t
  join app.gacha_items gi on gi.id = t.gacha_item_id;

  select coalesce(sum(m.granted - m.spent - m.clawed_back + m.adjusted), 0)::bigint into v_outstanding
  from app.medals_daily m
  where (p_vtuber_id is null or m.vtuber_id = p_vtuber_id) and m.jst_date <= p_to;
  select jsonb_build_object(
           'granted', coalesce(sum(m.granted), 0), 'spent', coalesce(sum(m.spent), 0),
           'clawed_back', coalesce(sum(m.clawed_back), 0), 'adjusted', coalesce(sum(m.adjusted), 0),
           'outstanding_at_end', v_outstanding)
    into v_medals
  from app.medals_daily m
  where (p_vtuber_id is null or m.vtuber_id = p_vtuber_id) and m.jst_date between p_from and p_to;

  select coalesce(jsonb_agg(jsonb_build_object('exchange_item_id', e.exchange_item_id, 'name', x.name,
                                               'exchanges', e.exchanges, 'quantity', e.quantity,
                                               'medals_spent', e.medals_spent) order by e.quantity desc, e.exchange_item_id), '[]')
    into v_exchanges
  from (select d.exchange_item_id, sum(d.exchanges)::bigint as exchanges, sum(d.quantity)::bigint as quantity,
               sum(d.medals_spent)::bigint as medals_spent
        from app.exchanges_daily d
        where (p_vtuber_id is null or d.vtuber_id = p_vtuber_id) and d.jst_date between p_from and p_to
        group by 1) e
  join app.exchange_items x on x.id = e.exchange_item_id;

  return jsonb_build_object(
    'vtuber_id', p_vtuber_id, 'from', p_from, 'to', p_to,
    'fresh_through', (select s.through from app.rollup_state s),
    'totals', v_totals, 'days', v_days, 'by_gacha_day', v_gachas, 'pulls_by_rarity', v_rarity,
    'top_items', v_top, 'medals', v_medals, 'exchanges_by_item', v_exchanges);
end
$$;
comment on function private.sales_report(uuid, date, date) is
  'security definer: reads the rollups (which no API role reads directly); callers check who may see which VTuber.';
revoke all on function private.sales_report(uuid, date, date) from public;
grant execute on function private.sales_report(uuid, date, date) to authenticated, service_role;

create or replace function private.get_my_sales(p_from date, p_to date) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
begin
  return private.sales_report(v.id, p_from, p_to);
end
$$;
comment on function private.get_my_sales(date, date) is
  'security definer: an approved VTuber''s own sales report, never another''s.';
revoke all on function private.get_my_sales(date, date) from public;
grant execute on function private.get_my_sales(date, date) to authenticated;

create or replace function public.get_my_sales(
  p_from date default null, p_to date default null
) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.get_my_sales(coalesce(p_from, coalesce(p_to, private.jst_date(now())) - 29),
                              coalesce(p_to, private.jst_date(now())))
$$;
comment on function public.get_my_sales(date, date) is
  'VTuber: their own sales per JST day [p_from, p_to] (default: the last 30 days) from the rollups: totals, days '
  '(paid orders, pulls, gross, refunds, chargebacks, fees, net, platform fee, share, paying/new/returning fans, '
  'ARPPU), by_gacha_day, pulls_by_rarity, top_items, medals (granted, spent, outstanding), exchanges_by_item, '
  'fresh_through. Errors: not_authenticated (PT401), not_a_vtuber, vtuber_not_approved (PT403), '
  'invalid_date_range (PT400).';
revoke all on function public.get_my_sales(date, date) from public, anon, authenticated, service_role;
grant execute on function public.get_my_sales(date, date) to authenticated;

create or replace function private.admin_get_sales(p_vtuber_id uuid, p_from date, p_to date) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
begin
  perform v_admin;
  if p_vtuber_id is not null and not exists (select 1 from app.vtubers v where v.id = p_vtuber_id) then
    raise exception using errcode = 'PT404', message = 'vtuber_not_found', detail = 'no such VTuber';
  end if;
  return private.sales_report(p_vtuber_id, p_from, p_to);
end
$$;
comment on function private.admin_get_sales(uuid, date, date) is
  'security definer: any VTuber''s (or everyone''s) sales report, for admins only.';
revoke all on function private.admin_get_sales(uuid, date, date) from public;
grant execute on function private.admin_get_sales(uuid, date, date) to authenticated;

create or replace function public.admin_get_sales(
  p_vtuber_id uuid default null, p_from date default null, p_to date default null
) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.admin_get_sales(p_vtuber_id, coalesce(p_from, coalesce(p_to, private.jst_date(now())) - 29),
                                 coalesce(p_to, private.jst_date(now())))
$$;
comment on function public.admin_get_sales(uuid, date, date) is
  'Admin: the sales report of one VTuber or (null) the whole platform; same shape as get_my_sales. Errors: '
  'not_authenticated (PT401), admin_only (PT403), vtuber_not_found (PT404), invalid_date_range (PT400).';
revoke all on function public.admin_get_sales(uuid, date, date) from public, anon, authenticated, service_role;
grant execute on function public.admin_get_sales(uuid, date, date) to authenticated;

-- Scheduled jobs that failed recently; none when pg_cron is not installed in this database.
create or replace function private.failed_jobs(p_since timestamptz) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v jsonb;
begin
  if to_regclass('cron.job_run_details') is null then
    return '[]'::jsonb;
  end if;
  execute $q$
    select coalesce(jsonb_agg(jsonb_build_object('job', j.jobname, 'failures', f.n, 'last_failure', f.last,
                                                 'last_message', f.msg) order by j.jobname), '[]')
    from (select d.jobid, count(*) as n, max(d.start_time) as last,
                 (array_agg(d.return_message order by d.start_time desc))[1] as msg
          from cron.job_run_details d where d.status = 'failed' and d.start_time >= $1 group by d.jobid) f
    join cron.job j on j.jobid = f.jobid $q$
    into v using p_since;
  return v;
end
$$;
comment on function private.failed_jobs(timestamptz) is
  'security definer: reads pg_cron''s run history (cron schema), which API roles cannot.';
revoke all on function private.failed_jobs(timestamptz) from public;
grant execute on function private.failed_jobs(timestamptz) to authenticated, service_role;

create or replace function private.admin_get_kpis(p_from date, p_to date) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  t jsonb;
  v_flagged jsonb;
begin
  perform v_admin, private.check_date_range(p_from, p_to);
  select jsonb_build_object(
           'gmv_jpy', coalesce(sum(d.gross_jpy), 0), 'paid_orders', coalesce(sum(d.paid_orders), 0),
           'refunds_jpy', coalesce(sum(d.refunds_jpy), 0), 'refund_count', coalesce(sum(d.refund_count), 0),
           'chargebacks_jpy', coalesce(sum(d.chargebacks_jpy), 0),
           'chargeback_count', coalesce(sum(d.chargeback_count), 0),
           'refund_rate', case when sum(d.gross_jpy) > 0 then round(sum(d.refunds_jpy)::numeric / sum(d.gross_jpy), 6) end,
           'dispute_rate', case when sum(d.paid_orders) > 0
                                then round(sum(d.chargeback_count)::numeric / sum(d.paid_orders), 6) end)
    into t
  from app.sales_daily d where d.jst_date between p_from and p_to;
  select t || jsonb_build_object('paying_users', count(distinct f.user_id))
    into t from app.fan_sales_daily f where f.jst_date between p_from and p_to;
  select t || jsonb_build_object('outstanding_medals',
                                 coalesce(sum(m.granted - m.spent - m.clawed_back + m.adjusted), 0))
    into t from app.medals_daily m;
  -- Gachas whose observed non-pity draws (all time, from the rollup) fit their odds with p < 0.001.
  select coalesce(jsonb_agg(jsonb_build_object('gacha_id', a.gacha_id, 'title', g.title, 'p_value', a.p)
                            order by a.p), '[]')
    into v_flagged
  from (select c.gacha_id, (private.chi_square_test(c.cells) ->> 'p_value')::double precision as p,
               (private.chi_square_test(c.cells) ->> 'reliable')::boolean as reliable
        from (select i.gacha_id,
                     jsonb_agg(jsonb_build_object('observed', coalesce(o.pulls, 0),
                                                  'expected', n.total * i.rate_ppm / 1e6)) as cells
              from app.gacha_items i
              join (select x.gacha_id, sum(x.pulls) as total from app.item_pulls_daily x group by 1) n
                on n.gacha_id = i.gacha_id
              left join (select x.gacha_item_id, sum(x.pulls) as pulls from app.item_pulls_daily x group by 1) o
                on o.gacha_item_id = i.id
              where n.total > 0
              group by i.gacha_id) c) a
  join app.gachas g on g.id = a.gacha_id
  where a.p < 0.001;
  return t || jsonb_build_object(
    'from', p_from, 'to', p_to,
    'fresh_through', (select s.through from app.rollup_state s),
    'rate_audit_alerts', v_flagged,
    'failed_jobs_24h', private.failed_jobs(now() - interval '24 hours'),
    'open_reconciliation_issues', (select count(*) from app.reconciliation_issues r where r.status = 'open'),
    'refund_requests_awaiting_review', (select count(*) from app.refunds r where r.status = 'requested'));
end
$$;
comment on function private.admin_get_kpis(date, date) is
  'security definer: platform KPIs from the rollups, pg_cron''s run history and the queues, for admins only.';
revoke all on function private.admin_get_kpis(date, date) from public;
grant execute on function private.admin_get_kpis(date, date) to authenticated;

create or replace function public.admin_get_kpis(p_from date default null, p_to date default null) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.admin_get_kpis(coalesce(p_from, coalesce(p_to, private.jst_date(now())) - 29),
                                coalesce(p_to, private.jst_date(now())))
$$;
comment on function public.admin_get_kpis(date, date) is
  'Admin: GMV, paid orders, paying users, refund and dispute rates over [p_from, p_to] (JST days; default the last '
  '30), outstanding medals (a liability), gachas whose rate audit p-value is below 0.001, scheduled jobs that '
  'failed in the last 24 hours, open reconciliation issues, refunds awaiting review, fresh_through. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_date_range (PT400).';
revoke all on function public.admin_get_kpis(date, date) from public, anon, authenticated, service_role;
grant execute on function public.admin_get_kpis(date, date) to authenticated;

-- from sql/backoffice/40_payouts.sql
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

-- from sql/backoffice/50_reconcile.sql
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

-- from sql/backoffice/60_jobs.sql
-- Scheduled jobs, run by pg_cron inside the database as hosted Supabase runs them (Supabase
-- Cron). The list lives here; private.schedule_jobs() creates or updates each job by name
-- (cron.schedule with a job name replaces that job's schedule and command), so running it
-- again, or on hosted Supabase, is harmless. A database without pg_cron gets no jobs and
-- migrates all the same (test databases: pg_cron lives in one database per cluster).
-- Account erasure after its cooling-off period joins this list once the auth lifecycle has it.

create or replace function private.job_definitions()
returns table (name text, schedule text, command text, description text)
language sql immutable
set search_path = ''
as $$
  values
    ('koepon_expire_orders', '* * * * *', 'select private.service_expire_orders()',
     'pending orders past their 30 minutes expire and release what they reserved'),
    ('koepon_sweep_rate_limits', '* * * * *', 'select private.sweep_rate_limits(now())',
     'rate-limit counters older than the previous minute are deleted'),
    ('koepon_refresh_rollups', '* * * * *', 'select private.refresh_rollups(now())',
     'what is new in orders, pulls, the ledger, refunds, disputes and exchanges is added to the sales rollups'),
    ('koepon_reconcile', '*/5 * * * *', 'select private.reconcile(now())',
     'payments are compared with orders; discrepancies are filed into the admin queue')
$$;
comment on function private.job_definitions() is 'The scheduled jobs: name, cron schedule (UTC), SQL command, purpose.';
revoke all on function private.job_definitions() from public;

create or replace function private.schedule_jobs() returns integer
language plpgsql
set search_path = ''
as $$
declare
  j record;
  v_n integer := 0;
begin
  if to_regclass('cron.job') is null then
    return 0;
  end if;
  for j in select * from private.job_definitions() loop
    execute 'select cron.schedule($1, $2, $3)' using j.name, j.schedule, j.command;
    v_n := v_n + 1;
  end loop;
  -- Our jobs that are no longer defined go away (other jobs in cron.job are left alone).
  execute $q$select count(cron.unschedule(c.jobname)) from cron.job c
             where c.jobname like 'koepon\_%' and c.jobname not in (select d.name from private.job_definitions() d)$q$;
  return v_n;
end
$$;
comment on function private.schedule_jobs() is
  'Creates or updates every job of private.job_definitions() in pg_cron (when installed); returns how many.';
revoke all on function private.schedule_jobs() from public;
