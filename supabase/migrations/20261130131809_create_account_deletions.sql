-- Account deletion requests (the right to be forgotten) and the medal ledger's forfeiture entry.
-- Functions, policies and grants live in sql/accounts/ (carried by the next migration).

create table app.account_deletions (
  user_id uuid primary key references auth.users (id) on delete restrict,
  requested_at timestamptz not null,
  erase_after timestamptz not null,
  cancelled_at timestamptz,
  erased_at timestamptz,
  erased_by uuid references auth.users (id) on delete set null,
  check (erase_after >= requested_at),
  check (cancelled_at is null or erased_at is null)
);
comment on table app.account_deletions is
  'One deletion request per user: pending until erase_after, then erased (by an admin or the job) unless cancelled.';
create index account_deletions_due on app.account_deletions (erase_after) where erased_at is null and cancelled_at is null;
alter table app.account_deletions enable row level security;
-- No policies: fans and admins go through the definer functions in sql/accounts/30_erasure.sql.
revoke all on app.account_deletions from anon, authenticated;

-- Forfeiture: an erased account's unclaimed medals leave through the ledger.
alter table app.medal_ledger drop constraint medal_ledger_reason_check;
alter table app.medal_ledger add constraint medal_ledger_reason_check
  check (reason in ('pull_grant', 'exchange', 'refund_clawback', 'admin_adjustment', 'account_forfeiture'));
alter table app.medal_ledger drop constraint medal_ledger_reference_check;
alter table app.medal_ledger add constraint medal_ledger_reference_check check (
  (reason = 'pull_grant' and order_id is not null and delta > 0)
  or (reason = 'exchange' and exchange_id is not null and delta < 0)
  or (reason = 'refund_clawback' and order_id is not null and delta < 0)
  or (reason = 'admin_adjustment' and char_length(btrim(note)) > 0)
  or (reason = 'account_forfeiture' and delta < 0 and order_id is null and exchange_id is null));
