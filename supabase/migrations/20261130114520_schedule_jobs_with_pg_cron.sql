-- Scheduled jobs with pg_cron, as Supabase Cron runs them on hosted Supabase, where the
-- extension is enabled with `create extension pg_cron with schema pg_catalog` in the postgres
-- database. pg_cron lives in one database per cluster (cron.database_name) and only when the
-- server preloads it; anywhere else (test databases, a server without the package, a role that
-- may not create it) this migration creates no jobs and still succeeds.
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_cron')
     and current_database() = coalesce(current_setting('cron.database_name', true), 'postgres') then
    begin
      create extension if not exists pg_cron with schema pg_catalog;
    exception when others then
      raise notice 'pg_cron is not enabled in this database (%): no scheduled jobs', sqlerrm;
    end;
  end if;
end
$$;

-- Creates or updates each job by name (see sql/backoffice/60_jobs.sql); 0 without pg_cron.
select private.schedule_jobs();
