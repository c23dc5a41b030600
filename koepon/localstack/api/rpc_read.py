"""The result of a set-returning function read like a table (docs: Functions as RPC,
"Filters, ordering, limits, counting"; RpcSpec.hs): `select` (with embedding when the function
returns a table's or view's row type, as PostgREST allows), filters, `order`, `limit`/`offset`
and `Prefer: count=exact` apply to the call's rows."""

from __future__ import annotations

from psycopg import sql

from . import plan, prefer
from . import querystring as qs
from .read import body_query, respond_rows
from .schema import Column, Relation


def result_relation(cache, fn) -> Relation:
    """The relation the rows are read as: the returned table/view itself when there is one."""
    rtype = fn.return_type.split(".")[-1].strip('"')
    rel = cache.relations.get(rtype)
    if rel is not None and (fn.return_type == rtype or fn.return_type.startswith(cache.schema + ".")):
        return rel
    cols = tuple(Column(n, t, True, False, None) for n, t in fn.out_columns)
    return Relation(fn.name, "f", None, cols, ())


async def set_result(rest, ctx, cache, fn, call: sql.Composable, params: list, read_only: bool, check):
    from .rest import _content_range

    rel = result_relation(cache, fn)
    items = plan.parse(ctx.q("select"))
    planner = plan.Planner(cache, cache.schema, ctx.query, cache.aggregates)
    selects, frm, sel_params = planner.node(rel, "_0", items, (), None, rest._limit(ctx), source=call)
    planner.check_filters()
    queries = [(body_query(selects, frm, ctx.media), params + sel_params)]
    want_count = ctx.prefer.get("count") in ("exact", "planned", "estimated")
    if want_count:
        counter = plan.Planner(cache, cache.schema, ctx.query, cache.aggregates)
        c_sel, c_frm, c_params = counter.node(rel, "_0", items, (), None, None, source=call)
        queries.append((sql.SQL("select count(*) from (select {} {}) _c").format(
            plan.columns_list(c_sel), c_frm), params + c_params))
    results, status, extra = await rest._run(ctx, read_only, queries, check)
    rows = [r[0] for r in results[0]]
    total = results[1][0][0] if want_count else None
    offset = qs.nonneg_int(ctx.q("offset"), "offset") or 0
    headers = {"Content-Range": _content_range(offset, len(rows), total),
               **prefer.applied(ctx.prefer, ("count",)), **extra}
    if status is None:
        status = 206 if (total is not None and len(rows) < total) else 200
    if ctx.singular:
        return status, respond_rows(ctx, selects, rows), rest._headers(ctx, headers)
    return status, respond_rows(ctx, selects, rows), rest._headers(ctx, headers)
