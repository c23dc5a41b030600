"""GET/HEAD on a table or view: plan (plan.py), run in one read-only transaction, respond in the
negotiated representation with PostgREST's Content-Range, 206/416 and Preference-Applied."""

from __future__ import annotations

from psycopg import sql

from . import media, plan
from . import querystring as qs
from .errors import pgrst


def body_query(selects, frm, representation: media.Media) -> sql.Composable:
    """One text value per row in the representation asked for."""
    inner = sql.SQL("select {} {}").format(plan.columns_list(selects), frm)
    if representation.type == media.CSV:
        return sql.SQL("select substring(_t::text, 2, length(_t::text) - 2) from ({}) _t").format(inner)
    row = "json_strip_nulls(row_to_json(_t))" if representation.strip_nulls else "row_to_json(_t)"
    return sql.SQL("select " + row + "::text from ({}) _t").format(inner)


def respond_rows(ctx, selects, rows: list[str]) -> bytes:
    if ctx.media.type == media.CSV:
        return media.csv_body([n for _e, n in selects], rows)
    if ctx.singular:
        return rows[0].encode()
    return ("[" + ",".join(rows) + "]").encode()


def preference_applied(ctx, honoured: list[str]) -> dict[str, str]:
    """PostgREST echoes the preferences it honoured (docs: Prefer header)."""
    applied = [f"{k}={ctx.prefer[k]}" for k in honoured if k in ctx.prefer]
    return {"Preference-Applied": ", ".join(applied)} if applied else {}


async def read(rest, ctx, name: str, range_header: str | None):
    from .rest import _content_range, _singular_check

    cache = rest.negotiate(ctx)
    rel = rest._relation(cache, name)
    items = plan.parse(ctx.q("select"))
    rng = qs.parse_range(range_header)
    planner = plan.Planner(cache, cache.schema, ctx.query, cache.aggregates)
    selects, frm, params = planner.node(rel, "_0", items, (), None, rest._limit(ctx, rng))
    planner.check_filters()
    queries = [(body_query(selects, frm, ctx.media), params)]
    count = ctx.prefer.get("count")
    want_count = count in ("exact", "planned", "estimated")
    if want_count:
        counter = plan.Planner(cache, cache.schema, ctx.query, cache.aggregates)
        c_sel, c_frm, c_params = counter.node(rel, "_0", items, (), None, None)
        queries.append((sql.SQL("select count(*) from (select {} {}) _c").format(
            plan.columns_list(c_sel), c_frm), c_params))
    results, status, extra = await rest._run(ctx, True, queries)
    rows = [r[0] for r in results[0]]
    total = results[1][0][0] if want_count else None
    offset = rng[0] if rng else (qs.nonneg_int(ctx.q("offset"), "offset") or 0)
    applied = preference_applied(ctx, ["count"] if want_count else [])
    if ctx.singular:
        _singular_check([results[0]])
        return status or 200, respond_rows(ctx, selects, rows), rest._headers(ctx, {**applied, **extra})
    if total is not None and offset > 0 and offset >= total and not rows:
        err = pgrst(416, "PGRST103", "Requested range not satisfiable",
                    f"An offset of {offset} was requested, but there are only {total} rows.")
        err.headers["Content-Range"] = f"*/{total}"
        raise err
    headers = rest._headers(ctx, {"Content-Range": _content_range(offset, len(rows), total), **applied, **extra})
    if status is None:
        status = 206 if (total is not None and len(rows) < total) else 200
    return status, respond_rows(ctx, selects, rows), headers
