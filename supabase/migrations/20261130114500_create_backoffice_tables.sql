-- The VTuber's and the admin's side: VTuber profile fields and revenue share, sales rollups kept
-- by a scheduled job, monthly payout statements, reconciliation issues. Functions and grants live
-- in sql/backoffice/ (carried by the next migration). No API role reads these tables directly:
-- RPCs under their own checks do, so RLS is on with no policy for anon or authenticated.

-- ---------------------------------------------------------------------------------------
-- VTuber self-service profile and revenue share
-- ---------------------------------------------------------------------------------------
alter table app.vtubers
  add column links jsonb not null default '[]'::jsonb
    constraint vtubers_links_check check (jsonb_typeof(links) = 'array' and jsonb_array_length(links) <= 10),
  add column avatar_path text
    constraint vtubers_avatar_path_check check (avatar_path ~ '^[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}$'
                                                and avatar_path !~ '\.\.' and avatar_path !~ '//'),
  add column banner_path text
    constraint vtubers_banner_path_check check (banner_path ~ '^[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}$'
                                                and banner_path !~ '\.\.' and banner_path !~ '//'),
  add column revenue_share_bps integer
    constraint vtubers_revenue_share_bps_check check (revenue_share_bps between 0 and 10000);
comment on column app.vtubers.links is 'Public links (https URLs to allowed hosts), validated by update_my_vtuber_profile.';
comment on column app.vtubers.revenue_share_bps is
  'The VTuber''s share of net sales in basis points, set by an admin (audited); null = the platform default.';

insert into app.platform_settings (key, value) values
  ('default_revenue_share_bps', '7000'),
  ('profile_link_hosts', '["youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be", "x.com", '
                         '"twitter.com", "twitch.tv", "www.twitch.tv", "bsky.app", "www.tiktok.com"]')
on conflict (key) do nothing;

-- ---------------------------------------------------------------------------------------
-- Sales rollups: added to by private.refresh_rollups (a scheduled job), never by fulfilment.
-- Every day is a JST calendar day; amounts are tax-inclusive yen.
-- ---------------------------------------------------------------------------------------
create table app.rollup_state (
  id boolean primary key default true check (id),
  through timestamptz not null default '-infinity',
  runs bigint not null default 0,
  last_run_at timestamptz,
  last_rows bigint not null default 0
);
comment on table app.rollup_state is
  'The rollups'' watermark: every source row stamped before `through` has been added, none after.';
insert into app.rollup_state (id) values (true);

create table app.sales_daily (
  jst_date date not null,
  gacha_id uuid not null references app.gachas (id) on delete restrict,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  paid_orders integer not null default 0,
  pulls integer not null default 0,
  gross_jpy bigint not null default 0,
  provider_fees_jpy bigint not null default 0,
  refund_count integer not null default 0,
  refunds_jpy bigint not null default 0,
  chargeback_count integer not null default 0,
  chargebacks_jpy bigint not null default 0,
  primary key (jst_date, gacha_id)
);
comment on table app.sales_daily is
  'Per JST day and gacha: paid orders and pulls (day of fulfilment), refunds (day completed) and '
  'chargebacks (day the first dispute of an order arrived).';
create index sales_daily_vtuber_date on app.sales_daily (vtuber_id, jst_date);

create table app.item_pulls_daily (
  jst_date date not null,
  gacha_item_id uuid not null references app.gacha_items (id) on delete restrict,
  gacha_id uuid not null references app.gachas (id) on delete restrict,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  rarity text not null,
  pulls integer not null default 0,
  pity_pulls integer not null default 0,
  primary key (jst_date, gacha_item_id)
);
comment on table app.item_pulls_daily is 'Pulls per JST day and item (pity draws counted apart).';
create index item_pulls_daily_vtuber_date on app.item_pulls_daily (vtuber_id, jst_date);
create index item_pulls_daily_gacha on app.item_pulls_daily (gacha_id);

