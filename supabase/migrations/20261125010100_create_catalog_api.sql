-- from sql/catalog/02_helpers.sql
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

-- from sql/catalog/10_policies.sql
-- Table privileges and row level security for the catalog. Reads go through the public
-- views (security_invoker, so these policies apply); every write goes through an RPC.
-- Helpers are called as (select private.…()) so Postgres evaluates them once per statement.

revoke all on app.profiles, app.user_roles, app.vtubers, app.vtuber_applications, app.gachas,
  app.gacha_items, app.exchange_items, app.platform_settings, app.audit_log
  from public, anon, authenticated, service_role;

-- anon and authenticated: the public columns of the catalog (content paths stay hidden).
grant select (id, name, description, status, created_at) on app.vtubers to anon, authenticated;
grant select on app.gachas to anon, authenticated;
grant select (id, gacha_id, name, description, rarity, rate_ppm, stock, stock_remaining, sort_order,
              created_at) on app.gacha_items to anon, authenticated;
grant select (id, vtuber_id, name, description, medal_cost, total_stock, per_fan_limit,
              per_fan_daily_limit, available_from, available_until, status, created_at, updated_at)
  on app.exchange_items to anon, authenticated;
grant select on app.platform_settings to anon, authenticated;
-- authenticated: their own rows (RLS), admins everything (RLS).
grant select on app.profiles, app.user_roles, app.vtuber_applications, app.audit_log to authenticated;
-- service_role (bypasses RLS): reads everything; may operate the catalog tables, where the
-- freeze triggers still hold. Roles, profiles and the audit log are written by RPCs only.
grant select on app.profiles, app.user_roles, app.vtubers, app.vtuber_applications, app.gachas,
  app.gacha_items, app.exchange_items, app.platform_settings, app.audit_log to service_role;
grant insert, update, delete on app.gachas, app.gacha_items, app.exchange_items to service_role;

-- profiles
drop policy if exists "Users can read their own profile" on app.profiles;
create policy "Users can read their own profile" on app.profiles
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "Admins can read every profile" on app.profiles;
create policy "Admins can read every profile" on app.profiles
  for select to authenticated using ((select private.is_admin()));

-- user_roles
drop policy if exists "Users can read their own roles" on app.user_roles;
create policy "Users can read their own roles" on app.user_roles
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "Admins can read every role" on app.user_roles;
create policy "Admins can read every role" on app.user_roles
  for select to authenticated using ((select private.is_admin()));

-- vtubers
drop policy if exists "Anyone can read approved VTubers" on app.vtubers;
create policy "Anyone can read approved VTubers" on app.vtubers
  for select to anon, authenticated using (status = 'approved');
drop policy if exists "VTubers can read their own profile" on app.vtubers;
create policy "VTubers can read their own profile" on app.vtubers
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "Admins can read every VTuber" on app.vtubers;
create policy "Admins can read every VTuber" on app.vtubers
  for select to authenticated using ((select private.is_admin()));

-- vtuber_applications
drop policy if exists "Applicants can read their own applications" on app.vtuber_applications;
create policy "Applicants can read their own applications" on app.vtuber_applications
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "Admins can read every application" on app.vtuber_applications;
create policy "Admins can read every application" on app.vtuber_applications
  for select to authenticated using ((select private.is_admin()));

-- gachas
drop policy if exists "Anyone can read published and ended gachas of approved VTubers" on app.gachas;
create policy "Anyone can read published and ended gachas of approved VTubers" on app.gachas
  for select to anon, authenticated
  using (status in ('published', 'ended')
         and exists (select 1 from app.vtubers v where v.id = vtuber_id and v.status = 'approved'));
drop policy if exists "VTubers can read their own gachas" on app.gachas;
create policy "VTubers can read their own gachas" on app.gachas
  for select to authenticated using (vtuber_id = (select private.current_vtuber_id()));
drop policy if exists "Admins can read every gacha" on app.gachas;
create policy "Admins can read every gacha" on app.gachas
  for select to authenticated using ((select private.is_admin()));

-- gacha_items: visible exactly when the caller can see the gacha (its policies apply here).
drop policy if exists "Anyone can read the items of a gacha they can read" on app.gacha_items;
create policy "Anyone can read the items of a gacha they can read" on app.gacha_items
  for select to anon, authenticated
  using (exists (select 1 from app.gachas g where g.id = gacha_id));

-- exchange_items
drop policy if exists "Anyone can read active exchange items of approved VTubers" on app.exchange_items;
create policy "Anyone can read active exchange items of approved VTubers" on app.exchange_items
  for select to anon, authenticated
  using (status = 'active'
         and exists (select 1 from app.vtubers v where v.id = vtuber_id and v.status = 'approved'));
drop policy if exists "VTubers can read their own exchange items" on app.exchange_items;
create policy "VTubers can read their own exchange items" on app.exchange_items
  for select to authenticated using (vtuber_id = (select private.current_vtuber_id()));
drop policy if exists "Admins can read every exchange item" on app.exchange_items;
create policy "Admins can read every exchange item" on app.exchange_items
  for select to authenticated using ((select private.is_admin()));

-- platform_settings
drop policy if exists "Anyone can read the platform settings" on app.platform_settings;
create policy "Anyone can read the platform settings" on app.platform_settings
  for select to anon, authenticated using (true);

-- audit_log
drop policy if exists "Admins can read the audit log" on app.audit_log;
create policy "Admins can read the audit log" on app.audit_log
  for select to authenticated using ((select private.is_admin()));

-- from sql/catalog/20_profiles_onboarding.sql
-- Profiles and VTuber onboarding. Each public function is a thin invoker wrapper over a
-- private security definer core that checks the caller itself.

-- ---------------------------------------------------------------------------------------
-- Profiles
-- ---------------------------------------------------------------------------------------
create or replace function private.role_rank(p_role text) returns integer
language sql immutable
set search_path = ''
as $$
  select case p_role when 'fan' then 1 when 'vtuber' then 2 when 'admin' then 3 end
$$;
comment on function private.role_rank(text) is 'Display order of roles.';
revoke all on function private.role_rank(text) from public;
grant execute on function private.role_rank(text) to authenticated, service_role;

create or replace function private.my_profile_json(p_user uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'user_id', p.user_id, 'display_name', p.display_name, 'birth_date', p.birth_date,
    'status', p.status, 'created_at', p.created_at,
    'roles', coalesce((select jsonb_agg(r.role order by private.role_rank(r.role))
                       from app.user_roles r where r.user_id = p.user_id), '[]'::jsonb),
    'vtuber', (select jsonb_build_object('id', v.id, 'name', v.name, 'status', v.status)
               from app.vtubers v where v.user_id = p.user_id))
  from app.profiles p where p.user_id = p_user
$$;
comment on function private.my_profile_json(uuid) is
  'security definer: a profile with roles and VTuber; callers pass auth.uid() only.';
revoke all on function private.my_profile_json(uuid) from public;
grant execute on function private.my_profile_json(uuid) to authenticated;

create or replace function private.get_my_profile() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  return private.my_profile_json(v_uid);
end
$$;
comment on function private.get_my_profile() is
  'security definer: reads the caller''s roles and VTuber whatever RLS (suspended users too).';
revoke all on function private.get_my_profile() from public;
grant execute on function private.get_my_profile() to authenticated;

create or replace function public.get_my_profile() returns jsonb
language sql stable
set search_path = ''
as $$ select private.get_my_profile() $$;
comment on function public.get_my_profile() is
  'The caller''s profile: {user_id, display_name, birth_date, status, created_at, roles[], vtuber}. '
  'Errors: not_authenticated (PT401).';
revoke all on function public.get_my_profile() from public, anon, authenticated, service_role;
grant execute on function public.get_my_profile() to authenticated;

create or replace function private.update_my_profile(p_display_name text, p_birth_date date)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_current date;
begin
  if p_display_name is not null then
    if char_length(btrim(p_display_name)) not between 1 and 50 then
      raise exception using errcode = 'PT400', message = 'invalid_display_name',
        detail = 'display_name: 1 to 50 characters';
    end if;
    update app.profiles set display_name = btrim(p_display_name) where user_id = v_uid;
  end if;
  if p_birth_date is not null then
    if p_birth_date < date '1900-01-01' or p_birth_date > (now() at time zone 'Asia/Tokyo')::date then
      raise exception using errcode = 'PT400', message = 'invalid_birth_date',
        detail = 'birth_date must be a real date, not in the future';
    end if;
    select birth_date into v_current from app.profiles where user_id = v_uid for update;
    if v_current is not null and v_current <> p_birth_date then
      raise exception using errcode = 'PT409', message = 'birth_date_already_set',
        detail = 'the birth date is set once; ask support to correct it';
    end if;
    update app.profiles set birth_date = p_birth_date where user_id = v_uid;
  end if;
  return private.my_profile_json(v_uid);
