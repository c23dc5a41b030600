"""`koepon db migrate` and `koepon db status` against throwaway databases and a temp project."""

from __future__ import annotations

import json
import re

from koepon.db import sqlsplit

from .conftest import history, one_line_error, query

M1 = "20260101000000_create_demo.sql"
M2 = "20260101000100_add_second_step.sql"
M3 = "20260102000000_add_function.sql"

M1_SQL = """
-- The demo schema and a log of the steps migrations took, in order.
create schema demo;
create table demo.steps (n serial primary key, step text not null);
insert into demo.steps (step) values ('first; with a semicolon');
"""
M2_SQL = """
insert into demo.steps (step) values ('second');
"""
M3_SQL = """
create function demo.answer() returns int
language plpgsql as $body$
begin
  -- a semicolon inside the body; must not split
  return 42;
end
$body$;
insert into demo.steps (step) values ('third');
"""


def add_all(project):
    # Written newest first: the order on disk is the file names', not creation order.
    project.add(M3, M3_SQL)
    project.add(M2, M2_SQL)
    project.add(M1, M1_SQL)


def steps(url):
    return [r[0] for r in query(url, "select step from demo.steps order by n")]


def test_migrate_applies_pending_in_order_and_records_them(base_project):
    p = base_project
    add_all(p)
    res = p.koepon("db", "migrate")
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out == ["applying the platform base (sql/platform)", f"applying {M1}",
                   f"applying {M2}", f"applying {M3}", "3 migration(s) applied"]
    assert steps(p.db_url) == ["first; with a semicolon", "second", "third"]
    assert query(p.db_url, "select demo.answer()") == [(42,)]

    rows = history(p.db_url)
    assert [(v, n) for v, n, _ in rows] == [
        ("20260101000000", "create_demo"), ("20260101000100", "add_second_step"),
        ("20260102000000", "add_function")]
    # statements as the Supabase CLI records them: one entry per statement, no trailing `;`
    for (_, _, statements), name in zip(rows, (M1, M2, M3), strict=True):
        expected = [s.text for s in sqlsplit.split((p.migrations / name).read_text())]
        assert statements == expected
    assert rows[0][2] == [
        "-- The demo schema and a log of the steps migrations took, in order.\ncreate schema demo",
        "create table demo.steps (n serial primary key, step text not null)",
        "insert into demo.steps (step) values ('first; with a semicolon')",
    ]
    assert len(rows[2][2]) == 2 and "return 42;" in rows[2][2][0]

    # A second run has nothing to do and leaves everything as it was.
    again = p.koepon("db", "migrate")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["0 migration(s) applied"]
    assert steps(p.db_url) == ["first; with a semicolon", "second", "third"]
    status = p.koepon("db", "status", "--exit-code")
    assert status.returncode == 0, status.stdout
    assert status.stdout.splitlines()[-1] == "clean"


def test_dry_run_changes_nothing(base_project):
    p = base_project
    add_all(p)
    res = p.koepon("db", "migrate", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "would apply the platform base (sql/platform)", f"would apply {M1}",
        f"would apply {M2}", f"would apply {M3}", "3 migration(s) pending"]
    # Not even the platform base or the history table.
    assert query(p.db_url, "select nspname from pg_namespace where nspname in "
                           "('auth', 'storage', 'extensions', 'supabase_migrations', 'demo')") == []

    (p.migrations / M2).rename(p.root / M2)
    (p.migrations / M3).rename(p.root / M3)
    assert p.koepon("db", "migrate").returncode == 0
    (p.root / M2).rename(p.migrations / M2)
    (p.root / M3).rename(p.migrations / M3)
    before = history(p.db_url)
    res = p.koepon("db", "migrate", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"would apply {M2}", f"would apply {M3}",
                                       "2 migration(s) pending"]
    assert history(p.db_url) == before
    assert steps(p.db_url) == ["first; with a semicolon"]


