-- Orders: creation with snapshot and reservations, lazy and swept expiry, reads, exactly-once
-- fulfilment (draws, reward box, medals) and failure.
--
-- Lock order (deadlock freedom): order row -> fairness seed -> pity counter -> stock shards in
-- (counter_id, shard) order -> gacha item rows in id order -> medal balance. A shard lock is
-- only ever waited for when it sorts after every shard lock the transaction holds (the fast
-- path uses SKIP LOCKED and never waits).

-- Takes p_qty units of a capacity counter for an order; false when it has not that many left.
create or replace function private.reserve_units(
  p_order uuid, p_counter uuid, p_kind text, p_gacha uuid, p_total integer, p_qty integer
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_shards integer;
  v_shard smallint;
  v_need integer := p_qty;
  v_take integer;
  r record;
begin
  if not exists (select 1 from app.stock_shards s where s.counter_id = p_counter) then
    v_shards := case when p_total >= 800 then 8 when p_total >= 80 then 4 else 1 end;
    insert into app.stock_shards (counter_id, shard, kind, gacha_id, remaining)
    select p_counter, n, p_kind, p_gacha, p_total / v_shards + (n < p_total % v_shards)::integer
      from generate_series(0, v_shards - 1) n
    on conflict (counter_id, shard) do nothing;
  end if;
  -- Fast path: one shard with enough left that nobody holds right now.
  select s.shard into v_shard from app.stock_shards s
   where s.counter_id = p_counter and s.remaining >= p_qty
   order by (s.shard + pg_backend_pid()) % 64
   limit 1
   for update skip locked;
  if found then
    update app.stock_shards s set remaining = remaining - p_qty
     where s.counter_id = p_counter and s.shard = v_shard;
    insert into app.order_reservations (order_id, counter_id, shard, quantity)
    values (p_order, p_counter, v_shard, p_qty)
    on conflict (order_id, counter_id, shard) do update set quantity = app.order_reservations.quantity + p_qty;
    return true;
  end if;
  -- Slow path (near the end, or all shards busy): lock every shard in order and gather.
  if (select coalesce(sum(s.remaining), 0) from app.stock_shards s where s.counter_id = p_counter) < p_qty then
    return false;
  end if;
  for r in select s.shard, s.remaining from app.stock_shards s
            where s.counter_id = p_counter order by s.shard for update loop
    exit when v_need = 0;
    v_take := least(v_need, r.remaining);
    if v_take > 0 then
      update app.stock_shards s set remaining = remaining - v_take
       where s.counter_id = p_counter and s.shard = r.shard;
      insert into app.order_reservations (order_id, counter_id, shard, quantity)
      values (p_order, p_counter, r.shard, v_take)
      on conflict (order_id, counter_id, shard) do update set quantity = app.order_reservations.quantity + v_take;
      v_need := v_need - v_take;
    end if;
  end loop;
  if v_need > 0 then
    -- Not enough after all: the caller raises, and the transaction gives every unit back.
    return false;
  end if;
  return true;
end
$$;
comment on function private.reserve_units(uuid, uuid, text, uuid, integer, integer) is
  'security definer: reserves units of a sharded capacity counter (total-pull cap or item stock) for an order.';
revoke all on function private.reserve_units(uuid, uuid, text, uuid, integer, integer) from public;

-- Reserves what an order of p_count pulls may need: p_count of the total-pull cap and, since
-- any pull may draw any item, p_count of every stocked item (so a paid order can always be
-- drawn at the published odds; the unused units are released at fulfilment).
create or replace function private.reserve_order_capacity(p_order uuid, p_gacha_id uuid, p_count integer)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  r record;
begin
  for r in
    select g.id as counter_id, 'pull_cap' as kind, g.total_pull_cap as total
      from app.gachas g where g.id = p_gacha_id and g.total_pull_cap is not null
    union all
    select i.id, 'item_stock', i.stock from app.gacha_items i
     where i.gacha_id = p_gacha_id and i.stock is not null and i.rate_ppm > 0
    order by 1
  loop
    if not private.reserve_units(p_order, r.counter_id, r.kind, p_gacha_id, r.total, p_count) then
      raise exception using errcode = 'PT409', message = 'gacha_sold_out',
        detail = case when r.kind = 'pull_cap'
                      then format('fewer than %s pulls are left in this gacha', p_count)
                      else format('an item has fewer than %s units left unreserved; pending orders free theirs '
                                  'when they expire', p_count) end;
    end if;
  end loop;
end
$$;
comment on function private.reserve_order_capacity(uuid, uuid, integer) is
  'security definer: reserves the total-pull cap and every stocked item for an order, in counter order; '
  'raises gacha_sold_out (PT409).';
revoke all on function private.reserve_order_capacity(uuid, uuid, integer) from public;

-- Gives back an order's reserved units, except p_consumed (counter_id -> units kept as sold).
create or replace function private.settle_reservations(p_orders uuid[], p_consumed jsonb) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  r record;
  v_keep jsonb := coalesce(p_consumed, '{}'::jsonb);
  v_left integer;
  v_back integer;
begin
  for r in select x.counter_id, x.shard, sum(x.quantity)::integer as quantity
             from app.order_reservations x where x.order_id = any(p_orders)
            group by x.counter_id, x.shard order by x.counter_id, x.shard loop
    v_left := coalesce((v_keep ->> r.counter_id::text)::integer, 0);
    v_back := r.quantity - least(v_left, r.quantity);
    if v_left > 0 then
      v_keep := jsonb_set(v_keep, array[r.counter_id::text], to_jsonb(v_left - least(v_left, r.quantity)));
    end if;
    if v_back > 0 then
      update app.stock_shards s set remaining = remaining + v_back
       where s.counter_id = r.counter_id and s.shard = r.shard;
    end if;
  end loop;
  delete from app.order_reservations x where x.order_id = any(p_orders);
end
$$;
comment on function private.settle_reservations(uuid[], jsonb) is
  'security definer: releases orders'' reservations to their shards (in lock order), keeping the consumed units.';
revoke all on function private.settle_reservations(uuid[], jsonb) from public;

-- Expires due pending orders (all, one fan's, or one order) and releases what they held.
create or replace function private.expire_orders(p_now timestamptz, p_user uuid, p_order uuid, p_limit integer)
returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  v_ids uuid[];
begin
  select array_agg(d.id) into v_ids from (
    select o.id from app.orders o
     where o.status = 'pending' and o.expires_at <= p_now
       and (p_user is null or o.user_id = p_user) and (p_order is null or o.id = p_order)
     order by o.expires_at limit p_limit
     for update skip locked) d;
  if v_ids is null then
    return 0;
  end if;
  update app.orders o set status = 'expired' where o.id = any(v_ids);
  perform private.settle_reservations(v_ids, null);
  return cardinality(v_ids);
end
$$;
comment on function private.expire_orders(timestamptz, uuid, uuid, integer) is
  'security definer: pending orders past expires_at become expired and release their reservations '
  '(locked rows are skipped: a fulfilment in progress wins).';
revoke all on function private.expire_orders(timestamptz, uuid, uuid, integer) from public;

create or replace function private.order_json(p_order_id uuid, p_now timestamptz, p_details boolean) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  o app.orders;
  v jsonb;
begin
  select * into o from app.orders x where x.id = p_order_id;
  if not found then
    return null;
  end if;
  v := jsonb_build_object(
    'order_id', o.id, 'status', case when o.status = 'pending' and o.expires_at <= p_now then 'expired'
                                     else o.status end,
    'gacha_id', o.gacha_id, 'vtuber_id', o.vtuber_id, 'pull_count', o.pull_count, 'amount_jpy', o.amount_jpy,
    'currency', o.currency, 'medals', o.medals, 'idempotency_key', o.idempotency_key,
    'refunded_jpy', o.refunded_jpy, 'created_at', o.created_at, 'expires_at', o.expires_at,
    'paid_at', o.paid_at, 'fulfilled_at', o.fulfilled_at,
    -- The draw the order is bound to (null for orders of the first protocol).
    'seed_id', o.seed_id, 'first_nonce', o.first_nonce, 'rate_table_version', o.rate_table_version,
    'pity_rate_table_version', o.pity_rate_table_version);
  if o.seed_id is not null then
    v := v || (select jsonb_build_object('server_seed_hash', s.server_seed_hash, 'client_seed', s.client_seed)
                 from app.fairness_seeds s where s.id = o.seed_id);
  end if;
  if p_details and o.status = 'fulfilled' then
    v := v || jsonb_build_object('pulls', coalesce((
      select jsonb_agg(jsonb_build_object('pull_id', p.id, 'gacha_item_id', p.gacha_item_id, 'item_name', i.name,
                                          'rarity', p.rarity, 'pity', p.pity, 'seed_id', p.seed_id,
                                          'nonce', p.nonce, 'roll', p.roll,
                                          'rate_table_version', p.rate_table_version, 'reward_id', r.id,
                                          'revoked', r.revoked_at is not null) order by p.id)
        from app.pulls p join app.gacha_items i on i.id = p.gacha_item_id
        left join app.user_rewards r on r.pull_id = p.id
       where p.order_id = o.id), '[]'::jsonb),
      'medals_granted', coalesce((select sum(l.delta) from app.medal_ledger l
                                   where l.order_id = o.id and l.reason = 'pull_grant'), 0));
  end if;
  return v;
end
$$;
comment on function private.order_json(uuid, timestamptz, boolean) is
  'security definer: an order as JSON with the draw it is bound to (seed, nonces, rate tables); pulls, rewards '
  'and medals once fulfilled; pending past expiry reads expired.';
revoke all on function private.order_json(uuid, timestamptz, boolean) from public;

create or replace function private.create_order(
  p_user uuid, p_gacha_id uuid, p_pull_count integer, p_idempotency_key text, p_now timestamptz,
  p_server_seed bytea, p_client_seed text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_profile app.profiles;
  v_gacha app.gachas;
  v_vtuber_status text;
  v_existing app.orders;
  v_order_id uuid;
  v_amount integer;
  v_medals integer;
  v_seed app.fairness_seeds;
  v_base text;
  v_pity text;
begin
  if p_pull_count is null or p_pull_count not in (1, 10) then
    raise exception using errcode = 'PT400', message = 'invalid_pull_count', detail = 'p_pull_count is 1 or 10';
  end if;
  if p_idempotency_key is null or char_length(p_idempotency_key) not between 1 and 200 then
    raise exception using errcode = 'PT400', message = 'invalid_idempotency_key',
      detail = 'p_idempotency_key is 1 to 200 characters, generated by the client once per purchase';
  end if;
  select * into v_existing from app.orders o where o.user_id = p_user and o.idempotency_key = p_idempotency_key;
  if found then
    if v_existing.gacha_id <> p_gacha_id or v_existing.pull_count <> p_pull_count then
      raise exception using errcode = 'PT409', message = 'idempotency_key_reused',
        detail = 'this idempotency key was used for a different order';
    end if;
    return private.order_json(v_existing.id, p_now, true)
           || jsonb_build_object('created', false);
  end if;
  select * into v_profile from app.profiles p where p.user_id = p_user;
  if not found or v_profile.status <> 'active' then
    raise exception using errcode = 'PT403', message = 'account_suspended', detail = 'this account cannot buy';
  end if;
  if v_profile.birth_date is null then
    raise exception using errcode = 'PT422', message = 'birth_date_required',
      detail = 'set your birth date (update_my_profile) before the first purchase';
  end if;
  select * into v_gacha from app.gachas g where g.id = p_gacha_id;
  if not found or v_gacha.status = 'draft' then
    raise exception using errcode = 'PT404', message = 'gacha_not_found', detail = 'no such gacha';
  end if;
  select v.status into v_vtuber_status from app.vtubers v where v.id = v_gacha.vtuber_id;
  if v_gacha.status <> 'published' or p_now < v_gacha.start_at or p_now >= v_gacha.end_at
     or v_vtuber_status is distinct from 'approved' then
    raise exception using errcode = 'PT409', message = 'gacha_not_on_sale',
      detail = case when v_gacha.status <> 'published' then format('this gacha is %s', v_gacha.status)
                    when p_now < v_gacha.start_at then 'this gacha has not started yet'
                    when p_now >= v_gacha.end_at then 'this gacha has ended'
                    else 'this VTuber is not approved' end;
  end if;
  if p_pull_count = 1 then
    v_amount := v_gacha.price_single;
    v_medals := v_gacha.medals_per_pull;
  else
    v_amount := v_gacha.price_ten;
    v_medals := 10 * v_gacha.medals_per_pull + v_gacha.ten_pull_bonus_medals;
  end if;
  perform private.check_spending_cap(p_user, v_profile.birth_date, v_amount, p_now);
  -- The draw is bound here, before anything is paid: the published rate tables, and the fan's
  -- seed pair (activated now from the seed committed earlier if the fan has none, with the
  -- client seed the caller derived from the fan's request) with the next p_pull_count nonces.
  -- The seed row is the fan's own: only the same fan's concurrent orders wait for it.
  select max(l.version) filter (where not l.pity), max(l.version) filter (where l.pity) into v_base, v_pity
    from app.rate_table_log l where l.gacha_id = p_gacha_id;
  if v_base is null or (v_gacha.pity_pulls is not null and v_pity is null) then
    -- A gacha published before the log existed (and missed by the backfill): publish it now.
    perform private.publish_rate_tables(p_gacha_id, p_now);
    select max(l.version) filter (where not l.pity), max(l.version) filter (where l.pity) into v_base, v_pity
      from app.rate_table_log l where l.gacha_id = p_gacha_id;
  end if;
  v_seed := private.lock_seed_for_order(p_user, p_client_seed, p_server_seed, p_now);
  begin
    insert into app.orders (user_id, gacha_id, vtuber_id, pull_count, amount_jpy, medals, currency,
                            idempotency_key, status, created_at, expires_at, seed_id, first_nonce,
                            rate_table_version, pity_rate_table_version)
    values (p_user, p_gacha_id, v_gacha.vtuber_id, p_pull_count, v_amount, v_medals, 'JPY',
            p_idempotency_key, 'pending', p_now, p_now + interval '30 minutes', v_seed.id, v_seed.next_nonce,
            v_base, v_pity)
    returning id into v_order_id;
    update app.fairness_seeds s set next_nonce = next_nonce + p_pull_count where s.id = v_seed.id;
    perform private.reserve_order_capacity(v_order_id, p_gacha_id, p_pull_count);
  exception when unique_violation then
    -- The same key committed concurrently: answer as a replay would.
    select * into v_existing from app.orders o where o.user_id = p_user and o.idempotency_key = p_idempotency_key;
    if not found then
      raise;
    end if;
    if v_existing.gacha_id <> p_gacha_id or v_existing.pull_count <> p_pull_count then
      raise exception using errcode = 'PT409', message = 'idempotency_key_reused',
        detail = 'this idempotency key was used for a different order';
    end if;
    return private.order_json(v_existing.id, p_now, true) || jsonb_build_object('created', false);
  end;
  return private.order_json(v_order_id, p_now, true) || jsonb_build_object('created', true);
end
$$;
comment on function private.create_order(uuid, uuid, integer, text, timestamptz, bytea, text) is
  'security definer: the order core (time passed in; p_server_seed commits the next seed and p_client_seed '
  'activates a pair if the fan has none): snapshot, checks, draw binding, reservations.';
revoke all on function private.create_order(uuid, uuid, integer, text, timestamptz, bytea, text) from public;

create or replace function private.create_order(p_gacha_id uuid, p_pull_count integer, p_idempotency_key text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  -- Without an active pair, the client seed is derived from the fan's own request (the
  -- idempotency key their device chose), never chosen by the server: see docs/fairness.md.
  return private.create_order(v_uid, p_gacha_id, p_pull_count, p_idempotency_key, now(),
                              extensions.gen_random_bytes(32),
                              encode(extensions.digest(convert_to(coalesce(p_idempotency_key, ''), 'UTF8'), 'sha256'),
                                     'hex'));
end
$$;
comment on function private.create_order(uuid, integer, text) is
  'security definer: the body of public.create_order; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.create_order(uuid, integer, text) from public, anon;
grant execute on function private.create_order(uuid, integer, text) to authenticated;

create or replace function public.create_order(p_gacha_id uuid, p_pull_count integer, p_idempotency_key text) returns jsonb
language sql
set search_path = ''
as $$
  select private.create_order(p_gacha_id, p_pull_count, p_idempotency_key)
$$;
comment on function public.create_order(uuid, integer, text) is
  'Creates a pending order of 1 or 10 pulls with the price and medals computed here, reserving the total-pull '
  'cap and item stock for 30 minutes, and binds its draw before payment: seed_id, server_seed_hash, client_seed, '
  'first_nonce (the order owns first_nonce .. first_nonce + pull_count - 1), rate_table_version and '
  'pity_rate_table_version (published tables, get_rate_table). Without an active seed pair the committed next '
  'seed is activated with client seed hex(SHA-256(p_idempotency_key)). The same key returns the same order '
  '(created: false). Errors: not_authenticated (PT401), account_suspended (PT403), '
  'invalid_pull_count, invalid_idempotency_key (PT400), gacha_not_found (PT404), gacha_not_on_sale, '
  'gacha_sold_out, idempotency_key_reused, fairness_seed_not_committed (PT409), birth_date_required, '
  'spending_cap_exceeded (PT422).';
revoke all on function public.create_order(uuid, integer, text) from public, anon;
grant execute on function public.create_order(uuid, integer, text) to authenticated;

create or replace function private.service_expire_orders() returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_total integer := 0;
  v_n integer;
begin
  loop
    v_n := private.expire_orders(now(), null, null, 500);
    v_total := v_total + v_n;
    exit when v_n < 500;
  end loop;
  return jsonb_build_object('expired', v_total);
end
$$;
comment on function private.service_expire_orders() is
  'security definer: the body of public.service_expire_orders (service role only: only service_role may execute it); expires every pending order past its deadline, 500 at a time (private.expire_orders).';
revoke all on function private.service_expire_orders() from public, anon;
grant execute on function private.service_expire_orders() to service_role;

create or replace function public.service_expire_orders() returns jsonb
language sql
set search_path = ''
as $$
  select private.service_expire_orders()
$$;
comment on function public.service_expire_orders() is
  'Service: expires every pending order past its 30 minutes and releases its reservations; returns {expired}. '
  '';
revoke all on function public.service_expire_orders() from public, anon, authenticated;
grant execute on function public.service_expire_orders() to service_role;

create or replace function private.get_order(p_order_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_owner uuid;
begin
  select o.user_id into v_owner from app.orders o where o.id = p_order_id;
  if v_owner is distinct from v_uid then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  if current_setting('transaction_read_only') = 'off' then
    perform private.expire_orders(now(), v_uid, p_order_id, 1);
  end if;
  return private.order_json(p_order_id, now(), true);
end
$$;
comment on function private.get_order(uuid) is
  'security definer: the body of public.get_order; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.get_order(uuid) from public, anon;
grant execute on function private.get_order(uuid) to authenticated;

create or replace function public.get_order(p_order_id uuid) returns jsonb
language sql
set search_path = ''
as $$
  select private.get_order(p_order_id)
$$;
comment on function public.get_order(uuid) is
  'The caller''s order with its pulls (item, rarity, pity, seed id, nonce, roll, rate table version, reward) and '
  'medals once fulfilled; a pending order past its expiry is expired here. Errors: not_authenticated (PT401), account_suspended (PT403), order_not_found (PT404).';
revoke all on function public.get_order(uuid) from public, anon;
grant execute on function public.get_order(uuid) to authenticated;

create or replace function private.list_my_orders(p_limit integer default 20, p_offset integer default 0) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_limit is null or p_limit not between 1 and 100 or p_offset is null or p_offset not between 0 and 100000 then
    raise exception using errcode = 'PT400', message = 'invalid_pagination',
      detail = 'p_limit is 1..100 and p_offset 0..100000';
  end if;
  if current_setting('transaction_read_only') = 'off' then
    perform private.expire_orders(now(), v_uid, null, 100);
  end if;
  return coalesce((select jsonb_agg(private.order_json(o.id, now(), false) order by o.created_at desc, o.id)
                     from (select x.id, x.created_at from app.orders x where x.user_id = v_uid
                            order by x.created_at desc, x.id limit p_limit offset p_offset) o), '[]'::jsonb);
end
$$;
comment on function private.list_my_orders(integer, integer) is
  'security definer: the body of public.list_my_orders; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.list_my_orders(integer, integer) from public, anon;
grant execute on function private.list_my_orders(integer, integer) to authenticated;

create or replace function public.list_my_orders(p_limit integer default 20, p_offset integer default 0) returns jsonb
language sql
set search_path = ''
as $$
  select private.list_my_orders(p_limit, p_offset)
$$;
comment on function public.list_my_orders(integer, integer) is
  'The caller''s orders, newest first, without pulls (get_order has them). Errors: not_authenticated (PT401), account_suspended (PT403), invalid_pagination (PT400).';
revoke all on function public.list_my_orders(integer, integer) from public, anon;
grant execute on function public.list_my_orders(integer, integer) to authenticated;

-- Draws every pull of a locked order with the fan's locked active seed and the rate tables the
-- caller recorded (p_pity_table only when the gacha has pity); returns counter_id -> units of
-- stock consumed. Each pull's entry is private.pick_index over the table's cumulative rates (the
-- function the statistics tests exercise through pick_entry). Without pity every roll uses the
-- base table and all are drawn by one statement; with pity the streak makes them sequential.
-- Then one statement writes the pulls, their reward box rows and reads the stock they consume.
drop function if exists private.draw_order(app.orders, timestamptz, bytea, text);
create or replace function private.draw_order(
  p_order app.orders, p_gacha app.gachas, p_seed app.fairness_seeds, p_base app.rate_tables,
  p_pity_table app.rate_tables, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_streak integer := 0;
  v_pity_rank integer;
  v_b_ids uuid[];
  v_b_rar text[];
  v_b_cum bigint[];
  v_p_ids uuid[];
  v_p_rar text[];
  v_p_cum bigint[];
  v_roll bigint;
  v_k integer;
  v_rarity text;
  v_ks integer[] := '{}';
  v_rolls bigint[] := '{}';
  v_pitys boolean[] := '{}';
  v_consumed jsonb;
  -- An order bound at creation owns its nonces; one of the first protocol takes the seed's next.
  v_first bigint := coalesce(p_order.first_nonce, p_seed.next_nonce);
begin
  -- Each table as arrays: item ids, rarities and cumulative rates in draw order.
  select array_agg((x.e ->> 0)::uuid order by x.n), array_agg(x.e ->> 1 order by x.n), array_agg(x.c order by x.n)
    into v_b_ids, v_b_rar, v_b_cum
    from (select t.e, t.n, sum((t.e ->> 2)::bigint) over (order by t.n) as c
            from jsonb_array_elements(p_base.entries) with ordinality as t (e, n)) x;
  if p_gacha.pity_pulls is null then
    select array_agg(r.roll order by r.n), array_agg(private.pick_index(v_b_cum, r.roll) order by r.n),
           array_agg(false)
      into v_rolls, v_ks, v_pitys
      from (select g.n, private.fair_roll(p_seed.server_seed, p_seed.client_seed, v_first + g.n, p_base.total_ppm)
                        as roll
              from generate_series(0, p_order.pull_count - 1) as g (n)) r;
  else
    select array_agg((x.e ->> 0)::uuid order by x.n), array_agg(x.e ->> 1 order by x.n),
           array_agg(x.c order by x.n)
      into v_p_ids, v_p_rar, v_p_cum
      from (select t.e, t.n, sum((t.e ->> 2)::bigint) over (order by t.n) as c
              from jsonb_array_elements(p_pity_table.entries) with ordinality as t (e, n)) x;
    v_pity_rank := private.rarity_rank(p_gacha.pity_rarity);
    insert into app.pity_counters (user_id, gacha_id) values (p_order.user_id, p_gacha.id)
    on conflict (user_id, gacha_id) do nothing;
    select c.streak into v_streak from app.pity_counters c
     where c.user_id = p_order.user_id and c.gacha_id = p_gacha.id for update;
    for n in 0 .. p_order.pull_count - 1 loop
      if v_streak >= p_gacha.pity_pulls - 1 then
        v_roll := private.fair_roll(p_seed.server_seed, p_seed.client_seed, v_first + n, p_pity_table.total_ppm);
        v_k := private.pick_index(v_p_cum, v_roll);
        v_rarity := v_p_rar[v_k];
        v_pitys := v_pitys || true;
      else
        v_roll := private.fair_roll(p_seed.server_seed, p_seed.client_seed, v_first + n, p_base.total_ppm);
        v_k := private.pick_index(v_b_cum, v_roll);
        v_rarity := v_b_rar[v_k];
        v_pitys := v_pitys || false;
      end if;
      v_ks := v_ks || v_k;
      v_rolls := v_rolls || v_roll;
      v_streak := case when private.rarity_rank(v_rarity) >= v_pity_rank then 0 else v_streak + 1 end;
    end loop;
    update app.pity_counters c set streak = v_streak
     where c.user_id = p_order.user_id and c.gacha_id = p_gacha.id;
  end if;
  -- A roll beyond its table (pick_index null) cannot happen (total_ppm is the table's sum);
  -- refuse it rather than write a pull without an item.
  if array_position(v_ks, null) is not null then
    raise exception using errcode = 'PT400', message = 'invalid_range', detail = 'roll beyond the rate table';
  end if;
  -- Pulls in nonce order (ids ascend with the nonce), each with its reward, and the stock drawn.
  with pu as (
    insert into app.pulls (order_id, user_id, gacha_id, gacha_item_id, rarity, seed_id, nonce, roll,
                           rate_table_version, pity, created_at)
    select p_order.id, p_order.user_id, p_gacha.id,
           case when u.pity then v_p_ids[u.k] else v_b_ids[u.k] end,
           case when u.pity then v_p_rar[u.k] else v_b_rar[u.k] end,
           p_seed.id, v_first + u.n - 1, u.roll,
           case when u.pity then p_pity_table.version else p_base.version end, u.pity, p_now
      from unnest(v_ks, v_rolls, v_pitys) with ordinality as u (k, roll, pity, n)
     order by u.n
    returning id, gacha_item_id),
  pi as (
    select pu.id, i.id as item_id, i.content_bucket, i.content_path, i.stock
      from pu join app.gacha_items i on i.id = pu.gacha_item_id),
  rw as (
    insert into app.user_rewards (user_id, source, pull_id, gacha_item_id, content_bucket, content_path, created_at)
    select p_order.user_id, 'pull', pi.id, pi.item_id, pi.content_bucket, pi.content_path, p_now
      from pi
     order by pi.id)
  select coalesce(jsonb_object_agg(x.item_id, x.units), '{}'::jsonb) into v_consumed
    from (select pi.item_id, count(*)::integer as units from pi where pi.stock is not null group by pi.item_id) x;
  if p_order.first_nonce is null then
    update app.fairness_seeds s set next_nonce = next_nonce + p_order.pull_count where s.id = p_seed.id;
  end if;
  return v_consumed;
end
$$;
comment on function private.draw_order(app.orders, app.gachas, app.fairness_seeds, app.rate_tables, app.rate_tables,
                                       timestamptz) is
  'security definer: draws an order''s pulls (provably fair, pity per DESIGN.md section 4) with the locked seed '
  'and the recorded rate tables into app.pulls and the reward box (set-based); returns the stock consumed per item.';
revoke all on function private.draw_order(app.orders, app.gachas, app.fairness_seeds, app.rate_tables,
                                          app.rate_tables, timestamptz) from public;

create or replace function private.fulfill_order(
  p_order_id uuid, p_provider text, p_provider_payment_id text, p_amount integer, p_currency text,
  p_now timestamptz, p_server_seed bytea, p_client_seed text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
  v_gacha app.gachas;
  v_base app.rate_tables;
  v_pity_table app.rate_tables;
  v_seed app.fairness_seeds;
  v_consumed jsonb;
  r record;
begin
  if p_provider is null or p_provider !~ '^[a-z][a-z0-9_]{0,29}$' then
    raise exception using errcode = 'PT400', message = 'invalid_provider', detail = 'p_provider is e.g. stripe or komoju';
  end if;
  if p_provider_payment_id is null or char_length(p_provider_payment_id) not between 1 and 255 then
    raise exception using errcode = 'PT400', message = 'invalid_provider_payment_id',
      detail = 'p_provider_payment_id is 1 to 255 characters';
  end if;
  select * into o from app.orders x where x.id = p_order_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  if p_amount is distinct from o.amount_jpy or upper(coalesce(p_currency, '')) <> o.currency then
    raise exception using errcode = 'PT409', message = 'amount_mismatch',
      detail = format('the order is %s %s; the payment is %s %s', o.amount_jpy, o.currency, p_amount, p_currency);
  end if;
  if o.status = 'fulfilled' then
    return jsonb_build_object('order_id', o.id, 'status', o.status, 'fulfilled', false,
                              'provider', o.provider, 'provider_payment_id', o.provider_payment_id);
  end if;
  if exists (select 1 from app.orders x where x.provider = p_provider
               and x.provider_payment_id = p_provider_payment_id and x.id <> o.id) then
    raise exception using errcode = 'PT409', message = 'payment_already_used',
      detail = 'this provider payment already paid another order';
  end if;
  -- Lock order: everything the draw waits for (rate tables being recorded, the fan's seed) is
  -- taken before any stock shard, so a fulfilment never waits for them while holding a shard.
  select * into v_gacha from app.gachas g where g.id = o.gacha_id;
  if o.seed_id is not null then
    -- Bound at creation: the committed seed, nonces and published tables, never the live items.
    -- The lock keeps a rotation from revealing the seed while this draw runs, and (as before
    -- draws were bound) serialises one fan's fulfilments, which take the pity counter and the
    -- shards in an order that is only safe one at a time per fan.
    select * into v_seed from app.fairness_seeds s where s.id = o.seed_id for update;
    if not v_seed.active then
      -- The outcome was public before the payment: drawing now would let a payer choose to pay
      -- only for good outcomes. The provider's money goes back instead.
      raise exception using errcode = 'PT409', message = 'order_cannot_be_fulfilled',
        detail = format('the order was %s and its seed has been revealed since: refund the payment', o.status);
    end if;
    select * into v_base from app.rate_tables t where t.version = o.rate_table_version;
    if o.pity_rate_table_version is not null then
      select * into v_pity_table from app.rate_tables t where t.version = o.pity_rate_table_version;
    end if;
  else
    -- An order of the first protocol (created before draws were bound): each rate table is
    -- recorded here and the fan's active pair is used from its next nonce.
    v_base := private.rate_table(o.gacha_id, false);
    if v_gacha.pity_pulls is not null then
      v_pity_table := private.rate_table(o.gacha_id, true);
    end if;
    v_seed := private.lock_seed_for_order(o.user_id,
                                          encode(extensions.digest(convert_to(o.idempotency_key, 'UTF8'), 'sha256'), 'hex'),
                                          p_server_seed, p_now);
  end if;
  if o.status <> 'pending' then
    -- Paid after expiry or failure: the provider is authoritative, so honour it if capacity allows.
    begin
      perform private.reserve_order_capacity(o.id, o.gacha_id, o.pull_count);
    exception when sqlstate 'PT409' then
      raise exception using errcode = 'PT409', message = 'order_cannot_be_fulfilled',
        detail = format('the order was %s and its gacha has no capacity left: refund the payment', o.status);
    end;
  end if;
  v_consumed := private.draw_order(o, v_gacha, v_seed, v_base, v_pity_table, p_now);
  -- What was drawn is sold; the rest of each reservation goes back. The pull cap is all consumed.
  if exists (select 1 from app.order_reservations x where x.order_id = o.id) then
    -- The pull cap's counter is the gacha's own id (reserve_order_capacity), and all of it is
    -- consumed; a key for a counter the order did not reserve is ignored by the settlement.
    perform private.settle_reservations(array[o.id],
                                        v_consumed || jsonb_build_object(o.gacha_id::text, o.pull_count));
  end if;
  if v_consumed <> '{}'::jsonb then
    for r in select (e.key)::uuid as item_id, (e.value)::integer as units from jsonb_each_text(v_consumed) e
              order by 1 loop
      update app.gacha_items i set stock_remaining = stock_remaining - r.units where i.id = r.item_id;
    end loop;
  end if;
  perform private.post_medals(o.user_id, o.vtuber_id, o.medals, 'pull_grant', o.id, null, null, p_now);
  update app.orders x set status = 'fulfilled', provider = p_provider, provider_payment_id = p_provider_payment_id,
                          paid_at = p_now, fulfilled_at = p_now
   where x.id = o.id;
  return jsonb_build_object('order_id', o.id, 'status', 'fulfilled', 'fulfilled', true,
                            'provider', p_provider, 'provider_payment_id', p_provider_payment_id);
end
$$;
comment on function private.fulfill_order(uuid, text, text, integer, text, timestamptz, bytea, text) is
  'security definer: exactly-once fulfilment under the order''s row lock: draws (with the seed, nonces and rate '
  'tables bound at creation), rewards, medals, stock; refuses an order whose seed was revealed before payment.';
revoke all on function private.fulfill_order(uuid, text, text, integer, text, timestamptz, bytea, text) from public;

create or replace function private.service_fulfill_order(
  p_order_id uuid, p_provider text, p_provider_payment_id text, p_amount integer, p_currency text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
begin
  return private.fulfill_order(p_order_id, p_provider, p_provider_payment_id, p_amount, p_currency, now(),
                               extensions.gen_random_bytes(32), encode(extensions.gen_random_bytes(16), 'hex'));
end
$$;
comment on function private.service_fulfill_order(uuid, text, text, integer, text) is
  'security definer: the body of public.service_fulfill_order (service role only: only service_role may execute it); the payment service calls it for a verified provider event, and it fulfils the order at now() with fresh randomness.';
revoke all on function private.service_fulfill_order(uuid, text, text, integer, text) from public, anon;
grant execute on function private.service_fulfill_order(uuid, text, text, integer, text) to service_role;

-- PL/pgSQL rather than SQL: a SQL function that cannot be inlined (its search_path setting
-- prevents it) is parsed and planned again at every call, PL/pgSQL keeps its plan for the session;
-- on the money path that is ~30 us a fulfilment.
create or replace function public.service_fulfill_order(
  p_order_id uuid, p_provider text, p_provider_payment_id text, p_amount integer, p_currency text
) returns jsonb
language plpgsql
set search_path = ''
as $$
begin
  return private.service_fulfill_order(p_order_id, p_provider, p_provider_payment_id, p_amount, p_currency);
end
$$;
comment on function public.service_fulfill_order(uuid, text, text, integer, text) is
  'Service (payment confirmation): fulfils the order exactly once whatever the number of calls: draws every pull, '
  'puts the items in the reward box, credits the medals, marks it fulfilled; honoured even if the gacha ended '
  '(or the order expired, while capacity allows and its seed is still unrevealed). Returns {order_id, status, fulfilled, provider, '
  'provider_payment_id}; fulfilled is true only for the call that fulfilled. Errors: invalid_provider, invalid_provider_payment_id (PT400), order_not_found (PT404), '
  'amount_mismatch, payment_already_used, order_cannot_be_fulfilled (PT409).';
revoke all on function public.service_fulfill_order(uuid, text, text, integer, text) from public, anon, authenticated;
grant execute on function public.service_fulfill_order(uuid, text, text, integer, text) to service_role;

create or replace function private.fail_order(p_order_id uuid, p_status text, p_now timestamptz) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
begin
  if p_status is null or p_status not in ('failed', 'canceled', 'expired') then
    raise exception using errcode = 'PT400', message = 'invalid_status',
      detail = 'p_status is failed, canceled or expired';
  end if;
  select * into o from app.orders x where x.id = p_order_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  if o.status <> 'pending' then
    return jsonb_build_object('order_id', o.id, 'status', o.status, 'changed', false);
  end if;
  update app.orders x set status = p_status where x.id = o.id;
  perform private.settle_reservations(array[o.id], null);
  return jsonb_build_object('order_id', o.id, 'status', p_status, 'changed', true, 'at', p_now);
end
$$;
comment on function private.fail_order(uuid, text, timestamptz) is
  'security definer: a pending order becomes failed/canceled/expired and releases its reservations.';
revoke all on function private.fail_order(uuid, text, timestamptz) from public;

create or replace function private.service_fail_order(p_order_id uuid, p_status text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
begin
  return private.fail_order(p_order_id, p_status, now());
end
$$;
comment on function private.service_fail_order(uuid, text) is
  'security definer: the body of public.service_fail_order (service role only: only service_role may execute it); marks a pending order failed or expired at now().';
revoke all on function private.service_fail_order(uuid, text) from public, anon;
grant execute on function private.service_fail_order(uuid, text) to service_role;

create or replace function public.service_fail_order(p_order_id uuid, p_status text) returns jsonb
language sql
set search_path = ''
as $$
  select private.service_fail_order(p_order_id, p_status)
$$;
comment on function public.service_fail_order(uuid, text) is
  'Service: a pending order becomes failed, canceled or expired and releases its reservations; other states are '
  'left alone (changed: false). Returns {order_id, status, changed}. Errors: '
  'invalid_status (PT400), order_not_found (PT404).';
revoke all on function public.service_fail_order(uuid, text) from public, anon, authenticated;
grant execute on function public.service_fail_order(uuid, text) to service_role;