end
$$;
comment on function private.update_my_profile(text, date) is
  'security definer: the caller may change only their display name and set their birth date once.';
revoke all on function private.update_my_profile(text, date) from public;
grant execute on function private.update_my_profile(text, date) to authenticated;

create or replace function public.update_my_profile(
  p_display_name text default null, p_birth_date date default null
) returns jsonb
language sql
set search_path = ''
as $$ select private.update_my_profile(p_display_name, p_birth_date) $$;
comment on function public.update_my_profile(text, date) is
  'Sets the caller''s display name and (once) birth date; returns the profile. Errors: '
  'not_authenticated (PT401), account_suspended (PT403), invalid_display_name, invalid_birth_date '
  '(PT400), birth_date_already_set (PT409).';
revoke all on function public.update_my_profile(text, date) from public, anon, authenticated, service_role;
grant execute on function public.update_my_profile(text, date) to authenticated;

-- ---------------------------------------------------------------------------------------
-- VTuber applications
-- ---------------------------------------------------------------------------------------
create or replace function private.application_json(a app.vtuber_applications) returns jsonb
language sql immutable
set search_path = ''
as $$
  select jsonb_build_object('id', a.id, 'user_id', a.user_id, 'vtuber_name', a.vtuber_name,
    'description', a.description, 'status', a.status, 'review_reason', a.review_reason,
    'reviewed_at', a.reviewed_at, 'created_at', a.created_at)
$$;
comment on function private.application_json(app.vtuber_applications) is 'An application as JSON.';
revoke all on function private.application_json(app.vtuber_applications) from public;
grant execute on function private.application_json(app.vtuber_applications) to authenticated;

