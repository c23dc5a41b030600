-- Economy: orders, pulls and the rate tables they used, the medal ledger, the reward box,
-- exchanges, provably-fair seeds, refunds; plus the sharded reservation counters that keep
-- the total-pull cap and per-item stock from becoming hot rows.
-- Functions, policies and grants live in sql/economy/ (carried by later migrations); this
-- file creates the tables, constraints, indexes, RLS switches and the append-only triggers.

-- ---------------------------------------------------------------------------------------
-- Orders and their reservations
-- ---------------------------------------------------------------------------------------
create table app.orders (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete restrict,
  gacha_id uuid not null references app.gachas (id) on delete restrict,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  pull_count integer not null check (pull_count in (1, 10)),
  amount_jpy integer not null check (amount_jpy between 100 and 10000),
  medals integer not null check (medals >= 0),
  currency text not null default 'JPY' check (currency = 'JPY'),
  idempotency_key text not null check (char_length(idempotency_key) between 1 and 200),
  status text not null default 'pending'
    check (status in ('pending', 'fulfilled', 'expired', 'failed', 'canceled')),
  provider text check (provider ~ '^[a-z][a-z0-9_]{0,29}$'),
  provider_payment_id text check (char_length(provider_payment_id) between 1 and 255),
  refunded_jpy integer not null default 0 check (refunded_jpy >= 0 and refunded_jpy <= amount_jpy),
  disputed boolean not null default false,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  paid_at timestamptz,
  fulfilled_at timestamptz,
  constraint orders_user_idempotency_key unique (user_id, idempotency_key),
  constraint orders_fulfilled_check
    check ((status = 'fulfilled') = (fulfilled_at is not null)
           and (status <> 'fulfilled' or (paid_at is not null and provider_payment_id is not null)))
);
comment on table app.orders is
  'Orders of 1 or 10 pulls: price and medals snapshotted at creation; fulfilled exactly once.';
comment on column app.orders.medals is 'Medals the order grants: medals_per_pull x pulls (+ ten-pull bonus).';
create index orders_user_created on app.orders (user_id, created_at desc);
create index orders_pending_expiry on app.orders (expires_at) where status = 'pending';
create index orders_gacha on app.orders (gacha_id, status);
create unique index orders_provider_payment on app.orders (provider, provider_payment_id)
  where provider_payment_id is not null;

-- Capacity counters: a total-pull cap or an item stock is split over a few shard rows, created
-- on the first order that needs them; an order takes its units from one shard (any with
-- enough left, skipping locked ones) so concurrent orders of one gacha rarely wait on each
-- other. Gachas and items without a cap/stock never touch this table.
create table app.stock_shards (
  counter_id uuid not null,
  shard smallint not null check (shard between 0 and 63),
  kind text not null check (kind in ('pull_cap', 'item_stock')),
  gacha_id uuid not null references app.gachas (id) on delete cascade,
  remaining integer not null check (remaining >= 0),
  primary key (counter_id, shard)
);
comment on table app.stock_shards is
  'Unreserved units of a total-pull cap (counter = gacha id) or item stock (counter = item id), sharded.';

create table app.order_reservations (
  order_id uuid not null references app.orders (id) on delete cascade,
  counter_id uuid not null,
  shard smallint not null,
  quantity integer not null check (quantity > 0),
  primary key (order_id, counter_id, shard),
  foreign key (counter_id, shard) references app.stock_shards (counter_id, shard)
);
comment on table app.order_reservations is
  'Units a pending order holds; released on expiry/failure, consumed (or partly released) on fulfilment.';
create index order_reservations_counter on app.order_reservations (counter_id, shard);

-- ---------------------------------------------------------------------------------------
-- Provably fair seeds, rate tables, pulls, pity
-- ---------------------------------------------------------------------------------------
create table app.fairness_seeds (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  server_seed bytea not null check (octet_length(server_seed) = 32),
  server_seed_hash text not null check (server_seed_hash ~ '^[0-9a-f]{64}$'),
  client_seed text not null check (char_length(client_seed) between 1 and 64),
  next_nonce bigint not null default 0 check (next_nonce >= 0),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  revealed_at timestamptz,
  constraint fairness_seeds_reveal_check check (active = (revealed_at is null))
);
comment on table app.fairness_seeds is
  'Per-fan server seeds: SHA-256 shown while active, the seed itself revealed on rotation.';
create unique index fairness_seeds_one_active on app.fairness_seeds (user_id) where active;
create index fairness_seeds_user_created on app.fairness_seeds (user_id, created_at desc);

create table app.rate_tables (
  version text primary key check (version ~ '^[0-9a-f]{64}$'),
  gacha_id uuid not null references app.gachas (id) on delete restrict,
  pity boolean not null,
  total_ppm integer not null check (total_ppm between 1 and 1000000),
  entries jsonb not null,
  created_at timestamptz not null default now()
);
comment on table app.rate_tables is
  'The exact table a draw used: [[item_id, rarity, rate_ppm], ...] in draw order; version = its SHA-256.';
