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

-- Which entry of a rate table holds a roll: the first whose cumulative rate exceeds it, as its
-- 1-based index into the table's cumulative rates (null beyond the table). The draw
-- (private.draw_order) picks every pull with this function; pick_entry is it over a table's
-- JSON entries, which the statistics tests and the fairness vectors exercise. width_bucket
-- counts the cumulative bounds at or below the roll by binary search (zero rates, equal bounds,
-- are skipped as the walk over the entries skipped them). Plain SQL, neither strict nor with a
-- search_path setting (every name qualified; a null input gives null anyway), so the planner
-- inlines it into the draw's statement instead of running a SQL function per statement.
create or replace function private.pick_index(p_cum bigint[], p_roll bigint) returns integer
language sql immutable parallel safe
as $$
  select nullif(pg_catalog.width_bucket(p_roll, p_cum) + 1, pg_catalog.cardinality(p_cum) + 1)
$$;
comment on function private.pick_index(bigint[], bigint) is
  'The 1-based index of the rate-table entry whose cumulative range [sum before, sum before + rate) holds the '
  'roll, given the cumulative rates in draw order; null when the roll is beyond the table.';
revoke all on function private.pick_index(bigint[], bigint) from public;

create or replace function private.pick_entry(p_entries jsonb, p_roll bigint) returns jsonb
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  v_k integer;
begin
  select private.pick_index(array_agg(x.c order by x.n), p_roll) into v_k
    from (select t.n, (sum((t.e ->> 2)::bigint) over (order by t.n))::bigint as c
            from jsonb_array_elements(p_entries) with ordinality as t (e, n)) x;
  if v_k is null then
    raise exception using errcode = 'PT400', message = 'invalid_range', detail = 'roll beyond the rate table';
  end if;
  return p_entries -> (v_k - 1);
end
$$;
comment on function private.pick_entry(jsonb, bigint) is
  'The [item_id, rarity, rate_ppm] entry whose cumulative range [sum before, sum before + rate) holds the roll '
  '(private.pick_index over the entries'' cumulative rates, as the draw picks).';
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

-- from sql/economy/50_rate_limits.sql
-- Rate limits, enforced inside the database by PostgREST's pre-request function
-- (`pgrst.db_pre_request = 'private.check_request'` on the authenticator role; hosted Supabase
-- honours it too). PostgREST calls it with no arguments in every request transaction, after
-- setting the role, request.jwt.claims, request.method, request.path and request.headers.
--
-- Limits (app.rate_limit_rules): a signed-in user 100 requests/min, an anonymous client address
-- 20/min, and per user create_order 5/min and exchange_medals 10/min. service_role and direct
-- database connections are not limited. Over a limit: PT429 rate_limited (HTTP 429).
--
-- Window: a sliding-window estimate over UTC minutes,
--   estimate = hits(previous minute) * (1 - elapsed fraction of this minute) + hits(this minute),
-- so a burst straddling a minute boundary cannot double the rate as fixed windows allow.
--
-- Storage: app.rate_limit_hits, UNLOGGED, one row per (subject, bucket, minute) incremented by
-- an upsert (HOT updates, fillfactor 50). The row is per user or per address, never global, so
-- it is not a hot row; only one client's own concurrent writes queue on it, which also keeps
-- their count exact. Rows older than the previous minute are useless and deleted by
-- service_sweep_rate_limits() (run it every minute or so; autovacuum reclaims the space).
--
-- Read-only requests: PostgREST runs GET/HEAD and POSTs to STABLE functions READ ONLY, where no
-- table (unlogged included) can be written. Those requests are *checked* against the counters
-- (a client over its limit gets 429 on reads too) but not counted. A request that fails is
-- rolled back with its increment: only committed requests count. Raw-traffic flooding is the
-- API gateway's job; these limits bound what a client can make the database do.
--
-- Definer or invoker: PostgREST runs the hook as the request role (anon or authenticated), and
-- our lint forbids security definer functions that anon can execute. So every function here is
-- SECURITY INVOKER: anon and authenticated hold select/insert/update(hits) on the counters only,
-- and RLS lets a request read and write only its own subject's rows (the subject is derived
-- from the JWT or the request headers, not from an argument). Nothing else becomes reachable.