create table app.fan_sales_daily (
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  jst_date date not null,
  user_id uuid not null,
  paid_orders integer not null default 0,
  gross_jpy bigint not null default 0,
  primary key (vtuber_id, jst_date, user_id)
);
comment on table app.fan_sales_daily is 'Paying fans per VTuber and JST day (unique paying fans, ARPPU).';
create index fan_sales_daily_date on app.fan_sales_daily (jst_date);

create table app.fan_firsts (
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  user_id uuid not null,
  first_jst_date date not null,
  primary key (vtuber_id, user_id)
);
comment on table app.fan_firsts is 'The JST day of each fan''s first paid order with a VTuber (new vs returning).';
create index fan_firsts_vtuber_date on app.fan_firsts (vtuber_id, first_jst_date);

create table app.medals_daily (
  jst_date date not null,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  granted bigint not null default 0,
  spent bigint not null default 0,
  clawed_back bigint not null default 0,
  adjusted bigint not null default 0,
  primary key (vtuber_id, jst_date)
);
comment on table app.medals_daily is
  'Medal ledger flows per VTuber and JST day; outstanding = granted - spent - clawed_back + adjusted.';

create table app.exchanges_daily (
  jst_date date not null,
  exchange_item_id uuid not null references app.exchange_items (id) on delete restrict,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  exchanges integer not null default 0,
  quantity integer not null default 0,
  medals_spent bigint not null default 0,
  primary key (jst_date, exchange_item_id)
);
comment on table app.exchanges_daily is 'Exchange redemptions per JST day and exchange item.';
create index exchanges_daily_vtuber_date on app.exchanges_daily (vtuber_id, jst_date);

-- The rollup job reads only what is new: the ledger (append-only) by time through a BRIN
-- index, which costs the fulfilment transaction next to nothing; refunds and disputes (small
-- tables, written outside fulfilment) and exchanges by plain indexes.
create index medal_ledger_created_brin on app.medal_ledger using brin (created_at) with (autosummarize = on);
create index refunds_completed_at on app.refunds (completed_at) where completed_at is not null;
create index disputes_created_at on app.disputes (created_at);
create index exchanges_created_at on app.exchanges (created_at);

-- ---------------------------------------------------------------------------------------
-- Monthly payout statements: written once when an admin closes a month, never changed.
-- ---------------------------------------------------------------------------------------
create table app.payout_statements (
  id bigint generated always as identity primary key,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  month date not null check (extract(day from month) = 1),
  gross_jpy bigint not null,
  refunds_jpy bigint not null,
  chargebacks_jpy bigint not null,
  provider_fees_jpy bigint not null,
  net_jpy bigint not null,
  share_bps integer not null check (share_bps between 0 and 10000),
  vtuber_share_jpy bigint not null,
  platform_fee_jpy bigint not null,
  consumption_tax_in_gross_jpy bigint not null,
  consumption_tax_in_share_jpy bigint not null,
  carried_in_jpy bigint not null check (carried_in_jpy <= 0),
  balance_jpy bigint not null,
  payable_jpy bigint not null check (payable_jpy >= 0),
  carried_out_jpy bigint not null check (carried_out_jpy <= 0),
  closed_at timestamptz not null,
  closed_by uuid,
  prev_hash text,
  hash text not null check (hash ~ '^[0-9a-f]{64}$'),
  audit_id bigint,
  constraint payout_statements_one_per_month unique (vtuber_id, month),
  constraint payout_statements_arithmetic check (
    net_jpy = gross_jpy - refunds_jpy - chargebacks_jpy - provider_fees_jpy
    and platform_fee_jpy = net_jpy - vtuber_share_jpy
    and balance_jpy = vtuber_share_jpy + carried_in_jpy
    and payable_jpy = greatest(balance_jpy, 0) and carried_out_jpy = least(balance_jpy, 0))
);
comment on table app.payout_statements is
  'Closed monthly statements per VTuber: immutable, hash-chained (prev_hash) and recorded in the audit log.';
