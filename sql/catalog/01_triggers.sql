-- Trigger functions and base helpers created by 20261125010000_create_catalog_tables.sql,
-- kept here as their current definitions (the triggers themselves are in that migration).

create or replace function private.rarity_rank(p_rarity text) returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select case p_rarity when 'N' then 1 when 'R' then 2 when 'SR' then 3
                       when 'SSR' then 4 when 'UR' then 5 end
$$;
comment on function private.rarity_rank(text) is 'N=1, R=2, SR=3, SSR=4, UR=5 (null otherwise).';

-- Sign-up: a profile and the fan role. Never a role from metadata (user-supplied).
create or replace function private.handle_new_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_name text;
  v_birth date;
  v_raw text;
begin
  v_name := left(btrim(coalesce(new.raw_user_meta_data ->> 'display_name',
                                new.raw_user_meta_data ->> 'full_name',
                                new.raw_user_meta_data ->> 'name', '')), 50);
  if v_name = '' then
    v_name := left(coalesce(nullif(split_part(coalesce(new.email, ''), '@', 1), ''), 'fan'), 50);
  end if;
  v_raw := new.raw_user_meta_data ->> 'birth_date';
  if v_raw ~ '^\d{4}-\d{2}-\d{2}$' then
    begin
      v_birth := v_raw::date;
      if v_birth < date '1900-01-01' or v_birth > (now() at time zone 'Asia/Tokyo')::date then
        v_birth := null;
      end if;
    exception when others then
      v_birth := null;
    end;
  end if;
  insert into app.profiles (user_id, display_name, birth_date) values (new.id, v_name, v_birth)
  on conflict (user_id) do nothing;
  insert into app.user_roles (user_id, role) values (new.id, 'fan') on conflict do nothing;
  return new;
end
$$;
comment on function private.handle_new_user() is
  'security definer: the sign-up trigger (run by the auth admin) writes app.profiles and '
  'app.user_roles, which no API role may write; the role is always fan.';

create or replace function private.touch_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
comment on function private.touch_updated_at() is 'Sets updated_at on every update.';

-- Frozen after publish: once a gacha leaves draft only its lifecycle may change.
create or replace function private.gachas_guard() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_problem record;
begin
  if tg_op = 'DELETE' then
    if old.status <> 'draft' then
      raise exception using errcode = 'PT409', message = 'gacha_frozen',
        detail = 'a gacha that was published can never be deleted';
    end if;
    return old;
  end if;
  if tg_op = 'INSERT' then
    if new.status <> 'draft' then
      raise exception using errcode = 'PT409', message = 'gacha_not_draft',
        detail = 'a gacha is created as a draft and published with publish_gacha';
    end if;
    new.published_at := null;
    new.ended_at := null;
    new.expected_cost_top_rarity := null;
    new.guaranteed_cost_top_rarity := null;
    return new;
  end if;
  -- update
  if old.status = 'draft' then
    if new.status = 'draft' then
      new.published_at := null;
      new.expected_cost_top_rarity := null;
      new.guaranteed_cost_top_rarity := null;
      return new;
    end if;
    if new.status <> 'published' then
      raise exception using errcode = 'PT409', message = 'invalid_status_transition',
        detail = format('a draft cannot become %s', new.status);
    end if;
    if new.status = 'published' then
      -- Whoever publishes (RPC, service role, superuser), the rules hold.
      select * into v_problem from private.gacha_publish_problem(new) limit 1;
      if v_problem.code is not null then
        raise exception using errcode = v_problem.sqlstate, message = v_problem.code,
          detail = v_problem.detail;
      end if;
      select c.expected_cost, c.guaranteed_cost
        into new.expected_cost_top_rarity, new.guaranteed_cost_top_rarity
        from private.gacha_costs(new) c;
      new.published_at := coalesce(new.published_at, now());
    end if;
    return new;
  end if;
  -- Not a draft: everything but the lifecycle is frozen.
  if (new.id, new.vtuber_id, new.title, new.description, new.price_single, new.price_ten,
      new.medals_per_pull, new.ten_pull_bonus_medals, new.start_at, new.end_at,
      new.total_pull_cap, new.pity_pulls, new.pity_rarity, new.published_at,
      new.expected_cost_top_rarity, new.guaranteed_cost_top_rarity, new.created_at)
     is distinct from
     (old.id, old.vtuber_id, old.title, old.description, old.price_single, old.price_ten,
      old.medals_per_pull, old.ten_pull_bonus_medals, old.start_at, old.end_at,
      old.total_pull_cap, old.pity_pulls, old.pity_rarity, old.published_at,
      old.expected_cost_top_rarity, old.guaranteed_cost_top_rarity, old.created_at) then
    raise exception using errcode = 'PT409', message = 'gacha_frozen',
      detail = 'a published gacha cannot be changed: publish a new gacha instead';
  end if;
  if new.status is distinct from old.status then
    if not ((old.status = 'published' and new.status in ('ended', 'suspended'))
            or (old.status = 'ended' and new.status = 'suspended')
            or (old.status = 'suspended' and new.status in ('published', 'ended'))) then
      raise exception using errcode = 'PT409', message = 'invalid_status_transition',
        detail = format('a %s gacha cannot become %s', old.status, new.status);
    end if;
    if new.status = 'ended' then
      new.ended_at := coalesce(new.ended_at, now());
    end if;
  end if;
  if new.ended_at is distinct from old.ended_at and old.ended_at is not null then
    raise exception using errcode = 'PT409', message = 'gacha_frozen',
      detail = 'ended_at is set once';
  end if;
  return new;
