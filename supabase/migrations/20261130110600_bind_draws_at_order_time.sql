-- from sql/economy/10_fairness.sql
-- Provably fair draws (docs/fairness.md): per-fan server seed committed by its SHA-256 before
-- the fan chooses the client seed, nonce + 1 per pull (bound to the order when it is created),
-- roll = HMAC-SHA256 mapped onto [0, range) by rejection sampling, item = the one whose
-- cumulative rate range holds the roll, rate tables published in a hash-chained log.

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
  'security definer: writes app.fairness_seeds (no API role may); the core takes the randomness as arguments. '
  'No API path calls it any more (its client seed would be the server''s): tests use it to fix a known pair.';
revoke all on function private.ensure_fairness_seed(uuid, bytea, text, timestamptz) from public;

-- ---------------------------------------------------------------------------------------
-- Commit first, then let the fan choose (docs/fairness.md, "Seeds"). A fan always has one
-- committed NEXT server seed (app.fairness_next_seeds) whose SHA-256 get_fairness shows. A pair
-- becomes active only when a client seed arrives that the server had not seen when that next
-- seed was committed: the fan's own (set_client_seed), or SHA-256 of the idempotency key of the
-- first order placed without an active pair. Activation moves the committed seed into
-- app.fairness_seeds and only then commits a fresh next one. Nothing here ever generates a
-- server seed and uses it with a client seed it has already seen.
-- ---------------------------------------------------------------------------------------

-- The fan's committed next seed; committed from the given randomness when the fan has none.
create or replace function private.ensure_next_seed(p_user uuid, p_server_seed bytea, p_now timestamptz)
returns app.fairness_next_seeds
language plpgsql security definer
set search_path = ''
as $$
declare
  v_next app.fairness_next_seeds;
begin
  select * into v_next from app.fairness_next_seeds n where n.user_id = p_user;
  if found then
    return v_next;
  end if;
  insert into app.fairness_next_seeds (user_id, server_seed, server_seed_hash, committed_at)
  values (p_user, p_server_seed, encode(extensions.digest(p_server_seed, 'sha256'), 'hex'), p_now)
  on conflict (user_id) do nothing;
  select * into v_next from app.fairness_next_seeds n where n.user_id = p_user;
  return v_next;
end
$$;
comment on function private.ensure_next_seed(uuid, bytea, timestamptz) is
  'security definer: commits the fan''s next server seed (app.fairness_next_seeds, which no API role may '
  'write) when there is none; randomness passed in.';
revoke all on function private.ensure_next_seed(uuid, bytea, timestamptz) from public;

-- Activates the committed next seed with a client seed and commits a fresh next seed. When a
-- concurrent call activated a pair first, that pair is returned (locked).
create or replace function private.activate_next_seed(
  p_user uuid, p_client_seed text, p_source text, p_new_server_seed bytea, p_now timestamptz
) returns app.fairness_seeds
language plpgsql security definer
set search_path = ''
as $$
declare
  v_next app.fairness_next_seeds;
  v_seed app.fairness_seeds;
begin
  -- One activation at a time per fan (rare: once per pair), then look again: a concurrent one may
  -- have committed a pair (and a new next seed) meanwhile.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('fairness_seed:' || p_user::text, 0));
  select * into v_seed from app.fairness_seeds s where s.user_id = p_user and s.active for update;
  if found then
    return v_seed;
  end if;
  delete from app.fairness_next_seeds n where n.user_id = p_user returning * into v_next;
  if not found then
    -- Never generate a seed here: it would be chosen after seeing this client seed.
    raise exception using errcode = 'PT409', message = 'fairness_seed_not_committed',
      detail = 'no server seed was committed for you before this request: call get_fairness, then retry';
  end if;
  -- A client seed the server already knew when it committed this seed (one the fan used
  -- before) could have been ground against: only a new one may activate it.
  if exists (select 1 from app.fairness_seeds s
              where s.user_id = p_user and s.client_seed = p_client_seed and s.created_at <= v_next.committed_at) then
    raise exception using errcode = 'PT409', message = 'client_seed_reused',
      detail = 'you used this client seed before the current commitment was made: choose a new one';
  end if;
  insert into app.fairness_seeds (user_id, server_seed, server_seed_hash, client_seed, created_at,
                                  committed_at, client_seed_source)
  values (p_user, v_next.server_seed, v_next.server_seed_hash, p_client_seed, p_now, v_next.committed_at, p_source)
  returning * into v_seed;
  insert into app.fairness_next_seeds (user_id, server_seed, server_seed_hash, committed_at)
  values (p_user, p_new_server_seed, encode(extensions.digest(p_new_server_seed, 'sha256'), 'hex'), p_now);
  return v_seed;
