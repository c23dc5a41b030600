-- The account erasure job joins the schedule (private.job_definitions, sql/backoffice/60_jobs.sql).
select private.schedule_jobs();
