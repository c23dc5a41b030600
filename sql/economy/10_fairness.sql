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