end
$$;
comment on function private.gachas_guard() is
  'security definer: the trigger reads the items and the VTuber whatever the caller''s RLS. '
  'Drafts only are editable; publishing re-checks the rules; published gachas are frozen.';

create or replace function private.gacha_items_guard() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_status text;
begin
  if tg_op = 'UPDATE'
     and (new.id, new.gacha_id, new.name, new.description, new.rarity, new.rate_ppm, new.stock,
          new.content_bucket, new.content_path, new.sort_order, new.created_at)
         is not distinct from
         (old.id, old.gacha_id, old.name, old.description, old.rarity, old.rate_ppm, old.stock,
          old.content_bucket, old.content_path, old.sort_order, old.created_at) then
    return new; -- only stock_remaining changed: draws may consume stock
  end if;
  if tg_op in ('UPDATE', 'DELETE') then
    select g.status into v_status from app.gachas g where g.id = old.gacha_id for share;
    if v_status is not null and v_status <> 'draft' then
      raise exception using errcode = 'PT409', message = 'gacha_frozen',
        detail = 'the items of a published gacha cannot be changed';
    end if;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    select g.status into v_status from app.gachas g where g.id = new.gacha_id for share;
    if v_status is not null and v_status <> 'draft' then
      raise exception using errcode = 'PT409', message = 'gacha_frozen',
        detail = 'the items of a published gacha cannot be changed';
    end if;
    new.stock_remaining := new.stock;
    return new;
  end if;
  return old;
end
$$;
comment on function private.gacha_items_guard() is
  'security definer: the trigger must see and lock the parent gacha whatever the caller''s RLS; '
  'items of a non-draft gacha are frozen (stock_remaining excepted).';

-- Audit log: the chain is computed here, whoever inserts; updates and deletes never pass.
create or replace function private.audit_log_chain() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(7253101);
  new.id := nextval(pg_catalog.pg_get_serial_sequence('app.audit_log', 'id'));
  new.at := coalesce(new.at, now());
  new.details := coalesce(new.details, '{}'::jsonb);
  select l.hash into new.prev_hash from app.audit_log l order by l.id desc limit 1;
  new.hash := private.audit_hash(new.prev_hash, new.id, new.at, new.actor, new.action,
                                 new.target_type, new.target_id, new.details);
  return new;
end
$$;
comment on function private.audit_log_chain() is
  'security definer: the trigger reads the last hash whatever the caller; serialises appends.';

create or replace function private.audit_hash(
  p_prev_hash text, p_id bigint, p_at timestamptz, p_actor uuid, p_action text,
  p_target_type text, p_target_id text, p_details jsonb
) returns text
language sql stable
set search_path = ''
as $$
  select encode(pg_catalog.sha256(convert_to(concat_ws('|',
    coalesce(p_prev_hash, ''), p_id::text,
    to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    coalesce(p_actor::text, ''), p_action, coalesce(p_target_type, ''),
    coalesce(p_target_id, ''), coalesce(p_details, '{}'::jsonb)::text), 'UTF8')), 'hex')
$$;
comment on function private.audit_hash(text, bigint, timestamptz, uuid, text, text, text, jsonb) is
  'SHA-256 (hex) of an audit row chained to the previous row''s hash.';

create or replace function private.audit_log_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'PT409', message = 'audit_log_append_only',
    detail = 'the audit log is append-only: rows can be neither changed nor deleted';
end
$$;
comment on function private.audit_log_append_only() is 'Trigger: refuses UPDATE, DELETE, TRUNCATE.';

-- Helpers the economy builds on (final bodies in sql/catalog/02_helpers.sql).
create or replace function private.is_admin() returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from app.user_roles r
                 join app.profiles p on p.user_id = r.user_id
                 where r.user_id = auth.uid() and r.role = 'admin' and p.status = 'active')
$$;
comment on function private.is_admin() is
  'security definer: policies ask whether the caller is an active admin without reading '
  'app.user_roles under the caller''s RLS.';

create or replace function private.current_vtuber_id() returns uuid
language sql stable security definer
set search_path = ''
as $$
  select v.id from app.vtubers v where v.user_id = auth.uid()
$$;
comment on function private.current_vtuber_id() is
  'security definer: the caller''s VTuber id (whatever its status), for policies.';

-- The one writer of the audit log (the trigger computes the chain).
create or replace function private.append_audit(
  p_actor uuid, p_action text, p_target_type text, p_target_id text, p_details jsonb
) returns bigint
language sql security definer
set search_path = ''
as $$
  insert into app.audit_log (actor, action, target_type, target_id, details)
  values (p_actor, p_action, p_target_type, p_target_id, coalesce(p_details, '{}'::jsonb))
  returning id
$$;
comment on function private.append_audit(uuid, text, text, text, jsonb) is
  'security definer: appends to app.audit_log, which no API role may write; returns the row id.';

revoke all on function private.append_audit(uuid, text, text, text, jsonb) from public;
revoke all on function private.rarity_rank(text) from public;
revoke all on function private.handle_new_user() from public;
revoke all on function private.touch_updated_at() from public;
revoke all on function private.gachas_guard() from public;
revoke all on function private.gacha_items_guard() from public;
revoke all on function private.audit_log_chain() from public;
revoke all on function private.audit_hash(text, bigint, timestamptz, uuid, text, text, text, jsonb)
  from public;
revoke all on function private.audit_log_append_only() from public;
revoke all on function private.is_admin() from public;
revoke all on function private.current_vtuber_id() from public;
grant execute on function private.rarity_rank(text) to anon, authenticated, service_role;
grant execute on function private.is_admin() to authenticated, service_role;
grant execute on function private.current_vtuber_id() to authenticated, service_role;
