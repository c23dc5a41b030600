-- A fan's own sign-in sessions (auth.sessions): hosted Auth has no endpoint that lists them, so
-- these definer functions read and end the caller's rows. Ending a session deletes it, and its
-- refresh tokens with it (on delete cascade), so a device holding one can no longer refresh.

create or replace function public.my_sessions()
returns table (id uuid, created_at timestamptz, updated_at timestamptz, refreshed_at timestamptz,
               last_active_at timestamptz, user_agent text, ip text, aal text, is_current boolean)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  return query
    select s.id, s.created_at, s.updated_at, s.refreshed_at::timestamptz,
           greatest(s.created_at, s.updated_at, s.refreshed_at::timestamptz), s.user_agent, host(s.ip), s.aal::text,
           s.id::text = coalesce(auth.jwt() ->> 'session_id', '')
      from auth.sessions s
     where s.user_id = v_uid
     order by greatest(s.created_at, s.updated_at, s.refreshed_at::timestamptz) desc, s.id;
end
$$;
comment on function public.my_sessions() is
  'Fan: the caller''s sign-in sessions (device user agent, IP, created/refreshed/last active, AAL, '
  'is_current). security definer: auth.sessions is not readable by API roles. Errors: not_authenticated (PT401).';
revoke all on function public.my_sessions() from public, anon, authenticated, service_role;
grant execute on function public.my_sessions() to authenticated;

create or replace function public.end_my_session(p_session_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  delete from auth.sessions s where s.id = p_session_id and s.user_id = v_uid;
  if not found then
    raise exception using errcode = 'PT404', message = 'session_not_found',
      detail = 'no session of yours has this id';
  end if;
  return jsonb_build_object('session_id', p_session_id, 'ended', true);
end
$$;
comment on function public.end_my_session(uuid) is
  'Fan: ends one of the caller''s sessions (its refresh tokens stop working; its access token is refused '
  'by Auth at once and expires within the hour). security definer: auth.sessions is Auth''s table. '
  'Errors: not_authenticated (PT401), session_not_found (PT404).';
revoke all on function public.end_my_session(uuid) from public, anon, authenticated, service_role;
grant execute on function public.end_my_session(uuid) to authenticated;
