-- Admin: suspensions, roles, and the audit chain. Every action appends to app.audit_log.

create or replace function private.require_reason(p_reason text) returns text
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_reason is null or char_length(btrim(p_reason)) not between 1 and 1000 then
    raise exception using errcode = 'PT400', message = 'invalid_reason',
      detail = 'a reason of 1 to 1000 characters is required (it goes to the audit log)';
  end if;
  return btrim(p_reason);
end
$$;
comment on function private.require_reason(text) is 'Raises invalid_reason unless 1–1000 characters.';
revoke all on function private.require_reason(text) from public;
grant execute on function private.require_reason(text) to authenticated;

create or replace function private.admin_set_user_status(p_user_id uuid, p_status text, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  p app.profiles;
begin
  if p_user_id = v_admin then
    raise exception using errcode = 'PT409', message = 'cannot_suspend_self',
      detail = 'an admin cannot change their own account status';
  end if;
  select * into p from app.profiles x where x.user_id = p_user_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'user_not_found', detail = 'no such user';
  end if;
  if p.status = p_status then
    raise exception using errcode = 'PT409', message = 'status_unchanged',
      detail = format('the user is already %s', p_status);
  end if;
  update app.profiles set status = p_status where user_id = p_user_id returning * into p;
  perform private.append_audit(v_admin, case p_status when 'suspended' then 'user.suspend' else 'user.unsuspend' end,
                               'user', p_user_id::text, jsonb_build_object('reason', v_reason));
  return jsonb_build_object('user_id', p.user_id, 'status', p.status);
end
$$;
comment on function private.admin_set_user_status(uuid, text, text) is
  'security definer: admins change app.profiles.status, which nobody else may write; audited.';
revoke all on function private.admin_set_user_status(uuid, text, text) from public;
grant execute on function private.admin_set_user_status(uuid, text, text) to authenticated;

create or replace function public.admin_suspend_user(p_user_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_user_status(p_user_id, 'suspended', p_reason) $$;
comment on function public.admin_suspend_user(uuid, text) is
  'Admin: suspends a user (no purchases, no RPCs); audited; returns {user_id, status}. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_reason (PT400), user_not_found (PT404), '
  'cannot_suspend_self, status_unchanged (PT409).';
revoke all on function public.admin_suspend_user(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_suspend_user(uuid, text) to authenticated;

create or replace function public.admin_unsuspend_user(p_user_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_user_status(p_user_id, 'active', p_reason) $$;
comment on function public.admin_unsuspend_user(uuid, text) is
  'Admin: reactivates a suspended user; audited. Errors: as admin_suspend_user.';
revoke all on function public.admin_unsuspend_user(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_unsuspend_user(uuid, text) to authenticated;

create or replace function private.admin_set_vtuber_status(p_vtuber_id uuid, p_status text, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  v app.vtubers;
begin
  select * into v from app.vtubers x where x.id = p_vtuber_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'vtuber_not_found', detail = 'no such VTuber';
  end if;
  if v.status = p_status then
    raise exception using errcode = 'PT409', message = 'status_unchanged',
      detail = format('the VTuber is already %s', p_status);
  end if;
  update app.vtubers set status = p_status,
    approved_at = case when p_status = 'approved' then coalesce(approved_at, now()) else approved_at end
  where id = v.id returning * into v;
  perform private.append_audit(v_admin, case p_status when 'suspended' then 'vtuber.suspend'
                                                      else 'vtuber.unsuspend' end,
                               'vtuber', v.id::text, jsonb_build_object('reason', v_reason));
  return jsonb_build_object('vtuber_id', v.id, 'status', v.status);
end
$$;
comment on function private.admin_set_vtuber_status(uuid, text, text) is
  'security definer: admins change app.vtubers.status, which nobody else may write; audited.';
revoke all on function private.admin_set_vtuber_status(uuid, text, text) from public;
grant execute on function private.admin_set_vtuber_status(uuid, text, text) to authenticated;

create or replace function public.admin_suspend_vtuber(p_vtuber_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_vtuber_status(p_vtuber_id, 'suspended', p_reason) $$;
comment on function public.admin_suspend_vtuber(uuid, text) is
  'Admin: suspends a VTuber (their gachas and exchange items leave the catalog, sales stop); audited; '
  'returns {vtuber_id, status}. Errors: not_authenticated (PT401), admin_only (PT403), invalid_reason '
  '(PT400), vtuber_not_found (PT404), status_unchanged (PT409).';
revoke all on function public.admin_suspend_vtuber(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_suspend_vtuber(uuid, text) to authenticated;

create or replace function public.admin_unsuspend_vtuber(p_vtuber_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_vtuber_status(p_vtuber_id, 'approved', p_reason) $$;
comment on function public.admin_unsuspend_vtuber(uuid, text) is
  'Admin: approves a suspended VTuber again; audited. Errors: as admin_suspend_vtuber.';
revoke all on function public.admin_unsuspend_vtuber(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_unsuspend_vtuber(uuid, text) to authenticated;

create or replace function private.admin_set_gacha_suspended(p_gacha_id uuid, p_suspend boolean, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  g app.gachas;
begin
  select * into g from app.gachas x where x.id = p_gacha_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'gacha_not_found', detail = 'no such gacha';
  end if;
  if p_suspend then
    if g.status not in ('published', 'ended') then
      raise exception using errcode = 'PT409', message = 'gacha_not_published',
        detail = format('the gacha is %s; only published or ended gachas can be suspended', g.status);
    end if;
    update app.gachas set status = 'suspended' where id = g.id returning * into g;
  else
    if g.status <> 'suspended' then
      raise exception using errcode = 'PT409', message = 'status_unchanged',
        detail = format('the gacha is %s, not suspended', g.status);
    end if;
    update app.gachas set status = case when ended_at is not null then 'ended' else 'published' end
    where id = g.id returning * into g;
  end if;
  perform private.append_audit(v_admin, case when p_suspend then 'gacha.suspend' else 'gacha.unsuspend' end,
                               'gacha', g.id::text, jsonb_build_object('reason', v_reason));
  return jsonb_build_object('gacha_id', g.id, 'status', g.status);
end
$$;
comment on function private.admin_set_gacha_suspended(uuid, boolean, text) is
  'security definer: admins suspend or restore a published gacha (the freeze trigger allows only this); audited.';
revoke all on function private.admin_set_gacha_suspended(uuid, boolean, text) from public;
grant execute on function private.admin_set_gacha_suspended(uuid, boolean, text) to authenticated;

create or replace function public.admin_suspend_gacha(p_gacha_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_gacha_suspended(p_gacha_id, true, p_reason) $$;
comment on function public.admin_suspend_gacha(uuid, text) is
  'Admin: suspends a published or ended gacha (it leaves the catalog, sales stop); audited; returns '
  '{gacha_id, status}. Errors: not_authenticated (PT401), admin_only (PT403), invalid_reason (PT400), '
  'gacha_not_found (PT404), gacha_not_published (PT409).';
revoke all on function public.admin_suspend_gacha(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_suspend_gacha(uuid, text) to authenticated;

create or replace function public.admin_unsuspend_gacha(p_gacha_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_gacha_suspended(p_gacha_id, false, p_reason) $$;
comment on function public.admin_unsuspend_gacha(uuid, text) is
  'Admin: restores a suspended gacha to published (or ended if it had ended); audited. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_reason (PT400), gacha_not_found (PT404), '
  'status_unchanged (PT409).';
revoke all on function public.admin_unsuspend_gacha(uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_unsuspend_gacha(uuid, text) to authenticated;

create or replace function private.admin_set_role(p_user_id uuid, p_role text, p_grant boolean, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  p app.profiles;
  v_vtuber uuid;
begin
  if p_role is null or p_role not in ('vtuber', 'admin') then
    raise exception using errcode = 'PT400', message = 'invalid_role',
      detail = 'role: vtuber or admin (every user is a fan)';
  end if;
  if p_user_id = v_admin and p_role = 'admin' then
    if p_grant then
      raise exception using errcode = 'PT403', message = 'cannot_grant_admin_to_self',
        detail = 'an admin cannot grant the admin role to themselves';
    end if;
    raise exception using errcode = 'PT409', message = 'cannot_revoke_own_admin',
      detail = 'another admin must revoke your admin role';
  end if;
  select * into p from app.profiles x where x.user_id = p_user_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'user_not_found', detail = 'no such user';
  end if;
  if p_grant then
    if exists (select 1 from app.user_roles r where r.user_id = p_user_id and r.role = p_role) then
      raise exception using errcode = 'PT409', message = 'role_already_granted',
        detail = format('the user already has the %s role', p_role);
    end if;
    insert into app.user_roles (user_id, role, granted_by) values (p_user_id, p_role, v_admin);
    if p_role = 'vtuber' then
      insert into app.vtubers (user_id, name, status, approved_at)
      values (p_user_id, p.display_name, 'approved', now())
      on conflict (user_id) do update set status = 'approved',
        approved_at = coalesce(app.vtubers.approved_at, excluded.approved_at)
      returning id into v_vtuber;
    end if;
  else
    delete from app.user_roles r where r.user_id = p_user_id and r.role = p_role;
    if not found then
      raise exception using errcode = 'PT409', message = 'role_not_granted',
        detail = format('the user does not have the %s role', p_role);
    end if;
    if p_role = 'vtuber' then
      update app.vtubers set status = 'suspended' where user_id = p_user_id returning id into v_vtuber;
    end if;
  end if;
  perform private.append_audit(v_admin, case when p_grant then 'role.grant' else 'role.revoke' end,
                               'user', p_user_id::text,
                               jsonb_build_object('role', p_role, 'reason', v_reason, 'vtuber_id', v_vtuber));
  return private.my_profile_json(p_user_id);
end
$$;
comment on function private.admin_set_role(uuid, text, boolean, text) is
  'security definer: the only writer of app.user_roles after sign-up; audited.';
revoke all on function private.admin_set_role(uuid, text, boolean, text) from public;
grant execute on function private.admin_set_role(uuid, text, boolean, text) to authenticated;

create or replace function public.admin_grant_role(p_user_id uuid, p_role text, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_role(p_user_id, p_role, true, p_reason) $$;
comment on function public.admin_grant_role(uuid, text, text) is
  'Admin: grants vtuber (creating or re-approving the VTuber profile) or admin to a user; audited; returns '
  'the user''s profile. Errors: not_authenticated (PT401), admin_only, cannot_grant_admin_to_self (PT403), '
  'invalid_role, invalid_reason (PT400), user_not_found (PT404), role_already_granted (PT409).';
revoke all on function public.admin_grant_role(uuid, text, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_grant_role(uuid, text, text) to authenticated;

create or replace function public.admin_revoke_role(p_user_id uuid, p_role text, p_reason text) returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_role(p_user_id, p_role, false, p_reason) $$;
comment on function public.admin_revoke_role(uuid, text, text) is
  'Admin: revokes vtuber (suspending the VTuber profile) or admin from a user; audited; returns the '
  'profile. Errors: not_authenticated (PT401), admin_only (PT403), invalid_role, invalid_reason (PT400), '
  'user_not_found (PT404), role_not_granted, cannot_revoke_own_admin (PT409).';
revoke all on function public.admin_revoke_role(uuid, text, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_revoke_role(uuid, text, text) to authenticated;

create or replace function private.verify_audit_chain() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  r record;
  v_prev text;
  v_count bigint := 0;
begin
  if not (private.is_admin() or coalesce(auth.role(), '') = 'service_role') then
    if auth.uid() is null and coalesce(auth.role(), '') <> 'service_role' then
      raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
    end if;
    raise exception using errcode = 'PT403', message = 'admin_only', detail = 'only an admin may do this';
  end if;
  for r in select * from app.audit_log order by id loop
    v_count := v_count + 1;
    if r.prev_hash is distinct from v_prev
       or r.hash is distinct from private.audit_hash(r.prev_hash, r.id, r.at, r.actor, r.action,
                                                     r.target_type, r.target_id, r.details) then
      return jsonb_build_object('ok', false, 'rows_checked', v_count, 'first_broken_id', r.id,
        'reason', case when r.prev_hash is distinct from v_prev then 'prev_hash does not match the previous row'
                       else 'hash does not match the row''s content' end);
    end if;
    v_prev := r.hash;
  end loop;
  return jsonb_build_object('ok', true, 'rows_checked', v_count, 'first_broken_id', null, 'last_hash', v_prev);
end
$$;
comment on function private.verify_audit_chain() is
  'security definer: recomputes the audit chain whatever the caller''s RLS (admins and the service role).';
revoke all on function private.verify_audit_chain() from public;
grant execute on function private.verify_audit_chain() to authenticated, service_role;

create or replace function public.verify_audit_chain() returns jsonb
language sql stable
set search_path = ''
as $$ select private.verify_audit_chain() $$;
comment on function public.verify_audit_chain() is
  'Admin or service role: recomputes every audit row''s hash; returns {ok, rows_checked, first_broken_id, '
  'reason|last_hash}. Errors: not_authenticated (PT401), admin_only (PT403).';
revoke all on function public.verify_audit_chain() from public, anon, authenticated, service_role;
grant execute on function public.verify_audit_chain() to authenticated, service_role;
