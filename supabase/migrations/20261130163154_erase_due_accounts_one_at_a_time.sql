-- from sql/accounts/30_erasure.sql
-- The right to be forgotten (APPI): a fan asks for deletion, may cancel during the cooling-off
-- period, and then an admin or the scheduled job erases the account. Erasure removes or
-- irreversibly replaces every personal value (address, display name, birth date, IPs and user
-- agents of downloads and sessions, the fan's refund reasons, the address inside provider
-- payloads) and keeps the financial record Japanese bookkeeping rules require for seven years
-- (orders, payments, refunds, pulls, the medal ledger) tied to the same user id, which from then
-- on names nobody: the tombstone. Unclaimed medals are forfeited through the ledger. The
-- auth.users row stays as that tombstone with no address, so the address can register again.
-- docs/privacy.md states the rules.

-- The download log stays history (no delete, no change) with one exception: erasure may blank
-- its personal columns, client IP and user agent, and nothing else.
create or replace function private.downloads_history_guard() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.client_ip is null and new.user_agent is null
     and (to_jsonb(new) - 'client_ip' - 'user_agent') = (to_jsonb(old) - 'client_ip' - 'user_agent') then
    return new;
  end if;
  raise exception using errcode = 'PT409', message = 'history_append_only',
    detail = 'downloads is append-only: rows can be neither changed nor deleted (erasure only blanks the client)';
end
$$;
comment on function private.downloads_history_guard() is
  'Trigger: refuses UPDATE and DELETE on app.downloads, except blanking client_ip and user_agent (erasure).';
revoke all on function private.downloads_history_guard() from public;

create or replace trigger downloads_before_update_delete_refuse
  before update or delete on app.downloads
  for each row execute function private.downloads_history_guard();

create or replace function private.deletion_cooling_off() returns interval
language sql immutable
set search_path = ''
as $$ select interval '14 days' $$;
comment on function private.deletion_cooling_off() is
  'How long a deletion request waits before erasure (the fan may cancel meanwhile).';
revoke all on function private.deletion_cooling_off() from public;
grant execute on function private.deletion_cooling_off() to authenticated, service_role;

create or replace function private.account_deletion_json(d app.account_deletions) returns jsonb
language sql immutable
set search_path = ''
as $$
  select jsonb_build_object('user_id', d.user_id, 'requested_at', d.requested_at, 'erase_after', d.erase_after,
                            'cancelled_at', d.cancelled_at, 'erased_at', d.erased_at,
                            'status', case when d.erased_at is not null then 'erased'
                                           when d.cancelled_at is not null then 'cancelled' else 'pending' end)
$$;
revoke all on function private.account_deletion_json(app.account_deletions) from public;
grant execute on function private.account_deletion_json(app.account_deletions) to authenticated, service_role;

create or replace function private.request_account_deletion(p_now timestamptz) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  d app.account_deletions;
begin
  -- A suspended fan keeps this right: auth.uid(), not private.require_user().
  if v_uid is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  if exists (select 1 from app.vtubers v where v.user_id = v_uid) then
    raise exception using errcode = 'PT409', message = 'vtuber_account',
      detail = 'a VTuber account has payouts to settle: ask an admin to close it';
  end if;
  insert into app.account_deletions as x (user_id, requested_at, erase_after)
  values (v_uid, p_now, p_now + private.deletion_cooling_off())
  on conflict (user_id) do update
    set requested_at = excluded.requested_at, erase_after = excluded.erase_after, cancelled_at = null
    where x.cancelled_at is not null and x.erased_at is null
  returning * into d;
  if not found then  -- already pending: the same request again
    select * into d from app.account_deletions x where x.user_id = v_uid;
  end if;
  return private.account_deletion_json(d);
end
$$;
comment on function private.request_account_deletion(timestamptz) is
  'security definer: records the caller''s deletion request at p_now in app.account_deletions, which no API '
  'role writes. No API role may run it: a fan choosing the time could set a past one and skip the cooling-off.';
