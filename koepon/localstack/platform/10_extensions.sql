-- Schema `extensions` with the extensions hosted Supabase preinstalls. Hosted runs its init
-- scripts as `postgres` before demoting it (supabase/postgres migrations/db/migrate.sh), so
-- the schema, the publication and the database itself belong to `postgres` there.
create schema if not exists extensions authorization postgres;
alter schema extensions owner to postgres;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
-- 20230224042246_grant_extensions_perms_for_postgres.sql
grant all privileges on all tables in schema extensions to postgres with grant option;
grant all privileges on all routines in schema extensions to postgres with grant option;
grant all privileges on all sequences in schema extensions to postgres with grant option;
alter default privileges in schema extensions grant all on tables to postgres with grant option;
alter default privileges in schema extensions grant all on routines to postgres with grant option;
alter default privileges in schema extensions grant all on sequences to postgres with grant option;

do $$
begin
  execute format('alter database %I owner to postgres', current_database());
end
$$;
-- 10000000000000_demote-postgres.sql; public's CREATE for postgres (migrations/tests/database/privs.sql)
grant all on schema public to postgres;

-- Supabase's grants on public: usage for the API roles, default privileges for objects
-- that postgres and supabase_admin create (RLS is then the only guard; our migrations
-- revoke and grant explicitly anyway).
grant usage on schema public to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;

alter role postgres set search_path = "$user", public, extensions;

do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
alter publication supabase_realtime owner to postgres;
