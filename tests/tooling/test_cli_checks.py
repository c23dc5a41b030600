"""`koepon db new`, `db verify`, `db lint`, `db test`, `db reset`: the checks a DBA runs."""

from __future__ import annotations

import datetime as dt
import re
import time

from koepon import db

from .conftest import committed_project, execute, history, one_line_error, query

DEMO_FUNCTION = """
-- The demo API: one function, re-runnable.
create or replace function public.demo_answer() returns int
language sql stable as $$ select 42 $$;
comment on function public.demo_answer() is 'The answer.';
"""

SCHEMA = """
create schema app;
create table app.things (id int primary key);
alter table app.things enable row level security;
"""


def test_db_new_names_the_file_and_carries_sql_files(base_project):
    p = base_project
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    res = p.koepon("db", "new", "add_things")
    after = dt.datetime.now(dt.UTC)
    assert res.returncode == 0, res.stderr
    rel = res.stdout.strip()
    m = re.fullmatch(r"supabase/migrations/(\d{14})_add_things\.sql", rel)
    assert m, rel
    stamp = dt.datetime.strptime(m.group(1), "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    assert before <= stamp <= after                          # UTC, not local time
    assert (p.root / rel).read_text() == "-- add_things\n"

    p.write("sql/demo/10_api.sql", DEMO_FUNCTION)
    p.write("sql/demo/20_more.sql", "select 1;\n")
    # Same second as the first: refused (versions are unique), then fine a second later.
    res = p.koepon("db", "new", "ship_demo_api", "--from", "sql/demo/10_api.sql",
                   "--from", str(p.root / "sql/demo/20_more.sql"))
    if res.returncode != 0:
        assert "wait a second and retry" in one_line_error(res)
        time.sleep(1.05)
        res = p.koepon("db", "new", "ship_demo_api", "--from", "sql/demo/10_api.sql",
                       "--from", str(p.root / "sql/demo/20_more.sql"))
    assert res.returncode == 0, res.stderr
    text = (p.root / res.stdout.strip()).read_text()
    assert text == ("-- from sql/demo/10_api.sql\n" + DEMO_FUNCTION.strip() + "\n\n"
                    "-- from sql/demo/20_more.sql\nselect 1;\n")

    for args, needle in [
        (("db", "new", "Bad-Name"), "snake_case"),
        (("db", "new", "x", "--from", "sql/demo/nope.sql"), "not found"),
        (("db", "new", "x", "--from", "supabase/seed.sql"), "under"),
    ]:
        assert needle in one_line_error(p.koepon(*args))
    assert len(list(p.migrations.glob("*.sql"))) == 2


def test_verify_catches_sql_changed_without_a_migration(base_project):
    p = base_project
    p.add("20260101000000_create_app.sql", SCHEMA)
    p.write("sql/demo/10_api.sql", DEMO_FUNCTION)
    # sql/ defines a function no migration ships: verify fails and says what to do.
    res = p.koepon("db", "verify")
    line = one_line_error(res)
    assert "sql/ and supabase/migrations disagree" in line and "koepon db new" in line
    assert "+CREATE FUNCTION public.demo_answer()" in res.stdout

    # Shipping it with `db new --from` makes them agree.
    assert p.koepon("db", "new", "ship_demo_api", "--from", "sql/demo/10_api.sql").returncode == 0
    res = p.koepon("db", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "sql/ and migrations agree"

    # Changing the definition in sql/ alone is caught again.
    p.write("sql/demo/10_api.sql", DEMO_FUNCTION.replace("select 42", "select 43"))
    res = p.koepon("db", "verify")
    assert res.returncode == 1
    assert "-    AS $$ select 42 $$;" in res.stdout and "+    AS $$ select 43 $$;" in res.stdout

    # A sql/ file that does not re-run is named.
    p.write("sql/demo/10_api.sql", "create function public.demo_answer() returns int "
                                   "language sql as $$ select 42 $$;\n")
    line = one_line_error(p.koepon("db", "verify"))
    assert "sql/demo/10_api.sql does not re-run" in line and "already exists" in line



def test_verify_passes_on_the_real_tree(tmp_root, empty_db):
    """The committed tree (HEAD): work in progress in the checkout is not yet the real tree."""
    p = committed_project(tmp_root)
    res = p.koepon("db", "verify", db_url=empty_db)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    assert res.stdout.strip() == "sql/ and migrations agree"


BAD_MIGRATION = """
create schema app;
create schema private;
-- rule: no table in public
create table public.leaky (id int);
-- rule: RLS on every app table
create table app.open_table (id int);
create table app.closed_table (id int);
alter table app.closed_table enable row level security;
-- rule: definer functions pin search_path (and are not executable by anon / public)
create function private.definer_no_path() returns int
language sql security definer as $$ select 1 $$;
create function private.definer_ok() returns int
language sql security definer set search_path = '' as $$ select 1 $$;
revoke execute on function private.definer_ok() from public;
-- rule: public functions carry a comment (and every function states its grants)
create function public.undocumented() returns int language sql as $$ select 1 $$;
-- rule: views are security_invoker
create view public.definer_view as select 1 as one;
create view public.invoker_view with (security_invoker = true) as select 1 as one;
comment on function public.undocumented() is null;
"""


def test_lint_names_object_and_rule(base_project):
    p = base_project
    p.add("20260101000000_bad_hygiene.sql", BAD_MIGRATION)
    res = p.koepon("db", "lint", "--no-sqlfluff")
    line = one_line_error(res)
    assert "hygiene finding" in line
    findings = set(res.stdout.splitlines())
    expected = {
        "hygiene: no_table_in_public: public.leaky",
        "hygiene: rls_enabled_on_app_tables: app.open_table",
        "hygiene: definer_has_pinned_search_path: private.definer_no_path()",
        "hygiene: definer_not_executable_by_anon_or_public: private.definer_no_path()",
        "hygiene: function_grants_are_explicit: private.definer_no_path()",
        "hygiene: function_grants_are_explicit: public.undocumented()",
        "hygiene: public_function_has_comment: public.undocumented()",
        "hygiene: view_is_security_invoker: public.definer_view",
    }
    assert findings == expected, res.stdout
    # lint migrates its own throwaway database: the target database is untouched
    assert query(p.db_url, "select to_regclass('public.leaky')") == [(None,)]


def test_lint_names_what_hosted_supabase_would_refuse(base_project):
    p = base_project
    p.add("20260101000000_create_app.sql", SCHEMA)
    p.add("20260101000100_unguarded.sql", """
create table app.lint_notes (id int primary key, body text);
alter table app.lint_notes enable row level security;
create function public.wipe_notes() returns void language sql set search_path = '' as $$
  delete from app.lint_notes
$$;
comment on function public.wipe_notes() is 'Deletes every note.';
revoke all on function public.wipe_notes() from public;
grant execute on function public.wipe_notes() to authenticated;
""")
    res = p.koepon("db", "lint", "--no-sqlfluff")
    assert res.returncode == 1
    assert "hosted: safeupdate: public.wipe_notes(): DELETE app.lint_notes without WHERE" in res.stdout, res.stdout
    assert "(0 hygiene finding(s)), 1 finding(s) hosted Supabase would refuse" in res.stderr, res.stderr


def test_lint_clean_project_and_sqlfluff(base_project):
    p = base_project
    p.add("20260101000000_create_app.sql", SCHEMA)
    res = p.koepon("db", "lint", "--no-sqlfluff")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "lint clean"

    # sqlfluff with the committed config: upper-case keywords are a finding, with file and rule
    p.add("20260101000100_shouty.sql", "CREATE TABLE app.more (id int primary key);\n"
                                       "alter table app.more enable row level security;\n")
    res = p.koepon("db", "lint")
    assert res.returncode == 1
    assert "20260101000100_shouty.sql" in res.stdout and "CP01" in res.stdout, res.stdout
    assert "(0 hygiene finding(s))" in res.stderr


def test_db_test_reports_pgtap_failures(base_project):
    p = base_project
    p.add("20260101000000_create_app.sql", SCHEMA)
    tests = p.root / "supabase" / "tests" / "database"
    (tests / "01_passing.test.sql").write_text(
        "begin;\nselect plan(2);\nselect has_table('app', 'things', 'app.things exists');\n"
        "select ok(true, 'truth');\nselect * from finish();\nrollback;\n")
    (tests / "02_failing.test.sql").write_text(
        "begin;\nselect plan(2);\nselect ok(true, 'fine');\n"
        "select is(1 + 1, 3, 'deliberately failing arithmetic');\n"
        "select * from finish();\nrollback;\n")
    (tests / "03_short.test.sql").write_text(
        "begin;\nselect plan(3);\nselect ok(true, 'only one of three');\n"
        "select * from finish();\nrollback;\n")
    (tests / "04_broken.test.sql").write_text(
        "begin;\nselect plan(2);\nselect ok(true, 'before the error');\n"
        "select * from app.no_such_table;\nrollback;\n")
    (tests / "05_todo.test.sql").write_text(
        "begin;\nselect plan(2);\nselect ok(true, 'fine');\n"
        "select todo('not built yet', 1);\nselect ok(false, 'future feature');\n"
        "select * from finish();\nrollback;\n")
    res = p.koepon("db", "test")
    line = one_line_error(res)
    assert line == "koepon: 3 pgTAP file(s) failed"
    out = res.stdout
    assert "01_passing.test.sql: 2 passed, 0 failed (planned 2)" in out
    assert "02_failing.test.sql: 1 passed, 1 failed (planned 2)" in out
    assert "not ok: deliberately failing arithmetic" in out
    assert "#         have: 2" in out and "#         want: 3" in out
    assert "03_short.test.sql: 1 passed, 0 failed (planned 3)" in out
    assert "05_todo.test.sql: 2 passed, 0 failed (planned 2)" in out   # a TODO failure is not one
    # the TAP before an error is kept, and the error names its line
    assert "04_broken.test.sql: 1 passed, 0 failed (planned 2)" in out
    assert 'error: line 4: 42P01: relation "app.no_such_table" does not exist' in out

    for f in ("02_failing", "03_short", "04_broken"):
        (tests / f"{f}.test.sql").unlink()
    res = p.koepon("db", "test")
    assert res.returncode == 0, res.stdout + res.stderr


def test_reset_refuses_a_non_local_database(base_project):
    p = base_project
    hosted = "postgresql://postgres:secret@db.abcdefghijklmnop.supabase.co:5432/postgres"
    line = one_line_error(p.koepon("db", "reset", db_url=hosted))
    assert "refusing to reset non-local" in line and "--yes-really" in line
    assert "secret" not in line                                  # the password is redacted
    # seeding known passwords into a hosted project is refused the same way
    assert "local databases only" in one_line_error(p.koepon("db", "seed", db_url=hosted))


def test_reset_rebuilds_a_local_database(base_project, server):
    p = base_project
    p.add("20260101000000_create_app.sql", SCHEMA)
    p.write("supabase/seed.sql", "insert into app.things values (1), (2);\n")
    assert p.koepon("db", "migrate").returncode == 0
    execute(p.db_url, "insert into app.things values (99); create table app.scratch (x int)")
    res = p.koepon("db", "reset")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == f"reset {db.dbname(p.db_url)}: migrated and seeded"
    assert query(p.db_url, "select id from app.things order by id") == [(1,), (2,)]
    assert query(p.db_url, "select to_regclass('app.scratch')") == [(None,)]
    assert [v for v, _, _ in history(p.db_url)] == ["20260101000000"]
    assert query(p.db_url, "select path from supabase_migrations.seed_files") == [
        ("supabase/seed.sql",)]
