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


COMMENT_RE = re.compile(r"comment\s+on\s+function\s+public\.([a-z0-9_]+)\s*\([^)]*\)\s+is\s*'([^']*)'", re.I)


def _rpcs_for(who: str) -> set[str]:
    """Public functions whose comment names `who` ('VTuber' or 'Admin') as a caller before its colon."""
    out = set()
    for name, comment in COMMENT_RE.findall(_sql_sources()):
        callers = comment.split(":", 1)[0]
        if ":" in comment and re.search(rf"(^{who}\b|\bor {who.lower()}\b)", callers):
            out.add(name)
    return out


def test_vtuber_and_admin_docs_list_every_rpc_with_an_example():
    for who, doc in (("VTuber", "api-vtuber.md"), ("Admin", "api-admin.md")):
        text = (ROOT / "docs" / doc).read_text()
        rpcs = _rpcs_for(who)
        assert len(rpcs) >= 10, (who, rpcs)  # the comments still say who calls
        missing = sorted(f for f in rpcs if f"rpc('{f}'" not in text)
        assert not missing, f"{who} RPCs without an example call in docs/{doc}: {missing}"
