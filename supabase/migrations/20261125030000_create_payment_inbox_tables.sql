-- Payments inbox: every provider event exactly once (app.payment_events), and the state of each
-- provider payment of an order (app.payments), which only ever moves forward. Functions and
-- grants live in sql/payments/ (carried by the next migration). Only the payment service
-- (service_role, through public.service_* functions) reaches these tables; admins can read them.

-- ---------------------------------------------------------------------------------------
-- The inbox: one row per (provider, event id); a redelivery changes nothing.
-- ---------------------------------------------------------------------------------------
create table app.payment_events (
  provider text not null check (provider in ('stripe', 'komoju')),
  event_id text not null check (char_length(event_id) between 1 and 255),
  type text not null check (char_length(type) between 1 and 100),
  payload jsonb not null check (jsonb_typeof(payload) = 'object'),
  order_id uuid references app.orders (id) on delete restrict,
  outcome text not null check (outcome ~ '^[a-z][a-z_]{0,59}$'),
  detail text,
  received_at timestamptz not null default now(),
  primary key (provider, event_id)
);
comment on table app.payment_events is
  'Provider webhook events, one row per (provider, event id), with what the state machine did (outcome).';
create index payment_events_order on app.payment_events (order_id, received_at) where order_id is not null;
create index payment_events_received on app.payment_events (received_at);

-- ---------------------------------------------------------------------------------------
-- Payments: one row per (order, provider). The status only moves forward:
--   pending -> failed | canceled | expired            (an attempt that did not pay)
--   pending | failed | canceled | expired -> paid     (the provider is authoritative about money)
--   paid -> partially_refunded -> refunded
-- refunded_jpy is the provider's cumulative refunded amount, which may be seen before the
-- payment itself (out-of-order delivery); it is applied to the order once the order is paid.
-- ---------------------------------------------------------------------------------------
create table app.payments (
  order_id uuid not null references app.orders (id) on delete restrict,
  provider text not null check (provider in ('stripe', 'komoju')),
  payment_ref text check (char_length(payment_ref) between 1 and 255),
  provider_payment_id text check (char_length(provider_payment_id) between 1 and 255),
  status text not null default 'pending'
    check (status in ('pending', 'failed', 'canceled', 'expired', 'paid', 'partially_refunded', 'refunded')),
  amount_jpy integer check (amount_jpy >= 0),
  currency text check (currency ~ '^[A-Z]{3}$'),
  refunded_jpy integer not null default 0 check (refunded_jpy >= 0),
  refunds_applied_jpy integer not null default 0 check (refunds_applied_jpy >= 0),
  disputed boolean not null default false,
  flagged boolean not null default false,
  flag_reason text check (flag_reason ~ '^[a-z][a-z_]{0,59}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (order_id, provider),
  constraint payments_flag_reason check (flagged = (flag_reason is not null)),
  constraint payments_refunds_applied check (refunds_applied_jpy <= refunded_jpy)
);
comment on table app.payments is
  'Each provider payment of an order: its reference (PaymentIntent id, KOMOJU session id), the provider '
  'payment id, a forward-only status, cumulative refunds seen and applied, dispute and flag.';
comment on column app.payments.payment_ref is
  'What the service created: Stripe PaymentIntent id or KOMOJU session id.';
comment on column app.payments.provider_payment_id is
  'What the provider pays with: Stripe PaymentIntent id, KOMOJU payment id.';
create unique index payments_provider_ref on app.payments (provider, payment_ref) where payment_ref is not null;
create unique index payments_provider_payment on app.payments (provider, provider_payment_id)
  where provider_payment_id is not null;
create index payments_flagged on app.payments (updated_at) where flagged;

alter table app.payment_events enable row level security;
alter table app.payments enable row level security;
