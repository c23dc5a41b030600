"""Migrations tracked in supabase_migrations.schema_migrations exactly as the Supabase CLI does."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ..errors import KoeponError
from ..settings import Paths
from . import platform_base as platform
from . import sqlsplit

FILE_RE = re.compile(r"^([0-9]+)_(.*)\.sql$")
LOCK_KEY = 7253002

HISTORY_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (version text not null primary key);
alter table supabase_migrations.schema_migrations add column if not exists statements text[];
alter table supabase_migrations.schema_migrations add column if not exists name text;
create table if not exists supabase_migrations.seed_files (path text not null primary key, hash text not null);
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def statements(self) -> list[sqlsplit.Statement]:
        return sqlsplit.split(self.path.read_text())


@dataclass
class Status:
    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.pending or self.modified or self.missing)

    def as_dict(self) -> dict:
        return {
            "applied": self.applied,
            "pending": self.pending,
            "modified": self.modified,
            "missing": self.missing,
            "clean": self.clean,
        }


def local_migrations(paths: Paths) -> list[Migration]:
    found = []
    for p in sorted(paths.migrations.glob("*.sql")):
        m = FILE_RE.match(p.name)
        if m:
            found.append(Migration(m.group(1), m.group(2), p))
    return found


def _history(conn: psycopg.Connection) -> dict[str, list[str]]:
    exists = conn.execute(
        "select to_regclass('supabase_migrations.schema_migrations') is not null"
    ).fetchone()[0]
    if not exists:
        return {}
    rows = conn.execute(
        "select version, coalesce(statements, '{}') from supabase_migrations.schema_migrations"
    ).fetchall()
    return {v: s for v, s in rows}


def status(conn: psycopg.Connection, paths: Paths) -> Status:
    history = _history(conn)
    st = Status()
    local = {m.version: m for m in local_migrations(paths)}
    for version, mig in local.items():
        if version not in history:
            st.pending.append(mig.path.name)
            continue
        st.applied.append(mig.path.name)
        recorded = sqlsplit.normalise(history[version])
        on_disk = sqlsplit.normalise([s.text for s in mig.statements])
        if recorded != on_disk:
            st.modified.append(mig.path.name)
    st.missing = sorted(v for v in history if v not in local)
    return st


def _ensure_history(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (LOCK_KEY + 1,))
        conn.execute(HISTORY_DDL)


def migrate(conn: psycopg.Connection, paths: Paths, dry_run: bool = False,
            echo=print) -> list[str]:
    """Apply the platform base if needed, then each pending migration in its own transaction."""
    conn.autocommit = True
    conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        if platform.needed(conn):
            echo(f"{'would apply' if dry_run else 'applying'} the platform base (sql/platform)")
            if not dry_run:
                platform.apply(conn, paths)
        elif platform.stale(conn, paths):
            echo("warning: sql/platform changed since this database was built; "
                 "`koepon db reset` rebuilds a local database with it")
        if not dry_run:
            platform.maintain_realtime_messages(conn)
        if not dry_run:
            _ensure_history(conn)
        st = status(conn, paths)
        if st.missing:
            raise KoeponError(
                f"the database has migration(s) not found in {paths.migrations}: "
                f"{', '.join(st.missing)}; restore the file(s) (landed migrations are "
                "append-only) or point at the right database"
            )
        if st.modified:
            raise KoeponError(
                f"applied migration(s) edited afterwards: {', '.join(st.modified)}; landed "
                "migrations are append-only: restore them and ship a new migration"
            )
        pending = [m for m in local_migrations(paths) if m.path.name in st.pending]
        for mig in pending:
            echo(f"{'would apply' if dry_run else 'applying'} {mig.path.name}")
            if not dry_run:
                _apply_one(conn, mig)
        return [m.path.name for m in pending]
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))


def _apply_one(conn: psycopg.Connection, mig: Migration) -> None:
    stmts = mig.statements
    try:
        with conn.transaction():
            conn.execute("reset all")
            for st in stmts:
                if not st.has_code:
                    continue  # a comment-only piece: recorded as the CLI does, nothing to run
                try:
                    conn.execute(st.text)
                except psycopg.Error as exc:
                    raise _located(mig.path, st, exc) from exc
            conn.execute(
                "insert into supabase_migrations.schema_migrations (version, name, statements) "
                "values (%s, %s, %s)",
                (mig.version, mig.name, [s.text for s in stmts]),
            )
    finally:
        conn.execute("reset all")


def _located(path: Path, st: sqlsplit.Statement, exc: psycopg.Error) -> KoeponError:
    line = st.line
    pos = getattr(exc.diag, "statement_position", None)
    if pos:
        line += st.text[: int(pos) - 1].count("\n")
    msg = (exc.diag.message_primary or str(exc)).strip()
    code = exc.sqlstate or "?"
    return KoeponError(
        f"{path.name}:{line}: {msg} (SQLSTATE {code}); the migration was rolled back, "
        "earlier ones stay applied"
    )


def seed(conn: psycopg.Connection, paths: Paths) -> bool:
    """Run supabase/seed.sql and record its hash as the CLI does; local databases only."""
    if not paths.seed.exists():
        return False
    text = paths.seed.read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    with conn.transaction():
        try:
            conn.execute(text)
        except psycopg.Error as exc:
            raise KoeponError(f"seed.sql failed: {exc.diag.message_primary or exc}") from exc
        conn.execute(
            "insert into supabase_migrations.seed_files (path, hash) values (%s, %s) "
            "on conflict (path) do update set hash = excluded.hash",
            ("supabase/seed.sql", digest),
        )
    return True


def new(paths: Paths, name: str, from_files: list[Path], now) -> Path:
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise KoeponError("migration name must be snake_case: lower-case letters, digits and _")
    parts = []
    for f in from_files:
        p = (f if f.is_absolute() else paths.root / f).resolve()
        if not p.is_file():
            raise KoeponError(f"--from file not found: {f}")
        if paths.sql.resolve() not in p.parents:
            raise KoeponError(f"--from takes files under {paths.sql}: {f} is not one")
        parts.append(f"-- from {p.relative_to(paths.root.resolve())}\n{p.read_text().rstrip()}\n")
    version = now.strftime("%Y%m%d%H%M%S")
    target = paths.migrations / f"{version}_{name}.sql"
    if any(m.version == version for m in local_migrations(paths)):
        raise KoeponError(f"a migration with version {version} exists: wait a second and retry")
    paths.migrations.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(parts) if parts else f"-- {name}\n")
    return target
