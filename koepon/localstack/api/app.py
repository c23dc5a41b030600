"""The local Supabase-compatible API: /rest/v1, /auth/v1, /storage/v1, /realtime/v1 and /health on one port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from http.cookies import SimpleCookie
from pathlib import Path

import orjson
import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from ...settings import JWT_SECRET, paths
from ...settings import db_url as default_db_url
from ..realtime import Realtime
from . import openapi, schema
from .auth import Auth, AuthError
from .errors import ApiError, pgrst
from .rest import Ctx, Rest, parse_prefer
from .storage import Storage, StorageError, read_upload, upload_mimetype
from .tokens import JwtVerifier

log = logging.getLogger("koepon.localstack.api")
MAX_BODY = 1024 * 1024
# /ready: seconds within which a pooled connection must answer `select 1`.
READY_TIMEOUT = 0.5
CORS_EXPOSE = ("Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, "
               "Transfer-Encoding, Range-Unit")


def _json(status: int, body: bytes | None, headers: dict | None = None) -> Response:
    return Response(body if body is not None else b"", status_code=status, headers=headers or {},
                    media_type="application/json" if body is not None else None)


class Api:
    def __init__(self, db_url: str, jwt_secret: str, storage_root: Path, pool_size: int = 16):
        self.db_url = db_url
        self.rest_url = make_conninfo(db_url, user="authenticator")
        self.verifier = JwtVerifier(jwt_secret)
        self.secret = jwt_secret
        self.cache = schema.SchemaCache()
        self.pool = AsyncConnectionPool(self.rest_url, min_size=2, max_size=pool_size, open=False,
                                        kwargs={"autocommit": True, "prepare_threshold": 5})
        self.admin_pool = AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False)
        self.rest = Rest(self.pool, lambda: self.cache)
        self.auth = Auth(self.admin_pool, jwt_secret, "http://127.0.0.1/auth/v1")
        self.storage = Storage(self.admin_pool, self.rest, jwt_secret, storage_root)
        self._listener: asyncio.Task | None = None

    async def start(self) -> None:
        await self.pool.open(wait=True)
        await self.admin_pool.open(wait=True)
        await self.reload()
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.pool.close()
        await self.admin_pool.close()

    async def reload(self) -> None:
        async with self.admin_pool.connection() as conn:
            self.cache = await schema.load(conn)

    async def _listen(self) -> None:
        """Reload the schema cache on NOTIFY pgrst, 'reload schema' (as PostgREST does)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
                    await conn.execute("listen pgrst")
                    async for note in conn.notifies():
                        if note.payload in ("reload schema", "reload config", ""):
                            await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception:  # reconnect after a database restart
                log.warning("schema listener lost its connection; retrying")
                await asyncio.sleep(1)

    # -- request plumbing ------------------------------------------------------------------

    def identify(self, request: Request) -> tuple[str, dict]:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token and request.headers.get("apikey"):
            token = request.headers["apikey"]
        if not token:
            return "anon", {}
        claims = self.verifier.claims(token)
        return claims.get("role") or "anon", claims

    def ctx(self, request: Request, path: str, role: str, claims: dict) -> Ctx:
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "cookie"}
        # This server is the edge: what a client sends as its own address is not to be trusted. As
        # Cloudflare does in front of hosted Supabase, CF-Connecting-IP becomes the peer's address
        # (private.request_client_ip reads it first), and X-Forwarded-For holds the one entry the
        # edge writes (docs/local-api.md, "The client's address").
        headers.pop("cf-connecting-ip", None)
        if request.client:
            headers["cf-connecting-ip"] = request.client.host
            headers["x-forwarded-for"] = request.client.host
        else:
            headers.pop("x-forwarded-for", None)
        cookies = {}
        if request.headers.get("cookie"):
            jar = SimpleCookie()
            with contextlib.suppress(Exception):
                jar.load(request.headers["cookie"])
            cookies = {k: m.value for k, m in jar.items()}
        return Ctx(request.method, path, role, claims, headers, cookies,
                   list(request.query_params.multi_items()), parse_prefer(", ".join(request.headers.getlist("prefer"))),
                   request.headers.get("accept", "application/json"))

    async def body(self, request: Request) -> bytes:
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            raise pgrst(413, "PGRST413", "Payload Too Large")
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BODY:
                raise pgrst(413, "PGRST413", "Payload Too Large")
        return data

    @staticmethod
    def parse_json(data: bytes):
        if not data.strip():
            return {}
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise pgrst(400, "PGRST102", "Empty or invalid json", str(exc)) from exc


# -- handlers: parse the request, call the layer that plans and executes it, respond -------------
def _api(request: Request) -> Api:
    return request.app.state.api


async def health(request: Request) -> Response:
    return _json(200, b'{"status":"ok"}')


