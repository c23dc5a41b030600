-- Roles hosted Supabase provides, with hosted's attributes and memberships. Idempotent.
-- Facts from supabase/postgres (migrations/db/init-scripts/00000000000000-initial-schema.sql and
-- migrations/db/migrations/*, as of 2026-10: 20221103090837_revoke_admin,
-- 20230201083204_grant_auth_roles_to_postgres, 20230306081037_grant_pg_monitor_to_postgres,
-- 20230529180330_alter_api_roles_for_inherit, 20231013070755_grant_authenticator_to_supabase_storage_admin,
-- 20240606060239_grant_predefined_roles_to_postgres, 20250421084701_revoke_admin_roles_from_postgres,
-- 20260821154147_revoke_createrole_from_auth_admin) and migrations/db/migrate.sh.
do $$
declare
  r record;
begin
  for r in
    select * from (values
      ('anon', 'nologin noinherit'),
      ('authenticated', 'nologin noinherit'),
      ('service_role', 'nologin noinherit bypassrls'),
      ('authenticator', 'login noinherit'),
      ('supabase_admin', 'login superuser createdb createrole replication bypassrls'),
      ('supabase_auth_admin', 'login noinherit'),
      ('supabase_storage_admin', 'login noinherit createrole'),
      ('supabase_replication_admin', 'login replication'),
      ('supabase_read_only_user', 'login bypassrls'),
      ('dashboard_user', 'nologin createdb createrole replication'),
      ('supabase_realtime_admin', 'nologin noinherit'),
      -- Hosted creates `postgres` as a superuser, runs its init scripts as it, then demotes
      -- it (10000000000000_demote-postgres.sql) to exactly these attributes.
      ('postgres', 'login nosuperuser inherit createdb createrole replication bypassrls')
    ) as t (name, attrs)
  loop
    if not exists (select 1 from pg_roles where rolname = r.name) then
      execute format('create role %I %s', r.name, r.attrs);
    end if;
  end loop;
end
$$;

-- Demote `postgres` as hosted does, unless it is this cluster's bootstrap superuser (a plain
-- server made by initdb -U postgres), which Postgres cannot demote: such a server stays a
-- superuser-`postgres` database, and the facts test refuses it.
do $$
begin
  if (select oid from pg_roles where rolname = 'postgres') <> 10 then
    alter role postgres nosuperuser inherit createdb createrole login replication bypassrls;
  else
    raise warning 'postgres is the bootstrap superuser of this server and stays one; '
      'the private cluster (koepon db start) has supabase_admin as its superuser instead';
  end if;
end
$$;

-- Supabase later made the API roles inherit; service_role keeps bypassrls.
alter role anon inherit;
alter role authenticated inherit;
alter role service_role inherit;
alter role supabase_auth_admin nocreaterole;

alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';
alter role supabase_auth_admin set search_path = auth;
alter role supabase_auth_admin set idle_in_transaction_session_timeout = 60000;
alter role supabase_storage_admin set search_path = storage;
alter role supabase_admin set search_path = "$user", public, auth, extensions;

grant anon, authenticated, service_role to authenticator;
-- Hosted revoked this in 2022: the API's login role must not reach a superuser.
revoke supabase_admin from authenticator;
grant anon, authenticated, service_role to postgres;
grant authenticator to supabase_storage_admin;
revoke anon, authenticated, service_role from supabase_storage_admin;
grant pg_monitor, pg_read_all_data, pg_signal_backend to postgres;
grant pg_read_all_data to supabase_read_only_user;
-- Hosted revoked these in 2025: `postgres` manages auth and storage through grants and
-- supautils' allowances (45_supautils_allowances.sql), not by being their owners.
revoke supabase_auth_admin, supabase_storage_admin, supabase_realtime_admin from postgres;
