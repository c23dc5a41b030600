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


def ident(name: str, columns=None) -> sql.Identifier:
    if not _IDENT.match(name):
        raise pgrst(400, "PGRST100", f'"failed to parse identifier" ({name})')
    if columns is not None and name not in columns:
        raise pgrst(400, "42703", f"column {name} does not exist")
    return sql.Identifier(name)


_JSON_STEP = re.compile(r"(->>?)((?:(?!->).)+)")


def parse_field(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """`data->a->>0` -> ("data", [("->", "a"), ("->>", "0")])."""
    m = re.match(r"^((?:(?!->).)+)(.*)$", spec)
    if not m:
        raise pgrst(400, "PGRST100", f'"failed to parse field" ({spec})')
    name, rest = m.group(1), m.group(2)
    path = []
    while rest:
        step = _JSON_STEP.match(rest)
        if not step:
            raise pgrst(400, "PGRST100", f'"failed to parse json path" ({spec})')
        path.append((step.group(1), step.group(2)))
        rest = rest[step.end():]
    return name, path


def field_name(spec: str) -> str:
    """The output name PostgREST gives a field: the last JSON key, else the column."""
    name, path = parse_field(spec)
    keys = [k for _, k in path if not re.fullmatch(r"-?\d+", k)]
    return keys[-1] if keys else name


def field(spec: str, columns=None, qualifier: str | None = None) -> sql.Composable:
    """A column, qualified when asked, with its JSON path (`->` / `->>`) applied.

    `columns` maps names to types (or is a set of names); a JSON path on a column that is not
    json/jsonb goes through to_jsonb() first, as PostgREST does for arrays and composites.
    """
    name, path = parse_field(spec)
    ident(name, columns)
    col: sql.Composable = sql.Identifier(qualifier, name) if qualifier else sql.Identifier(name)
    if not path:
        return col
    ctype = columns.get(name) if isinstance(columns, dict) else None
    if ctype is not None and ctype not in ("json", "jsonb"):
        col = sql.SQL("to_jsonb({})").format(col)
    for arrow, key in path:
        if re.fullmatch(r"-?\d+", key):
            col = sql.SQL("{}" + arrow + "{}").format(col, sql.Literal(int(key)))
        else:
            col = sql.SQL("{}" + arrow + "{}").format(col, sql.Literal(key))
    return col


def parse_select(value: str | None, columns, qualifier: str | None = None) -> sql.Composable:
    """A select list of plain fields (no embedding): used where no relation is embeddable."""
    if not value or value.strip() == "*":
        return sql.SQL("*")
    parts = []
    for item in _split_top(value):
        item = item.strip()
        if item == "*":
            parts.append(sql.SQL("*"))
            continue
        alias, spec, cast = split_field(item, value)
        expr = field(spec, columns, qualifier)
        if cast:
            expr = sql.SQL("({})::{}").format(expr, sql.SQL(cast))
        parts.append(sql.SQL("{} as {}").format(expr, sql.Identifier(alias or field_name(spec))))
    return sql.SQL(", ").join(parts)


def split_field(item: str, whole: str) -> tuple[str | None, str, str | None]:
    """`alias:spec::cast` -> (alias, spec, cast)."""
    alias = None
    m = re.match(r"^([^:]+):(?!:)(.*)$", item)
    if m:
        alias, item = m.group(1), m.group(2)
    cast = None
    if "::" in item:
        item, _, cast = item.partition("::")
        if not _CAST.match(cast):
            raise pgrst(400, "PGRST100", f'"failed to parse select parameter" ({whole})')
    return alias, item, cast


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


SIMPLE = {"neq": "<>", "cs": "@>", "cd": "<@", "ov": "&&", "sl": "<<", "sr": ">>",
          "nxr": "&<", "nxl": "&>", "adj": "-|-"}
QUANT = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "like", "ilike": "ilike",
         "match": "~", "imatch": "~*"}
FTS = {"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery",
       "wfts": "websearch_to_tsquery"}
IS_VALUES = {"null": "null", "not_null": "not null", "true": "true", "false": "false", "unknown": "unknown"}
_OP = re.compile(r"^(?P<op>[a-z]+)(?:\((?P<arg>[^)]*)\))?$")