async def ready(request: Request) -> Response:
    # Ready: a pooled connection answers a query within READY_TIMEOUT seconds.
    api = _api(request)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with api.pool.connection() as conn:
                await conn.execute("select 1")
    except Exception as exc:  # any failure means "not ready"; the reason goes into the answer
        return _json(503, orjson.dumps({"status": "unavailable", "database": "unreachable",
                                        "reason": (str(exc) or type(exc).__name__)[:200]}),
                     {"Retry-After": "5"})
    return _json(200, orjson.dumps({"status": "ready", "database": "ok", "pool": api.pool.get_stats(),
                                    "database_ms": round((time.perf_counter() - started) * 1000, 1)}))


async def rest_root(request: Request) -> Response:
    api = _api(request)
    try:
        api.identify(request)  # a forged or expired token is refused here too (401), as PostgREST does
    except ApiError as err:  # `/rest/v1` without the slash is routed outside the mount's handlers
        return await rest_error(request, err)
    base = str(request.base_url).rstrip("/") + "/rest/v1"
    return _json(200, orjson.dumps(openapi.build(api.cache, base)), {"Content-Type": "application/openapi+json"})


async def rest(request: Request) -> Response:
    api = _api(request)
    role, claims = api.identify(request)
    name = request.path_params["name"]
    ctx = api.ctx(request, "/" + name, role, claims)
    if name.startswith("rpc/"):
        fn = name[4:]
        if request.method == "POST":
            raw = await api.body(request)
            args = api.parse_json(raw)
            status, body, headers = await api.rest.rpc(ctx, fn, args if isinstance(args, dict) else {}, raw)
        elif request.method in ("GET", "HEAD"):
            fns = api.cache.functions.get(fn, [])
            names = set().union(*(f.names for f in fns)) if fns else set()
            args = {k: v for k, v in ctx.query if k in names}
            ctx.query = [(k, v) for k, v in ctx.query if k not in names]
            status, body, headers = await api.rest.rpc(ctx, fn, args, None)
        else:
            raise pgrst(405, "PGRST101", f"Cannot use the {request.method} method on RPC")
    elif request.method in ("GET", "HEAD"):
        status, body, headers = await api.rest.read(ctx, name, request.headers.get("range"))
    elif request.method in ("POST", "PATCH", "PUT", "DELETE"):
        raw = await api.body(request)
        status, body, headers = await api.rest.write(ctx, name, api.parse_json(raw) if raw else None)
    else:
        raise pgrst(405, "PGRST117", f"Unsupported HTTP method: {request.method}")
    if request.method == "HEAD":
        body = None
    return _json(status, body, headers)


async def rest_error(request: Request, err: ApiError) -> Response:
    return _json(err.status, err.body(), {**err.headers, "Proxy-Status": f"PostgREST; error={err.code}"})


async def auth_endpoint(request: Request) -> Response:
    from . import auth_routes

    return await auth_routes.handle(_api(request), request, _client_ip(request))


async def auth_error(request: Request, err: AuthError) -> Response:
    return _json(err.status, err.body())


async def auth_api_error(request: Request, err: ApiError) -> Response:
    """GoTrue's error shape for what the shared plumbing (body size, JSON) refuses."""
    if err.code == "PGRST102":  # an unparsable body: GoTrue's bad_json
        bad = AuthError(400, "bad_json", f"Could not parse request body as JSON: {err.details or err.message}")
        return _json(bad.status, bad.body())
    return _json(err.status, orjson.dumps({"code": err.status, "error_code": err.code, "msg": err.message}))


async def storage_endpoint(request: Request) -> Response:
    api = _api(request)
    kind, _, remainder = request.path_params["rest"].partition("/")
    bucket, _, name = remainder.partition("/")
    if kind == "object" and bucket == "sign" and "/" in name:
        bucket, _, name = name.partition("/")
        if request.method == "POST":
            role, claims = api.identify(request)
            ctx = api.ctx(request, "/storage", role, claims)
            body = api.parse_json(await api.body(request))
            return _json(200, orjson.dumps(await api.storage.sign_url(ctx, bucket, name, body)))
        if request.method == "GET":
            data = api.storage.read_signed(bucket, name, request.query_params.get("token"))
            return Response(data, media_type="application/octet-stream")
    if kind == "object" and bucket == "public" and "/" in name and request.method == "GET":
        bucket, _, name = name.partition("/")
        return Response(await api.storage.public(bucket, name), media_type="application/octet-stream")
    if kind == "object" and bucket in ("list", "move", "copy") and request.method == "POST":
        role, claims = api.identify(request)
        ctx = api.ctx(request, "/storage", role, claims)
        body = api.parse_json(await api.body(request)) or {}
        if not isinstance(body, dict):
            raise StorageError(400, "InvalidRequest", "the body must be a JSON object")
        if bucket == "list" and name:
            return _json(200, orjson.dumps(await api.storage.list(ctx, name, body)))
        if bucket == "move" and not name:
            return _json(200, orjson.dumps(await api.storage.move(ctx, body)))
        if bucket == "copy" and not name:
            return _json(200, orjson.dumps(await api.storage.copy(ctx, body)))
    if kind == "object" and bucket and not name and request.method == "DELETE":
        role, claims = api.identify(request)
        ctx = api.ctx(request, "/storage", role, claims)
        body = api.parse_json(await api.body(request)) or {}
        if not isinstance(body, dict):
            raise StorageError(400, "InvalidRequest", "the body must be a JSON object")
        return _json(200, orjson.dumps(await api.storage.remove(ctx, bucket, body)))
    if kind == "object" and name and request.method == "GET":
        if bucket == "authenticated" and "/" in name:
            bucket, _, name = name.partition("/")
        role, claims = api.identify(request)
        ctx = api.ctx(request, "/storage", role, claims)
        return Response(await api.storage.download(ctx, bucket, name), media_type="application/octet-stream")
    if kind == "object" and name and request.method in ("POST", "PUT"):
        role, claims = api.identify(request)
        ctx = api.ctx(request, "/storage", role, claims)
        raw = await read_upload(request)
        data = _file_bytes(request.headers.get("content-type", ""), raw)
        upsert = request.headers.get("x-upsert", "false") == "true" or request.method == "PUT"
        result = await api.storage.upload(ctx, bucket, name, data,
                                          upload_mimetype(request.headers.get("content-type", ""), raw), upsert)
        return _json(200, orjson.dumps(result))
    raise StorageError(404, "not_found", "Not found")


