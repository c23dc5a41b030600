-- from sql/payments/10_inbox.sql
-- The payments inbox, database side. The payment service verifies a provider's signature, then
-- makes ONE call: service_record_payment_event(provider, event id, type, payload). Everything
-- else happens here, in that call's transaction:
--
--   1. the event's key (provider, event id) is locked (a transaction-level advisory lock: ten
--      deliveries at once queue on it); a redelivery finds the event's row in app.payment_events
--      and changes nothing;
--   2. the event is normalised (kind, order, payment ids, amount, cumulative refunds, dispute);
--   3. the order row is locked (it serialises every event of one order, whatever their order of
--      arrival), then the order's payment row (app.payments) for that provider;
--   4. the forward-only state machine acts through the economy's cores, at this call's time
--      (p_now) -- the private functions the service_* wrappers call, without their frames:
--        paid      -> fulfill_order (amount/currency mismatch: flagged, not fulfilled)
--        refund    -> record_refund for the part of the provider's cumulative refunded
--                     amount not yet applied; seen before the payment it waits on the payment
--                     row and is applied right after the fulfilment (same final state as in order)
--        dispute   -> record_dispute
--        failed / canceled / expired -> fail_order, only from pending
--        authorized (KOMOJU konbini/bank: awaiting payment) -> the order waits until the deadline
--        anything else -> recorded and acknowledged (outcome ignored)
--   5. the event row is inserted with its outcome (one write: the key's lock, held to the end of
--      the transaction, is what keeps a concurrent delivery of the same event out meanwhile);
--      the answer says what happened.
--
-- Lock order: the inbox key, the order row, the payment row, then whatever the economy
-- functions take after the order row (rate tables, seeds, stock shards, medal balances).

revoke all on app.payment_events from public, anon, authenticated, service_role;
revoke all on app.payments from public, anon, authenticated, service_role;
grant select on app.payment_events to authenticated;
grant select on app.payments to authenticated;
drop policy if exists "Admins can read every payment event" on app.payment_events;
create policy "Admins can read every payment event" on app.payment_events
  for select to authenticated using ((select private.is_admin()));
drop policy if exists "Admins can read every payment" on app.payments;
create policy "Admins can read every payment" on app.payments
  for select to authenticated using ((select private.is_admin()));

-- ---------------------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------------------
create or replace function private.jsonb_int(p_value jsonb) returns integer
language sql immutable
set search_path = ''
as $$
  select case when jsonb_typeof(p_value) = 'number' and (p_value::text) ~ '^-?[0-9]{1,9}$'
              then (p_value::text)::integer end
$$;
comment on function private.jsonb_int(jsonb) is 'A JSON number that is an integer as integer, else null.';
revoke all on function private.jsonb_int(jsonb) from public;

create or replace function private.payment_json(p_order_id uuid, p_provider text) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object('order_id', p.order_id, 'provider', p.provider, 'payment_ref', p.payment_ref,
                            'provider_payment_id', p.provider_payment_id, 'status', p.status,
                            'amount_jpy', p.amount_jpy, 'currency', p.currency, 'refunded_jpy', p.refunded_jpy,
                            'refunds_applied_jpy', p.refunds_applied_jpy, 'disputed', p.disputed,
                            'flagged', p.flagged, 'flag_reason', p.flag_reason, 'updated_at', p.updated_at)
    from app.payments p where p.order_id = p_order_id and p.provider = p_provider
$$;
comment on function private.payment_json(uuid, text) is 'security definer: one payment row as JSON.';
revoke all on function private.payment_json(uuid, text) from public;

-- Reads the provider's event into one shape:
-- {kind, order_ref, payment_ref, provider_payment_id, amount, currency, refunded, dispute_id,
--  dispute_status, deadline}. kind is paid | authorized | failed | canceled | expired | refund |
-- dispute | ignored.
create or replace function private.normalize_payment_event(p_provider text, p_type text, p_payload jsonb)
returns jsonb
language plpgsql immutable
set search_path = ''
as $$
declare
  o jsonb;
  v_kind text;
