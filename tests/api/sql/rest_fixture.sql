-- Test-only objects for tests/api/test_rest_behaviour.py (never part of a migration).
create table app.test_notes (
  id bigint generated always as identity primary key,
  owner uuid not null default auth.uid(),
  body text not null check (length(body) < 100),
  tag text unique,
  parent bigint references app.test_notes (id)
);
alter table app.test_notes enable row level security;
grant select, insert, update, delete on app.test_notes to authenticated, service_role;
create policy "Owners read their notes" on app.test_notes for select to authenticated
  using (owner = (select auth.uid()));
create policy "Owners write their notes" on app.test_notes for insert to authenticated
  with check (owner = (select auth.uid()));
create policy "Owners change their notes" on app.test_notes for update to authenticated
  using (owner = (select auth.uid())) with check (owner = (select auth.uid()));
create policy "Owners delete their notes" on app.test_notes for delete to authenticated
  using (owner = (select auth.uid()));

create view public.test_notes with (security_invoker = true) as
  select id, owner, body, tag, parent from app.test_notes;
revoke all on public.test_notes from anon, public;
grant select, insert, update, delete on public.test_notes to authenticated, service_role;

create view public.test_numbers with (security_invoker = true) as
  select n, n % 3 = 0 as fizz, case when n % 2 = 0 then 'even' else 'odd' end as parity,
         nullif(n % 5, 0) as r5, jsonb_build_object('sq', n * n) as data
    from generate_series(1, 20) as n;
comment on view public.test_numbers is 'Numbers one to twenty';
grant select on public.test_numbers to anon, authenticated;

create function public.test_add(a integer, b integer) returns integer
language sql immutable as $$ select a + b $$;
comment on function public.test_add(integer, integer) is 'Adds two integers';
create function public.test_add(a integer, b integer, c integer) returns integer
language sql immutable as $$ select a + b + c $$;
create function public.test_greet(name text default 'world') returns text
language sql stable as $$ select 'hello ' || name $$;
create function public.test_echo(jsonb) returns jsonb
language sql immutable as $$ select $1 $$;
create function public.test_named_json(data jsonb) returns jsonb
language sql immutable as $$ select jsonb_build_object('got', data) $$;
-- A json result is its text as the function wrote it (key order, spacing, repeated keys kept).
create function public.test_json_text() returns json
language sql immutable as $$ select '{"z": 1, "a" : [1,2],  "z": 2}'::json $$;
create function public.test_nothing() returns void
language sql volatile as $$ select $$;
create function public.test_pair(x integer, out doubled integer, out squared integer)
language sql immutable as $$ select x * 2, x * x $$;
create function public.test_rows(n integer) returns table (i integer, label text)
language sql stable as $$ select g, 'row ' || g from generate_series(1, n) g $$;
create function public.test_series(n integer) returns setof integer
language sql stable as $$ select generate_series(1, n) $$;
create function public.test_ids(ids integer[]) returns integer
language sql immutable as $$ select coalesce(sum(x), 0)::integer from unnest(ids) x $$;
create function public.test_null() returns text
language sql immutable as $$ select null::text $$;

create table app.test_log (id bigint generated always as identity primary key, at timestamptz default now());
grant select, insert on app.test_log to anon, authenticated;
create function public.test_bump() returns bigint
language sql volatile as $$ insert into app.test_log default values returning id $$;

create function public.test_context() returns jsonb
language sql stable as $$
  select jsonb_build_object(
    'user', current_user, 'claims', auth.jwt(), 'uid', auth.uid(),
    'method', current_setting('request.method', true),
    'path', current_setting('request.path', true),
    'headers', current_setting('request.headers', true)::jsonb,
    'cookies', current_setting('request.cookies', true)::jsonb,
    'read_only', current_setting('transaction_read_only'),
    'statement_timeout', current_setting('statement_timeout'),
    'search_path', current_setting('search_path'),
    'pre_request_ran', current_setting('test.pre_request_ran', true))
$$;
create function public.test_context_volatile() returns jsonb
language sql volatile as $$ select public.test_context() $$;

-- Raise any SQLSTATE: the whole PostgREST mapping table can be driven over HTTP.
create function public.test_raise(p_code text) returns void
language plpgsql volatile as $$
begin
  if p_code = 'PGRST' then
    raise sqlstate 'PGRST' using
      message = '{"code":"X123","message":"custom_refusal","details":"the details","hint":"a hint"}',
      detail = '{"status":418,"headers":{"X-Tea":"pot"}}';
  elsif p_code = 'PGRST-bad' then
    raise sqlstate 'PGRST' using message = 'not json';
  end if;
  raise exception using errcode = p_code, message = 'raised_' || p_code,
    detail = 'detail for ' || p_code, hint = 'hint for ' || p_code;
end
$$;

create function public.test_respond() returns text
language sql volatile as $$
  select set_config('response.status', '202', true)
         || set_config('response.headers', '[{"X-Custom":"yes"},{"Cache-Control":"no-store"}]', true)
$$;

create table app.test_unique_probe (tag text primary key);
grant insert on app.test_unique_probe to anon, authenticated;
create function public.test_unique(p_tag text) returns void
language sql volatile as $$ insert into app.test_unique_probe (tag) values (p_tag) $$
set search_path = '';

create function public.test_pre_request() returns void
language plpgsql stable as $$
begin
  perform set_config('test.pre_request_ran', 'yes', true);
  if current_setting('request.headers', true)::jsonb ->> 'x-block-me' = 'yes' then
    raise sqlstate 'PT429' using message = 'rate_limited', detail = 'blocked by the pre-request hook';
  end if;
end
$$;