create or replace function private.submit_vtuber_application(p_vtuber_name text, p_description text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_last timestamptz;
  a app.vtuber_applications;
begin
  if p_vtuber_name is null or char_length(btrim(p_vtuber_name)) not between 1 and 100 then
    raise exception using errcode = 'PT400', message = 'invalid_vtuber_name',
      detail = 'vtuber_name: 1 to 100 characters';
  end if;
  if p_description is null or char_length(btrim(p_description)) not between 1 and 2000 then
    raise exception using errcode = 'PT400', message = 'invalid_description',
      detail = 'description: 1 to 2000 characters';
  end if;
  -- one decision at a time per applicant
  perform pg_catalog.pg_advisory_xact_lock(7253102, hashtext(v_uid::text));
  if exists (select 1 from app.user_roles r where r.user_id = v_uid and r.role = 'vtuber') then
    raise exception using errcode = 'PT409', message = 'already_a_vtuber',
      detail = 'this account is already a VTuber';
  end if;
  if exists (select 1 from app.vtuber_applications x where x.user_id = v_uid and x.status = 'pending') then
    raise exception using errcode = 'PT409', message = 'application_already_open',
      detail = 'you already have an open application: withdraw it or wait for its review';
  end if;
  select max(x.reviewed_at) into v_last from app.vtuber_applications x
    where x.user_id = v_uid and x.status = 'rejected';
  if v_last is not null and v_last > now() - interval '30 days' then
    raise exception using errcode = 'PT422', message = 'reapply_cooldown_active',
      detail = format('after a rejection you may apply again from %s (JST)',
                      to_char((v_last + interval '30 days') at time zone 'Asia/Tokyo', 'YYYY-MM-DD HH24:MI'));
  end if;
  insert into app.vtuber_applications (user_id, vtuber_name, description)
  values (v_uid, btrim(p_vtuber_name), btrim(p_description))
  returning * into a;
  return private.application_json(a);
exception
  when unique_violation then
    raise exception using errcode = 'PT409', message = 'application_already_open',
      detail = 'you already have an open application: withdraw it or wait for its review';
end
$$;
comment on function private.submit_vtuber_application(text, text) is
  'security definer: fans may not write app.vtuber_applications directly; one open application, '
  '30 days after a rejection.';
revoke all on function private.submit_vtuber_application(text, text) from public;
grant execute on function private.submit_vtuber_application(text, text) to authenticated;

create or replace function public.submit_vtuber_application(p_vtuber_name text, p_description text)
returns jsonb
language sql
set search_path = ''
as $$ select private.submit_vtuber_application(p_vtuber_name, p_description) $$;
comment on function public.submit_vtuber_application(text, text) is
  'A fan applies to become a VTuber; returns the application. Errors: not_authenticated (PT401), '
  'account_suspended (PT403), invalid_vtuber_name, invalid_description (PT400), already_a_vtuber, '
  'application_already_open (PT409), reapply_cooldown_active (PT422, 30 days after a rejection).';
revoke all on function public.submit_vtuber_application(text, text) from public, anon, authenticated, service_role;
grant execute on function public.submit_vtuber_application(text, text) to authenticated;

create or replace function private.withdraw_vtuber_application(p_application_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  a app.vtuber_applications;
begin
  select * into a from app.vtuber_applications x
    where x.id = p_application_id and x.user_id = v_uid for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'application_not_found',
      detail = 'no such application of yours';
  end if;
  if a.status <> 'pending' then
    raise exception using errcode = 'PT409', message = 'application_not_pending',
      detail = format('the application is %s', a.status);
  end if;
  update app.vtuber_applications set status = 'withdrawn' where id = a.id returning * into a;
  return private.application_json(a);
end
$$;
comment on function private.withdraw_vtuber_application(uuid) is
  'security definer: the applicant withdraws their own pending application.';
revoke all on function private.withdraw_vtuber_application(uuid) from public;
grant execute on function private.withdraw_vtuber_application(uuid) to authenticated;

create or replace function public.withdraw_vtuber_application(p_application_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.withdraw_vtuber_application(p_application_id) $$;
comment on function public.withdraw_vtuber_application(uuid) is
  'Withdraws the caller''s pending application. Errors: not_authenticated (PT401), '
  'account_suspended (PT403), application_not_found (PT404), application_not_pending (PT409).';
revoke all on function public.withdraw_vtuber_application(uuid) from public, anon, authenticated, service_role;
grant execute on function public.withdraw_vtuber_application(uuid) to authenticated;

create or replace function public.list_my_applications() returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  if auth.uid() is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  return coalesce((select jsonb_agg(private.application_json(a) order by a.created_at desc)
                   from app.vtuber_applications a where a.user_id = auth.uid()), '[]'::jsonb);
end
$$;
comment on function public.list_my_applications() is
  'The caller''s applications, newest first. Errors: not_authenticated (PT401).';
revoke all on function public.list_my_applications() from public, anon, authenticated, service_role;
grant execute on function public.list_my_applications() to authenticated;

create or replace function private.list_vtuber_applications(p_status text) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_status is not null and p_status not in ('pending', 'approved', 'rejected', 'withdrawn') then
    raise exception using errcode = 'PT400', message = 'invalid_status',
      detail = 'status: pending, approved, rejected or withdrawn';
  end if;
  return coalesce((select jsonb_agg(private.application_json(a) || jsonb_build_object(
                            'display_name', p.display_name) order by a.created_at)
                   from app.vtuber_applications a join app.profiles p on p.user_id = a.user_id
                   where p_status is null or a.status = p_status), '[]'::jsonb);
end
$$;
comment on function private.list_vtuber_applications(text) is
  'security definer: admins list applications with the applicant''s display name.';
revoke all on function private.list_vtuber_applications(text) from public;
grant execute on function private.list_vtuber_applications(text) to authenticated;

create or replace function public.list_vtuber_applications(p_status text default 'pending') returns jsonb
language sql stable
set search_path = ''
as $$ select private.list_vtuber_applications(p_status) $$;
comment on function public.list_vtuber_applications(text) is
  'Admin: applications with the given status (null = all), oldest first. Errors: not_authenticated '
  '(PT401), admin_only (PT403), invalid_status (PT400).';
revoke all on function public.list_vtuber_applications(text) from public, anon, authenticated, service_role;
grant execute on function public.list_vtuber_applications(text) to authenticated;

create or replace function private.review_vtuber_application(
  p_application_id uuid, p_decision text, p_reason text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  a app.vtuber_applications;
  v_vtuber app.vtubers;
begin
  if p_decision is null or p_decision not in ('approve', 'reject') then
    raise exception using errcode = 'PT400', message = 'invalid_decision',
      detail = 'decision: approve or reject';
  end if;
  if p_reason is not null and char_length(p_reason) > 1000 then
    raise exception using errcode = 'PT400', message = 'invalid_reason', detail = 'reason: at most 1000 characters';
  end if;
  select * into a from app.vtuber_applications x where x.id = p_application_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'application_not_found', detail = 'no such application';
  end if;
  if a.user_id = v_admin then
    raise exception using errcode = 'PT403', message = 'cannot_review_own_application',
      detail = 'another admin must review your application';
  end if;
  if a.status <> 'pending' then
    raise exception using errcode = 'PT409', message = 'application_not_pending',
      detail = format('the application is %s', a.status);
  end if;
  if p_decision = 'reject' then
    if p_reason is null or btrim(p_reason) = '' then
      raise exception using errcode = 'PT422', message = 'rejection_needs_reason',
        detail = 'say why the application is rejected';
    end if;
    update app.vtuber_applications
      set status = 'rejected', review_reason = btrim(p_reason), reviewed_by = v_admin, reviewed_at = now()
      where id = a.id returning * into a;
    perform private.append_audit(v_admin, 'application.reject', 'vtuber_application', a.id::text,
                                 jsonb_build_object('user_id', a.user_id, 'reason', a.review_reason));
    return private.application_json(a);
  end if;
  update app.vtuber_applications
    set status = 'approved', review_reason = nullif(btrim(p_reason), ''), reviewed_by = v_admin,
        reviewed_at = now()
    where id = a.id returning * into a;
  insert into app.vtubers (user_id, name, description, status, approved_at)
  values (a.user_id, a.vtuber_name, a.description, 'approved', now())
  on conflict (user_id) do update
    set name = excluded.name, description = excluded.description, status = 'approved',
        approved_at = excluded.approved_at
  returning * into v_vtuber;
  insert into app.user_roles (user_id, role, granted_by) values (a.user_id, 'vtuber', v_admin)
  on conflict (user_id, role) do nothing;
  perform private.append_audit(v_admin, 'application.approve', 'vtuber_application', a.id::text,
                               jsonb_build_object('user_id', a.user_id, 'vtuber_id', v_vtuber.id,
                                                  'reason', a.review_reason));
  return private.application_json(a) || jsonb_build_object('vtuber_id', v_vtuber.id);
end
$$;
comment on function private.review_vtuber_application(uuid, text, text) is
  'security definer: approval creates the VTuber and grants the role in one transaction; audited.';
revoke all on function private.review_vtuber_application(uuid, text, text) from public;
grant execute on function private.review_vtuber_application(uuid, text, text) to authenticated;

create or replace function public.review_vtuber_application(
  p_application_id uuid, p_decision text, p_reason text default null
) returns jsonb
language sql
set search_path = ''
as $$ select private.review_vtuber_application(p_application_id, p_decision, p_reason) $$;
comment on function public.review_vtuber_application(uuid, text, text) is
  'Admin: approve (creates the VTuber, grants the vtuber role) or reject (reason required) a '
  'pending application; audited. Errors: not_authenticated (PT401), admin_only, '
  'cannot_review_own_application (PT403), invalid_decision, invalid_reason (PT400), '
  'application_not_found (PT404), application_not_pending (PT409), rejection_needs_reason (PT422).';
revoke all on function public.review_vtuber_application(uuid, text, text)
  from public, anon, authenticated, service_role;
grant execute on function public.review_vtuber_application(uuid, text, text) to authenticated;

-- from sql/catalog/30_gachas.sql
-- Gachas and their items: VTubers edit their own drafts, publish, end. Once published the
-- freeze trigger (migration 20261125010000) refuses every change but the lifecycle.

create or replace function private.gacha_json(g app.gachas) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select to_jsonb(g) || jsonb_build_object('items', coalesce((
    select jsonb_agg(to_jsonb(i) order by i.sort_order, private.rarity_rank(i.rarity) desc, i.name)
    from app.gacha_items i where i.gacha_id = g.id), '[]'::jsonb))
$$;
comment on function private.gacha_json(app.gachas) is
  'security definer: a gacha with its items and content paths, for its owner''s RPC results.';
revoke all on function private.gacha_json(app.gachas) from public;
grant execute on function private.gacha_json(app.gachas) to authenticated;

-- The caller's own gacha, locked; 404 when they cannot see it, 403 when it is someone else's.
create or replace function private.own_gacha(p_gacha_id uuid, p_vtuber app.vtubers) returns app.gachas
language plpgsql security definer
set search_path = ''
as $$
declare
  g app.gachas;
begin
  select * into g from app.gachas x where x.id = p_gacha_id for update;
  if not found or (g.vtuber_id <> p_vtuber.id and g.status not in ('published', 'ended')) then
    raise exception using errcode = 'PT404', message = 'gacha_not_found', detail = 'no such gacha';
  end if;
  if g.vtuber_id <> p_vtuber.id then
    raise exception using errcode = 'PT403', message = 'not_gacha_owner',
      detail = 'only the VTuber who owns this gacha may change it';
  end if;
  return g;
end
$$;
comment on function private.own_gacha(uuid, app.vtubers) is
  'security definer: locks and returns the caller''s gacha or raises gacha_not_found / not_gacha_owner.';
revoke all on function private.own_gacha(uuid, app.vtubers) from public;
grant execute on function private.own_gacha(uuid, app.vtubers) to authenticated;

create or replace function private.require_draft(g app.gachas) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if g.status <> 'draft' then
    raise exception using errcode = 'PT409', message = 'gacha_not_draft',
      detail = format('the gacha is %s: only drafts can be edited; publish a new gacha instead', g.status);
  end if;
end
$$;
comment on function private.require_draft(app.gachas) is 'Raises gacha_not_draft unless the gacha is a draft.';
revoke all on function private.require_draft(app.gachas) from public;
grant execute on function private.require_draft(app.gachas) to authenticated;

create or replace function private.create_gacha(
  p_title text, p_start_at timestamptz, p_end_at timestamptz, p_description text,
  p_price_single integer, p_price_ten integer, p_medals_per_pull integer,
  p_ten_pull_bonus_medals integer, p_total_pull_cap integer, p_pity_pulls integer, p_pity_rarity text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  g app.gachas;
begin
  g.id := gen_random_uuid();
  g.vtuber_id := v.id;
  g.title := btrim(p_title);
  g.description := coalesce(p_description, '');
  g.price_single := p_price_single;
  g.price_ten := p_price_ten;
  g.medals_per_pull := p_medals_per_pull;
  g.ten_pull_bonus_medals := p_ten_pull_bonus_medals;
  g.start_at := p_start_at;
  g.end_at := p_end_at;
  g.total_pull_cap := p_total_pull_cap;
  g.pity_pulls := p_pity_pulls;
  g.pity_rarity := p_pity_rarity;
  g.status := 'draft';
  perform private.validate_gacha(g);
  insert into app.gachas (id, vtuber_id, title, description, price_single, price_ten, medals_per_pull,
                          ten_pull_bonus_medals, start_at, end_at, total_pull_cap, pity_pulls, pity_rarity)
  values (g.id, g.vtuber_id, g.title, g.description, g.price_single, g.price_ten, g.medals_per_pull,
          g.ten_pull_bonus_medals, g.start_at, g.end_at, g.total_pull_cap, g.pity_pulls, g.pity_rarity)
  returning * into g;
  return private.gacha_json(g);
end
$$;
comment on function private.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                         integer, integer, integer, text) is
  'security definer: only RPCs write app.gachas; the caller must be an approved VTuber.';
revoke all on function private.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                            integer, integer, integer, text) from public;
grant execute on function private.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                               integer, integer, integer, text) to authenticated;

create or replace function public.create_gacha(
  p_title text, p_start_at timestamptz, p_end_at timestamptz, p_description text default '',
  p_price_single integer default 100, p_price_ten integer default 1000,
  p_medals_per_pull integer default 10, p_ten_pull_bonus_medals integer default 0,
  p_total_pull_cap integer default null, p_pity_pulls integer default null, p_pity_rarity text default null
) returns jsonb
language sql
set search_path = ''
as $$
  select private.create_gacha(p_title, p_start_at, p_end_at, p_description, p_price_single, p_price_ten,
                              p_medals_per_pull, p_ten_pull_bonus_medals, p_total_pull_cap, p_pity_pulls,
                              p_pity_rarity)
$$;
comment on function public.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                        integer, integer, integer, text) is
  'VTuber: creates a draft gacha of their own; returns it with its (empty) items. Errors: '
  'not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved (PT403), invalid_title, '
  'invalid_description, invalid_price, invalid_medals_per_pull, invalid_ten_pull_bonus, invalid_window, '
  'invalid_total_pull_cap, invalid_pity (PT400).';
revoke all on function public.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                           integer, integer, integer, text)
  from public, anon, authenticated, service_role;