async def storage_error(request: Request, err: StorageError) -> Response:
    return _json(err.status, err.body())


async def storage_api_error(request: Request, err: ApiError) -> Response:
    """Storage's error shape for what the shared plumbing (tokens, body size, JSON) refuses."""
    return _json(err.status if err.status != 200 else 400, orjson.dumps(
        {"statusCode": str(err.status), "error": err.code, "message": err.message}))


# -- the route table: one mount per API, each with the error answers of the service it stands in for --
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]


def _mount(path: str, api: Api, routes: list, handlers: dict) -> Mount:
    sub = Starlette(routes=routes, exception_handlers=handlers)
    sub.state.api = api
    return Mount(path, app=sub)


def create_app(db_url: str | None = None, jwt_secret: str | None = None,
               storage_root: Path | None = None) -> Starlette:
    api = Api(db_url or default_db_url(), jwt_secret or JWT_SECRET,
              storage_root or Path(os.environ.get("KOEPON_STORAGE_DIR", paths().state / "storage")))
    realtime = Realtime(api.db_url, api.secret)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await api.start()
        await realtime.start()
        try:
            yield
        finally:
            await realtime.stop()
            await api.stop()

    app = Starlette(routes=[
        Route("/health", health),
        Route("/ready", ready),
        Route("/rest/v1", rest_root, methods=["GET", "HEAD"]),
        _mount("/rest/v1", api, [Route("/", rest_root, methods=["GET", "HEAD"]),
                                 Route("/{name:path}", rest, methods=METHODS)],
               {ApiError: rest_error}),
        _mount("/auth/v1", api, [Route("/{action:path}", auth_endpoint, methods=METHODS)],
               {AuthError: auth_error, ApiError: auth_api_error}),
        _mount("/storage/v1", api, [Route("/{rest:path}", storage_endpoint, methods=METHODS)],
               {StorageError: storage_error, ApiError: storage_api_error}),
        *realtime.routes(),
    ], lifespan=lifespan)
    app.state.api = api
    app.state.realtime = realtime
    return _with_cors(app)


def _client_ip(request: Request) -> str | None:
    # This server is the edge (as in Api.ctx): the client's own X-Forwarded-For is not trusted.
    return request.client.host if request.client else None


def _file_bytes(content_type: str, body: bytes) -> bytes:
    """Storage accepts a raw body or a multipart form whose file part carries the bytes."""
    if not content_type.startswith("multipart/form-data"):
        return body
    from email import policy
    from email.parser import BytesParser

    msg = BytesParser(policy=policy.default).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    for part in msg.iter_parts():
        if part.get_filename() is not None or part.get_param("name", header="content-disposition") == "":
            return part.get_payload(decode=True) or b""
    parts = list(msg.iter_parts())
    return (parts[-1].get_payload(decode=True) or b"") if parts else b""


def _with_cors(app):
    """PostgREST's CORS answers: only when an Origin is sent; preflights answered directly."""
    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if origin and scope["method"] == "OPTIONS":
            requested = headers.get("access-control-request-headers", "")
            allow = ", ".join(h for h in ("Authorization", requested) if h)
            resp = Response(b"", 200, {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD",
                "Access-Control-Allow-Headers": allow, "Access-Control-Max-Age": "86400"})
            return await resp(scope, receive, send)

        async def send_cors(message):
            if origin and message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-expose-headers", CORS_EXPOSE.encode())]
            await send(message)
        return await app(scope, receive, send_cors)

    asgi.state = app.state
    return asgi
