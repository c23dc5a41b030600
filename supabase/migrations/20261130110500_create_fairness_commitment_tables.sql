-- Provably fair against the operator (docs/fairness.md, "Protocol 2"): the tables behind
-- commit-before-choose seeds, order-time draw binding and the published rate-table log.
-- Functions live in sql/economy/10_fairness.sql and sql/economy/30_orders.sql (next migration);
-- the triggers that publish rate tables and commit seeds, and the backfill, come after them.

-- The server seed a fan's NEXT pair will use, committed (its SHA-256 shown by get_fairness)
-- before the fan chooses the client seed it will be combined with. One per fan, always: a new
-- one is committed whenever the previous one becomes active.
create table app.fairness_next_seeds (
  user_id uuid primary key references auth.users (id) on delete cascade,
  server_seed bytea not null check (octet_length(server_seed) = 32),
  server_seed_hash text not null check (server_seed_hash ~ '^[0-9a-f]{64}$'),
  committed_at timestamptz not null default now()
);
comment on table app.fairness_next_seeds is
  'Per-fan committed next server seed: only its SHA-256 is ever shown until it has been active and is revealed.';
alter table app.fairness_next_seeds enable row level security;
revoke all on app.fairness_next_seeds from anon, authenticated, service_role;

-- When an active seed's hash was first shown (as the next seed), and where its client seed came
-- from: 'fan' (set_client_seed) or 'order' (SHA-256 of the idempotency key of the fan's first
-- order placed without an active pair). Both null for seeds of the first protocol.
alter table app.fairness_seeds
  add column committed_at timestamptz,
  add column client_seed_source text check (client_seed_source in ('fan', 'order'));

-- The draw an order is bound to at creation: seed, first nonce (the order owns
-- [first_nonce, first_nonce + pull_count)) and the published rate tables it will use. Null for
-- orders of the first protocol, whose nonces were taken at fulfilment.
alter table app.orders
  add column seed_id uuid references app.fairness_seeds (id) on delete restrict,
  add column first_nonce bigint check (first_nonce >= 0),
  add column rate_table_version text check (rate_table_version ~ '^[0-9a-f]{64}$'),
  add column pity_rate_table_version text check (pity_rate_table_version ~ '^[0-9a-f]{64}$'),
  add constraint orders_draw_binding_check
    check ((seed_id is null) = (first_nonce is null) and (seed_id is null) = (rate_table_version is null));
create unique index orders_seed_first_nonce on app.orders (seed_id, first_nonce) where seed_id is not null;

-- Every rate table ever published, once per (gacha, base/pity), hash-chained: hash =
-- SHA-256(prev_hash|seq|gacha_id|pity|version|published_at). Each entry is also appended to
-- the audit log (audit_id), whose own chain then covers it.
create table app.rate_table_log (
  seq bigint generated always as identity primary key,
  gacha_id uuid not null references app.gachas (id) on delete restrict,
  pity boolean not null,
  version text not null references app.rate_tables (version),
  published_at timestamptz not null,
  prev_hash text check (prev_hash ~ '^[0-9a-f]{64}$'),
  hash text not null check (hash ~ '^[0-9a-f]{64}$'),
  audit_id bigint,
  constraint rate_table_log_one_per_gacha unique (gacha_id, pity)
);
comment on table app.rate_table_log is
  'Append-only, hash-chained log of published rate tables (one base and at most one pity table per gacha).';
alter table app.rate_table_log enable row level security;
revoke all on app.rate_table_log from anon, authenticated, service_role;

-- Published history is never rewritten by any role (the operator can only do so by bypassing
-- triggers, which the chain and the verifier expose).
create trigger rate_table_log_before_update_delete_refuse
  before update or delete on app.rate_table_log
  for each row execute function private.economy_append_only();
create trigger rate_table_log_before_truncate_refuse
  before truncate on app.rate_table_log
  for each statement execute function private.economy_append_only();
create trigger rate_tables_before_update_delete_refuse
  before update or delete on app.rate_tables
  for each row execute function private.economy_append_only();
