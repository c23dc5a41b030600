"""Fixtures for the CLI's own tests: a temporary project copy and throwaway databases.

`koepon` runs as a subprocess (exactly what a DBA types) with KOEPON_PROJECT pointing at a
temporary copy of the project, so tests can add, edit and delete migrations freely, and
KOEPON_DB_URL pointing at a throwaway database of the shared cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from koepon import db
from koepon.db import testing
from koepon.localstack.services import free_port  # noqa: F401  (the tooling tests import it from here)

ROOT = Path(__file__).resolve().parents[2]
KOEPON = Path(sys.executable).with_name("koepon")
PLATFORM = "koepon/localstack/platform"  # the platform base, relative to the project root


@dataclass
class Project:
    """A temporary copy of the project (sql/, supabase/, .sqlfluff) the CLI is pointed at."""

    root: Path
    db_url: str | None = None

    @property
    def migrations(self) -> Path:
        return self.root / "supabase" / "migrations"

    def add(self, filename: str, text: str) -> Path:
        """Write supabase/migrations/<filename> (dedented)."""
        path = self.migrations / filename
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def write(self, relpath: str, text: str) -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def env(self, db_url: str | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("KOEPON_DB_URL", "KOEPON_PROJECT")}
        env["KOEPON_PROJECT"] = str(self.root)
        url = db_url or self.db_url
        if url:
            env["KOEPON_DB_URL"] = url
        env.update(extra)
        return env

    def koepon(self, *args: str, db_url: str | None = None, timeout: float = 180,
               **extra_env: str) -> subprocess.CompletedProcess:
        """Run `koepon ARGS` in the project (cwd elsewhere, to prove KOEPON_PROJECT is used)."""
        return subprocess.run(
            [str(KOEPON), *args], env=self.env(db_url, **extra_env), cwd="/",
            capture_output=True, text=True, timeout=timeout,
        )

    def popen(self, *args: str, db_url: str | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [str(KOEPON), *args], env=self.env(db_url), cwd="/",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )


def copy_project(dest: Path, migrations: bool = True, pgtap: bool = True) -> Project:
    """Copy sql/, supabase/ and the platform base (optionally without the real migrations or pgTAP files)."""
    shutil.copytree(ROOT / "sql", dest / "sql")
    shutil.copytree(ROOT / PLATFORM, dest / PLATFORM)
    ignore = []
    if not migrations:
        ignore.append("migrations")
    shutil.copytree(ROOT / "supabase", dest / "supabase",
                    ignore=shutil.ignore_patterns(*ignore, ".temp", ".branches"))
    (dest / "supabase" / "migrations").mkdir(exist_ok=True)
    if not pgtap:
        shutil.rmtree(dest / "supabase" / "tests" / "database")
        (dest / "supabase" / "tests" / "database").mkdir()
    shutil.copy(ROOT / ".sqlfluff", dest / ".sqlfluff")
    return Project(dest)


def committed_project(dest: Path) -> Project:
    """sql/, supabase/ and .sqlfluff as committed (HEAD): the real tree, without anyone's
    uncommitted work in progress in the shared checkout."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", "sql", "supabase", PLATFORM, ".sqlfluff"],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    (dest / "supabase" / "migrations").mkdir(parents=True, exist_ok=True)
    return Project(dest)


@pytest.fixture()
def tmp_root():
    """A temporary directory under /tmp that the postgres OS user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="koepon-tooling-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server() -> str:
    """URL of the shared cluster's maintenance database (throwaway databases are made there)."""
    return testing.admin_url()


@pytest.fixture()
def empty_db(server):
    """A brand-new, empty database: no platform base, no migrations."""
    name = db.unique_name("koepon_tooling")
    url = db.create_database(server, name)
    yield url
    db.drop_database(server, name)


@pytest.fixture()
def base_project(tmp_root, empty_db) -> Project:
    """The platform base and seed of the real project, but none of its migrations; empty DB."""
    project = copy_project(tmp_root, migrations=False, pgtap=False)
    project.write("supabase/seed.sql", "-- no demo data in tooling tests\n")
    for path in (project.root / "sql").iterdir():
        if path.is_dir():
            shutil.rmtree(path)
    project.db_url = empty_db
    return project


def query(url: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def history(url: str) -> list[tuple[str, str, list[str]]]:
    return [tuple(r) for r in query(
        url, "select version, name, statements from supabase_migrations.schema_migrations "
             "order by version")]


def one_line_error(res: subprocess.CompletedProcess) -> str:
    """The CLI's contract for failures: non-zero exit, exactly one line on stderr."""
    assert res.returncode != 0, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("koepon: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]
