-- from sql/economy/50_rate_limits.sql
-- Rate limits, enforced inside the database by PostgREST's pre-request function
-- (`pgrst.db_pre_request = 'private.check_request'` on the authenticator role; hosted Supabase
-- honours it too). PostgREST calls it with no arguments in every request transaction, after
-- setting the role, request.jwt.claims, request.method, request.path and request.headers.
--
-- Limits (app.rate_limit_rules): a signed-in user 100 requests/min, an anonymous client address
-- 20/min, and per user create_order 5/min and exchange_medals 10/min. service_role and direct
-- database connections are not limited. Over a limit: PT429 rate_limited (HTTP 429).
--
-- Window: a sliding-window estimate over UTC minutes,
--   estimate = hits(previous minute) * (1 - elapsed fraction of this minute) + hits(this minute),
-- so a burst straddling a minute boundary cannot double the rate as fixed windows allow.
--
-- Storage: app.rate_limit_hits, UNLOGGED, one row per (subject, bucket, minute) incremented by
-- an upsert (HOT updates, fillfactor 50). The row is per user or per address, never global, so
-- it is not a hot row; only one client's own concurrent writes queue on it, which also keeps
-- their count exact. Rows older than the previous minute are useless and deleted by
-- service_sweep_rate_limits() (run it every minute or so; autovacuum reclaims the space).
--
-- Read-only requests: PostgREST runs GET/HEAD and POSTs to STABLE functions READ ONLY, where no
-- table (unlogged included) can be written. Those requests are *checked* against the counters
-- (a client over its limit gets 429 on reads too) but not counted. A request that fails is
-- rolled back with its increment: only committed requests count. Raw-traffic flooding is the
-- API gateway's job; these limits bound what a client can make the database do.
--
-- Definer or invoker: PostgREST runs the hook as the request role (anon or authenticated), and
-- our lint forbids security definer functions that anon can execute. So every function here is
-- SECURITY INVOKER: anon and authenticated hold select/insert/update(hits) on the counters only,
-- and RLS lets a request read and write only its own subject's rows (the subject is derived
-- from the JWT or the request headers, not from an argument). Nothing else becomes reachable.

-- The client address of the current request: first X-Forwarded-For entry (the gateway's view
-- of the client), else X-Real-IP; anything that is not an IPv4/IPv6 literal becomes 'unknown'.
create or replace function private.request_client_ip() returns text
language sql stable
set search_path = ''
as $$
  select case when v.ip ~ '^[0-9A-Fa-f:.]{2,45}$' then lower(v.ip) else 'unknown' end
  from (select btrim(coalesce(nullif(split_part(h.headers ->> 'x-forwarded-for', ',', 1), ''),
                              h.headers ->> 'x-real-ip', '')) as ip
        from (select coalesce(nullif(current_setting('request.headers', true), ''), '{}')::jsonb as headers) h) v
$$;
comment on function private.request_client_ip() is
  'The request''s client address from request.headers (first x-forwarded-for entry, else x-real-ip), or unknown.';
revoke all on function private.request_client_ip() from public;
grant execute on function private.request_client_ip() to anon, authenticated, service_role;

-- Whose counters a request uses: the signed-in user, else the client address.
create or replace function private.rate_limit_subject() returns text
language sql stable
set search_path = ''
as $$
  select coalesce('u:' || auth.uid()::text, 'ip:' || private.request_client_ip())
$$;
comment on function private.rate_limit_subject() is
  'u:<user id> for a signed-in request, ip:<client address> for an anonymous one.';
revoke all on function private.rate_limit_subject() from public;
grant execute on function private.rate_limit_subject() to anon, authenticated, service_role;

revoke all on app.rate_limit_hits, app.rate_limit_rules from public, anon, authenticated, service_role;
grant select, insert, update (hits) on app.rate_limit_hits to anon, authenticated;
grant select on app.rate_limit_rules to anon, authenticated;
grant select, delete on app.rate_limit_hits to service_role;
grant select, insert, update, delete on app.rate_limit_rules to service_role;

drop policy if exists "Clients read their own request counters" on app.rate_limit_hits;
create policy "Clients read their own request counters" on app.rate_limit_hits
  for select to anon, authenticated using (subject = (select private.rate_limit_subject()));
drop policy if exists "Clients count their own requests" on app.rate_limit_hits;
create policy "Clients count their own requests" on app.rate_limit_hits
  for insert to anon, authenticated with check (subject = (select private.rate_limit_subject()) and hits = 1);
drop policy if exists "Clients increment their own request counters" on app.rate_limit_hits;
create policy "Clients increment their own request counters" on app.rate_limit_hits
  for update to anon, authenticated
  using (subject = (select private.rate_limit_subject()))
  with check (subject = (select private.rate_limit_subject()));
drop policy if exists "Anyone can read the rate limit rules" on app.rate_limit_rules;
create policy "Anyone can read the rate limit rules" on app.rate_limit_rules
  for select to anon, authenticated using (true);

-- Counts (unless p_read_only) one request of the current subject in p_bucket at p_now and
-- raises rate_limited when the sliding-window estimate exceeds the bucket's rule.
create or replace function private.rate_limit_take(p_bucket text, p_now timestamptz, p_read_only boolean)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_subject text := private.rate_limit_subject();
  v_limit integer;
  v_window timestamptz := date_trunc('minute', p_now, 'UTC');
  v_elapsed double precision := extract(epoch from p_now - v_window) / 60.0;
  v_prev integer;
  v_cur integer;
  v_estimate double precision;
begin
  select r.per_minute into v_limit from app.rate_limit_rules r where r.bucket = p_bucket;
  if v_limit is null then
    return;
  end if;
  select h.hits into v_prev from app.rate_limit_hits h
   where h.subject = v_subject and h.bucket = p_bucket and h.window_start = v_window - interval '1 minute';
  if p_read_only then
    select h.hits into v_cur from app.rate_limit_hits h
     where h.subject = v_subject and h.bucket = p_bucket and h.window_start = v_window;
    -- This request would be one more than what is counted.
    v_cur := coalesce(v_cur, 0) + 1;
  else
    insert into app.rate_limit_hits as h (subject, bucket, window_start, hits)
    values (v_subject, p_bucket, v_window, 1)
    on conflict (subject, bucket, window_start) do update set hits = h.hits + 1
    returning h.hits into v_cur;
  end if;
  v_estimate := coalesce(v_prev, 0) * (1 - v_elapsed) + v_cur;
  if v_estimate > v_limit then
    raise exception using errcode = 'PT429', message = 'rate_limited',
      detail = format('at most %s requests per minute (%s); slow down', v_limit,
                      case p_bucket when 'user' then 'per signed-in user' when 'ip' then 'per client address'
                                    else p_bucket || ' per user' end),
      hint = format('retry after %s seconds', ceil(60 * (1 - v_elapsed))::integer);
  end if;
