"""Connections and throwaway databases in one server."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import KoeponError
from ..settings import app_url


def connect(url: str, **kwargs) -> psycopg.Connection:
    try:
        return psycopg.connect(url, connect_timeout=5, **kwargs)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreachable"
        raise KoeponError(
            f"cannot reach the database at {redact(url)}: {first}; start it with "
            "`koepon db start` or check --db-url / KOEPON_DB_URL"
        ) from exc


def redact(url: str) -> str:
    info = conninfo_to_dict(url)
    if info.get("password"):
        info["password"] = "***"
    return make_conninfo(**info)


def with_dbname(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


def dbname(url: str) -> str:
    return conninfo_to_dict(url).get("dbname") or "postgres"


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Create `name` as `admin_url`'s user; the URL returned connects as the application's
    `postgres` role on the private cluster (the tooling superuser only does housekeeping)."""
    url = app_url(with_dbname(admin_url, name))
    with connect(admin_url, autocommit=True) as conn:
        q = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            q += sql.SQL(" template {}").format(sql.Identifier(template))
        if url != with_dbname(admin_url, name):
            # Owned by `postgres`, as hosted's database is (its init scripts ran as postgres).
            q += sql.SQL(" owner postgres")
        conn.execute(q)
    return url


def drop_database(admin_url: str, name: str) -> None:
    with connect(admin_url, autocommit=True) as conn:
        # A logical slot left on the database (a local Realtime process killed mid-run) would make
        # the drop fail; `with (force)` ends sessions, not replication slots.
        slots = conn.execute("select slot_name, active_pid from pg_replication_slots where database = %s",
                             (name,)).fetchall()
        for slot, pid in slots:
            if pid:
                conn.execute("select pg_terminate_backend(%s)", (pid,))
            for _ in range(50):
                try:
                    conn.execute("select pg_drop_replication_slot(%s)", (slot,))
                    break
                except psycopg.errors.ObjectInUse:
                    time.sleep(0.1)
                except psycopg.errors.UndefinedObject:
                    break
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def throwaway(admin_url: str, prefix: str = "koepon_tmp", template: str | None = None
              ) -> Iterator[str]:
    name = unique_name(prefix)
    url = create_database(admin_url, name, template)
    try:
        yield url
    finally:
        drop_database(admin_url, name)
