-- from sql/economy/10_fairness.sql
-- Provably fair draws (docs/fairness.md): per-fan server seed committed by its SHA-256,
-- client seed, nonce + 1 per pull, roll = HMAC-SHA256 mapped onto [0, range) by rejection
-- sampling, item = the one whose cumulative rate range holds the roll.

-- The roll for one pull: uniform on [0, p_range), p_range in 1..1000000.
create or replace function private.fair_roll(
  p_server_seed bytea, p_client_seed text, p_nonce bigint, p_range integer
) returns bigint
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  v_limit bigint;
  v_mac bytea;
  v_x bigint;
  v_round integer := 0;
begin
  if p_range < 1 or p_range > 1000000 then
    raise exception using errcode = 'PT400', message = 'invalid_range', detail = 'range must be 1..1000000';
  end if;
  -- largest multiple of p_range that fits in 32 bits: values at or above it are rejected
  v_limit := (4294967296 / p_range) * p_range;
  loop
    v_mac := extensions.hmac(convert_to(p_client_seed || ':' || p_nonce::text || ':' || v_round::text, 'UTF8'),
                             p_server_seed, 'sha256');
    v_x := (get_byte(v_mac, 0)::bigint << 24) | (get_byte(v_mac, 1)::bigint << 16)
           | (get_byte(v_mac, 2)::bigint << 8) | get_byte(v_mac, 3)::bigint;
    if v_x < v_limit then
      return v_x % p_range;
    end if;
    v_round := v_round + 1;
  end loop;
end
$$;
comment on function private.fair_roll(bytea, text, bigint, integer) is
  'Provably fair roll: first 4 bytes (big-endian) of HMAC-SHA256(server seed, "client:nonce:round"), '
  'rejected at or above the largest multiple of range below 2^32, else modulo range.';
revoke all on function private.fair_roll(bytea, text, bigint, integer) from public;

-- The rate table a draw uses: the gacha's items in draw order (sort_order, id); with p_pity only
-- those of at least the pity rarity (at their relative rates). Stored once, keyed by its SHA-256.
create or replace function private.rate_table(p_gacha_id uuid, p_pity boolean) returns app.rate_tables
language plpgsql security definer
set search_path = ''
as $$
declare
  v_min_rank integer := 0;
  v_text text;
  v_entries jsonb;
  v_total integer;
  v_version text;
  v_row app.rate_tables;
begin
  if p_pity then
    select private.rarity_rank(g.pity_rarity) into v_min_rank from app.gachas g where g.id = p_gacha_id;
  end if;
  select string_agg(format('%s:%s:%s', i.id, i.rarity, i.rate_ppm), e'\n' order by i.sort_order, i.id),
         jsonb_agg(jsonb_build_array(i.id, i.rarity, i.rate_ppm) order by i.sort_order, i.id),
         sum(i.rate_ppm)::integer
    into v_text, v_entries, v_total
    from app.gacha_items i
   where i.gacha_id = p_gacha_id and i.rate_ppm > 0 and private.rarity_rank(i.rarity) >= v_min_rank;
  if v_total is null or v_total < 1 then
    raise exception using errcode = 'PT409', message = 'gacha_not_on_sale',
      detail = 'this gacha has no drawable item';
  end if;
  v_version := encode(extensions.digest(convert_to(v_text, 'UTF8'), 'sha256'), 'hex');
  select * into v_row from app.rate_tables t where t.version = v_version;
  if not found then
    insert into app.rate_tables (version, gacha_id, pity, total_ppm, entries)
    values (v_version, p_gacha_id, p_pity, v_total, v_entries)
    on conflict (version) do nothing;
    select * into v_row from app.rate_tables t where t.version = v_version;
  end if;
  return v_row;
end
$$;
comment on function private.rate_table(uuid, boolean) is
  'security definer: reads the gacha''s items and records the rate table (app.rate_tables) a draw uses; '
  'version = SHA-256 of the lines "item_id:rarity:rate_ppm" in draw order.';
revoke all on function private.rate_table(uuid, boolean) from public;

-- Which entry of a rate table holds a roll: the first whose cumulative rate exceeds it.
create or replace function private.pick_entry(p_entries jsonb, p_roll bigint) returns jsonb
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  v_cum bigint := 0;
  v_entry jsonb;
