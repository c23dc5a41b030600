-- Medals: the one writer of the ledger (pgledger style: lock, apply, entry with previous and new
-- balance), the fan's reads, and the admin adjustment.

-- Locks several (fan, VTuber) balances in one sorted order, so transactions touching more than
-- one account cannot deadlock. Missing balances are created at zero first.
create or replace function private.lock_medal_balances(p_users uuid[], p_vtubers uuid[]) returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into app.medal_balances (user_id, vtuber_id)
  select u, v from unnest(p_users, p_vtubers) as k (u, v)
  order by u, v
  on conflict (user_id, vtuber_id) do nothing;
  perform 1 from app.medal_balances b
   join unnest(p_users, p_vtubers) as k (u, v) on b.user_id = k.u and b.vtuber_id = k.v
   order by b.user_id, b.vtuber_id
   for update of b;
end
$$;
comment on function private.lock_medal_balances(uuid[], uuid[]) is
  'security definer: creates missing balances and locks them in (user_id, vtuber_id) order.';
revoke all on function private.lock_medal_balances(uuid[], uuid[]) from public;

-- The one writer: appends a ledger entry and moves the balance in the same transaction.
create or replace function private.post_medals(
  p_user uuid, p_vtuber uuid, p_delta bigint, p_reason text, p_order uuid, p_exchange uuid, p_note text,
  p_now timestamptz
) returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  v_prev bigint;
  v_new bigint;
begin
  if p_delta is null or p_delta = 0 then
    raise exception using errcode = 'PT400', message = 'invalid_delta', detail = 'a medal posting is never zero';
  end if;
  if p_delta > 0 then
    -- A credit can never go negative: create-or-add under the row lock in one statement.
    insert into app.medal_balances as b (user_id, vtuber_id, balance, updated_at)
    values (p_user, p_vtuber, p_delta, p_now)
    on conflict (user_id, vtuber_id) do update set balance = b.balance + excluded.balance, updated_at = p_now
    returning b.balance into v_new;
    v_prev := v_new - p_delta;
  else
    insert into app.medal_balances (user_id, vtuber_id, updated_at) values (p_user, p_vtuber, p_now)
    on conflict (user_id, vtuber_id) do nothing;
    select b.balance into v_prev from app.medal_balances b
     where b.user_id = p_user and b.vtuber_id = p_vtuber
     for update;
    v_new := v_prev + p_delta;
    if v_new < 0 then
      raise exception using errcode = 'PT409', message = 'insufficient_medals',
        detail = format('this needs %s medals; the balance is %s', -p_delta, v_prev);
    end if;
    update app.medal_balances b set balance = v_new, updated_at = p_now
     where b.user_id = p_user and b.vtuber_id = p_vtuber;
  end if;
  insert into app.medal_ledger (user_id, vtuber_id, delta, reason, previous_balance, new_balance, order_id,
                                exchange_id, note, created_at)
  values (p_user, p_vtuber, p_delta, p_reason, v_prev, v_new, p_order, p_exchange, p_note, p_now);
  return v_new;
end
$$;
comment on function private.post_medals(uuid, uuid, bigint, text, uuid, uuid, text, timestamptz) is
  'security definer: the only writer of app.medal_balances and app.medal_ledger; locks the balance row, '
  'refuses a negative result (insufficient_medals, PT409), records previous and new balance; returns the new one.';
revoke all on function private.post_medals(uuid, uuid, bigint, text, uuid, uuid, text, timestamptz) from public;

create or replace function private.get_medal_balances() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  return coalesce((
    select jsonb_agg(jsonb_build_object('vtuber_id', b.vtuber_id, 'vtuber_name', v.name, 'balance', b.balance,
                                        'updated_at', b.updated_at) order by v.name, b.vtuber_id)
      from app.medal_balances b join app.vtubers v on v.id = b.vtuber_id
     where b.user_id = v_uid), '[]'::jsonb);
end
$$;
comment on function private.get_medal_balances() is
  'security definer: the body of public.get_medal_balances; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.get_medal_balances() from public, anon;
grant execute on function private.get_medal_balances() to authenticated;

create or replace function public.get_medal_balances() returns jsonb
language sql stable
set search_path = ''
as $$
  select private.get_medal_balances()
$$;
comment on function public.get_medal_balances() is
  'The caller''s medal balance per VTuber: [{vtuber_id, vtuber_name, balance, updated_at}]. Errors: not_authenticated (PT401), account_suspended (PT403).';
revoke all on function public.get_medal_balances() from public, anon;
grant execute on function public.get_medal_balances() to authenticated;

create or replace function private.list_medal_ledger(
  p_vtuber_id uuid default null, p_limit integer default 50, p_before_id bigint default null
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_limit is null or p_limit not between 1 and 200 then
    raise exception using errcode = 'PT400', message = 'invalid_pagination', detail = 'p_limit is 1..200';
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object('id', l.id, 'vtuber_id', l.vtuber_id, 'delta', l.delta, 'reason', l.reason,
                                        'previous_balance', l.previous_balance, 'new_balance', l.new_balance,
                                        'order_id', l.order_id, 'exchange_id', l.exchange_id, 'note', l.note,
                                        'created_at', l.created_at) order by l.id desc)
      from (select * from app.medal_ledger l
             where l.user_id = v_uid and (p_vtuber_id is null or l.vtuber_id = p_vtuber_id)
               and (p_before_id is null or l.id < p_before_id)
             order by l.id desc limit p_limit) l), '[]'::jsonb);
