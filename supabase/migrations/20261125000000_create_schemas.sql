-- Koepon's schemas: public is the API (functions and invoker views only), app holds the
-- tables (RLS on every one), private holds security definer helpers and the ledger core.
create schema if not exists app;
create schema if not exists private;

revoke all on schema app from public;
revoke all on schema private from public;
grant usage on schema app to anon, authenticated, service_role;
grant usage on schema private to anon, authenticated, service_role;

-- Functions are executable by PUBLIC by default; we grant by exact signature instead.
alter default privileges in schema public revoke execute on functions from public;
alter default privileges in schema app revoke execute on functions from public;
alter default privileges in schema private revoke execute on functions from public;
alter default privileges for role postgres in schema public
  revoke execute on functions from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke select, insert, update, delete on tables from anon, authenticated, service_role;

comment on schema app is 'Koepon tables; row level security on every one.';
comment on schema private is 'Koepon security definer helpers; never exposed by the API.';
