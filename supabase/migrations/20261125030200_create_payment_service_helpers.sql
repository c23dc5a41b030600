-- from sql/payments/20_service_helpers.sql
-- What the payment service needs to know about a caller it has authenticated by JWT: their
-- roles and account status (the refund execution endpoint is for admins only).

create or replace function private.user_roles(p_user_id uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'user_id', p_user_id,
    'status', (select p.status from app.profiles p where p.user_id = p_user_id),
    'roles', coalesce((select jsonb_agg(r.role order by r.role) from app.user_roles r
                        where r.user_id = p_user_id), '[]'::jsonb))
$$;
comment on function private.user_roles(uuid) is
  'security definer: a user''s roles and status, for the payment service (service_role only).';
revoke all on function private.user_roles(uuid) from public, anon, authenticated;
grant execute on function private.user_roles(uuid) to service_role;

create or replace function public.service_get_user_roles(p_user_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.user_roles(p_user_id)
$$;
comment on function public.service_get_user_roles(uuid) is
  'Service role: {user_id, status, roles[]} of a user the payment service authenticated by JWT (an unknown user '
  'has no roles and a null status).';
revoke all on function public.service_get_user_roles(uuid) from public, anon, authenticated;
grant execute on function public.service_get_user_roles(uuid) to service_role;