end
$$;
comment on function private.rate_limit_take(text, timestamptz, boolean) is
  'security invoker: counts one request of the caller''s subject in a bucket (RLS: own rows only) and raises '
  'rate_limited (PT429) over the bucket''s per-minute rule.';
revoke all on function private.rate_limit_take(text, timestamptz, boolean) from public;
grant execute on function private.rate_limit_take(text, timestamptz, boolean) to anon, authenticated;

-- The pre-request core, with the time passed in (tests drive windows explicitly).
create or replace function private.check_request_at(p_now timestamptz) returns void
language plpgsql
set search_path = ''
as $$
declare
  v_read_only boolean := current_setting('transaction_read_only') = 'on';
  v_signed_in boolean := auth.uid() is not null;
  v_rpc text := substring(coalesce(current_setting('request.path', true), '') from '/rpc/([a-z_]+)/?$');
begin
  if current_user not in ('anon', 'authenticated') then
    return;  -- service_role (the payment service) and direct connections are not limited
  end if;
  perform private.rate_limit_take(case when v_signed_in then 'user' else 'ip' end, p_now, v_read_only);
  if v_signed_in and v_rpc in ('create_order', 'exchange_medals') then
    perform private.rate_limit_take(v_rpc, p_now, v_read_only);
  end if;
end
$$;
comment on function private.check_request_at(timestamptz) is
  'security invoker: the rate limits of the current request at p_now (see private.check_request).';
revoke all on function private.check_request_at(timestamptz) from public;
grant execute on function private.check_request_at(timestamptz) to anon, authenticated, service_role;

create or replace function private.check_request() returns void
language sql
set search_path = ''
as $$
  select private.check_request_at(now())
$$;
comment on function private.check_request() is
  'PostgREST pre-request hook (pgrst.db_pre_request): per-user, per-address and per-RPC rate limits; '
  'raises rate_limited (PT429). security invoker by design: it runs as the request role.';
revoke all on function private.check_request() from public;
grant execute on function private.check_request() to anon, authenticated, service_role;

create or replace function private.sweep_rate_limits(p_now timestamptz) returns integer
language sql
set search_path = ''
as $$
  with gone as (
    delete from app.rate_limit_hits h where h.window_start < date_trunc('minute', p_now, 'UTC') - interval '1 minute'
    returning 1)
  select count(*)::integer from gone
$$;
comment on function private.sweep_rate_limits(timestamptz) is
  'security invoker: deletes rate-limit windows older than the previous minute at p_now.';
revoke all on function private.sweep_rate_limits(timestamptz) from public;
grant execute on function private.sweep_rate_limits(timestamptz) to service_role;

create or replace function public.service_sweep_rate_limits() returns jsonb
language sql
set search_path = ''
as $$
  select jsonb_build_object('deleted', private.sweep_rate_limits(now()))
$$;
comment on function public.service_sweep_rate_limits() is
  'Service role: deletes rate-limit counters older than the previous minute; returns {deleted}. Run every minute.';
revoke all on function public.service_sweep_rate_limits() from public, anon, authenticated;
grant execute on function public.service_sweep_rate_limits() to service_role;

-- from sql/economy/60_spending_caps.sql
-- Minors' spending caps (DESIGN.md section 4): the caps live in app.spending_caps; create_order
-- calls private.check_spending_cap(user, amount, now) before it inserts the order.
-- Counted: the fan's orders created in the same JST day / JST month that are pending (and not
-- past their expiry) or fulfilled (net of refunds). Expired, failed and canceled orders do not count.

revoke all on app.spending_caps from public, anon, authenticated, service_role;
grant select on app.spending_caps to anon, authenticated, service_role;
drop policy if exists "Anyone can read the spending caps" on app.spending_caps;
create policy "Anyone can read the spending caps" on app.spending_caps
  for select to anon, authenticated using (true);

-- Age in whole years on the JST calendar date of p_now.
create or replace function private.jst_age(p_birth_date date, p_now timestamptz) returns integer
language sql immutable
set search_path = ''
as $$
  select extract(year from age((p_now at time zone 'Asia/Tokyo')::date, p_birth_date))::integer
$$;
comment on function private.jst_age(date, timestamptz) is 'Age in whole years on the JST date of p_now.';
revoke all on function private.jst_age(date, timestamptz) from public;
grant execute on function private.jst_age(date, timestamptz) to anon, authenticated, service_role;

