"""Split a SQL script into statements the way the Supabase CLI records them.

The Supabase CLI (pkg/parser) cuts a file at every `;` outside quotes, quoted identifiers,
escape strings (E'...'), dollar quotes, line and block comments, parentheses and
`BEGIN ATOMIC ... END` bodies; it then trims trailing `;` and surrounding whitespace and keeps
every non-empty piece, leading comments included (a trailing comment-only piece too). That
text is what lands in `supabase_migrations.schema_migrations.statements`, so ours must match
it byte for byte. Each statement also carries the 1-based line of its first non-blank
character, for error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")


@dataclass(frozen=True)
class Statement:
    text: str
    line: int

    @property
    def has_code(self) -> bool:
        """False for a piece that is only comments (recorded, but nothing to execute)."""
        return _has_code(self.text)


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Index just past the quoted literal/identifier opening at sql[i]."""
    n = len(sql)
    i += 1
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_block_comment(sql: str, i: int) -> int:
    n, depth = len(sql), 1
    i += 2
    while i < n and depth:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def split(sql: str) -> list[Statement]:
    out: list[Statement] = []
    i, n, start = 0, len(sql), 0
    parens = 0          # ( ... ) nesting: a `;` inside does not end the statement
    atomic = 0          # inside BEGIN ATOMIC: count of open BEGIN ATOMIC / CASE blocks
    prev_word = ""      # last keyword seen (to spot BEGIN ATOMIC)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif c == "'":
            escape = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _ident_char(sql[i - 2]))
            i = _skip_quoted(sql, i, "'", backslash=escape)
        elif c == '"':
            i = _skip_quoted(sql, i, '"', backslash=False)
        elif c == "$":
            m = _DOLLAR.match(sql, i)
            if m and (i == 0 or not _ident_char(sql[i - 1])):
                end = sql.find(m.group(0), m.end())
                i = n if end < 0 else end + len(m.group(0))
            else:
                i += 1
        elif c == "(":
            parens += 1
            i += 1
        elif c == ")":
            parens = max(0, parens - 1)
            i += 1
        elif c.isalpha() or c == "_":
            m = _WORD.match(sql, i)
            word = m.group(0).lower()
            if i > 0 and _ident_char(sql[i - 1]):
                pass  # the tail of an identifier such as x1abc: not a keyword
            elif word == "atomic" and prev_word == "begin":
                atomic += 1
            elif atomic and word == "case":
                atomic += 1
            elif atomic and word == "end":
                atomic -= 1
            prev_word = word
            i = m.end()
        elif c == ";" and not parens and not atomic:
            _emit(out, sql, start, i + 1)
            i += 1
            start = i
            prev_word = ""
        else:
            if not c.isspace():
                prev_word = ""
            i += 1
    _emit(out, sql, start, n)
    return out


def _ident_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _emit(out: list[Statement], sql: str, start: int, end: int) -> None:
    chunk = sql[start:end]
    text = chunk.rstrip(";").strip()
    if not text:
        return
    lead = len(chunk) - len(chunk.lstrip())
    line = sql.count("\n", 0, start + lead) + 1
    out.append(Statement(text, line))


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
