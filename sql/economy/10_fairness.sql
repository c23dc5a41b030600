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