begin
  for v_entry in select e from jsonb_array_elements(p_entries) e loop
    v_cum := v_cum + (v_entry ->> 2)::bigint;
    if p_roll < v_cum then
      return v_entry;
    end if;
  end loop;
  raise exception using errcode = 'PT400', message = 'invalid_range', detail = 'roll beyond the rate table';
end
$$;
comment on function private.pick_entry(jsonb, bigint) is
  'The [item_id, rarity, rate_ppm] entry whose cumulative range [sum before, sum before + rate) holds the roll.';
revoke all on function private.pick_entry(jsonb, bigint) from public;

-- The fan's active seed; created from the given randomness when the fan has none.
create or replace function private.ensure_fairness_seed(
  p_user uuid, p_server_seed bytea, p_client_seed text, p_now timestamptz
) returns app.fairness_seeds
language plpgsql security definer
set search_path = ''
as $$
declare
  v_seed app.fairness_seeds;
begin
  select * into v_seed from app.fairness_seeds s where s.user_id = p_user and s.active;
  if found then
    return v_seed;
  end if;
  insert into app.fairness_seeds (user_id, server_seed, server_seed_hash, client_seed, created_at)
  values (p_user, p_server_seed, encode(extensions.digest(p_server_seed, 'sha256'), 'hex'), p_client_seed, p_now)
  on conflict (user_id) where active do nothing;
  select * into v_seed from app.fairness_seeds s where s.user_id = p_user and s.active;
  return v_seed;
end
$$;
comment on function private.ensure_fairness_seed(uuid, bytea, text, timestamptz) is
  'security definer: writes app.fairness_seeds (no API role may); the core takes the randomness as arguments.';
revoke all on function private.ensure_fairness_seed(uuid, bytea, text, timestamptz) from public;

create or replace function private.fairness_seed_json(p_seed app.fairness_seeds, p_reveal boolean) returns jsonb
language sql immutable
set search_path = ''
as $$
  select jsonb_build_object('seed_id', p_seed.id, 'server_seed_hash', p_seed.server_seed_hash,
                            'client_seed', p_seed.client_seed, 'next_nonce', p_seed.next_nonce,
                            'active', p_seed.active, 'created_at', p_seed.created_at,
                            'revealed_at', p_seed.revealed_at)
         || case when p_reveal and not p_seed.active
                 then jsonb_build_object('server_seed', encode(p_seed.server_seed, 'hex'))
                 else '{}'::jsonb end
$$;
comment on function private.fairness_seed_json(app.fairness_seeds, boolean) is
  'A seed as JSON; the server seed only once revealed (never while active).';
revoke all on function private.fairness_seed_json(app.fairness_seeds, boolean) from public;

