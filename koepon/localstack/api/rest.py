"""`/rest/v1`: PostgREST's request lifecycle over a pooled `authenticator` connection."""

from __future__ import annotations

import orjson
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from . import media, prefer
from . import querystring as qs
from .errors import ApiError, from_pg, pgrst
from .schema import Function, SchemaCache

MAX_ROWS = 1000
OBJECT_JSON = "application/vnd.pgrst.object+json"
_RESPONSE_GUCS_TEXT = "select current_setting('response.headers', true), current_setting('response.status', true)"
_GUC_COLUMNS = sql.SQL(", current_setting('response.headers', true), current_setting('response.status', true)")
_BEGIN = "begin"
_BEGIN_READ_ONLY = "begin read only"


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
        self.schema: str | None = None  # the profile, once negotiated
        self.media: media.Media | None = None

    @property
    def anon(self) -> bool:
        return self.role == "anon"

    @property
    def singular(self) -> bool:
        if self.media is not None:
            return self.media.singular
        return self.accept.startswith(OBJECT_JSON)

    def q(self, key: str) -> str | None:
        for k, v in self.query:
            if k == key:
                return v
        return None


def parse_prefer(header: str | None) -> dict[str, str]:
    return prefer.parse([header] if header else [])


class Rest:
    def __init__(self, pool, cache_ref):
        self.pool = pool
        self.cache_ref = cache_ref  # callable returning the current SchemaCache
        self._set_sql: dict[tuple, bytes] = {}
        self._call_sql: dict[tuple, bytes] = {}
        self._pre: tuple[str | None, sql.Composable | None] = (None, None)

    @property
    def cache(self) -> SchemaCache:
        return self.cache_ref()

    def negotiate(self, ctx: Ctx) -> SchemaCache:
        """Pick the schema (profile) and the representation before any SQL runs."""
        cache = self.cache
        prefer.check(ctx.prefer)
        if ctx.schema is None:
            ctx.schema = media.profile(ctx.method, ctx.headers, cache.schemas)
        if ctx.media is None:
            ctx.media = media.negotiate(ctx.accept)
        return cache.profile(ctx.schema)

    def _headers(self, ctx: Ctx, extra: dict[str, str]) -> dict[str, str]:
        out = {"Content-Type": ctx.media.content_type}
        if len(self.cache.schemas) > 1:
            out["Content-Profile"] = ctx.schema
        out.update(extra)
        return out

    # ---- the transaction -------------------------------------------------------------------

    def _settings(self, ctx: Ctx) -> tuple[bytes, list]:
        """One `select set_config(…, true), …` in PostgREST's order; the SQL text is cached."""
        role_settings = self.cache.role_settings.get(ctx.role, {})
        # Keyed on what the text is built from: a reloaded schema cache may reuse a freed one's id().
        key = (ctx.role, tuple(role_settings))
        stmt = self._set_sql.get(key)
        if stmt is None:
            names = ["search_path", *role_settings, "role", "request.jwt.claims", "request.method",
                     "request.path", "request.headers", "request.cookies"]
            # Rendered once (names only; the values are bound per request).
            stmt = (sql.SQL("select ") + sql.SQL(", ").join(
                sql.SQL("set_config({}, %s, true)").format(sql.Literal(k)) for k in names)).as_bytes(None)
            if len(self._set_sql) > 256:
                self._set_sql.clear()
            self._set_sql[key] = stmt
        claims = dict(ctx.claims)
        claims["role"] = ctx.role
        values = [f"{ctx.schema or self.cache.schema}, extensions", *role_settings.values(), ctx.role,
                  orjson.dumps(claims).decode(), ctx.method, ctx.path,
                  orjson.dumps(ctx.headers).decode(), orjson.dumps(ctx.cookies).decode()]
        return stmt, values

    def _pre_request(self) -> sql.Composable | None:
        name = self.cache.pre_request
        if not name:
            return None
        if self._pre[0] != name:
            fn = sql.SQL(".").join(sql.Identifier(p) for p in name.split("."))
            self._pre = (name, sql.SQL("select {}()").format(fn))
        return self._pre[1]

    async def _run(self, ctx: Ctx, read_only: bool, queries: list[tuple[sql.Composable, list]],
                   check=None, pre_request: bool = True, rollback: bool = False,
                   gucs_in_last: bool = False) -> tuple[list[list], int | None, dict[str, str]]:
        """Run the queries in one transaction sent as ONE message (one round trip, COMMIT included).

        BEGIN, the settings, the pre-request hook, the queries, the read of `response.status` /
        `response.headers` and COMMIT go to the server as one simple-protocol query string, the
        parameters merged by psycopg's client-side binding (its own quoting, as `ClientCursor`
        does). Sent statement by statement (extended protocol, even pipelined) every statement
        cost this process an event-loop wait, a `sendto` and its epoll bookkeeping, and the
        server a wake-up and a `recv`: the API spent about half its CPU per request there.
        PostgreSQL runs the statements of one message one after the other, each with its own
        statement timeout (so `statement_timeout` set for the role applies to the ones after it),
        and skips the rest after an error, which is then rolled back here.

        Returns each query's rows (or its rowcount as [[n]] when it returns none), and the
        `response.status` / `response.headers` the SQL may have set (with `gucs_in_last`, the
        last query returns them as its last two columns, as PostgREST's main query does, and
        they are taken off its rows). `check(results)` runs inside the transaction: raising there
        rolls everything back; only then (or with `rollback`) is the end of the transaction a
        second round trip.
        """
        set_sql, set_values = self._settings(ctx)
        for _q, params in queries:
            _refuse_nul(params)
        _refuse_nul(set_values)
        pre = self._pre_request() if pre_request else None
        finish = check is None and not rollback
        try:
            async with self.pool.connection() as conn:
                cur = psycopg.AsyncClientCursor(conn)
                parts = [_BEGIN_READ_ONLY if read_only else _BEGIN, cur.mogrify(set_sql, set_values)]
                if pre is not None:
                    parts.append(cur.mogrify(pre))
                parts += [cur.mogrify(q, p) if p else cur.mogrify(q) for q, p in queries]
                if not gucs_in_last:
                    parts.append(_RESPONSE_GUCS_TEXT)
                if finish:
                    parts.append("commit")
                try:
                    await cur.execute(";\n".join(parts))
                    # Result sets: begin, settings, [hook], the queries, [gucs], [commit].
                    cur.nextset()
                    if pre is not None:
                        cur.nextset()
                    results = []
                    for _q in queries:
                        cur.nextset()
                        results.append([[cur.rowcount]] if cur.description is None else await cur.fetchall())
                    if gucs_in_last:
                        last = results[-1]
                        raw_headers, raw_status = (last[0][-2], last[0][-1]) if last else (None, None)
                        results[-1] = [row[:-2] for row in last]
                    else:
                        cur.nextset()
                        raw_headers, raw_status = await cur.fetchone()
                    if not finish:
                        if check is not None:
                            check(results)
                        await conn.execute("rollback" if rollback else "commit")
                except BaseException:
                    await _rollback(conn)
                    raise
        except psycopg.Error as exc:
            raise from_pg(exc, ctx.anon) from exc
        return results, *_response_gucs(raw_headers, raw_status)

    # ---- RPC ---------------------------------------------------------------------------

    def _pick(self, cache: SchemaCache, name: str, keys: set[str],
              body_is_object: bool) -> tuple[Function, bool]:
        fns = cache.functions.get(name, [])
        matches = [f for f in fns if keys <= f.names and f.required <= keys
                   and not f.single_unnamed_json]
        if body_is_object and len(matches) > 1:
            exact = [f for f in matches if f.names == keys]
            matches = exact or matches
        if len(matches) == 1:
            return matches[0], False
        if len(matches) > 1:
            raise pgrst(300, "PGRST203", "Could not choose the best candidate function between: "
                        + ", ".join(f"{cache.schema}.{name}({', '.join(a.name for a in f.args)})"
                                    for f in matches),
                        None, "Try renaming the parameters or the function itself in the database so "
                        "function overloading can be resolved")
        single = [f for f in fns if f.single_unnamed_json]
        if single:
            return single[0], True
        args = ", ".join(sorted(keys))
        hint = None
        if fns:
            hint = f"Perhaps you meant to call the function {cache.schema}.{name}(" + \
                ", ".join(a.name for a in fns[0].args) + ")"
        raise pgrst(404, "PGRST202",
                    f"Could not find the function {cache.schema}.{name}({args}) in the schema cache",
                    f"Searched for the function {cache.schema}.{name} with parameters {args} or with "
                    "a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
                    hint)

    async def rpc(self, ctx: Ctx, name: str, args: dict | None, raw_body: bytes | None):
        cache = self.negotiate(ctx)
        keys = set(args.keys()) if isinstance(args, dict) else set()
        fn, whole_body = self._pick(cache, name, keys, isinstance(args, dict))
        params: list = []
        names = sorted(keys)
        if whole_body:
            params.append((raw_body or b"{}").decode())
        else:
            types = {a.name: a.type for a in fn.args}
            params += [_arg_text(args[key], types[key]) for key in names]
        if not fn.returns_set:
            # A single-row call returns the response GUCs beside its value (read after the call
            # ran), as PostgREST's main query does: no statement of their own. Its text depends
            # only on the function and the argument names, so it is rendered once.
            ck = (cache.schema, name, fn, whole_body, tuple(names))
            query = self._call_sql.get(ck)
            if query is None:
                # A json scalar is sent as its own text, as PostgREST's json_agg(...)->0 does
                # (to_jsonb would parse it, re-order its keys and cost a parse per call).
                select = ("select null" if fn.kind == "void" else
                          "select _src::text" if fn.kind == "scalar" and fn.return_type == "json" else
                          "select to_jsonb(_src)::text")
                query = sql.SQL(select + "{} from {} _src").format(
                    _GUC_COLUMNS, self._call(cache.schema, name, fn, whole_body, names)).as_bytes(None)
                if len(self._call_sql) > 1024:
                    self._call_sql.clear()
                self._call_sql[ck] = query
            read_only = fn.read_only or ctx.method in ("GET", "HEAD")
            results, status, headers = await self._run(ctx, read_only, [(query, params)], gucs_in_last=True)
            if fn.kind == "void":
                return status or 204, None, headers
            value = results[0][0][0] if results[0] else None
            return status or 200, (value or "null").encode(), self._headers(ctx, headers)
        call = self._call(cache.schema, name, fn, whole_body, names)
        if fn.kind == "composite":
            from .rpc_read import set_result

            read_only = fn.read_only or ctx.method in ("GET", "HEAD")
            check = _singular_check if ctx.singular else None
            return await set_result(self, ctx, cache, fn, call, params, read_only, check)
        query = sql.SQL("select to_jsonb(_src)::text from {} _src{}").format(call, self._limit(ctx))
        # GET always runs READ ONLY (a writing function then fails with 25006 -> 405).
        read_only = fn.read_only or ctx.method in ("GET", "HEAD")
        check = _singular_check if ctx.singular else None
        results, status, headers = await self._run(ctx, read_only, [(query, params)], check)
        values = [r[0] for r in results[0]]
        if ctx.singular:
            return status or 200, (values[0] or "null").encode(), self._headers(ctx, headers)
        body = ("[" + ",".join(v if v is not None else "null" for v in values) + "]").encode()
        return status or 200, body, self._headers(
            ctx, {"Content-Range": _content_range(0, len(values), None), **headers})

    @staticmethod
    def _call(schema: str, name: str, fn: Function, whole_body: bool, names: list[str]) -> sql.Composable:
        """`schema.fn(arg := %s::type, …)`, or `schema.fn(%s::json)` for the whole body."""
        target = sql.Identifier(schema, name)
        if whole_body:
            return sql.SQL("{}(%s::{})").format(target, sql.SQL(fn.args[0].type))
        types = {a.name: a.type for a in fn.args}
        return sql.SQL("{}({})").format(target, sql.SQL(", ").join(
            sql.SQL("{} := %s::{}").format(sql.Identifier(key), sql.SQL(types[key])) for key in names))

    def _limit(self, ctx: Ctx, rng: tuple | None = None) -> sql.Composable:
        limit = qs.nonneg_int(ctx.q("limit"), "limit")
        offset = qs.nonneg_int(ctx.q("offset"), "offset") or 0
        if rng:
            lo, hi = rng
            offset = lo
            if hi is not None:
                if hi < lo:
                    raise pgrst(416, "PGRST103", "Requested range not satisfiable",
                                "The lower boundary must be lower than or equal to the upper boundary "
                                "in the Range header.")
                limit = min(limit, hi - lo + 1) if limit is not None else hi - lo + 1
        limit = MAX_ROWS if limit is None else min(limit, MAX_ROWS)
        return sql.SQL(" limit {} offset {}").format(sql.Literal(limit), sql.Literal(offset))

    # ---- relations ---------------------------------------------------------------------

    def _relation(self, cache: SchemaCache, name: str):
        rel = cache.relations.get(name)
        if rel is None:
            raise pgrst(404, "PGRST205", f"Could not find the table '{cache.schema}.{name}' in the schema cache")
        return rel

    async def read(self, ctx: Ctx, name: str, range_header: str | None):
        from .read import read
        return await read(self, ctx, name, range_header)

    async def write(self, ctx: Ctx, name: str, body):
        from .write import write
        return await write(self, ctx, name, body)


