"""pg_cron on the private cluster: the migration schedules the jobs in the cron database, they
run, a failing job shows in cron.job_run_details, in the admin KPIs' source and in `koepon db jobs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from koepon.db import migrations, testing
from koepon.settings import db_url, paths

KOEPON = Path(sys.executable).with_name("koepon")
EXPECTED = {
    "koepon_expire_orders": "* * * * *",
    "koepon_sweep_rate_limits": "* * * * *",
    "koepon_refresh_rollups": "* * * * *",
    "koepon_reconcile": "*/5 * * * *",
    "koepon_erase_accounts": "17 * * * *",
    "koepon_end_expired_bans": "* * * * *",
}


@pytest.fixture(scope="module")
def cron_url() -> str:
    """The cluster's cron database (cron.database_name = postgres), migrated like `koepon up` does."""
    testing.admin_url()  # starts the private cluster
    url = db_url()  # as `postgres`, who owns the jobs (cron.schedule updates the caller's job by name)
    with psycopg.connect(url, autocommit=True) as conn:
        preload, cron_db = conn.execute("select current_setting('shared_preload_libraries'), "
                                        "current_setting('cron.database_name', true)").fetchone()
        if "pg_cron" not in preload or cron_db != "postgres":
            pytest.fail("the private cluster does not preload pg_cron: re-create it (`koepon db stop`, remove "
                        "its data directory, `koepon db start`) after `bash scripts/bootstrap.sh`")
        migrations.migrate(conn, paths(), echo=lambda _m: None)
    return url


def _wait_for(conn, sql, params, seconds=75.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = conn.execute(sql, params).fetchone()
        if row and row[0]:
            return row
        time.sleep(0.5)  # pg_cron starts jobs on the minute; look often so the test ends soon after
    return None


def test_migration_schedules_every_job_once(cron_url):
    with psycopg.connect(cron_url, autocommit=True) as conn:
        # Running the scheduling again (a re-run, or hosted Supabase) changes nothing.
        conn.execute("select private.schedule_jobs()")
        rows = conn.execute("select jobname, schedule, count(*) over (partition by jobname) from cron.job "
                            "where jobname like 'koepon\\_%'").fetchall()
    assert {name: schedule for name, schedule, _ in rows} == EXPECTED
    assert all(n == 1 for _, _, n in rows)


def test_a_test_database_migrates_without_pg_cron(db_url):
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select to_regclass('cron.job')").fetchone()[0] is None
        assert conn.execute("select private.schedule_jobs()").fetchone()[0] == 0


def test_jobs_run_and_a_failing_job_is_visible(cron_url):
    with psycopg.connect(cron_url, autocommit=True) as conn:
        started = conn.execute("select now()").fetchone()[0]
        conn.execute("select cron.schedule('test_failing_probe', '* * * * *', 'select 1/0')")
        try:
            ran = _wait_for(conn, """
                select count(distinct j.jobname) = 2 from cron.job_run_details d join cron.job j using (jobid)
                where d.start_time >= %s and d.status in ('succeeded', 'failed')
                  and j.jobname in ('koepon_sweep_rate_limits', 'test_failing_probe')""", (started,))
            assert ran, "pg_cron ran neither the sweep nor the probe within 75 s (is the scheduler running?)"
            status = dict(conn.execute("""
                select j.jobname, d.status from cron.job_run_details d join cron.job j using (jobid)
                where d.start_time >= %s and j.jobname in ('koepon_sweep_rate_limits', 'test_failing_probe')
                  and d.status in ('succeeded', 'failed')""", (started,)).fetchall())
            assert status == {"koepon_sweep_rate_limits": "succeeded", "test_failing_probe": "failed"}
            failed = conn.execute("select private.failed_jobs(%s)", (started,)).fetchone()[0]
            assert [f["job"] for f in failed] == ["test_failing_probe"]
            assert "division by zero" in failed[0]["last_message"]
            env = {**os.environ, "KOEPON_DB_URL": db_url()}
            res = subprocess.run([str(KOEPON), "db", "jobs", "--json", "--exit-code"], capture_output=True,
                                 text=True, env=env)
            assert res.returncode == 1, res.stderr
            shown = {j["name"]: j for j in json.loads(res.stdout)["jobs"]}
            assert shown["test_failing_probe"]["last_status"] == "failed"
            assert shown["koepon_sweep_rate_limits"]["last_status"] == "succeeded"
        finally:
            conn.execute("delete from cron.job_run_details where jobid in "
                         "(select jobid from cron.job where jobname = 'test_failing_probe')")
            conn.execute("select cron.unschedule('test_failing_probe')")