def array_literal(items: list[str]) -> str:
    """PostgREST's pgBuildArrayLiteral: every element double-quoted and escaped."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items) + "}"


def list_items(value: str, what: str) -> list[str]:
    """`(a,"b,c",d)` -> ["a", "b,c", "d"]."""
    if not (value.startswith("(") and value.endswith(")")):
        raise pgrst(400, "PGRST100", f'"failed to parse filter ({what})"')
    inner = value[1:-1]
    return [_unquote(v.strip()) for v in _split_top(inner)] if inner else []


def condition(column: str, expr: str, columns, params: list,
              qualifier: str | None = None) -> sql.Composable:
    """`col=op.value` (or `not.op.value`) as SQL with the value appended to params.

    The operators and their SQL are PostgREST's (Query/SqlFragment.hs): values are sent as
    untyped literals so PostgreSQL reads them as the column's type.
    """
    negate = False
    if expr.startswith("not."):
        negate, expr = True, expr[4:]
    opspec, dot, value = expr.partition(".")
    m = _OP.match(opspec)
    if not dot or not m:
        raise pgrst(400, "PGRST100", f'"failed to parse filter ({expr})" (line 1, column 1)')
    op, arg = m.group("op"), m.group("arg")
    col = field(column, columns, qualifier)
    if op in QUANT and arg in (None, "any", "all"):
        if op in ("like", "ilike"):
            value = value.replace("*", "%")
        if arg is None:
            params.append(value)
            cond = sql.SQL("{} {} %s").format(col, sql.SQL(QUANT[op]))
        else:
            # `eq(any).{1,2}`: the array literal goes to PostgreSQL as it is.
            params.append(value)
            cond = sql.SQL("{} {} " + arg + "(%s)").format(col, sql.SQL(QUANT[op]))
    elif op in SIMPLE and arg is None:
        params.append(value)
        cond = sql.SQL("{} {} %s").format(col, sql.SQL(SIMPLE[op]))
    elif op == "is" and arg is None:
        lit = IS_VALUES.get(value.lower())
        if lit is None:
            raise pgrst(400, "PGRST100", f'"failed to parse filter (is.{value})"')
        cond = sql.SQL("{} is " + lit).format(col)
    elif op == "isdistinct" and arg is None:
        params.append(value)
        cond = sql.SQL("{} is distinct from %s").format(col)
    elif op == "in" and arg is None:
        items = list_items(value, f"in.{value}")
        if not items:
            cond = sql.SQL("{} = any('{{}}')").format(col)
        else:
            params.append(array_literal(items))
            cond = sql.SQL("{} = any(%s)").format(col)
    elif op in FTS:
        ctype = columns.get(parse_field(column)[0]) if isinstance(columns, dict) else None
        if ctype in ("text", "character varying", "json", "jsonb") and not parse_field(column)[1]:
            # PostgREST applies to_tsvector() itself to a text or json column.
            if arg:
                params.append(arg)
                col = sql.SQL("to_tsvector(%s, {})").format(col)
            else:
                col = sql.SQL("to_tsvector({})").format(col)
        if arg is not None:
            if not arg:
                raise pgrst(400, "PGRST100", f'"failed to parse filter ({expr})"')
            params.extend([arg, value])
            cond = sql.SQL("{} @@ " + FTS[op] + "(%s, %s)").format(col)
        else:
            params.append(value)
            cond = sql.SQL("{} @@ " + FTS[op] + "(%s)").format(col)
    else:
        raise pgrst(400, "PGRST100", f'"unknown operator ({opspec})"')
    return sql.SQL("not ({})").format(cond) if negate else cond


def logic(kind: str, body: str, columns, params: list, negate: bool = False,
          qualifier: str | None = None) -> sql.Composable:
    """`or=(a.eq.1,and(b.gt.0,b.lt.9))` and `and=(...)`, nestable."""
    if not (body.startswith("(") and body.endswith(")")):
        raise pgrst(400, "PGRST100", f'"failed to parse logic tree ({body})"')
    parts = []
    for item in _split_top(body[1:-1]):
        item = item.strip()
        m = re.match(r"^(not\.)?(or|and)(\(.*\))$", item)
        if m:
            parts.append(logic(m.group(2), m.group(3), columns, params, bool(m.group(1)), qualifier))
            continue
        col, dot, rest = item.partition(".")
        if not dot:
            raise pgrst(400, "PGRST100", f'"failed to parse logic tree ({body})"')
        parts.append(condition(col, rest, columns, params, qualifier))
    if not parts:
        raise pgrst(400, "PGRST100", '"failed to parse logic tree ()"')
    joined = sql.SQL(f" {kind} ").join(sql.SQL("({})").format(p) for p in parts)
    return sql.SQL("not ({})").format(joined) if negate else sql.SQL("({})").format(joined)


def local(query: list[tuple[str, str]], path: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The query-string items that belong to the resource at `path` (`items.name=…` for ("items",)),
    with the path taken off their keys."""
    if not path:
        return [(k, v) for k, v in query if "." not in k.split("->")[0] or k in ("not.or", "not.and")]
    prefix = ".".join(path) + "."
    out = []
    for k, v in query:
        if k.startswith(prefix):
            rest = k[len(prefix):]
            if "." not in rest.split("->")[0] or rest in ("not.or", "not.and"):
                out.append((rest, v))
    return out


def conditions(query: list[tuple[str, str]], columns, params: list, qualifier: str | None = None,
               skip=frozenset()) -> list[sql.Composable]:
    conds = []
    for key, value in query:
        if key in skip:
            continue
        if key in ("or", "and", "not.or", "not.and"):
            neg = key.startswith("not.")
            conds.append(logic(key.removeprefix("not."), value, columns, params, neg, qualifier))
        elif key in RESERVED:
            continue
        else:
            conds.append(condition(key, value, columns, params, qualifier))
    return conds


def where(query: list[tuple[str, str]], columns, params: list,
          skip=frozenset(), qualifier: str | None = None) -> sql.Composable:
    conds = conditions(local(query), columns, params, qualifier, skip)
    if not conds:
        return sql.SQL("")
    return sql.SQL(" where ") + sql.SQL(" and ").join(conds)


def order(value: str | None, columns, qualifier: str | None = None) -> sql.Composable:
    """`order=a.desc.nullslast,data->>k`; qualified so that a select alias never shadows the column."""
    terms = order_terms(value, columns, qualifier)
    if not terms:
        return sql.SQL("")
    return sql.SQL(" order by ") + sql.SQL(", ").join(terms)


def order_terms(value: str | None, columns, qualifier: str | None = None) -> list[sql.Composable]:
    if not value:
        return []
    terms = []
    for item in _split_top(value):
        bits = item.strip().split(".")
        sql_bits = [field(bits[0], columns, qualifier)]
        for b in bits[1:]:
            if b in ("asc", "desc"):
                sql_bits.append(sql.SQL(b))
            elif b in ("nullsfirst", "nullslast"):
                sql_bits.append(sql.SQL("nulls first" if b == "nullsfirst" else "nulls last"))
            else:
                raise pgrst(400, "PGRST100", f'"failed to parse order ({value})"')
        terms.append(sql.SQL(" ").join(sql_bits))
    return terms


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
