"""Read plans with resource embedding: `select=*,items!hint!inner(name),...vtubers(name)`.

PostgREST's shape (Plan.hs, Query/QueryBuilder.hs): every embedded resource is a LATERAL
subquery joined to its parent on the relationship's columns; a to-one embed becomes
`row_to_json(...)` (null when there is no row), a to-many one `json_agg(...)` (`[]` when there
is none); `!inner` turns the LEFT JOIN into an INNER one; a spread (`...rel(cols)`) lifts the
columns into the parent (as arrays for a to-many spread). Filters, `order`, `limit` and `offset`
prefixed with the embed's name or alias (`items.name=eq.x`, `items.order=name`) apply inside
its subquery; `items=is.null` / `items=not.is.null` filter the parent on the embed.
Identifiers go through psycopg.sql.Identifier; values are parameters, in text order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from psycopg import sql

from . import querystring as qs
from . import relationships
from .errors import ApiError, pgrst

AGGREGATES = ("count", "sum", "avg", "max", "min")
_PATH_PART = re.compile(r'^(?:[A-Za-z0-9_ $-]+|"(?:[^"\\]|\\.)*")$')


@dataclass
class Field:
    spec: str  # column with its JSON path
    alias: str | None = None
    cast: str | None = None
    agg: str | None = None
    agg_cast: str | None = None

    @property
    def name(self) -> str:
        if self.alias:
            return self.alias
        if self.agg:
            return self.agg
        return qs.field_name(self.spec)


@dataclass
class Embed:
    target: str
    alias: str | None
    hint: str | None
    join: str | None  # inner | left | None
    spread: bool
    items: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.alias or self.target


_EMBED = re.compile(r"^(?P<spread>\.\.\.)?(?:(?P<alias>[^:!(]+):(?!:))?(?P<target>[^!(:]+)"
                    r"(?P<bangs>(?:![^!(]+)*)\((?P<inner>.*)\)$", re.S)
_RELATED_ORDER = re.compile(r"^(?P<rel>[^().,]+)\((?P<field>[^()]+)\)(?P<rest>(?:\.[a-z]+)*)$")
_AGG = re.compile(r"^(?P<spec>.+)\.(?P<agg>sum|avg|max|min|count)\(\)(?:::(?P<cast>[a-z_][a-z0-9_ ]*))?$")


def parse(value: str | None) -> list:
    """The select parameter as a tree of Field / Embed / "*"."""
    if value is None or not value.strip():
        return ["*"]
    out: list = []
    for raw in qs._split_top(value):
        item = raw.strip()
        if not item:
            raise pgrst(400, "PGRST100", f'"failed to parse select parameter ({value})"')
        if item == "*":
            out.append("*")
            continue
        m = _EMBED.match(item)
        base = item.split("(", 1)[0].split(":")[-1]
        if m and not (m.group("inner") == "" and (base == "count" or "." in base)):
            hint, join = None, None
            for bang in [b for b in (m.group("bangs") or "").split("!") if b]:
                if bang in ("inner", "left"):
                    join = bang
                else:
                    hint = bang
            # An empty embed (`clients()`) joins, and filters with !inner, but shows nothing.
            inner = m.group("inner")
            out.append(Embed(m.group("target").strip(), m.group("alias"), hint, join,
                             bool(m.group("spread")), parse(inner) if inner.strip() else []))
            continue
        alias = None
        am = re.match(r"^([^:]+):(?!:)(.*)$", item)
        if am:
            alias, item = am.group(1), am.group(2)
        if item.startswith("count()"):
            cast = item[len("count()"):].removeprefix("::") or None
            out.append(Field("*", alias, None, "count", cast))
            continue
        agg = _AGG.match(item)
        if agg:
            spec, cast = agg.group("spec"), None
            if "::" in spec:
                spec, _, cast = spec.partition("::")
            out.append(Field(spec, alias, cast, agg.group("agg"), agg.group("cast")))
            continue
        _, spec, cast = qs.split_field(item, value)
        out.append(Field(spec, alias, cast))
    return out


class Planner:
    """Builds the SQL of one read; `cache` is the schema cache of the request's schema."""

    def __init__(self, cache, schema: str, query: list[tuple[str, str]], aggregates: bool):
        self.cache = cache
        self.schema = schema
        self.query = query
        self.aggregates = aggregates
        self.n = 0
        self.paths: set[tuple[str, ...]] = {()}

    def check_filters(self) -> None:
        """A filter on an embed the select does not name: 400 PGRST108 (QuerySpec)."""
        for key, _v in self.query:
            parts = key.split("->")[0].split(".")
            if len(parts) > 1 and not all(_PATH_PART.match(p) for p in parts):
                # PostgREST's tree path: identifiers of letters, digits, `_`, `$`, spaces and dashes
                raise pgrst(400, "PGRST100", f'"failed to parse tree path ({key})" (line 1, column 1)')
            if parts[-2:] in (["not", "or"], ["not", "and"]):
                parts = parts[:-2]
            else:
                parts = parts[:-1]
            for i in range(1, len(parts) + 1):
                if tuple(parts[:i]) not in self.paths:
                    raise pgrst(400, "PGRST108", f"'{parts[i - 1]}' is not an embedded resource in this request",
                                None, f"Verify that '{parts[i - 1]}' is included in the 'select' query parameter.")

    def _alias(self) -> str:
        self.n += 1
        return f"_{self.n}"

    def columns(self, rel) -> dict[str, str]:
        return {c.name: c.type for c in rel.columns}

    def node(self, rel, alias: str, items: list, path: tuple[str, ...],
             extra_where: list[sql.Composable] | None = None,
             limit: sql.Composable | None = None, source: sql.Composable | None = None):
        """(select items as [(expr, name)], FROM…ORDER…LIMIT as SQL, params in text order)."""
        cols = self.columns(rel)
        local = qs.local(self.query, path)
        selects: list[tuple[sql.Composable, str]] = []
        joins: list[sql.Composable] = []
        join_params: list = []
        where_params: list = []
        embed_filters: dict[str, sql.Composable] = {}
        embedded: dict[str, tuple[str, bool, bool, bool]] = {}
        has_agg = False
        group: list[sql.Composable] = []
        for item in items:
            if item == "*":
                for c in rel.columns:
                    expr = sql.Identifier(alias, c.name)
                    selects.append((expr, c.name))
                    group.append(expr)
                continue
            if isinstance(item, Field):
                if item.agg:
                    if not self.aggregates:
                        raise pgrst(400, "PGRST123", "Use of aggregate functions is not allowed")
                    has_agg = True
                    inner = sql.SQL("*") if item.spec == "*" else self._field(item.spec, item.cast, cols, alias)
                    expr = sql.SQL(item.agg + "({})").format(inner)
                    if item.agg_cast:
                        expr = sql.SQL("({})::{}").format(expr, sql.SQL(item.agg_cast))
                    selects.append((expr, item.name))
                    continue
                if item.spec == "count" and "count" not in cols and not item.cast:
                    # `rel(count)`: the count of the embedded rows (PostgREST's backwards-compatible form).
                    if not self.aggregates:
                        raise pgrst(400, "PGRST123", "Use of aggregate functions is not allowed")
                    has_agg = True
                    selects.append((sql.SQL("count(*)"), item.alias or "count"))
                    continue
                expr = self._field(item.spec, item.cast, cols, alias)
                selects.append((expr, item.name))
                group.append(expr)
                continue
            # an embed
            rel_info = relationships.find(self.cache.relationships, self.schema, rel.name,
                                          item.target, item.hint)
            target = self.cache.relations.get(rel_info.ftable[1])
            if target is None:
                raise pgrst(400, "PGRST200", f"Could not find a relationship between '{rel.name}' and "
                            f"'{item.target}' in the schema cache")
            child_alias = self._alias()
            lat = "_l" + child_alias
            c_source = None
            if rel_info.function is not None:
                # A computed relationship: the function called with the parent's row (QueryBuilder's
                # `schema.fn(parent::schema.table)`), no join condition.
                c_source = sql.SQL("{}({}::{})").format(sql.Identifier(*rel_info.function),
                                                        sql.Identifier(alias), sql.Identifier(*rel_info.table))
                conds = {"where": []}
            else:
                conds = self._join_conditions(rel_info, alias, child_alias)
            c_sel, c_from, c_params = self.node(
                target, child_alias, item.items, path + (item.name,), conds["where"],
                self._child_limit(path + (item.name,)), source=c_source)
            inner = sql.SQL("select {} {}").format(
                sql.SQL(", ").join(sql.SQL("{} as {}").format(e, sql.Identifier(n)) for e, n in c_sel), c_from)
            kind = "inner" if item.join == "inner" else "left"
            self.paths.add(path + (item.name,))
            shown = bool(c_sel)
            if not shown:
                sub = sql.SQL("select 1 as body from (select {}) _s limit 1").format(c_from)
            elif rel_info.to_one and item.spread:
                # the marker tells "no related row" from a related row whose spread columns are null
                sub = sql.SQL("select true as _pgrst_present, _s.* from ({}) _s").format(inner)
                for _e, n in c_sel:
                    selects.append((sql.Identifier(lat, n), n))
            elif rel_info.to_one:
                # `_row` keeps the typed columns for a related order (`order=rel(col)`)
                sub = sql.SQL("select row_to_json(_s) as body, _s as _row from ({}) _s").format(inner)
                selects.append((sql.Identifier(lat, "body"), item.name))
            elif item.spread:
                sub = sql.SQL("select {} from ({}) _s").format(
                    sql.SQL(", ").join(sql.SQL("json_agg(_s.{}) as {}").format(sql.Identifier(n), sql.Identifier(n))
                                       for _e, n in c_sel), inner)
                for _e, n in c_sel:
                    selects.append((sql.SQL("coalesce({}, '[]')").format(sql.Identifier(lat, n)), n))
            else:
                sub = sql.SQL("select json_agg(_s) as body from ({}) _s").format(inner)
                selects.append((sql.SQL("coalesce({}, '[]')").format(sql.Identifier(lat, "body")), item.name))
            if not shown:
                present = sql.SQL("{} is not null").format(sql.Identifier(lat, "body"))
                on = sql.SQL("true")
            elif rel_info.to_one:
                on = sql.SQL("true")
                present = sql.SQL("{} is not null").format(
                    sql.Identifier(lat, "_pgrst_present" if item.spread else "body"))
            else:
                first = sql.Identifier(lat, "body" if not item.spread else c_sel[0][1])
                present = sql.SQL("{} is not null").format(first)
                on = present if kind == "inner" else sql.SQL("true")
            joins.append(sql.SQL(" " + kind + " join lateral ({}) {} on {}").format(sub, sql.Identifier(lat), on))
            join_params.extend(c_params)
            embed_filters[item.name] = present
            embedded[item.name] = (lat, rel_info.to_one, item.spread, shown)
        # filters of this resource (and `embed=is.null` / `embed=not.is.null`)
        conds_sql: list[sql.Composable] = list(extra_where or [])
        plain = []
        for k, v in local:
            if k in embed_filters and v in ("is.null", "not.is.null"):
                p = embed_filters[k]
                conds_sql.append(p if v == "not.is.null" else sql.SQL("not ({})").format(p))
            else:
                plain.append((k, v))
        conds_sql += qs.conditions(plain, cols, where_params, alias)
        text = sql.SQL("from {} {}").format(source or sql.Identifier(self.schema, rel.name), sql.Identifier(alias))
        text = sql.Composed([text, *joins])
        if conds_sql:
            text = sql.SQL("{} where {}").format(text, sql.SQL(" and ").join(conds_sql))
        if has_agg and group:
            text = sql.SQL("{} group by {}").format(text, sql.SQL(", ").join(group))
        order_value = dict(local).get("order")
        terms = self._order_terms(order_value, cols, alias, rel.name, embedded)
        if terms:
            text = sql.SQL("{} order by {}").format(text, sql.SQL(", ").join(terms))
        if limit is not None:
            text = sql.Composed([text, limit])
        return selects, text, join_params + where_params

    def _order_terms(self, value: str | None, cols, alias: str, origin: str,
                     embedded: dict[str, tuple[str, bool, bool, bool]]) -> list[sql.Composable]:
        """`order=a.desc,rel(col).asc`: a related order sorts by a column of an embedded to-one
        resource (docs: Resource Embedding, "Related order"; RelatedQueriesSpec.hs)."""
        if not value:
            return []
        terms: list[sql.Composable] = []
        for item in qs._split_top(value):
            m = _RELATED_ORDER.match(item.strip())
            if not m:
                terms += qs.order_terms(item, cols, alias)
                continue
            name, spec, rest = m.group("rel"), m.group("field"), m.group("rest") or ""
            if name not in embedded:
                raise pgrst(400, "PGRST108", f"'{name}' is not an embedded resource in this request",
                            None, f"Verify that '{name}' is included in the 'select' query parameter.")
            lat, to_one, spread, shown = embedded[name]
            if not to_one:
                raise pgrst(400, "PGRST118", f"A related order on '{name}' is not possible",
                            f"'{origin}' and '{name}' do not form a many-to-one or one-to-one relationship")
            col, path = qs.parse_field(spec)
            qs.ident(col)
            expr: sql.Composable = sql.Identifier(lat, col) if spread else \
                sql.SQL("({}).{}").format(sql.Identifier(lat, "_row"), sql.Identifier(col))
            if path:
                # the embedded select's columns are typed only at run time: to_jsonb() of a json
                # or jsonb value is the value itself
                expr = sql.SQL("to_jsonb({})").format(expr)
            for arrow, key in path:
                lit = sql.Literal(int(key)) if re.fullmatch(r"-?\d+", key) else sql.Literal(key)
                expr = sql.SQL("{}" + arrow + "{}").format(expr, lit)
            bits = [expr]
            for b in [b for b in rest.split(".") if b]:
                if b in ("asc", "desc"):
                    bits.append(sql.SQL(b))
                elif b in ("nullsfirst", "nullslast"):
                    bits.append(sql.SQL("nulls first" if b == "nullsfirst" else "nulls last"))
                else:
                    raise pgrst(400, "PGRST100", f'"failed to parse order ({value})"')
            if not shown:
                raise pgrst(400, "PGRST100", f'"failed to parse order ({value})"')
            terms.append(sql.SQL(" ").join(bits))
        return terms

    def _field(self, spec: str, cast: str | None, cols, alias: str) -> sql.Composable:
        expr = qs.field(spec, cols, alias)
        if cast:
            expr = sql.SQL("({})::{}").format(expr, sql.SQL(cast))
        return expr

    def _child_limit(self, path: tuple[str, ...]) -> sql.Composable | None:
        local = dict(qs.local(self.query, path))
        limit = qs.nonneg_int(local.get("limit"), "limit")
        offset = qs.nonneg_int(local.get("offset"), "offset")
        if limit is None and offset is None:
            return None
        return sql.SQL(" limit {} offset {}").format(
            sql.SQL("all") if limit is None else sql.Literal(limit), sql.Literal(offset or 0))

    def _join_conditions(self, rel, parent: str, child: str) -> dict:
        if rel.card == "m2m":
            j = rel.junction
            jt = "_j" + child
            # exists() over the junction keeps the target rows distinct, as PostgREST's join does.
            eq = sql.SQL("{} = {}")
            on = sql.SQL(" and ").join(
                [eq.format(sql.Identifier(jt, jc), sql.Identifier(child, tc)) for tc, jc in j.cols_target]
                + [eq.format(sql.Identifier(jt, jc), sql.Identifier(parent, sc)) for sc, jc in j.cols_source])
            return {"where": [sql.SQL("exists (select 1 from {} {} where {})").format(
                sql.Identifier(*j.table), sql.Identifier(jt), on)]}
        return {"where": [sql.SQL("{} = {}").format(sql.Identifier(child, fc), sql.Identifier(parent, c))
                          for c, fc in rel.cols]}


def columns_list(selects) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{} as {}").format(e, sql.Identifier(n)) for e, n in selects)


__all__ = ["Planner", "parse", "columns_list", "Field", "Embed", "ApiError"]
