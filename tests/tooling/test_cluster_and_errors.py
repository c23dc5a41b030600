"""The private cluster on its own data directory and port, and the one-line errors.

Never touches the shared cluster on 54322: every Cluster here has a temporary data directory
and a free port.
"""

from __future__ import annotations

import os
import pwd
import socket

import psycopg
import pytest

from koepon.db.cluster import SUPERUSER, Cluster
from koepon.errors import KoeponError
from koepon.settings import Paths

from .conftest import copy_project, free_port, one_line_error


@pytest.fixture()
def own_cluster(tmp_root):
    """A Cluster object for a temporary project (its data dir is under tmp_root/.koepon)."""
    cluster = Cluster(Paths(tmp_root), port=free_port())
    yield cluster
    cluster.destroy()


def test_cluster_start_stop_on_its_own_data_dir_and_port(own_cluster):
    c = own_cluster
    assert not c.initialised() and not c.running()
    assert c.start() is True
    try:
        assert c.running()
        url = f"postgresql://postgres@127.0.0.1:{c.port}/postgres"
        with psycopg.connect(url) as conn:
            assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
            assert conn.execute("show port").fetchone() == (str(c.port),)
            assert int(conn.execute("show server_version_num").fetchone()[0]) >= 150000
            assert conn.execute("select current_user").fetchone() == ("postgres",)
        if os.geteuid() == 0:
            # run as root, the server runs as (and its files belong to) the postgres OS user
            owner = pwd.getpwnam("postgres").pw_uid
            assert c.data.stat().st_uid == owner
            assert pwd.getpwuid(os.stat(f"/proc/{c.postmaster_pid()}").st_uid).pw_name == "postgres"
        assert c.start() is False                      # idempotent: already running
    finally:
        assert c.stop() is True
    assert not c.running()
    assert c.stop() is False
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{c.port}/postgres", connect_timeout=2)


def test_port_already_taken_is_one_clear_error(own_cluster):
    c = own_cluster
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", c.port))
        squatter.listen()
        with pytest.raises(KoeponError) as err:
            c.start()
    msg = str(err.value)
    assert f"port {c.port} is already taken" in msg and "--db-url" in msg
    assert "\n" not in msg
    assert not c.initialised()                         # no data directory left behind


def test_unreachable_database_is_one_line_naming_the_cause(tmp_root):
    p = copy_project(tmp_root)
    port = free_port()                                 # nothing listens there
    for args in (("db", "status"), ("db", "migrate"), ("db", "verify"), ("db", "lint", "--no-sqlfluff"),
                 ("db", "start")):
        line = one_line_error(p.koepon(*args, db_url=f"postgresql://postgres:pw@127.0.0.1:{port}/postgres"))
        assert "cannot reach the database" in line, line
        assert f"port={port}" in line and "Connection refused" in line, line
        assert "pw" not in line.replace("password=***", "")   # password redacted
        assert "koepon db start" in line                      # what to do


def test_missing_database_is_one_line(tmp_root, server):
    p = copy_project(tmp_root)
    url = psycopg.conninfo.make_conninfo(server, dbname="koepon_no_such_database")
    line = one_line_error(p.koepon("db", "status", db_url=url))
    assert 'database "koepon_no_such_database" does not exist' in line


def test_unexpected_database_errors_are_one_line(tmp_root, empty_db):
    """A role that may not read the history table gets a one-line error, not a traceback."""
    p = copy_project(tmp_root)
    role = f"koepon_nobody_{os.getpid()}"
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(f"create role {role} login")
        conn.execute("create schema supabase_migrations")
        conn.execute("create table supabase_migrations.schema_migrations (version text primary key, "
                     "statements text[], name text)")
    try:
        url = psycopg.conninfo.make_conninfo(empty_db, user=role, password="")
        line = one_line_error(p.koepon("db", "status", db_url=url))
        assert "permission denied for schema supabase_migrations" in line and "42501" in line
    finally:
        with psycopg.connect(empty_db, autocommit=True) as conn:
            conn.execute(f"drop role {role}")


def test_a_cluster_made_with_older_settings_gets_the_current_ones_at_its_next_start(own_cluster):
    """A setting whose value changed since the cluster was made (here: preload libraries without
    pg_cron, wal_level replica, as older koepon wrote them) takes the current value at the next start."""
    c = own_cluster
    c.start()
    c.stop()
    with open(c.data / "postgresql.auto.conf", "a") as conf:
        conf.write("shared_preload_libraries = 'pg_stat_statements'\nwal_level = 'replica'\n")
    c.start()
    with psycopg.connect(f"postgresql://{SUPERUSER}@127.0.0.1:{c.port}/postgres") as conn:
        assert conn.execute("show wal_level").fetchone() == ("logical",)
        assert conn.execute("show shared_preload_libraries").fetchone() == ("pg_stat_statements,pg_cron",)
