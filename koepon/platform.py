"""The Supabase platform base (roles, auth, storage, extensions) for a plain Postgres."""

from __future__ import annotations

import psycopg

from .errors import KoeponError
from .settings import Paths

MARKER = "koepon platform base"


def state(conn: psycopg.Connection) -> str:
    """'absent', 'local' (ours, re-appliable) or 'supabase' (a real project: never touch)."""
    row = conn.execute(
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = 'auth'"
    ).fetchone()
    if row is None:
        return "absent"
    return "local" if (row[0] or "").startswith(MARKER) else "supabase"


def apply(conn: psycopg.Connection, paths: Paths) -> bool:
    """Apply sql/platform/*.sql in one transaction unless this is a real Supabase project."""
    if state(conn) == "supabase":
        return False
    files = sorted(paths.platform_sql.glob("*.sql"))
    if not files:
        raise KoeponError(f"no platform base files in {paths.platform_sql}")
    with conn.transaction():
        # Roles are cluster-wide: serialise concurrent first runs in one cluster.
        conn.execute("select pg_advisory_xact_lock(7253001)")
        for f in files:
            try:
                conn.execute(f.read_text())
            except psycopg.Error as exc:
                raise KoeponError(f"platform base {f.name} failed: {exc}".strip()) from exc
    return True