grant execute on function public.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                              integer, integer, integer, text) to authenticated;

create or replace function private.update_gacha(p_gacha_id uuid, p_patch jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  g app.gachas := private.own_gacha(p_gacha_id, v);
  n app.gachas;
begin
  perform private.require_draft(g);
  perform private.check_patch(p_patch, array['title', 'description', 'price_single', 'price_ten',
    'medals_per_pull', 'ten_pull_bonus_medals', 'start_at', 'end_at', 'total_pull_cap', 'pity_pulls',
    'pity_rarity']);
  begin
    n := jsonb_populate_record(g, p_patch);
  exception when data_exception then
    raise exception using errcode = 'PT400', message = 'invalid_patch',
      detail = format('a value has the wrong type: %s', sqlerrm);
  end;
  n.title := btrim(n.title);
  perform private.validate_gacha(n);
  update app.gachas set title = n.title, description = n.description, price_single = n.price_single,
    price_ten = n.price_ten, medals_per_pull = n.medals_per_pull,
    ten_pull_bonus_medals = n.ten_pull_bonus_medals, start_at = n.start_at, end_at = n.end_at,
    total_pull_cap = n.total_pull_cap, pity_pulls = n.pity_pulls, pity_rarity = n.pity_rarity
  where id = g.id returning * into g;
  return private.gacha_json(g);
end
$$;
comment on function private.update_gacha(uuid, jsonb) is
  'security definer: the owner edits a draft; the patch names only editable fields.';
revoke all on function private.update_gacha(uuid, jsonb) from public;
grant execute on function private.update_gacha(uuid, jsonb) to authenticated;

create or replace function public.update_gacha(p_gacha_id uuid, p_patch jsonb) returns jsonb
language sql
set search_path = ''
as $$ select private.update_gacha(p_gacha_id, p_patch) $$;
comment on function public.update_gacha(uuid, jsonb) is
  'VTuber: changes fields of their own draft ({"title": …, "price_single": …, "pity_pulls": null, …}); '
  'returns the gacha. Errors: as create_gacha, plus invalid_patch (PT400), gacha_not_found (PT404), '
  'not_gacha_owner (PT403), gacha_not_draft (PT409).';
revoke all on function public.update_gacha(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.update_gacha(uuid, jsonb) to authenticated;

create or replace function private.add_gacha_item(
  p_gacha_id uuid, p_name text, p_rarity text, p_rate_ppm integer, p_content_path text,
  p_description text, p_stock integer, p_sort_order integer
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  g app.gachas := private.own_gacha(p_gacha_id, v);
  i app.gacha_items;
begin
  perform private.require_draft(g);
  i.gacha_id := g.id;
  i.name := btrim(p_name);
  i.description := coalesce(p_description, '');
  i.rarity := p_rarity;
  i.rate_ppm := p_rate_ppm;
  i.stock := p_stock;
  i.content_path := p_content_path;
  i.sort_order := coalesce(p_sort_order, 0);
  perform private.validate_gacha_item(v.id, i);
  if (select count(*) from app.gacha_items x where x.gacha_id = g.id) >= 200 then
    raise exception using errcode = 'PT422', message = 'too_many_items', detail = 'a gacha has at most 200 items';
  end if;
  insert into app.gacha_items (gacha_id, name, description, rarity, rate_ppm, stock, content_path, sort_order)
  values (i.gacha_id, i.name, i.description, i.rarity, i.rate_ppm, i.stock, i.content_path, i.sort_order)
  returning * into i;
  return to_jsonb(i);
end
$$;
comment on function private.add_gacha_item(uuid, text, text, integer, text, text, integer, integer) is
  'security definer: the owner adds an item to a draft.';
revoke all on function private.add_gacha_item(uuid, text, text, integer, text, text, integer, integer) from public;
grant execute on function private.add_gacha_item(uuid, text, text, integer, text, text, integer, integer)
  to authenticated;

create or replace function public.add_gacha_item(
  p_gacha_id uuid, p_name text, p_rarity text, p_rate_ppm integer, p_content_path text,
  p_description text default '', p_stock integer default null, p_sort_order integer default 0
) returns jsonb
language sql
set search_path = ''
as $$
  select private.add_gacha_item(p_gacha_id, p_name, p_rarity, p_rate_ppm, p_content_path, p_description,
                                p_stock, p_sort_order)
$$;
comment on function public.add_gacha_item(uuid, text, text, integer, text, text, integer, integer) is
  'VTuber: adds an item (rarity N/R/SR/SSR/UR, rate in ppm, optional stock, content path under '
  '<vtuber_id>/) to their own draft; returns the item. Errors: not_authenticated (PT401), '
  'account_suspended, not_a_vtuber, vtuber_not_approved, not_gacha_owner (PT403), gacha_not_found (PT404), '
  'gacha_not_draft (PT409), invalid_name, invalid_description, invalid_rarity, invalid_rate, invalid_stock, '
  'invalid_content_path (PT400), too_many_items (PT422).';
revoke all on function public.add_gacha_item(uuid, text, text, integer, text, text, integer, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.add_gacha_item(uuid, text, text, integer, text, text, integer, integer)
  to authenticated;

create or replace function private.own_gacha_item(p_item_id uuid, p_vtuber app.vtubers)
returns app.gacha_items
language plpgsql security definer
set search_path = ''
as $$
declare
  i app.gacha_items;
begin
  select * into i from app.gacha_items x where x.id = p_item_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'gacha_item_not_found', detail = 'no such gacha item';
  end if;
  begin
    perform private.own_gacha(i.gacha_id, p_vtuber);
  exception when sqlstate 'PT404' then
    raise exception using errcode = 'PT404', message = 'gacha_item_not_found', detail = 'no such gacha item';
  end;
  select * into i from app.gacha_items x where x.id = p_item_id for update;
  return i;
end
$$;
comment on function private.own_gacha_item(uuid, app.vtubers) is
  'security definer: locks the caller''s item (and its gacha) or raises gacha_item_not_found / not_gacha_owner.';
revoke all on function private.own_gacha_item(uuid, app.vtubers) from public;
grant execute on function private.own_gacha_item(uuid, app.vtubers) to authenticated;

create or replace function private.update_gacha_item(p_item_id uuid, p_patch jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  i app.gacha_items := private.own_gacha_item(p_item_id, v);
  n app.gacha_items;
begin
  perform private.require_draft(g) from app.gachas g where g.id = i.gacha_id;
  perform private.check_patch(p_patch, array['name', 'description', 'rarity', 'rate_ppm', 'stock',
                                             'content_path', 'sort_order']);
  begin
    n := jsonb_populate_record(i, p_patch);
  exception when data_exception then
    raise exception using errcode = 'PT400', message = 'invalid_patch',
      detail = format('a value has the wrong type: %s', sqlerrm);
  end;
  n.name := btrim(n.name);
  perform private.validate_gacha_item(v.id, n);
  update app.gacha_items set name = n.name, description = n.description, rarity = n.rarity,
    rate_ppm = n.rate_ppm, stock = n.stock, content_path = n.content_path, sort_order = n.sort_order
  where id = i.id returning * into i;
  return to_jsonb(i);
end
$$;
comment on function private.update_gacha_item(uuid, jsonb) is
  'security definer: the owner edits an item of a draft.';
revoke all on function private.update_gacha_item(uuid, jsonb) from public;
grant execute on function private.update_gacha_item(uuid, jsonb) to authenticated;

create or replace function public.update_gacha_item(p_item_id uuid, p_patch jsonb) returns jsonb
language sql
set search_path = ''
as $$ select private.update_gacha_item(p_item_id, p_patch) $$;
comment on function public.update_gacha_item(uuid, jsonb) is
  'VTuber: changes fields of an item of their own draft ({"rate_ppm": …, "stock": null, …}); returns the '
  'item. Errors: as add_gacha_item, plus invalid_patch (PT400), gacha_item_not_found (PT404).';
revoke all on function public.update_gacha_item(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.update_gacha_item(uuid, jsonb) to authenticated;

create or replace function private.remove_gacha_item(p_item_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  i app.gacha_items := private.own_gacha_item(p_item_id, v);
begin
  perform private.require_draft(g) from app.gachas g where g.id = i.gacha_id;
  delete from app.gacha_items where id = i.id;
  return jsonb_build_object('id', i.id, 'gacha_id', i.gacha_id, 'removed', true);
end
$$;
comment on function private.remove_gacha_item(uuid) is 'security definer: the owner removes an item of a draft.';
revoke all on function private.remove_gacha_item(uuid) from public;
grant execute on function private.remove_gacha_item(uuid) to authenticated;

create or replace function public.remove_gacha_item(p_item_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.remove_gacha_item(p_item_id) $$;
comment on function public.remove_gacha_item(uuid) is
  'VTuber: removes an item from their own draft; returns {id, gacha_id, removed}. Errors: '
  'not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved, not_gacha_owner '
  '(PT403), gacha_item_not_found (PT404), gacha_not_draft (PT409).';
revoke all on function public.remove_gacha_item(uuid) from public, anon, authenticated, service_role;
grant execute on function public.remove_gacha_item(uuid) to authenticated;

create or replace function private.publish_gacha(p_gacha_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  g app.gachas := private.own_gacha(p_gacha_id, v);
begin
  perform private.require_draft(g);
  -- The freeze trigger runs the publish checks (private.gacha_publish_problem) for every role.
  update app.gachas set status = 'published' where id = g.id returning * into g;
  return private.gacha_json(g);
end
$$;
comment on function private.publish_gacha(uuid) is
  'security definer: the owner publishes a draft; the trigger refuses it unless every rule holds.';
revoke all on function private.publish_gacha(uuid) from public;
grant execute on function private.publish_gacha(uuid) to authenticated;

create or replace function public.publish_gacha(p_gacha_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.publish_gacha(p_gacha_id) $$;
comment on function public.publish_gacha(uuid) is
  'VTuber: publishes their own draft, which freezes it; returns the gacha with expected_cost_top_rarity. '
  'Errors: not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved, not_gacha_owner '
  '(PT403), gacha_not_found (PT404), gacha_not_draft (PT409), gacha_window_over, gacha_has_no_items, '
  'rate_must_be_positive, rates_must_sum_to_one_million, pity_settings_invalid, expected_cost_too_high (PT422).';
revoke all on function public.publish_gacha(uuid) from public, anon, authenticated, service_role;
grant execute on function public.publish_gacha(uuid) to authenticated;

create or replace function private.end_gacha(p_gacha_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_admin boolean := private.is_admin();
  g app.gachas;
begin
  if v_admin then
    select * into g from app.gachas x where x.id = p_gacha_id for update;
    if not found then
      raise exception using errcode = 'PT404', message = 'gacha_not_found', detail = 'no such gacha';
    end if;
  else
    g := private.own_gacha(p_gacha_id, private.require_vtuber());
  end if;
  if g.status <> 'published' then
    raise exception using errcode = 'PT409', message = 'gacha_not_published',
      detail = format('the gacha is %s; only a published gacha can be ended', g.status);
  end if;
  update app.gachas set status = 'ended', ended_at = now() where id = g.id returning * into g;
  if v_admin and not private.is_vtuber_owner(g.vtuber_id) then
    perform private.append_audit(v_uid, 'gacha.end', 'gacha', g.id::text, '{}'::jsonb);
  end if;
  return private.gacha_json(g);
end
$$;
comment on function private.end_gacha(uuid) is
  'security definer: the owner (or an admin, audited) ends a published gacha; paid orders stay honoured.';
revoke all on function private.end_gacha(uuid) from public;
grant execute on function private.end_gacha(uuid) to authenticated;

create or replace function public.end_gacha(p_gacha_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.end_gacha(p_gacha_id) $$;
comment on function public.end_gacha(uuid) is
  'VTuber (own) or admin: ends a published gacha before end_at; returns the gacha. Errors: '
  'not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved, not_gacha_owner (PT403), '
  'gacha_not_found (PT404), gacha_not_published (PT409).';
revoke all on function public.end_gacha(uuid) from public, anon, authenticated, service_role;
grant execute on function public.end_gacha(uuid) to authenticated;

create or replace function private.list_my_gachas() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
begin
  return coalesce((select jsonb_agg(private.gacha_json(g) order by g.created_at desc)
                   from app.gachas g where g.vtuber_id = v.id), '[]'::jsonb);
end
$$;
comment on function private.list_my_gachas() is
  'security definer: the caller''s gachas (drafts included) with items and content paths.';
revoke all on function private.list_my_gachas() from public;
grant execute on function private.list_my_gachas() to authenticated;

create or replace function public.list_my_gachas() returns jsonb
language sql stable
set search_path = ''
as $$ select private.list_my_gachas() $$;
comment on function public.list_my_gachas() is
  'VTuber: their gachas in every status, newest first, each with items (content paths included). '
  'Errors: not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved (PT403).';
revoke all on function public.list_my_gachas() from public, anon, authenticated, service_role;
grant execute on function public.list_my_gachas() to authenticated;

-- from sql/catalog/40_exchange_items.sql
-- Exchange items: VTubers create, update and retire their own. The cost is medals only
-- (no column can require owning drawn items: a complete-gacha is illegal).

create or replace function private.own_exchange_item(p_exchange_item_id uuid, p_vtuber app.vtubers)
returns app.exchange_items
language plpgsql security definer
set search_path = ''
as $$
declare
  e app.exchange_items;
begin
  select * into e from app.exchange_items x where x.id = p_exchange_item_id for update;
  if not found or (e.vtuber_id <> p_vtuber.id and e.status <> 'active') then
    raise exception using errcode = 'PT404', message = 'exchange_item_not_found', detail = 'no such exchange item';
  end if;
  if e.vtuber_id <> p_vtuber.id then
    raise exception using errcode = 'PT403', message = 'not_exchange_item_owner',
      detail = 'only the VTuber who owns this exchange item may change it';
  end if;
  if e.status = 'retired' then
    raise exception using errcode = 'PT409', message = 'exchange_item_retired',
      detail = 'a retired exchange item cannot be changed: create a new one';
  end if;
  return e;
end
$$;
comment on function private.own_exchange_item(uuid, app.vtubers) is
  'security definer: locks the caller''s active exchange item or raises exchange_item_not_found, '
  'not_exchange_item_owner, exchange_item_retired.';
revoke all on function private.own_exchange_item(uuid, app.vtubers) from public;
grant execute on function private.own_exchange_item(uuid, app.vtubers) to authenticated;

create or replace function private.create_exchange_item(
  p_name text, p_medal_cost integer, p_content_path text, p_description text, p_total_stock integer,
  p_per_fan_limit integer, p_per_fan_daily_limit integer, p_available_from timestamptz,
  p_available_until timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  e app.exchange_items;
begin
  e.vtuber_id := v.id;
  e.name := btrim(p_name);
  e.description := coalesce(p_description, '');
  e.medal_cost := p_medal_cost;
  e.total_stock := p_total_stock;
  e.per_fan_limit := p_per_fan_limit;
  e.per_fan_daily_limit := p_per_fan_daily_limit;
  e.available_from := p_available_from;
  e.available_until := p_available_until;
  e.content_path := p_content_path;
  perform private.validate_exchange_item(e);
  insert into app.exchange_items (vtuber_id, name, description, medal_cost, total_stock, per_fan_limit,
                                  per_fan_daily_limit, available_from, available_until, content_path)
  values (e.vtuber_id, e.name, e.description, e.medal_cost, e.total_stock, e.per_fan_limit,
          e.per_fan_daily_limit, e.available_from, e.available_until, e.content_path)
  returning * into e;
  return to_jsonb(e);
end
$$;
comment on function private.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                 timestamptz, timestamptz) is
  'security definer: only RPCs write app.exchange_items; the caller must be an approved VTuber.';
revoke all on function private.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                    timestamptz, timestamptz) from public;
grant execute on function private.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                       timestamptz, timestamptz) to authenticated;

create or replace function public.create_exchange_item(
  p_name text, p_medal_cost integer, p_content_path text, p_description text default '',
  p_total_stock integer default null, p_per_fan_limit integer default null,
  p_per_fan_daily_limit integer default null, p_available_from timestamptz default null,
  p_available_until timestamptz default null
) returns jsonb
language sql
set search_path = ''
as $$
  select private.create_exchange_item(p_name, p_medal_cost, p_content_path, p_description, p_total_stock,
                                      p_per_fan_limit, p_per_fan_daily_limit, p_available_from,
                                      p_available_until)
$$;
comment on function public.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                timestamptz, timestamptz) is
  'VTuber: creates an exchange item costing 1–100000 of their medals (optional total stock, per-fan '
  'lifetime and JST-daily limits, availability window); returns it. Errors: not_authenticated (PT401), '
  'account_suspended, not_a_vtuber, vtuber_not_approved (PT403), invalid_name, invalid_description, '
  'invalid_medal_cost, invalid_stock, invalid_limit, invalid_window, invalid_content_path (PT400).';
revoke all on function public.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                   timestamptz, timestamptz)
  from public, anon, authenticated, service_role;
grant execute on function public.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                      timestamptz, timestamptz) to authenticated;

create or replace function private.update_exchange_item(p_exchange_item_id uuid, p_patch jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  e app.exchange_items := private.own_exchange_item(p_exchange_item_id, v);
  n app.exchange_items;
begin
  perform private.check_patch(p_patch, array['name', 'description', 'medal_cost', 'total_stock',
    'per_fan_limit', 'per_fan_daily_limit', 'available_from', 'available_until', 'content_path']);
  begin
    n := jsonb_populate_record(e, p_patch);
  exception when data_exception then
    raise exception using errcode = 'PT400', message = 'invalid_patch',
      detail = format('a value has the wrong type: %s', sqlerrm);
  end;
  n.name := btrim(n.name);
  perform private.validate_exchange_item(n);
  update app.exchange_items set name = n.name, description = n.description, medal_cost = n.medal_cost,
    total_stock = n.total_stock, per_fan_limit = n.per_fan_limit, per_fan_daily_limit = n.per_fan_daily_limit,
    available_from = n.available_from, available_until = n.available_until, content_path = n.content_path
  where id = e.id returning * into e;
  return to_jsonb(e);
end
$$;
comment on function private.update_exchange_item(uuid, jsonb) is
  'security definer: the owner edits an active exchange item.';
revoke all on function private.update_exchange_item(uuid, jsonb) from public;
grant execute on function private.update_exchange_item(uuid, jsonb) to authenticated;

create or replace function public.update_exchange_item(p_exchange_item_id uuid, p_patch jsonb) returns jsonb
language sql
set search_path = ''
as $$ select private.update_exchange_item(p_exchange_item_id, p_patch) $$;
comment on function public.update_exchange_item(uuid, jsonb) is
  'VTuber: changes fields of their own active exchange item ({"medal_cost": …, "total_stock": null, …}); '
  'returns it. Errors: as create_exchange_item, plus invalid_patch (PT400), exchange_item_not_found (PT404), '
  'not_exchange_item_owner (PT403), exchange_item_retired (PT409).';
revoke all on function public.update_exchange_item(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.update_exchange_item(uuid, jsonb) to authenticated;

create or replace function private.retire_exchange_item(p_exchange_item_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  e app.exchange_items := private.own_exchange_item(p_exchange_item_id, v);
begin
  update app.exchange_items set status = 'retired' where id = e.id returning * into e;
  return to_jsonb(e);
end
$$;
comment on function private.retire_exchange_item(uuid) is
  'security definer: the owner retires an exchange item (rewards already exchanged stay owned).';
revoke all on function private.retire_exchange_item(uuid) from public;
grant execute on function private.retire_exchange_item(uuid) to authenticated;

create or replace function public.retire_exchange_item(p_exchange_item_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.retire_exchange_item(p_exchange_item_id) $$;
comment on function public.retire_exchange_item(uuid) is
  'VTuber: retires their own exchange item (no more exchanges); returns it. Errors: not_authenticated '
  '(PT401), account_suspended, not_a_vtuber, vtuber_not_approved, not_exchange_item_owner (PT403), '
  'exchange_item_not_found (PT404), exchange_item_retired (PT409).';
revoke all on function public.retire_exchange_item(uuid) from public, anon, authenticated, service_role;
grant execute on function public.retire_exchange_item(uuid) to authenticated;

create or replace function private.list_my_exchange_items() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
begin
  return coalesce((select jsonb_agg(to_jsonb(e) order by e.created_at desc)
                   from app.exchange_items e where e.vtuber_id = v.id), '[]'::jsonb);
end
$$;
comment on function private.list_my_exchange_items() is
  'security definer: the caller''s exchange items in every status, with content paths.';
revoke all on function private.list_my_exchange_items() from public;
grant execute on function private.list_my_exchange_items() to authenticated;

create or replace function public.list_my_exchange_items() returns jsonb
language sql stable
set search_path = ''
as $$ select private.list_my_exchange_items() $$;
comment on function public.list_my_exchange_items() is
  'VTuber: their exchange items (active and retired), newest first, content paths included. Errors: '
  'not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved (PT403).';
revoke all on function public.list_my_exchange_items() from public, anon, authenticated, service_role;
grant execute on function public.list_my_exchange_items() to authenticated;

-- from sql/catalog/50_disclosure.sql
-- Disclosure: what anyone (anon included) may read. security_invoker views, so the caller's
-- privileges and the policies of app.* apply; drafts and suspended gachas never appear here.

create or replace view public.vtubers with (security_invoker = true) as
  select v.id, v.name, v.description, v.created_at
  from app.vtubers v
  where v.status = 'approved';
comment on view public.vtubers is 'Approved VTubers.';

create or replace view public.gachas with (security_invoker = true) as
  select g.id, g.vtuber_id, v.name as vtuber_name, g.title, g.description, g.status,
         case when g.status = 'ended' or g.end_at <= now() then 'ended'
              when g.start_at > now() then 'upcoming'
              else 'on_sale' end as sale_state,
         g.price_single, g.price_ten, g.medals_per_pull, g.ten_pull_bonus_medals,
         g.start_at, g.end_at, g.total_pull_cap, g.pity_pulls, g.pity_rarity,
         g.expected_cost_top_rarity, g.guaranteed_cost_top_rarity, g.published_at, g.ended_at
  from app.gachas g
  join app.vtubers v on v.id = g.vtuber_id
  where g.status in ('published', 'ended') and v.status = 'approved';
comment on view public.gachas is
  'Published and ended gachas of approved VTubers: prices, medals per pull, window, pity, expected yen '
  'to draw the top rarity (and the guaranteed maximum when pity targets it).';

create or replace view public.gacha_items with (security_invoker = true) as
  select i.id, i.gacha_id, i.name, i.description, i.rarity, private.rarity_rank(i.rarity) as rarity_rank,
         i.rate_ppm, round(i.rate_ppm / 10000.0, 4)::numeric(8, 4) as odds_percent,
         i.stock, i.stock_remaining, i.sort_order
  from app.gacha_items i
  join app.gachas g on g.id = i.gacha_id
  where g.status in ('published', 'ended');
comment on view public.gacha_items is
  'Items of published and ended gachas with their odds: rate in ppm and percent to 4 decimals.';

create or replace view public.gacha_rarity_odds with (security_invoker = true) as
  select i.gacha_id, i.rarity, private.rarity_rank(i.rarity) as rarity_rank, count(*)::integer as item_count,
         sum(i.rate_ppm)::integer as rate_ppm, round(sum(i.rate_ppm) / 10000.0, 4)::numeric(8, 4) as odds_percent
  from app.gacha_items i
  join app.gachas g on g.id = i.gacha_id
  where g.status in ('published', 'ended')
  group by i.gacha_id, i.rarity;
comment on view public.gacha_rarity_odds is 'Odds per rarity of published and ended gachas.';

create or replace view public.exchange_items with (security_invoker = true) as
  select e.id, e.vtuber_id, v.name as vtuber_name, e.name, e.description, e.medal_cost, e.total_stock,
         e.per_fan_limit, e.per_fan_daily_limit, e.available_from, e.available_until,
         (coalesce(e.available_from <= now(), true) and coalesce(e.available_until > now(), true)
          and coalesce(e.total_stock > 0, true)) as available_now
  from app.exchange_items e
  join app.vtubers v on v.id = e.vtuber_id
  where e.status = 'active' and v.status = 'approved';
comment on view public.exchange_items is
  'Active exchange items of approved VTubers; cost in that VTuber''s medals only.';

create or replace view public.audit_log with (security_invoker = true) as
  select l.id, l.at, l.actor, l.action, l.target_type, l.target_id, l.details, l.prev_hash, l.hash
  from app.audit_log l;
comment on view public.audit_log is 'Admins: the append-only, hash-chained audit log.';

revoke all on public.vtubers, public.gachas, public.gacha_items, public.gacha_rarity_odds,
  public.exchange_items, public.audit_log from public, anon, authenticated, service_role;
grant select on public.vtubers, public.gachas, public.gacha_items, public.gacha_rarity_odds,
  public.exchange_items to anon, authenticated, service_role;
grant select on public.audit_log to authenticated, service_role;

create or replace function public.get_gacha(p_gacha_id uuid) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_gacha jsonb;
begin
  select to_jsonb(g) into v_gacha from public.gachas g where g.id = p_gacha_id;
  if v_gacha is null then
    raise exception using errcode = 'PT404', message = 'gacha_not_found',
      detail = 'no published or ended gacha with this id';
  end if;
  return v_gacha || jsonb_build_object(
    'items', coalesce((select jsonb_agg(to_jsonb(i) - 'gacha_id'
                                        order by i.rarity_rank desc, i.sort_order, i.name)
                       from public.gacha_items i where i.gacha_id = p_gacha_id), '[]'::jsonb),
    'rarity_odds', coalesce((select jsonb_agg(to_jsonb(r) - 'gacha_id' order by r.rarity_rank desc)
                             from public.gacha_rarity_odds r where r.gacha_id = p_gacha_id), '[]'::jsonb),
    'odds_total_percent', (select round(coalesce(sum(i.rate_ppm), 0) / 10000.0, 4)::numeric(8, 4)
                           from public.gacha_items i where i.gacha_id = p_gacha_id),
    'top_rarity', (select r.rarity from public.gacha_rarity_odds r where r.gacha_id = p_gacha_id
                   order by r.rarity_rank desc limit 1),
    'pity', case when v_gacha ->> 'pity_pulls' is null then null
                 else jsonb_build_object('pulls', (v_gacha ->> 'pity_pulls')::integer,
                                         'rarity', v_gacha ->> 'pity_rarity') end);
end
$$;
comment on function public.get_gacha(uuid) is
  'Anyone: a published or ended gacha''s disclosure: prices, medals per pull, window, sale_state, items with '
  'odds (ppm and percent to 4 decimals), odds per rarity, pity, expected yen to draw the top rarity and the '
  'guaranteed maximum with pity. Errors: gacha_not_found (PT404).';
revoke all on function public.get_gacha(uuid) from public, anon, authenticated, service_role;
grant execute on function public.get_gacha(uuid) to anon, authenticated, service_role;

-- from sql/catalog/60_admin.sql
-- Admin: suspensions, roles, and the audit chain. Every action appends to app.audit_log.

create or replace function private.require_reason(p_reason text) returns text
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_reason is null or char_length(btrim(p_reason)) not between 1 and 1000 then
    raise exception using errcode = 'PT400', message = 'invalid_reason',
      detail = 'a reason of 1 to 1000 characters is required (it goes to the audit log)';
  end if;
  return btrim(p_reason);
end
$$;
comment on function private.require_reason(text) is 'Raises invalid_reason unless 1–1000 characters.';
revoke all on function private.require_reason(text) from public;
grant execute on function private.require_reason(text) to authenticated;

create or replace function private.admin_set_user_status(p_user_id uuid, p_status text, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  p app.profiles;
begin
  if p_user_id = v_admin then
    raise exception using errcode = 'PT409', message = 'cannot_suspend_self',
      detail = 'an admin cannot change their own account status';
  end if;
  select * into p from app.profiles x where x.user_id = p_user_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'user_not_found', detail = 'no such user';
  end if;
  if p.status = p_status then
    raise exception using errcode = 'PT409', message = 'status_unchanged',
      detail = format('the user is already %s', p_status);
  end if;
  update app.profiles set status = p_status where user_id = p_user_id returning * into p;
  perform private.append_audit(v_admin, case p_status when 'suspended' then 'user.suspend' else 'user.unsuspend' end,
                               'user', p_user_id::text, jsonb_build_object('reason', v_reason));
  return jsonb_build_object('user_id', p.user_id, 'status', p.status);
end
$$;
comment on function private.admin_set_user_status(uuid, text, text) is
  'security definer: admins change app.profiles.status, which nobody else may write; audited.';
revoke all on function private.admin_set_user_status(uuid, text, text) from public;
grant execute on function private.admin_set_user_status(uuid, text, text) to authenticated;

create or replace function public.admin_suspend_user(p_user_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_user_status(p_user_id, 'suspended', p_reason) $$;
comment on function public.admin_suspend_user(uuid, text) is
  'Admin: suspends a user (no purchases, no RPCs); audited; returns {user_id, status}. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_reason (PT400), user_not_found (PT404), '
  'cannot_suspend_self, status_unchanged (PT409).';
revoke all on function public.admin_suspend_user(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_suspend_user(uuid, text) to authenticated;

create or replace function public.admin_unsuspend_user(p_user_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_user_status(p_user_id, 'active', p_reason) $$;
comment on function public.admin_unsuspend_user(uuid, text) is
  'Admin: reactivates a suspended user; audited. Errors: as admin_suspend_user.';
revoke all on function public.admin_unsuspend_user(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_unsuspend_user(uuid, text) to authenticated;

create or replace function private.admin_set_vtuber_status(p_vtuber_id uuid, p_status text, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  v app.vtubers;
begin
  select * into v from app.vtubers x where x.id = p_vtuber_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'vtuber_not_found', detail = 'no such VTuber';
  end if;
  if v.status = p_status then
    raise exception using errcode = 'PT409', message = 'status_unchanged',
      detail = format('the VTuber is already %s', p_status);
  end if;
  update app.vtubers set status = p_status,
    approved_at = case when p_status = 'approved' then coalesce(approved_at, now()) else approved_at end
  where id = v.id returning * into v;
  perform private.append_audit(v_admin, case p_status when 'suspended' then 'vtuber.suspend'
                                                      else 'vtuber.unsuspend' end,
                               'vtuber', v.id::text, jsonb_build_object('reason', v_reason));
  return jsonb_build_object('vtuber_id', v.id, 'status', v.status);
end
$$;
comment on function private.admin_set_vtuber_status(uuid, text, text) is
  'security definer: admins change app.vtubers.status, which nobody else may write; audited.';
revoke all on function private.admin_set_vtuber_status(uuid, text, text) from public;
grant execute on function private.admin_set_vtuber_status(uuid, text, text) to authenticated;

create or replace function public.admin_suspend_vtuber(p_vtuber_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_vtuber_status(p_vtuber_id, 'suspended', p_reason) $$;
comment on function public.admin_suspend_vtuber(uuid, text) is
  'Admin: suspends a VTuber (their gachas and exchange items leave the catalog, sales stop); audited; '
  'returns {vtuber_id, status}. Errors: not_authenticated (PT401), admin_only (PT403), invalid_reason '
  '(PT400), vtuber_not_found (PT404), status_unchanged (PT409).';
revoke all on function public.admin_suspend_vtuber(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_suspend_vtuber(uuid, text) to authenticated;

create or replace function public.admin_unsuspend_vtuber(p_vtuber_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_vtuber_status(p_vtuber_id, 'approved', p_reason) $$;
comment on function public.admin_unsuspend_vtuber(uuid, text) is
  'Admin: approves a suspended VTuber again; audited. Errors: as admin_suspend_vtuber.';
revoke all on function public.admin_unsuspend_vtuber(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_unsuspend_vtuber(uuid, text) to authenticated;

create or replace function private.admin_set_gacha_suspended(p_gacha_id uuid, p_suspend boolean, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  g app.gachas;
begin
  select * into g from app.gachas x where x.id = p_gacha_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'gacha_not_found', detail = 'no such gacha';
  end if;
  if p_suspend then
    if g.status not in ('published', 'ended') then
      raise exception using errcode = 'PT409', message = 'gacha_not_published',
        detail = format('the gacha is %s; only published or ended gachas can be suspended', g.status);
    end if;
    update app.gachas set status = 'suspended' where id = g.id returning * into g;
  else
    if g.status <> 'suspended' then
      raise exception using errcode = 'PT409', message = 'status_unchanged',
        detail = format('the gacha is %s, not suspended', g.status);
    end if;
    update app.gachas set status = case when ended_at is not null then 'ended' else 'published' end
    where id = g.id returning * into g;
  end if;
  perform private.append_audit(v_admin, case when p_suspend then 'gacha.suspend' else 'gacha.unsuspend' end,
                               'gacha', g.id::text, jsonb_build_object('reason', v_reason));
  return jsonb_build_object('gacha_id', g.id, 'status', g.status);
end
$$;
comment on function private.admin_set_gacha_suspended(uuid, boolean, text) is
  'security definer: admins suspend or restore a published gacha (the freeze trigger allows only this); audited.';
revoke all on function private.admin_set_gacha_suspended(uuid, boolean, text) from public;
grant execute on function private.admin_set_gacha_suspended(uuid, boolean, text) to authenticated;

create or replace function public.admin_suspend_gacha(p_gacha_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_gacha_suspended(p_gacha_id, true, p_reason) $$;
comment on function public.admin_suspend_gacha(uuid, text) is
  'Admin: suspends a published or ended gacha (it leaves the catalog, sales stop); audited; returns '
  '{gacha_id, status}. Errors: not_authenticated (PT401), admin_only (PT403), invalid_reason (PT400), '
  'gacha_not_found (PT404), gacha_not_published (PT409).';
revoke all on function public.admin_suspend_gacha(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_suspend_gacha(uuid, text) to authenticated;

create or replace function public.admin_unsuspend_gacha(p_gacha_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_gacha_suspended(p_gacha_id, false, p_reason) $$;
comment on function public.admin_unsuspend_gacha(uuid, text) is
  'Admin: restores a suspended gacha to published (or ended if it had ended); audited. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_reason (PT400), gacha_not_found (PT404), '
  'status_unchanged (PT409).';
revoke all on function public.admin_unsuspend_gacha(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_unsuspend_gacha(uuid, text) to authenticated;

create or replace function private.admin_set_role(p_user_id uuid, p_role text, p_grant boolean, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  p app.profiles;
  v_vtuber uuid;
begin
  if p_role is null or p_role not in ('vtuber', 'admin') then
    raise exception using errcode = 'PT400', message = 'invalid_role',
      detail = 'role: vtuber or admin (every user is a fan)';
  end if;
  if p_user_id = v_admin and p_role = 'admin' then
    if p_grant then
      raise exception using errcode = 'PT403', message = 'cannot_grant_admin_to_self',
        detail = 'an admin cannot grant the admin role to themselves';
    end if;
    raise exception using errcode = 'PT409', message = 'cannot_revoke_own_admin',
      detail = 'another admin must revoke your admin role';
  end if;
  select * into p from app.profiles x where x.user_id = p_user_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'user_not_found', detail = 'no such user';
  end if;
  if p_grant then
    if exists (select 1 from app.user_roles r where r.user_id = p_user_id and r.role = p_role) then
      raise exception using errcode = 'PT409', message = 'role_already_granted',
        detail = format('the user already has the %s role', p_role);
    end if;
    insert into app.user_roles (user_id, role, granted_by) values (p_user_id, p_role, v_admin);
    if p_role = 'vtuber' then
      insert into app.vtubers (user_id, name, status, approved_at)
      values (p_user_id, p.display_name, 'approved', now())
      on conflict (user_id) do update set status = 'approved',
        approved_at = coalesce(app.vtubers.approved_at, excluded.approved_at)
      returning id into v_vtuber;
    end if;
  else
    delete from app.user_roles r where r.user_id = p_user_id and r.role = p_role;
    if not found then
      raise exception using errcode = 'PT409', message = 'role_not_granted',
        detail = format('the user does not have the %s role', p_role);
    end if;
    if p_role = 'vtuber' then
      update app.vtubers set status = 'suspended' where user_id = p_user_id returning id into v_vtuber;
    end if;
  end if;
  perform private.append_audit(v_admin, case when p_grant then 'role.grant' else 'role.revoke' end,
                               'user', p_user_id::text,
                               jsonb_build_object('role', p_role, 'reason', v_reason, 'vtuber_id', v_vtuber));
  return private.my_profile_json(p_user_id);
end
$$;
comment on function private.admin_set_role(uuid, text, boolean, text) is
  'security definer: the only writer of app.user_roles after sign-up; audited.';
revoke all on function private.admin_set_role(uuid, text, boolean, text) from public;
grant execute on function private.admin_set_role(uuid, text, boolean, text) to authenticated;

create or replace function public.admin_grant_role(p_user_id uuid, p_role text, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_role(p_user_id, p_role, true, p_reason) $$;
comment on function public.admin_grant_role(uuid, text, text) is
  'Admin: grants vtuber (creating or re-approving the VTuber profile) or admin to a user; audited; returns '
  'the user''s profile. Errors: not_authenticated (PT401), admin_only, cannot_grant_admin_to_self (PT403), '
  'invalid_role, invalid_reason (PT400), user_not_found (PT404), role_already_granted (PT409).';
revoke all on function public.admin_grant_role(uuid, text, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_grant_role(uuid, text, text) to authenticated;

create or replace function public.admin_revoke_role(p_user_id uuid, p_role text, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_role(p_user_id, p_role, false, p_reason) $$;
comment on function public.admin_revoke_role(uuid, text, text) is
  'Admin: revokes vtuber (suspending the VTuber profile) or admin from a user; audited; returns the '
  'profile. Errors: not_authenticated (PT401), admin_only (PT403), invalid_role, invalid_reason (PT400), '
  'user_not_found (PT404), role_not_granted, cannot_revoke_own_admin (PT409).';
revoke all on function public.admin_revoke_role(uuid, text, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_revoke_role(uuid, text, text) to authenticated;

create or replace function private.verify_audit_chain() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  r record;
  v_prev text;
  v_count bigint := 0;
begin
  if not (private.is_admin() or coalesce(auth.role(), '') = 'service_role') then
    if auth.uid() is null and coalesce(auth.role(), '') <> 'service_role' then
      raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
    end if;
    raise exception using errcode = 'PT403', message = 'admin_only', detail = 'only an admin may do this';
  end if;
  for r in select * from app.audit_log order by id loop
    v_count := v_count + 1;
    if r.prev_hash is distinct from v_prev
       or r.hash is distinct from private.audit_hash(r.prev_hash, r.id, r.at, r.actor, r.action,
                                                     r.target_type, r.target_id, r.details) then
      return jsonb_build_object('ok', false, 'rows_checked', v_count, 'first_broken_id', r.id,
        'reason', case when r.prev_hash is distinct from v_prev then 'prev_hash does not match the previous row'
                       else 'hash does not match the row''s content' end);
    end if;
    v_prev := r.hash;
  end loop;
  return jsonb_build_object('ok', true, 'rows_checked', v_count, 'first_broken_id', null, 'last_hash', v_prev);
end
$$;
comment on function private.verify_audit_chain() is
  'security definer: recomputes the audit chain whatever the caller''s RLS (admins and the service role).';
revoke all on function private.verify_audit_chain() from public;
grant execute on function private.verify_audit_chain() to authenticated, service_role;

create or replace function public.verify_audit_chain() returns jsonb
language sql stable
set search_path = ''
as $$ select private.verify_audit_chain() $$;
comment on function public.verify_audit_chain() is
  'Admin or service role: recomputes every audit row''s hash; returns {ok, rows_checked, first_broken_id, '
  'reason|last_hash}. Errors: not_authenticated (PT401), admin_only (PT403).';
revoke all on function public.verify_audit_chain() from public, anon, authenticated, service_role;
grant execute on function public.verify_audit_chain() to authenticated, service_role;
