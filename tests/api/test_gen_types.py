"""`koepon gen types typescript` writes a `Database` type supabase-js type-checks against: a
file using it with embeds and RPCs compiles with the pinned TypeScript, a deliberately wrong
call does not (npm packages shared with tests/api/test_client_checklist_js.py)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_client_checklist_js import ENV, node_modules

from koepon.cli import main

TS = Path(__file__).with_name("ts")

TSCONFIG = """{"compilerOptions": {"strict": true, "noEmit": true, "target": "es2022", "module": "esnext",
 "moduleResolution": "bundler", "skipLibCheck": true}, "files": ["%s"]}"""


@pytest.fixture(scope="module")
def database_ts(seeded_db_url) -> str:
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(seeded_db_url)
    url = f"postgresql://{d['user']}:{d['password']}@{d['host']}:{d['port']}/{d['dbname']}"
    res = CliRunner().invoke(main, ["gen", "types", "typescript", "--db-url", url])
    assert res.exit_code == 0, res.output
    return res.output


def test_shape_matches_the_supabase_cli(database_ts):
    assert database_ts.startswith("export type Json =")
    assert "export type Database = {" in database_ts
    for part in ("Tables: {", "Views: {", "Functions: {", "Enums: {", "CompositeTypes: {",
                 'foreignKeyName: "gacha_items_gacha_id_fkey"', 'referencedRelation: "gachas"',
                 "create_order: { Args: { p_gacha_id: string; p_pull_count: number; p_idempotency_key: string }; "
                 "Returns: Json }", "export type Tables<", "export const Constants"):
        assert part in database_ts, part


def _tsc(database_ts: str, source: Path) -> subprocess.CompletedProcess:
    modules = node_modules()
    work = modules.parent / f"typecheck-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        (work / "database.ts").write_text(database_ts)
        shutil.copyfile(source, work / source.name)
        (work / "tsconfig.json").write_text(TSCONFIG % source.name)
        return subprocess.run([str(modules / ".bin" / "tsc"), "-p", str(work)], capture_output=True, text=True,
                              env=ENV, timeout=300, cwd=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_typed_queries_compile(database_ts):
    res = _tsc(database_ts, TS / "check_ok.ts")
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_wrong_call_does_not_compile(database_ts):
    res = _tsc(database_ts, TS / "check_wrong.ts")
    assert res.returncode != 0
    assert "check_wrong.ts(8," in res.stdout and "p_pull_count" in res.stdout, res.stdout
