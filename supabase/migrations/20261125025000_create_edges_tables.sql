-- Economy edges: rate-limit counters and rules, minors' spending caps, the download log,
-- provider disputes, one open refund request per order, Realtime on orders and pulls, and the
-- API's pre-request hook. Functions, policies and grants live in sql/economy/5*..9* (carried by
-- the next migration).

-- ---------------------------------------------------------------------------------------
-- Rate limits (sql/economy/50_rate_limits.sql)
-- ---------------------------------------------------------------------------------------
-- One row per (subject, bucket, minute). UNLOGGED: no WAL for a counter that is worthless after
-- a crash (it is truncated then, which only forgives a minute of traffic). fillfactor 50 leaves
-- room for HOT updates of `hits` (no indexed column changes), so increments do not bloat the
-- index; service_sweep_rate_limits() deletes windows older than the previous minute.
create unlogged table app.rate_limit_hits (
  subject text not null check (char_length(subject) between 3 and 80),
  bucket text not null check (bucket ~ '^[a-z_]{1,40}$'),
  window_start timestamptz not null,
  hits integer not null default 1 check (hits >= 0),
  primary key (subject, bucket, window_start)
) with (fillfactor = 50);
comment on table app.rate_limit_hits is
  'Requests counted per subject (u:<user id> or ip:<address>), bucket and UTC minute; swept after two minutes.';

create table app.rate_limit_rules (
  bucket text primary key check (bucket ~ '^[a-z_]{1,40}$'),
  per_minute integer not null check (per_minute between 1 and 1000000),
  description text not null
);
comment on table app.rate_limit_rules is
  'Requests allowed per minute: user (signed-in fan), ip (anonymous client address), and per-RPC buckets.';
insert into app.rate_limit_rules (bucket, per_minute, description) values
  ('user', 100, 'every request of a signed-in user'),
  ('ip', 20, 'every anonymous request from one client address'),
  ('create_order', 5, 'POST /rpc/create_order per signed-in user'),
  ('exchange_medals', 10, 'POST /rpc/exchange_medals per signed-in user');

-- ---------------------------------------------------------------------------------------
-- Minors' spending caps (sql/economy/60_spending_caps.sql)
-- ---------------------------------------------------------------------------------------
create table app.spending_caps (
  min_age integer not null check (min_age between 0 and 150),
  max_age integer not null check (max_age between 0 and 150),
  daily_cap_jpy integer not null check (daily_cap_jpy >= 0),
  monthly_cap_jpy integer not null check (monthly_cap_jpy >= 0),
  primary key (min_age),
  constraint spending_caps_age_order check (min_age <= max_age),
  constraint spending_caps_no_overlap exclude using gist (int4range(min_age, max_age, '[]') with &&)
);
comment on table app.spending_caps is
  'Yen a fan of an age band (JST age, inclusive bounds) may spend on orders per JST day and month; '
  '0 and 0 means the band cannot buy; ages without a row are not capped.';
insert into app.spending_caps (min_age, max_age, daily_cap_jpy, monthly_cap_jpy) values
  (0, 12, 0, 0),
  (13, 15, 1000, 5000),
  (16, 17, 2000, 10000);

-- ---------------------------------------------------------------------------------------
-- Downloads (sql/economy/70_downloads.sql)
-- ---------------------------------------------------------------------------------------
create table app.downloads (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete restrict,
  user_reward_id uuid not null references app.user_rewards (id) on delete restrict,
  bucket text not null,
  path text not null,
  jst_date date not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  client_ip text check (char_length(client_ip) <= 64),
  user_agent text check (char_length(user_agent) <= 500),
  constraint downloads_expiry_check check (expires_at > created_at)
);
comment on table app.downloads is
  'Every authorised download (at most 3 per reward per JST day); Storage lets the fan read the object until expires_at.';
create index downloads_reward_day on app.downloads (user_reward_id, jst_date);
create index downloads_user_object on app.downloads (user_id, bucket, path, expires_at desc);

-- ---------------------------------------------------------------------------------------
-- Refunds and disputes (sql/economy/80_refunds.sql)
-- ---------------------------------------------------------------------------------------
-- At most one open (requested or approved) refund request per order, even under races.
create unique index refunds_one_open_per_order on app.refunds (order_id)
  where status in ('requested', 'approved');

create table app.disputes (
  provider_dispute_id text primary key check (char_length(provider_dispute_id) between 1 and 255),
  order_id uuid not null references app.orders (id) on delete restrict,
  user_id uuid not null references auth.users (id) on delete restrict,
  status text not null check (status ~ '^[a-z][a-z_]{0,39}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table app.disputes is
  'Provider disputes (chargebacks) with their latest status; each one flags the order and the fan.';
create index disputes_order on app.disputes (order_id);

alter table app.rate_limit_hits enable row level security;
alter table app.rate_limit_rules enable row level security;
alter table app.spending_caps enable row level security;
alter table app.downloads enable row level security;
alter table app.disputes enable row level security;

-- The download log is history: nobody changes or deletes it.
create trigger downloads_before_update_delete_refuse
  before update or delete on app.downloads
  for each row execute function private.economy_append_only();

-- ---------------------------------------------------------------------------------------
-- Realtime: a fan watches their orders and pulls arrive (RLS decides which rows they get)
-- ---------------------------------------------------------------------------------------
do $$
declare
  t text;
begin
  foreach t in array array['orders', 'pulls'] loop
    if not exists (select 1 from pg_publication_tables p
                   where p.pubname = 'supabase_realtime' and p.schemaname = 'app' and p.tablename = t) then
      execute format('alter publication supabase_realtime add table app.%I', t);
    end if;
  end loop;
end
$$;

-- ---------------------------------------------------------------------------------------
-- The API's pre-request hook (PostgREST reads pgrst.* settings of the authenticator role)
-- ---------------------------------------------------------------------------------------
-- The setting is per role, hence cluster-wide locally (every migrated database has the function);
-- PostgREST re-reads it on 'reload config'.
alter role authenticator set pgrst.db_pre_request = 'private.check_request';
notify pgrst, 'reload config';
