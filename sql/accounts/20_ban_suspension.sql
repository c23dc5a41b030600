-- Koepon's suspension (app.profiles.status) and Supabase Auth's ban (auth.users.banned_until)
-- are one fact seen from two sides: suspending through the admin RPC bans the user in Auth (no
-- sign-in, no refresh), and a ban set through Auth's admin API (ban_duration) shows as a
-- suspension. Each trigger writes the other side only when it disagrees, so they never loop.
-- A ban for a fixed time (ban_duration "24h") ends the suspension when it runs out, as it ends the
-- ban in Auth: Auth writes nothing when a ban expires, so the profile is reactivated by the
-- scheduled job koepon_end_expired_bans (every minute) and at once when the fan signs in or
-- refreshes again, which Auth allows from the moment the ban has expired (docs/auth.md).

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

-- Profiles still suspended by a ban that has run out (banned_until in the past) become active again,
-- audited as user.unsuspend with source auth_ban_expired; p_user limits it to one user. A suspension
-- by an admin bans for ever (876000 hours) and an erased account stays suspended, so neither ends here.
create or replace function private.end_expired_bans(p_user uuid, p_now timestamptz) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  r record;
  v_n integer := 0;
begin
  for r in select p.user_id, u.banned_until from app.profiles p join auth.users u on u.id = p.user_id
            where p.status = 'suspended' and u.banned_until <= p_now and u.deleted_at is null
              and (p_user is null or p.user_id = p_user)
              and not exists (select 1 from app.account_deletions d where d.user_id = p.user_id and d.erased_at is not null)
            order by p.user_id
            for update of p skip locked loop
    update app.profiles p set status = 'active' where p.user_id = r.user_id and p.status = 'suspended';
    if found then
      perform private.append_audit(null, 'user.unsuspend', 'user', r.user_id::text,
                                   jsonb_build_object('source', 'auth_ban_expired', 'banned_until', r.banned_until));
      v_n := v_n + 1;
    end if;
  end loop;
  return v_n;
end
$$;
comment on function private.end_expired_bans(uuid, timestamptz) is
  'Scheduled job and sign-in trigger: reactivates profiles whose Auth ban ran out by p_now (all, or p_user''s); '
  'audited; returns how many. security definer: app.profiles.status is written by no API role.';
revoke all on function private.end_expired_bans(uuid, timestamptz) from public, anon, authenticated, service_role;

-- Auth lets a fan whose ban ran out sign in (a new session) or refresh (the session's refreshed_at)
-- before the next run of the job: the suspension ends then too, so the first request after it works.
create or replace function private.end_expired_ban_at_sign_in() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.end_expired_bans(new.user_id, now());
  return null;
end
$$;
comment on function private.end_expired_ban_at_sign_in() is
  'Trigger on auth.sessions: a sign-in or refresh after the user''s ban ran out ends the suspension. security '
  'definer: app.profiles.status is written by no API role.';
revoke all on function private.end_expired_ban_at_sign_in() from public, anon, authenticated, service_role;

create or replace trigger sessions_after_sign_in_end_expired_ban
  after insert or update of refreshed_at on auth.sessions
  for each row execute function private.end_expired_ban_at_sign_in();