create index rate_tables_gacha on app.rate_tables (gacha_id);

create table app.pulls (
  id bigint generated always as identity primary key,
  order_id uuid not null references app.orders (id) on delete restrict,
  user_id uuid not null references auth.users (id) on delete restrict,
  gacha_id uuid not null references app.gachas (id) on delete restrict,
  gacha_item_id uuid not null references app.gacha_items (id) on delete restrict,
  rarity text not null check (rarity in ('N', 'R', 'SR', 'SSR', 'UR')),
  seed_id uuid not null references app.fairness_seeds (id) on delete restrict,
  nonce bigint not null check (nonce >= 0),
  roll bigint not null check (roll >= 0 and roll < 1000000),
  rate_table_version text not null references app.rate_tables (version),
  pity boolean not null default false,
  created_at timestamptz not null default now(),
  constraint pulls_seed_nonce unique (seed_id, nonce)
);
comment on table app.pulls is
  'One row per draw: seed id, nonce, roll and the rate table version, enough to recompute it.';
create index pulls_order on app.pulls (order_id);
create index pulls_user_gacha on app.pulls (user_id, gacha_id, id);
create index pulls_gacha_item on app.pulls (gacha_id, gacha_item_id);

create table app.pity_counters (
  user_id uuid not null references auth.users (id) on delete cascade,
  gacha_id uuid not null references app.gachas (id) on delete cascade,
  streak integer not null default 0 check (streak >= 0),
  primary key (user_id, gacha_id)
);
comment on table app.pity_counters is
  'Consecutive pulls of a fan on a gacha below its pity rarity (only for gachas with pity).';

-- ---------------------------------------------------------------------------------------
-- Medals: balance per (fan, VTuber) and the append-only ledger that explains it
-- ---------------------------------------------------------------------------------------
create table app.medal_balances (
  user_id uuid not null references auth.users (id) on delete restrict,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  balance bigint not null default 0 check (balance >= 0),
  updated_at timestamptz not null default now(),
  primary key (user_id, vtuber_id)
);
comment on table app.medal_balances is
  'Medals per (fan, VTuber); changed only by private.post_medals, together with a ledger entry.';
create index medal_balances_vtuber on app.medal_balances (vtuber_id);

create table app.exchanges (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete restrict,
  exchange_item_id uuid not null references app.exchange_items (id) on delete restrict,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  quantity integer not null check (quantity between 1 and 10),
  medals_spent bigint not null check (medals_spent > 0),
  idempotency_key text not null check (char_length(idempotency_key) between 1 and 200),
  jst_date date not null,
  created_at timestamptz not null default now(),
  constraint exchanges_user_idempotency_key unique (user_id, idempotency_key)
);
comment on table app.exchanges is 'Medal exchanges; quantity counts against the per-fan limits.';
create index exchanges_user_item_day on app.exchanges (user_id, exchange_item_id, jst_date);
create index exchanges_user_created on app.exchanges (user_id, created_at desc);

create table app.medal_ledger (
  id bigint generated always as identity primary key,
  user_id uuid not null,
  vtuber_id uuid not null,
  delta bigint not null check (delta <> 0),
  reason text not null check (reason in ('pull_grant', 'exchange', 'refund_clawback', 'admin_adjustment')),
  previous_balance bigint not null check (previous_balance >= 0),
  new_balance bigint not null check (new_balance >= 0),
  order_id uuid references app.orders (id) on delete restrict,
  exchange_id uuid references app.exchanges (id) on delete restrict,
  note text check (char_length(note) <= 500),
  created_at timestamptz not null default now(),
  foreign key (user_id, vtuber_id) references app.medal_balances (user_id, vtuber_id) on delete restrict,
  constraint medal_ledger_arithmetic_check check (new_balance = previous_balance + delta),
  constraint medal_ledger_reference_check check (
    (reason = 'pull_grant' and order_id is not null and delta > 0)
    or (reason = 'exchange' and exchange_id is not null and delta < 0)
    or (reason = 'refund_clawback' and order_id is not null and delta < 0)
    or (reason = 'admin_adjustment' and char_length(btrim(note)) > 0))
);
comment on table app.medal_ledger is
  'Append-only medal ledger: signed delta with previous and new balance; sum(delta) = balance.';
create index medal_ledger_account on app.medal_ledger (user_id, vtuber_id, id desc);
create index medal_ledger_user on app.medal_ledger (user_id, id desc);
create unique index medal_ledger_one_grant_per_order on app.medal_ledger (order_id)
  where reason = 'pull_grant';
create unique index medal_ledger_one_debit_per_exchange on app.medal_ledger (exchange_id)
  where reason = 'exchange';
create index medal_ledger_order on app.medal_ledger (order_id) where order_id is not null;