def test_broken_migration_is_rolled_back_and_located(base_project):
    p = base_project
    p.add(M1, M1_SQL)
    broken = p.add(M2, """
        create table demo.half_done (id int);
        insert into demo.steps (step) values ('second');

        select id,
               no_such_column
        from demo.half_done;
    """)
    p.add(M3, M3_SQL)
    res = p.koepon("db", "migrate")
    line = one_line_error(res)
    assert f"{M2}:5: " in line, line                      # the line of the bad column
    assert 'column "no_such_column" does not exist' in line
    assert "rolled back" in line
    assert res.stdout.splitlines()[-1] == f"applying {M2}"   # M3 never attempted

    # Nothing of M2 remains; M1 stays applied; M3 was not applied.
    assert query(p.db_url, "select to_regclass('demo.half_done')") == [(None,)]
    assert steps(p.db_url) == ["first; with a semicolon"]
    assert [v for v, _, _ in history(p.db_url)] == ["20260101000000"]
    assert query(p.db_url, "select to_regproc('demo.answer')") == [(None,)]
    st = json.loads(p.koepon("db", "status", "--json").stdout)
    assert st["applied"] == [M1] and st["pending"] == [M2, M3]

    # A syntax error is located too, on the statement's own line.
    broken.write_text("insert into demo.steps (step) values ('x');\n\ncreate tabel demo.oops (id int);\n")
    line = one_line_error(p.koepon("db", "migrate"))
    assert f"{M2}:3: " in line and 'syntax error at or near "tabel"' in line, line
    assert steps(p.db_url) == ["first; with a semicolon"]

    # Fixed (it never landed, so it may still change): the rest applies.
    broken.write_text(M2_SQL)
    res = p.koepon("db", "migrate")
    assert res.returncode == 0, res.stderr
    assert steps(p.db_url) == ["first; with a semicolon", "second", "third"]


def test_edited_landed_migration_is_reported_and_refused(base_project):
    p = base_project
    add_all(p)
    assert p.koepon("db", "migrate").returncode == 0

    # Reformatting and comments are not a change to what ran.
    path = p.migrations / M1
    path.write_text("-- reworded comment\n" + M1_SQL.replace("create schema demo;", "create   schema\n demo ;"))
    assert p.koepon("db", "status", "--exit-code").returncode == 0

    # A change to what runs is.
    path.write_text(M1_SQL + "insert into demo.steps (step) values ('sneaked in');\n")
    res = p.koepon("db", "status", "--exit-code")
    assert res.returncode == 1
    assert f"modified {M1}" in res.stdout.splitlines()
    assert res.stdout.splitlines()[-1] == "not clean"
    st = json.loads(p.koepon("db", "status", "--json").stdout)
    assert st["modified"] == [M1] and st["clean"] is False
    # Without --exit-code, status only reports.
    assert p.koepon("db", "status").returncode == 0

    p.add("20260103000000_more.sql", "insert into demo.steps (step) values ('more');\n")
    line = one_line_error(p.koepon("db", "migrate"))
    assert M1 in line and "edited afterwards" in line and "append-only" in line
    assert steps(p.db_url) == ["first; with a semicolon", "second", "third"]  # nothing ran


def test_missing_on_disk_is_reported_and_refused(base_project):
    p = base_project
    add_all(p)
    assert p.koepon("db", "migrate").returncode == 0
    (p.migrations / M2).unlink()
    res = p.koepon("db", "status", "--exit-code")
    assert res.returncode == 1
    assert "missing  20260101000100" in res.stdout.splitlines()
    st = json.loads(p.koepon("db", "status", "--json").stdout)
    assert st == {"applied": [M1, M3], "pending": [], "modified": [],
                  "missing": ["20260101000100"], "clean": False}
    p.add("20260103000000_more.sql", "select 1;\n")
    line = one_line_error(p.koepon("db", "migrate"))
    assert "20260101000100" in line and "not found" in line


def test_status_json_and_exit_code_with_pending(base_project):
    p = base_project
    p.add(M1, M1_SQL)
    assert p.koepon("db", "migrate").returncode == 0
    p.add(M2, M2_SQL)
    p.add(M3, M3_SQL)
    p.add("README_not_a_migration.sql", "select 1;\n")  # no version: ignored, as the CLI does
    res = p.koepon("db", "status", "--json", "--exit-code")
    assert res.returncode == 1
    assert json.loads(res.stdout) == {"applied": [M1], "pending": [M2, M3], "modified": [],
                                      "missing": [], "clean": False}
    text = p.koepon("db", "status").stdout.splitlines()
    assert text == [f"applied  {M1}", f"pending  {M2}", f"pending  {M3}", "not clean"]


def test_status_before_anything_was_applied(base_project):
    p = base_project
    p.add(M1, M1_SQL)
    res = p.koepon("db", "status", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pending"] == [M1]


def test_comment_only_tail_is_recorded_but_not_run(base_project):
    p = base_project
    p.add(M1, M1_SQL + "-- trailing remark, recorded as its own statement by the Supabase CLI\n")
    assert p.koepon("db", "migrate").returncode == 0, "comment-only statement must not fail"
    (_, _, statements), = history(p.db_url)
    assert statements[-1].startswith("-- trailing remark")
    assert len(statements) == 4
    assert re.fullmatch(r"\d{14}", history(p.db_url)[0][0])
