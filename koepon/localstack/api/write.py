"""POST / PUT / PATCH / DELETE on a table or view, as PostgREST plans them (Query/QueryBuilder.hs,
Response.hs; docs: Tables and Views, Prefer header; InsertSpec, UpsertSpec, UpdateSpec,
DeleteSpec, MaxAffectedSpec).

* POST inserts one object or an array of objects (all with the same keys, or the keys named
  by `columns=`); `Prefer: missing=default` fills absent keys with the column default;
  `resolution=merge-duplicates|ignore-duplicates` with `on_conflict=` (default: the primary
  key) upserts, answering 200 instead of 201 when every row was an update.
* PUT upserts exactly one row addressed by `pk=eq.value` filters on every primary-key column.
* `return=minimal` (default) / `headers-only` (with `Location`) / `representation` (`select=`
  with embedding applies to the written rows, RLS SELECT policies included).
* `handling=strict` with `max-affected=N` rolls back and answers 400 PGRST124 past N rows;
  `tx=rollback` rolls back when the database allows the override (`pgrst.db_tx_end`).
"""

from __future__ import annotations

import orjson
from psycopg import sql

from . import plan, prefer
from . import querystring as qs
from .errors import pgrst
from .read import body_query, respond_rows

_COUNT_UPDATES = sql.SQL(
    "set_config('pgrst.updated', (coalesce(nullif(current_setting('pgrst.updated', true), '')::int, 0)"
    " + 1)::text, true) <> '-1'")


def _rows_and_keys(ctx, body, cols: dict[str, str], name: str) -> tuple[list[dict], list[str]]:
    rows = body if isinstance(body, list) else [body]
    if not rows or not all(isinstance(r, dict) for r in rows):
        if isinstance(body, list) and body and any(isinstance(r, dict) for r in body):
            raise pgrst(400, "PGRST102", "All object keys must match")
        raise pgrst(400, "PGRST102", "Empty or invalid json")
    if ctx.q("columns"):
        # supabase clients double-quote the names (`columns="name","rank"`), as PostgREST allows
        keys = [qs._unquote(k.strip()) for k in qs._split_top(ctx.q("columns")) if k.strip()]
    else:
        keys = list(rows[0])
        if any(set(r) != set(keys) for r in rows[1:]):
            raise pgrst(400, "PGRST102", "All object keys must match")
    for k in keys:
        if k not in cols:
            raise pgrst(400, "PGRST204", f"Could not find the '{k}' column of '{name}' in the schema cache")
    return rows, keys


def _insert(ctx, target, rows, keys, cols, params: list, defaults: bool) -> sql.Composable:
    from .rest import _arg_text

    idents = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
    if not keys:
        return sql.SQL("insert into {} default values").format(target) if len(rows) == 1 else \
            sql.SQL("insert into {} select from json_array_elements(%s::json)").format(target)
    if defaults:
        values = []
        for row in rows:
            items = []
            for k in keys:
                if k in row:
                    params.append(_arg_text(row[k], cols[k]))
                    items.append(sql.SQL("%s::{}").format(sql.SQL(cols[k])))
                else:
                    items.append(sql.SQL("default"))
            values.append(sql.SQL("({})").format(sql.SQL(", ").join(items)))
        return sql.SQL("insert into {} ({}) values {}").format(target, idents, sql.SQL(", ").join(values))
    params.append(orjson.dumps(rows).decode())
    typed = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(cols[k])) for k in keys)
    return sql.SQL("insert into {} ({}) select {} from json_to_recordset(%s::json) as _({})").format(
        target, idents, idents, typed)


def _on_conflict(ctx, rel, keys: list[str], resolution: str | None, conflict: list[str] | None) -> sql.Composable:
    if resolution is None:
        return sql.SQL("")
    target_cols = conflict or list(rel.pk)
    if not target_cols:
        return sql.SQL("")
    on = sql.SQL(", ").join(sql.Identifier(c) for c in target_cols)
    if resolution == "ignore-duplicates" or not keys:
        return sql.SQL(" on conflict ({}) do nothing").format(on)
    sets = sql.SQL(", ").join(sql.SQL("{} = excluded.{}").format(sql.Identifier(k), sql.Identifier(k)) for k in keys)
    return sql.SQL(" on conflict ({}) do update set {} where {}").format(on, sets, _COUNT_UPDATES)


def _put_filters(ctx, rel) -> dict[str, str]:
    """PUT addresses one row: `pk=eq.v` on every primary-key column and nothing else."""
    if ctx.q("limit") is not None or ctx.q("offset") is not None:
        raise pgrst(400, "PGRST114", "limit/offset querystring parameters are not allowed for PUT")
    bad = pgrst(405, "PGRST105", "Filters must include all and only primary key columns with 'eq' operators")
    found: dict[str, str] = {}
    for k, v in qs.local(ctx.query):
        if k in ("select", "columns", "on_conflict"):
            continue
        if k not in rel.pk or not v.startswith("eq."):
            raise bad
        found[k] = v[3:]
    if not rel.pk or set(found) != set(rel.pk):
        raise bad
    return found