-- The client address of the current request: first X-Forwarded-For entry (the gateway's view
-- of the client), else X-Real-IP; anything that is not an IPv4/IPv6 literal becomes 'unknown'.
create or replace function private.request_client_ip() returns text
language sql stable
set search_path = ''
as $$
  select case when v.ip ~ '^[0-9A-Fa-f:.]{2,45}$' then lower(v.ip) else 'unknown' end
  from (select btrim(coalesce(nullif(split_part(h.headers ->> 'x-forwarded-for', ',', 1), ''),
                              h.headers ->> 'x-real-ip', '')) as ip
        from (select coalesce(nullif(current_setting('request.headers', true), ''), '{}')::jsonb as headers) h) v
$$;
comment on function private.request_client_ip() is
  'The request''s client address from request.headers (first x-forwarded-for entry, else x-real-ip), or unknown.';
revoke all on function private.request_client_ip() from public;
grant execute on function private.request_client_ip() to anon, authenticated, service_role;

-- Whose counters a request uses: the signed-in user, else the client address.
create or replace function private.rate_limit_subject() returns text
language sql stable
set search_path = ''
as $$
  select coalesce('u:' || auth.uid()::text, 'ip:' || private.request_client_ip())
$$;
comment on function private.rate_limit_subject() is
  'u:<user id> for a signed-in request, ip:<client address> for an anonymous one.';
revoke all on function private.rate_limit_subject() from public;
grant execute on function private.rate_limit_subject() to anon, authenticated, service_role;

revoke all on app.rate_limit_hits, app.rate_limit_rules from public, anon, authenticated, service_role;
grant select, insert, update (hits) on app.rate_limit_hits to anon, authenticated;
grant select on app.rate_limit_rules to anon, authenticated;
grant select, delete on app.rate_limit_hits to service_role;
grant select, insert, update, delete on app.rate_limit_rules to service_role;

drop policy if exists "Clients read their own request counters" on app.rate_limit_hits;
create policy "Clients read their own request counters" on app.rate_limit_hits
  for select to anon, authenticated using (subject = (select private.rate_limit_subject()));
drop policy if exists "Clients count their own requests" on app.rate_limit_hits;
create policy "Clients count their own requests" on app.rate_limit_hits
  for insert to anon, authenticated with check (subject = (select private.rate_limit_subject()) and hits = 1);
drop policy if exists "Clients increment their own request counters" on app.rate_limit_hits;
create policy "Clients increment their own request counters" on app.rate_limit_hits
  for update to anon, authenticated
  using (subject = (select private.rate_limit_subject()))
  with check (subject = (select private.rate_limit_subject()));
drop policy if exists "Anyone can read the rate limit rules" on app.rate_limit_rules;
create policy "Anyone can read the rate limit rules" on app.rate_limit_rules
  for select to anon, authenticated using (true);

-- Counts (unless p_read_only) one request of the current subject in p_bucket at p_now and
-- raises rate_limited when the sliding-window estimate exceeds the bucket's rule (one bucket at a
-- time: the payment service's own limit, sql/payments/30_service_limits.sql).
create or replace function private.rate_limit_take(p_bucket text, p_now timestamptz, p_read_only boolean)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_subject text := private.rate_limit_subject();
  v_limit integer;
  v_window timestamptz := date_trunc('minute', p_now, 'UTC');
  v_elapsed double precision := extract(epoch from p_now - v_window) / 60.0;
  v_prev integer;
  v_cur integer;
  v_estimate double precision;
