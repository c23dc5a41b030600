"""`koepon db verify`: migrations alone and migrations + sql/ must yield the same schema."""

from __future__ import annotations

import difflib
import subprocess

import psycopg

from ..errors import KoeponError
from ..settings import Paths
from . import connection as db
from . import migrations
from .cluster import bindir


def rerunnable_files(paths: Paths) -> list:
    """Every sql/ file except the platform base, in path order."""
    return sorted(p for p in paths.sql.rglob("*.sql") if paths.platform_sql not in p.parents)


def dump_schema(url: str) -> str:
    res = subprocess.run(
        [str(bindir() / "pg_dump"), "--schema-only", "--no-owner", "--exclude-schema",
         "supabase_migrations", "-d", url],
        capture_output=True, text=True,
    )
    if res.returncode != 0:
        raise KoeponError(f"pg_dump failed: {res.stderr.strip()}")
    return "\n".join(line for line in res.stdout.splitlines()
                     if not line.startswith("-- Dumped") and not line.startswith("\\restrict")
                     and not line.startswith("\\unrestrict"))


def apply_sql_files(url: str, paths: Paths) -> None:
    with db.connect(url, autocommit=True) as conn:
        for f in rerunnable_files(paths):
            try:
                with conn.transaction():
                    conn.execute(f.read_text())
            except psycopg.Error as exc:
                raise KoeponError(f"{f.relative_to(paths.root)} does not re-run: "
                                  f"{exc.diag.message_primary or exc}") from exc


def verify(admin_url: str, paths: Paths) -> list[str]:
    with db.throwaway(admin_url, "koepon_verify_a") as url_a, \
            db.throwaway(admin_url, "koepon_verify_b") as url_b:
        for url in (url_a, url_b):
            with db.connect(url) as conn:
                migrations.migrate(conn, paths, echo=lambda _m: None)
        apply_sql_files(url_b, paths)
        a, b = dump_schema(url_a), dump_schema(url_b)
    return list(difflib.unified_diff(a.splitlines(), b.splitlines(),
                                     "migrations", "migrations+sql", lineterm="", n=2))
