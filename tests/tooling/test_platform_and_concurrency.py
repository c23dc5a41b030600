"""The platform base (idempotent, never on real Supabase) and concurrent `koepon db migrate`."""

from __future__ import annotations

import json

from koepon import db
from koepon.db import platform_base as platform
from koepon.db import schema_diff
from koepon.settings import Paths

from .conftest import ROOT, execute, history, query


def test_platform_base_applies_idempotently_twice(empty_db):
    paths = Paths(ROOT)
    with db.connect(empty_db, autocommit=True) as conn:
        assert platform.state(conn) == "absent" and platform.needed(conn)
        assert platform.apply(conn, paths) is True
        assert platform.state(conn) == "local" and not platform.needed(conn)
        assert not platform.stale(conn, paths)
        first = schema_diff.dump_schema(empty_db)
        assert platform.apply(conn, paths) is True        # again: no error ...
    assert schema_diff.dump_schema(empty_db) == first      # ... and not a byte of difference
    # what the migrations rely on is there
    assert query(empty_db, "select count(*) from pg_roles where rolname in ('anon', 'authenticated', "
                           "'service_role', 'authenticator', 'supabase_admin', 'supabase_auth_admin', "
                           "'supabase_storage_admin')") == [(7,)]
    assert query(empty_db, "select nspname, pg_get_userbyid(nspowner) from pg_namespace "
                           "where nspname in ('auth', 'storage') order by 1") == [
        ("auth", "supabase_admin"), ("storage", "supabase_admin")]
    assert query(empty_db, "select to_regclass('auth.users') is not null, to_regproc('auth.uid') is not null, "
                           "to_regclass('storage.objects') is not null, "
                           "exists (select from pg_publication where pubname = 'supabase_realtime'), "
                           "exists (select from pg_extension where extname = 'pgcrypto')") == [
        (True, True, True, True, True)]


def test_platform_base_is_applied_once_by_migrate(base_project):
    """Re-applying it would undo what migrations changed in the platform's default grants."""
    p = base_project
    p.add("20260101000000_revoke_defaults.sql", """
        alter default privileges for role postgres in schema public
          revoke execute on functions from anon, authenticated, service_role;
    """)
    assert p.koepon("db", "migrate").returncode == 0
    p.add("20260101000100_new_function.sql", """
        create function public.later() returns int language sql as $$ select 1 $$;
        comment on function public.later() is 'A function created after the revocation.';
    """)
    res = p.koepon("db", "migrate")
    assert res.returncode == 0, res.stderr
    assert "platform base" not in res.stdout
    # no grant to anon of its own (the platform base's default would give one)
    assert query(p.db_url, "select array(select a.grantee::regrole::text from pg_proc p, "
                           "aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
                           "where p.oid = 'public.later()'::regprocedure and a.grantee <> 0 "
                           "order by 1)") == [(["postgres"],)]

    # sql/platform changed since: migrate says so, and does not re-apply it on its own
    (p.root / "koepon" / "localstack" / "platform" / "99_extra.sql").write_text("create schema if not exists extra;\n")
    p.add("20260101000200_noop.sql", "select 1;\n")
    res = p.koepon("db", "migrate")
    assert res.returncode == 0, res.stderr
    assert "warning: sql/platform changed since this database was built" in res.stdout
    assert query(p.db_url, "select to_regnamespace('extra')") == [(None,)]


def test_platform_base_is_skipped_on_a_real_supabase_project(base_project):
    p = base_project
    # What a hosted project looks like to us: an auth schema that is not ours.
    execute(p.db_url, "create schema auth; comment on schema auth is 'Auth: Manages user identities';"
                      "create table auth.users (id uuid primary key)")
    with db.connect(p.db_url, autocommit=True) as conn:
        assert platform.state(conn) == "supabase" and not platform.needed(conn)
        assert platform.apply(conn, Paths(p.root)) is False
    p.add("20260101000000_create_app.sql", "create schema app;\n"
                                           "create table app.t (user_id uuid references auth.users);\n")
    res = p.koepon("db", "migrate")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["applying 20260101000000_create_app.sql", "1 migration(s) applied"]
    # none of the base was laid over it
    assert query(p.db_url, "select to_regnamespace('storage'), to_regnamespace('extensions'), "
                           "to_regproc('auth.uid'), obj_description('auth'::regnamespace)") == [
        (None, None, None, "Auth: Manages user identities")]
    assert json.loads(p.koepon("db", "status", "--json").stdout)["clean"] is True


def test_concurrent_migrate_runs_do_not_interleave(base_project):
    p = base_project
    # Each migration is slow and not re-runnable: an interleaved second run would fail on it.
    for i in range(4):
        p.add(f"2026010100{i:02d}00_step_{i}.sql", f"""
            create table public.step_{i} (id int);
            select pg_sleep(0.3);
            insert into public.step_{i} values ({i});
        """)
    runs = [p.popen("db", "migrate") for _ in range(3)]
    results = [(*r.communicate(timeout=120), r.returncode) for r in runs]
    for _out, err, code in results:
        assert code == 0, err
    applied = sorted(int(out.splitlines()[-1].split()[0]) for out, _, _ in results)
    assert applied == [0, 0, 4]                                       # one run did all the work
    assert [v for v, _, _ in history(p.db_url)] == [f"2026010100{i:02d}00" for i in range(4)]
    for i in range(4):
        assert query(p.db_url, f"select id from public.step_{i}") == [(i,)]


def test_first_runs_in_several_databases_of_one_cluster_at_once(base_project, server):
    """Roles are cluster-wide: parallel platform-base runs (e.g. pytest -n) must not collide."""
    p = base_project
    p.add("20260101000000_create_app.sql", "create schema app;\n")
    names = [db.unique_name("koepon_tooling_par") for _ in range(4)]
    urls = [db.create_database(server, n) for n in names]
    try:
        runs = [p.popen("db", "migrate", db_url=u) for u in urls]
        for r in runs:
            out, err = r.communicate(timeout=120)
            assert r.returncode == 0, err
        for u in urls:
            assert [v for v, _, _ in history(u)] == ["20260101000000"]
    finally:
        for n in names:
            db.drop_database(server, n)
