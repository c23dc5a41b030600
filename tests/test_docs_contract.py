"""The error contract in docs/errors.md and the API index in docs/api.md cover the SQL."""

from __future__ import annotations

import re

from koepon.settings import paths

ROOT = paths().root
ERROR_RE = re.compile(r"errcode\s*=\s*'(PT\d{3}|42501)'\s*,\s*message\s*=\s*'([a-z0-9_]+)'", re.I)
FUNC_RE = re.compile(r"create\s+or\s+replace\s+function\s+public\.([a-z0-9_]+)\s*\(", re.I)


def _sql_sources() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "sql").rglob("*.sql")))


def test_every_raised_error_code_is_documented():
    documented = (ROOT / "docs" / "errors.md").read_text()
    raised = {(code.upper(), msg) for code, msg in ERROR_RE.findall(_sql_sources())}
    missing = sorted(f"{msg} ({code})" for code, msg in raised if f"`{msg}`" not in documented)
    assert not missing, f"errors raised in sql/ but not in docs/errors.md: {missing}"


def test_every_public_function_is_documented():
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("api*.md"))
    functions = set(FUNC_RE.findall(_sql_sources()))
    missing = sorted(f for f in functions if f"`{f}" not in docs)
    assert not missing, f"public functions without documentation in docs/api*.md: {missing}"