end
$$;
comment on function private.activate_next_seed(uuid, text, text, bytea, timestamptz) is
  'security definer: the committed next seed becomes the active pair with the given client seed, then a fresh '
  'next seed is committed (randomness passed in); raises fairness_seed_not_committed (PT409) if none was, '
  'client_seed_reused (PT409) for a client seed the fan used before that seed was committed.';
revoke all on function private.activate_next_seed(uuid, text, text, bytea, timestamptz) from public;

-- The fan's active pair, locked, for an order: activated from the committed next seed with the
-- order's derived client seed when the fan has none.
create or replace function private.lock_seed_for_order(
  p_user uuid, p_client_seed text, p_new_server_seed bytea, p_now timestamptz
) returns app.fairness_seeds
language plpgsql security definer
set search_path = ''
as $$
declare
  v_seed app.fairness_seeds;
begin
  select * into v_seed from app.fairness_seeds s where s.user_id = p_user and s.active for update;
  if found then
    return v_seed;
  end if;
  v_seed := private.activate_next_seed(p_user, p_client_seed, 'order', p_new_server_seed, p_now);
  select * into v_seed from app.fairness_seeds s where s.id = v_seed.id for update;
  return v_seed;
end
$$;
comment on function private.lock_seed_for_order(uuid, text, bytea, timestamptz) is
  'security definer: locks the fan''s active seed pair, activating the committed next seed first if needed.';
revoke all on function private.lock_seed_for_order(uuid, text, bytea, timestamptz) from public;

create or replace function private.fairness_seed_json(p_seed app.fairness_seeds, p_reveal boolean) returns jsonb
language sql immutable
set search_path = ''
as $$
  select jsonb_build_object('seed_id', p_seed.id, 'server_seed_hash', p_seed.server_seed_hash,
                            'client_seed', p_seed.client_seed, 'next_nonce', p_seed.next_nonce,
                            'active', p_seed.active, 'created_at', p_seed.created_at,
                            'revealed_at', p_seed.revealed_at, 'committed_at', p_seed.committed_at,
                            'client_seed_source', p_seed.client_seed_source)
         || case when p_reveal and not p_seed.active
                 then jsonb_build_object('server_seed', encode(p_seed.server_seed, 'hex'))
                 else '{}'::jsonb end
$$;
comment on function private.fairness_seed_json(app.fairness_seeds, boolean) is
  'A seed as JSON; the server seed only once revealed (never while active).';
revoke all on function private.fairness_seed_json(app.fairness_seeds, boolean) from public;

create or replace function private.next_seed_json(p_user uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object('server_seed_hash', n.server_seed_hash, 'committed_at', n.committed_at)
    from app.fairness_next_seeds n where n.user_id = p_user
$$;
comment on function private.next_seed_json(uuid) is
  'security definer: the fan''s committed next seed as {server_seed_hash, committed_at} (never the seed).';
revoke all on function private.next_seed_json(uuid) from public;

-- The orders bound to a seed, in nonce order, whatever their status (an expired or failed order's
-- nonces are burned; once the seed is revealed anyone can recompute what it would have drawn).
create or replace function private.seed_orders_json(p_seed_id uuid, p_now timestamptz) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'order_id', o.id, 'gacha_id', o.gacha_id,
           'status', case when o.status = 'pending' and o.expires_at <= p_now then 'expired' else o.status end,
           'pull_count', o.pull_count, 'first_nonce', o.first_nonce,
           'rate_table_version', o.rate_table_version, 'pity_rate_table_version', o.pity_rate_table_version,
           'created_at', o.created_at) order by o.first_nonce), '[]'::jsonb)
    from app.orders o where o.seed_id = p_seed_id
