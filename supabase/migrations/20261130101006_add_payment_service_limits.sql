-- from sql/payments/30_service_limits.sql
-- The payment service's own database calls that are not about one order: per-fan rate limits of
-- its /payments/* endpoints and its readiness probe. Both are service_role only.

-- Counts one /payments/* request of p_user_id in the `payments` bucket with the API's own limiter
-- (private.rate_limit_take, sql/economy/50_rate_limits.sql): the same sliding window, the same
-- counters table, so every instance of the stateless service shares one count per fan.
-- rate_limit_take counts for the subject of the current request (auth.uid()); this request is the
-- service's, made on behalf of a fan, so the fan's claims stand in for the call and the service's
-- own are put back afterwards. Definer: the service role may not write the counters itself.
create or replace function private.take_payment_request(p_user_id uuid, p_now timestamptz) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_claims text := current_setting('request.jwt.claims', true);
begin
  if p_user_id is null then
    raise exception using errcode = 'PT400', message = 'invalid_user_id', detail = 'p_user_id is required';
  end if;
  perform set_config('request.jwt.claims',
                     jsonb_build_object('sub', p_user_id, 'role', 'authenticated')::text, true);
  perform private.rate_limit_take('payments', p_now, false);
  perform set_config('request.jwt.claims', coalesce(v_claims, ''), true);
end
$$;
comment on function private.take_payment_request(uuid, timestamptz) is
  'security definer: counts one payment-service request of a fan in the payments bucket; raises '
  'rate_limited (PT429) over app.rate_limit_rules(payments). The service role cannot write the counters.';
revoke all on function private.take_payment_request(uuid, timestamptz) from public;
grant execute on function private.take_payment_request(uuid, timestamptz) to service_role;

create or replace function public.service_take_payment_request(p_user_id uuid) returns jsonb
language plpgsql
set search_path = ''
as $$
begin
  perform private.take_payment_request(p_user_id, now());
  return jsonb_build_object('allowed', true);
end
$$;
comment on function public.service_take_payment_request(uuid) is
  'Service role: counts one /payments/* request of a fan against the payments rate limit (per fan, per '
  'minute, sliding window); returns {allowed: true}. Errors: rate_limited (PT429), invalid_user_id (PT400).';
revoke all on function public.service_take_payment_request(uuid) from public, anon, authenticated;
grant execute on function public.service_take_payment_request(uuid) to service_role;

-- The readiness probe: answers only when the API, the pool and the database all do.
create or replace function public.service_ping() returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object('ok', true, 'at', now())
$$;
comment on function public.service_ping() is
  'Service role: {ok: true, at} from the database; the payment service''s /ready calls it.';
revoke all on function public.service_ping() from public, anon, authenticated;
grant execute on function public.service_ping() to service_role;

insert into app.rate_limit_rules (bucket, per_minute, description) values
  ('payments', 20, 'payment service /payments/* requests per signed-in fan')
on conflict (bucket) do nothing;
