"""`/storage/v1`: objects in `storage.objects` (RLS decides), bytes on local disk, signed URLs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import jwt
import orjson
import psycopg
from psycopg import sql

from .errors import from_pg
from .tokens import sign

_SAFE = re.compile(r"^[A-Za-z0-9._\-/ ]+$")
# The global upload limit (supabase/config.toml [storage] file_size_limit; hosted Supabase's
# default is 50 MB too). A larger announced body is refused before a byte of it is read.
UPLOAD_LIMIT = 50 * 1024 * 1024


class StorageError(Exception):
    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    def body(self) -> bytes:
        return orjson.dumps({"statusCode": str(self.status), "error": self.error, "message": self.message})


def _too_large() -> StorageError:
    return StorageError(413, "Payload too large", "The object exceeded the maximum allowed size")


async def read_upload(request, limit: int = UPLOAD_LIMIT) -> bytes:
    """The request body, refusing (413) an announced or streamed body over `limit` without buffering it."""
    try:
        announced = int(request.headers.get("content-length") or 0)
    except ValueError as exc:
        raise StorageError(400, "Error", "invalid content-length") from exc
    if announced > limit:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _check(bucket: str, name: str) -> None:
    if not _SAFE.match(bucket) or not _SAFE.match(name) or ".." in name.split("/") or name.startswith("/"):
        raise StorageError(400, "InvalidKey", f"Invalid key: {bucket}/{name}")


class Storage:
    def __init__(self, pool, rest, secret: str, root: Path):
        self.pool = pool
        self.rest = rest  # for running a query as the caller (role + claims + RLS)
        self.secret = secret
        self.root = root

    def path_of(self, bucket: str, name: str) -> Path:
        _check(bucket, name)
        return self.root / bucket / name

    async def sign_url(self, ctx, bucket: str, name: str, body) -> dict:
        _check(bucket, name)
        # Storage validates the body against its schema first (Fastify: 400, error "Error").
        if not isinstance(body, dict):
            raise StorageError(400, "Error", "body must be object")
        if "expiresIn" not in body:
            raise StorageError(400, "Error", "body must have required property 'expiresIn'")
        expires_in = body["expiresIn"]
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
            raise StorageError(400, "InvalidRequest", "expiresIn must be a positive integer")

        # Read the row as the caller: Storage RLS decides whether it exists for them.
        results, _, _ = await self.rest._run(ctx, True, [(sql.SQL(
            "select 1 from storage.objects where bucket_id = %s and name = %s"), [bucket, name])],
            pre_request=False)
        if not results[0]:
            raise StorageError(400, "not_found", "Object not found")
        token = sign({"url": f"{bucket}/{name}", "exp": int(time.time()) + expires_in}, self.secret)
        return {"signedURL": f"/object/sign/{bucket}/{name}?token={token}"}

    def read_signed(self, bucket: str, name: str, token: str | None) -> bytes:
        _check(bucket, name)
        if not token:
            raise StorageError(400, "InvalidJWT", "Missing token")
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.ExpiredSignatureError as exc:
            raise StorageError(400, "InvalidJWT", '"exp" claim timestamp check failed') from exc
        except jwt.PyJWTError as exc:
            raise StorageError(400, "InvalidJWT", "invalid signature") from exc
        if claims.get("url") != f"{bucket}/{name}":
            raise StorageError(400, "InvalidSignature", "The url do not match the signature")
        path = self.path_of(bucket, name)
        if not path.is_file():
            raise StorageError(404, "not_found", "Object not found")
        return path.read_bytes()

    async def upload(self, ctx, bucket: str, name: str, data: bytes, content_type: str, upsert: bool) -> dict:
        _check(bucket, name)
        owner = ctx.claims.get("sub")
        await self._enforce_bucket_limits(bucket, data, content_type)

        q = ("insert into storage.objects (bucket_id, name, owner, owner_id, metadata) "
             "values (%s, %s, %s, %s, %s) ")
        if upsert:
            q += ("on conflict (bucket_id, name) do update set updated_at = now(), "
                  "metadata = excluded.metadata ")
        params = [bucket, name, owner, owner,
                  orjson.dumps({"size": len(data), "mimetype": content_type}).decode()]
        rows = await self._as_caller(ctx, False, q + "returning id", params)
        object_id = rows[0][0]
        path = self.path_of(bucket, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return {"Key": f"{bucket}/{name}", "Id": str(object_id)}


    # -- list, download, move, copy, remove, public URLs (Supabase Storage's object API) -------------
    async def _as_caller(self, ctx, read_only: bool, query: str, params: list, setup: str | None = None) -> list:
        queries = ([(sql.SQL(setup), [])] if setup else []) + [(sql.SQL(query), params)]
        try:
            results, _, _ = await self.rest._run(ctx, read_only, queries, pre_request=False)
        except Exception as exc:  # the rest layer maps psycopg errors to ApiError
            code = getattr(exc, "code", "")
            if code == "23505":
                raise StorageError(409, "Duplicate", "The resource already exists") from exc
            if code == "42501":
                raise StorageError(403, "Unauthorized", "new row violates row-level security policy") from exc
            if code == "23503":  # an upload into a bucket that does not exist
                raise StorageError(404, "Bucket not found", "Bucket not found") from exc
            raise
        return results[-1]

    async def list(self, ctx, bucket: str, body: dict) -> list[dict]:
        """POST /object/list/<bucket> {prefix, limit, offset, sortBy, search}: one level of the
        prefix, folders first as {name, id: null}, then the objects the caller may see."""
        prefix = str(body.get("prefix") or "").strip("/")
        limit = body.get("limit", 100)
        offset = body.get("offset", 0)
        if not isinstance(limit, int) or not isinstance(offset, int) or limit < 1 or offset < 0:
            raise StorageError(400, "InvalidRequest", "limit and offset must be non-negative integers")
        sort = body.get("sortBy") or {}
        column = sort.get("column", "name")
        if column not in ("name", "created_at", "updated_at", "last_accessed_at"):
            raise StorageError(400, "InvalidRequest", f"invalid sortBy column {column}")
        order = "desc" if str(sort.get("order", "asc")).lower() == "desc" else "asc"
        search = str(body.get("search") or "")
        like = (prefix + "/" if prefix else "") + "%"
        rows = await self._as_caller(ctx, True, (
            "select name, id, updated_at, created_at, last_accessed_at, metadata from storage.objects "
            "where bucket_id = %s and name like %s order by " + column + " " + order), [bucket, like])
        depth = len(prefix.split("/")) if prefix else 0
        folders: dict[str, None] = {}
        files = []
        for name, oid, updated, created, accessed, metadata in rows:
            parts = name.split("/")
            entry = parts[depth]
            if search and search not in entry:
                continue
            if len(parts) > depth + 1:
                folders.setdefault(entry, None)
            else:
                files.append({"name": entry, "id": str(oid), "updated_at": _iso(updated), "created_at": _iso(created),
                              "last_accessed_at": _iso(accessed), "metadata": metadata})
        listed = [{"name": f, "id": None, "updated_at": None, "created_at": None, "last_accessed_at": None,
                   "metadata": None} for f in folders] + files
        return listed[offset:offset + limit]

    async def download(self, ctx, bucket: str, name: str) -> bytes:
        """GET /object/<bucket>/<path> (and /object/authenticated/...): the caller's RLS decides."""
        _check(bucket, name)
        rows = await self._as_caller(ctx, True, "select 1 from storage.objects where bucket_id = %s and name = %s",
                                     [bucket, name])
        path = self.path_of(bucket, name)
        if not rows or not path.is_file():
            raise StorageError(400, "not_found", "Object not found")
        return path.read_bytes()

    async def public(self, bucket: str, name: str) -> bytes:
        """GET /object/public/<bucket>/<path>: only for public buckets, no RLS."""
        _check(bucket, name)
        row = await self._service_row(
            "select b.public, exists (select 1 from storage.objects o where o.bucket_id = b.id and o.name = %s) "
            "from storage.buckets b where b.id = %s", [name, bucket])
        path = self.path_of(bucket, name)
        if row is None or not row[0]:
            raise StorageError(400, "Bucket not found", "Bucket not found")
        if not row[1] or not path.is_file():
            raise StorageError(400, "not_found", "Object not found")
        return path.read_bytes()

    async def move(self, ctx, body: dict) -> dict:
        bucket, src, dst = _move_args(body)
        rows = await self._as_caller(ctx, False, (
            "update storage.objects set name = %s, updated_at = now() where bucket_id = %s and name = %s "
            "returning id"), [dst, bucket, src])
        self._place_bytes(rows, bucket, src, dst, keep_source=False)
        return {"message": "Successfully moved"}

    async def copy(self, ctx, body: dict) -> dict:
        bucket, src, dst = _move_args(body)
        rows = await self._as_caller(ctx, False, (
            "insert into storage.objects (bucket_id, name, owner, owner_id, metadata) "
            "select bucket_id, %s, %s, %s, metadata from storage.objects where bucket_id = %s and name = %s "
            "returning id"), [dst, ctx.claims.get("sub"), ctx.claims.get("sub"), bucket, src])
        self._place_bytes(rows, bucket, src, dst, keep_source=True)
        return {"Key": f"{bucket}/{dst}"}

    def _place_bytes(self, rows: list, bucket: str, src: str, dst: str, *, keep_source: bool) -> None:
        """After a move or copy of the object row (`rows`: what it returned; none when the caller's
        policies hid the source): the bytes follow, copied or moved."""
        if not rows or rows == [[0]]:
            raise StorageError(400, "not_found", "Object not found")
        target = self.path_of(bucket, dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = self.path_of(bucket, src)
        if source.is_file():
            if keep_source:
                target.write_bytes(source.read_bytes())
            else:
                source.replace(target)

    async def remove(self, ctx, bucket: str, body: dict) -> list[dict]:
        """DELETE /object/<bucket> {prefixes: [...]}: the objects the caller may delete, as rows."""
        prefixes = body.get("prefixes")
        if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) for p in prefixes):
            raise StorageError(400, "InvalidRequest", "prefixes must be a non-empty array of object names")
        for name in prefixes:
            _check(bucket, name)
        # Storage's own API deletes with storage.allow_delete_query set (direct SQL deletes are refused).
        rows = await self._as_caller(ctx, False, (
            "delete from storage.objects where bucket_id = %s and name = any(%s) "
            "returning name, id, bucket_id, owner, created_at, updated_at, metadata"), [bucket, prefixes],
            setup="select set_config('storage.allow_delete_query', 'true', true)")
        if rows == [[0]]:
            rows = []
        out = []
        for name, oid, bucket_id, owner, created, updated, metadata in rows:
            self.path_of(bucket, name).unlink(missing_ok=True)
            out.append({"name": name, "id": str(oid), "bucket_id": bucket_id, "owner": str(owner) if owner else None,
                        "created_at": _iso(created), "updated_at": _iso(updated), "metadata": metadata})
        return out

    async def _service_row(self, query: str, params: list):
        """One row read as Storage's own service (no caller policies). A database that is down or
        restarting answers as everywhere else in the API (503, PGRST001 / its SQLSTATE), not 500."""
        try:
            async with self.pool.connection() as conn:
                return await (await conn.execute(query, params)).fetchone()
        except psycopg.Error as exc:
            raise from_pg(exc, role_is_anon=False) from exc

    async def _enforce_bucket_limits(self, bucket: str, data: bytes, content_type: str) -> None:
        """The bucket's file_size_limit and allowed_mime_types, refused with Storage's answers."""
        row = await self._service_row(
            "select file_size_limit, allowed_mime_types from storage.buckets where id = %s", [bucket])
        if row is None:
            return  # the insert's foreign key answers 404 Bucket not found, as before
        limit, allowed = row
        if limit is not None and len(data) > limit:
            raise StorageError(413, "Payload too large", "The object exceeded the maximum allowed size")
        mimetype = content_type.split(";")[0].strip().lower()
        if allowed and not any(_mime_matches(mimetype, pattern.lower()) for pattern in allowed):
            raise StorageError(415, "invalid_mime_type", f"mime type {mimetype} is not supported")


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _move_args(body: dict) -> tuple[str, str, str]:
    bucket, src, dst = body.get("bucketId"), body.get("sourceKey"), body.get("destinationKey")
    if not all(isinstance(x, str) and x for x in (bucket, src, dst)):
        raise StorageError(400, "InvalidRequest", "bucketId, sourceKey and destinationKey are required")
    _check(bucket, src)
    _check(bucket, dst)
    return bucket, src, dst


def _mime_matches(mimetype: str, pattern: str) -> bool:
    """Storage's allowed_mime_types entries: exact types or a family wildcard such as image/*."""
    if pattern.endswith("/*"):
        return mimetype.startswith(pattern[:-1])
    return mimetype == pattern


def upload_mimetype(content_type: str, body: bytes) -> str:
    """The uploaded file's type: a multipart form's file part carries its own Content-Type."""
    if not content_type.startswith("multipart/form-data"):
        return content_type or "application/octet-stream"
    from email import policy
    from email.parser import BytesParser

    msg = BytesParser(policy=policy.default).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    for part in msg.iter_parts():
        if part.get_filename() is not None:
            return part.get_content_type()
    return "application/octet-stream"


def ensure_demo_bytes(db_url: str, root: Path) -> int:
    """Write a small demo file for every seeded storage object that has no bytes yet (local only):
    real images and sounds where the path says PNG or MP3 (koepon/localstack/demo_media.py)."""
    from ..demo_media import demo_bytes

    written = 0
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("select bucket_id, name from storage.objects").fetchall()
    for bucket, name in rows:
        try:
            _check(bucket, name)
        except StorageError:
            continue
        path = root / bucket / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(demo_bytes(bucket, name))
            written += 1
    return written
