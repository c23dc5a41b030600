-- from sql/economy/00_policies.sql
-- Economy tables: who may read what. Nobody writes them directly: every change goes through
-- the security definer functions of sql/economy/ (grants below are select only).

revoke all on app.orders, app.stock_shards, app.order_reservations, app.fairness_seeds, app.rate_tables,
  app.pulls, app.pity_counters, app.medal_balances, app.exchanges, app.medal_ledger, app.user_rewards,
  app.refunds from anon, authenticated, service_role;

grant select on app.orders, app.pulls, app.medal_balances, app.medal_ledger, app.user_rewards,
  app.exchanges, app.refunds, app.rate_tables to authenticated, service_role;
-- The server seed of a fan's active seed is the secret being committed to: never readable.
grant select (id, user_id, server_seed_hash, client_seed, next_nonce, active, created_at, revealed_at)
  on app.fairness_seeds to authenticated, service_role;
grant select on app.stock_shards, app.order_reservations, app.pity_counters to service_role;

drop policy if exists "Fans can read their own orders" on app.orders;
create policy "Fans can read their own orders" on app.orders
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "Admins can read every order" on app.orders;
create policy "Admins can read every order" on app.orders
  for select to authenticated using ((select private.is_admin()));

drop policy if exists "Fans can read their own pulls" on app.pulls;
create policy "Fans can read their own pulls" on app.pulls
  for select to authenticated using (user_id = (select auth.uid()));

drop policy if exists "Anyone signed in can read rate tables" on app.rate_tables;
create policy "Anyone signed in can read rate tables" on app.rate_tables
  for select to authenticated using (true);

drop policy if exists "Fans can read their own medal balances" on app.medal_balances;
create policy "Fans can read their own medal balances" on app.medal_balances
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "VTubers can read the balances of their medals" on app.medal_balances;
create policy "VTubers can read the balances of their medals" on app.medal_balances
  for select to authenticated using (vtuber_id = (select private.current_vtuber_id()));

drop policy if exists "Fans can read their own medal ledger" on app.medal_ledger;
create policy "Fans can read their own medal ledger" on app.medal_ledger
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "Admins can read the whole medal ledger" on app.medal_ledger;
create policy "Admins can read the whole medal ledger" on app.medal_ledger
  for select to authenticated using ((select private.is_admin()));

drop policy if exists "Fans can read their own rewards" on app.user_rewards;
create policy "Fans can read their own rewards" on app.user_rewards
  for select to authenticated using (user_id = (select auth.uid()));

drop policy if exists "Fans can read their own exchanges" on app.exchanges;
create policy "Fans can read their own exchanges" on app.exchanges
  for select to authenticated using (user_id = (select auth.uid()));

drop policy if exists "Fans can read their own fairness seeds" on app.fairness_seeds;
create policy "Fans can read their own fairness seeds" on app.fairness_seeds
  for select to authenticated using (user_id = (select auth.uid()));

drop policy if exists "Fans can read their own refunds" on app.refunds;
create policy "Fans can read their own refunds" on app.refunds
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "Admins can read every refund" on app.refunds;
create policy "Admins can read every refund" on app.refunds
  for select to authenticated using ((select private.is_admin()));
