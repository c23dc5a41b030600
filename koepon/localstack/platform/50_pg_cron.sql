-- Supabase Cron as hosted Supabase enables it (docs "Cron > Install": create extension pg_cron
-- with schema pg_catalog; grant usage on schema cron to postgres; grant all privileges on all
-- tables in schema cron to postgres). Hosted lets `postgres` run this through supautils; here
-- the platform base runs it, in the cluster's cron database only and only where the server
-- preloads pg_cron, so the migration that schedules the jobs finds the extension ready.
do $$
begin
  if current_database() = coalesce(current_setting('cron.database_name', true), 'postgres')
     and current_setting('shared_preload_libraries') like '%pg_cron%'
     and exists (select 1 from pg_available_extensions where name = 'pg_cron') then
    create extension if not exists pg_cron with schema pg_catalog;
    grant usage on schema cron to postgres;
    grant all privileges on all tables in schema cron to postgres;
  end if;
end
$$;
