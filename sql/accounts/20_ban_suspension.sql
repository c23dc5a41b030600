-- Koepon's suspension (app.profiles.status) and Supabase Auth's ban (auth.users.banned_until)
-- are one fact seen from two sides: suspending through the admin RPC bans the user in Auth (no
-- sign-in, no refresh), and a ban set through Auth's admin API (ban_duration) shows as a
-- suspension. Each trigger writes the other side only when it disagrees, so they never loop.
-- A ban for a fixed time that simply runs out leaves the profile suspended until an admin lifts
-- it (Auth does not write when a ban expires; docs/auth.md).

create or replace function private.ban_follows_suspension() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.status = 'suspended' then
    -- GoTrue's "ban for ever": ban_duration 876000h (100 years).
    update auth.users u set banned_until = now() + interval '876000 hours', updated_at = now()
     where u.id = new.user_id and (u.banned_until is null or u.banned_until <= now());
  else
    update auth.users u set banned_until = null, updated_at = now()
     where u.id = new.user_id and u.banned_until > now();
  end if;
  return null;
end
$$;
comment on function private.ban_follows_suspension() is
  'Trigger on app.profiles: a suspension bans the user in auth.users, lifting it unbans. security definer: '
  'auth.users is Auth''s table.';
revoke all on function private.ban_follows_suspension() from public;

create or replace function private.suspension_follows_ban() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_status text := case when new.banned_until > now() then 'suspended' else 'active' end;
begin
  update app.profiles p set status = v_status where p.user_id = new.id and p.status <> v_status;
  if found then
    perform private.append_audit(null, case v_status when 'suspended' then 'user.suspend' else 'user.unsuspend' end,
                                 'user', new.id::text, jsonb_build_object('source', 'auth_ban'));
  end if;
  return null;
end
$$;
comment on function private.suspension_follows_ban() is
  'Trigger on auth.users: a ban set in Auth suspends the profile, lifting it reactivates; audited. security '
  'definer: app.profiles.status is written by no API role.';
revoke all on function private.suspension_follows_ban() from public;

-- create or replace: re-runnable without DROP TRIGGER, which needs ownership of auth.users (Auth owns it).
create or replace trigger profiles_after_update_ban
  after update of status on app.profiles
  for each row when (old.status is distinct from new.status)
  execute function private.ban_follows_suspension();

create or replace trigger users_after_update_suspend
  after update of banned_until on auth.users
  for each row when (old.banned_until is distinct from new.banned_until)
  execute function private.suspension_follows_ban();
