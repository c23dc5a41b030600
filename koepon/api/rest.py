"""`/rest/v1`: PostgREST's request lifecycle over a pooled `authenticator` connection."""

from __future__ import annotations

import orjson
import psycopg
from psycopg import sql

from . import querystring as qs
from .errors import ApiError, from_pg, pgrst
from .schema import EXPOSED_SCHEMA, Function, SchemaCache

MAX_ROWS = 1000
OBJECT_JSON = "application/vnd.pgrst.object+json"


class Ctx:
    """What one request carries into the transaction."""

    def __init__(self, method: str, path: str, role: str, claims: dict, headers: dict,
                 cookies: dict, query: list[tuple[str, str]], prefer: dict[str, str],
                 accept: str):
        self.method = method
        self.path = path
        self.role = role
        self.claims = claims
        self.headers = headers
        self.cookies = cookies
        self.query = query
        self.prefer = prefer
        self.accept = accept

    @property
    def anon(self) -> bool:
        return self.role == "anon"

    def q(self, key: str) -> str | None:
        for k, v in self.query:
            if k == key:
                return v
        return None


def parse_prefer(header: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (header or "").split(","):
        k, _, v = part.strip().partition("=")
        if k:
            out[k.strip()] = v.strip()
    return out


class Rest:
    def __init__(self, pool, cache_ref):
        self.pool = pool
        self.cache_ref = cache_ref  # callable returning the current SchemaCache

    @property
    def cache(self) -> SchemaCache:
        return self.cache_ref()

    async def _run(self, ctx: Ctx, read_only: bool, work):
        cache = self.cache
        try:
            async with self.pool.connection() as conn:
                async with conn.transaction():
                    if read_only:
                        await conn.execute("set transaction read only")
                    settings = [("search_path", f"{EXPOSED_SCHEMA}, extensions")]
                    settings += list(cache.role_settings.get(ctx.role, {}).items())
                    claims = dict(ctx.claims)
                    claims["role"] = ctx.role
                    settings += [
                        ("role", ctx.role),
                        ("request.jwt.claims", orjson.dumps(claims).decode()),
                        ("request.method", ctx.method),
                        ("request.path", ctx.path),
                        ("request.headers", orjson.dumps(ctx.headers).decode()),
                        ("request.cookies", orjson.dumps(ctx.cookies).decode()),
                    ]
                    q = sql.SQL("select ") + sql.SQL(", ").join(
                        sql.SQL("set_config({}, %s, true)").format(sql.Literal(k))
                        for k, _ in settings)
                    await conn.execute(q, [v for _, v in settings])
                    if cache.pre_request:
                        fn = sql.SQL(".").join(sql.Identifier(p) for p in cache.pre_request.split("."))
                        await conn.execute(sql.SQL("select {}()").format(fn))
                    return await work(conn)
        except psycopg.Error as exc:
            raise from_pg(exc, ctx.anon) from exc

    # ---- RPC ---------------------------------------------------------------------------

    def _pick(self, name: str, keys: set[str], body_is_object: bool) -> tuple[Function, bool]:
        fns = self.cache.functions.get(name, [])
        matches = [f for f in fns if keys <= f.names and f.required <= keys
                   and not f.single_unnamed_json]
        if body_is_object and len(matches) > 1:
            exact = [f for f in matches if f.names == keys]
            matches = exact or matches
        if len(matches) == 1:
            return matches[0], False
        if len(matches) > 1:
            raise pgrst(300, "PGRST203", "Could not choose the best candidate function between: "
                        + ", ".join(f"{EXPOSED_SCHEMA}.{name}({', '.join(a.name for a in f.args)})"
                                    for f in matches))
        single = [f for f in fns if f.single_unnamed_json]
        if single:
            return single[0], True
        args = ", ".join(sorted(keys))
        hint = None
        if fns:
            hint = f"Perhaps you meant to call the function {EXPOSED_SCHEMA}.{name}(" + \
                ", ".join(a.name for a in fns[0].args) + ")"
        raise pgrst(404, "PGRST202",
                    f"Could not find the function {EXPOSED_SCHEMA}.{name}({args}) in the schema cache",
                    f"Searched for the function {EXPOSED_SCHEMA}.{name} with parameters {args} or with "
                    "a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
                    hint)

    async def rpc(self, ctx: Ctx, name: str, args: dict | None, raw_body: bytes | None):
        keys = set(args.keys()) if isinstance(args, dict) else set()
        fn, whole_body = self._pick(name, keys, isinstance(args, dict))
        if ctx.method == "GET" and not fn.read_only:
            raise pgrst(405, "25006", "cannot execute INSERT in a read-only transaction")
        params: list = []
        if whole_body:
            params.append((raw_body or b"{}").decode())
            call = sql.SQL("{}.{}(%s::{})").format(sql.Identifier(EXPOSED_SCHEMA), sql.Identifier(name),
                                                  sql.SQL(fn.args[0].type))
        else:
            types = {a.name: a.type for a in fn.args}
            parts = []
            for key in sorted(keys):
                value = args[key]
                if value is None:
                    params.append(None)
                elif isinstance(value, (dict, list)) and types[key] in ("json", "jsonb"):
                    params.append(orjson.dumps(value).decode())
                elif isinstance(value, (dict, list)) and types[key].endswith("[]") and isinstance(value, list):
                    params.append(_pg_array(value))
                elif isinstance(value, (dict, list)):
                    params.append(orjson.dumps(value).decode())
                elif isinstance(value, bool):
                    params.append("true" if value else "false")
                else:
                    params.append(str(value))
                parts.append(sql.SQL("{} := %s::{}").format(sql.Identifier(key), sql.SQL(types[key])))
            call = sql.SQL("{}.{}({})").format(sql.Identifier(EXPOSED_SCHEMA), sql.Identifier(name),
                                               sql.SQL(", ").join(parts))
        cols = {c for c, _ in fn.out_columns} or None
        filt = qs.where(ctx.query, cols if fn.returns_set else set(), params) if fn.returns_set else sql.SQL("")
        tail = sql.SQL("")
        if fn.returns_set:
            tail = qs.order(ctx.q("order"), cols) + self._limit(ctx)
        if fn.kind == "void":
            query = sql.SQL("select {}").format(call)
        else:
            query = sql.SQL("select to_jsonb(_t)::text from {} _t{}{}").format(call, filt, tail)

        async def work(conn):
            cur = await conn.execute(query, params)
            return await cur.fetchall() if fn.kind != "void" else None

        rows = await self._run(ctx, fn.read_only or ctx.method == "GET", work)
        if fn.kind == "void":
            return 204, None, {}
        values = [r[0] for r in rows]
        if ctx.accept.startswith(OBJECT_JSON):
            return self._single(values)
        if fn.returns_set:
            body = ("[" + ",".join(v if v is not None else "null" for v in values) + "]").encode()
            return 200, body, {"Content-Range": _content_range(0, len(values), None)}
        value = values[0] if values else None
        return 200, (value or "null").encode(), {}

    @staticmethod
    def _single(values: list) -> tuple:
        if len(values) != 1:
            raise pgrst(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                        f"The result contains {len(values)} rows")
        return 200, (values[0] or "null").encode(), {}

    def _limit(self, ctx: Ctx, rng: tuple | None = None) -> sql.Composable:
        limit = qs.nonneg_int(ctx.q("limit"), "limit")
        offset = qs.nonneg_int(ctx.q("offset"), "offset") or 0
        if rng:
            lo, hi = rng
            offset = lo
            if hi is not None:
                limit = min(limit, hi - lo + 1) if limit is not None else hi - lo + 1
        limit = MAX_ROWS if limit is None else min(limit, MAX_ROWS)
        return sql.SQL(" limit {} offset {}").format(sql.Literal(limit), sql.Literal(offset))

    # ---- relations ---------------------------------------------------------------------

    def _relation(self, name: str):
        rel = self.cache.relations.get(name)
        if rel is None:
            raise pgrst(404, "PGRST205", f"Could not find the table '{EXPOSED_SCHEMA}.{name}' in the schema cache")
        return rel

    async def read(self, ctx: Ctx, name: str, range_header: str | None):
        rel = self._relation(name)
        cols = {c.name for c in rel.columns}
        params: list = []
        target = sql.SQL("{}.{}").format(sql.Identifier(EXPOSED_SCHEMA), sql.Identifier(name))
        filt = qs.where(ctx.query, cols, params)
        rng = qs.parse_range(range_header)
        select = qs.parse_select(ctx.q("select"), cols)
        body_q = sql.SQL("select to_jsonb(_t)::text from (select {} from {}{}{}{}) _t").format(
            select, target, filt, qs.order(ctx.q("order"), cols), self._limit(ctx, rng))
        want_count = ctx.prefer.get("count") in ("exact", "planned", "estimated")
        count_q = sql.SQL("select count(*) from {}{}").format(target, filt)

        async def work(conn):
            cur = await conn.execute(body_q, params)
            rows = [r[0] for r in await cur.fetchall()]
            total = None
            if want_count:
                cur = await conn.execute(count_q, params)
                total = (await cur.fetchone())[0]
            return rows, total

        rows, total = await self._run(ctx, True, work)
        offset = rng[0] if rng else (qs.nonneg_int(ctx.q("offset"), "offset") or 0)
        if ctx.accept.startswith(OBJECT_JSON):
            return self._single(rows)
        headers = {"Content-Range": _content_range(offset, len(rows), total)}
        status = 200
        if total is not None and offset > 0 and offset >= total and total > 0:
            raise pgrst(416, "PGRST103", "Requested range not satisfiable",
                        f"An offset of {offset} was requested, but there are only {total} rows.")
        if total is not None and len(rows) < total:
            status = 206
        return status, ("[" + ",".join(rows) + "]").encode(), headers

    async def write(self, ctx: Ctx, name: str, body):
        rel = self._relation(name)
        cols = {c.name for c in rel.columns}
        target = sql.SQL("{}.{}").format(sql.Identifier(EXPOSED_SCHEMA), sql.Identifier(name))
        params: list = []
        if ctx.method == "POST":
            rows = body if isinstance(body, list) else [body]
            if not rows or not all(isinstance(r, dict) for r in rows):
                raise pgrst(400, "PGRST102", "Empty or invalid json")
            keys = sorted({k for r in rows for k in r})
            for k in keys:
                qs.ident(k, cols)
            params.append(orjson.dumps(rows).decode())
            query = sql.SQL("insert into {} ({}) select {} from json_populate_recordset(null::{}, %s::json) "
                            "returning to_jsonb({}.*)::text").format(
                target, sql.SQL(", ").join(map(sql.Identifier, keys)),
                sql.SQL(", ").join(map(sql.Identifier, keys)), target, target)
        elif ctx.method == "PATCH":
            if not isinstance(body, dict) or not body:
                raise pgrst(400, "PGRST102", "Empty or invalid json")
            sets = []
            for k, v in body.items():
                sets.append(sql.SQL("{} = %s").format(qs.ident(k, cols)))
                params.append(orjson.dumps(v).decode() if isinstance(v, (dict, list)) else v)
            filt = qs.where(ctx.query, cols, params)
            query = sql.SQL("update {} set {}{} returning to_jsonb({}.*)::text").format(
                target, sql.SQL(", ").join(sets), filt, target)
        else:
            filt = qs.where(ctx.query, cols, params)
            query = sql.SQL("delete from {}{} returning to_jsonb({}.*)::text").format(target, filt, target)

        async def work(conn):
            cur = await conn.execute(query, params)
            return [r[0] for r in await cur.fetchall()]

        rows = await self._run(ctx, False, work)
        status = 201 if ctx.method == "POST" else (200 if ctx.prefer.get("return") == "representation" else 204)
        headers = {"Content-Range": "*/*" if ctx.method != "PATCH" else _content_range(0, len(rows), None)}
        if ctx.prefer.get("return") == "representation":
            return status, ("[" + ",".join(rows) + "]").encode(), headers
        return status, None, headers


def _content_range(offset: int, n: int, total: int | None) -> str:
    tot = "*" if total is None else str(total)
    if n == 0:
        return f"*/{tot}"
    return f"{offset}-{offset + n - 1}/{tot}"


def _pg_array(values: list) -> str:
    def item(v):
        if v is None:
            return "NULL"
        s = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{s}"'
    return "{" + ",".join(item(v) for v in values) + "}"


__all__ = ["Rest", "Ctx", "parse_prefer", "ApiError"]
