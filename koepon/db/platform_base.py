"""The Supabase platform base (roles, auth, storage, extensions) for a plain Postgres.

Applied once, where it is absent: re-running it on a migrated database would undo what
migrations changed in the platform's grants (our first migration revokes Supabase's default
privileges in `public`). The files are idempotent all the same, so applying them twice is
harmless to the base itself. A database whose `auth` schema is not ours is a real Supabase
project and is never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ..errors import KoeponError
from ..settings import SUPERUSER, Paths

MARKER = "koepon platform base"
_DIGEST = re.compile(r"\[sql/platform ([0-9a-f]{12})\]$")


def state(conn: psycopg.Connection) -> str:
    """'absent', 'local' (ours, re-appliable) or 'supabase' (a real project: never touch)."""
    row = conn.execute(
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = 'auth'"
    ).fetchone()
    if row is None:
        return "absent"
    return "local" if (row[0] or "").startswith(MARKER) else "supabase"


def needed(conn: psycopg.Connection) -> bool:
    """True when the database has no platform base at all (a fresh plain Postgres)."""
    return state(conn) == "absent"


def digest(paths: Paths) -> str:
    h = hashlib.sha256()
    for f in sorted(paths.platform_sql.glob("*.sql")):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def applied_digest(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = 'auth'"
    ).fetchone()
    m = _DIGEST.search((row[0] or "") if row else "")
    return m.group(1) if m else None


def stale(conn: psycopg.Connection, paths: Paths) -> bool:
    """Ours, but built from other sql/platform files than the ones on disk."""
    if state(conn) != "local":
        return False
    recorded = applied_digest(conn)
    return recorded is not None and recorded != digest(paths)  # None: built before digests


def is_superuser(conn: psycopg.Connection) -> bool:
    return conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0]


@contextlib.contextmanager
def superuser(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A connection to the same database as the tooling superuser (supabase_admin), or `conn`
    itself when it already is one. For housekeeping that hosted Supabase does for its
    customers (the platform base, pre-installed extensions); never for migrations."""
    if is_superuser(conn):
        yield conn
        return
    url = make_conninfo(conn.info.dsn, user=SUPERUSER, password="")
    try:
        su = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise KoeponError(
            f"{conn.info.user} is not a superuser and the tooling superuser {SUPERUSER} cannot "
            f"connect to {conn.info.host}:{conn.info.port}; build the platform base there as a "
            "superuser, or use the private cluster (`koepon db start`)") from exc
    with su:
        yield su


def ensure_extension(conn: psycopg.Connection, name: str, schema: str = "extensions") -> None:
    """Install an extension hosted lets `postgres` create (supautils' privileged_extensions,
    e.g. pgtap) through the tooling superuser, as supautils runs it as supabase_admin there."""
    if conn.execute("select 1 from pg_extension where extname = %s", (name,)).fetchone():
        return
    stmt = sql.SQL("create extension if not exists {} with schema {}").format(
        sql.Identifier(name), sql.Identifier(schema))
    try:
        with conn.transaction():
            conn.execute(stmt)  # hosted (supautils) or a superuser connection
    except psycopg.errors.InsufficientPrivilege:
        with superuser(conn) as su:
            su.execute(stmt)


def apply(conn: psycopg.Connection, paths: Paths) -> bool:
    """Apply sql/platform/*.sql in one transaction unless this is a real Supabase project."""
    if state(conn) == "supabase":
        return False
    with superuser(conn) as su:
        return _apply(su, paths)


def _apply(conn: psycopg.Connection, paths: Paths) -> bool:
    files = sorted(paths.platform_sql.glob("*.sql"))
    if not files:
        raise KoeponError(f"no platform base files in {paths.platform_sql}")
    with conn.transaction():
        # Roles are cluster-wide and advisory locks are per database: serialise first runs in
        # different databases of one cluster on the shared role catalog itself.
        conn.execute("lock table pg_catalog.pg_authid in share update exclusive mode")
        for f in files:
            try:
                conn.execute(f.read_text())
            except psycopg.Error as exc:
                msg = (exc.diag.message_primary or str(exc)).strip()
                raise KoeponError(f"platform base {f.name} failed: {msg}") from exc
        comment = conn.execute("select obj_description('auth'::regnamespace, 'pg_namespace')"
                               ).fetchone()[0] or MARKER
        comment = _DIGEST.sub("", comment).rstrip() + f" [sql/platform {digest(paths)}]"
        conn.execute(sql.SQL("comment on schema auth is {}").format(sql.Literal(comment)))
    return True


def maintain_realtime_messages(conn: psycopg.Connection) -> None:
    """Hosted Realtime's janitor, locally: today's and the next days' realtime.messages partitions
    exist and days older than 72 hours are gone. A database built before the table was partitioned
    (or a real Supabase project, whose Realtime does this itself) has no such function: nothing to do."""
    if state(conn) != "local":
        return
    if conn.execute("select to_regprocedure('realtime_local.maintain_messages()')").fetchone()[0] is None:
        return
    with conn.transaction():
        conn.execute("select realtime_local.maintain_messages()")