$$;
comment on function private.seed_orders_json(uuid, timestamptz) is
  'security definer: the orders bound to a seed (any status) with their nonce ranges and rate-table versions.';
revoke all on function private.seed_orders_json(uuid, timestamptz) from public;

-- Reveals the fan's active pair (none: returns null). Refused while an unexpired pending order
-- holds nonces of it: revealing would show the fan that order's outcome before payment.
create or replace function private.reveal_active_seed(p_user uuid, p_now timestamptz) returns app.fairness_seeds
language plpgsql security definer
set search_path = ''
as $$
declare
  v_old app.fairness_seeds;
begin
  select * into v_old from app.fairness_seeds s where s.user_id = p_user and s.active for update;
  if not found then
    return null;
  end if;
  if exists (select 1 from app.orders o
              where o.seed_id = v_old.id and o.status = 'pending' and o.expires_at > p_now) then
    raise exception using errcode = 'PT409', message = 'fairness_seed_in_use',
      detail = 'an unpaid order is bound to your current seed: pay it or let it expire (30 minutes), then retry';
  end if;
  update app.fairness_seeds s set active = false, revealed_at = p_now where s.id = v_old.id
  returning * into v_old;
  return v_old;
end
$$;
comment on function private.reveal_active_seed(uuid, timestamptz) is
  'security definer: reveals the fan''s active seed; raises fairness_seed_in_use (PT409) while an unexpired '
  'pending order is bound to it.';
revoke all on function private.reveal_active_seed(uuid, timestamptz) from public;