end
$$;
comment on function private.list_medal_ledger(uuid, integer, bigint) is
  'security definer: the body of public.list_medal_ledger; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.list_medal_ledger(uuid, integer, bigint) from public, anon;
grant execute on function private.list_medal_ledger(uuid, integer, bigint) to authenticated;

create or replace function public.list_medal_ledger(
  p_vtuber_id uuid default null, p_limit integer default 50, p_before_id bigint default null
) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.list_medal_ledger(p_vtuber_id, p_limit, p_before_id)
$$;
comment on function public.list_medal_ledger(uuid, integer, bigint) is
  'The caller''s medal ledger, newest first (optionally one VTuber''s), keyset-paginated by p_before_id. '
  'Errors: not_authenticated (PT401), '
  'account_suspended (PT403), invalid_pagination (PT400).';
revoke all on function public.list_medal_ledger(uuid, integer, bigint) from public, anon;
grant execute on function public.list_medal_ledger(uuid, integer, bigint) to authenticated;

create or replace function private.admin_adjust_medals(
  p_actor uuid, p_user_id uuid, p_vtuber_id uuid, p_delta bigint, p_reason text, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_new bigint;
  v_reason text := btrim(coalesce(p_reason, ''));
begin
  if v_reason = '' or char_length(v_reason) > 500 then
    raise exception using errcode = 'PT400', message = 'reason_required',
      detail = 'a medal adjustment needs a written reason (1 to 500 characters)';
  end if;
  if p_delta is null or p_delta = 0 or abs(p_delta) > 1000000000 then
    raise exception using errcode = 'PT400', message = 'invalid_delta',
      detail = 'p_delta is a non-zero number of medals, at most 1000000000 either way';
  end if;
  if not exists (select 1 from app.profiles p where p.user_id = p_user_id) then
    raise exception using errcode = 'PT404', message = 'user_not_found', detail = 'no such user';
  end if;
  if not exists (select 1 from app.vtubers v where v.id = p_vtuber_id) then
    raise exception using errcode = 'PT404', message = 'vtuber_not_found', detail = 'no such VTuber';
  end if;
  v_new := private.post_medals(p_user_id, p_vtuber_id, p_delta, 'admin_adjustment', null, null, v_reason, p_now);
  perform private.append_audit(p_actor, 'medals.adjust', 'medal_balance', p_user_id::text || ':' || p_vtuber_id::text,
                               jsonb_build_object('user_id', p_user_id, 'vtuber_id', p_vtuber_id, 'delta', p_delta,
                                                  'reason', v_reason, 'new_balance', v_new));
  return jsonb_build_object('user_id', p_user_id, 'vtuber_id', p_vtuber_id, 'delta', p_delta, 'balance', v_new);
end
$$;
comment on function private.admin_adjust_medals(uuid, uuid, uuid, bigint, text, timestamptz) is
  'security definer: an admin adjustment through the ledger writer, audited.';
revoke all on function private.admin_adjust_medals(uuid, uuid, uuid, bigint, text, timestamptz) from public;

create or replace function private.admin_adjust_medals(
  p_user_id uuid, p_vtuber_id uuid, p_delta bigint, p_reason text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
begin
  return private.admin_adjust_medals(v_admin, p_user_id, p_vtuber_id, p_delta, p_reason, now());
end
$$;
comment on function private.admin_adjust_medals(uuid, uuid, bigint, text) is
  'security definer: the body of public.admin_adjust_medals; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.admin_adjust_medals(uuid, uuid, bigint, text) from public, anon;
grant execute on function private.admin_adjust_medals(uuid, uuid, bigint, text) to authenticated;

create or replace function public.admin_adjust_medals(
  p_user_id uuid, p_vtuber_id uuid, p_delta bigint, p_reason text
) returns jsonb
language sql
set search_path = ''
as $$
  select private.admin_adjust_medals(p_user_id, p_vtuber_id, p_delta, p_reason)
$$;
comment on function public.admin_adjust_medals(uuid, uuid, bigint, text) is
  'Admin: adds (or removes) medals of a fan for a VTuber with a written reason, through the ledger; audited as '
  'medals.adjust. Returns {user_id, vtuber_id, delta, balance}. Errors: '
  'not_authenticated (PT401), admin_only (PT403), reason_required, invalid_delta (PT400), user_not_found, '
  'vtuber_not_found (PT404), insufficient_medals (PT409).';
revoke all on function public.admin_adjust_medals(uuid, uuid, bigint, text) from public, anon;
grant execute on function public.admin_adjust_medals(uuid, uuid, bigint, text) to authenticated;
