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
