-- Issue 7: a medal credit (delta > 0) is one upsert under the row lock plus the ledger entry.

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
    insert into app.medal_ledger (user_id, vtuber_id, delta, reason, previous_balance, new_balance, order_id,
                                  exchange_id, note, created_at)
    values (p_user, p_vtuber, p_delta, p_reason, v_new - p_delta, v_new, p_order, p_exchange, p_note, p_now);
    return v_new;
  end if;
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
