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

-- The canonical text of one IPv4 or IPv6 address literal (IPv6 compressed and lower-cased, so
-- one address has one spelling), or null for anything else: a port, a mask, a zone, brackets, a
-- name, an empty string. The literal is checked by pattern before the inet cast, so the cast
-- cannot raise (PostgreSQL 15 has no pg_input_is_valid) and no exception block is needed.
create or replace function private.ip_address(p_text text) returns text
language plpgsql immutable
set search_path = ''
as $$
declare
  v text := lower(btrim(p_text));
  v_octet constant text := '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
  v_hex text;
  v_groups text[];
begin
  if v is null or length(v) > 45 then
    return null;
  end if;
  if v ~ ('^(' || v_octet || '\.){3}' || v_octet || '$') then
    return host(v::inet);
  end if;
  if position(':' in v) = 0 or v !~ '^[0-9a-f:.]+$' then
    return null;
  end if;
  -- An IPv4 tail (::ffff:192.0.2.1) stands for the last two groups.
  v_hex := regexp_replace(v, ':(' || v_octet || '\.){3}' || v_octet || '$', ':0:0');
  if v_hex ~ '[.]' or v_hex ~ ':::' or v_hex ~ '::.*::' then
    return null;
  end if;
  v_groups := string_to_array(replace(v_hex, '::', ':'), ':');
  if v_hex ~ '::' then
    -- '::' stands for one or more zero groups: at most 7 written ones, and a lone ':' at an end
    -- is not allowed.
    v_groups := array_remove(v_groups, '');
    if cardinality(v_groups) > 7 or v_hex ~ '^:[^:]' or v_hex ~ '[^:]:$' then
      return null;
    end if;
  elsif cardinality(v_groups) <> 8 then
    return null;
  end if;
  if exists (select 1 from unnest(v_groups) g where g !~ '^[0-9a-f]{1,4}$') then
    return null;
  end if;
  return host(v::inet);
end
$$;
comment on function private.ip_address(text) is
  'The canonical text of an IPv4/IPv6 address literal, or null if the text is not exactly one address.';
revoke all on function private.ip_address(text) from public;
grant execute on function private.ip_address(text) to anon, authenticated, service_role;

-- The client address of the current request, from what the platform in front of PostgREST wrote,
-- never from what the client wrote (docs/local-api.md, "The client's address"):
--   1. the header named by the platform setting client_ip_header (default cf-connecting-ip), when
--      the request has it. On hosted Supabase the API traffic passes Cloudflare, which sets
--      CF-Connecting-IP to the address that connected to it, replacing any value the client sent.
--      A deployment with no such edge in front sets client_ip_header to '' (or JSON null): then a
--      client-sent header of that name is ignored.
--   2. else X-Forwarded-For counted from the RIGHT: proxies append what they saw, so only the
--      rightmost entries are theirs and everything to the left may be the client's own text. The
--      client is the entry client_ip_trusted_hops places left of the rightmost one (default 0: the
--      rightmost entry, written by the proxy nearest to us).
-- X-Real-IP is not read: nothing shows that the hosted edge replaces one a client sends.
-- The chosen value must be exactly one IPv4/IPv6 address, else the result is 'unknown' (one shared
-- anonymous bucket, never an address the client picked).
create or replace function private.request_client_ip() returns text
language plpgsql stable
set search_path = ''
as $$
declare
  v_headers jsonb := coalesce(nullif(current_setting('request.headers', true), ''), '{}')::jsonb;
  v_header text;
  v_hops integer;
  v_xff text[];
