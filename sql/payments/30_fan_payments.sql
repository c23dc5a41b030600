-- What the payment service asks before it starts a payment for a fan: the database decides that
-- the fan may pay now, exactly as it decides whether they may create an order. A fan suspended
-- after creating an order must not be able to pay for it at a provider.

create or replace function private.service_prepare_fan_payment(p_order_id uuid, p_user_id uuid) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if p_user_id is null then
    raise exception using errcode = 'PT401', message = 'not_authenticated', detail = 'sign in first';
  end if;
  if exists (select 1 from app.profiles p where p.user_id = p_user_id and p.status <> 'active') then
    raise exception using errcode = 'PT403', message = 'account_suspended',
      detail = 'this account is suspended and cannot pay';
  end if;
  return private.prepare_payment(p_order_id, p_user_id, now());
end
$$;
comment on function private.service_prepare_fan_payment(uuid, uuid) is
  'security definer: the body of public.service_prepare_fan_payment (service role only); reads profiles and orders.';
revoke all on function private.service_prepare_fan_payment(uuid, uuid) from public, anon, authenticated;
grant execute on function private.service_prepare_fan_payment(uuid, uuid) to service_role;

create or replace function public.service_prepare_fan_payment(p_order_id uuid, p_user_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.service_prepare_fan_payment(p_order_id, p_user_id)
$$;
comment on function public.service_prepare_fan_payment(uuid, uuid) is
  'Service role, before starting a payment for a fan the service authenticated (p_user_id): refuses a suspended '
  'account, then returns the order as service_prepare_payment does (it must be the fan''s). Errors: '
  'not_authenticated (PT401), account_suspended (PT403), order_not_found (PT404).';
revoke all on function public.service_prepare_fan_payment(uuid, uuid) from public, anon, authenticated;
grant execute on function public.service_prepare_fan_payment(uuid, uuid) to service_role;
