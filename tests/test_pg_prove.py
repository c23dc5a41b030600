"""The pgTAP files run unchanged under pg_prove, the way `supabase test db` runs them.

The Supabase CLI (internal/db/test/test.go) enables pgtap in schema `extensions`, then runs
`pg_prove --ext .pg --ext .sql -r <dir>` connected as `postgres`. Every file runs: the point is
that a DBA's tool agrees with `koepon db test` (which parses TAP itself) on the same files, as the
same non-superuser role, as hosted Supabase has it; koepon's own run must pass every file as well.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import psycopg
from psycopg.conninfo import conninfo_to_dict

from koepon.db import pgtap, testing
from koepon.settings import paths

PG_PROVE = shutil.which("pg_prove")


def test_pg_prove_runs_every_pgtap_file_as_postgres():
    assert PG_PROVE, ("pg_prove is not installed: scripts/bootstrap.sh installs "
                      "libtap-parser-sourcehandler-pgtap-perl")
    url, name = testing.clone("koepon_pg_prove")
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("select current_user, rolsuper from pg_roles where rolname = current_user"
                                ).fetchone() == ("postgres", False)
        info = conninfo_to_dict(url)
        env = {**os.environ, "PGHOST": info["host"], "PGPORT": str(info["port"]),
               "PGUSER": info["user"], "PGPASSWORD": info.get("password", ""), "PGDATABASE": info["dbname"]}
        res = subprocess.run([PG_PROVE, "--ext", ".pg", "--ext", ".sql", "-r", str(paths().pgtap)],
                             capture_output=True, text=True, env=env, cwd=paths().root, timeout=600)
        # the same files through koepon's own TAP runner, on the same database
        ours = [pgtap.run_file(url, f) for f in pgtap.files(paths().pgtap)]
    finally:
        testing.drop(name)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    summary = re.search(r"Files=(\d+), Tests=(\d+)", res.stdout)
    assert summary, res.stdout[-2000:]
    assert int(summary.group(1)) == len(pgtap.files(paths().pgtap))
    assert "Result: PASS" in res.stdout
    assert int(summary.group(2)) == sum(len(r.passed) + len(r.failed) for r in ours)
    # Every file passes through koepon's runner too, as the non-superuser postgres (as on hosted).
    assert ours and all(r.ok for r in ours), "\n".join(r.summary() for r in ours if not r.ok)
