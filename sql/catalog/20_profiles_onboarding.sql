-- Profiles and VTuber onboarding. Each public function is a thin invoker wrapper over a
-- private security definer core that checks the caller itself.

-- ---------------------------------------------------------------------------------------
-- Profiles
-- ---------------------------------------------------------------------------------------
create or replace function private.role_rank(p_role text) returns integer
language sql immutable
set search_path = ''
as $$
  select case p_role when 'fan' then 1 when 'vtuber' then 2 when 'admin' then 3 end
$$;
comment on function private.role_rank(text) is 'Display order of roles.';
revoke all on function private.role_rank(text) from public;
grant execute on function private.role_rank(text) to authenticated, service_role;

create or replace function private.my_profile_json(p_user uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'user_id', p.user_id, 'display_name', p.display_name, 'birth_date', p.birth_date,
    'status', p.status, 'created_at', p.created_at,
    'roles', coalesce((select jsonb_agg(r.role order by private.role_rank(r.role))
                       from app.user_roles r where r.user_id = p.user_id), '[]'::jsonb),
    'vtuber', (select jsonb_build_object('id', v.id, 'name', v.name, 'status', v.status)
               from app.vtubers v where v.user_id = p.user_id))
  from app.profiles p where p.user_id = p_user
$$;
comment on function private.my_profile_json(uuid) is
  'security definer: a profile with roles and VTuber; callers pass auth.uid() only.';
revoke all on function private.my_profile_json(uuid) from public;
grant execute on function private.my_profile_json(uuid) to authenticated;

create or replace function private.get_my_profile() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  return private.my_profile_json(v_uid);
end
$$;
comment on function private.get_my_profile() is
  'security definer: reads the caller''s roles and VTuber whatever RLS (suspended users too).';
revoke all on function private.get_my_profile() from public;
grant execute on function private.get_my_profile() to authenticated;

create or replace function public.get_my_profile() returns jsonb
language sql stable
set search_path = ''
as $$ select private.get_my_profile() $$;
comment on function public.get_my_profile() is
  'The caller''s profile: {user_id, display_name, birth_date, status, created_at, roles[], vtuber}. '
  'Errors: not_authenticated (PT401).';
revoke all on function public.get_my_profile() from public, anon, authenticated, service_role;
grant execute on function public.get_my_profile() to authenticated;

create or replace function private.update_my_profile(p_display_name text, p_birth_date date)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_current date;
begin
  if p_display_name is not null then
    if char_length(btrim(p_display_name)) not between 1 and 50 then
      raise exception using errcode = 'PT400', message = 'invalid_display_name',
        detail = 'display_name: 1 to 50 characters';
    end if;
    update app.profiles set display_name = btrim(p_display_name) where user_id = v_uid;
  end if;
  if p_birth_date is not null then
    if p_birth_date < date '1900-01-01' or p_birth_date > (now() at time zone 'Asia/Tokyo')::date then
      raise exception using errcode = 'PT400', message = 'invalid_birth_date',
        detail = 'birth_date must be a real date, not in the future';
    end if;
    select birth_date into v_current from app.profiles where user_id = v_uid for update;
    if v_current is not null and v_current <> p_birth_date then
      raise exception using errcode = 'PT409', message = 'birth_date_already_set',
        detail = 'the birth date is set once; ask support to correct it';
    end if;
    update app.profiles set birth_date = p_birth_date where user_id = v_uid;
  end if;
  return private.my_profile_json(v_uid);
end
$$;
comment on function private.update_my_profile(text, date) is
  'security definer: the caller may change only their display name and set their birth date once.';
revoke all on function private.update_my_profile(text, date) from public;
grant execute on function private.update_my_profile(text, date) to authenticated;

create or replace function public.update_my_profile(
  p_display_name text default null, p_birth_date date default null
) returns jsonb
language sql
set search_path = ''
as $$ select private.update_my_profile(p_display_name, p_birth_date) $$;
comment on function public.update_my_profile(text, date) is
  'Sets the caller''s display name and (once) birth date; returns the profile. Errors: '
  'not_authenticated (PT401), account_suspended (PT403), invalid_display_name, invalid_birth_date '
  '(PT400), birth_date_already_set (PT409).';
revoke all on function public.update_my_profile(text, date) from public, anon, authenticated, service_role;
grant execute on function public.update_my_profile(text, date) to authenticated;

-- ---------------------------------------------------------------------------------------
-- VTuber applications
-- ---------------------------------------------------------------------------------------
create or replace function private.application_json(a app.vtuber_applications) returns jsonb
language sql immutable
set search_path = ''
as $$
  select jsonb_build_object('id', a.id, 'user_id', a.user_id, 'vtuber_name', a.vtuber_name,
    'description', a.description, 'status', a.status, 'review_reason', a.review_reason,
    'reviewed_at', a.reviewed_at, 'created_at', a.created_at)
$$;
comment on function private.application_json(app.vtuber_applications) is 'An application as JSON.';
revoke all on function private.application_json(app.vtuber_applications) from public;
grant execute on function private.application_json(app.vtuber_applications) to authenticated;