begin
  -- One read of both settings (plpgsql keeps the plan: this runs for every anonymous request).
  select coalesce(max(case when s.key = 'client_ip_header' then
                             case when jsonb_typeof(s.value) = 'string' then lower(btrim(s.value #>> '{}')) else '' end
                           end), 'cf-connecting-ip'),
         coalesce(max(case when s.key = 'client_ip_trusted_hops' and jsonb_typeof(s.value) = 'number' then
                             least(greatest((s.value #>> '{}')::numeric, 0), 100)::integer
                           end), 0)
    into v_header, v_hops
    from app.platform_settings s
   where s.key in ('client_ip_header', 'client_ip_trusted_hops');
  if v_header <> '' and v_headers ? v_header then
    return coalesce(private.ip_address(v_headers ->> v_header), 'unknown');
  end if;
  v_xff := string_to_array(v_headers ->> 'x-forwarded-for', ',');
  return coalesce(private.ip_address(v_xff[cardinality(v_xff) - v_hops]), 'unknown');
end
$$;
comment on function private.request_client_ip() is
  'The request''s client address: the platform''s client-address header (setting client_ip_header, default '
  'cf-connecting-ip), else the x-forwarded-for entry client_ip_trusted_hops places left of the rightmost; '
  'unknown when that is not one IP address.';
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
-- raises rate_limited when the sliding-window estimate exceeds the bucket's rule (one bucket at a
-- time: the payment service's own limit, sql/payments/30_service_limits.sql).
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

-- The answer to a request over a bucket's rule (called by check_request_at's statement only for
-- a bucket that is over).
create or replace function private.rate_limited(p_bucket text, p_limit integer, p_elapsed double precision)
returns text
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'PT429', message = 'rate_limited',
    detail = format('at most %s requests per minute (%s); slow down', p_limit,
                    case p_bucket when 'user' then 'per signed-in user' when 'ip' then 'per client address'
                                  else p_bucket || ' per user' end),
    hint = format('retry after %s seconds', ceil(60 * (1 - p_elapsed))::integer);
end
$$;
comment on function private.rate_limited(text, integer, double precision) is
  'security invoker: raises rate_limited (PT429) for a bucket over its per-minute rule, with the retry hint.';
revoke all on function private.rate_limited(text, integer, double precision) from public;
grant execute on function private.rate_limited(text, integer, double precision) to anon, authenticated;

-- The pre-request core, with the time passed in (tests drive windows explicitly). One statement
-- counts (or, read only, reads) every bucket the request falls in -- the subject's own (per user
-- or per address) and, for create_order and exchange_medals, that RPC's -- and reads the
-- previous minute's counts beside them; private.rate_limited raises for the first bucket over
-- its rule (the general one first). The subject is computed once here and compared by the
-- policies' own initplans.
create or replace function private.check_request_at(p_now timestamptz) returns void
language plpgsql
set search_path = ''
as $$
declare
  v_signed_in boolean;
  v_rpc text;
  v_buckets text[];
  v_subject text;
  v_window timestamptz;
  v_elapsed double precision;
begin
  if current_user not in ('anon', 'authenticated') then
    return;  -- service_role (the payment service) and direct connections are not limited
  end if;
  v_subject := private.rate_limit_subject();
  v_signed_in := v_subject like 'u:%';
  v_rpc := substring(coalesce(current_setting('request.path', true), '') from '/rpc/([a-z_]+)/?$');
  v_buckets := case when not v_signed_in then array['ip']
                    when v_rpc in ('create_order', 'exchange_medals') then array['user', v_rpc]
                    else array['user'] end;
  v_window := date_trunc('minute', p_now, 'UTC');
  v_elapsed := extract(epoch from p_now - v_window) / 60.0;
  if current_setting('transaction_read_only') = 'on' then
    -- Read only: nothing can be written; checked as if this request were one more.
    perform private.rate_limited(r.bucket, r.per_minute, v_elapsed)
       from app.rate_limit_rules r
       left join app.rate_limit_hits c
         on c.subject = v_subject and c.bucket = r.bucket and c.window_start = v_window
       left join app.rate_limit_hits p
         on p.subject = v_subject and p.bucket = r.bucket and p.window_start = v_window - interval '1 minute'
      where r.bucket = any(v_buckets)
        and coalesce(p.hits, 0) * (1 - v_elapsed) + coalesce(c.hits, 0) + 1 > r.per_minute
      order by r.bucket = v_buckets[1] desc
      limit 1;
  else
    with cur as (
      insert into app.rate_limit_hits as h (subject, bucket, window_start, hits)
      select v_subject, r.bucket, v_window, 1 from app.rate_limit_rules r
       where r.bucket = any(v_buckets)
       order by r.bucket
      on conflict (subject, bucket, window_start) do update set hits = h.hits + 1
      returning h.bucket, h.hits)
    select private.rate_limited(r.bucket, r.per_minute, v_elapsed) into v_rpc
      from cur
      join app.rate_limit_rules r on r.bucket = cur.bucket
      left join app.rate_limit_hits p
        on p.subject = v_subject and p.bucket = cur.bucket and p.window_start = v_window - interval '1 minute'
     where coalesce(p.hits, 0) * (1 - v_elapsed) + cur.hits > r.per_minute
     order by cur.bucket = v_buckets[1] desc
     limit 1;
  end if;
end
$$;
comment on function private.check_request_at(timestamptz) is
  'security invoker: the rate limits of the current request at p_now in one statement (see private.check_request).';
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
