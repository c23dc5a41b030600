-- Scheduled jobs, run by pg_cron inside the database as hosted Supabase runs them (Supabase
-- Cron). The list lives here; private.schedule_jobs() creates or updates each job by name
-- (cron.schedule with a job name replaces that job's schedule and command), so running it
-- again, or on hosted Supabase, is harmless. A database without pg_cron gets no jobs and
-- migrates all the same (test databases: pg_cron lives in one database per cluster).

create or replace function private.job_definitions()
returns table (name text, schedule text, command text, description text)
language sql immutable
set search_path = ''
as $$
  values
    ('koepon_expire_orders', '* * * * *', 'select private.service_expire_orders()',
     'pending orders past their 30 minutes expire and release what they reserved'),
    ('koepon_sweep_rate_limits', '* * * * *', 'select private.sweep_rate_limits(now())',
     'rate-limit counters older than the previous minute are deleted'),
    ('koepon_refresh_rollups', '* * * * *', 'select private.refresh_rollups(now())',
     'what is new in orders, pulls, the ledger, refunds, disputes and exchanges is added to the sales rollups'),
    ('koepon_reconcile', '*/5 * * * *', 'select private.reconcile(now())',
     'payments are compared with orders; discrepancies are filed into the admin queue'),
    ('koepon_erase_accounts', '17 * * * *', 'select private.erase_due_accounts(now())',
     'accounts whose deletion request is past its cooling-off period are erased (docs/privacy.md)'),
    ('koepon_end_expired_bans', '* * * * *', 'select private.end_expired_bans(null, now())',
     'profiles suspended by an Auth ban that has run out become active again (docs/auth.md)')
$$;
comment on function private.job_definitions() is 'The scheduled jobs: name, cron schedule (UTC), SQL command, purpose.';
revoke all on function private.job_definitions() from public;

create or replace function private.schedule_jobs() returns integer
language plpgsql
set search_path = ''
as $$
declare
  j record;
  v_n integer := 0;
begin
  if to_regclass('cron.job') is null then
    return 0;
  end if;
  for j in select * from private.job_definitions() loop
    execute 'select cron.schedule($1, $2, $3)' using j.name, j.schedule, j.command;
    v_n := v_n + 1;
  end loop;
  -- Our jobs that are no longer defined go away (other jobs in cron.job are left alone).
  execute $q$select count(cron.unschedule(c.jobname)) from cron.job c
             where c.jobname like 'koepon\_%' and c.jobname not in (select d.name from private.job_definitions() d)$q$;
  return v_n;
end
$$;
comment on function private.schedule_jobs() is
  'Creates or updates every job of private.job_definitions() in pg_cron (when installed); returns how many.';
revoke all on function private.schedule_jobs() from public;
