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
