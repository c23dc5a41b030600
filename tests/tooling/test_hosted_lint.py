"""`koepon db lint`'s rules for what hosted Supabase refuses (koepon/db/hosted_lint.py)."""

from __future__ import annotations

import psycopg
import pytest

from koepon.db import hosted_lint, migrations
from koepon.settings import paths

# What a superuser-free server would say about a setting: enough of pg_settings for the rules.
CONTEXT = {"statement_timeout": "user", "session_replication_role": "superuser",
           "log_statement": "superuser", "zero_damaged_pages": "superuser",
           "shared_buffers": "postmaster"}


def rules(sql: str) -> list[tuple[str, str]]:
    return [f for st in hosted_lint.statements(sql) for f in hosted_lint.statement_findings(st, CONTEXT)]


@pytest.mark.parametrize("sql, expected", [
    ("alter system set work_mem = '1GB'", "ALTER SYSTEM"),
    ("load 'auto_explain'", "LOAD"),
    ("copy app.t from '/etc/passwd'", "COPY"),
    ("copy app.t to program 'cat'", "COPY"),
    ("create role boss superuser", "SUPERUSER"),
    ("create function f() returns int language plpython3u as 'return 1'", "plpython3u"),
    ("create extension adminpack", "adminpack"),
    ("create publication everything for all tables", "FOR ALL TABLES"),
    ("set zero_damaged_pages = on", "zero_damaged_pages"),
    ("alter database postgres set log_statement = 'all'", "log_statement"),
    ("alter role authenticator set myapp.flag = 'on'", "myapp.flag"),
    # inside a DO block and inside a function body too
    ("do $$ begin alter system set work_mem = '1GB'; end $$", "ALTER SYSTEM"),
    ("create function f() returns void language sql as $$ load 'x' $$", "LOAD"),
])
def test_statements_that_need_a_superuser_are_found(sql, expected):
    found = rules(sql)
    assert any(rule == "needs_superuser" and expected in detail for rule, detail in found), found


@pytest.mark.parametrize("sql, expected", [
    ("grant supabase_admin to postgres", "supabase_admin"),
    ("grant pg_read_server_files to app_reader", "pg_read_server_files"),
    ("grant authenticator to app_api", "authenticator"),
    ("grant app_role to supabase_auth_admin", "supabase_auth_admin"),
    ("alter role supabase_storage_admin nologin", "supabase_storage_admin"),
    ("alter role anon nologin", "anon"),
    ("alter role dashboard_user set search_path = public", "dashboard_user"),
    ("drop role authenticated", "authenticated"),
    ("alter role service_role rename to sr", "service_role"),
    ("alter role postgres nobypassrls", "postgres"),
    ("alter table app.t owner to supabase_admin", "supabase_admin"),
    ("alter function app.f() owner to supabase_auth_admin", "supabase_auth_admin"),
])
def test_reserved_roles_are_found(sql, expected):
    found = rules(sql)
    assert any(rule == "reserved_role" and expected in detail for rule, detail in found), found


@pytest.mark.parametrize("sql", [
    # what hosted allows postgres, which our migrations rely on
    "alter role authenticator set pgrst.db_pre_request = 'private.check_request'",
    "set local session_replication_role = replica",
    "alter role anon set statement_timeout = '3s'",
    "grant anon to authenticator",
    "grant app_role to authenticator",
    "create extension if not exists pg_cron",
    "create extension pgtap with schema extensions",
    "copy app.t from stdin",
    "create policy p on storage.objects for select using (true)",
    "create function f() returns int language plpgsql as $$ begin return 1; end $$",
])
def test_what_hosted_allows_is_not_reported(sql):
    assert rules(sql) == []


def test_unguarded_writes_are_found_in_nested_statements():
    assert hosted_lint.unguarded_writes("delete from app.t") == ["DELETE app.t without WHERE"]
    assert hosted_lint.unguarded_writes("with x as (update app.t set a = 1 returning 1) select * from x") \
        == ["UPDATE app.t without WHERE"]
    assert hosted_lint.unguarded_writes("delete from app.t where true") == []


def test_safeupdate_reports_api_reachable_functions_only(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("""
            create table app.lint_t (a int);
            create function private.lint_wipe() returns void language plpgsql set search_path = '' as $$
            begin delete from app.lint_t; end $$;
            create function public.lint_api() returns void language sql security definer set search_path = ''
              as $$ select private.lint_wipe() $$;
            revoke all on function private.lint_wipe() from public;
            revoke all on function public.lint_api() from public;
            grant execute on function public.lint_api() to authenticated;
            create function private.lint_cron_only() returns void language sql set search_path = ''
              as $$ update app.lint_t set a = 0 $$;
            revoke all on function private.lint_cron_only() from public;
        """)
        found = hosted_lint.safeupdate_findings(conn)
    names = {f.where for f in found}
    # reached from an API function by name: reported; run only by postgres (pg_cron): not
    assert "private.lint_wipe()" in names, found
    assert not any("lint_cron_only" in n for n in names), found


def test_our_migrations_have_no_findings(db_url):
    with psycopg.connect(db_url) as conn:
        found = hosted_lint.findings(conn, [m.path for m in migrations.local_migrations(paths())])
    assert found == [], "\n".join(map(str, found))