begin
  if p_provider = 'stripe' then
    o := coalesce(p_payload -> 'data' -> 'object', '{}'::jsonb);
    v_kind := case p_type
                when 'payment_intent.succeeded' then 'paid'
                when 'payment_intent.payment_failed' then 'failed'
                when 'payment_intent.canceled' then 'canceled'
                when 'charge.refunded' then 'refund'
                when 'charge.dispute.created' then 'dispute'
                when 'charge.dispute.updated' then 'dispute'
                when 'charge.dispute.closed' then 'dispute'
                else 'ignored' end;
    if v_kind in ('paid', 'failed', 'canceled') then
      return jsonb_build_object(
        'kind', v_kind, 'order_ref', o -> 'metadata' ->> 'order_id', 'payment_ref', o ->> 'id',
        'provider_payment_id', o ->> 'id',
        'amount', coalesce(private.jsonb_int(o -> 'amount_received'), private.jsonb_int(o -> 'amount')),
        'currency', upper(o ->> 'currency'));
    elsif v_kind = 'refund' then
      return jsonb_build_object(
        'kind', v_kind, 'order_ref', o -> 'metadata' ->> 'order_id', 'provider_payment_id', o ->> 'payment_intent',
        'refunded', private.jsonb_int(o -> 'amount_refunded'), 'currency', upper(o ->> 'currency'));
    elsif v_kind = 'dispute' then
      return jsonb_build_object(
        'kind', v_kind, 'order_ref', o -> 'metadata' ->> 'order_id', 'provider_payment_id', o ->> 'payment_intent',
        'dispute_id', o ->> 'id', 'dispute_status', o ->> 'status');
    end if;
  elsif p_provider = 'komoju' then
    o := coalesce(p_payload -> 'data', '{}'::jsonb);
    v_kind := case p_type
                when 'payment.captured' then 'paid'
                when 'payment.authorized' then 'authorized'
                when 'payment.expired' then 'expired'
                when 'payment.cancelled' then 'canceled'
                when 'payment.failed' then 'failed'
                when 'payment.refund.created' then 'refund'
                when 'payment.refunded' then 'refund'
                else 'ignored' end;
    if v_kind <> 'ignored' then
      return jsonb_build_object(
        'kind', v_kind,
        'order_ref', coalesce(o -> 'metadata' ->> 'order_id', o ->> 'external_order_num'),
        'payment_ref', o ->> 'session', 'provider_payment_id', o ->> 'id',
        'amount', private.jsonb_int(o -> 'amount'), 'currency', upper(o ->> 'currency'),
        'refunded', case when v_kind = 'refund' then coalesce(
                      private.jsonb_int(o -> 'amount_refunded'),
                      (select sum(private.jsonb_int(r -> 'amount'))::integer
                         from jsonb_array_elements(case when jsonb_typeof(o -> 'refunds') = 'array'
                                                        then o -> 'refunds' else '[]'::jsonb end) r),
                      case when p_type = 'payment.refunded' then private.jsonb_int(o -> 'amount') end) end,
        'deadline', o ->> 'payment_deadline');
    end if;
  end if;
  return jsonb_build_object('kind', 'ignored');
end
$$;
comment on function private.normalize_payment_event(text, text, jsonb) is
  'A Stripe or KOMOJU event as {kind, order_ref, payment_ref, provider_payment_id, amount, currency, refunded, '
  'dispute_id, dispute_status, deadline}.';
revoke all on function private.normalize_payment_event(text, text, jsonb) from public;

create or replace function private.flag_payment(p_order_id uuid, p_provider text, p_reason text, p_detail text,
                                                p_now timestamptz)
returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  update app.payments p set flagged = true, flag_reason = p_reason, updated_at = p_now
   where p.order_id = p_order_id and p.provider = p_provider;
  perform private.append_audit(null, 'payment.flag', 'order', p_order_id::text,
                               jsonb_build_object('provider', p_provider, 'reason', p_reason, 'detail', p_detail));
end
$$;
comment on function private.flag_payment(uuid, text, text, text, timestamptz) is
  'security definer: marks a payment for a human (amount mismatch, duplicate payment, ...) and audits it.';
revoke all on function private.flag_payment(uuid, text, text, text, timestamptz) from public;

-- Applies the part of the provider's cumulative refund not yet applied to a paid order.
-- Returns the outcome word.
create or replace function private.apply_payment_refunds(p_order_id uuid, p_provider text, p_now timestamptz)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  p app.payments;
  o app.orders;
  v_delta integer;
  v_msg text;
  v_detail text;