revoke all on function private.request_account_deletion(timestamptz) from public, anon, authenticated, service_role;

-- What the fan's RPC reaches: the request at the transaction's time, never one the caller chooses.
create or replace function private.request_account_deletion() returns jsonb
language sql security definer
set search_path = ''
as $$ select private.request_account_deletion(pg_catalog.now()) $$;
comment on function private.request_account_deletion() is
  'security definer: the caller''s deletion request, made now (private.request_account_deletion(timestamptz)).';
revoke all on function private.request_account_deletion() from public;
grant execute on function private.request_account_deletion() to authenticated;

create or replace function public.request_account_deletion() returns jsonb
language sql
set search_path = ''
as $$ select private.request_account_deletion() $$;
comment on function public.request_account_deletion() is
  'Fan: asks for the account to be erased after the cooling-off period (14 days; cancel_account_deletion '
  'until then); repeating it returns the pending request. Returns {user_id, requested_at, erase_after, '
  'cancelled_at, erased_at, status}. Errors: not_authenticated (PT401), vtuber_account (PT409).';
revoke all on function public.request_account_deletion() from public, anon, authenticated, service_role;
grant execute on function public.request_account_deletion() to authenticated;

create or replace function private.cancel_account_deletion() returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  d app.account_deletions;
begin
  if v_uid is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  update app.account_deletions x set cancelled_at = now()
   where x.user_id = v_uid and x.cancelled_at is null and x.erased_at is null
  returning * into d;
  if not found then
    raise exception using errcode = 'PT404', message = 'deletion_not_requested',
      detail = 'there is no pending deletion request to cancel';
  end if;
  return private.account_deletion_json(d);
end
$$;
comment on function private.cancel_account_deletion() is
  'security definer: cancels the caller''s pending request in app.account_deletions.';
revoke all on function private.cancel_account_deletion() from public;
grant execute on function private.cancel_account_deletion() to authenticated;

create or replace function public.cancel_account_deletion() returns jsonb
language sql
set search_path = ''
as $$ select private.cancel_account_deletion() $$;
comment on function public.cancel_account_deletion() is
  'Fan: withdraws a pending deletion request. Errors: not_authenticated (PT401), deletion_not_requested (PT404).';
revoke all on function public.cancel_account_deletion() from public, anon, authenticated, service_role;
grant execute on function public.cancel_account_deletion() to authenticated;

-- The erasure itself; callers check who may run it and when.
create or replace function private.erase_account(p_user uuid, p_actor uuid, p_now timestamptz) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  d app.account_deletions;
  v_email text;
  v_name text;
  b record;
  v_forfeited bigint := 0;
