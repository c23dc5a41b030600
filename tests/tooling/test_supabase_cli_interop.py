"""Interop with the real Supabase CLI (npm `supabase`, v3: the binary ships inside the package).

Both tools must agree on what is applied, because both read and write
`supabase_migrations.schema_migrations`: a database migrated by `koepon db migrate` locally is
pushed to with `supabase db push` in production, and the other way round.

The CLI is installed once into ~/.cache/koepon/supabase-cli (KOEPON_SUPABASE_CLI_DIR overrides)
and reused. If it cannot be installed (no npm, registry unreachable) the tests FAIL with the reason:
in CI a skip would hide a broken interop. The only way to leave them out is the explicit opt-out
KOEPON_SKIP_SUPABASE_CLI=1 (for a machine that is knowingly offline), which CI never sets.
v3 spells the target `--remote=<url>` (v1/v2 had `--db-url`) and wants `--yes` to write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from koepon import db
from koepon.db import migrations, schema_diff, sqlsplit
from koepon.db import platform_base as platform
from koepon.settings import Paths

from .conftest import committed_project, history

VERSION = "3.1.0"
CACHE = Path(os.environ.get("KOEPON_SUPABASE_CLI_DIR",
                            Path.home() / ".cache" / "koepon" / "supabase-cli"))
ENV = {**os.environ, "DO_NOT_TRACK": "1", "SUPABASE_TELEMETRY_DISABLED": "1",
       "NPM_CONFIG_UPDATE_NOTIFIER": "false"}

# Constructs a splitter can get wrong; both tools must record these statements identically.
PARITY_MIGRATION = r"""
-- Splitter parity between koepon and the Supabase CLI; leading comment; with a semicolon.
create schema parity;
create table parity.t (
  id int primary key,
  s text default 'a;b',            -- quoted semicolon
  "odd;name" text default E'it\'s; escaped',
  q text default 'it''s; doubled'
) ;
/* a block comment; /* nested; */ still a comment; */
create function parity.f() returns text language plpgsql as $body$
begin
  -- a semicolon inside a body; does not split
  return $inner$x;y$inner$ || $$;$$;
end
$body$;
create function parity.g() returns int language sql
begin atomic
  select 1;
  select case when true then 2 end;
end;
create rule keep as on delete to parity.t do also (select 1; select 2);
insert into parity.t (id) values (1);
   select   1
;
-- a trailing comment-only piece, recorded as a statement of its own
"""


def _npm_reachable() -> tuple[bool, str]:
    res = subprocess.run(["npm", "ping"], capture_output=True, text=True, env=ENV, timeout=60)
    lines = [line for line in res.stderr.splitlines()
             if line.startswith("npm error") and "log of this run" not in line]
    return res.returncode == 0, " / ".join(lines[:2]) or res.stderr.strip()[-300:]


OPT_OUT = os.environ.get("KOEPON_SKIP_SUPABASE_CLI") == "1"


@pytest.fixture(scope="module")
def supabase() -> Path:
    if OPT_OUT:
        pytest.skip("KOEPON_SKIP_SUPABASE_CLI=1: the Supabase CLI interop was explicitly opted out of")
    binary = CACHE / "node_modules" / ".bin" / "supabase"
    if not binary.exists():
        if not shutil.which("npm"):
            pytest.fail("npm is not installed (scripts/bootstrap.sh installs it); "
                        "set KOEPON_SKIP_SUPABASE_CLI=1 to opt out explicitly")
        CACHE.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), f"supabase@{VERSION}"],
            capture_output=True, text=True, env=ENV, timeout=900,
        )
        if res.returncode != 0:
            ok, why = _npm_reachable()
            reason = f"npm cannot reach its registry: {why}" if not ok else res.stderr[-2000:]
            pytest.fail(f"npm install supabase@{VERSION} failed ({reason}); "
                        "set KOEPON_SKIP_SUPABASE_CLI=1 to opt out explicitly")
    # cwd: the CLI looks upward for a supabase/ directory and writes supabase/.temp there
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, env=ENV, cwd=CACHE)
    assert version.stdout.strip() == VERSION, version.stdout + version.stderr
    return binary


def as_url(conninfo: str) -> str:
    """The CLI takes postgresql:// URLs only (our helpers hand out key=value conninfo)."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(conninfo)
    auth = quote(d.get("user", "postgres")) + (f":{quote(d['password'])}" if d.get("password") else "")
    return f"postgresql://{auth}@{d.get('host', '127.0.0.1')}:{d.get('port', 5432)}/{d['dbname']}"


def run_cli(binary: Path, project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args, "--workdir", str(project)], cwd=project,
                          capture_output=True, text=True, env=ENV, timeout=300)


