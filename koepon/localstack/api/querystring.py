"""PostgREST's query-string grammar for reads: select, filters (incl. not/or/and), order, limits.

Identifiers are only ever emitted through psycopg.sql.Identifier and values only as parameters.
"""

from __future__ import annotations

import re

from psycopg import sql

from .errors import pgrst

OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
       "like": "like", "ilike": "ilike"}
RESERVED = {"select", "order", "limit", "offset", "or", "and", "columns", "on_conflict"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CAST = re.compile(r"^[a-z_][a-z0-9_ ]*(\[\])?$")


def ident(name: str, columns: set[str] | None = None) -> sql.Identifier:
    if not _IDENT.match(name):
        raise pgrst(400, "PGRST100", f'"failed to parse identifier" ({name})')
    if columns is not None and name not in columns:
        raise pgrst(400, "42703", f"column {name} does not exist")
    return sql.Identifier(name)


def parse_select(value: str | None, columns: set[str] | None) -> sql.Composable:
    if not value or value.strip() == "*":
        return sql.SQL("*")
    parts = []
    for item in _split_top(value):
        item = item.strip()
        if item == "*":
            parts.append(sql.SQL("*"))
            continue
        alias = None
        if ":" in item and not item.split(":", 1)[0].endswith(":"):
            head, _, rest = item.partition(":")
            if not rest.startswith(":"):
                alias, item = head, rest
        cast = None
        if "::" in item:
            item, _, cast = item.partition("::")
            if not _CAST.match(cast):
                raise pgrst(400, "PGRST100", f'"failed to parse select parameter" ({value})')
        expr: sql.Composable = ident(item, columns)
        if cast:
            expr = sql.SQL("{}::{}").format(expr, sql.SQL(cast))
        if alias or cast:
            expr = sql.SQL("{} as {}").format(expr, ident(alias or item))
        parts.append(expr)
    return sql.SQL(", ").join(parts)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    out, depth, quoted, cur = [], 0, False, []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1].replace('\\"', '"')
    return v


def condition(column: str, expr: str, columns: set[str] | None, params: list) -> sql.Composable:
    """`col=op.value` (or `not.op.value`) as SQL with the value appended to params."""
    negate = False
    if expr.startswith("not."):
        negate, expr = True, expr[4:]
    op, dot, value = expr.partition(".")
    if not dot:
        raise pgrst(400, "PGRST100", f'"failed to parse filter ({expr})" (line 1, column 1)')
    col = ident(column, columns)
    if op in OPS:
        if op in ("like", "ilike"):
            value = value.replace("*", "%")
        params.append(value)
        cond = sql.SQL("{} {} %s").format(col, sql.SQL(OPS[op]))
    elif op == "is":
        lit = {"null": "null", "not_null": "not null", "true": "true", "false": "false",
               "unknown": "unknown"}.get(value.lower())
        if lit is None:
            raise pgrst(400, "PGRST100", f'"failed to parse filter (is.{value})"')
        cond = sql.SQL("{} is " + lit).format(col)
    elif op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise pgrst(400, "PGRST100", f'"failed to parse filter (in.{value})"')
        items = [_unquote(v.strip()) for v in _split_top(value[1:-1])] if value[1:-1] else []
        params.append(items)
        cond = sql.SQL("{}::text = any(%s::text[])").format(col)
    else:
        raise pgrst(400, "PGRST100", f'"unknown operator ({op})"')
    return sql.SQL("not ({})").format(cond) if negate else cond


def logic(kind: str, body: str, columns: set[str] | None, params: list,
          negate: bool = False) -> sql.Composable:
    """`or=(a.eq.1,and(b.gt.0,b.lt.9))` and `and=(...)`, nestable."""
    if not (body.startswith("(") and body.endswith(")")):
        raise pgrst(400, "PGRST100", f'"failed to parse logic tree ({body})"')
    parts = []
    for item in _split_top(body[1:-1]):
        item = item.strip()
        m = re.match(r"^(not\.)?(or|and)(\(.*\))$", item)
        if m:
            parts.append(logic(m.group(2), m.group(3), columns, params, bool(m.group(1))))
            continue
        col, dot, rest = item.partition(".")
        if not dot:
            raise pgrst(400, "PGRST100", f'"failed to parse logic tree ({body})"')
        parts.append(condition(col, rest, columns, params))
    if not parts:
        raise pgrst(400, "PGRST100", '"failed to parse logic tree ()"')
    joined = sql.SQL(f" {kind} ").join(sql.SQL("({})").format(p) for p in parts)
    return sql.SQL("not ({})").format(joined) if negate else sql.SQL("({})").format(joined)


def where(query: list[tuple[str, str]], columns: set[str] | None, params: list,
          skip: set[str] = frozenset()) -> sql.Composable:
    conds = []
    for key, value in query:
        if key in skip:
            continue
        if key in ("or", "and", "not.or", "not.and"):
            neg = key.startswith("not.")
            conds.append(logic(key.removeprefix("not."), value, columns, params, neg))
        elif key in RESERVED:
            continue
        else:
            conds.append(condition(key, value, columns, params))
    if not conds:
        return sql.SQL("")
    return sql.SQL(" where ") + sql.SQL(" and ").join(conds)


def order(value: str | None, columns: set[str] | None, qualifier: str | None = None) -> sql.Composable:
    """`order=a.desc.nullslast,b`; qualified so that a select alias never shadows the column."""
    if not value:
        return sql.SQL("")
    terms = []
    for item in _split_top(value):
        bits = item.strip().split(".")
        col = ident(bits[0], columns)
        sql_bits = [sql.Identifier(qualifier, bits[0]) if qualifier else col]
        for b in bits[1:]:
            if b in ("asc", "desc"):
                sql_bits.append(sql.SQL(b))
            elif b in ("nullsfirst", "nullslast"):
                sql_bits.append(sql.SQL("nulls first" if b == "nullsfirst" else "nulls last"))
            else:
                raise pgrst(400, "PGRST100", f'"failed to parse order ({value})"')
        terms.append(sql.SQL(" ").join(sql_bits))
    return sql.SQL(" order by ") + sql.SQL(", ").join(terms)


def nonneg_int(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise pgrst(400, "PGRST100", f'"failed to parse {what} ({value})"')
    return int(value)


def parse_range(header: str | None) -> tuple[int, int | None] | None:
    if not header:
        return None
    m = re.match(r"^\s*(\d+)-(\d*)\s*$", header)
    if not m:
        return None
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else None
    return lo, hi