create or replace function private.check_spending_cap(p_user uuid, p_amount integer, p_now timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_birth date;
  v_age integer;
  v_cap app.spending_caps;
  v_day_start timestamptz := (date_trunc('day', p_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_month_start timestamptz := (date_trunc('month', p_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_spent_day bigint;
  v_spent_month bigint;
  v_left_day bigint;
  v_left_month bigint;
begin
  select p.birth_date into v_birth from app.profiles p where p.user_id = p_user;
  if v_birth is null then
    raise exception using errcode = 'PT422', message = 'birth_date_required',
      detail = 'set your birth date (update_my_profile) before the first purchase';
  end if;
  v_age := private.jst_age(v_birth, p_now);
  select * into v_cap from app.spending_caps c where v_age between c.min_age and c.max_age;
  if not found then
    return;  -- adults are not capped
  end if;
  if v_cap.daily_cap_jpy = 0 and v_cap.monthly_cap_jpy = 0 then
    raise exception using errcode = 'PT422', message = 'minor_under_13_cannot_purchase',
      detail = format('fans aged %s to %s cannot buy', v_cap.min_age, v_cap.max_age);
  end if;
  -- One minor's orders are checked one at a time, so two concurrent orders cannot both fit
  -- in the same remaining allowance (the second waits, then sees the first).
  perform pg_advisory_xact_lock(hashtextextended('koepon.spending_cap:' || p_user::text, 0));
  select coalesce(sum(o.amount_jpy - o.refunded_jpy) filter (where o.created_at >= v_day_start), 0),
         coalesce(sum(o.amount_jpy - o.refunded_jpy), 0)
    into v_spent_day, v_spent_month
    from app.orders o
   where o.user_id = p_user
     and o.created_at >= v_month_start and o.created_at < v_month_start + interval '1 month'
     and (o.status = 'fulfilled' or (o.status = 'pending' and o.expires_at > p_now));
  v_left_day := greatest(v_cap.daily_cap_jpy - v_spent_day, 0);
  v_left_month := greatest(v_cap.monthly_cap_jpy - v_spent_month, 0);
  if p_amount > least(v_left_day, v_left_month) then
    raise exception using errcode = 'PT422', message = 'spending_cap_exceeded',
      detail = format('fans aged %s to %s may spend ¥%s a day and ¥%s a month: ¥%s left today, ¥%s left this month, '
                      'so ¥%s remaining; this order is ¥%s',
                      v_cap.min_age, v_cap.max_age, v_cap.daily_cap_jpy, v_cap.monthly_cap_jpy, v_left_day,
                      v_left_month, least(v_left_day, v_left_month), p_amount),
      hint = jsonb_build_object('remaining_jpy', least(v_left_day, v_left_month), 'remaining_today_jpy', v_left_day,
                                'remaining_this_month_jpy', v_left_month, 'daily_cap_jpy', v_cap.daily_cap_jpy,
                                'monthly_cap_jpy', v_cap.monthly_cap_jpy)::text;
  end if;
end
$$;
comment on function private.check_spending_cap(uuid, integer, timestamptz) is
  'Minors'' caps from app.spending_caps against the fan''s pending and fulfilled orders of the JST '
  'day and month (p_now); raises birth_date_required, minor_under_13_cannot_purchase, spending_cap_exceeded '
  '(PT422, remaining yen in the detail and as JSON in the hint). Called by private.create_order (a definer), so '
  'it needs no privileges of its own.';
revoke all on function private.check_spending_cap(uuid, integer, timestamptz) from public;

create or replace function public.get_my_spending_limits() returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_now timestamptz := now();
  v_birth date;
  v_age integer;
  v_cap app.spending_caps;
  v_day_start timestamptz := (date_trunc('day', v_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_month_start timestamptz := (date_trunc('month', v_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_spent_day bigint;
  v_spent_month bigint;
begin
  select p.birth_date into v_birth from app.profiles p where p.user_id = v_uid;
  if v_birth is null then
    return jsonb_build_object('birth_date_set', false, 'capped', null);
  end if;
  v_age := private.jst_age(v_birth, v_now);
  select * into v_cap from app.spending_caps c where v_age between c.min_age and c.max_age;
  if not found then
    return jsonb_build_object('birth_date_set', true, 'capped', false);
  end if;
  select coalesce(sum(o.amount_jpy - o.refunded_jpy) filter (where o.created_at >= v_day_start), 0),
         coalesce(sum(o.amount_jpy - o.refunded_jpy), 0)
    into v_spent_day, v_spent_month
    from app.orders o
   where o.user_id = v_uid and o.created_at >= v_month_start
     and (o.status = 'fulfilled' or (o.status = 'pending' and o.expires_at > v_now));
  return jsonb_build_object(
    'birth_date_set', true, 'capped', true,
    'can_purchase', not (v_cap.daily_cap_jpy = 0 and v_cap.monthly_cap_jpy = 0),
    'daily_cap_jpy', v_cap.daily_cap_jpy, 'monthly_cap_jpy', v_cap.monthly_cap_jpy,
    'spent_today_jpy', v_spent_day, 'spent_this_month_jpy', v_spent_month,
    'remaining_jpy', greatest(least(v_cap.daily_cap_jpy - v_spent_day, v_cap.monthly_cap_jpy - v_spent_month), 0));
end
$$;
comment on function public.get_my_spending_limits() is
  'The caller''s minors'' spending allowance: {birth_date_set, capped, can_purchase, daily_cap_jpy, monthly_cap_jpy, '
  'spent_today_jpy, spent_this_month_jpy, remaining_jpy} (capped false for adults). security invoker: RLS '
  'shows the caller''s own orders and profile. Errors: not_authenticated (PT401), account_suspended (PT403).';
revoke all on function public.get_my_spending_limits() from public, anon;
grant execute on function public.get_my_spending_limits() to authenticated;

-- from sql/economy/70_downloads.sql
-- Reward downloads: SQL authorises and logs each download (owner, not revoked, at most 3 per
-- reward per JST day); Storage then lets that fan read that one object for a few minutes, which is
-- exactly when the API's create_signed_url (which reads storage.objects as the caller) works.

revoke all on app.downloads from public, anon, authenticated, service_role;
grant select on app.downloads to authenticated, service_role;
drop policy if exists "Fans can read their own downloads" on app.downloads;
create policy "Fans can read their own downloads" on app.downloads
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "Admins can read every download" on app.downloads;
create policy "Admins can read every download" on app.downloads
  for select to authenticated using ((select private.is_admin()));

-- Storage: an object is readable by a fan only while one of their download authorisations for
-- that exact bucket and path is live and the reward is still theirs and not revoked. Evaluated
-- as the caller, through the policies of app.downloads and app.user_rewards (own rows only).
drop policy if exists "Fans can read a reward object right after an authorised download request" on storage.objects;
create policy "Fans can read a reward object right after an authorised download request" on storage.objects
  for select to authenticated
  using (exists (select 1 from app.downloads d
                  join app.user_rewards r on r.id = d.user_reward_id
                 where d.user_id = (select auth.uid()) and d.bucket = storage.objects.bucket_id
                   and d.path = storage.objects.name and d.expires_at > now() and r.revoked_at is null));

create or replace function private.request_download(
  p_user uuid, p_user_reward_id uuid, p_now timestamptz, p_client_ip text, p_user_agent text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_reward app.user_rewards;
  v_jst date := (p_now at time zone 'Asia/Tokyo')::date;
  v_count integer;
  v_id bigint;
  v_expires timestamptz := p_now + interval '5 minutes';
begin
  -- The reward row lock serialises concurrent requests for one reward, so the count is exact.
  select * into v_reward from app.user_rewards r where r.id = p_user_reward_id and r.user_id = p_user for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'reward_not_found', detail = 'no such reward in your box';
  end if;
  if v_reward.revoked_at is not null then
    raise exception using errcode = 'PT409', message = 'reward_revoked',
      detail = 'this reward was revoked (its order was refunded) and can no longer be downloaded';
  end if;
  select count(*) into v_count from app.downloads d where d.user_reward_id = v_reward.id and d.jst_date = v_jst;
  if v_count >= 3 then
    raise exception using errcode = 'PT429', message = 'download_limit_reached',
      detail = 'a reward can be downloaded 3 times per JST day; try again after midnight JST',
      hint = format('retry after %s', ((v_jst + 1)::timestamp at time zone 'Asia/Tokyo'));
  end if;
  insert into app.downloads (user_id, user_reward_id, bucket, path, jst_date, created_at, expires_at, client_ip,
                             user_agent)
  values (p_user, v_reward.id, v_reward.content_bucket, v_reward.content_path, v_jst, p_now, v_expires,
          left(p_client_ip, 64), left(p_user_agent, 500))
  returning id into v_id;
  return jsonb_build_object('download_id', v_id, 'user_reward_id', v_reward.id, 'bucket', v_reward.content_bucket,
                            'path', v_reward.content_path, 'expires_at', v_expires,
                            'downloads_today', v_count + 1, 'remaining_today', 2 - v_count);
end
$$;
comment on function private.request_download(uuid, uuid, timestamptz, text, text) is
  'security definer: the download core (time passed in): ownership, revocation, 3 per reward per JST day, log row.';
revoke all on function private.request_download(uuid, uuid, timestamptz, text, text) from public;

create or replace function private.request_download(p_user_reward_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_ua text := coalesce(nullif(current_setting('request.headers', true), ''), '{}')::jsonb ->> 'user-agent';
begin
  return private.request_download(v_uid, p_user_reward_id, now(), private.request_client_ip(), v_ua);
end
$$;
comment on function private.request_download(uuid) is
  'security definer: the body of public.request_download; it takes the caller from the JWT (auth.uid()), never a '
  'user id argument, locks the reward and writes the download log, which fans cannot write.';
revoke all on function private.request_download(uuid) from public, anon;
grant execute on function private.request_download(uuid) to authenticated;

create or replace function public.request_download(p_user_reward_id uuid) returns jsonb
language sql
set search_path = ''
as $$
  select private.request_download(p_user_reward_id)
$$;
comment on function public.request_download(uuid) is
  'Authorises one download of a reward in the caller''s box and logs it (client address and user agent); returns '
  '{download_id, user_reward_id, bucket, path, expires_at, downloads_today, remaining_today}. Within 5 minutes the '
  'caller may then create a signed URL for exactly that bucket/path (Storage RLS). Errors: not_authenticated '
  '(PT401), account_suspended (PT403), reward_not_found (PT404), reward_revoked (PT409), download_limit_reached '
  '(PT429).';
revoke all on function public.request_download(uuid) from public, anon;
grant execute on function public.request_download(uuid) to authenticated;

-- from sql/economy/80_refunds.sql
-- Refunds and disputes, database side. The fan asks (request_refund), an admin decides
-- (review_refund), the payment service asks the provider (service_get_refund gives it the order's
-- provider reference) and the provider's refund event completes it (service_record_refund).
-- The provider is authoritative: a provider refund is recorded even without a request (it then
-- completes the order's open request, if any).
--
-- On an order's FIRST recorded refund, partial or full, the order's pulls are void: every reward
-- they put in the box is revoked and the medals the order granted are clawed back through the
-- ledger as far as the fan's balance of that VTuber allows; what could not be taken back is
-- recorded on the refund row (medal_shortfall), never forced below zero.
--
-- Lock order: the order row (serialises everything about one order: sum of refunds, one open
-- request, exactly-once effects), then the fan's medal balance (private.post_medals), then the
-- audit chain.

create or replace function private.refund_json(p_refund_id uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'refund_id', r.id, 'order_id', r.order_id, 'user_id', r.user_id, 'status', r.status, 'reason', r.reason,
    'amount_jpy', r.amount_jpy, 'provider_refund_id', r.provider_refund_id, 'review_reason', r.review_reason,
    'reviewed_by', r.reviewed_by, 'reviewed_at', r.reviewed_at, 'medals_clawed_back', r.medals_clawed_back,
    'medal_shortfall', r.medal_shortfall, 'created_at', r.created_at, 'completed_at', r.completed_at)
  from app.refunds r where r.id = p_refund_id
$$;
comment on function private.refund_json(uuid) is 'security definer: a refund row as JSON.';
revoke all on function private.refund_json(uuid) from public;

-- ---------------------------------------------------------------------------------------
-- request_refund (fan)
-- ---------------------------------------------------------------------------------------
create or replace function private.request_refund(p_user uuid, p_order_id uuid, p_reason text, p_now timestamptz)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
  v_reason text := btrim(coalesce(p_reason, ''));
  v_id uuid;
begin
  if v_reason = '' or char_length(v_reason) > 500 then
    raise exception using errcode = 'PT400', message = 'invalid_refund_reason',
      detail = 'a refund request needs a reason of 1 to 500 characters';
  end if;
  select * into o from app.orders x where x.id = p_order_id and x.user_id = p_user for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  if o.status <> 'fulfilled' then
    raise exception using errcode = 'PT409', message = 'order_not_refundable',
      detail = format('only a paid and fulfilled order can be refunded; this one is %s', o.status);
  end if;
  if o.refunded_jpy >= o.amount_jpy then
    raise exception using errcode = 'PT409', message = 'order_already_refunded',
      detail = 'this order has been refunded in full';
  end if;
  if exists (select 1 from app.refunds r where r.order_id = o.id and r.status in ('requested', 'approved')) then
    raise exception using errcode = 'PT409', message = 'refund_already_requested',
      detail = 'a refund request for this order is already open';
  end if;
  insert into app.refunds (order_id, user_id, reason, status, created_at)
  values (o.id, o.user_id, v_reason, 'requested', p_now)
  returning id into v_id;
  return private.refund_json(v_id);
end
$$;
comment on function private.request_refund(uuid, uuid, text, timestamptz) is
  'security definer: the refund request core (time passed in); the order row lock makes one open request exact.';
revoke all on function private.request_refund(uuid, uuid, text, timestamptz) from public;

create or replace function private.request_refund(p_order_id uuid, p_reason text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  return private.request_refund(v_uid, p_order_id, p_reason, now());
end
$$;
comment on function private.request_refund(uuid, text) is
  'security definer: the body of public.request_refund; it takes the caller from the JWT (auth.uid()), never a '
  'user id argument, and writes app.refunds, which fans cannot write.';
revoke all on function private.request_refund(uuid, text) from public, anon;
grant execute on function private.request_refund(uuid, text) to authenticated;

create or replace function public.request_refund(p_order_id uuid, p_reason text) returns jsonb
language sql
set search_path = ''
as $$
  select private.request_refund(p_order_id, p_reason)
$$;
comment on function public.request_refund(uuid, text) is
  'Asks for a refund of one of the caller''s fulfilled orders with a reason (1-500 characters); an admin reviews '
  'it. Returns the refund {refund_id, order_id, status: requested, ...}. Errors: not_authenticated (PT401), '
  'account_suspended (PT403), invalid_refund_reason (PT400), order_not_found (PT404), order_not_refundable, '
  'order_already_refunded, refund_already_requested (PT409).';
revoke all on function public.request_refund(uuid, text) from public, anon;
grant execute on function public.request_refund(uuid, text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- review_refund (admin)
-- ---------------------------------------------------------------------------------------
create or replace function private.review_refund(
  p_actor uuid, p_refund_id uuid, p_approve boolean, p_reason text, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  r app.refunds;
  o app.orders;
  v_reason text := nullif(btrim(coalesce(p_reason, '')), '');
begin
  if p_approve is null then
    raise exception using errcode = 'PT400', message = 'invalid_decision', detail = 'p_approve is true or false';
  end if;
  if char_length(v_reason) > 1000 or (not p_approve and v_reason is null) then
    raise exception using errcode = 'PT400', message = 'invalid_reason',
      detail = 'a rejection needs a reason; a reason is at most 1000 characters';
  end if;
  select * into r from app.refunds x where x.id = p_refund_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'refund_not_found', detail = 'no such refund';
  end if;
  select * into o from app.orders x where x.id = r.order_id for update;
  select * into r from app.refunds x where x.id = p_refund_id;
  if r.status <> 'requested' then
    raise exception using errcode = 'PT409', message = 'refund_not_pending',
      detail = format('this refund is %s, not awaiting review', r.status);
  end if;
  if p_approve and o.refunded_jpy >= o.amount_jpy then
    raise exception using errcode = 'PT409', message = 'order_already_refunded',
      detail = 'this order has been refunded in full';
  end if;
  update app.refunds x
     set status = case when p_approve then 'approved' else 'rejected' end,
         amount_jpy = case when p_approve then o.amount_jpy - o.refunded_jpy else x.amount_jpy end,
         review_reason = v_reason, reviewed_by = p_actor, reviewed_at = p_now
   where x.id = r.id;
  perform private.append_audit(p_actor, case when p_approve then 'refund.approve' else 'refund.reject' end,
                               'refund', r.id::text,
                               jsonb_build_object('order_id', o.id, 'user_id', o.user_id, 'reason', v_reason,
                                                  'amount_jpy', case when p_approve
                                                                     then o.amount_jpy - o.refunded_jpy end));
  return private.refund_json(r.id);
end
$$;
comment on function private.review_refund(uuid, uuid, boolean, text, timestamptz) is
  'security definer: the admin review core (actor and time passed in), audited as refund.approve / refund.reject.';
revoke all on function private.review_refund(uuid, uuid, boolean, text, timestamptz) from public;

create or replace function private.review_refund(p_refund_id uuid, p_approve boolean, p_reason text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
begin
  return private.review_refund(v_admin, p_refund_id, p_approve, p_reason, now());
end
$$;
comment on function private.review_refund(uuid, boolean, text) is
  'security definer: the body of public.review_refund; it takes the caller from the JWT (auth.uid()), checks they '
  'are an admin, and writes app.refunds and the audit log.';
revoke all on function private.review_refund(uuid, boolean, text) from public, anon;
grant execute on function private.review_refund(uuid, boolean, text) to authenticated;

create or replace function public.review_refund(p_refund_id uuid, p_approve boolean, p_reason text) returns jsonb
language sql
set search_path = ''
as $$
  select private.review_refund(p_refund_id, p_approve, p_reason)
$$;
comment on function public.review_refund(uuid, boolean, text) is
  'Admin: approves (amount = what is left of the payment) or rejects (reason required) a requested refund; '
  'audited as refund.approve / refund.reject. The payment service then refunds approved ones at the provider. '
  'Returns the refund. Errors: not_authenticated (PT401), admin_only (PT403), invalid_decision, invalid_reason '
  '(PT400), refund_not_found (PT404), refund_not_pending, order_already_refunded (PT409).';
revoke all on function public.review_refund(uuid, boolean, text) from public, anon;
grant execute on function public.review_refund(uuid, boolean, text) to authenticated;

-- ---------------------------------------------------------------------------------------
-- service_get_refund / service_list_approved_refunds (payment service)
-- ---------------------------------------------------------------------------------------
create or replace function public.service_get_refund(p_refund_id uuid) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v jsonb;
begin
  select private.refund_json(r.id)
         || jsonb_build_object('provider', o.provider, 'provider_payment_id', o.provider_payment_id,
                               'currency', o.currency, 'order_amount_jpy', o.amount_jpy,
                               'order_refunded_jpy', o.refunded_jpy)
    into v
    from app.refunds r join app.orders o on o.id = r.order_id
   where r.id = p_refund_id;
  if v is null then
    raise exception using errcode = 'PT404', message = 'refund_not_found', detail = 'no such refund';
  end if;
  return v;
end
$$;
comment on function public.service_get_refund(uuid) is
  'Service role: a refund with what the payment service needs to execute it at the provider: {refund_id, '
  'order_id, status, amount_jpy, provider, provider_payment_id, currency, order_amount_jpy, order_refunded_jpy, '
  '...}. Errors: refund_not_found (PT404).';
revoke all on function public.service_get_refund(uuid) from public, anon, authenticated;
grant execute on function public.service_get_refund(uuid) to service_role;
grant execute on function private.refund_json(uuid) to service_role;

-- ---------------------------------------------------------------------------------------
-- service_record_refund (payment service, on the provider's refund event)
-- ---------------------------------------------------------------------------------------
create or replace function private.record_refund(
  p_order_id uuid, p_provider_refund_id text, p_amount integer, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
  r app.refunds;
  v_first boolean;
  v_revoked integer := 0;
  v_balance bigint;
  v_claw bigint := 0;
  v_short bigint := 0;
  v_refund_id uuid;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception using errcode = 'PT400', message = 'invalid_amount', detail = 'p_amount is a positive number of yen';
  end if;
  if p_provider_refund_id is null or char_length(p_provider_refund_id) not between 1 and 255 then
    raise exception using errcode = 'PT400', message = 'invalid_provider_refund_id',
      detail = 'p_provider_refund_id is 1 to 255 characters';
  end if;
  select * into o from app.orders x where x.id = p_order_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  -- Replays of one provider refund: the same answer, no second effect.
  select * into r from app.refunds x where x.provider_refund_id = p_provider_refund_id;
  if found then
    if r.order_id <> o.id or r.amount_jpy <> p_amount then
      raise exception using errcode = 'PT409', message = 'provider_refund_id_reused',
        detail = 'this provider refund id was recorded for another order or amount';
    end if;
    return private.refund_json(r.id)
           || jsonb_build_object('recorded', false, 'order_refunded_jpy', o.refunded_jpy,
                                 'fully_refunded', o.refunded_jpy >= o.amount_jpy, 'rewards_revoked', 0);
  end if;
  if o.status <> 'fulfilled' then
    raise exception using errcode = 'PT409', message = 'order_not_refundable',
      detail = format('only a fulfilled order can be refunded here; this one is %s', o.status);
  end if;
  if o.refunded_jpy + p_amount > o.amount_jpy then
    raise exception using errcode = 'PT409', message = 'refund_exceeds_payment',
      detail = format('the order was paid ¥%s and ¥%s is already refunded: at most ¥%s more', o.amount_jpy,
                      o.refunded_jpy, o.amount_jpy - o.refunded_jpy);
  end if;
  v_first := o.refunded_jpy = 0;
  if v_first then
    update app.user_rewards u set revoked_at = p_now
     where u.pull_id in (select p.id from app.pulls p where p.order_id = o.id) and u.revoked_at is null;
    get diagnostics v_revoked = row_count;
    perform private.lock_medal_balances(array[o.user_id], array[o.vtuber_id]);
    select b.balance into v_balance from app.medal_balances b
     where b.user_id = o.user_id and b.vtuber_id = o.vtuber_id;
    v_claw := least(coalesce(v_balance, 0), o.medals);
    v_short := o.medals - v_claw;
  end if;
  -- Complete the order's open request if there is one, else record the provider's own refund.
  select * into r from app.refunds x where x.order_id = o.id and x.status in ('requested', 'approved')
   order by x.created_at limit 1;
  if found then
    update app.refunds x set status = 'completed', amount_jpy = p_amount, provider_refund_id = p_provider_refund_id,
                             medals_clawed_back = v_claw, medal_shortfall = v_short, completed_at = p_now
     where x.id = r.id;
    v_refund_id := r.id;
  else
    insert into app.refunds (order_id, user_id, reason, status, amount_jpy, provider_refund_id, medals_clawed_back,
                             medal_shortfall, created_at, completed_at)
    values (o.id, o.user_id, null, 'completed', p_amount, p_provider_refund_id, v_claw, v_short, p_now, p_now)
    returning id into v_refund_id;
  end if;
  if v_claw > 0 then
    perform private.post_medals(o.user_id, o.vtuber_id, -v_claw, 'refund_clawback', o.id, null,
                                'refund ' || v_refund_id::text, p_now);
  end if;
  update app.orders x set refunded_jpy = x.refunded_jpy + p_amount where x.id = o.id;
  perform private.append_audit(null, 'refund.record', 'refund', v_refund_id::text,
                               jsonb_build_object('order_id', o.id, 'user_id', o.user_id, 'amount_jpy', p_amount,
                                                  'provider_refund_id', p_provider_refund_id,
                                                  'rewards_revoked', v_revoked, 'medals_clawed_back', v_claw,
                                                  'medal_shortfall', v_short));
  return private.refund_json(v_refund_id)
         || jsonb_build_object('recorded', true, 'order_refunded_jpy', o.refunded_jpy + p_amount,
                               'fully_refunded', o.refunded_jpy + p_amount >= o.amount_jpy,
                               'rewards_revoked', v_revoked);
exception when unique_violation then
  -- The same provider refund id recorded concurrently for another order.
  raise exception using errcode = 'PT409', message = 'provider_refund_id_reused',
    detail = 'this provider refund id was recorded for another order or amount';
end
$$;
comment on function private.record_refund(uuid, text, integer, timestamptz) is
  'security definer: the provider refund core (time passed in): idempotent per provider refund id, sum <= paid, '
  'first refund revokes the order''s rewards and claws back its medals as far as the balance allows.';
revoke all on function private.record_refund(uuid, text, integer, timestamptz) from public;

create or replace function private.service_record_refund(p_order_id uuid, p_provider_refund_id text, p_amount integer)
returns jsonb
language sql security definer
set search_path = ''
as $$
  select private.record_refund(p_order_id, p_provider_refund_id, p_amount, now())
$$;
comment on function private.service_record_refund(uuid, text, integer) is
  'security definer: the body of public.service_record_refund (service role only); writes refunds, rewards and '
  'the medal ledger.';
revoke all on function private.service_record_refund(uuid, text, integer) from public, anon, authenticated;
grant execute on function private.service_record_refund(uuid, text, integer) to service_role;

create or replace function public.service_record_refund(p_order_id uuid, p_provider_refund_id text, p_amount integer)
returns jsonb
language sql
set search_path = ''
as $$
  select private.service_record_refund(p_order_id, p_provider_refund_id, p_amount)
$$;
comment on function public.service_record_refund(uuid, text, integer) is
  'Service role, on the provider''s refund event: records a refund of p_amount yen once per provider refund id '
  '(a replay returns recorded: false). The sum of refunds never exceeds the payment. The first refund of an '
  'order revokes its rewards and claws back its medals as far as the balance allows (medal_shortfall records '
  'the rest); it completes the order''s open request if any; audited as refund.record. Returns the refund with '
  '{recorded, order_refunded_jpy, fully_refunded, rewards_revoked}. Errors: invalid_amount, '
  'invalid_provider_refund_id (PT400), order_not_found (PT404), order_not_refundable, refund_exceeds_payment, '
  'provider_refund_id_reused (PT409).';
revoke all on function public.service_record_refund(uuid, text, integer) from public, anon, authenticated;
grant execute on function public.service_record_refund(uuid, text, integer) to service_role;

-- ---------------------------------------------------------------------------------------
-- service_record_dispute (payment service, on the provider's dispute events)
-- ---------------------------------------------------------------------------------------
revoke all on app.disputes from public, anon, authenticated, service_role;
grant select on app.disputes to authenticated, service_role;
drop policy if exists "Admins can read every dispute" on app.disputes;
create policy "Admins can read every dispute" on app.disputes
  for select to authenticated using ((select private.is_admin()));

create or replace function private.record_dispute(
  p_order_id uuid, p_provider_dispute_id text, p_status text, p_now timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  o app.orders;
  d app.disputes;
  v_status text := lower(btrim(coalesce(p_status, '')));
  v_created boolean := false;
  v_changed boolean := false;
begin
  if p_provider_dispute_id is null or char_length(p_provider_dispute_id) not between 1 and 255 then
    raise exception using errcode = 'PT400', message = 'invalid_provider_dispute_id',
      detail = 'p_provider_dispute_id is 1 to 255 characters';
  end if;
  if v_status !~ '^[a-z][a-z_]{0,39}$' then
    raise exception using errcode = 'PT400', message = 'invalid_dispute_status',
      detail = 'p_status is the provider''s status word, e.g. needs_response, under_review, won, lost';
  end if;
  select * into o from app.orders x where x.id = p_order_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  select * into d from app.disputes x where x.provider_dispute_id = p_provider_dispute_id for update;
  if found and d.order_id <> o.id then
    raise exception using errcode = 'PT409', message = 'provider_dispute_id_reused',
      detail = 'this provider dispute id was recorded for another order';
  end if;
  if not found then
    insert into app.disputes (provider_dispute_id, order_id, user_id, status, created_at, updated_at)
    values (p_provider_dispute_id, o.id, o.user_id, v_status, p_now, p_now);
    v_created := true;
  elsif d.status <> v_status then
    update app.disputes x set status = v_status, updated_at = p_now where x.provider_dispute_id = d.provider_dispute_id;
    v_changed := true;
  end if;
  if not o.disputed then
    update app.orders x set disputed = true where x.id = o.id;
  end if;
  update app.profiles p set flagged = true where p.user_id = o.user_id and not p.flagged;
  if v_created or v_changed then
    perform private.append_audit(null, 'dispute.record', 'order', o.id::text,
                                 jsonb_build_object('provider_dispute_id', p_provider_dispute_id, 'status', v_status,
                                                    'previous_status', d.status, 'user_id', o.user_id));
  end if;
  return jsonb_build_object('provider_dispute_id', p_provider_dispute_id, 'order_id', o.id, 'user_id', o.user_id,
                            'status', v_status, 'created', v_created, 'changed', v_changed,
                            'order_disputed', true, 'user_flagged', true);
exception when unique_violation then
  raise exception using errcode = 'PT409', message = 'provider_dispute_id_reused',
    detail = 'this provider dispute id was recorded concurrently for another order';
end
$$;
comment on function private.record_dispute(uuid, text, text, timestamptz) is
  'security definer: the dispute core (time passed in): records or updates a provider dispute and flags order and fan.';
revoke all on function private.record_dispute(uuid, text, text, timestamptz) from public;

create or replace function private.service_record_dispute(p_order_id uuid, p_provider_dispute_id text, p_status text)
returns jsonb
language sql security definer
set search_path = ''
as $$
  select private.record_dispute(p_order_id, p_provider_dispute_id, p_status, now())
$$;
comment on function private.service_record_dispute(uuid, text, text) is
  'security definer: the body of public.service_record_dispute (service role only); writes disputes, orders and '
  'profiles.';
revoke all on function private.service_record_dispute(uuid, text, text) from public, anon, authenticated;
grant execute on function private.service_record_dispute(uuid, text, text) to service_role;

create or replace function public.service_record_dispute(p_order_id uuid, p_provider_dispute_id text, p_status text)
returns jsonb
language sql
set search_path = ''
as $$
  select private.service_record_dispute(p_order_id, p_provider_dispute_id, p_status)
$$;
comment on function public.service_record_dispute(uuid, text, text) is
  'Service role, on the provider''s dispute (chargeback) events: records the dispute and its latest status once per '
  'provider dispute id, flags the order (disputed) and the fan (profiles.flagged); audited as dispute.record. '
  'Returns {provider_dispute_id, order_id, user_id, status, created, changed, order_disputed, user_flagged}. '
  'Errors: invalid_provider_dispute_id, invalid_dispute_status (PT400), order_not_found (PT404), '
  'provider_dispute_id_reused (PT409).';
revoke all on function public.service_record_dispute(uuid, text, text) from public, anon, authenticated;
grant execute on function public.service_record_dispute(uuid, text, text) to service_role;

-- from sql/economy/90_transparency.sql
-- Transparency: observed draws against the published odds, with Pearson's chi-square
-- goodness-of-fit test computed in SQL.
--
-- Statistic: X2 = sum over categories (observed - expected)^2 / expected, expected = n * rate_ppm / 1e6,
-- over the draws made with the published table (pity draws use a restricted table and are
-- reported separately, not tested). Degrees of freedom k - 1 (k categories, all rates > 0).
-- p-value = P(chi2_df >= X2) = Q(df/2, X2/2), Q the regularized upper incomplete gamma function:
--   x < a + 1: Q = 1 - P, P by its power series  P = x^a e^-x / Gamma(a) * sum_n x^n / (a (a+1) ... (a+n));
--   otherwise: Q by its continued fraction (modified Lentz), Numerical Recipes 6.2;
--   ln Gamma by Lanczos (g = 7, 9 terms, ~1e-15 relative error). tests/economy/test_edges_*.py
--   checks it against scipy.stats.chi2.sf. The approximation is reliable when every expected
--   count is at least 5 (reported as min_expected / reliable).

create or replace function private.ln_gamma(p_z double precision) returns double precision
language plpgsql immutable strict
set search_path = ''
as $$
declare
  c constant double precision[] := array[0.99999999999980993, 676.5203681218851, -1259.1392167224028,
    771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
    9.9843695780195716e-6, 1.5056327351493116e-7];
  z double precision := p_z;
  x double precision;
  t double precision;
begin
  if z < 0.5 then
    -- reflection: Gamma(z) Gamma(1 - z) = pi / sin(pi z)
    return ln(pi() / abs(sin(pi() * z))) - private.ln_gamma(1 - z);
  end if;
  z := z - 1;
  x := c[1];
  for i in 1 .. 8 loop
    x := x + c[i + 1] / (z + i);
  end loop;
  t := z + 7.5;
  return 0.5 * ln(2 * pi()) + (z + 0.5) * ln(t) - t + ln(x);
end
$$;
comment on function private.ln_gamma(double precision) is 'ln |Gamma(z)| (Lanczos approximation, g = 7, 9 terms).';
revoke all on function private.ln_gamma(double precision) from public;
grant execute on function private.ln_gamma(double precision) to anon, authenticated, service_role;

create or replace function private.gamma_q(p_a double precision, p_x double precision) returns double precision
language plpgsql immutable strict
set search_path = ''
as $$
declare
  eps constant double precision := 1e-15;
  tiny constant double precision := 1e-300;
  v_log_front double precision;
  v_sum double precision;
  v_del double precision;
  v_ap double precision;
  b double precision;
  c double precision;
  d double precision;
  h double precision;
  an double precision;
begin
  if p_a <= 0 or p_x < 0 then
    raise exception using errcode = 'PT400', message = 'invalid_argument', detail = 'gamma_q needs a > 0 and x >= 0';
  end if;
  if p_x = 0 then
    return 1;
  end if;
  v_log_front := -p_x + p_a * ln(p_x) - private.ln_gamma(p_a);
  if p_x < p_a + 1 then
    v_ap := p_a;
    v_sum := 1 / p_a;
    v_del := v_sum;
    for n in 1 .. 100000 loop
      v_ap := v_ap + 1;
      v_del := v_del * p_x / v_ap;
      v_sum := v_sum + v_del;
      exit when abs(v_del) < abs(v_sum) * eps;
    end loop;
    if v_log_front < -700 then
      return 1;
    end if;
    return greatest(0, least(1, 1 - v_sum * exp(v_log_front)));
  end if;
  if v_log_front < -700 then
    return 0;  -- far in the tail: below double precision's useful range
  end if;
  b := p_x + 1 - p_a;
  c := 1 / tiny;
  d := 1 / b;
  h := d;
  for i in 1 .. 100000 loop
    an := -i * (i - p_a);
    b := b + 2;
    d := an * d + b;
    if abs(d) < tiny then d := tiny; end if;
    c := b + an / c;
    if abs(c) < tiny then c := tiny; end if;
    d := 1 / d;
    h := h * d * c;
    exit when abs(d * c - 1) < eps;
  end loop;
  return greatest(0, least(1, exp(v_log_front + ln(h))));
end
$$;
comment on function private.gamma_q(double precision, double precision) is
  'Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a): series for x < a + 1, else continued fraction.';
revoke all on function private.gamma_q(double precision, double precision) from public;
grant execute on function private.gamma_q(double precision, double precision) to anon, authenticated, service_role;

create or replace function private.chi_square_p_value(p_statistic double precision, p_df integer)
returns double precision
language sql immutable strict
set search_path = ''
as $$
  select case when p_df < 1 then null else private.gamma_q(p_df / 2.0, greatest(p_statistic, 0) / 2.0) end
$$;
comment on function private.chi_square_p_value(double precision, integer) is
  'P(chi-square with p_df degrees of freedom >= p_statistic).';
revoke all on function private.chi_square_p_value(double precision, integer) from public;
grant execute on function private.chi_square_p_value(double precision, integer) to anon, authenticated, service_role;

-- Pearson's test over [{expected, observed}, ...] (jsonb array).
create or replace function private.chi_square_test(p_cells jsonb) returns jsonb
language sql immutable strict
set search_path = ''
as $$
  select jsonb_build_object(
    'statistic', s.stat, 'df', s.k - 1,
    'p_value', case when s.n > 0 then private.chi_square_p_value(s.stat, s.k - 1) end,
    'min_expected', s.min_expected,
    'reliable', s.n > 0 and s.k > 1 and s.min_expected >= 5)
  from (select count(*)::integer as k, coalesce(sum((c ->> 'observed')::double precision), 0) as n,
               coalesce(sum(((c ->> 'observed')::double precision - (c ->> 'expected')::double precision) ^ 2
                            / nullif((c ->> 'expected')::double precision, 0)), 0) as stat,
               min((c ->> 'expected')::double precision) as min_expected
        from jsonb_array_elements(p_cells) c) s
$$;
comment on function private.chi_square_test(jsonb) is
  'Pearson chi-square goodness of fit over cells {expected, observed}: {statistic, df, p_value, min_expected, reliable}.';
revoke all on function private.chi_square_test(jsonb) from public;
grant execute on function private.chi_square_test(jsonb) to anon, authenticated, service_role;

-- Draw counts per item of a published or ended gacha. Anonymous callers count through RLS
-- (the policy and column grants below: no user, seed or roll is visible); signed-in callers,
-- whose table grant on app.pulls covers every column and whose policy shows only their own
-- pulls, count through this definer (which anon cannot execute).
grant select (gacha_id, gacha_item_id, rarity, pity) on app.pulls to anon;
drop policy if exists "Anyone can count the draws of disclosed gachas" on app.pulls;
create policy "Anyone can count the draws of disclosed gachas" on app.pulls
  for select to anon using (exists (select 1 from app.gachas g where g.id = gacha_id));

create or replace function private.gacha_draw_counts(p_gacha_id uuid)
returns table (gacha_item_id uuid, pity boolean, draws bigint)
language sql stable security definer
set search_path = ''
as $$
  select p.gacha_item_id, p.pity, count(*)
  from app.pulls p
  where p.gacha_id = p_gacha_id
    and exists (select 1 from app.gachas g where g.id = p_gacha_id and g.status in ('published', 'ended'))
  group by p.gacha_item_id, p.pity
$$;
comment on function private.gacha_draw_counts(uuid) is
  'security definer: draw counts per item (and pity flag) of a published or ended gacha, for signed-in callers, '
  'whose RLS shows only their own pulls; no user, seed or roll leaves it.';
revoke all on function private.gacha_draw_counts(uuid) from public;
grant execute on function private.gacha_draw_counts(uuid) to authenticated, service_role;

create or replace function public.get_rate_audit(p_gacha_id uuid) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_gacha record;
  v_counts jsonb;
  v_items jsonb;
  v_rarities jsonb;
  v_n bigint;
  v_pity bigint;
begin
  select g.id, g.title, g.status into v_gacha from public.gachas g where g.id = p_gacha_id;
  if v_gacha.id is null then
    raise exception using errcode = 'PT404', message = 'gacha_not_found',
      detail = 'no published or ended gacha with this id';
  end if;
  if current_user = 'anon' then
    select coalesce(jsonb_agg(jsonb_build_array(c.gacha_item_id, c.pity, c.draws)), '[]') into v_counts
    from (select p.gacha_item_id, p.pity, count(*) as draws from app.pulls p
          where p.gacha_id = p_gacha_id group by 1, 2) c;
  else
    select coalesce(jsonb_agg(jsonb_build_array(c.gacha_item_id, c.pity, c.draws)), '[]') into v_counts
    from private.gacha_draw_counts(p_gacha_id) c;
  end if;
  with counts as (
    select (e ->> 0)::uuid as item_id, (e ->> 1)::boolean as pity, (e ->> 2)::bigint as draws
    from jsonb_array_elements(v_counts) e)
  select coalesce(sum(draws) filter (where not pity), 0), coalesce(sum(draws) filter (where pity), 0)
    into v_n, v_pity from counts;
  with counts as (
    select (e ->> 0)::uuid as item_id, (e ->> 1)::boolean as pity, (e ->> 2)::bigint as draws
    from jsonb_array_elements(v_counts) e),
  items as (
    select i.id, i.name, i.rarity, i.rarity_rank, i.rate_ppm, i.sort_order,
           coalesce((select sum(c.draws) from counts c where c.item_id = i.id and not c.pity), 0) as observed,
           coalesce((select sum(c.draws) from counts c where c.item_id = i.id and c.pity), 0) as pity_observed
    from public.gacha_items i where i.gacha_id = p_gacha_id)
  select jsonb_agg(jsonb_build_object(
           'gacha_item_id', i.id, 'name', i.name, 'rarity', i.rarity, 'rate_ppm', i.rate_ppm,
           'odds_percent', round(i.rate_ppm / 10000.0, 4), 'expected', round(v_n * i.rate_ppm / 1e6, 6),
           'observed', i.observed,
           'observed_percent', case when v_n > 0 then round(100.0 * i.observed / v_n, 4) end,
           'pity_draws', i.pity_observed)
         order by i.rarity_rank desc, i.sort_order, i.name),
         (select jsonb_agg(jsonb_build_object(
                   'rarity', r.rarity, 'rate_ppm', r.rate_ppm, 'odds_percent', round(r.rate_ppm / 10000.0, 4),
                   'expected', round(v_n * r.rate_ppm / 1e6, 6), 'observed', r.observed,
                   'observed_percent', case when v_n > 0 then round(100.0 * r.observed / v_n, 4) end,
                   'pity_draws', r.pity_observed)
                 order by r.rank desc)
          from (select x.rarity, max(x.rarity_rank) as rank, sum(x.rate_ppm) as rate_ppm, sum(x.observed) as observed,
                       sum(x.pity_observed) as pity_observed
                from items x group by x.rarity) r)
    into v_items, v_rarities
  from items i;
  return jsonb_build_object(
    'gacha_id', v_gacha.id, 'title', v_gacha.title, 'status', v_gacha.status,
    'draws', v_n, 'pity_draws', v_pity,
    'by_rarity', coalesce(v_rarities, '[]'), 'by_item', coalesce(v_items, '[]'),
    'rarity_test', private.chi_square_test(coalesce(v_rarities, '[]')),
    'item_test', private.chi_square_test(coalesce(v_items, '[]')),
    'method', 'Pearson chi-square of non-pity draws against the published rates; p_value = Q(df/2, statistic/2)');
end
$$;
comment on function public.get_rate_audit(uuid) is
  'Anyone: a published or ended gacha''s observed draws against its published odds, per rarity and per item '
  '(expected, observed, percent; pity draws counted apart), with Pearson chi-square tests {statistic, df, '
  'p_value, min_expected, reliable}. security invoker: anon counts through RLS, signed-in callers through '
  'private.gacha_draw_counts. Errors: gacha_not_found (PT404).';
revoke all on function public.get_rate_audit(uuid) from public, anon, authenticated, service_role;
grant execute on function public.get_rate_audit(uuid) to anon, authenticated, service_role;