begin
  select r.per_minute into v_limit from app.rate_limit_rules r where r.bucket = p_bucket;
  if v_limit is null then
    return;
  end if;
  select h.hits into v_prev from app.rate_limit_hits h
   where h.subject = v_subject and h.bucket = p_bucket and h.window_start = v_window - interval '1 minute';
  if p_read_only then
    select h.hits into v_cur from app.rate_limit_hits h
     where h.subject = v_subject and h.bucket = p_bucket and h.window_start = v_window;
    -- This request would be one more than what is counted.
    v_cur := coalesce(v_cur, 0) + 1;
  else
    insert into app.rate_limit_hits as h (subject, bucket, window_start, hits)
    values (v_subject, p_bucket, v_window, 1)
    on conflict (subject, bucket, window_start) do update set hits = h.hits + 1
    returning h.hits into v_cur;
  end if;
  v_estimate := coalesce(v_prev, 0) * (1 - v_elapsed) + v_cur;
  if v_estimate > v_limit then
    raise exception using errcode = 'PT429', message = 'rate_limited',
      detail = format('at most %s requests per minute (%s); slow down', v_limit,
                      case p_bucket when 'user' then 'per signed-in user' when 'ip' then 'per client address'
                                    else p_bucket || ' per user' end),
      hint = format('retry after %s seconds', ceil(60 * (1 - v_elapsed))::integer);
  end if;
end
$$;
comment on function private.rate_limit_take(text, timestamptz, boolean) is
  'security invoker: counts one request of the caller''s subject in a bucket (RLS: own rows only) and raises '
  'rate_limited (PT429) over the bucket''s per-minute rule.';
revoke all on function private.rate_limit_take(text, timestamptz, boolean) from public;
grant execute on function private.rate_limit_take(text, timestamptz, boolean) to anon, authenticated;

-- The answer to a request over a bucket's rule (called by check_request_at's statement only for
-- a bucket that is over).
create or replace function private.rate_limited(p_bucket text, p_limit integer, p_elapsed double precision)
returns text
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'PT429', message = 'rate_limited',
    detail = format('at most %s requests per minute (%s); slow down', p_limit,
                    case p_bucket when 'user' then 'per signed-in user' when 'ip' then 'per client address'
                                  else p_bucket || ' per user' end),
    hint = format('retry after %s seconds', ceil(60 * (1 - p_elapsed))::integer);
end
$$;
comment on function private.rate_limited(text, integer, double precision) is
  'security invoker: raises rate_limited (PT429) for a bucket over its per-minute rule, with the retry hint.';
revoke all on function private.rate_limited(text, integer, double precision) from public;
grant execute on function private.rate_limited(text, integer, double precision) to anon, authenticated;

-- The pre-request core, with the time passed in (tests drive windows explicitly). One statement
-- counts (or, read only, reads) every bucket the request falls in -- the subject's own (per user
-- or per address) and, for create_order and exchange_medals, that RPC's -- and reads the
-- previous minute's counts beside them; private.rate_limited raises for the first bucket over
-- its rule (the general one first). The subject is computed once here and compared by the
-- policies' own initplans.
create or replace function private.check_request_at(p_now timestamptz) returns void
language plpgsql
set search_path = ''
as $$
declare
  v_signed_in boolean;
  v_rpc text;
  v_buckets text[];
  v_subject text;
  v_window timestamptz;
  v_elapsed double precision;
begin
  if current_user not in ('anon', 'authenticated') then
    return;  -- service_role (the payment service) and direct connections are not limited
  end if;
  v_subject := private.rate_limit_subject();
  v_signed_in := v_subject like 'u:%';
  v_rpc := substring(coalesce(current_setting('request.path', true), '') from '/rpc/([a-z_]+)/?$');
  v_buckets := case when not v_signed_in then array['ip']
                    when v_rpc in ('create_order', 'exchange_medals') then array['user', v_rpc]
                    else array['user'] end;
  v_window := date_trunc('minute', p_now, 'UTC');
  v_elapsed := extract(epoch from p_now - v_window) / 60.0;
  if current_setting('transaction_read_only') = 'on' then
    -- Read only: nothing can be written; checked as if this request were one more.
    perform private.rate_limited(r.bucket, r.per_minute, v_elapsed)
       from app.rate_limit_rules r
       left join app.rate_limit_hits c
         on c.subject = v_subject and c.bucket = r.bucket and c.window_start = v_window
       left join app.rate_limit_hits p
         on p.subject = v_subject and p.bucket = r.bucket and p.window_start = v_window - interval '1 minute'
      where r.bucket = any(v_buckets)
        and coalesce(p.hits, 0) * (1 - v_elapsed) + coalesce(c.hits, 0) + 1 > r.per_minute
      order by r.bucket = v_buckets[1] desc
      limit 1;
  else
    with cur as (
      insert into app.rate_limit_hits as h (subject, bucket, window_start, hits)
      select v_subject, r.bucket, v_window, 1 from app.rate_limit_rules r
       where r.bucket = any(v_buckets)
       order by r.bucket
      on conflict (subject, bucket, window_start) do update set hits = h.hits + 1
      returning h.bucket, h.hits)
    select private.rate_limited(r.bucket, r.per_minute, v_elapsed) into v_rpc
      from cur
      join app.rate_limit_rules r on r.bucket = cur.bucket
      left join app.rate_limit_hits p
        on p.subject = v_subject and p.bucket = cur.bucket and p.window_start = v_window - interval '1 minute'
     where coalesce(p.hits, 0) * (1 - v_elapsed) + cur.hits > r.per_minute
     order by cur.bucket = v_buckets[1] desc
     limit 1;
  end if;