begin
  select * into d from app.account_deletions x where x.user_id = p_user for update;
  if not found or d.cancelled_at is not null then
    raise exception using errcode = 'PT404', message = 'deletion_not_requested',
      detail = 'the user has no pending deletion request';
  end if;
  if d.erased_at is not null then
    raise exception using errcode = 'PT409', message = 'already_erased', detail = 'this account is already erased';
  end if;
  if p_now < d.erase_after then
    raise exception using errcode = 'PT409', message = 'cooling_off',
      detail = format('the request may be cancelled until %s', d.erase_after);
  end if;
  if exists (select 1 from app.orders o where o.user_id = p_user and o.status = 'pending') then
    -- A payment for it may still arrive; erasure waits until the order is paid or expires (30 minutes).
    raise exception using errcode = 'PT409', message = 'pending_orders',
      detail = 'the account has an order waiting for its payment';
  end if;
  select u.email into v_email from auth.users u where u.id = p_user for update;
  select p.display_name into v_name from app.profiles p where p.user_id = p_user for update;

  -- Unclaimed medals are forfeited, each through the ledger (Σ ledger = balance stays true).
  for b in select m.vtuber_id, m.balance from app.medal_balances m
            where m.user_id = p_user and m.balance > 0 order by m.vtuber_id loop
    perform private.post_medals(p_user, b.vtuber_id, -b.balance, 'account_forfeiture', null, null,
                                'medals forfeited when the account was erased', p_now);
    v_forfeited := v_forfeited + b.balance;
  end loop;

  -- Personal values in Koepon's tables.
  update app.profiles p set display_name = 'deleted user', birth_date = null, status = 'suspended'
   where p.user_id = p_user;
  update app.downloads x set client_ip = null, user_agent = null where x.user_id = p_user;
  update app.refunds x set reason = case when x.reason is null then null else '[erased]' end
   where x.user_id = p_user;
  delete from app.vtuber_applications x where x.user_id = p_user;
  delete from app.rate_limit_hits x where x.subject = 'u:' || p_user::text;
  if v_email is not null then
    -- The provider's copy of a payment may carry the address (receipt e-mail, billing details).
    update app.payment_events e set payload = replace(e.payload::text, v_email, '[erased]')::jsonb
     where e.order_id in (select o.id from app.orders o where o.user_id = p_user)
       and strpos(e.payload::text, v_email) > 0;
  end if;

  -- Auth: the row stays as the tombstone (financial rows reference it), naming nobody.
  update auth.users u set email = null, phone = null, encrypted_password = '', email_change = '',
    confirmation_token = '', recovery_token = '', email_change_token_new = '', email_change_token_current = '',
    reauthentication_token = '', phone_change = '', phone_change_token = '', raw_user_meta_data = '{}'::jsonb,
    raw_app_meta_data = '{"provider": "email", "providers": []}'::jsonb,
    banned_until = now() + interval '876000 hours', deleted_at = p_now, updated_at = p_now
   where u.id = p_user;
  delete from auth.identities i where i.user_id = p_user;
  delete from auth.sessions s where s.user_id = p_user;
  delete from auth.refresh_tokens t where t.user_id = p_user::text;
  delete from auth.audit_log_entries a
   where a.payload ->> 'actor_id' = p_user::text or (v_email is not null and strpos(a.payload::text, v_email) > 0);
  -- Auth's tables that only some installations have (hosted: one_time_tokens keeps the address).
  if to_regclass('auth.one_time_tokens') is not null then
    execute 'delete from auth.one_time_tokens where user_id = $1' using p_user;
  end if;
  if to_regclass('auth.mfa_factors') is not null then
    execute 'delete from auth.mfa_factors where user_id = $1' using p_user;
  end if;
  if to_regclass('auth.flow_state') is not null then
    execute 'delete from auth.flow_state where user_id = $1' using p_user;
  end if;

  update app.account_deletions x set erased_at = p_now, erased_by = p_actor where x.user_id = p_user
  returning * into d;
  perform private.append_audit(p_actor, 'user.erase', 'user', p_user::text,
                               jsonb_build_object('medals_forfeited', v_forfeited));
  return private.account_deletion_json(d) || jsonb_build_object('medals_forfeited', v_forfeited);
end
$$;
comment on function private.erase_account(uuid, uuid, timestamptz) is
  'security definer: erases a requested account after its cooling-off period (personal values removed, '
  'financial rows kept under the same id, medals forfeited through the ledger); writes Auth''s tables.';
revoke all on function private.erase_account(uuid, uuid, timestamptz) from public;

-- An order created while the account is being erased: create_order checked the profile before the
-- erasure committed, and its insert would otherwise land after the pending-orders check, leaving an
-- order (and later a payment naming the fan) on the tombstone. Inserting an order takes a share lock
-- on the user's deletion request, so the two serialize: an erasure in progress makes the order wait
-- and then refuses it; an order being created makes the erasure wait and then see it pending.
create or replace function private.orders_refuse_erased_account() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_erased timestamptz;
begin
  select d.erased_at into v_erased from app.account_deletions d where d.user_id = new.user_id for share;
  if v_erased is not null then
    raise exception using errcode = 'PT403', message = 'account_suspended', detail = 'this account is erased';
  end if;
  return new;
