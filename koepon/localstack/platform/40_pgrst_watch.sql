-- PostgREST's schema-reload event triggers, as hosted installs them: DDL outside Supabase's
-- own schemas sends NOTIFY pgrst, 'reload schema', so the API sees a migration without a
-- restart (the local API listens on the same channel). Text after supabase/postgres
-- migrations/db/migrations/20260923021047_update_pgrst_watch_triggers.sql, owned by
-- supabase_admin as 20250402065937_alter_internal_event_triggers_owner_to_supabase_admin.sql
-- leaves hosted's event-trigger functions.
create or replace function extensions.pgrst_ddl_watch() returns event_trigger
language plpgsql
as $$
declare
  cmd record;
begin
  for cmd in select * from pg_event_trigger_ddl_commands()
  loop
    if cmd.command_tag in (
      'CREATE SCHEMA', 'ALTER SCHEMA',
      'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE',
      'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE',
      'CREATE VIEW', 'ALTER VIEW',
      'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW',
      'CREATE FUNCTION', 'ALTER FUNCTION',
      'CREATE TYPE', 'ALTER TYPE',
      'CREATE RULE',
      'COMMENT')
      -- nothing in pg_temp, nothing in Supabase's own schemas
      and coalesce(cmd.schema_name, '') not in ('pg_temp', 'auth', 'realtime', '_realtime', 'storage')
      or (cmd.command_tag = 'CREATE TRIGGER' and cmd.object_identity not like '% pg\_temp.%')
    then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end
$$;

create or replace function extensions.pgrst_drop_watch() returns event_trigger
language plpgsql
as $$
declare
  obj record;
begin
  for obj in select * from pg_event_trigger_dropped_objects()
  loop
    if obj.object_type in ('schema', 'table', 'foreign table', 'view', 'materialized view',
                           'function', 'type', 'rule')
      and obj.is_temporary is false
      and coalesce(obj.schema_name, '') not in ('auth', 'realtime', '_realtime', 'storage')
      or (obj.object_type = 'trigger' and obj.object_identity not like '% pg\_temp.%')
    then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end
$$;

alter function extensions.pgrst_ddl_watch() owner to supabase_admin;
alter function extensions.pgrst_drop_watch() owner to supabase_admin;

drop event trigger if exists pgrst_ddl_watch;
create event trigger pgrst_ddl_watch on ddl_command_end
  execute function extensions.pgrst_ddl_watch();
drop event trigger if exists pgrst_drop_watch;
create event trigger pgrst_drop_watch on sql_drop
  execute function extensions.pgrst_drop_watch();
alter event trigger pgrst_ddl_watch owner to supabase_admin;
alter event trigger pgrst_drop_watch owner to supabase_admin;