async def write(rest, ctx, name: str, body):
    cache = rest.negotiate(ctx)
    prefer.check(ctx.prefer)
    rel = rest._relation(cache, name)
    cols = {c.name: c.type for c in rel.columns}
    target = sql.Identifier(cache.schema, name)
    params: list = []
    ret = ctx.prefer.get("return", "minimal")
    representation = ret == "representation"
    resolution = ctx.prefer.get("resolution")
    honoured = ["return", "count", "handling", "max-affected", "timezone"]
    rollback = ctx.prefer.get("tx") == "rollback" and cache.tx_override
    if cache.tx_override and "tx" in ctx.prefer:
        honoured.append("tx")
    n_rows = None
    if ctx.method in ("POST", "PUT"):
        rows, keys = _rows_and_keys(ctx, body, cols, name)
        conflict = None
        if ctx.method == "PUT":
            pk = _put_filters(ctx, rel)
            rows = rows[:1]
            if any(k not in rows[0] or str(rows[0][k]) != v for k, v in pk.items()):
                raise pgrst(400, "PGRST115", "Payload values do not match URL in primary key column(s)")
            resolution = "merge-duplicates"
        else:
            if ctx.q("on_conflict"):
                conflict = [qs._unquote(c.strip()) for c in qs._split_top(ctx.q("on_conflict")) if c.strip()]
                for c in conflict:
                    qs.ident(c, cols)
            if resolution:
                honoured.append("resolution")
        defaults = ctx.prefer.get("missing") == "default"
        if defaults:
            honoured.append("missing")
        stmt = _insert(ctx, target, rows, keys, cols, params, defaults)
        stmt = sql.Composed([stmt, _on_conflict(ctx, rel, keys, resolution, conflict)])
        n_rows = len(rows)
    elif ctx.method == "PATCH":
        if not isinstance(body, dict) or not body:
            raise pgrst(400, "PGRST102", "Empty or invalid json")
        keys = list(body)
        for k in keys:
            if k not in cols:
                raise pgrst(400, "PGRST204", f"Could not find the '{k}' column of '{name}' in the schema cache")
        idents = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
        typed = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(cols[k])) for k in keys)
        params.append(orjson.dumps(body).decode())
        filt = qs.where(ctx.query, cols, params)
        stmt = sql.SQL("update {} set ({}) = (select {} from json_to_record(%s::json) as _({})){}").format(
            target, idents, idents, typed, filt)
    else:
        filt = qs.where(ctx.query, cols, params)
        stmt = sql.SQL("delete from {}{}").format(target, filt)
    want_rows = representation or ctx.singular or ret == "headers-only"
    selects = None
    if want_rows:
        # RETURNING only when rows are wanted back: then RLS SELECT policies apply, as in PostgREST.
        # The written rows are filtered already; `order` (top-level and embedded) sorts what is sent
        # back, while `limit`/`offset` apply to nothing on a write: PostgREST 13 dropped limited
        # updates/deletes and plans no range for a mutation (Plan.hs addRanges; UpdateSpec.hs,
        # DeleteSpec.hs "with ordering").
        top = dict(qs.local(ctx.query))
        embeds_only = [(k, v) for k, v in ctx.query
                       if (k not in top or k in ("select", "order"))
                       and k.rsplit(".", 1)[-1] not in ("limit", "offset")]
        planner = plan.Planner(cache, cache.schema, embeds_only, cache.aggregates)
        items = plan.parse(ctx.q("select")) if representation or ctx.singular else ["*"]
        selects, frm, sel_params = planner.node(rel, "_0", items, (), None, None, source=sql.Identifier("_w"))
        query = sql.SQL("with _w as ({} returning *) {}").format(stmt, body_query(selects, frm, ctx.media))
        params = params + sel_params
    else:
        query = sql.SQL("with _w as ({} returning 1) select count(*) from _w").format(stmt)
    queries = [(query, params), (sql.SQL("select current_setting('pgrst.updated', true)"), [])]

    def check(results):
        n = len(results[0]) if want_rows else results[0][0][0]
        prefer.enforce_max_affected(ctx.prefer, n)
        if ctx.singular and n != 1:
            raise pgrst(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                        f"The result contains {n} rows")

    results, status, extra = await rest._run(ctx, False, queries, check, rollback=rollback)
    rows_out = [r[0] for r in results[0]] if want_rows else []
    n = len(rows_out) if want_rows else results[0][0][0]
    updated = int(results[1][0][0] or 0)
    headers = dict(prefer.applied(ctx.prefer, tuple(honoured)))
    count = ctx.prefer.get("count") in ("exact", "planned", "estimated")
    if ctx.method == "PATCH":
        headers["Content-Range"] = f"0-{n - 1}/{n if count else '*'}" if n else f"*/{n if count else '*'}"
    elif ctx.method != "PUT":
        headers["Content-Range"] = f"*/{n}" if count else "*/*"
    if ret == "headers-only" and ctx.method == "POST" and rows_out and rel.pk:
        first = orjson.loads(rows_out[0])
        headers["Location"] = f"/{name}?" + "&".join(f"{c}=eq.{first.get(c)}" for c in rel.pk)
    headers.update(extra)
    if ctx.method == "POST":
        default = 200 if (resolution == "merge-duplicates" and n_rows is not None and updated >= n_rows) else 201
    elif ctx.method == "PUT":
        default = (201 if updated == 0 else 200) if representation else 204
    else:
        default = 200 if representation else 204
    if not representation and not ctx.singular:
        return status or default, None, headers
    return status or default, respond_rows(ctx, selects, rows_out), rest._headers(ctx, headers)
