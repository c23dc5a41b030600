-- Issue 7 (fulfil-sql): the draw writes pulls and rewards with one set-based statement, each rate
-- table is recorded once per order and handed to the draw, the seed is read and locked once.

-- Draws every pull of a locked order with the fan's locked active seed and the rate tables the
-- caller recorded (p_pity_table only when the gacha has pity); returns counter_id -> units of
-- stock consumed. The rolls are drawn first (the pity streak makes them sequential), then the
-- pulls and the reward box rows are written by one statement.
drop function if exists private.draw_order(app.orders, timestamptz, bytea, text);
create or replace function private.draw_order(
  p_order app.orders, p_gacha app.gachas, p_seed app.fairness_seeds, p_base app.rate_tables,
  p_pity_table app.rate_tables, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_has_pity boolean := p_gacha.pity_pulls is not null;
  v_streak integer := 0;
  v_pity_rank integer;
  v_b_ids uuid[];
  v_b_rar text[];
  v_b_cum bigint[];
  v_p_ids uuid[];
  v_p_rar text[];
  v_p_cum bigint[];
  v_is_pity boolean;
  v_roll bigint;
  v_k integer;
  v_rarity text;
  v_items uuid[] := '{}';
  v_rars text[] := '{}';
  v_rolls bigint[] := '{}';
  v_pitys boolean[] := '{}';
  v_consumed jsonb;
begin
  -- Each table as arrays: item ids, rarities and cumulative rates in draw order.
  select array_agg((x.e ->> 0)::uuid order by x.n), array_agg(x.e ->> 1 order by x.n), array_agg(x.c order by x.n)
    into v_b_ids, v_b_rar, v_b_cum
    from (select t.e, t.n, sum((t.e ->> 2)::bigint) over (order by t.n) as c
            from jsonb_array_elements(p_base.entries) with ordinality as t (e, n)) x;
  if v_has_pity then
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
  end if;
  for n in 0 .. p_order.pull_count - 1 loop
    v_is_pity := v_has_pity and v_streak >= p_gacha.pity_pulls - 1;
    -- The entry whose cumulative range holds the roll (private.pick_entry over arrays).
    v_k := 1;
    if v_is_pity then
      v_roll := private.fair_roll(p_seed.server_seed, p_seed.client_seed, p_seed.next_nonce + n,
                                  p_pity_table.total_ppm);
      while v_k <= cardinality(v_p_cum) and v_roll >= v_p_cum[v_k] loop
        v_k := v_k + 1;
      end loop;
      if v_k > cardinality(v_p_cum) then
        raise exception using errcode = 'PT400', message = 'invalid_range', detail = 'roll beyond the rate table';
      end if;
      v_items := v_items || v_p_ids[v_k];
      v_rarity := v_p_rar[v_k];
    else
      v_roll := private.fair_roll(p_seed.server_seed, p_seed.client_seed, p_seed.next_nonce + n, p_base.total_ppm);
      while v_k <= cardinality(v_b_cum) and v_roll >= v_b_cum[v_k] loop
        v_k := v_k + 1;
      end loop;
      if v_k > cardinality(v_b_cum) then
        raise exception using errcode = 'PT400', message = 'invalid_range', detail = 'roll beyond the rate table';
      end if;
      v_items := v_items || v_b_ids[v_k];
      v_rarity := v_b_rar[v_k];
    end if;
    v_rars := v_rars || v_rarity;
    v_rolls := v_rolls || v_roll;
    v_pitys := v_pitys || v_is_pity;
    if v_has_pity then
      v_streak := case when private.rarity_rank(v_rarity) >= v_pity_rank then 0 else v_streak + 1 end;
    end if;
  end loop;
  -- Pulls in nonce order (ids ascend with the nonce), each with its reward.
  with pu as (
    insert into app.pulls (order_id, user_id, gacha_id, gacha_item_id, rarity, seed_id, nonce, roll,
                           rate_table_version, pity, created_at)
    select p_order.id, p_order.user_id, p_gacha.id, u.item, u.rarity, p_seed.id, p_seed.next_nonce + u.n - 1,
           u.roll, case when u.pity then p_pity_table.version else p_base.version end, u.pity, p_now
      from unnest(v_items, v_rars, v_rolls, v_pitys) with ordinality as u (item, rarity, roll, pity, n)
     order by u.n
    returning id, gacha_item_id)
  insert into app.user_rewards (user_id, source, pull_id, gacha_item_id, content_bucket, content_path, created_at)
  select p_order.user_id, 'pull', pu.id, i.id, i.content_bucket, i.content_path, p_now
    from pu join app.gacha_items i on i.id = pu.gacha_item_id
   order by pu.id;
  select coalesce(jsonb_object_agg(i.id, x.units), '{}'::jsonb) into v_consumed
    from (select u.item, count(*)::integer as units from unnest(v_items) as u (item) group by u.item) x
    join app.gacha_items i on i.id = x.item
   where i.stock is not null;
  update app.fairness_seeds s set next_nonce = next_nonce + p_order.pull_count where s.id = p_seed.id;
  if v_has_pity then
    update app.pity_counters c set streak = v_streak
     where c.user_id = p_order.user_id and c.gacha_id = p_gacha.id;
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
  v_keep jsonb;
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
  -- Each rate table is recorded once here and handed to the draw.
  select * into v_gacha from app.gachas g where g.id = o.gacha_id;
  v_base := private.rate_table(o.gacha_id, false);
  if v_gacha.pity_pulls is not null then
    v_pity_table := private.rate_table(o.gacha_id, true);
  end if;
  select * into v_seed from app.fairness_seeds s where s.user_id = o.user_id and s.active for update;
  if not found then
    -- No seed yet (or it was rotated meanwhile): create or find it, then lock it.
    v_seed := private.ensure_fairness_seed(o.user_id, p_server_seed, p_client_seed, p_now);
    select * into v_seed from app.fairness_seeds s where s.id = v_seed.id for update;
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
    v_keep := v_consumed;
    for r in select distinct x.counter_id, s.kind from app.order_reservations x
               join app.stock_shards s on s.counter_id = x.counter_id and s.shard = x.shard
              where x.order_id = o.id and s.kind = 'pull_cap' loop
      v_keep := v_keep || jsonb_build_object(r.counter_id::text, o.pull_count);
    end loop;
    perform private.settle_reservations(array[o.id], v_keep);
  end if;
  for r in select (e.key)::uuid as item_id, (e.value)::integer as units from jsonb_each_text(v_consumed) e
            order by 1 loop
    update app.gacha_items i set stock_remaining = stock_remaining - r.units where i.id = r.item_id;
  end loop;
  perform private.post_medals(o.user_id, o.vtuber_id, o.medals, 'pull_grant', o.id, null, null, p_now);
  update app.orders x set status = 'fulfilled', provider = p_provider, provider_payment_id = p_provider_payment_id,
                          paid_at = p_now, fulfilled_at = p_now
   where x.id = o.id;
  return jsonb_build_object('order_id', o.id, 'status', 'fulfilled', 'fulfilled', true,
                            'provider', p_provider, 'provider_payment_id', p_provider_payment_id);
end
$$;
comment on function private.fulfill_order(uuid, text, text, integer, text, timestamptz, bytea, text) is
  'security definer: exactly-once fulfilment under the order''s row lock: draws, rewards, medals, stock.';
revoke all on function private.fulfill_order(uuid, text, text, integer, text, timestamptz, bytea, text) from public;
