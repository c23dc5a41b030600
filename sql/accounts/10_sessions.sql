-- A fan's own sign-in sessions (auth.sessions): hosted Auth has no endpoint that lists them, so
-- these definer functions read and end the caller's rows. Ending a session deletes it, and its
-- refresh tokens with it (on delete cascade), so a device holding one can no longer refresh.

create or replace function private.my_sessions() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'id', s.id, 'created_at', s.created_at, 'updated_at', s.updated_at,
             'refreshed_at', s.refreshed_at::timestamptz,
             'last_active_at', greatest(s.created_at, s.updated_at, s.refreshed_at::timestamptz),
             'user_agent', s.user_agent, 'ip', host(s.ip), 'aal', s.aal::text,
             'is_current', s.id::text = coalesce(auth.jwt() ->> 'session_id', ''))
           order by greatest(s.created_at, s.updated_at, s.refreshed_at::timestamptz) desc, s.id)
      from auth.sessions s
     where s.user_id = v_uid), '[]'::jsonb);
end
$$;
comment on function private.my_sessions() is
  'security definer: reads the caller''s rows of auth.sessions, which API roles cannot read.';
revoke all on function private.my_sessions() from public;
grant execute on function private.my_sessions() to authenticated;

create or replace function public.my_sessions() returns jsonb
language sql stable
set search_path = ''
as $$ select private.my_sessions() $$;
comment on function public.my_sessions() is
  'Fan: the caller''s sign-in sessions, newest activity first: [{id, created_at, updated_at, refreshed_at, '
  'last_active_at, user_agent, ip, aal, is_current}]. Errors: not_authenticated (PT401).';
revoke all on function public.my_sessions() from public, anon, authenticated, service_role;
grant execute on function public.my_sessions() to authenticated;

create or replace function private.end_my_session(p_session_id uuid) returns jsonb
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
comment on function private.end_my_session(uuid) is
  'security definer: deletes one of the caller''s rows of auth.sessions (Auth''s table).';
revoke all on function private.end_my_session(uuid) from public;
grant execute on function private.end_my_session(uuid) to authenticated;

create or replace function public.end_my_session(p_session_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.end_my_session(p_session_id) $$;
comment on function public.end_my_session(uuid) is
  'Fan: ends one of the caller''s sessions (its refresh tokens stop working; Auth refuses its access token at '
  'once, /rest/v1 until it expires within the hour). Returns {session_id, ended}. Errors: not_authenticated '
  '(PT401), session_not_found (PT404).';
revoke all on function public.end_my_session(uuid) from public, anon, authenticated, service_role;
grant execute on function public.end_my_session(uuid) to authenticated;
