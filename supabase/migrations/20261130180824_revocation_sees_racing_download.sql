-- from sql/economy/80_refunds.sql
-- Refunds and disputes, database side. The fan asks (request_refund), an admin decides
-- (review_refund), an admin has the payment service execute it (service_begin_refund_execution
-- checks that admin and moves the refund approved -> executing exactly once, so one provider call
-- is made however many clicks arrive) and the provider's refund event completes it
-- (service_record_refund).
--
--   requested --review--> approved --begin execution--> executing --provider event--> completed
--            \--review--> rejected    ^--abort (provider call failed)--/
--
-- A provider refund event completes a requested, approved or executing refund alike.
-- The provider is authoritative: a provider refund is recorded even without a request (it then
-- completes the order's open request, if any).
--
-- On an order's FIRST recorded refund, partial or full, the order's pulls are void: every reward
-- they put in the box is revoked and the medals the order granted are clawed back through the
-- ledger as far as the fan's balance of that VTuber allows; what could not be taken back is
-- recorded on the refund row (medal_shortfall), never forced below zero.
--
-- Lock order: the order row (serialises everything about one order: sum of refunds, one open
-- request, exactly-once effects), then the fan's medal balance (private.post_medals), then the
-- audit chain.

create or replace function private.refund_json(p_refund_id uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'refund_id', r.id, 'order_id', r.order_id, 'user_id', r.user_id, 'status', r.status, 'reason', r.reason,
    'amount_jpy', r.amount_jpy, 'provider_refund_id', r.provider_refund_id, 'review_reason', r.review_reason,
    'reviewed_by', r.reviewed_by, 'reviewed_at', r.reviewed_at, 'medals_clawed_back', r.medals_clawed_back,
    'medal_shortfall', r.medal_shortfall, 'created_at', r.created_at, 'completed_at', r.completed_at)
  from app.refunds r where r.id = p_refund_id
$$;
comment on function private.refund_json(uuid) is 'security definer: a refund row as JSON.';
revoke all on function private.refund_json(uuid) from public;

-- ---------------------------------------------------------------------------------------
-- request_refund (fan)
-- ---------------------------------------------------------------------------------------
create or replace function private.request_refund(p_user uuid, p_order_id uuid, p_reason text, p_now timestamptz)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
  v_reason text := btrim(coalesce(p_reason, ''));
  v_id uuid;
begin
  if v_reason = '' or char_length(v_reason) > 500 then
    raise exception using errcode = 'PT400', message = 'invalid_refund_reason',
      detail = 'a refund request needs a reason of 1 to 500 characters';
  end if;
  select * into o from app.orders x where x.id = p_order_id and x.user_id = p_user for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  if o.status <> 'fulfilled' then
    raise exception using errcode = 'PT409', message = 'order_not_refundable',
      detail = format('only a paid and fulfilled order can be refunded; this one is %s', o.status);
  end if;
  if o.refunded_jpy >= o.amount_jpy then
    raise exception using errcode = 'PT409', message = 'order_already_refunded',
      detail = 'this order has been refunded in full';
  end if;
  if exists (select 1 from app.refunds r
              where r.order_id = o.id and r.status in ('requested', 'approved', 'executing')) then
    raise exception using errcode = 'PT409', message = 'refund_already_requested',
      detail = 'a refund request for this order is already open';
  end if;
  insert into app.refunds (order_id, user_id, reason, status, created_at)
  values (o.id, o.user_id, v_reason, 'requested', p_now)
  returning id into v_id;
  return private.refund_json(v_id);
end
$$;
comment on function private.request_refund(uuid, uuid, text, timestamptz) is
  'security definer: the refund request core (time passed in); the order row lock makes one open request exact.';
revoke all on function private.request_refund(uuid, uuid, text, timestamptz) from public;

create or replace function private.request_refund(p_order_id uuid, p_reason text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  return private.request_refund(v_uid, p_order_id, p_reason, now());
end
$$;
comment on function private.request_refund(uuid, text) is
  'security definer: the body of public.request_refund; it takes the caller from the JWT (auth.uid()), never a '
  'user id argument, and writes app.refunds, which fans cannot write.';
revoke all on function private.request_refund(uuid, text) from public, anon;
grant execute on function private.request_refund(uuid, text) to authenticated;

create or replace function public.request_refund(p_order_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$
  select private.request_refund(p_order_id, p_reason)
$$;
comment on function public.request_refund(uuid, text) is
  'Asks for a refund of one of the caller''s fulfilled orders with a reason (1-500 characters); an admin reviews '
  'it. Returns the refund {refund_id, order_id, status: requested, ...}. Errors: not_authenticated (PT401), '
  'account_suspended (PT403), invalid_refund_reason (PT400), order_not_found (PT404), order_not_refundable, '
  'order_already_refunded, refund_already_requested (PT409).';
revoke all on function public.request_refund(uuid, text) from public, anon;
grant execute on function public.request_refund(uuid, text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- review_refund (admin)
-- ---------------------------------------------------------------------------------------
create or replace function private.review_refund(
  p_actor uuid, p_refund_id uuid, p_approve boolean, p_reason text, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  r app.refunds;
  o app.orders;
  v_reason text := nullif(btrim(coalesce(p_reason, '')), '');
begin
  if p_approve is null then
    raise exception using errcode = 'PT400', message = 'invalid_decision', detail = 'p_approve is true or false';
  end if;
  if char_length(v_reason) > 1000 or (not p_approve and v_reason is null) then
    raise exception using errcode = 'PT400', message = 'invalid_reason',
      detail = 'a rejection needs a reason; a reason is at most 1000 characters';
  end if;
  select * into r from app.refunds x where x.id = p_refund_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'refund_not_found', detail = 'no such refund';
  end if;
  select * into o from app.orders x where x.id = r.order_id for update;
  select * into r from app.refunds x where x.id = p_refund_id;
  if r.status <> 'requested' then
    raise exception using errcode = 'PT409', message = 'refund_not_pending',
      detail = format('this refund is %s, not awaiting review', r.status);
  end if;
  if p_approve and o.refunded_jpy >= o.amount_jpy then
    raise exception using errcode = 'PT409', message = 'order_already_refunded',
      detail = 'this order has been refunded in full';
  end if;
  update app.refunds x
     set status = case when p_approve then 'approved' else 'rejected' end,
         amount_jpy = case when p_approve then o.amount_jpy - o.refunded_jpy else x.amount_jpy end,
         review_reason = v_reason, reviewed_by = p_actor, reviewed_at = p_now
   where x.id = r.id;
  perform private.append_audit(p_actor, case when p_approve then 'refund.approve' else 'refund.reject' end,
                               'refund', r.id::text,
                               jsonb_build_object('order_id', o.id, 'user_id', o.user_id, 'reason', v_reason,
                                                  'amount_jpy', case when p_approve
                                                                     then o.amount_jpy - o.refunded_jpy end));
  return private.refund_json(r.id);
end
$$;
comment on function private.review_refund(uuid, uuid, boolean, text, timestamptz) is
  'security definer: the admin review core (actor and time passed in), audited as refund.approve / refund.reject.';
revoke all on function private.review_refund(uuid, uuid, boolean, text, timestamptz) from public;

create or replace function private.review_refund(p_refund_id uuid, p_approve boolean, p_reason text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
begin
  return private.review_refund(v_admin, p_refund_id, p_approve, p_reason, now());
end
$$;
comment on function private.review_refund(uuid, boolean, text) is
  'security definer: the body of public.review_refund; it takes the caller from the JWT (auth.uid()), checks they '
  'are an admin, and writes app.refunds and the audit log.';
revoke all on function private.review_refund(uuid, boolean, text) from public, anon;
grant execute on function private.review_refund(uuid, boolean, text) to authenticated;

create or replace function public.review_refund(p_refund_id uuid, p_approve boolean, p_reason text) returns jsonb
language sql
set search_path = ''
as $$
  select private.review_refund(p_refund_id, p_approve, p_reason)
$$;
comment on function public.review_refund(uuid, boolean, text) is
  'Admin: approves (amount = what is left of the payment) or rejects (reason required) a requested refund; '
  'audited as refund.approve / refund.reject. The payment service then refunds approved ones at the provider. '
  'Returns the refund. Errors: not_authenticated (PT401), admin_only (PT403), invalid_decision, invalid_reason '
  '(PT400), refund_not_found (PT404), refund_not_pending, order_already_refunded (PT409).';
revoke all on function public.review_refund(uuid, boolean, text) from public, anon;
grant execute on function public.review_refund(uuid, boolean, text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- service_get_refund / service_list_approved_refunds (payment service)
-- ---------------------------------------------------------------------------------------
create or replace function public.service_get_refund(p_refund_id uuid) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v jsonb;
begin
  select private.refund_json(r.id)
         || jsonb_build_object('provider', o.provider, 'provider_payment_id', o.provider_payment_id,
                               'currency', o.currency, 'order_amount_jpy', o.amount_jpy,
                               'order_refunded_jpy', o.refunded_jpy)
    into v
    from app.refunds r join app.orders o on o.id = r.order_id
   where r.id = p_refund_id;
  if v is null then
    raise exception using errcode = 'PT404', message = 'refund_not_found', detail = 'no such refund';
  end if;
  return v;
end
$$;
comment on function public.service_get_refund(uuid) is
  'Service role: a refund with what the payment service needs to execute it at the provider: {refund_id, '
  'order_id, status, amount_jpy, provider, provider_payment_id, currency, order_amount_jpy, order_refunded_jpy, '
  '...}. Errors: refund_not_found (PT404).';
revoke all on function public.service_get_refund(uuid) from public, anon, authenticated;
grant execute on function public.service_get_refund(uuid) to service_role;
grant execute on function private.refund_json(uuid) to service_role;

-- ---------------------------------------------------------------------------------------
-- service_begin_refund_execution / service_abort_refund_execution (payment service, for an admin)
-- ---------------------------------------------------------------------------------------
-- The payment service authenticates the admin's access token and passes the user id; the decision
-- "is this an active admin, and may this refund go to the provider now" is made here, once, under
-- the order row lock, so a suspended admin is refused and two admins clicking at the same moment
-- cause exactly one provider call (the second finds the refund executing).
create or replace function private.begin_refund_execution(p_actor uuid, p_refund_id uuid, p_now timestamptz)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  r app.refunds;
  o app.orders;
begin
  if p_actor is null or not exists (select 1 from app.user_roles x join app.profiles p on p.user_id = x.user_id
                                     where x.user_id = p_actor and x.role = 'admin' and p.status = 'active') then
    raise exception using errcode = 'PT403', message = 'admin_only',
      detail = 'only an active admin can execute a refund';
  end if;
  select * into r from app.refunds x where x.id = p_refund_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'refund_not_found', detail = 'no such refund';
  end if;
  -- Lock order (as everywhere for refunds): the order row first, then read the refund again.
  select * into o from app.orders x where x.id = r.order_id for update;
  select * into r from app.refunds x where x.id = p_refund_id;
  if r.status <> 'approved' then
    raise exception using errcode = 'PT409', message = 'refund_not_approved',
      detail = format('only an approved refund can be executed; this one is %s', r.status);
  end if;
  if o.provider not in ('stripe', 'komoju') or o.provider_payment_id is null then
    raise exception using errcode = 'PT409', message = 'refund_not_executable',
      detail = 'the order has no provider payment to refund';
  end if;
  update app.refunds x set status = 'executing' where x.id = r.id;
  perform private.append_audit(p_actor, 'refund.execute', 'refund', r.id::text,
                               jsonb_build_object('order_id', o.id, 'user_id', o.user_id, 'amount_jpy', r.amount_jpy,
                                                  'provider', o.provider));
  return private.refund_json(r.id)
         || jsonb_build_object('provider', o.provider, 'provider_payment_id', o.provider_payment_id,
                               'currency', o.currency, 'order_amount_jpy', o.amount_jpy,
                               'order_refunded_jpy', o.refunded_jpy);
end
$$;
comment on function private.begin_refund_execution(uuid, uuid, timestamptz) is
  'security definer: the refund execution core (actor and time passed in): active admin, approved -> executing '
  'once under the order row lock, audited as refund.execute.';
revoke all on function private.begin_refund_execution(uuid, uuid, timestamptz) from public;

create or replace function private.service_begin_refund_execution(p_refund_id uuid, p_user_id uuid)
returns jsonb
language sql security definer
set search_path = ''
as $$
  select private.begin_refund_execution(p_user_id, p_refund_id, now())
$$;
comment on function private.service_begin_refund_execution(uuid, uuid) is
  'security definer: the body of public.service_begin_refund_execution (service role only); reads roles and '
  'profiles and writes refunds and the audit log.';
revoke all on function private.service_begin_refund_execution(uuid, uuid) from public, anon, authenticated;
grant execute on function private.service_begin_refund_execution(uuid, uuid) to service_role;

create or replace function public.service_begin_refund_execution(p_refund_id uuid, p_user_id uuid)
returns jsonb
language sql
set search_path = ''
as $$
  select private.service_begin_refund_execution(p_refund_id, p_user_id)
$$;
comment on function public.service_begin_refund_execution(uuid, uuid) is
  'Service role, when an admin (p_user_id, authenticated by the service) asks to execute a refund: checks they '
  'are an active admin and moves the approved refund to executing exactly once (audited as refund.execute); only '
  'the caller that gets a result asks the provider. Returns the refund with {provider, provider_payment_id, '
  'currency, order_amount_jpy, order_refunded_jpy}. Errors: admin_only (PT403), refund_not_found (PT404), '
  'refund_not_approved, refund_not_executable (PT409).';
revoke all on function public.service_begin_refund_execution(uuid, uuid) from public, anon, authenticated;
grant execute on function public.service_begin_refund_execution(uuid, uuid) to service_role;

create or replace function private.service_abort_refund_execution(p_refund_id uuid, p_error text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  r app.refunds;
begin
  select * into r from app.refunds x where x.id = p_refund_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'refund_not_found', detail = 'no such refund';
  end if;
  perform 1 from app.orders x where x.id = r.order_id for update;
  -- Only an execution still waiting goes back: a provider event may have completed it meanwhile.
  update app.refunds x set status = 'approved' where x.id = r.id and x.status = 'executing';
  if found then
    perform private.append_audit(null, 'refund.execute_failed', 'refund', r.id::text,
                                 jsonb_build_object('order_id', r.order_id, 'error', left(p_error, 500)));
  end if;
  return private.refund_json(r.id);
end
$$;
comment on function private.service_abort_refund_execution(uuid, text) is
  'security definer: the body of public.service_abort_refund_execution (service role only); writes refunds and '
  'the audit log.';
revoke all on function private.service_abort_refund_execution(uuid, text) from public, anon, authenticated;
grant execute on function private.service_abort_refund_execution(uuid, text) to service_role;

create or replace function public.service_abort_refund_execution(p_refund_id uuid, p_error text) returns jsonb
language sql
set search_path = ''
as $$
  select private.service_abort_refund_execution(p_refund_id, p_error)
$$;
comment on function public.service_abort_refund_execution(uuid, text) is
  'Service role, when the provider refused or could not be reached: puts an executing refund back to approved so '
  'an admin can retry (the provider idempotency key per refund makes a retry safe), audited as '
  'refund.execute_failed. Returns the refund. Errors: refund_not_found (PT404).';
revoke all on function public.service_abort_refund_execution(uuid, text) from public, anon, authenticated;
grant execute on function public.service_abort_refund_execution(uuid, text) to service_role;

-- ---------------------------------------------------------------------------------------
-- service_record_refund (payment service, on the provider's refund event)
-- ---------------------------------------------------------------------------------------
create or replace function private.record_refund(
  p_order_id uuid, p_provider_refund_id text, p_amount integer, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
  r app.refunds;
  v_first boolean;
  v_revoked integer := 0;
  v_balance bigint;
  v_claw bigint := 0;
  v_short bigint := 0;
  v_refund_id uuid;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception using errcode = 'PT400', message = 'invalid_amount', detail = 'p_amount is a positive number of yen';
  end if;
  if p_provider_refund_id is null or char_length(p_provider_refund_id) not between 1 and 255 then
    raise exception using errcode = 'PT400', message = 'invalid_provider_refund_id',
      detail = 'p_provider_refund_id is 1 to 255 characters';
  end if;
  select * into o from app.orders x where x.id = p_order_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  -- Replays of one provider refund: the same answer, no second effect.
  select * into r from app.refunds x where x.provider_refund_id = p_provider_refund_id;
  if found then
    if r.order_id <> o.id or r.amount_jpy <> p_amount then
      raise exception using errcode = 'PT409', message = 'provider_refund_id_reused',
        detail = 'this provider refund id was recorded for another order or amount';
    end if;
    return private.refund_json(r.id)
           || jsonb_build_object('recorded', false, 'order_refunded_jpy', o.refunded_jpy,
                                 'fully_refunded', o.refunded_jpy >= o.amount_jpy, 'rewards_revoked', 0);
  end if;
  if o.status <> 'fulfilled' then
    raise exception using errcode = 'PT409', message = 'order_not_refundable',
      detail = format('only a fulfilled order can be refunded here; this one is %s', o.status);
  end if;
  if o.refunded_jpy + p_amount > o.amount_jpy then
    raise exception using errcode = 'PT409', message = 'refund_exceeds_payment',
      detail = format('the order was paid ¥%s and ¥%s is already refunded: at most ¥%s more', o.amount_jpy,
                      o.refunded_jpy, o.amount_jpy - o.refunded_jpy);
  end if;
  v_first := o.refunded_jpy = 0;
  if v_first then
    -- Never stamp a revocation before a download it did not stop: a download that started after
    -- this transaction (so p_now precedes its created_at) may have committed under the reward's
    -- row lock before this update took it. The revocation happened after that download.
    -- The rows are locked first, in a statement of their own: an update that waits for a row lock
    -- re-reads the row but keeps its own snapshot for the subquery below, so it would not see the
    -- download that held the lock. The update, a later statement, reads with a snapshot taken
    -- after every such download committed.
    perform 1 from app.user_rewards u
     where u.pull_id in (select p.id from app.pulls p where p.order_id = o.id) and u.revoked_at is null
     order by u.id for update of u;
    update app.user_rewards u
       set revoked_at = greatest(p_now, (select max(d.created_at) from app.downloads d where d.user_reward_id = u.id))
     where u.pull_id in (select p.id from app.pulls p where p.order_id = o.id) and u.revoked_at is null;
    get diagnostics v_revoked = row_count;
    perform private.lock_medal_balances(array[o.user_id], array[o.vtuber_id]);
    select b.balance into v_balance from app.medal_balances b
     where b.user_id = o.user_id and b.vtuber_id = o.vtuber_id;
    v_claw := least(coalesce(v_balance, 0), o.medals);
    v_short := o.medals - v_claw;
  end if;
  -- Complete the order's open request if there is one, else record the provider's own refund.
  select * into r from app.refunds x where x.order_id = o.id and x.status in ('requested', 'approved', 'executing')
   order by x.created_at limit 1;
  if found then
    update app.refunds x set status = 'completed', amount_jpy = p_amount, provider_refund_id = p_provider_refund_id,
                             medals_clawed_back = v_claw, medal_shortfall = v_short, completed_at = p_now
     where x.id = r.id;
    v_refund_id := r.id;
  else
    insert into app.refunds (order_id, user_id, reason, status, amount_jpy, provider_refund_id, medals_clawed_back,
                             medal_shortfall, created_at, completed_at)
    values (o.id, o.user_id, null, 'completed', p_amount, p_provider_refund_id, v_claw, v_short, p_now, p_now)
    returning id into v_refund_id;
  end if;
  if v_claw > 0 then
    perform private.post_medals(o.user_id, o.vtuber_id, -v_claw, 'refund_clawback', o.id, null,
                                'refund ' || v_refund_id::text, p_now);
  end if;
  update app.orders x set refunded_jpy = x.refunded_jpy + p_amount where x.id = o.id;
  perform private.append_audit(null, 'refund.record', 'refund', v_refund_id::text,
                               jsonb_build_object('order_id', o.id, 'user_id', o.user_id, 'amount_jpy', p_amount,
                                                  'provider_refund_id', p_provider_refund_id,
                                                  'rewards_revoked', v_revoked, 'medals_clawed_back', v_claw,
                                                  'medal_shortfall', v_short));
  return private.refund_json(v_refund_id)
         || jsonb_build_object('recorded', true, 'order_refunded_jpy', o.refunded_jpy + p_amount,
                               'fully_refunded', o.refunded_jpy + p_amount >= o.amount_jpy,
                               'rewards_revoked', v_revoked);
exception when unique_violation then
  -- The same provider refund id recorded concurrently for another order.
  raise exception using errcode = 'PT409', message = 'provider_refund_id_reused',
    detail = 'this provider refund id was recorded for another order or amount';
end
$$;
comment on function private.record_refund(uuid, text, integer, timestamptz) is
  'security definer: the provider refund core (time passed in): idempotent per provider refund id, sum <= paid, '
  'first refund revokes the order''s rewards and claws back its medals as far as the balance allows.';
revoke all on function private.record_refund(uuid, text, integer, timestamptz) from public;

create or replace function private.service_record_refund(p_order_id uuid, p_provider_refund_id text, p_amount integer)
returns jsonb
language sql security definer
set search_path = ''
as $$
  select private.record_refund(p_order_id, p_provider_refund_id, p_amount, now())
$$;
comment on function private.service_record_refund(uuid, text, integer) is
  'security definer: the body of public.service_record_refund (service role only); writes refunds, rewards and '
  'the medal ledger.';
revoke all on function private.service_record_refund(uuid, text, integer) from public, anon, authenticated;
grant execute on function private.service_record_refund(uuid, text, integer) to service_role;

create or replace function public.service_record_refund(p_order_id uuid, p_provider_refund_id text, p_amount integer)
returns jsonb
language sql
set search_path = ''
as $$
  select private.service_record_refund(p_order_id, p_provider_refund_id, p_amount)
$$;
comment on function public.service_record_refund(uuid, text, integer) is
  'Service role, on the provider''s refund event: records a refund of p_amount yen once per provider refund id '
  '(a replay returns recorded: false). The sum of refunds never exceeds the payment. The first refund of an '
  'order revokes its rewards and claws back its medals as far as the balance allows (medal_shortfall records '
  'the rest); it completes the order''s open request if any; audited as refund.record. Returns the refund with '
  '{recorded, order_refunded_jpy, fully_refunded, rewards_revoked}. Errors: invalid_amount, '
  'invalid_provider_refund_id (PT400), order_not_found (PT404), order_not_refundable, refund_exceeds_payment, '
  'provider_refund_id_reused (PT409).';
revoke all on function public.service_record_refund(uuid, text, integer) from public, anon, authenticated;
grant execute on function public.service_record_refund(uuid, text, integer) to service_role;

-- ---------------------------------------------------------------------------------------
-- service_record_dispute (payment service, on the provider's dispute events)
-- ---------------------------------------------------------------------------------------
revoke all on app.disputes from public, anon, authenticated, service_role;
grant select on app.disputes to authenticated, service_role;
drop policy if exists "Admins can read every dispute" on app.disputes;
create policy "Admins can read every dispute" on app.disputes
  for select to authenticated using ((select private.is_admin()));

create or replace function private.record_dispute(
  p_order_id uuid, p_provider_dispute_id text, p_status text, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
  d app.disputes;
  v_status text := lower(btrim(coalesce(p_status, '')));
  v_created boolean := false;
  v_changed boolean := false;
begin
  if p_provider_dispute_id is null or char_length(p_provider_dispute_id) not between 1 and 255 then
    raise exception using errcode = 'PT400', message = 'invalid_provider_dispute_id',
      detail = 'p_provider_dispute_id is 1 to 255 characters';
  end if;
  if v_status !~ '^[a-z][a-z_]{0,39}$' then
    raise exception using errcode = 'PT400', message = 'invalid_dispute_status',
      detail = 'p_status is the provider''s status word, e.g. needs_response, under_review, won, lost';
  end if;
  select * into o from app.orders x where x.id = p_order_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  select * into d from app.disputes x where x.provider_dispute_id = p_provider_dispute_id for update;
  if found and d.order_id <> o.id then
    raise exception using errcode = 'PT409', message = 'provider_dispute_id_reused',
      detail = 'this provider dispute id was recorded for another order';
  end if;
  if not found then
    insert into app.disputes (provider_dispute_id, order_id, user_id, status, created_at, updated_at)
    values (p_provider_dispute_id, o.id, o.user_id, v_status, p_now, p_now);
    v_created := true;
  elsif d.status <> v_status then
    update app.disputes x set status = v_status, updated_at = p_now where x.provider_dispute_id = d.provider_dispute_id;
    v_changed := true;
  end if;
  if not o.disputed then
    update app.orders x set disputed = true where x.id = o.id;
  end if;
  update app.profiles p set flagged = true where p.user_id = o.user_id and not p.flagged;
  if v_created or v_changed then
    perform private.append_audit(null, 'dispute.record', 'order', o.id::text,
                                 jsonb_build_object('provider_dispute_id', p_provider_dispute_id, 'status', v_status,
                                                    'previous_status', d.status, 'user_id', o.user_id));
  end if;
  return jsonb_build_object('provider_dispute_id', p_provider_dispute_id, 'order_id', o.id, 'user_id', o.user_id,
                            'status', v_status, 'created', v_created, 'changed', v_changed,
                            'order_disputed', true, 'user_flagged', true);
exception when unique_violation then
  raise exception using errcode = 'PT409', message = 'provider_dispute_id_reused',
    detail = 'this provider dispute id was recorded concurrently for another order';
end
$$;
comment on function private.record_dispute(uuid, text, text, timestamptz) is
  'security definer: the dispute core (time passed in): records or updates a provider dispute and flags order and fan.';
revoke all on function private.record_dispute(uuid, text, text, timestamptz) from public;

create or replace function private.service_record_dispute(p_order_id uuid, p_provider_dispute_id text, p_status text)
returns jsonb
language sql security definer
set search_path = ''
as $$
  select private.record_dispute(p_order_id, p_provider_dispute_id, p_status, now())
$$;
comment on function private.service_record_dispute(uuid, text, text) is
  'security definer: the body of public.service_record_dispute (service role only); writes disputes, orders and '
  'profiles.';
revoke all on function private.service_record_dispute(uuid, text, text) from public, anon, authenticated;
grant execute on function private.service_record_dispute(uuid, text, text) to service_role;

create or replace function public.service_record_dispute(p_order_id uuid, p_provider_dispute_id text, p_status text)
returns jsonb
language sql
set search_path = ''
as $$
  select private.service_record_dispute(p_order_id, p_provider_dispute_id, p_status)
$$;
comment on function public.service_record_dispute(uuid, text, text) is
  'Service role, on the provider''s dispute (chargeback) events: records the dispute and its latest status once per '
  'provider dispute id, flags the order (disputed) and the fan (profiles.flagged); audited as dispute.record. '
  'Returns {provider_dispute_id, order_id, user_id, status, created, changed, order_disputed, user_flagged}. '
  'Errors: invalid_provider_dispute_id, invalid_dispute_status (PT400), order_not_found (PT404), '
  'provider_dispute_id_reused (PT409).';
revoke all on function public.service_record_dispute(uuid, text, text) from public, anon, authenticated;
grant execute on function public.service_record_dispute(uuid, text, text) to service_role;