-- ---------------------------------------------------------------------------------------
-- Reward box
-- ---------------------------------------------------------------------------------------
create table app.user_rewards (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete restrict,
  source text not null check (source in ('pull', 'exchange')),
  pull_id bigint references app.pulls (id) on delete restrict,
  exchange_id uuid references app.exchanges (id) on delete restrict,
  gacha_item_id uuid references app.gacha_items (id) on delete restrict,
  exchange_item_id uuid references app.exchange_items (id) on delete restrict,
  content_bucket text not null,
  content_path text not null,
  revoked_at timestamptz,
  created_at timestamptz not null default now(),
  constraint user_rewards_reference_check check (
    (source = 'pull' and pull_id is not null and gacha_item_id is not null
     and exchange_id is null and exchange_item_id is null)
    or (source = 'exchange' and exchange_id is not null and exchange_item_id is not null
        and pull_id is null and gacha_item_id is null))
);
comment on table app.user_rewards is
  'The reward box (特典BOX): one row per drawn item or exchanged unit; revoked by refunds.';
create unique index user_rewards_one_per_pull on app.user_rewards (pull_id) where pull_id is not null;
create index user_rewards_user_created on app.user_rewards (user_id, created_at desc);
create index user_rewards_exchange on app.user_rewards (exchange_id) where exchange_id is not null;

-- ---------------------------------------------------------------------------------------
-- Refunds (functions: economy edges)
-- ---------------------------------------------------------------------------------------
create table app.refunds (
  id uuid primary key default gen_random_uuid(),
  order_id uuid not null references app.orders (id) on delete restrict,
  user_id uuid not null references auth.users (id) on delete restrict,
  reason text check (char_length(reason) <= 500),
  status text not null default 'requested' check (status in ('requested', 'approved', 'rejected', 'completed')),
  amount_jpy integer check (amount_jpy > 0),
  provider_refund_id text,
  review_reason text check (char_length(review_reason) <= 1000),
  reviewed_by uuid references auth.users (id) on delete set null,
  medals_clawed_back bigint not null default 0 check (medals_clawed_back >= 0),
  medal_shortfall bigint not null default 0 check (medal_shortfall >= 0),
  created_at timestamptz not null default now(),
  reviewed_at timestamptz,
  completed_at timestamptz
);
comment on table app.refunds is
  'Refund requests and provider refunds of an order; sum of completed amounts <= amount paid.';
create index refunds_order on app.refunds (order_id);
create index refunds_user_created on app.refunds (user_id, created_at desc);
create index refunds_status_created on app.refunds (status, created_at);
create unique index refunds_provider_refund_id on app.refunds (provider_refund_id)
  where provider_refund_id is not null;

-- ---------------------------------------------------------------------------------------
-- RLS on every table (policies in sql/economy/00_policies.sql)
-- ---------------------------------------------------------------------------------------
alter table app.orders enable row level security;
alter table app.stock_shards enable row level security;
alter table app.order_reservations enable row level security;
alter table app.fairness_seeds enable row level security;
alter table app.rate_tables enable row level security;
alter table app.pulls enable row level security;
alter table app.pity_counters enable row level security;
alter table app.medal_balances enable row level security;
alter table app.exchanges enable row level security;
alter table app.medal_ledger enable row level security;
alter table app.user_rewards enable row level security;
alter table app.refunds enable row level security;

-- ---------------------------------------------------------------------------------------
-- Append-only: the ledger, pulls and exchanges are history (no role may change or delete them)
-- ---------------------------------------------------------------------------------------
create or replace function private.economy_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'PT409', message = 'history_append_only',
    detail = format('%s is append-only: rows can be neither changed nor deleted', tg_table_name);
end
$$;
comment on function private.economy_append_only() is
  'Trigger: refuses UPDATE, DELETE, TRUNCATE on the medal ledger, pulls and exchanges.';
revoke all on function private.economy_append_only() from public;

create trigger medal_ledger_before_update_delete_refuse
  before update or delete on app.medal_ledger
  for each row execute function private.economy_append_only();
create trigger medal_ledger_before_truncate_refuse
  before truncate on app.medal_ledger
  for each statement execute function private.economy_append_only();
create trigger pulls_before_update_delete_refuse
  before update or delete on app.pulls
  for each row execute function private.economy_append_only();
create trigger exchanges_before_update_delete_refuse
  before update or delete on app.exchanges
  for each row execute function private.economy_append_only();

-- ---------------------------------------------------------------------------------------
-- Placeholder: minors' spending caps belong to economy edges, whose migration replaces this
-- function (create or replace, same signature) with the real check. create_order calls it.
-- ---------------------------------------------------------------------------------------
create or replace function private.check_spending_cap(p_user uuid, p_amount integer, p_now timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- placeholder: replaced by the economy-edges migration (minors' caps)
  perform p_user, p_amount, p_now;
end
$$;
comment on function private.check_spending_cap(uuid, integer, timestamptz) is
  'Placeholder (no-op) until the economy-edges migration replaces it with the minors'' caps check.';
revoke all on function private.check_spending_cap(uuid, integer, timestamptz) from public;
