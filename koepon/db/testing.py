"""Throwaway databases for tests: one migrated template per session, cloned per module."""

from __future__ import annotations

import atexit
import threading

from ..settings import LOCAL_DB_URL, db_url, paths, superuser_url
from . import connection as db
from . import migrations, pgtap, platform_base
from .cluster import Cluster

_lock = threading.Lock()
_templates: dict[str, str] = {}


def admin_url() -> str:
    """Where throwaway databases are created and dropped: the tooling superuser on the private
    cluster. The databases themselves are reached (db.create_database's URL) as `postgres`,
    which is not a superuser there, as on hosted Supabase."""
    url = db_url()
    if url == LOCAL_DB_URL:
        Cluster(paths()).start()
    return superuser_url(url)


def template(seeded: bool = False) -> str:
    """Name of a database migrated (and optionally seeded) once per process."""
    key = "seeded" if seeded else "bare"
    with _lock:
        if key not in _templates:
            admin = admin_url()
            name = db.unique_name(f"koepon_tpl_{key}")
            url = db.create_database(admin, name)
            with db.connect(url, autocommit=True) as conn:
                migrations.migrate(conn, paths(), echo=lambda _m: None)
                pgtap.ensure_extension(conn)
                install_helpers(conn)
                if seeded:
                    migrations.seed(conn, paths())
            _templates[key] = name
            atexit.register(db.drop_database, admin, name)
        return _templates[key]


def clone(prefix: str = "koepon_test", seeded: bool = False) -> tuple[str, str]:
    """(url, name) of a fresh copy of the template, its realtime.messages partitions as Realtime's
    janitor keeps them today: the template is built once per session, and a session that crosses
    UTC midnight would otherwise hand out the partitions of the day it was built."""
    admin = admin_url()
    name = db.unique_name(prefix)
    url = db.create_database(admin, name, template(seeded))
    with db.connect(url, autocommit=True) as conn:
        platform_base.maintain_realtime_messages(conn)
    return url, name


def drop(name: str) -> None:
    db.drop_database(admin_url(), name)


HELPER_FILES = ("helpers.sql", "economy_fixture.sql", "catalog_fixture.sql")


def install_helpers(conn) -> None:
    """supabase/tests/helpers.sql (users and role switching) and economy_fixture.sql (fans, VTubers,
    gachas, named ids, paid orders): installed once into every test database, never by a migration."""
    with conn.transaction():
        # The fixtures name the product's tables; a database without them (the tooling tests'
        # empty projects) still gets the helpers, and a fixture is checked when it is called.
        conn.execute("set local check_function_bodies = off")
        for name in HELPER_FILES:
            conn.execute(paths().root.joinpath("supabase", "tests", name).read_text())