end
$$;
comment on function private.check_request_at(timestamptz) is
  'security invoker: the rate limits of the current request at p_now in one statement (see private.check_request).';
revoke all on function private.check_request_at(timestamptz) from public;
grant execute on function private.check_request_at(timestamptz) to anon, authenticated, service_role;

create or replace function private.check_request() returns void
language sql
set search_path = ''
as $$
  select private.check_request_at(now())
$$;
comment on function private.check_request() is
  'PostgREST pre-request hook (pgrst.db_pre_request): per-user, per-address and per-RPC rate limits; '
  'raises rate_limited (PT429). security invoker by design: it runs as the request role.';
revoke all on function private.check_request() from public;
grant execute on function private.check_request() to anon, authenticated, service_role;

create or replace function private.sweep_rate_limits(p_now timestamptz) returns integer
language sql
set search_path = ''
as $$
  with gone as (
    delete from app.rate_limit_hits h where h.window_start < date_trunc('minute', p_now, 'UTC') - interval '1 minute'
    returning 1)
  select count(*)::integer from gone
$$;
comment on function private.sweep_rate_limits(timestamptz) is
  'security invoker: deletes rate-limit windows older than the previous minute at p_now.';
revoke all on function private.sweep_rate_limits(timestamptz) from public;
grant execute on function private.sweep_rate_limits(timestamptz) to service_role;

create or replace function public.service_sweep_rate_limits() returns jsonb
language sql
set search_path = ''
as $$
  select jsonb_build_object('deleted', private.sweep_rate_limits(now()))
$$;
comment on function public.service_sweep_rate_limits() is
  'Service role: deletes rate-limit counters older than the previous minute; returns {deleted}. Run every minute.';
revoke all on function public.service_sweep_rate_limits() from public, anon, authenticated;
grant execute on function public.service_sweep_rate_limits() to service_role;

-- from sql/economy/60_spending_caps.sql
-- Minors' spending caps (DESIGN.md section 4): the caps live in app.spending_caps; create_order
-- calls private.check_spending_cap(user, amount, now) before it inserts the order.
-- Counted: the fan's orders created in the same JST day / JST month that are pending (and not
-- past their expiry) or fulfilled (net of refunds). Expired, failed and canceled orders do not count.

revoke all on app.spending_caps from public, anon, authenticated, service_role;
grant select on app.spending_caps to anon, authenticated, service_role;
drop policy if exists "Anyone can read the spending caps" on app.spending_caps;
create policy "Anyone can read the spending caps" on app.spending_caps
  for select to anon, authenticated using (true);

-- Age in whole years on the JST calendar date of p_now.
create or replace function private.jst_age(p_birth_date date, p_now timestamptz) returns integer
language sql immutable
set search_path = ''
as $$
  select extract(year from age((p_now at time zone 'Asia/Tokyo')::date, p_birth_date))::integer
$$;
comment on function private.jst_age(date, timestamptz) is 'Age in whole years on the JST date of p_now.';
revoke all on function private.jst_age(date, timestamptz) from public;
grant execute on function private.jst_age(date, timestamptz) to anon, authenticated, service_role;

