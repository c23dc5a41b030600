-- Hosted Supabase lets its non-superuser `postgres` do three things our migrations and tests
-- need only through the supautils library's configuration (supabase/postgres
-- ansible/files/postgresql_config/supautils.conf.j2, as of 7db7e1a, 2024-10, with
-- supautils.privileged_role = 'postgres'). supautils is not packaged for Debian, so each
-- allowance is granted here as narrowly as plain Postgres can express it, and nothing more.

-- 1. supautils.privileged_role_allowed_configs includes 'pgrst.*': postgres may set
--    PostgREST's in-database configuration on a role (`alter role authenticator set
--    pgrst.db_pre_request = ...`). GRANT SET ON PARAMETER takes no wildcard, so it names the
--    settings PostgREST reads from the database (PostgREST docs, "In-Database Configuration").
do $$
declare
  p text;
begin
  foreach p in array array[
    'pgrst.db_pre_request', 'pgrst.db_schemas', 'pgrst.db_extra_search_path',
    'pgrst.db_max_rows', 'pgrst.db_aggregates_enabled', 'pgrst.db_plan_enabled',
    'pgrst.db_tx_end', 'pgrst.db_pre_config', 'pgrst.db_root_spec',
    'pgrst.jwt_aud', 'pgrst.jwt_role_claim_key', 'pgrst.jwt_secret',
    'pgrst.jwt_secret_is_base64', 'pgrst.jwt_cache_max_lifetime',
    'pgrst.openapi_mode', 'pgrst.openapi_security_active', 'pgrst.openapi_server_proxy_uri',
    'pgrst.server_cors_allowed_origins', 'pgrst.server_timing_enabled',
    'pgrst.server_trace_header', 'pgrst.app_settings']
  loop
    execute format('grant set on parameter %s to postgres', p);
  end loop;
end
$$;

-- 2. supautils.privileged_role_allowed_configs includes 'session_replication_role':
--    postgres may switch triggers and foreign-key checks off in its own session.
grant set on parameter session_replication_role to postgres;

-- 3. supautils.policy_grants = '{"postgres": ["auth.audit_log_entries", "auth.identities",
--    "auth.refresh_tokens", "auth.sessions", "auth.users", "realtime.messages",
--    "storage.buckets", "storage.migrations", "storage.objects",
--    "storage.s3_multipart_uploads", "storage.s3_multipart_uploads_parts"]}':
--    postgres may CREATE, ALTER and DROP policies on those tables without owning them.
--    Plain Postgres checks ownership inside the command, so the stand-in lends `postgres`
--    the ownership of those tables for the one policy command and takes it back at its end
--    (event triggers owned by supabase_admin); a failing command rolls the loan back with it.
--    Like supautils, it locks every listed table until the transaction ends.
create schema if not exists supautils_local authorization supabase_admin;
comment on schema supautils_local is
  'koepon platform base: stand-ins for supautils settings hosted Supabase configures (local stack only)';
revoke all on schema supautils_local from public;

create or replace function supautils_local.policy_grant_tables() returns setof regclass
language sql stable
set search_path = ''
as $$
  select to_regclass(t)
  from unnest(array['auth.audit_log_entries', 'auth.identities', 'auth.refresh_tokens',
                    'auth.sessions', 'auth.users', 'realtime.messages', 'storage.buckets',
                    'storage.migrations', 'storage.objects', 'storage.s3_multipart_uploads',
                    'storage.s3_multipart_uploads_parts']) as t
  where to_regclass(t) is not null
$$;

create table if not exists supautils_local.policy_grant_loans (
  tbl regclass primary key,
  owner regrole not null,
  postgres_privileges text not null
);
revoke all on supautils_local.policy_grant_loans from public;

create or replace function supautils_local.lend_for_policy() returns event_trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  t regclass;
begin
  -- current_user is this function's owner here; the role running the command is the one
  -- SET ROLE chose, else the session's.
  if coalesce(nullif(current_setting('role'), 'none'), session_user) <> 'postgres' then
    return;
  end if;
  for t in select * from supautils_local.policy_grant_tables()
  loop
    -- ALTER OWNER folds the new owner's own grants into its ownership, on the table and on
    -- the sequences it owns: keep what postgres held so that giving it back restores it.
    insert into supautils_local.policy_grant_loans (tbl, owner, postgres_privileges)
    select c.oid, c.relowner::regrole,
           coalesce((select string_agg(a.privilege_type || case when a.is_grantable then '*' else '' end, ',')
                     from aclexplode(c.relacl) a
                     where a.grantee = 'postgres'::regrole), '')
    from pg_catalog.pg_class c
    where c.oid = t
       or c.oid in (select d.objid from pg_catalog.pg_depend d
                    where d.classid = 'pg_catalog.pg_class'::regclass and d.refobjid = t
                      and d.deptype in ('a', 'i'))
         and c.relkind = 'S'
    on conflict (tbl) do nothing;
    execute format('alter table %s owner to postgres', t);
  end loop;
end
$$;

create or replace function supautils_local.return_after_policy() returns event_trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  l record;
  p text;
begin
  -- Tables first (their sequences follow them), then postgres's own grants on each.
  for l in select lo.* from supautils_local.policy_grant_loans lo
           join pg_catalog.pg_class c on c.oid = lo.tbl where c.relkind <> 'S'
  loop
    execute format('alter table %s owner to %I', l.tbl, l.owner::text);
  end loop;
  for l in select lo.*, c.relkind from supautils_local.policy_grant_loans lo
           join pg_catalog.pg_class c on c.oid = lo.tbl
  loop
    foreach p in array string_to_array(l.postgres_privileges, ',')
    loop
      execute format('grant %s on %s %s to postgres %s', rtrim(p, '*'),
                     case when l.relkind = 'S' then 'sequence' else 'table' end, l.tbl,
                     case when p like '%*' then 'with grant option' else '' end);
    end loop;
  end loop;
  delete from supautils_local.policy_grant_loans;
end
$$;

alter function supautils_local.policy_grant_tables() owner to supabase_admin;
alter function supautils_local.lend_for_policy() owner to supabase_admin;
alter function supautils_local.return_after_policy() owner to supabase_admin;
alter table supautils_local.policy_grant_loans owner to supabase_admin;

drop event trigger if exists supautils_policy_grants_lend;
create event trigger supautils_policy_grants_lend on ddl_command_start
  when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
  execute function supautils_local.lend_for_policy();
drop event trigger if exists supautils_policy_grants_return;
create event trigger supautils_policy_grants_return on ddl_command_end
  when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
  execute function supautils_local.return_after_policy();