-- Rotation: the active seed is revealed and a new one (committed by its hash) takes over.
create or replace function private.rotate_fairness_seed(
  p_user uuid, p_new_server_seed bytea, p_client_seed text, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_old app.fairness_seeds;
  v_new app.fairness_seeds;
begin
  perform private.ensure_fairness_seed(p_user, extensions.gen_random_bytes(32),
                                       encode(extensions.gen_random_bytes(16), 'hex'), p_now);
  select * into v_old from app.fairness_seeds s where s.user_id = p_user and s.active for update;
  update app.fairness_seeds s set active = false, revealed_at = p_now where s.id = v_old.id
  returning * into v_old;
  insert into app.fairness_seeds (user_id, server_seed, server_seed_hash, client_seed, created_at)
  values (p_user, p_new_server_seed, encode(extensions.digest(p_new_server_seed, 'sha256'), 'hex'),
          coalesce(p_client_seed, v_old.client_seed), p_now)
  returning * into v_new;
  return jsonb_build_object('revealed', private.fairness_seed_json(v_old, true),
                            'active', private.fairness_seed_json(v_new, false));
end
$$;
comment on function private.rotate_fairness_seed(uuid, bytea, text, timestamptz) is
  'security definer: reveals the fan''s active server seed and commits to a new one (randomness passed in).';
revoke all on function private.rotate_fairness_seed(uuid, bytea, text, timestamptz) from public;

create or replace function private.get_fairness() returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_seed app.fairness_seeds;
begin
  v_seed := private.ensure_fairness_seed(v_uid, extensions.gen_random_bytes(32),
                                         encode(extensions.gen_random_bytes(16), 'hex'), now());
  return private.fairness_seed_json(v_seed, false)
    || jsonb_build_object('revealed', coalesce((
         select jsonb_agg(private.fairness_seed_json(s, true) order by s.created_at desc)
           from (select * from app.fairness_seeds s where s.user_id = v_uid and not s.active
                  order by s.created_at desc limit 20) s), '[]'::jsonb));
end
$$;
comment on function private.get_fairness() is
  'security definer: the body of public.get_fairness; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.get_fairness() from public, anon;
grant execute on function private.get_fairness() to authenticated;

create or replace function public.get_fairness() returns jsonb
language sql
set search_path = ''
as $$
  select private.get_fairness()
$$;
comment on function public.get_fairness() is
  'The caller''s provably fair state: active seed id, server seed SHA-256, client seed, next nonce, and the '
  'last 20 revealed seeds (server seed included). Creates the first seed. Errors: not_authenticated (PT401), account_suspended (PT403).';
revoke all on function public.get_fairness() from public, anon;
grant execute on function public.get_fairness() to authenticated;

create or replace function private.set_client_seed(p_seed text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_seed app.fairness_seeds;
  v_rotation jsonb;
begin
  if p_seed is null or p_seed !~ '^[!-~]{1,64}$' then
    raise exception using errcode = 'PT400', message = 'invalid_client_seed',
      detail = 'the client seed is 1 to 64 printable ASCII characters without spaces';
  end if;
  v_seed := private.ensure_fairness_seed(v_uid, extensions.gen_random_bytes(32), p_seed, now());
  select * into v_seed from app.fairness_seeds s where s.id = v_seed.id for update;
  if v_seed.next_nonce = 0 then
    update app.fairness_seeds s set client_seed = p_seed where s.id = v_seed.id returning * into v_seed;
    return jsonb_build_object('revealed', null, 'active', private.fairness_seed_json(v_seed, false));
  end if;
  -- Pulls were made under this pair: a new client seed starts a new pair and reveals the old one.
  v_rotation := private.rotate_fairness_seed(v_uid, extensions.gen_random_bytes(32), p_seed, now());
  return v_rotation;
end
$$;
comment on function private.set_client_seed(text) is
  'security definer: the body of public.set_client_seed; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.set_client_seed(text) from public, anon;
grant execute on function private.set_client_seed(text) to authenticated;

create or replace function public.set_client_seed(p_seed text) returns jsonb
language sql
set search_path = ''
as $$
  select private.set_client_seed(p_seed)
$$;
comment on function public.set_client_seed(text) is
  'Sets the caller''s client seed. If pulls were made under the active seed, the seed is rotated (old server '
  'seed revealed) so each (server seed, client seed) pair has its own nonces. Returns {revealed, active}. '
  'fairness_seeds. Errors: not_authenticated (PT401), account_suspended (PT403), '
  'invalid_client_seed (PT400).';
revoke all on function public.set_client_seed(text) from public, anon;
grant execute on function public.set_client_seed(text) to authenticated;

create or replace function private.rotate_fairness_seed() returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  return private.rotate_fairness_seed(v_uid, extensions.gen_random_bytes(32), null, now());
end
$$;
comment on function private.rotate_fairness_seed() is
  'security definer: the body of public.rotate_fairness_seed; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.rotate_fairness_seed() from public, anon;
grant execute on function private.rotate_fairness_seed() to authenticated;

create or replace function public.rotate_fairness_seed() returns jsonb
language sql
set search_path = ''
as $$
  select private.rotate_fairness_seed()
$$;
comment on function public.rotate_fairness_seed() is
  'Reveals the caller''s active server seed (so every pull made with it can be recomputed) and commits to a '
  'new one; returns {revealed: {..., server_seed}, active: {...}}. fairness_seeds. Errors: not_authenticated (PT401), account_suspended (PT403).';
revoke all on function public.rotate_fairness_seed() from public, anon;
grant execute on function public.rotate_fairness_seed() to authenticated;

-- from sql/economy/20_medals.sql
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

-- from sql/economy/30_orders.sql
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
    'paid_at', o.paid_at, 'fulfilled_at', o.fulfilled_at);
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
  'security definer: an order as JSON (pulls, rewards and medals once fulfilled; pending past expiry reads expired).';
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
  perform private.check_spending_cap(p_user, v_amount, p_now);
  -- The seed the draw will use exists (and its hash can be shown) before anything is paid.
  v_seed := private.ensure_fairness_seed(p_user, p_server_seed, p_client_seed, p_now);
  begin
    insert into app.orders (user_id, gacha_id, vtuber_id, pull_count, amount_jpy, medals, currency,
                            idempotency_key, status, created_at, expires_at)
    values (p_user, p_gacha_id, v_gacha.vtuber_id, p_pull_count, v_amount, v_medals, 'JPY',
            p_idempotency_key, 'pending', p_now, p_now + interval '30 minutes')
    returning id into v_order_id;
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
  return private.order_json(v_order_id, p_now, true)
         || jsonb_build_object('created', true, 'seed_id', v_seed.id, 'server_seed_hash', v_seed.server_seed_hash);
end
$$;
comment on function private.create_order(uuid, uuid, integer, text, timestamptz, bytea, text) is
  'security definer: the order core (time and seed randomness passed in): snapshot, checks, reservations.';
revoke all on function private.create_order(uuid, uuid, integer, text, timestamptz, bytea, text) from public;

create or replace function private.create_order(p_gacha_id uuid, p_pull_count integer, p_idempotency_key text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  return private.create_order(v_uid, p_gacha_id, p_pull_count, p_idempotency_key, now(),
                              extensions.gen_random_bytes(32), encode(extensions.gen_random_bytes(16), 'hex'));
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
  'cap and item stock for 30 minutes; the same key returns the same order (created: false). Errors: not_authenticated (PT401), account_suspended (PT403), '
  'invalid_pull_count, invalid_idempotency_key (PT400), gacha_not_found (PT404), gacha_not_on_sale, '
  'gacha_sold_out, idempotency_key_reused (PT409), birth_date_required, spending_cap_exceeded (PT422).';
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
  'security definer: the body of public.service_expire_orders; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
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

-- Draws every pull of a locked order with the fan's active seed; returns counter_id -> units of
-- stock consumed. Rewards go in the box.
create or replace function private.draw_order(
  p_order app.orders, p_now timestamptz, p_server_seed bytea, p_client_seed text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_gacha app.gachas;
  v_base app.rate_tables;
  v_pity_table app.rate_tables;
  v_table app.rate_tables;
  v_seed app.fairness_seeds;
  v_streak integer := 0;
  v_pity_rank integer;
  v_is_pity boolean;
  v_roll bigint;
  v_entry jsonb;
  v_item app.gacha_items;
  v_pull_id bigint;
  v_consumed jsonb := '{}'::jsonb;
begin
  select * into v_gacha from app.gachas g where g.id = p_order.gacha_id;
  v_base := private.rate_table(v_gacha.id, false);
  v_seed := private.ensure_fairness_seed(p_order.user_id, p_server_seed, p_client_seed, p_now);
  select * into v_seed from app.fairness_seeds s where s.id = v_seed.id for update;
  if v_gacha.pity_pulls is not null then
    v_pity_table := private.rate_table(v_gacha.id, true);
    v_pity_rank := private.rarity_rank(v_gacha.pity_rarity);
    insert into app.pity_counters (user_id, gacha_id) values (p_order.user_id, v_gacha.id)
    on conflict (user_id, gacha_id) do nothing;
    select c.streak into v_streak from app.pity_counters c
     where c.user_id = p_order.user_id and c.gacha_id = v_gacha.id for update;
  end if;
  for n in 0 .. p_order.pull_count - 1 loop
    v_is_pity := v_gacha.pity_pulls is not null and v_streak >= v_gacha.pity_pulls - 1;
    v_table := case when v_is_pity then v_pity_table else v_base end;
    v_roll := private.fair_roll(v_seed.server_seed, v_seed.client_seed, v_seed.next_nonce + n, v_table.total_ppm);
    v_entry := private.pick_entry(v_table.entries, v_roll);
    select * into v_item from app.gacha_items i where i.id = (v_entry ->> 0)::uuid;
    insert into app.pulls (order_id, user_id, gacha_id, gacha_item_id, rarity, seed_id, nonce, roll,
                           rate_table_version, pity, created_at)
    values (p_order.id, p_order.user_id, v_gacha.id, v_item.id, v_item.rarity, v_seed.id, v_seed.next_nonce + n,
            v_roll, v_table.version, v_is_pity, p_now)
    returning id into v_pull_id;
    insert into app.user_rewards (user_id, source, pull_id, gacha_item_id, content_bucket, content_path, created_at)
    values (p_order.user_id, 'pull', v_pull_id, v_item.id, v_item.content_bucket, v_item.content_path, p_now);
    if v_item.stock is not null then
      v_consumed := jsonb_set(v_consumed, array[v_item.id::text],
                              to_jsonb(coalesce((v_consumed ->> v_item.id::text)::integer, 0) + 1));
    end if;
    if v_gacha.pity_pulls is not null then
      v_streak := case when private.rarity_rank(v_item.rarity) >= v_pity_rank then 0 else v_streak + 1 end;
    end if;
  end loop;
  update app.fairness_seeds s set next_nonce = next_nonce + p_order.pull_count where s.id = v_seed.id;
  if v_gacha.pity_pulls is not null then
    update app.pity_counters c set streak = v_streak
     where c.user_id = p_order.user_id and c.gacha_id = v_gacha.id;
  end if;
  return v_consumed;
end
$$;
comment on function private.draw_order(app.orders, timestamptz, bytea, text) is
  'security definer: draws an order''s pulls (provably fair, pity per DESIGN.md section 4) into app.pulls and '
  'the reward box; returns the stock consumed per item.';
revoke all on function private.draw_order(app.orders, timestamptz, bytea, text) from public;

create or replace function private.fulfill_order(
  p_order_id uuid, p_provider text, p_provider_payment_id text, p_amount integer, p_currency text,
  p_now timestamptz, p_server_seed bytea, p_client_seed text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
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
  perform private.rate_table(o.gacha_id, false);
  if (select g.pity_pulls from app.gachas g where g.id = o.gacha_id) is not null then
    perform private.rate_table(o.gacha_id, true);
  end if;
  perform private.ensure_fairness_seed(o.user_id, p_server_seed, p_client_seed, p_now);
  perform 1 from app.fairness_seeds s where s.user_id = o.user_id and s.active for update;
  if o.status <> 'pending' then
    -- Paid after expiry or failure: the provider is authoritative, so honour it if capacity allows.
    begin
      perform private.reserve_order_capacity(o.id, o.gacha_id, o.pull_count);
    exception when sqlstate 'PT409' then
      raise exception using errcode = 'PT409', message = 'order_cannot_be_fulfilled',
        detail = format('the order was %s and its gacha has no capacity left: refund the payment', o.status);
    end;
  end if;
  v_consumed := private.draw_order(o, p_now, p_server_seed, p_client_seed);
  -- What was drawn is sold; the rest of each reservation goes back. The pull cap is all consumed.
  v_keep := v_consumed;
  for r in select distinct x.counter_id, s.kind from app.order_reservations x
             join app.stock_shards s on s.counter_id = x.counter_id and s.shard = x.shard
            where x.order_id = o.id and s.kind = 'pull_cap' loop
    v_keep := v_keep || jsonb_build_object(r.counter_id::text, o.pull_count);
  end loop;
  perform private.settle_reservations(array[o.id], v_keep);
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
  'security definer: the body of public.service_fulfill_order; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.service_fulfill_order(uuid, text, text, integer, text) from public, anon;
grant execute on function private.service_fulfill_order(uuid, text, text, integer, text) to service_role;

create or replace function public.service_fulfill_order(
  p_order_id uuid, p_provider text, p_provider_payment_id text, p_amount integer, p_currency text
) returns jsonb
language sql
set search_path = ''
as $$
  select private.service_fulfill_order(p_order_id, p_provider, p_provider_payment_id, p_amount, p_currency)
$$;
comment on function public.service_fulfill_order(uuid, text, text, integer, text) is
  'Service (payment confirmation): fulfils the order exactly once whatever the number of calls: draws every pull, '
  'puts the items in the reward box, credits the medals, marks it fulfilled; honoured even if the gacha ended '
  '(or the order expired, while capacity allows). Returns {order_id, status, fulfilled, provider, '
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
  'security definer: the body of public.service_fail_order; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
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

-- from sql/economy/40_exchange.sql
-- Exchange of medals for a VTuber's exchange items, the shop listing with the caller's limits,
-- and the reward box.
--
-- Lock order: the fan's medal balance for the item's VTuber (serialises one fan's exchanges
-- with that VTuber, which makes the limit counts exact) -> the exchange item row (stock).

create or replace function private.exchange_json(p_exchange_id uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'exchange_id', e.id, 'exchange_item_id', e.exchange_item_id, 'vtuber_id', e.vtuber_id, 'quantity', e.quantity,
    'medals_spent', e.medals_spent, 'idempotency_key', e.idempotency_key, 'jst_date', e.jst_date,
    'created_at', e.created_at,
    'balance', (select l.new_balance from app.medal_ledger l where l.exchange_id = e.id and l.reason = 'exchange'),
    'reward_ids', coalesce((select jsonb_agg(r.id order by r.id) from app.user_rewards r where r.exchange_id = e.id),
                           '[]'::jsonb))
  from app.exchanges e where e.id = p_exchange_id
$$;
comment on function private.exchange_json(uuid) is
  'security definer: an exchange as JSON with the balance right after it and its rewards.';
revoke all on function private.exchange_json(uuid) from public;

create or replace function private.exchange_medals(
  p_user uuid, p_exchange_item_id uuid, p_quantity integer, p_idempotency_key text, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_item app.exchange_items;
  v_vtuber_status text;
  v_existing app.exchanges;
  v_jst date := (p_now at time zone 'Asia/Tokyo')::date;
  v_balance bigint;
  v_cost bigint;
  v_lifetime bigint;
  v_today bigint;
  v_exchange_id uuid;
begin
  if p_quantity is null or p_quantity not between 1 and 10 then
    raise exception using errcode = 'PT400', message = 'invalid_quantity', detail = 'p_quantity is 1..10';
  end if;
  if p_idempotency_key is null or char_length(p_idempotency_key) not between 1 and 200 then
    raise exception using errcode = 'PT400', message = 'invalid_idempotency_key',
      detail = 'p_idempotency_key is 1 to 200 characters, generated by the client once per exchange';
  end if;
  select * into v_item from app.exchange_items i where i.id = p_exchange_item_id;
  select v.status into v_vtuber_status from app.vtubers v where v.id = v_item.vtuber_id;
  if v_item.id is null then
    raise exception using errcode = 'PT404', message = 'exchange_item_not_found', detail = 'no such exchange item';
  end if;
  -- Serialise this fan's exchanges with this VTuber: limits and balance are then exact.
  perform private.lock_medal_balances(array[p_user], array[v_item.vtuber_id]);
  select * into v_existing from app.exchanges e where e.user_id = p_user and e.idempotency_key = p_idempotency_key;
  if found then
    if v_existing.exchange_item_id <> p_exchange_item_id or v_existing.quantity <> p_quantity then
      raise exception using errcode = 'PT409', message = 'idempotency_key_reused',
        detail = 'this idempotency key was used for a different exchange';
    end if;
    return private.exchange_json(v_existing.id) || jsonb_build_object('created', false);
  end if;
  if exists (select 1 from app.profiles p where p.user_id = p_user and p.status <> 'active') then
    raise exception using errcode = 'PT403', message = 'account_suspended', detail = 'this account cannot exchange';
  end if;
  if v_item.status <> 'active' or v_vtuber_status is distinct from 'approved'
     or (v_item.available_from is not null and p_now < v_item.available_from)
     or (v_item.available_until is not null and p_now >= v_item.available_until) then
    raise exception using errcode = 'PT409', message = 'exchange_not_available',
      detail = case when v_item.status <> 'active' then 'this item is retired'
                    when v_vtuber_status is distinct from 'approved' then 'this VTuber''s shop is closed'
                    when p_now < v_item.available_from then 'this item is not available yet'
                    else 'this item is no longer available' end;
  end if;
  select coalesce(sum(e.quantity), 0), coalesce(sum(e.quantity) filter (where e.jst_date = v_jst), 0)
    into v_lifetime, v_today
    from app.exchanges e where e.user_id = p_user and e.exchange_item_id = v_item.id;
  if v_item.per_fan_limit is not null and v_lifetime + p_quantity > v_item.per_fan_limit then
    raise exception using errcode = 'PT409', message = 'exchange_limit_reached',
      detail = format('at most %s per fan; %s left for you', v_item.per_fan_limit,
                      greatest(v_item.per_fan_limit - v_lifetime, 0));
  end if;
  if v_item.per_fan_daily_limit is not null and v_today + p_quantity > v_item.per_fan_daily_limit then
    raise exception using errcode = 'PT409', message = 'exchange_limit_reached',
      detail = format('at most %s per fan per day (JST); %s left today', v_item.per_fan_daily_limit,
                      greatest(v_item.per_fan_daily_limit - v_today, 0));
  end if;
  v_cost := v_item.medal_cost::bigint * p_quantity;
  select b.balance into v_balance from app.medal_balances b
   where b.user_id = p_user and b.vtuber_id = v_item.vtuber_id;
  if v_balance < v_cost then
    raise exception using errcode = 'PT409', message = 'insufficient_medals',
      detail = format('this needs %s medals of this VTuber; the balance is %s', v_cost, v_balance);
  end if;
  if v_item.total_stock is not null then
    update app.exchange_items i set total_stock = total_stock - p_quantity
     where i.id = v_item.id and i.total_stock >= p_quantity;
    if not found then
      raise exception using errcode = 'PT409', message = 'out_of_stock',
        detail = format('only %s left', (select i.total_stock from app.exchange_items i where i.id = v_item.id));
    end if;
  end if;
  insert into app.exchanges (user_id, exchange_item_id, vtuber_id, quantity, medals_spent, idempotency_key, jst_date,
                             created_at)
  values (p_user, v_item.id, v_item.vtuber_id, p_quantity, v_cost, p_idempotency_key, v_jst, p_now)
  returning id into v_exchange_id;
  perform private.post_medals(p_user, v_item.vtuber_id, -v_cost, 'exchange', null, v_exchange_id, null, p_now);
  insert into app.user_rewards (user_id, source, exchange_id, exchange_item_id, content_bucket, content_path, created_at)
  select p_user, 'exchange', v_exchange_id, v_item.id, v_item.content_bucket, v_item.content_path, p_now
    from generate_series(1, p_quantity);
  return private.exchange_json(v_exchange_id) || jsonb_build_object('created', true);
exception when unique_violation then
  -- The same key was used concurrently for an exchange with another VTuber.
  raise exception using errcode = 'PT409', message = 'idempotency_key_reused',
    detail = 'this idempotency key was used for a different exchange';
end
$$;
comment on function private.exchange_medals(uuid, uuid, integer, text, timestamptz) is
  'security definer: the exchange core (time passed in): window, limits by quantity (lifetime and JST day), '
  'balance of the item''s VTuber, stock, debit, record and reward in one transaction.';
revoke all on function private.exchange_medals(uuid, uuid, integer, text, timestamptz) from public;

create or replace function private.exchange_medals(p_exchange_item_id uuid, p_quantity integer, p_idempotency_key text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  return private.exchange_medals(v_uid, p_exchange_item_id, p_quantity, p_idempotency_key, now());
end
$$;
comment on function private.exchange_medals(uuid, integer, text) is
  'security definer: the body of public.exchange_medals; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.exchange_medals(uuid, integer, text) from public, anon;
grant execute on function private.exchange_medals(uuid, integer, text) to authenticated;

create or replace function public.exchange_medals(p_exchange_item_id uuid, p_quantity integer, p_idempotency_key text) returns jsonb
language sql
set search_path = ''
as $$
  select private.exchange_medals(p_exchange_item_id, p_quantity, p_idempotency_key)
$$;
comment on function public.exchange_medals(uuid, integer, text) is
  'Exchanges medals of the item''s VTuber for 1..10 units of an exchange item; the rewards go in the box. The same '
  'key returns the same result (created: false). Returns {exchange_id, exchange_item_id, vtuber_id, quantity, '
  'medals_spent, balance, reward_ids, jst_date, created_at, created}. '
  'Errors: not_authenticated (PT401), account_suspended (PT403), invalid_quantity, invalid_idempotency_key '
  '(PT400), exchange_item_not_found (PT404), exchange_not_available, exchange_limit_reached, insufficient_medals, '
  'out_of_stock, idempotency_key_reused (PT409).';
revoke all on function public.exchange_medals(uuid, integer, text) from public, anon;
grant execute on function public.exchange_medals(uuid, integer, text) to authenticated;

create or replace function private.list_exchange_items(p_vtuber_id uuid) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_jst date := (now() at time zone 'Asia/Tokyo')::date;
begin
  if not exists (select 1 from app.vtubers v where v.id = p_vtuber_id and v.status = 'approved') then
    raise exception using errcode = 'PT404', message = 'vtuber_not_found', detail = 'no such VTuber';
  end if;
  return jsonb_build_object(
    'vtuber_id', p_vtuber_id,
    'balance', coalesce((select b.balance from app.medal_balances b
                          where b.user_id = v_uid and b.vtuber_id = p_vtuber_id), 0),
    'items', coalesce((
      select jsonb_agg(jsonb_build_object(
               'id', i.id, 'name', i.name, 'description', i.description, 'medal_cost', i.medal_cost,
               'total_stock', i.total_stock, 'per_fan_limit', i.per_fan_limit,
               'per_fan_daily_limit', i.per_fan_daily_limit, 'available_from', i.available_from,
               'available_until', i.available_until,
               'available_now', coalesce(i.available_from <= now(), true) and coalesce(i.available_until > now(), true)
                                and coalesce(i.total_stock > 0, true),
               'exchanged', coalesce(x.lifetime, 0), 'exchanged_today', coalesce(x.today, 0),
               'remaining_limit', case when i.per_fan_limit is null then null
                                       else greatest(i.per_fan_limit - coalesce(x.lifetime, 0), 0) end,
               'remaining_today', case when i.per_fan_daily_limit is null then null
                                       else greatest(i.per_fan_daily_limit - coalesce(x.today, 0), 0) end)
             order by i.created_at, i.id)
        from app.exchange_items i
        left join lateral (select sum(e.quantity) as lifetime,
                                  sum(e.quantity) filter (where e.jst_date = v_jst) as today
                             from app.exchanges e where e.user_id = v_uid and e.exchange_item_id = i.id) x on true
       where i.vtuber_id = p_vtuber_id and i.status = 'active'), '[]'::jsonb));
end
$$;
comment on function private.list_exchange_items(uuid) is
  'security definer: the body of public.list_exchange_items; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.list_exchange_items(uuid) from public, anon;
grant execute on function private.list_exchange_items(uuid) to authenticated;

create or replace function public.list_exchange_items(p_vtuber_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.list_exchange_items(p_vtuber_id)
$$;
comment on function public.list_exchange_items(uuid) is
  'A VTuber''s active exchange items with the caller''s balance of that VTuber''s medals and remaining lifetime and '
  'JST-daily limits. Errors: not_authenticated '
  '(PT401), account_suspended (PT403), vtuber_not_found (PT404).';
revoke all on function public.list_exchange_items(uuid) from public, anon;
grant execute on function public.list_exchange_items(uuid) to authenticated;

create or replace function private.list_my_rewards(p_limit integer default 50, p_offset integer default 0) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_limit is null or p_limit not between 1 and 200 or p_offset is null or p_offset not between 0 and 100000 then
    raise exception using errcode = 'PT400', message = 'invalid_pagination',
      detail = 'p_limit is 1..200 and p_offset 0..100000';
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'id', r.id, 'source', r.source, 'pull_id', r.pull_id, 'exchange_id', r.exchange_id,
             'gacha_item_id', r.gacha_item_id, 'exchange_item_id', r.exchange_item_id,
             'name', coalesce(gi.name, ei.name), 'rarity', gi.rarity, 'vtuber_id', coalesce(g.vtuber_id, ei.vtuber_id),
             'revoked', r.revoked_at is not null, 'revoked_at', r.revoked_at, 'created_at', r.created_at)
           order by r.created_at desc, r.id)
      from (select * from app.user_rewards x where x.user_id = v_uid
             order by x.created_at desc, x.id limit p_limit offset p_offset) r
      left join app.gacha_items gi on gi.id = r.gacha_item_id
      left join app.gachas g on g.id = gi.gacha_id
      left join app.exchange_items ei on ei.id = r.exchange_item_id), '[]'::jsonb);
end
$$;
comment on function private.list_my_rewards(integer, integer) is
  'security definer: the body of public.list_my_rewards; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.list_my_rewards(integer, integer) from public, anon;
grant execute on function private.list_my_rewards(integer, integer) to authenticated;

create or replace function public.list_my_rewards(p_limit integer default 50, p_offset integer default 0) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.list_my_rewards(p_limit, p_offset)
$$;
comment on function public.list_my_rewards(integer, integer) is
  'The caller''s reward box (特典BOX), newest first: drawn and exchanged items, revoked ones marked. '
  'Errors: not_authenticated (PT401), account_suspended (PT403), invalid_pagination '
  '(PT400).';
revoke all on function public.list_my_rewards(integer, integer) from public, anon;
grant execute on function public.list_my_rewards(integer, integer) to authenticated;