-- The check itself takes the birth date its caller has already read (create_order reads the
-- fan's profile row for its own checks; reading it again here was a second lookup per order).
create or replace function private.check_spending_cap(p_user uuid, p_birth_date date, p_amount integer,
                                                      p_now timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_birth date := p_birth_date;
  v_age integer;
  v_cap app.spending_caps;
  v_day_start timestamptz := (date_trunc('day', p_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_month_start timestamptz := (date_trunc('month', p_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_spent_day bigint;
  v_spent_month bigint;
  v_left_day bigint;
  v_left_month bigint;
begin
  if v_birth is null then
    raise exception using errcode = 'PT422', message = 'birth_date_required',
      detail = 'set your birth date (update_my_profile) before the first purchase';
  end if;
  v_age := private.jst_age(v_birth, p_now);
  select * into v_cap from app.spending_caps c where v_age between c.min_age and c.max_age;
  if not found then
    return;  -- adults are not capped
  end if;
  if v_cap.daily_cap_jpy = 0 and v_cap.monthly_cap_jpy = 0 then
    raise exception using errcode = 'PT422', message = 'minor_under_13_cannot_purchase',
      detail = format('fans aged %s to %s cannot buy', v_cap.min_age, v_cap.max_age);
  end if;
  -- One minor's orders are checked one at a time, so two concurrent orders cannot both fit
  -- in the same remaining allowance (the second waits, then sees the first).
  perform pg_advisory_xact_lock(hashtextextended('koepon.spending_cap:' || p_user::text, 0));
  select coalesce(sum(o.amount_jpy - o.refunded_jpy) filter (where o.created_at >= v_day_start), 0),
         coalesce(sum(o.amount_jpy - o.refunded_jpy), 0)
    into v_spent_day, v_spent_month
    from app.orders o
   where o.user_id = p_user
     and o.created_at >= v_month_start and o.created_at < v_month_start + interval '1 month'
     and (o.status = 'fulfilled' or (o.status = 'pending' and o.expires_at > p_now));
  v_left_day := greatest(v_cap.daily_cap_jpy - v_spent_day, 0);
  v_left_month := greatest(v_cap.monthly_cap_jpy - v_spent_month, 0);
  if p_amount > least(v_left_day, v_left_month) then
    raise exception using errcode = 'PT422', message = 'spending_cap_exceeded',
      detail = format('fans aged %s to %s may spend ¥%s a day and ¥%s a month: ¥%s left today, ¥%s left this month, '
                      'so ¥%s remaining; this order is ¥%s',
                      v_cap.min_age, v_cap.max_age, v_cap.daily_cap_jpy, v_cap.monthly_cap_jpy, v_left_day,
                      v_left_month, least(v_left_day, v_left_month), p_amount),
      hint = jsonb_build_object('remaining_jpy', least(v_left_day, v_left_month), 'remaining_today_jpy', v_left_day,
                                'remaining_this_month_jpy', v_left_month, 'daily_cap_jpy', v_cap.daily_cap_jpy,
                                'monthly_cap_jpy', v_cap.monthly_cap_jpy)::text;
  end if;
end
$$;
comment on function private.check_spending_cap(uuid, date, integer, timestamptz) is
  'Minors'' caps from app.spending_caps (age from p_birth_date, the fan''s profile as the caller read it) '
  'against the fan''s pending and fulfilled orders of the JST day and month (p_now); raises birth_date_required, '
  'minor_under_13_cannot_purchase, spending_cap_exceeded (PT422, remaining yen in the detail and as JSON in the '
  'hint). Called by private.create_order (a definer), so it needs no privileges of its own.';
revoke all on function private.check_spending_cap(uuid, date, integer, timestamptz) from public;

-- The same check reading the fan's birth date itself.
create or replace function private.check_spending_cap(p_user uuid, p_amount integer, p_now timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform private.check_spending_cap(p_user, (select p.birth_date from app.profiles p where p.user_id = p_user),
                                     p_amount, p_now);
end
$$;
comment on function private.check_spending_cap(uuid, integer, timestamptz) is
  'private.check_spending_cap with the fan''s birth date read from app.profiles.';
revoke all on function private.check_spending_cap(uuid, integer, timestamptz) from public;

create or replace function public.get_my_spending_limits() returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_now timestamptz := now();
  v_birth date;
  v_age integer;
  v_cap app.spending_caps;
  v_day_start timestamptz := (date_trunc('day', v_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_month_start timestamptz := (date_trunc('month', v_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_spent_day bigint;
  v_spent_month bigint;
begin
  select p.birth_date into v_birth from app.profiles p where p.user_id = v_uid;
  if v_birth is null then
    return jsonb_build_object('birth_date_set', false, 'capped', null);
  end if;
  v_age := private.jst_age(v_birth, v_now);
  select * into v_cap from app.spending_caps c where v_age between c.min_age and c.max_age;
  if not found then
    return jsonb_build_object('birth_date_set', true, 'capped', false);
  end if;
  select coalesce(sum(o.amount_jpy - o.refunded_jpy) filter (where o.created_at >= v_day_start), 0),
         coalesce(sum(o.amount_jpy - o.refunded_jpy), 0)
    into v_spent_day, v_spent_month
    from app.orders o
   where o.user_id = v_uid and o.created_at >= v_month_start
     and (o.status = 'fulfilled' or (o.status = 'pending' and o.expires_at > v_now));
  return jsonb_build_object(
    'birth_date_set', true, 'capped', true,
    'can_purchase', not (v_cap.daily_cap_jpy = 0 and v_cap.monthly_cap_jpy = 0),
    'daily_cap_jpy', v_cap.daily_cap_jpy, 'monthly_cap_jpy', v_cap.monthly_cap_jpy,
    'spent_today_jpy', v_spent_day, 'spent_this_month_jpy', v_spent_month,
    'remaining_jpy', greatest(least(v_cap.daily_cap_jpy - v_spent_day, v_cap.monthly_cap_jpy - v_spent_month), 0));
end
$$;
comment on function public.get_my_spending_limits() is
  'The caller''s minors'' spending allowance: {birth_date_set, capped, can_purchase, daily_cap_jpy, monthly_cap_jpy, '
  'spent_today_jpy, spent_this_month_jpy, remaining_jpy} (capped false for adults). security invoker: RLS '
  'shows the caller''s own orders and profile. Errors: not_authenticated (PT401), account_suspended (PT403).';
revoke all on function public.get_my_spending_limits() from public, anon;
grant execute on function public.get_my_spending_limits() to authenticated;

-- from sql/payments/10_inbox.sql
-- The payments inbox, database side. The payment service verifies a provider's signature, then
-- makes ONE call: service_record_payment_event(provider, event id, type, payload). Everything
-- else happens here, in that call's transaction:
--
--   1. the event is inserted into app.payment_events keyed by (provider, event id); a redelivery
--      (even ten at once: they queue on the key) finds the row and changes nothing;
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
--   5. the event row records the outcome; the answer says what happened.
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

  insert into app.payment_events (provider, event_id, type, payload, outcome, received_at)
  values (p_provider, p_event_id, p_type, p_payload, 'received', p_now)
  on conflict (provider, event_id) do nothing;
  if not found then
    select * into e from app.payment_events x where x.provider = p_provider and x.event_id = p_event_id;
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
      select x.order_id into v_order_id from app.payments x
       where x.provider = p_provider and (x.provider_payment_id = v_pid or x.payment_ref = v_pid);
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
      select x.order_id into v_owner from app.payments x
       where x.provider = p_provider and x.order_id <> v_order_id
         and ((v_ref is not null and x.payment_ref = v_ref)
              or (v_pid is not null and (x.provider_payment_id = v_pid or x.payment_ref = v_pid)))
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
    select * into p from app.payments x where x.order_id = o.id and x.provider = p_provider for update;
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

  update app.payment_events x set order_id = v_order_id, outcome = v_outcome, detail = v_detail
   where x.provider = p_provider and x.event_id = p_event_id;
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
