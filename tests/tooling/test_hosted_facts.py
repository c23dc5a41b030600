"""The database as hosted Supabase builds it: the platform base's facts, then every migration
and every pgTAP file run as the non-superuser `postgres`.

Each fact is one that changes behaviour and that the base once got wrong; the sources are
cited in koepon/localstack/platform/*.sql.
"""

from __future__ import annotations

import psycopg
import pytest

from koepon import db
from koepon.db import migrations, testing
from koepon.settings import paths


@pytest.fixture(scope="module")
def hosted_db():
    """A brand-new database: platform base and every migration applied by `koepon db migrate`'s
    code as `postgres`, exactly as `koepon db migrate` does it."""
    admin = testing.admin_url()
    name = db.unique_name("koepon_hosted")
    url = db.create_database(admin, name)
    with psycopg.connect(url, autocommit=True) as conn:
        user, superuser = conn.execute(
            "select current_user, rolsuper from pg_roles where rolname = current_user").fetchone()
        applied = migrations.migrate(conn, paths(), echo=lambda _m: None)
    assert (user, superuser) == ("postgres", False), "migrations must run as a non-superuser postgres"
    assert applied == [m.path.name for m in migrations.local_migrations(paths())]
    yield url
    db.drop_database(admin, name)


def one(url: str, query: str, *args):
    with psycopg.connect(url) as conn:
        return conn.execute(query, args).fetchone()[0]


def test_postgres_is_not_a_superuser_and_supabase_admin_is(hosted_db):
    assert one(hosted_db, "select rolsuper from pg_roles where rolname = 'postgres'") is False
    assert one(hosted_db, "select rolsuper from pg_roles where rolname = 'supabase_admin'") is True
    # hosted's attributes for postgres (10000000000000_demote-postgres.sql)
    assert one(hosted_db, "select array[rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin] "
                          "from pg_roles where rolname = 'postgres'") == [True, True, True, True, True]


def test_the_api_login_role_reaches_no_superuser(hosted_db):
    assert one(hosted_db, """
        select coalesce(array_agg(r.rolname order by r.rolname), '{}') from pg_roles r
        where r.rolsuper and pg_has_role('authenticator', r.oid, 'member')""") == []
    assert one(hosted_db, """
        select array_agg(r.rolname order by r.rolname) from pg_roles r
        where r.rolname <> 'authenticator' and pg_has_role('authenticator', r.oid, 'member')""") \
        == ["anon", "authenticated", "service_role"]


def test_postgres_owns_nothing_of_auth_and_storage_and_creates_nothing_there(hosted_db):
    for role in ("supabase_auth_admin", "supabase_storage_admin", "supabase_realtime_admin", "supabase_admin"):
        assert one(hosted_db, "select pg_has_role('postgres', %s, 'member')", role) is False, role
    for schema in ("auth", "storage"):
        assert one(hosted_db, "select has_schema_privilege('postgres', %s, 'create')", schema) is False
        assert one(hosted_db, "select has_schema_privilege('postgres', %s, 'usage')", schema) is True
    with psycopg.connect(hosted_db) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("create table auth.mine (id int)")
    with psycopg.connect(hosted_db) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("alter table storage.objects add column mine int")


def test_rls_is_on_for_every_auth_table(hosted_db):
    assert one(hosted_db, """
        select coalesce(array_agg(relname order by relname), '{}') from pg_class
        where relnamespace = 'auth'::regnamespace and relkind = 'r' and not relrowsecurity""") == []
    assert one(hosted_db, "select count(*) from pg_class where relnamespace = 'auth'::regnamespace "
                          "and relkind = 'r'") >= 5


def test_auth_users_first_token_columns_default_to_null(hosted_db):
    defaults = dict(psycopg.connect(hosted_db).execute("""
        select column_name, column_default from information_schema.columns
        where table_schema = 'auth' and table_name = 'users'
          and column_name in ('confirmation_token', 'recovery_token', 'email_change_token_new',
                              'email_change', 'email_change_token_current', 'reauthentication_token')
    """).fetchall())
    assert defaults == {"confirmation_token": None, "recovery_token": None, "email_change_token_new": None,
                        "email_change": None, "email_change_token_current": "''::character varying",
                        "reauthentication_token": "''::character varying"}


def test_auth_sessions_has_hosted_columns_and_aal_is_an_enum(hosted_db):
    cols = dict(psycopg.connect(hosted_db).execute("""
        select attname, format_type(atttypid, atttypmod) from pg_attribute
        where attrelid = 'auth.sessions'::regclass and attnum > 0 and not attisdropped""").fetchall())
    assert cols["aal"] == "auth.aal_level"
    for col in ("oauth_client_id", "refresh_token_hmac_key", "refresh_token_counter", "scopes"):
        assert col in cols, col