create index payout_statements_month on app.payout_statements (month);

create table app.payout_months (
  month date primary key check (extract(day from month) = 1),
  closed_at timestamptz not null,
  closed_by uuid,
  statements integer not null,
  last_hash text,
  audit_id bigint
);
comment on table app.payout_months is 'Closed JST months (closed in calendar order; a closed month is final).';

create or replace function private.backoffice_history_immutable() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'PT409', message = 'statement_closed',
    detail = format('%s rows are final once written: later refunds land in the next month', tg_table_name);
end
$$;
comment on function private.backoffice_history_immutable() is
  'Trigger: refuses UPDATE, DELETE, TRUNCATE on closed payout statements and months.';
revoke all on function private.backoffice_history_immutable() from public;

create trigger payout_statements_before_update_delete_refuse
  before update or delete on app.payout_statements
  for each row execute function private.backoffice_history_immutable();
create trigger payout_statements_before_truncate_refuse
  before truncate on app.payout_statements
  for each statement execute function private.backoffice_history_immutable();
create trigger payout_months_before_update_delete_refuse
  before update or delete on app.payout_months
  for each row execute function private.backoffice_history_immutable();
create trigger payout_months_before_truncate_refuse
  before truncate on app.payout_months
  for each statement execute function private.backoffice_history_immutable();

-- ---------------------------------------------------------------------------------------
-- Reconciliation: what the providers told us against what we did, one issue per (kind, order).
-- ---------------------------------------------------------------------------------------
create table app.reconciliation_issues (
  id bigint generated always as identity primary key,
  kind text not null check (kind in ('paid_not_fulfilled', 'fulfilled_without_payment',
                                     'refund_not_booked', 'pending_past_expiry')),
  order_id uuid not null references app.orders (id) on delete restrict,
  detail jsonb not null default '{}'::jsonb,
  status text not null default 'open' check (status in ('open', 'resolved')),
  detected_at timestamptz not null default now(),
  resolved_at timestamptz,
  resolved_by uuid,
  resolution text check (char_length(resolution) <= 1000),
  constraint reconciliation_issues_once unique (kind, order_id),
  constraint reconciliation_issues_resolved_check check ((status = 'resolved') = (resolved_at is not null))
);
comment on table app.reconciliation_issues is
  'Discrepancies the reconciliation job found, filed once per (kind, order); admins resolve them (audited).';
create index reconciliation_issues_queue on app.reconciliation_issues (status, detected_at, id);

create table app.job_state (
  name text primary key check (name ~ '^[a-z][a-z0-9_]{0,62}$'),
  through timestamptz not null,
  updated_at timestamptz not null default now()
);
comment on table app.job_state is 'Where a scheduled job got to (its watermark), for jobs that read only what is new.';

alter table app.rollup_state enable row level security;
alter table app.sales_daily enable row level security;
alter table app.item_pulls_daily enable row level security;
alter table app.fan_sales_daily enable row level security;
alter table app.fan_firsts enable row level security;
alter table app.medals_daily enable row level security;
alter table app.exchanges_daily enable row level security;
alter table app.payout_statements enable row level security;
alter table app.payout_months enable row level security;
alter table app.reconciliation_issues enable row level security;
alter table app.job_state enable row level security;

revoke all on app.rollup_state, app.sales_daily, app.item_pulls_daily, app.fan_sales_daily, app.fan_firsts,
  app.medals_daily, app.exchanges_daily, app.payout_statements, app.payout_months, app.reconciliation_issues,
  app.job_state from public, anon, authenticated, service_role;
grant select on app.rollup_state, app.sales_daily, app.item_pulls_daily, app.fan_sales_daily, app.fan_firsts,
  app.medals_daily, app.exchanges_daily, app.payout_statements, app.payout_months, app.reconciliation_issues,
  app.job_state to service_role;
