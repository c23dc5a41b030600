-- Catalog: who is who (profiles, roles, VTubers, applications), what is for sale (gachas,
-- items, exchange items), the platform settings and the hash-chained audit log.
-- Functions, views, policies and grants live in sql/catalog/ (carried by later migrations);
-- this file creates the tables, their constraints and the triggers that guard them for
-- every role (service_role and superusers included).

-- ---------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------
create table app.profiles (
  user_id uuid primary key references auth.users (id) on delete cascade,
  display_name text not null check (char_length(display_name) between 1 and 50),
  birth_date date check (birth_date >= date '1900-01-01'),
  status text not null default 'active' check (status in ('active', 'suspended')),
  flagged boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table app.profiles is 'One row per auth.users row, created by a trigger at sign-up.';

create table app.user_roles (
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('fan', 'vtuber', 'admin')),
  granted_by uuid references auth.users (id) on delete set null,
  granted_at timestamptz not null default now(),
  primary key (user_id, role)
);
comment on table app.user_roles is 'Roles; fan at sign-up, vtuber/admin only through admin RPCs.';

create table app.vtubers (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null unique references auth.users (id) on delete restrict,
  name text not null check (char_length(name) between 1 and 100),
  description text not null default '' check (char_length(description) <= 2000),
  status text not null default 'approved' check (status in ('pending', 'approved', 'suspended')),
  approved_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table app.vtubers is 'VTuber (creator) profiles; created when an application is approved.';

create table app.vtuber_applications (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  vtuber_name text not null check (char_length(vtuber_name) between 1 and 100),
  description text not null check (char_length(description) between 1 and 2000),
  status text not null default 'pending'
    check (status in ('pending', 'approved', 'rejected', 'withdrawn')),
  review_reason text check (char_length(review_reason) <= 1000),
  reviewed_by uuid references auth.users (id) on delete set null,
  reviewed_at timestamptz,
  created_at timestamptz not null default now(),
  check (status <> 'rejected' or char_length(btrim(review_reason)) > 0)
);
comment on table app.vtuber_applications is
  'Applications to become a VTuber: one open (pending) per user; 30 days after a rejection.';
create unique index vtuber_applications_one_open_per_user
  on app.vtuber_applications (user_id) where status = 'pending';
create index vtuber_applications_user_created on app.vtuber_applications (user_id, created_at desc);
create index vtuber_applications_status on app.vtuber_applications (status, created_at);

create table app.gachas (
  id uuid primary key default gen_random_uuid(),
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  title text not null check (char_length(title) between 1 and 200),
  description text not null default '' check (char_length(description) <= 5000),
  price_single integer not null default 100 check (price_single between 100 and 10000),
  price_ten integer not null default 1000 check (price_ten between 100 and 10000),
  medals_per_pull integer not null default 10 check (medals_per_pull between 1 and 1000),
  ten_pull_bonus_medals integer not null default 0 check (ten_pull_bonus_medals between 0 and 100000),
  start_at timestamptz not null,
  end_at timestamptz not null,
  total_pull_cap integer check (total_pull_cap between 1 and 100000000),
  pity_pulls integer check (pity_pulls between 2 and 1000),
  pity_rarity text check (pity_rarity in ('N', 'R', 'SR', 'SSR', 'UR')),
  status text not null default 'draft' check (status in ('draft', 'published', 'ended', 'suspended')),
  published_at timestamptz,
  ended_at timestamptz,
  expected_cost_top_rarity integer,
  guaranteed_cost_top_rarity integer,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint gachas_window_check check (start_at < end_at),
  constraint gachas_pity_pair_check check ((pity_pulls is null) = (pity_rarity is null)),
  constraint gachas_published_at_check check (status = 'draft' or published_at is not null)
);
comment on table app.gachas is
  'Gachas: draft -> published -> ended (or suspended by an admin); frozen once published.';
comment on column app.gachas.expected_cost_top_rarity is
  'Expected yen to draw the top rarity (pity included), computed at publish time.';
comment on column app.gachas.guaranteed_cost_top_rarity is
  'Most yen one can spend before the top rarity is certain (only when pity targets it).';
create index gachas_vtuber on app.gachas (vtuber_id, created_at desc);
create index gachas_on_sale on app.gachas (status, end_at) where status in ('published', 'ended');

create table app.gacha_items (
  id uuid primary key default gen_random_uuid(),
  gacha_id uuid not null references app.gachas (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 200),
  description text not null default '' check (char_length(description) <= 2000),
  rarity text not null check (rarity in ('N', 'R', 'SR', 'SSR', 'UR')),
  rate_ppm integer not null check (rate_ppm between 0 and 1000000),
  stock integer check (stock between 1 and 100000000),
  stock_remaining integer,
  content_bucket text not null default 'rewards',
  content_path text not null check (content_path ~ '^[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}$'
                                    and content_path !~ '\.\.' and content_path !~ '//'),
  sort_order integer not null default 0,
  created_at timestamptz not null default now(),
  constraint gacha_items_stock_remaining_check
    check ((stock is null and stock_remaining is null)
           or (stock is not null and stock_remaining between 0 and stock))
);
comment on table app.gacha_items is 'Items of a gacha; rate in parts per million; frozen once published.';
comment on column app.gacha_items.stock is 'Per-item stock (the published cap); null = unlimited.';
comment on column app.gacha_items.stock_remaining is
  'Units left of stock; the only column that may change after publishing (draws decrement it).';
create index gacha_items_gacha on app.gacha_items (gacha_id, sort_order);

create table app.exchange_items (
  id uuid primary key default gen_random_uuid(),
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  name text not null check (char_length(name) between 1 and 200),
  description text not null default '' check (char_length(description) <= 2000),
  medal_cost integer not null check (medal_cost between 1 and 100000),
  total_stock integer check (total_stock between 0 and 100000000),
  per_fan_limit integer check (per_fan_limit between 1 and 100000),
  per_fan_daily_limit integer check (per_fan_daily_limit between 1 and 100000),
  available_from timestamptz,
  available_until timestamptz,
  status text not null default 'active' check (status in ('active', 'retired')),
  content_bucket text not null default 'rewards',
  content_path text not null check (content_path ~ '^[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}$'
                                    and content_path !~ '\.\.' and content_path !~ '//'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint exchange_items_window_check
    check (available_from is null or available_until is null or available_from < available_until)
);
comment on table app.exchange_items is
  'Exchange items: cost in medals only (never drawn items: a complete-gacha is illegal).';
comment on column app.exchange_items.total_stock is 'Units left to exchange; null = unlimited.';
create index exchange_items_vtuber on app.exchange_items (vtuber_id, status);

create table app.platform_settings (
  key text primary key check (key ~ '^[a-z][a-z0-9_]{0,62}$'),
  value jsonb not null,
  updated_at timestamptz not null default now()
);
comment on table app.platform_settings is 'Platform-wide settings (e.g. max_expected_cost_jpy).';
insert into app.platform_settings (key, value) values ('max_expected_cost_jpy', '50000');

create table app.audit_log (
  id bigint generated by default as identity primary key,
  at timestamptz not null default now(),
  actor uuid,
  action text not null check (action ~ '^[a-z][a-z0-9_.]{0,99}$'),
  target_type text,
  target_id text,
  details jsonb not null default '{}'::jsonb,
  prev_hash text,
  hash text not null
);
comment on table app.audit_log is
  'Append-only audit log; each row carries the SHA-256 of the previous one (hash chain).';

alter table app.profiles enable row level security;
alter table app.user_roles enable row level security;
alter table app.vtubers enable row level security;
alter table app.vtuber_applications enable row level security;
alter table app.gachas enable row level security;
alter table app.gacha_items enable row level security;
alter table app.exchange_items enable row level security;
alter table app.platform_settings enable row level security;
alter table app.audit_log enable row level security;

-- ---------------------------------------------------------------------------------------
-- Trigger functions (also in sql/catalog/01_triggers.sql, kept identical)
-- ---------------------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------------------
-- Triggers
-- ---------------------------------------------------------------------------------------
create trigger users_after_insert_create_profile
  after insert on auth.users
  for each row execute function private.handle_new_user();

create trigger profiles_before_update_touch
  before update on app.profiles for each row execute function private.touch_updated_at();
create trigger vtubers_before_update_touch
  before update on app.vtubers for each row execute function private.touch_updated_at();
create trigger gachas_before_update_touch
  before update on app.gachas for each row execute function private.touch_updated_at();
create trigger exchange_items_before_update_touch
  before update on app.exchange_items for each row execute function private.touch_updated_at();

create trigger gachas_before_write_freeze
  before insert or update or delete on app.gachas
  for each row execute function private.gachas_guard();
create trigger gacha_items_before_write_freeze
  before insert or update or delete on app.gacha_items
  for each row execute function private.gacha_items_guard();

create trigger audit_log_before_insert_chain
  before insert on app.audit_log
  for each row execute function private.audit_log_chain();
create trigger audit_log_before_update_delete_refuse
  before update or delete on app.audit_log
  for each row execute function private.audit_log_append_only();
create trigger audit_log_before_truncate_refuse
  before truncate on app.audit_log
  for each statement execute function private.audit_log_append_only();

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
