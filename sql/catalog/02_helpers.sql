-- Catalog helpers in private: who is calling, what a gacha would disclose, and the checks
-- publishing applies (the freeze trigger runs them too, so no role can skip them).

create or replace function private.require_user() returns uuid
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated',
      detail = 'sign in first';
  end if;
  if exists (select 1 from app.profiles p where p.user_id = v_uid and p.status = 'suspended') then
    raise exception using errcode = 'PT403', message = 'account_suspended',
      detail = 'this account is suspended';
  end if;
  return v_uid;
end
$$;
comment on function private.require_user() is
  'security definer: reads the caller''s profile status whatever RLS; raises not_authenticated '
  'or account_suspended, else returns auth.uid().';
revoke all on function private.require_user() from public;
grant execute on function private.require_user() to authenticated, service_role;

create or replace function private.require_admin() returns uuid
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if not private.is_admin() then
    raise exception using errcode = 'PT403', message = 'admin_only',
      detail = 'only an admin may do this';
  end if;
  return v_uid;
end
$$;
comment on function private.require_admin() is
  'security definer: raises admin_only unless the caller is an active admin; returns auth.uid().';
revoke all on function private.require_admin() from public;
grant execute on function private.require_admin() to authenticated, service_role;

create or replace function private.require_vtuber() returns app.vtubers
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v app.vtubers;
begin
  select * into v from app.vtubers t where t.user_id = v_uid;
  if not found or not exists (select 1 from app.user_roles r
                              where r.user_id = v_uid and r.role = 'vtuber') then
    raise exception using errcode = 'PT403', message = 'not_a_vtuber',
      detail = 'only an approved VTuber may do this: apply with submit_vtuber_application';
  end if;
  if v.status <> 'approved' then
    raise exception using errcode = 'PT403', message = 'vtuber_not_approved',
      detail = format('this VTuber profile is %s', v.status);
  end if;
  return v;
end
$$;
comment on function private.require_vtuber() is
  'security definer: the caller''s approved VTuber row (role vtuber held), else not_a_vtuber '
  'or vtuber_not_approved.';
revoke all on function private.require_vtuber() from public;
grant execute on function private.require_vtuber() to authenticated, service_role;

create or replace function private.is_vtuber_owner(p_vtuber_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from app.vtubers v where v.id = p_vtuber_id and v.user_id = auth.uid())
$$;
comment on function private.is_vtuber_owner(uuid) is
  'security definer: whether the caller owns this VTuber profile (policies use it).';
revoke all on function private.is_vtuber_owner(uuid) from public;
grant execute on function private.is_vtuber_owner(uuid) to authenticated, service_role;