create or replace function private.submit_vtuber_application(p_vtuber_name text, p_description text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_last timestamptz;
  a app.vtuber_applications;
begin
  if p_vtuber_name is null or char_length(btrim(p_vtuber_name)) not between 1 and 100 then
    raise exception using errcode = 'PT400', message = 'invalid_vtuber_name',
      detail = 'vtuber_name: 1 to 100 characters';
  end if;
  if p_description is null or char_length(btrim(p_description)) not between 1 and 2000 then
    raise exception using errcode = 'PT400', message = 'invalid_description',
      detail = 'description: 1 to 2000 characters';
  end if;
  -- one decision at a time per applicant
  perform pg_catalog.pg_advisory_xact_lock(7253102, hashtext(v_uid::text));
  if exists (select 1 from app.user_roles r where r.user_id = v_uid and r.role = 'vtuber') then
    raise exception using errcode = 'PT409', message = 'already_a_vtuber',
      detail = 'this account is already a VTuber';
  end if;
  if exists (select 1 from app.vtuber_applications x where x.user_id = v_uid and x.status = 'pending') then
    raise exception using errcode = 'PT409', message = 'application_already_open',
      detail = 'you already have an open application: withdraw it or wait for its review';
  end if;
  select max(x.reviewed_at) into v_last from app.vtuber_applications x
    where x.user_id = v_uid and x.status = 'rejected';
  if v_last is not null and v_last > now() - interval '30 days' then
    raise exception using errcode = 'PT422', message = 'reapply_cooldown_active',
      detail = format('after a rejection you may apply again from %s (JST)',
                      to_char((v_last + interval '30 days') at time zone 'Asia/Tokyo', 'YYYY-MM-DD HH24:MI'));
  end if;
  insert into app.vtuber_applications (user_id, vtuber_name, description)
  values (v_uid, btrim(p_vtuber_name), btrim(p_description))
  returning * into a;
  return private.application_json(a);
exception
  when unique_violation then
    raise exception using errcode = 'PT409', message = 'application_already_open',
      detail = 'you already have an open application: withdraw it or wait for its review';
end
$$;
comment on function private.submit_vtuber_application(text, text) is
  'security definer: fans may not write app.vtuber_applications directly; one open application, '
  '30 days after a rejection.';
revoke all on function private.submit_vtuber_application(text, text) from public;
grant execute on function private.submit_vtuber_application(text, text) to authenticated;

create or replace function public.submit_vtuber_application(p_vtuber_name text, p_description text)
returns jsonb
language sql
set search_path = ''
as $$ select private.submit_vtuber_application(p_vtuber_name, p_description) $$;
comment on function public.submit_vtuber_application(text, text) is
  'A fan applies to become a VTuber; returns the application. Errors: not_authenticated (PT401), '
  'account_suspended (PT403), invalid_vtuber_name, invalid_description (PT400), already_a_vtuber, '
  'application_already_open (PT409), reapply_cooldown_active (PT422, 30 days after a rejection).';
revoke all on function public.submit_vtuber_application(text, text) from public, anon, authenticated, service_role;
grant execute on function public.submit_vtuber_application(text, text) to authenticated;

create or replace function private.withdraw_vtuber_application(p_application_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  a app.vtuber_applications;
begin
  select * into a from app.vtuber_applications x
    where x.id = p_application_id and x.user_id = v_uid for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'application_not_found',
      detail = 'no such application of yours';
  end if;
  if a.status <> 'pending' then
    raise exception using errcode = 'PT409', message = 'application_not_pending',
      detail = format('the application is %s', a.status);
  end if;
  update app.vtuber_applications set status = 'withdrawn' where id = a.id returning * into a;
  return private.application_json(a);
end
$$;
comment on function private.withdraw_vtuber_application(uuid) is
  'security definer: the applicant withdraws their own pending application.';
revoke all on function private.withdraw_vtuber_application(uuid) from public;
grant execute on function private.withdraw_vtuber_application(uuid) to authenticated;

create or replace function public.withdraw_vtuber_application(p_application_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.withdraw_vtuber_application(p_application_id) $$;
comment on function public.withdraw_vtuber_application(uuid) is
  'Withdraws the caller''s pending application. Errors: not_authenticated (PT401), '
  'account_suspended (PT403), application_not_found (PT404), application_not_pending (PT409).';
revoke all on function public.withdraw_vtuber_application(uuid) from public, anon, authenticated, service_role;
grant execute on function public.withdraw_vtuber_application(uuid) to authenticated;

create or replace function public.list_my_applications() returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  if auth.uid() is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  return coalesce((select jsonb_agg(private.application_json(a) order by a.created_at desc)
                   from app.vtuber_applications a where a.user_id = auth.uid()), '[]'::jsonb);
end
$$;
comment on function public.list_my_applications() is
  'The caller''s applications, newest first. Errors: not_authenticated (PT401).';
revoke all on function public.list_my_applications() from public, anon, authenticated, service_role;
grant execute on function public.list_my_applications() to authenticated;

create or replace function private.list_vtuber_applications(p_status text) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
begin
  perform private.require_admin();
  if p_status is not null and p_status not in ('pending', 'approved', 'rejected', 'withdrawn') then
    raise exception using errcode = 'PT400', message = 'invalid_status',
      detail = 'status: pending, approved, rejected or withdrawn';
  end if;
  return coalesce((select jsonb_agg(private.application_json(a) || jsonb_build_object(
                            'display_name', p.display_name) order by a.created_at)
                   from app.vtuber_applications a join app.profiles p on p.user_id = a.user_id
                   where p_status is null or a.status = p_status), '[]'::jsonb);
end
$$;
comment on function private.list_vtuber_applications(text) is
  'security definer: admins list applications with the applicant''s display name.';
revoke all on function private.list_vtuber_applications(text) from public;
grant execute on function private.list_vtuber_applications(text) to authenticated;

create or replace function public.list_vtuber_applications(p_status text default 'pending') returns jsonb
language sql stable
set search_path = ''
as $$ select private.list_vtuber_applications(p_status) $$;
comment on function public.list_vtuber_applications(text) is
  'Admin: applications with the given status (null = all), oldest first. Errors: not_authenticated '
  '(PT401), admin_only (PT403), invalid_status (PT400).';
revoke all on function public.list_vtuber_applications(text) from public, anon, authenticated, service_role;
grant execute on function public.list_vtuber_applications(text) to authenticated;

create or replace function private.review_vtuber_application(
  p_application_id uuid, p_decision text, p_reason text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  a app.vtuber_applications;
  v_vtuber app.vtubers;
begin
  if p_decision is null or p_decision not in ('approve', 'reject') then
    raise exception using errcode = 'PT400', message = 'invalid_decision',
      detail = 'decision: approve or reject';
  end if;
  if p_reason is not null and char_length(p_reason) > 1000 then
    raise exception using errcode = 'PT400', message = 'invalid_reason', detail = 'reason: at most 1000 characters';
  end if;
  select * into a from app.vtuber_applications x where x.id = p_application_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'application_not_found', detail = 'no such application';
  end if;
  if a.user_id = v_admin then
    raise exception using errcode = 'PT403', message = 'cannot_review_own_application',
      detail = 'another admin must review your application';
  end if;
  if a.status <> 'pending' then
    raise exception using errcode = 'PT409', message = 'application_not_pending',
      detail = format('the application is %s', a.status);
  end if;
  if p_decision = 'reject' then
    if p_reason is null or btrim(p_reason) = '' then
      raise exception using errcode = 'PT422', message = 'rejection_needs_reason',
        detail = 'say why the application is rejected';
    end if;
    update app.vtuber_applications
      set status = 'rejected', review_reason = btrim(p_reason), reviewed_by = v_admin, reviewed_at = now()
      where id = a.id returning * into a;
    perform private.append_audit(v_admin, 'application.reject', 'vtuber_application', a.id::text,
                                 jsonb_build_object('user_id', a.user_id, 'reason', a.review_reason));
    return private.application_json(a);
  end if;
  update app.vtuber_applications
    set status = 'approved', review_reason = nullif(btrim(p_reason), ''), reviewed_by = v_admin,
        reviewed_at = now()
    where id = a.id returning * into a;
  insert into app.vtubers (user_id, name, description, status, approved_at)
  values (a.user_id, a.vtuber_name, a.description, 'approved', now())
  on conflict (user_id) do update
    set name = excluded.name, description = excluded.description, status = 'approved',
        approved_at = excluded.approved_at
  returning * into v_vtuber;
  insert into app.user_roles (user_id, role, granted_by) values (a.user_id, 'vtuber', v_admin)
  on conflict (user_id, role) do nothing;
  perform private.append_audit(v_admin, 'application.approve', 'vtuber_application', a.id::text,
                               jsonb_build_object('user_id', a.user_id, 'vtuber_id', v_vtuber.id,
                                                  'reason', a.review_reason));
  return private.application_json(a) || jsonb_build_object('vtuber_id', v_vtuber.id);
end
$$;
comment on function private.review_vtuber_application(uuid, text, text) is
  'security definer: approval creates the VTuber and grants the role in one transaction; audited.';
revoke all on function private.review_vtuber_application(uuid, text, text) from public;
grant execute on function private.review_vtuber_application(uuid, text, text) to authenticated;

create or replace function public.review_vtuber_application(
  p_application_id uuid, p_decision text, p_reason text default null
) returns jsonb
language sql
set search_path = ''
as $$ select private.review_vtuber_application(p_application_id, p_decision, p_reason) $$;
comment on function public.review_vtuber_application(uuid, text, text) is
  'Admin: approve (creates the VTuber, grants the vtuber role) or reject (reason required) a '
  'pending application; audited. Errors: not_authenticated (PT401), admin_only, '
  'cannot_review_own_application (PT403), invalid_decision, invalid_reason (PT400), '
  'application_not_found (PT404), application_not_pending (PT409), rejection_needs_reason (PT422).';
revoke all on function public.review_vtuber_application(uuid, text, text)
  from public, anon, authenticated, service_role;
grant execute on function public.review_vtuber_application(uuid, text, text) to authenticated;