def test_deleting_storage_rows_by_sql_is_refused(hosted_db):
    with psycopg.connect(hosted_db) as conn:
        conn.execute("insert into storage.buckets (id, name) values ('facts', 'facts')")
        conn.execute("insert into storage.objects (bucket_id, name) values ('facts', 'a.txt')")
        for table in ("storage.objects", "storage.buckets"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="Direct deletion"):
                with conn.transaction():
                    conn.execute(f"delete from {table}")
        # what the Storage API does: allowed for its transaction only
        with conn.transaction():
            conn.execute("set local storage.allow_delete_query = 'true'")
            assert conn.execute("delete from storage.objects where bucket_id = 'facts'").rowcount == 1
        conn.rollback()
    cols = {r[0] for r in psycopg.connect(hosted_db).execute(
        "select attname from pg_attribute where attrelid = 'storage.objects'::regclass and attnum > 0")}
    assert {"archived_at", "is_delete_marker", "is_versioned"} <= cols


def test_ddl_notifies_postgrest_to_reload_its_schema(hosted_db):
    with psycopg.connect(hosted_db, autocommit=True) as listener, psycopg.connect(hosted_db, autocommit=True) as conn:
        listener.execute("listen pgrst")
        conn.execute("create function public.facts_probe() returns int language sql as 'select 1'")
        conn.execute("drop function public.facts_probe()")
        notes = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
    assert notes == ["reload schema", "reload schema"]


def test_the_three_supautils_allowances_are_granted_and_no_more(hosted_db):
    with psycopg.connect(hosted_db) as conn:
        # privileged_role_allowed_configs: pgrst.* and session_replication_role
        conn.execute("alter role authenticator in database {} set pgrst.db_max_rows = '7'".replace(
            "{}", conn.info.dbname))
        conn.execute("alter role authenticator in database {} reset pgrst.db_max_rows".replace(
            "{}", conn.info.dbname))
        conn.execute("set local session_replication_role = replica")
        conn.rollback()
        for refused in ("set zero_damaged_pages = on",
                        "alter role authenticator set koepon.not_allowed = 'x'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute(refused)
        # policy_grants: a policy on storage.objects, without owning it afterwards
        acl_before = conn.execute(
            "select array_agg(c.oid::regclass::text || ':' || c.relowner::regrole::text || ':' || "
            "coalesce(a.privilege_type || a.is_grantable::text, '') order by 1) "
            "from pg_class c left join lateral aclexplode(c.relacl) a on a.grantee = 'postgres'::regrole "
            "where c.relnamespace in ('auth'::regnamespace, 'storage'::regnamespace)").fetchone()[0]
        conn.execute("create policy facts on storage.objects for select using (false)")
        conn.execute("drop policy facts on storage.objects")
        conn.execute("drop policy if exists facts_absent on auth.users")
        conn.commit()
        acl_after = conn.execute(
            "select array_agg(c.oid::regclass::text || ':' || c.relowner::regrole::text || ':' || "
            "coalesce(a.privilege_type || a.is_grantable::text, '') order by 1) "
            "from pg_class c left join lateral aclexplode(c.relacl) a on a.grantee = 'postgres'::regrole "
            "where c.relnamespace in ('auth'::regnamespace, 'storage'::regnamespace)").fetchone()[0]
        # compared as sets: the queries' `order by 1` orders by a constant, so the order is the
        # catalog's scan order, which the policy's catalog updates may change
        assert sorted(acl_after) == sorted(acl_before)
        assert conn.execute("select relowner::regrole::text from pg_class "
                            "where oid = 'storage.objects'::regclass").fetchone()[0] == "supabase_storage_admin"
        # ... and only for policies, only on the listed tables
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                conn.execute("alter table storage.objects disable row level security")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                conn.execute("create policy facts on supautils_local.policy_grant_loans using (true)")


def test_nobody_but_the_superuser_can_drive_the_allowance_machinery(hosted_db):
    for role in ("anon", "authenticated", "service_role", "authenticator"):
        assert one(hosted_db, "select has_schema_privilege(%s, 'supautils_local', 'usage')", role) is False
    # postgres reads every schema (pg_read_all_data, as on hosted) but can change nothing there,
    # and the ownership loan cannot be called outside a policy command
    for priv in ("insert", "update", "delete", "truncate"):
        assert one(hosted_db, "select has_table_privilege('postgres', 'supautils_local.policy_grant_loans', %s)",
                   priv) is False
    with psycopg.connect(hosted_db) as conn, pytest.raises(psycopg.errors.FeatureNotSupported):
        conn.execute("select supautils_local.lend_for_policy()")


def test_the_shared_test_databases_are_reached_as_the_non_superuser_postgres(db_url, seeded_db_url):
    """The privilege-matrix, attack and API suites use these fixtures."""
    for url in (db_url, seeded_db_url):
        assert one(url, "select current_user") == "postgres"
        assert one(url, "select rolsuper from pg_roles where rolname = current_user") is False