create or replace function private.setting_int(p_key text, p_default integer) returns integer
language sql stable
set search_path = ''
as $$
  select coalesce((select (s.value #>> '{}')::integer from app.platform_settings s
                   where s.key = p_key and jsonb_typeof(s.value) = 'number'), p_default)
$$;
comment on function private.setting_int(text, integer) is 'An integer platform setting or a default.';
revoke all on function private.setting_int(text, integer) from public;
grant execute on function private.setting_int(text, integer) to anon, authenticated, service_role;

-- What it costs to draw the top rarity. The price per pull is the cheaper of the single price
-- and a tenth of the ten-pull price. Pity caps the cost only when it targets the top rarity.
create or replace function private.gacha_costs(p_gacha app.gachas)
returns table (
  top_rarity text, top_rate_ppm integer, price_per_pull numeric,
  expected_cost_without_pity integer, expected_cost integer, guaranteed_cost integer
)
language plpgsql stable
set search_path = ''
as $$
declare
  v_rank integer;
  v_p numeric;
  v_max numeric := 2147483647;
begin
  select max(private.rarity_rank(i.rarity)) into v_rank
    from app.gacha_items i where i.gacha_id = p_gacha.id and i.rate_ppm > 0;
  price_per_pull := least(p_gacha.price_single::numeric, p_gacha.price_ten::numeric / 10);
  if v_rank is null then
    return next;
    return;
  end if;
  top_rarity := (array['N', 'R', 'SR', 'SSR', 'UR'])[v_rank];
  select sum(i.rate_ppm) into top_rate_ppm
    from app.gacha_items i where i.gacha_id = p_gacha.id and i.rarity = top_rarity;
  v_p := top_rate_ppm::numeric / 1000000;
  expected_cost_without_pity := least(ceil(price_per_pull / v_p), v_max)::integer;
  if p_gacha.pity_rarity is not null and private.rarity_rank(p_gacha.pity_rarity) >= v_rank then
    -- E[min(Geometric(p), N)] = (1 - (1 - p)^N) / p pulls; the N-th pull is certain.
    expected_cost := least(ceil(price_per_pull * (1 - power(1 - v_p, p_gacha.pity_pulls)) / v_p),
                           v_max)::integer;
    guaranteed_cost := least(ceil(price_per_pull * p_gacha.pity_pulls), v_max)::integer;
  else
    expected_cost := expected_cost_without_pity;
  end if;
  return next;
end
$$;
comment on function private.gacha_costs(app.gachas) is
  'Top rarity, its rate, price per pull, expected yen to draw it (with and without pity) and '
  'the guaranteed maximum when pity targets it.';
revoke all on function private.gacha_costs(app.gachas) from public;
grant execute on function private.gacha_costs(app.gachas) to anon, authenticated, service_role;

-- Every reason this gacha may not be published, in the order they are reported.
create or replace function private.gacha_publish_problem(p_gacha app.gachas)
returns table (sqlstate text, code text, detail text)
language plpgsql stable
set search_path = ''
as $$
declare
  v_status text;
  v_items integer;
  v_zero integer;
  v_sum bigint;
  v_limit integer := private.setting_int('max_expected_cost_jpy', 50000);
  c record;
begin
  select v.status into v_status from app.vtubers v where v.id = p_gacha.vtuber_id;
  if v_status is distinct from 'approved' then
    return query select 'PT403', 'vtuber_not_approved',
      format('the VTuber is %s; only approved VTubers publish', coalesce(v_status, 'missing'));
  end if;
  if p_gacha.end_at <= now() then
    return query select 'PT422', 'gacha_window_over', 'end_at is in the past: move it before publishing';
  end if;
  select count(*), count(*) filter (where i.rate_ppm <= 0), coalesce(sum(i.rate_ppm), 0)
    into v_items, v_zero, v_sum
    from app.gacha_items i where i.gacha_id = p_gacha.id;
  if v_items = 0 then
    return query select 'PT422', 'gacha_has_no_items', 'add at least one item before publishing';
  end if;
  if v_zero > 0 then
    return query select 'PT422', 'rate_must_be_positive',
      format('%s item(s) have a rate of 0 ppm: give them a rate or remove them', v_zero);
  end if;
  if v_items > 0 and v_sum <> 1000000 then
    return query select 'PT422', 'rates_must_sum_to_one_million',
      format('the rates sum to %s ppm (%s%%); they must sum to exactly 1000000 ppm (100%%)',
             v_sum, to_char(v_sum / 10000.0, 'FM9990.0000'));
  end if;
  if p_gacha.pity_rarity is not null and not exists (
       select 1 from app.gacha_items i where i.gacha_id = p_gacha.id and i.rate_ppm > 0
         and private.rarity_rank(i.rarity) >= private.rarity_rank(p_gacha.pity_rarity)) then
    return query select 'PT422', 'pity_settings_invalid',
      format('pity guarantees %s or better but no item has that rarity', p_gacha.pity_rarity);
  end if;
  if p_gacha.pity_pulls is not null and p_gacha.total_pull_cap is not null
     and p_gacha.pity_pulls > p_gacha.total_pull_cap then
    return query select 'PT422', 'pity_settings_invalid',
      'pity_pulls exceeds the total pull cap: the ceiling could never be reached';
  end if;
  if v_items > 0 and v_sum = 1000000 and v_zero = 0 then
    select * into c from private.gacha_costs(p_gacha);
    if c.expected_cost_without_pity > v_limit
       and (c.guaranteed_cost is null or c.guaranteed_cost > v_limit) then
      return query select 'PT422', 'expected_cost_too_high',
        format('drawing %s costs ¥%s on average, over the ¥%s limit; raise its rate or add a '
               'pity ceiling that guarantees it within ¥%s', c.top_rarity,
               c.expected_cost_without_pity, v_limit, v_limit);
    end if;
  end if;
end
$$;
comment on function private.gacha_publish_problem(app.gachas) is
  'Why this gacha cannot be published (no rows = it can): SQLSTATE, code, detail.';
revoke all on function private.gacha_publish_problem(app.gachas) from public;
grant execute on function private.gacha_publish_problem(app.gachas) to authenticated, service_role;

-- Field checks with a specific code each (the table constraints are the last line).
create or replace function private.validate_gacha(p_gacha app.gachas) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_gacha.title is null or char_length(btrim(p_gacha.title)) not between 1 and 200 then
    raise exception using errcode = 'PT400', message = 'invalid_title',
      detail = 'title: 1 to 200 characters';
  end if;
  if p_gacha.description is null or char_length(p_gacha.description) > 5000 then
    raise exception using errcode = 'PT400', message = 'invalid_description',
      detail = 'description: at most 5000 characters';
  end if;
  if p_gacha.price_single is null or p_gacha.price_single not between 100 and 10000
     or p_gacha.price_ten is null or p_gacha.price_ten not between 100 and 10000 then
    raise exception using errcode = 'PT400', message = 'invalid_price',
      detail = 'price_single and price_ten: ¥100 to ¥10,000 each';
  end if;
  if p_gacha.medals_per_pull is null or p_gacha.medals_per_pull not between 1 and 1000 then
    raise exception using errcode = 'PT400', message = 'invalid_medals_per_pull',
      detail = 'medals_per_pull: 1 to 1000';
  end if;
  if p_gacha.ten_pull_bonus_medals is null or p_gacha.ten_pull_bonus_medals not between 0 and 100000 then
    raise exception using errcode = 'PT400', message = 'invalid_ten_pull_bonus',
      detail = 'ten_pull_bonus_medals: 0 to 100000';
  end if;
  if p_gacha.start_at is null or p_gacha.end_at is null or p_gacha.start_at >= p_gacha.end_at then
    raise exception using errcode = 'PT400', message = 'invalid_window',
      detail = 'start_at and end_at are required and start_at must be before end_at';
  end if;
  if p_gacha.total_pull_cap is not null and p_gacha.total_pull_cap not between 1 and 100000000 then
    raise exception using errcode = 'PT400', message = 'invalid_total_pull_cap',
      detail = 'total_pull_cap: null (no cap) or 1 to 100000000';
  end if;
  if (p_gacha.pity_pulls is null) <> (p_gacha.pity_rarity is null)
     or (p_gacha.pity_pulls is not null and p_gacha.pity_pulls not between 2 and 1000)
     or (p_gacha.pity_rarity is not null and private.rarity_rank(p_gacha.pity_rarity) is null) then
    raise exception using errcode = 'PT400', message = 'invalid_pity',
      detail = 'pity_pulls (2 to 1000) and pity_rarity (N, R, SR, SSR, UR) go together or not at all';
  end if;
end
$$;
comment on function private.validate_gacha(app.gachas) is 'Raises a PT400 code for a bad gacha field.';
revoke all on function private.validate_gacha(app.gachas) from public;
grant execute on function private.validate_gacha(app.gachas) to authenticated, service_role;

create or replace function private.validate_content_path(p_vtuber_id uuid, p_path text) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_path is null or p_path !~ '^[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}$' or p_path ~ '\.\.'
     or p_path ~ '//' or not starts_with(p_path, p_vtuber_id::text || '/') then
    raise exception using errcode = 'PT400', message = 'invalid_content_path',
      detail = format('content_path must be a path under %s/ in the rewards bucket '
                      '(letters, digits, / _ . -)', p_vtuber_id);
  end if;
end
$$;
comment on function private.validate_content_path(uuid, text) is
  'Content paths live under the owning VTuber''s folder, so nobody can sell another''s file.';
revoke all on function private.validate_content_path(uuid, text) from public;
grant execute on function private.validate_content_path(uuid, text) to authenticated, service_role;

create or replace function private.validate_gacha_item(p_vtuber_id uuid, p_item app.gacha_items)
returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_item.name is null or char_length(btrim(p_item.name)) not between 1 and 200 then
    raise exception using errcode = 'PT400', message = 'invalid_name', detail = 'name: 1 to 200 characters';
  end if;
  if p_item.description is null or char_length(p_item.description) > 2000 then
    raise exception using errcode = 'PT400', message = 'invalid_description',
      detail = 'description: at most 2000 characters';
  end if;
  if p_item.rarity is null or private.rarity_rank(p_item.rarity) is null then
    raise exception using errcode = 'PT400', message = 'invalid_rarity',
      detail = 'rarity: one of N, R, SR, SSR, UR';
  end if;
  if p_item.rate_ppm is null or p_item.rate_ppm not between 0 and 1000000 then
    raise exception using errcode = 'PT400', message = 'invalid_rate',
      detail = 'rate_ppm: an integer from 0 to 1000000 (parts per million)';
  end if;
  if p_item.stock is not null and p_item.stock not between 1 and 100000000 then
    raise exception using errcode = 'PT400', message = 'invalid_stock',
      detail = 'stock: null (unlimited) or 1 to 100000000';
  end if;
  if p_item.sort_order is null then
    raise exception using errcode = 'PT400', message = 'invalid_argument', detail = 'sort_order is required';
  end if;
  perform private.validate_content_path(p_vtuber_id, p_item.content_path);
end
$$;
comment on function private.validate_gacha_item(uuid, app.gacha_items) is
  'Raises a PT400 code for a bad gacha item field.';
revoke all on function private.validate_gacha_item(uuid, app.gacha_items) from public;
grant execute on function private.validate_gacha_item(uuid, app.gacha_items) to authenticated, service_role;

create or replace function private.validate_exchange_item(p_item app.exchange_items) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_item.name is null or char_length(btrim(p_item.name)) not between 1 and 200 then
    raise exception using errcode = 'PT400', message = 'invalid_name', detail = 'name: 1 to 200 characters';
  end if;
  if p_item.description is null or char_length(p_item.description) > 2000 then
    raise exception using errcode = 'PT400', message = 'invalid_description',
      detail = 'description: at most 2000 characters';
  end if;
  if p_item.medal_cost is null or p_item.medal_cost not between 1 and 100000 then
    raise exception using errcode = 'PT400', message = 'invalid_medal_cost',
      detail = 'medal_cost: 1 to 100000 medals (medals only, never drawn items)';
  end if;
  if p_item.total_stock is not null and p_item.total_stock not between 0 and 100000000 then
    raise exception using errcode = 'PT400', message = 'invalid_stock',
      detail = 'total_stock: null (unlimited) or 0 to 100000000';
  end if;
  if (p_item.per_fan_limit is not null and p_item.per_fan_limit not between 1 and 100000)
     or (p_item.per_fan_daily_limit is not null and p_item.per_fan_daily_limit not between 1 and 100000) then
    raise exception using errcode = 'PT400', message = 'invalid_limit',
      detail = 'per_fan_limit and per_fan_daily_limit: null (none) or 1 to 100000';
  end if;
  if p_item.available_from is not null and p_item.available_until is not null
     and p_item.available_from >= p_item.available_until then
    raise exception using errcode = 'PT400', message = 'invalid_window',
      detail = 'available_from must be before available_until';
  end if;
  perform private.validate_content_path(p_item.vtuber_id, p_item.content_path);
end
$$;
comment on function private.validate_exchange_item(app.exchange_items) is
  'Raises a PT400 code for a bad exchange item field.';
revoke all on function private.validate_exchange_item(app.exchange_items) from public;
grant execute on function private.validate_exchange_item(app.exchange_items) to authenticated, service_role;

-- A JSON patch may only name these keys; anything else is refused, not ignored.
create or replace function private.check_patch(p_patch jsonb, p_allowed text[]) returns void
language plpgsql immutable
set search_path = ''
as $$
declare
  v_bad text;
begin
  if p_patch is null or jsonb_typeof(p_patch) <> 'object' then
    raise exception using errcode = 'PT400', message = 'invalid_patch',
      detail = 'p_patch must be a JSON object of the fields to change';
  end if;
  select string_agg(k, ', ') into v_bad from jsonb_object_keys(p_patch) k where k <> all (p_allowed);
  if v_bad is not null then
    raise exception using errcode = 'PT400', message = 'invalid_patch',
      detail = format('these fields cannot be changed: %s (allowed: %s)', v_bad,
                      array_to_string(p_allowed, ', '));
  end if;
end
$$;
comment on function private.check_patch(jsonb, text[]) is 'Refuses a patch naming a field not in the list.';
revoke all on function private.check_patch(jsonb, text[]) from public;
grant execute on function private.check_patch(jsonb, text[]) to authenticated, service_role;