begin
  select * into p from app.payments x where x.order_id = p_order_id and x.provider = p_provider for update;
  select * into o from app.orders x where x.id = p_order_id;
  v_delta := p.refunded_jpy - p.refunds_applied_jpy;
  if v_delta <= 0 then
    return 'refund_already_recorded';
  end if;
  if o.status <> 'fulfilled' or o.provider_payment_id is distinct from p.provider_payment_id then
    -- Not the payment that fulfilled the order (a flagged one): the money goes back, nothing to undo.
    update app.payments x set refunds_applied_jpy = x.refunded_jpy, updated_at = p_now,
                              status = case when x.status in ('paid', 'partially_refunded')
                                            then case when x.refunded_jpy >= coalesce(x.amount_jpy, 0) then 'refunded'
                                                      else 'partially_refunded' end
                                            else x.status end
     where x.order_id = p.order_id and x.provider = p.provider;
    return 'refund_of_unfulfilled_payment';
  end if;
  begin
    perform private.record_refund(
      o.id, format('%s:%s:refunded_to:%s', p.provider, p.provider_payment_id, p.refunded_jpy), v_delta, p_now);
  exception when sqlstate 'PT409' or sqlstate 'PT400' then
    get stacked diagnostics v_msg = message_text, v_detail = pg_exception_detail;
    perform private.flag_payment(o.id, p.provider, v_msg, v_detail, p_now);
    return 'flagged_' || v_msg;
  end;
  update app.payments x
     set refunds_applied_jpy = x.refunded_jpy, updated_at = p_now,
         status = case when x.refunded_jpy >= o.amount_jpy then 'refunded' else 'partially_refunded' end
   where x.order_id = p.order_id and x.provider = p.provider;
  return 'refund_recorded';
end
$$;
comment on function private.apply_payment_refunds(uuid, text, timestamptz) is
  'security definer: records (private.record_refund) what the provider refunded beyond what was applied.';
revoke all on function private.apply_payment_refunds(uuid, text, timestamptz) from public;