def cli_list(binary: Path, project: Path, url: str) -> dict[str, set[str]]:
    """`supabase migration list` as {applied, pending, missing} version sets."""
    res = run_cli(binary, project, "migration", "list", f"--remote={as_url(url)}", "--output-format", "json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["migrations"]
    out: dict[str, set[str]] = {"applied": set(), "pending": set(), "missing": set()}
    for row in rows:
        local, remote = row.get("local") or "", row.get("remote") or ""
        key = "applied" if local and remote else "pending" if local else "missing"
        out[key].add(local or remote)
    return out


def koepon_status(p, url: str) -> dict[str, set[str]]:
    res = p.koepon("db", "status", "--json", db_url=url)
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    version = lambda name: migrations.FILE_RE.match(name).group(1)  # noqa: E731
    return {"applied": {version(n) for n in st["applied"]},
            "pending": {version(n) for n in st["pending"]},
            "missing": set(st["missing"])}


@pytest.fixture()
def project(tmp_root):
    p = committed_project(tmp_root)
    assert (p.root / "supabase" / "config.toml").exists()   # the CLI reads ours
    return p


def test_config_toml_is_read_and_valid(supabase, project, empty_db):
    res = run_cli(supabase, project.root, "migration", "list", f"--remote={as_url(empty_db)}")
    assert res.returncode == 0, res.stderr
    for word in ("WARN", "deprecated", "Invalid", "error"):
        assert word not in res.stderr, res.stderr
    # It really is read: break a value and the same command fails naming it.
    config = project.root / "supabase" / "config.toml"
    config.write_text(config.read_text().replace("max_rows = 1000", 'max_rows = "lots"'))
    res = run_cli(supabase, project.root, "migration", "list", f"--remote={as_url(empty_db)}")
    assert res.returncode != 0 and "api.max_rows" in res.stderr, res.stderr


def test_migration_list_agrees_with_koepon_status(supabase, project, empty_db):
    p = project
    real = sorted(p.migrations.glob("*.sql"))
    assert real, "the committed tree has migrations"
    held_back = real[-1]
    held_back.rename(p.root / held_back.name)
    gone = p.add("29991231000000_removed_later.sql", "select 1;\n")
    assert p.koepon("db", "migrate", db_url=empty_db).returncode == 0
    (p.root / held_back.name).rename(held_back)           # now pending
    gone.unlink()                                          # now missing on disk

    theirs, ours = cli_list(supabase, p.root, empty_db), koepon_status(p, empty_db)
    assert ours == theirs
    assert ours["pending"] == {held_back.name.split("_")[0]}
    assert ours["missing"] == {"29991231000000"}
    assert len(ours["applied"]) == len(real) - 1


def test_db_push_applies_our_migrations_on_a_platform_base(supabase, project, server):
    p = project
    p.add("29991231000000_splitter_parity.sql", PARITY_MIGRATION)
    with db.throwaway(server, "koepon_interop_push") as pushed, \
            db.throwaway(server, "koepon_interop_koepon") as ours:
        with db.connect(pushed, autocommit=True) as conn:
            assert platform.apply(conn, Paths(p.root))

        res = run_cli(supabase, p.root, "db", "push", f"--remote={as_url(pushed)}", "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        local = migrations.local_migrations(Paths(p.root))
        for mig in local:
            assert f"Applying migration {mig.path.name}" in res.stderr + res.stdout

        # koepon sees exactly what the CLI applied: nothing pending, modified or missing ...
        status = p.koepon("db", "status", "--exit-code", db_url=pushed)
        assert status.returncode == 0, status.stdout
        assert p.koepon("db", "migrate", db_url=pushed).stdout.splitlines() == ["0 migration(s) applied"]

        # ... because it splits and records statements byte for byte as the CLI does
        recorded = {v: (n, s) for v, n, s in history(pushed)}
        assert set(recorded) == {m.version for m in local}
        for mig in local:
            name, statements = recorded[mig.version]
            assert name == mig.name
            assert statements == [s.text for s in sqlsplit.split(mig.path.read_text())], mig.path.name
        assert len(recorded["29991231000000"][1]) == 8

        # and `koepon db migrate` on a fresh database records the same history and schema
        assert p.koepon("db", "migrate", db_url=ours).returncode == 0
        assert history(ours) == history(pushed)
        assert schema_diff.dump_schema(ours) == schema_diff.dump_schema(pushed)

        # The other way round: koepon applies a new migration, the CLI agrees and has nothing to push.
        p.add("29991231000100_after_push.sql", "create table parity.later (id int);\n")
        assert p.koepon("db", "migrate", db_url=pushed).returncode == 0
        assert cli_list(supabase, p.root, pushed) == koepon_status(p, pushed)
        res = run_cli(supabase, p.root, "db", "push", f"--remote={as_url(pushed)}", "--yes")
        assert res.returncode == 0, res.stderr
        assert "up to date" in res.stdout + res.stderr
        assert p.koepon("db", "status", "--exit-code", db_url=pushed).returncode == 0
