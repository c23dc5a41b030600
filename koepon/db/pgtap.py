"""Run pgTAP files (the layout `supabase test db` expects) through psycopg and parse TAP."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from . import platform_base, sqlsplit

_OK = re.compile(r"^(not )?ok (\d+)(?: - (.*))?$")
_PLAN = re.compile(r"^1\.\.(\d+)$")


@dataclass
class TapResult:
    path: Path
    planned: int | None = None
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        ran = len(self.passed) + len(self.failed)
        return (self.error is None and not self.failed
                and (self.planned is None or self.planned == ran) and ran > 0)

    def summary(self) -> str:
        lines = [f"{self.path.name}: {len(self.passed)} passed, {len(self.failed)} failed"
                 + (f" (planned {self.planned})" if self.planned is not None else "")]
        lines += [f"  not ok: {f}" for f in self.failed]
        lines += [f"  {d}" for d in self.diagnostics[:40]]
        if self.error:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines)


def ensure_extension(conn: psycopg.Connection) -> None:
    # pgtap is not a trusted extension: hosted lets `postgres` create it through supautils'
    # privileged_extensions; locally the tooling superuser does it on postgres's behalf.
    platform_base.ensure_extension(conn, "pgtap")


def run_file(url: str, path: Path) -> TapResult:
    """Run one file; the file provides its own begin/rollback as Supabase's template does."""
    result = TapResult(path)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set search_path = public, extensions")
        ensure_extension(conn)
        lines: list[str] = []
        conn.add_notice_handler(lambda d: lines.append(d.message_primary or ""))
        cur = conn.cursor()
        # Statement by statement (the file's own begin/rollback hold them in one transaction),
        # so the TAP lines before an error are kept and the error names its line.
        for st in sqlsplit.split(path.read_text()):
            if not st.has_code:
                continue
            try:
                cur.execute(st.text)
                while True:
                    if cur.description is not None:
                        for row in cur.fetchall():
                            if row and isinstance(row[0], str):
                                lines.extend(row[0].splitlines())
                    if not cur.nextset():
                        break
            except psycopg.Error as exc:
                msg = (exc.diag.message_primary or str(exc)).strip()
                result.error = f"line {st.line}: {exc.sqlstate}: {msg}"
                with contextlib.suppress(psycopg.Error):
                    conn.execute("rollback")
                break
    for line in lines:
        if m := _PLAN.match(line.strip()):
            result.planned = int(m.group(1))
        elif m := _OK.match(line.strip()):
            todo = re.search(r"#\s*TODO\b", m.group(3) or "", re.I)
            (result.failed if m.group(1) and not todo else result.passed).append(m.group(3) or m.group(2))
        elif line.startswith("#"):
            result.diagnostics.append(line)
    return result


def files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".sql", ".pg"))
