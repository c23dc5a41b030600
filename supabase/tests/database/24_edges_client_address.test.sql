-- The client address of a request (private.request_client_ip: the anonymous rate-limit key and the
-- download log's address) comes only from what the platform in front of PostgREST wrote: the
-- platform's client-address header (setting client_ip_header, default cf-connecting-ip), else the
-- X-Forwarded-For entry client_ip_trusted_hops places left of the rightmost one. Whatever a client
-- writes to the left of X-Forwarded-For, or in X-Real-IP, changes nothing.
begin;
select plan(31);

create function pg_temp.ip(p_headers jsonb) returns text language sql as $$
  select set_config('request.headers', p_headers::text, true);
  select private.request_client_ip()
$$;
-- Settings are written as the migration owner (tests.as_postgres); addresses are read as anon,
-- as PostgREST asks.

select tests.clear_authentication();
select set_config('request.path', '/rpc/get_gacha', true), set_config('request.method', 'POST', true);

-- ---- defaults as on hosted: cf-connecting-ip, else the rightmost x-forwarded-for entry ----
select is(pg_temp.ip('{"x-forwarded-for": "198.51.100.7"}'), '198.51.100.7',
          'one x-forwarded-for entry (what the local API writes)');
select is(pg_temp.ip('{"x-forwarded-for": "203.0.113.66, 198.51.100.7"}'), '198.51.100.7',
          'a client-prepended x-forwarded-for entry does not change the address');
select is(pg_temp.ip('{"x-forwarded-for": "10.1.2.3,203.0.113.66 ,  198.51.100.7"}'), '198.51.100.7',
          'nor do several, with any spacing');
select is(pg_temp.ip('{"x-forwarded-for": "203.0.113.66, 198.51.100.7", "x-real-ip": "203.0.113.67"}'), '198.51.100.7',
          'x-real-ip is not read when x-forwarded-for is there');
select is(pg_temp.ip('{"x-real-ip": "203.0.113.67"}'), 'unknown',
          'nor alone: nothing shows the platform replaces a client''s x-real-ip');
select is(pg_temp.ip('{"cf-connecting-ip": "192.0.2.44", "x-forwarded-for": "203.0.113.66, 192.0.2.44, 10.0.0.9"}'),
          '192.0.2.44', 'cf-connecting-ip, which Cloudflare sets, comes first');
select is(pg_temp.ip('{"cf-connecting-ip": "2001:DB8:0:0:0:0:0:7"}'), '2001:db8::7',
          'an IPv6 address has one spelling (the rate-limit key cannot be varied by writing it differently)');
select is(pg_temp.ip('{"cf-connecting-ip": "garbage", "x-forwarded-for": "198.51.100.7"}'), 'unknown',
          'a malformed platform header is unknown, not a fall back to a weaker source');
select is(pg_temp.ip('{}'), 'unknown', 'no header at all');
select is(pg_temp.ip('{"x-forwarded-for": ""}'), 'unknown', 'an empty x-forwarded-for');

-- ---- malformed rightmost entries are unknown; only that entry matters ----
select is(pg_temp.ip('{"x-forwarded-for": "198.51.100.7, <script>"}'), 'unknown', 'markup');
select is(pg_temp.ip('{"x-forwarded-for": "198.51.100.7, 198.51.100.8:443"}'), 'unknown', 'an address with a port');
select is(pg_temp.ip('{"x-forwarded-for": "198.51.100.7, 198.51.100.0/24"}'), 'unknown', 'a network');
select is(pg_temp.ip('{"x-forwarded-for": "198.51.100.7, 256.1.1.1"}'), 'unknown', 'an octet out of range');
select is(pg_temp.ip('{"x-forwarded-for": "198.51.100.7, 1::2::3"}'), 'unknown', 'two ::');
select is(pg_temp.ip('{"x-forwarded-for": "198.51.100.7, [2001:db8::1]"}'), 'unknown', 'a bracketed IPv6 address');
select is(pg_temp.ip('{"x-forwarded-for": "198.51.100.7,"}'), 'unknown', 'an empty rightmost entry');
select is(pg_temp.ip('{"x-forwarded-for": "garbage, ::ffff:192.0.2.1"}'), '::ffff:192.0.2.1',
          'an IPv4-mapped IPv6 address is an address; garbage to its left is ignored');

-- ---- a deployment with more trusted proxies appending to x-forwarded-for ----
select tests.as_postgres();
insert into app.platform_settings (key, value) values ('client_ip_trusted_hops', '2')
  on conflict (key) do update set value = excluded.value;
select tests.clear_authentication();
select is(pg_temp.ip('{"x-forwarded-for": "203.0.113.66, 198.51.100.7, 10.0.0.1, 10.0.0.2"}'), '198.51.100.7',
          'two trusted hops: the third entry from the right');
select is(pg_temp.ip('{"x-forwarded-for": "203.0.113.66, 203.0.113.65, 198.51.100.7, 10.0.0.1, 10.0.0.2"}'),
          '198.51.100.7', 'still whatever the client prepends');
select is(pg_temp.ip('{"x-forwarded-for": "10.0.0.1, 10.0.0.2"}'), 'unknown',
          'fewer entries than the trusted proxies write: unknown, never a client-written entry');
select tests.as_postgres();
insert into app.platform_settings (key, value) values ('client_ip_trusted_hops', '-3')
  on conflict (key) do update set value = excluded.value;
select tests.clear_authentication();
select is(pg_temp.ip('{"x-forwarded-for": "203.0.113.66, 198.51.100.7"}'), '198.51.100.7',
          'a negative hop count counts as 0');
select tests.as_postgres();
insert into app.platform_settings (key, value) values ('client_ip_trusted_hops', '"2"')
  on conflict (key) do update set value = excluded.value;
select tests.clear_authentication();
select is(pg_temp.ip('{"x-forwarded-for": "203.0.113.66, 198.51.100.7"}'), '198.51.100.7',
          'a hop count that is not a JSON number is ignored (0), not an error on every request');

-- ---- a deployment with no Cloudflare in front: the header is switched off ----
select tests.as_postgres();
insert into app.platform_settings (key, value) values ('client_ip_trusted_hops', '0')
  on conflict (key) do update set value = excluded.value;
insert into app.platform_settings (key, value) values ('client_ip_header', '""')
  on conflict (key) do update set value = excluded.value;
select tests.clear_authentication();
select is(pg_temp.ip('{"cf-connecting-ip": "203.0.113.66", "x-forwarded-for": "198.51.100.7"}'), '198.51.100.7',
          'client_ip_header '''': a client-sent cf-connecting-ip is ignored');
select tests.as_postgres();
insert into app.platform_settings (key, value) values ('client_ip_header', 'null')
  on conflict (key) do update set value = excluded.value;
select tests.clear_authentication();
select is(pg_temp.ip('{"cf-connecting-ip": "203.0.113.66", "x-forwarded-for": "198.51.100.7"}'), '198.51.100.7',
          'client_ip_header null: likewise');
select tests.as_postgres();
insert into app.platform_settings (key, value) values ('client_ip_header', '"Fly-Client-IP"')
  on conflict (key) do update set value = excluded.value;
select tests.clear_authentication();
select is(pg_temp.ip('{"fly-client-ip": "192.0.2.50", "cf-connecting-ip": "203.0.113.66", "x-forwarded-for": "198.51.100.7"}'),
          '192.0.2.50', 'another edge''s header, named in any case (request.headers are lower-cased)');
select tests.as_postgres();
delete from app.platform_settings where key in ('client_ip_header', 'client_ip_trusted_hops');
select tests.clear_authentication();

-- ---- through the rate limit (the download log: 27_edges_downloads) ----
select set_config('request.headers', '{"x-forwarded-for": "203.0.113.1, 198.51.100.9"}', true);
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:00+00') from generate_series(1, 20) $$,
                'anonymous: 20 per minute from one address');
select set_config('request.headers', '{"x-forwarded-for": "203.0.113.2, 198.51.100.9"}', true);
select throws_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:05+00') $$, 'PT429', 'rate_limited',
                 'a new made-up entry on the left does not buy a new budget');
select set_config('request.headers', '{"x-forwarded-for": "198.51.100.9", "cf-connecting-ip": "198.51.100.10"}', true);
select lives_ok($$ select private.check_request_at(timestamptz '2026-11-25 12:00:05+00') $$,
                'another client (per the platform) has its own budget');
select is(private.rate_limit_subject(), 'ip:198.51.100.10', 'the anonymous subject is the platform''s address');
select is(private.ip_address(repeat('1', 46)), null, 'the address helper refuses overlong text before any pattern work');

select * from finish();
rollback;