-- Rotation: the active seed is revealed; with a client seed, the committed next seed becomes
-- active with it (and a fresh one is committed); without, the fan has no active pair until a
-- client seed arrives (set_client_seed, or the next order's). The old client seed is never
-- carried over: the next seed was committed after the server had seen it.
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
  v_old := private.reveal_active_seed(p_user, p_now);
  if p_client_seed is not null then
    v_new := private.activate_next_seed(p_user, p_client_seed, 'fan', p_new_server_seed, p_now);
  else
    perform private.ensure_next_seed(p_user, p_new_server_seed, p_now);
  end if;
  return jsonb_build_object(
    'revealed', case when v_old.id is null then null
                     else private.fairness_seed_json(v_old, true)
                          || jsonb_build_object('orders', private.seed_orders_json(v_old.id, p_now)) end,
    'active', case when v_new.id is null then null else private.fairness_seed_json(v_new, false) end,
    'next', private.next_seed_json(p_user));
end
$$;
comment on function private.rotate_fairness_seed(uuid, bytea, text, timestamptz) is
  'security definer: reveals the fan''s active server seed; with a client seed activates the committed next '
  'seed and commits a fresh one (randomness passed in).';
revoke all on function private.rotate_fairness_seed(uuid, bytea, text, timestamptz) from public;

drop function if exists public.get_fairness();
drop function if exists private.get_fairness();
create or replace function private.get_fairness(p_limit integer, p_offset integer) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_seed app.fairness_seeds;
  v_next jsonb;
begin
  if p_limit is null or p_limit not between 1 and 100 or p_offset is null or p_offset not between 0 and 100000 then
    raise exception using errcode = 'PT400', message = 'invalid_pagination',
      detail = 'p_limit is 1..100 and p_offset 0..100000';
  end if;
  if current_setting('transaction_read_only') = 'off' then
    perform private.ensure_next_seed(v_uid, extensions.gen_random_bytes(32), now());
  end if;
  v_next := private.next_seed_json(v_uid);
  select * into v_seed from app.fairness_seeds s where s.user_id = v_uid and s.active;
  return case when found
              then private.fairness_seed_json(v_seed, false)
                   || jsonb_build_object('orders', private.seed_orders_json(v_seed.id, now()))
              -- No active pair: the next pull will use the committed next seed.
              else jsonb_build_object('seed_id', null, 'server_seed_hash', v_next ->> 'server_seed_hash',
                                      'client_seed', null, 'next_nonce', 0, 'active', false,
                                      'created_at', null, 'revealed_at', null,
                                      'committed_at', v_next -> 'committed_at', 'client_seed_source', null,
                                      'orders', '[]'::jsonb) end
    || jsonb_build_object(
         'next', v_next,
         'revealed_total', (select count(*) from app.fairness_seeds s where s.user_id = v_uid and not s.active),
         'revealed', coalesce((
           select jsonb_agg(private.fairness_seed_json(s, true)
                            || jsonb_build_object('orders', private.seed_orders_json(s.id, now()))
                            order by s.created_at desc, s.id)
             from (select * from app.fairness_seeds s where s.user_id = v_uid and not s.active
                    order by s.created_at desc, s.id limit p_limit offset p_offset) s), '[]'::jsonb));
end
$$;
comment on function private.get_fairness(integer, integer) is
  'security definer: the body of public.get_fairness; it takes the caller from the JWT (auth.uid()), never a user id argument, and checks the caller''s role itself.';
revoke all on function private.get_fairness(integer, integer) from public, anon;
grant execute on function private.get_fairness(integer, integer) to authenticated;

create or replace function public.get_fairness(p_limit integer default 20, p_offset integer default 0)
returns jsonb
language sql
set search_path = ''
as $$
  select private.get_fairness(p_limit, p_offset)
$$;
comment on function public.get_fairness(integer, integer) is
  'The caller''s provably fair state: the pair the next pull uses (seed id, server seed SHA-256, client seed, '
  'next nonce, bound orders; without an active pair the committed next seed''s hash), the committed next seed '
  '{server_seed_hash, committed_at}, and a page of revealed seeds, newest first (server seed and bound orders '
  'of every status included; revealed_total counts them). Commits the first next seed. Errors: '
  'not_authenticated (PT401), account_suspended (PT403), invalid_pagination (PT400).';
revoke all on function public.get_fairness(integer, integer) from public, anon;
grant execute on function public.get_fairness(integer, integer) to authenticated;

create or replace function private.set_client_seed(p_seed text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_seed is null or p_seed !~ '^[!-~]{1,64}$' then
    raise exception using errcode = 'PT400', message = 'invalid_client_seed',
      detail = 'the client seed is 1 to 64 printable ASCII characters without spaces (! to ~)';
  end if;
  -- No seed is committed here: one made in this request would be chosen after seeing p_seed.
  return private.rotate_fairness_seed(v_uid, extensions.gen_random_bytes(32), p_seed, now());
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
  'Sets the caller''s client seed: reveals the active pair''s server seed (if any), activates the server seed '
  'committed before this call (shown as next by get_fairness) with this client seed, and commits a fresh next '
  'seed. Returns {revealed, active, next}. Errors: not_authenticated (PT401), account_suspended (PT403), '
  'invalid_client_seed (PT400), fairness_seed_in_use, client_seed_reused, fairness_seed_not_committed (PT409).';
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
  'Reveals the caller''s active server seed (so every pull made with it, and what every unpaid order bound to it '
  'would have drawn, can be recomputed). No pair is active afterwards until a client seed arrives '
  '(set_client_seed, or the next order''s). Returns {revealed: {..., server_seed, orders}, active: null, next}. '
  'Errors: not_authenticated (PT401), account_suspended (PT403), fairness_seed_in_use (PT409).';
revoke all on function public.rotate_fairness_seed() from public, anon;
grant execute on function public.rotate_fairness_seed() to authenticated;

-- Sign-up (or any new profile): the first next seed is committed right away, so the fan can
-- read its hash before choosing a client seed and before the first order.
create or replace function private.profiles_after_insert_commit_seed() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.ensure_next_seed(new.user_id, extensions.gen_random_bytes(32), now());
  return null;
end
$$;
comment on function private.profiles_after_insert_commit_seed() is
  'security definer: trigger; commits a new fan''s first next server seed (app.fairness_next_seeds).';
revoke all on function private.profiles_after_insert_commit_seed() from public;

-- ---------------------------------------------------------------------------------------
-- Published rate tables (docs/fairness.md, "Rate tables"): each gacha's base table (and pity
-- table) is recorded once when it is published, in an append-only hash-chained log that is
-- also appended to the audit log. Orders bind these versions; the draw reads these tables,
-- never the live items.
-- ---------------------------------------------------------------------------------------
create or replace function private.rate_table_log_hash(
  p_prev_hash text, p_seq bigint, p_gacha_id uuid, p_pity boolean, p_version text, p_published_at timestamptz
) returns text
language sql immutable
set search_path = ''
as $$
  select encode(extensions.digest(convert_to(concat_ws('|', coalesce(p_prev_hash, ''), p_seq::text, p_gacha_id::text,
    case when p_pity then 'pity' else 'base' end, p_version,
    to_char(p_published_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')), 'UTF8'), 'sha256'), 'hex')
$$;
comment on function private.rate_table_log_hash(text, bigint, uuid, boolean, text, timestamptz) is
  'SHA-256 (hex) of "prev_hash|seq|gacha_id|base or pity|version|published_at (UTC, microseconds)".';
revoke all on function private.rate_table_log_hash(text, bigint, uuid, boolean, text, timestamptz) from public;

-- Records the gacha's base (and pity) table in the log if not there yet. Serialised by the audit
-- log's own advisory lock (publishing is rare; both chains need their previous hash, and one lock
-- cannot be taken in two orders by a publication that is also audited).
create or replace function private.publish_rate_tables(p_gacha_id uuid, p_now timestamptz) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_pity_pulls integer;
  v_table app.rate_tables;
  v_seq bigint;
  v_prev text;
  v_hash text;
  v_audit bigint;
  v_pity boolean;
begin
  select g.pity_pulls into v_pity_pulls from app.gachas g where g.id = p_gacha_id;
  perform pg_catalog.pg_advisory_xact_lock(7253101);
  foreach v_pity in array case when v_pity_pulls is null then array[false] else array[false, true] end loop
    continue when exists (select 1 from app.rate_table_log l where l.gacha_id = p_gacha_id and l.pity = v_pity);
    v_table := private.rate_table(p_gacha_id, v_pity);
    v_seq := nextval(pg_catalog.pg_get_serial_sequence('app.rate_table_log', 'seq'));
    select l.hash into v_prev from app.rate_table_log l order by l.seq desc limit 1;
    v_hash := private.rate_table_log_hash(v_prev, v_seq, p_gacha_id, v_pity, v_table.version, p_now);
    v_audit := private.append_audit(auth.uid(), 'rate_table.publish', 'gacha', p_gacha_id::text,
                                    jsonb_build_object('seq', v_seq, 'pity', v_pity, 'version', v_table.version,
                                                       'hash', v_hash));
    insert into app.rate_table_log (seq, gacha_id, pity, version, published_at, prev_hash, hash, audit_id)
    overriding system value
    values (v_seq, p_gacha_id, v_pity, v_table.version, p_now, v_prev, v_hash, v_audit);
  end loop;
end
$$;
comment on function private.publish_rate_tables(uuid, timestamptz) is
  'security definer: appends the gacha''s base and pity rate tables to the hash-chained app.rate_table_log '
  '(and the audit log) unless already there.';
revoke all on function private.publish_rate_tables(uuid, timestamptz) from public;

create or replace function private.gachas_after_publish_log_rate_tables() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  -- A gacha without a drawable item cannot be ordered (create_order says so); nothing to log.
  if exists (select 1 from app.gacha_items i where i.gacha_id = new.id and i.rate_ppm > 0) then
    perform private.publish_rate_tables(new.id, now());
  end if;
  return null;
end
$$;
comment on function private.gachas_after_publish_log_rate_tables() is
  'security definer: trigger; a gacha leaving draft logs its rate tables (app.rate_table_log).';
revoke all on function private.gachas_after_publish_log_rate_tables() from public;

-- Rate tables and the log of published ones are the published odds: anyone may read them
-- (get_rate_table, list_rate_table_log). Nobody writes them but the definer functions.
revoke all on app.rate_table_log, app.fairness_next_seeds from anon, authenticated, service_role;
grant select on app.rate_tables, app.rate_table_log to anon;
grant select on app.rate_table_log to authenticated, service_role;
drop policy if exists "Anyone can read rate tables" on app.rate_tables;
create policy "Anyone can read rate tables" on app.rate_tables
  for select to anon using (true);
drop policy if exists "Anyone can read the published rate-table log" on app.rate_table_log;
create policy "Anyone can read the published rate-table log" on app.rate_table_log
  for select to anon, authenticated, service_role using (true);

create or replace function private.rate_table_log_json(p_entry app.rate_table_log) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object('seq', p_entry.seq, 'gacha_id', p_entry.gacha_id, 'pity', p_entry.pity,
                            'version', p_entry.version, 'published_at', p_entry.published_at,
                            'prev_hash', p_entry.prev_hash, 'hash', p_entry.hash,
                            'total_ppm', t.total_ppm, 'entries', t.entries)
    from app.rate_tables t where t.version = p_entry.version
$$;
comment on function private.rate_table_log_json(app.rate_table_log) is
  'A log entry with the table it publishes (total_ppm, entries); the caller''s RLS applies (both are public).';
revoke all on function private.rate_table_log_json(app.rate_table_log) from public;
grant execute on function private.rate_table_log_json(app.rate_table_log) to anon, authenticated, service_role;

-- Rate tables and their log are public (they are the published odds): read under RLS by
-- invoker functions.
drop function if exists private.get_rate_table(text);
drop function if exists private.list_rate_table_log(bigint, integer);
create or replace function public.get_rate_table(p_version text) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_row app.rate_tables;
begin
  select * into v_row from app.rate_tables t where t.version = lower(p_version);
  if not found then
    raise exception using errcode = 'PT404', message = 'rate_table_not_found', detail = 'no rate table has this version';
  end if;
  return jsonb_build_object('version', v_row.version, 'gacha_id', v_row.gacha_id, 'pity', v_row.pity,
                            'total_ppm', v_row.total_ppm, 'entries', v_row.entries,
                            'published', coalesce((select jsonb_agg(private.rate_table_log_json(l) order by l.seq)
                                                     from app.rate_table_log l where l.version = v_row.version),
                                                  '[]'::jsonb));
end
$$;
comment on function public.get_rate_table(text) is
  'Anyone: the exact rate table a version (SHA-256) covers: {version, gacha_id, pity, total_ppm, entries: '
  '[[item_id, rarity, rate_ppm], ...] in draw order, published: [log entries]}. Errors: rate_table_not_found (PT404).';
revoke all on function public.get_rate_table(text) from public;
grant execute on function public.get_rate_table(text) to anon, authenticated, service_role;

create or replace function public.list_rate_table_log(p_after_seq bigint default 0, p_limit integer default 100)
returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  if p_after_seq is null or p_after_seq < 0 or p_limit is null or p_limit not between 1 and 1000 then
    raise exception using errcode = 'PT400', message = 'invalid_pagination',
      detail = 'p_after_seq is 0 or more and p_limit 1..1000';
  end if;
  return coalesce((select jsonb_agg(private.rate_table_log_json(l) order by l.seq)
                     from (select * from app.rate_table_log x where x.seq > p_after_seq
                            order by x.seq limit p_limit) l), '[]'::jsonb);
end
$$;
comment on function public.list_rate_table_log(bigint, integer) is
  'Anyone: the hash-chained log of every published rate table, oldest first, after p_after_seq: [{seq, gacha_id, '
  'pity, version, published_at, prev_hash, hash, total_ppm, entries}]. hash = SHA-256 of '
  '"prev_hash|seq|gacha_id|base or pity|version|published_at". Errors: invalid_pagination (PT400).';
revoke all on function public.list_rate_table_log(bigint, integer) from public;
grant execute on function public.list_rate_table_log(bigint, integer) to anon, authenticated, service_role;

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
  perform private.check_spending_cap(p_user, v_amount, p_now);
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
  -- An order bound at creation owns its nonces; one of the first protocol takes the seed's next.
  v_first bigint := coalesce(p_order.first_nonce, p_seed.next_nonce);
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
      v_roll := private.fair_roll(p_seed.server_seed, p_seed.client_seed, v_first + n,
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
      v_roll := private.fair_roll(p_seed.server_seed, p_seed.client_seed, v_first + n, p_base.total_ppm);
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
    select p_order.id, p_order.user_id, p_gacha.id, u.item, u.rarity, p_seed.id, v_first + u.n - 1,
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
  if p_order.first_nonce is null then
    update app.fairness_seeds s set next_nonce = next_nonce + p_order.pull_count where s.id = p_seed.id;
  end if;
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