async def _rollback(conn) -> None:
    """End a failed transaction so the connection goes back to the pool idle (a broken
    connection is the pool's to discard)."""
    if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        try:
            await conn.execute("rollback")
        except psycopg.Error:
            pass


def _singular_check(results: list[list]) -> None:
    n = len(results[0])
    if n != 1:
        raise pgrst(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                    f"The result contains {n} rows")


def _response_gucs(raw_headers: str | None, raw_status: str | None) -> tuple[int | None, dict[str, str]]:
    headers: dict[str, str] = {}
    if raw_headers:
        try:
            items = orjson.loads(raw_headers)
            for item in items:
                (k, v), = item.items()
                headers[str(k)] = str(v)
        except (ValueError, TypeError, AttributeError):
            raise pgrst(500, "PGRST111", "response.headers guc must be a JSON array composed of objects "
                        "with a single key and a string value") from None
    status = None
    if raw_status:
        if not raw_status.isdigit() or not 100 <= int(raw_status) <= 599:
            raise pgrst(500, "PGRST112", "response.status guc must be a valid status code")
        status = int(raw_status)
    return status, headers


def _arg_text(value, pg_type: str) -> str | None:
    """A JSON argument as the text PostgreSQL casts to the declared type (22P02 when it cannot)."""
    if value is None:
        return None
    if isinstance(value, list) and pg_type.endswith("[]"):
        text = _pg_array(value)
    elif isinstance(value, (dict, list)):
        # JSON text: a NUL is the escape \u0000 here, which PostgreSQL itself refuses as jsonb (22P05).
        return orjson.dumps(value).decode()
    elif isinstance(value, bool):
        return "true" if value else "false"
    else:
        text = str(value)
    if "\x00" in text:
        # PostgREST hands the arguments to PostgreSQL as JSON; converting "\u0000" to text fails there.
        raise ApiError(400, "22P05", "unsupported Unicode escape sequence", "\\u0000 cannot be converted to text.")
    return text


def _refuse_nul(params) -> None:
    """A NUL byte in a text parameter (a filter value from the query string, …): PostgreSQL refuses
    it as invalid UTF-8 (22021) when PostgREST sends it; psycopg refuses it before sending."""
    for p in params:
        if isinstance(p, str) and "\x00" in p:
            raise ApiError(400, "22021", 'invalid byte sequence for encoding "UTF8": 0x00')


def _content_range(offset: int, n: int, total: int | None) -> str:
    tot = "*" if total is None else str(total)
    if n == 0:
        return f"*/{tot}"
    return f"{offset}-{offset + n - 1}/{tot}"


def _pg_array(values: list) -> str:
    def item(v):
        if v is None:
            return "NULL"
        if isinstance(v, list):
            return _pg_array(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            v = orjson.dumps(v).decode()
        s = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{s}"'
    return "{" + ",".join(item(v) for v in values) + "}"


__all__ = ["Rest", "Ctx", "parse_prefer", "ApiError"]