-- ---------------------------------------------------------------------------------------
-- service_record_payment_event: the inbox and the state machine
-- ---------------------------------------------------------------------------------------
create or replace function private.record_payment_event(
  p_provider text, p_event_id text, p_type text, p_payload jsonb, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  e app.payment_events;
  n jsonb;
  v_kind text;
  v_order_id uuid;
  v_ref text;
  v_pid text;
  o app.orders;
  p app.payments;
  v_outcome text;
  v_detail text;
  v_res jsonb;
  v_msg text;
  v_cum integer;
  v_deadline timestamptz;
  v_owner uuid;
  v_new boolean := false;
begin
  if p_provider is null or p_provider not in ('stripe', 'komoju') then
    raise exception using errcode = 'PT400', message = 'invalid_provider', detail = 'p_provider is stripe or komoju';
  end if;
  if p_event_id is null or char_length(p_event_id) not between 1 and 255 then
    raise exception using errcode = 'PT400', message = 'invalid_event_id', detail = 'p_event_id is 1 to 255 characters';
  end if;
  if p_type is null or char_length(p_type) not between 1 and 100 then
    raise exception using errcode = 'PT400', message = 'invalid_event_type', detail = 'p_type is 1 to 100 characters';
  end if;
  if p_payload is null or jsonb_typeof(p_payload) <> 'object' then
    raise exception using errcode = 'PT400', message = 'invalid_payload', detail = 'p_payload is a JSON object';
  end if;

  -- The inbox key: whoever holds it decides this event; a delivery that waited for it finds the
  -- row the holder wrote (each statement here sees what committed before it began).
  perform pg_catalog.pg_advisory_xact_lock(7253501, pg_catalog.hashtext(p_provider || ':' || p_event_id));
  select * into e from app.payment_events x where x.provider = p_provider and x.event_id = p_event_id;
  if found then
    return jsonb_build_object('provider', p_provider, 'event_id', p_event_id, 'type', e.type, 'duplicate', true,
                              'order_id', e.order_id, 'outcome', e.outcome);
  end if;

  n := private.normalize_payment_event(p_provider, p_type, p_payload);
  v_kind := n ->> 'kind';
  v_pid := n ->> 'provider_payment_id';
  v_ref := n ->> 'payment_ref';
  if v_kind = 'ignored' then
    v_outcome := 'ignored';
  else
    -- The order: from our metadata, else from the payment ids we have seen.
    if (n ->> 'order_ref') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      select x.id into v_order_id from app.orders x where x.id = (n ->> 'order_ref')::uuid;
    end if;
    if v_order_id is null and v_pid is not null then
      -- Two index probes (payments_provider_payment, payments_provider_ref), not an OR over two
      -- columns, which the plan PL/pgSQL keeps for the session cannot serve from either index.
      select x.order_id into v_order_id from (
        select y.order_id from app.payments y where y.provider = p_provider and y.provider_payment_id = v_pid
        union all
        select y.order_id from app.payments y where y.provider = p_provider and y.payment_ref = v_pid) x
       limit 1;
    end if;
    if v_order_id is null and v_ref is not null then
      select x.order_id into v_order_id from app.payments x where x.provider = p_provider and x.payment_ref = v_ref;
    end if;
    if v_order_id is null and v_pid is not null then
      select x.id into v_order_id from app.orders x where x.provider = p_provider and x.provider_payment_id = v_pid;
    end if;
    if v_order_id is null then
      v_outcome := 'order_not_found';
      v_detail := 'no order matches this event''s metadata or payment ids';
    else
      -- The metadata names one order but the payment belongs to another: pay neither with it.
      -- (x = null matches nothing: an id the event lacks finds no row.) Index probes, as above.
      select x.order_id into v_owner from (
        select y.order_id from app.payments y where y.provider = p_provider and y.payment_ref = v_ref
        union all
        select y.order_id from app.payments y where y.provider = p_provider and y.provider_payment_id = v_pid
        union all
        select y.order_id from app.payments y where y.provider = p_provider and y.payment_ref = v_pid) x
       where x.order_id <> v_order_id
       limit 1;
      if v_owner is null and v_pid is not null then
        select x.id into v_owner from app.orders x
         where x.provider = p_provider and x.provider_payment_id = v_pid and x.id <> v_order_id;
      end if;
      if v_owner is not null then
        v_detail := format('the event names order %s but its payment belongs to order %s', v_order_id, v_owner);
        perform private.flag_payment(v_owner, p_provider, 'payment_order_mismatch', v_detail, p_now);
        v_outcome := 'flagged_payment_order_mismatch';
      end if;
    end if;
  end if;

  if v_order_id is not null and v_outcome is null then
    select * into o from app.orders x where x.id = v_order_id for update;
    begin
      -- The payment row with both ids in one write when it is new (a payment the service did not
      -- attach first); an existing row is left as it is here.
      insert into app.payments (order_id, provider, payment_ref, provider_payment_id, created_at, updated_at)
      values (o.id, p_provider, v_ref, v_pid, p_now, p_now)
      on conflict (order_id, provider) do nothing;
      v_new := found;
    exception when unique_violation then
      -- One of the ids belongs to another order's payment: the row as it was written step by step
      -- (the reference, then the payment id), each refused id left out.
      begin
        insert into app.payments (order_id, provider, payment_ref, created_at, updated_at)
        values (o.id, p_provider, v_ref, p_now, p_now)
        on conflict (order_id, provider) do nothing;
      exception when unique_violation then
        -- Raced with an attach of the same reference to another order: leave it to a human.
        insert into app.payments (order_id, provider, created_at, updated_at)
        values (o.id, p_provider, p_now, p_now)
        on conflict (order_id, provider) do nothing;
        v_pid := null;
      end;
    end;
    if v_new then
      -- Written by this transaction: no other can see it, let alone change it, until commit.
      select * into p from app.payments x where x.order_id = o.id and x.provider = p_provider;
    else
      select * into p from app.payments x where x.order_id = o.id and x.provider = p_provider for update;
    end if;
    if v_pid is not null and p.provider_payment_id is null then
      begin
        update app.payments x set provider_payment_id = v_pid, updated_at = p_now
         where x.order_id = o.id and x.provider = p_provider;
        p.provider_payment_id := v_pid;
      exception when unique_violation then
        v_pid := null;
      end;
    end if;

    if v_pid is not null and p.provider_payment_id <> v_pid and v_kind in ('paid', 'authorized', 'refund') then
      -- A second provider payment for one order and provider: never silently merged.
      perform private.flag_payment(o.id, p_provider, 'second_provider_payment',
                                   format('payment %s seen after %s', v_pid, p.provider_payment_id), p_now);
      v_outcome := 'flagged_second_provider_payment';
    elsif v_kind = 'paid' then
      if p.status in ('paid', 'partially_refunded', 'refunded') then
        v_outcome := 'already_paid';
      else
        update app.payments x set status = 'paid', amount_jpy = (n ->> 'amount')::integer,
                                  currency = nullif(n ->> 'currency', ''), updated_at = p_now
         where x.order_id = o.id and x.provider = p_provider;
        begin
          v_res := private.fulfill_order(o.id, p_provider, p.provider_payment_id, (n ->> 'amount')::integer,
                                         n ->> 'currency', p_now, extensions.gen_random_bytes(32),
                                         encode(extensions.gen_random_bytes(16), 'hex'));
          if (v_res ->> 'fulfilled')::boolean then
            v_outcome := 'fulfilled';
          elsif v_res ->> 'provider' = p_provider and v_res ->> 'provider_payment_id' = p.provider_payment_id then
            v_outcome := 'already_fulfilled';
          else
            perform private.flag_payment(o.id, p_provider, 'duplicate_payment',
                                         'the order was already paid by another payment: refund this one', p_now);
            v_outcome := 'flagged_duplicate_payment';
          end if;
        exception when sqlstate 'PT409' or sqlstate 'PT400' then
          get stacked diagnostics v_msg = message_text, v_detail = pg_exception_detail;
          perform private.flag_payment(o.id, p_provider, v_msg, v_detail, p_now);
          v_outcome := 'flagged_' || v_msg;
        end;
        if v_outcome in ('fulfilled', 'already_fulfilled')
           and (select x.refunded_jpy > x.refunds_applied_jpy from app.payments x
                 where x.order_id = o.id and x.provider = p_provider) then
          -- A refund seen before this payment: apply it now, as if the events had come in order.
          v_detail := 'then ' || private.apply_payment_refunds(o.id, p_provider, p_now);
        end if;
      end if;
    elsif v_kind = 'authorized' then
      if p.status = 'pending' then
        v_deadline := case when (n ->> 'deadline') ~ '^\d{4}-\d{2}-\d{2}T' then (n ->> 'deadline')::timestamptz end;
        if o.status = 'pending' and v_deadline is not null then
          -- Konbini / bank transfer: the fan pays within days; the order (and its reservation) waits.
          update app.orders x set expires_at = greatest(x.expires_at, least(v_deadline, p_now + interval '30 days'))
           where x.id = o.id;
        end if;
        v_outcome := 'awaiting_payment';
      else
        v_outcome := 'ignored_' || p.status;
      end if;
    elsif v_kind in ('failed', 'canceled', 'expired') then
      if p.status = 'pending' then
        update app.payments x set status = v_kind, updated_at = p_now
         where x.order_id = o.id and x.provider = p_provider;
        if exists (select 1 from app.payments x where x.order_id = o.id and x.provider <> p_provider
                     and x.status = 'pending') then
          v_outcome := 'payment_' || v_kind;
          v_detail := 'another payment of this order is still pending';
        else
          v_res := private.fail_order(o.id, v_kind, p_now);
          v_outcome := case when (v_res ->> 'changed')::boolean then 'order_' || v_kind else 'payment_' || v_kind end;
        end if;
      else
        -- Never backwards: a payment that paid (or already failed) stays as it is.
        v_outcome := 'ignored_' || p.status;
      end if;
    elsif v_kind = 'refund' then
      v_cum := (n ->> 'refunded')::integer;
      if v_cum is null or v_cum <= 0 then
        v_outcome := 'invalid_refund_amount';
      elsif v_cum <= p.refunded_jpy then
        v_outcome := 'refund_already_recorded';
      else
        update app.payments x set refunded_jpy = v_cum, updated_at = p_now
         where x.order_id = o.id and x.provider = p_provider;
        if p.status in ('paid', 'partially_refunded', 'refunded') then
          v_outcome := private.apply_payment_refunds(o.id, p_provider, p_now);
        else
          v_outcome := 'refund_deferred';
          v_detail := 'the payment has not been seen yet: the refund is applied when it is';
        end if;
      end if;
    elsif v_kind = 'dispute' then
      update app.payments x set disputed = true, updated_at = p_now
       where x.order_id = o.id and x.provider = p_provider;
      begin
        v_res := private.record_dispute(o.id, n ->> 'dispute_id', coalesce(n ->> 'dispute_status', 'unknown'), p_now);
        v_outcome := 'dispute_recorded';
      exception when sqlstate 'PT409' or sqlstate 'PT400' then
        get stacked diagnostics v_msg = message_text, v_detail = pg_exception_detail;
        perform private.flag_payment(o.id, p_provider, v_msg, v_detail, p_now);
        v_outcome := 'flagged_' || v_msg;
      end;
    end if;
  end if;

  insert into app.payment_events (provider, event_id, type, payload, order_id, outcome, detail, received_at)
  values (p_provider, p_event_id, p_type, p_payload, v_order_id, v_outcome, v_detail, p_now)
  on conflict (provider, event_id) do nothing;
  if not found then
    -- Only under an isolation level above read committed (PostgREST and the payment service use
    -- read committed): a delivery that committed while this one waited for the key was not seen.
    -- Undo everything here and let the provider retry, which then finds the event.
    raise exception using errcode = '40001', message = 'payment_event_raced',
      detail = 'the same event was recorded by a concurrent delivery';
  end if;
  return jsonb_build_object('provider', p_provider, 'event_id', p_event_id, 'type', p_type, 'duplicate', false,
                            'order_id', v_order_id, 'outcome', v_outcome, 'detail', v_detail,
                            'payment', case when v_order_id is not null then private.payment_json(v_order_id, p_provider) end);
end
$$;
comment on function private.record_payment_event(text, text, text, jsonb, timestamptz) is
  'security definer: the inbox core (time passed in): dedupes on (provider, event id), locks the order, runs the '
  'forward-only payment state machine through the economy cores at p_now, records the outcome.';
revoke all on function private.record_payment_event(text, text, text, jsonb, timestamptz) from public;
grant execute on function private.record_payment_event(text, text, text, jsonb, timestamptz) to service_role;

create or replace function public.service_record_payment_event(
  p_provider text, p_event_id text, p_type text, p_payload jsonb
) returns jsonb
language sql
set search_path = ''
as $$
  select private.record_payment_event(p_provider, p_event_id, p_type, p_payload, now())
$$;
comment on function public.service_record_payment_event(text, text, text, jsonb) is
  'Service role, the payment service''s one call per verified webhook: records the event once per (provider, '
  'event id) (a redelivery returns duplicate: true and does nothing) and runs the forward-only payment state '
  'machine: paid -> fulfilment (amount mismatch: flagged, not fulfilled), refunds (applied after the payment even '
  'when they arrive first), disputes, failed/canceled/expired only from pending, unknown types recorded as '
  'ignored. Returns {provider, event_id, type, duplicate, order_id, outcome, detail, payment}. Errors: '
  'invalid_provider, invalid_event_id, invalid_event_type, invalid_payload (PT400).';
revoke all on function public.service_record_payment_event(text, text, text, jsonb) from public, anon, authenticated;
grant execute on function public.service_record_payment_event(text, text, text, jsonb) to service_role;

-- ---------------------------------------------------------------------------------------
-- service_prepare_payment / service_attach_payment (payment endpoints)
-- ---------------------------------------------------------------------------------------
create or replace function private.prepare_payment(p_order_id uuid, p_user_id uuid, p_now timestamptz)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  o app.orders;
begin
  select * into o from app.orders x where x.id = p_order_id;
  if not found or (p_user_id is not null and o.user_id <> p_user_id) then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  return jsonb_build_object(
    'order_id', o.id, 'user_id', o.user_id, 'gacha_id', o.gacha_id, 'pull_count', o.pull_count,
    'status', case when o.status = 'pending' and o.expires_at <= p_now then 'expired' else o.status end,
    'amount_jpy', o.amount_jpy, 'currency', o.currency, 'refunded_jpy', o.refunded_jpy,
    'expires_at', o.expires_at, 'provider', o.provider, 'provider_payment_id', o.provider_payment_id,
    'title', (select g.title from app.gachas g where g.id = o.gacha_id),
    'payments', coalesce((select jsonb_agg(private.payment_json(x.order_id, x.provider) order by x.created_at)
                            from app.payments x where x.order_id = o.id), '[]'::jsonb));
end
$$;
comment on function private.prepare_payment(uuid, uuid, timestamptz) is
  'security definer: an order as the payment service needs it (amount, status, owner, payments).';
revoke all on function private.prepare_payment(uuid, uuid, timestamptz) from public;
grant execute on function private.prepare_payment(uuid, uuid, timestamptz) to service_role;

create or replace function public.service_prepare_payment(p_order_id uuid, p_user_id uuid default null)
returns jsonb
language sql stable
set search_path = ''
as $$
  select private.prepare_payment(p_order_id, p_user_id, now())
$$;
comment on function public.service_prepare_payment(uuid, uuid) is
  'Service role: the order as the payment service needs it before asking a provider: {order_id, user_id, '
  'status (pending past expiry reads expired), amount_jpy, currency, pull_count, title, provider_payment_id, '
  'payments[]}. With p_user_id, another user''s order is not found. Errors: order_not_found (PT404).';
revoke all on function public.service_prepare_payment(uuid, uuid) from public, anon, authenticated;
grant execute on function public.service_prepare_payment(uuid, uuid) to service_role;

create or replace function private.attach_payment(
  p_order_id uuid, p_provider text, p_payment_ref text, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
  p app.payments;
begin
  if p_provider is null or p_provider not in ('stripe', 'komoju') then
    raise exception using errcode = 'PT400', message = 'invalid_provider', detail = 'p_provider is stripe or komoju';
  end if;
  if p_payment_ref is null or char_length(p_payment_ref) not between 1 and 255 then
    raise exception using errcode = 'PT400', message = 'invalid_provider_payment_id',
      detail = 'p_provider_payment_id is 1 to 255 characters';
  end if;
  select * into o from app.orders x where x.id = p_order_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  if o.status <> 'pending' or o.expires_at <= p_now then
    raise exception using errcode = 'PT409', message = 'order_not_payable',
      detail = format('only a pending order can be paid; this one is %s',
                      case when o.status = 'pending' then 'expired' else o.status end);
  end if;
  select * into p from app.payments x where x.order_id = o.id and x.provider = p_provider for update;
  if found and p.status <> 'pending' then
    raise exception using errcode = 'PT409', message = 'order_not_payable',
      detail = format('this order''s %s payment is already %s', p_provider, p.status);
  end if;
  begin
    insert into app.payments (order_id, provider, payment_ref, created_at, updated_at)
    values (o.id, p_provider, p_payment_ref, p_now, p_now)
    on conflict (order_id, provider) do update set payment_ref = excluded.payment_ref, updated_at = excluded.updated_at;
  exception when unique_violation then
    raise exception using errcode = 'PT409', message = 'payment_reference_in_use',
      detail = 'this provider reference is attached to another order';
  end;
  if p_provider = 'stripe' then
    -- A PaymentIntent id is also what the provider pays with.
    update app.payments x set provider_payment_id = p_payment_ref
     where x.order_id = o.id and x.provider = p_provider and x.provider_payment_id is distinct from p_payment_ref;
  end if;
  return private.payment_json(o.id, p_provider);
exception when unique_violation then
  raise exception using errcode = 'PT409', message = 'payment_reference_in_use',
    detail = 'this provider reference is attached to another order';
end
$$;
comment on function private.attach_payment(uuid, text, text, timestamptz) is
  'security definer: records the provider reference (PaymentIntent, session) created for a pending order.';
revoke all on function private.attach_payment(uuid, text, text, timestamptz) from public;
grant execute on function private.attach_payment(uuid, text, text, timestamptz) to service_role;

create or replace function public.service_attach_payment(
  p_order_id uuid, p_provider text, p_provider_payment_id text
) returns jsonb
language sql
set search_path = ''
as $$
  select private.attach_payment(p_order_id, p_provider, p_provider_payment_id, now())
$$;
comment on function public.service_attach_payment(uuid, text, text) is
  'Service role: records the provider reference created for a pending order (Stripe PaymentIntent id, KOMOJU '
  'session id); calling it again with a new reference replaces it while the payment is pending. Returns the '
  'payment {order_id, provider, payment_ref, provider_payment_id, status, ...}. Errors: invalid_provider, '
  'invalid_provider_payment_id (PT400), order_not_found (PT404), order_not_payable, payment_reference_in_use '
  '(PT409).';
revoke all on function public.service_attach_payment(uuid, text, text) from public, anon, authenticated;
grant execute on function public.service_attach_payment(uuid, text, text) to service_role;
