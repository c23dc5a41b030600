"""Split a SQL script into statements the way the Supabase CLI records them.

Understands quotes, quoted identifiers, dollar quotes, line and block comments, and
BEGIN ATOMIC bodies are not used in this project. Each statement keeps its text (leading
comments included) and the 1-based line where its first non-blank character sits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


@dataclass(frozen=True)
class Statement:
    text: str
    line: int


def split(sql: str) -> list[Statement]:
    out: list[Statement] = []
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c in ("'", '"'):
            i += 1
            while i < n:
                if sql[i] == c:
                    if i + 1 < n and sql[i + 1] == c:
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif c == "$":
            m = _DOLLAR.match(sql, i)
            if m and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                end = sql.find(m.group(0), m.end())
                i = n if end < 0 else end + len(m.group(0))
            else:
                i += 1
        elif c == ";":
            _emit(out, sql, start, i + 1)
            i += 1
            start = i
        else:
            i += 1
    _emit(out, sql, start, n)
    return out


def _emit(out: list[Statement], sql: str, start: int, end: int) -> None:
    chunk = sql[start:end]
    stripped = chunk.strip()
    if not _has_code(stripped):
        return
    lead = len(chunk) - len(chunk.lstrip())
    line = sql.count("\n", 0, start + lead) + 1
    out.append(Statement(stripped, line))


def _has_code(text: str) -> bool:
    without = re.sub(r"--[^\n]*", "", text)
    without = re.sub(r"/\*.*?\*/", "", without, flags=re.S)
    return bool(without.strip().strip(";").strip())


def normalise(statements: list[str]) -> str:
    """Whitespace- and comment-insensitive form, to tell an edited migration."""
    parts = []
    for s in statements:
        s = re.sub(r"^\s*--[^\n]*$", "", s, flags=re.M)
        s = re.sub(r"\s+", " ", s).strip().rstrip(";").strip()
        if s:
            parts.append(s)
    return "\n".join(parts)