end
$$;
comment on function private.orders_refuse_erased_account() is
  'Trigger on app.orders: serializes a new order with an erasure of its user and refuses it once the account '
  'is erased. security definer: reads app.account_deletions, which no API role reads.';
revoke all on function private.orders_refuse_erased_account() from public;

create or replace trigger orders_before_insert_refuse_erased
  before insert on app.orders
  for each row execute function private.orders_refuse_erased_account();

create or replace function private.admin_erase_account(p_user_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
begin
  return private.erase_account(p_user_id, v_admin, now());
end
$$;
comment on function private.admin_erase_account(uuid) is
  'security definer: an admin erases an account whose cooling-off period is over.';
revoke all on function private.admin_erase_account(uuid) from public;
grant execute on function private.admin_erase_account(uuid) to authenticated;

create or replace function public.admin_erase_account(p_user_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_erase_account(p_user_id) $$;
comment on function public.admin_erase_account(uuid) is
  'Admin: erases an account whose deletion request is past its cooling-off period; audited. Returns the request '
  'with medals_forfeited. Errors: not_authenticated (PT401), admin_only (PT403), deletion_not_requested (PT404), '
  'already_erased, cooling_off, pending_orders (PT409).';
revoke all on function public.admin_erase_account(uuid) from public, anon, authenticated, service_role;
grant execute on function public.admin_erase_account(uuid) to authenticated;

-- One account that cannot be erased (a constraint, a bug, a lock timeout) must not hold back every
-- other due account: each erasure runs in its own subtransaction; a failure other than a pending
-- order is rolled back alone, written to the audit log (action user.erase_failed, with the error)
-- where the admin's audit-log queue shows it, and the run goes on. The request stays pending, so
-- the next run tries again.
create or replace function private.erase_due_accounts(p_now timestamptz) returns integer
language plpgsql
set search_path = ''
as $$
declare
  r record;
  v_n integer := 0;
  v_state text;
  v_message text;
  v_table text;
  v_constraint text;
  v_email text;
  v_name text;
begin
  for r in select x.user_id from app.account_deletions x
            where x.erased_at is null and x.cancelled_at is null and x.erase_after <= p_now
            order by x.erase_after, x.user_id loop
    begin
      perform private.erase_account(r.user_id, null, p_now);
      v_n := v_n + 1;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text,
                              v_table = table_name, v_constraint = constraint_name;
      -- An order waiting for its payment is no failure: the next run tries again.
      continue when v_state = 'PT409' and v_message = 'pending_orders';
      -- The audit log is kept for good, so it must not receive the personal values the erasure is
      -- about to remove: the error's detail (it may quote a row) is left out, and the address and
      -- display name are blanked should the message quote them.
      select u.email into v_email from auth.users u where u.id = r.user_id;
      select p.display_name into v_name from app.profiles p where p.user_id = r.user_id;
      if coalesce(v_email, '') <> '' then
        v_message := replace(v_message, v_email, '[erased]');
      end if;
      if coalesce(v_name, '') <> '' then
        v_message := replace(v_message, v_name, '[erased]');
      end if;
      perform private.append_audit(null, 'user.erase_failed', 'user', r.user_id::text,
                                   jsonb_build_object('sqlstate', v_state, 'message', v_message,
                                                      'table', nullif(v_table, ''),
                                                      'constraint', nullif(v_constraint, ''),
                                                      'job', 'erase_due_accounts'));
      raise warning 'erase_due_accounts: account % not erased (%): see the audit log', r.user_id, v_state;
    end;
  end loop;
  return v_n;
end
$$;
comment on function private.erase_due_accounts(timestamptz) is
  'Scheduled job: erases every account whose cooling-off period is over, each on its own (one waiting for a '
  'payment is retried on the next run; any other failure is audited as user.erase_failed and retried, the '
  'others are erased all the same); returns how many were erased.';
revoke all on function private.erase_due_accounts(timestamptz) from public;
