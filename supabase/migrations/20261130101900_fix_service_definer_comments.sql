-- The comments of three service definers said they take the caller from the JWT; they do not:
-- only service_role may execute them, and they read no claims. Say what they do.

comment on function private.service_expire_orders() is
  'security definer: the body of public.service_expire_orders (service role only: only service_role may execute it); expires every pending order past its deadline, 500 at a time (private.expire_orders).';

comment on function private.service_fulfill_order(uuid, text, text, integer, text) is
  'security definer: the body of public.service_fulfill_order (service role only: only service_role may execute it); the payment service calls it for a verified provider event, and it fulfils the order at now() with fresh randomness.';

comment on function private.service_fail_order(uuid, text) is
  'security definer: the body of public.service_fail_order (service role only: only service_role may execute it); marks a pending order failed or expired at now().';
