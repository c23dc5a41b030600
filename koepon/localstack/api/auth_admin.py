"""GoTrue's admin API (`supabase.auth.admin`), for the service-role key: list users with page /
per_page and the Link / X-Total-Count headers, get, create, update (metadata, password,
ban_duration), delete (hard or soft), generate_link and invite. Shapes and errors follow
supabase/auth internal/api/admin.go, mail.go (GenerateLink), invite.go and pagination.go.

Koepon's suspension and Auth's ban agree through triggers in the database (sql/catalog/
80_account_status.sql), so a ban set here shows as a suspension and the other way round.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import re
import uuid
from urllib.parse import urlencode, urlsplit, urlunsplit

import bcrypt
import orjson

from .auth_checks import email_format_ok, referrer, token_hash
from .auth_flows import DUPLICATE_EMAIL

ADMIN_ROLES = ("service_role", "supabase_admin")
_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_duration(text: str) -> float:
    """Go's time.ParseDuration (what GoTrue applies to ban_duration): seconds."""
    t = text.strip()
    if not _GO_DURATION.match(t):
        raise ValueError(f'time: invalid duration "{text}"')
    return sum(float(n) * _UNITS[u] for n, _frac, u in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", t))


def _obfuscate(uid, value: str) -> str:
    """GoTrue's obfuscateValue for soft-deleted users: a hash instead of the address."""
    return base64.urlsafe_b64encode(hashlib.sha256((str(uid) + value).encode()).digest()).decode().rstrip("=")


class AdminApi:
    def __init__(self, auth):
        self.auth = auth

    def _error(self, status, code, msg):
        from .auth import AuthError

        return AuthError(status, code, msg)

    def require_admin(self, claims: dict | None) -> None:
        if not claims:
            raise self._error(401, "no_authorization", "This endpoint requires a valid Bearer token")
        if claims.get("role") not in ADMIN_ROLES:
            raise self._error(403, "not_admin", "User not allowed")

    async def _load(self, conn, user_id: str) -> dict:
        try:
            uid = uuid.UUID(user_id)
        except ValueError as exc:
            raise self._error(404, "validation_failed", "user_id must be an UUID") from exc
        user = await self.auth._user_by(conn, "id", uid)
        if user is None:
            raise self._error(404, "user_not_found", "User not found")
        return user

    async def list_users(self, query: dict, request_url: str) -> tuple[dict, dict]:
        from .auth import user_json

        try:
            page = int(query.get("page") or 1)
            per_page = int(query.get("per_page") or 50)
            if not (0 <= page < 2 ** 63 and 0 <= per_page < 2 ** 63) or page * per_page >= 2 ** 63:
                raise ValueError
        except ValueError as exc:
            raise self._error(400, "validation_failed", "Bad Pagination Parameters: strconv.ParseUint: parsing "
                                                        "invalid syntax") from exc
        page = max(page, 1)
        per_page = per_page or 50
        async with self.auth.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("select count(*) from auth.users where aud = 'authenticated'")
            total = (await cur.fetchone())[0]
            cur = await conn.execute(
                "select id from auth.users where aud = 'authenticated' order by created_at desc, id desc "
                "limit %s offset %s", (per_page, (page - 1) * per_page))
            ids = [r[0] for r in await cur.fetchall()]
            users = [user_json(await self.auth._user_by(conn, "id", i)) for i in ids]
        return {"users": users, "aud": "authenticated"}, _pagination_headers(request_url, page, per_page, total)

    async def get_user(self, user_id: str) -> dict:
        from .auth import user_json

        async with self.auth.pool.connection() as conn, conn.transaction():
            return user_json(await self._load(conn, user_id))

    async def _hash(self, password) -> str:
        from .auth import BCRYPT_COST, _check_password_length

        if not isinstance(password, str) or len(password) < 8:
            raise self._error(422, "weak_password", "Password should be at least 8 characters.")
        _check_password_length(password)
        return (await asyncio.to_thread(bcrypt.hashpw, password.encode(), bcrypt.gensalt(BCRYPT_COST))).decode()

    def _ban_until(self, ban) -> dt.datetime | None | str:
        """'keep' when absent; None for "none"; the end of the ban otherwise."""
        if ban in (None, ""):
            return "keep"
        if ban == "none":
            return None
        try:
            seconds = go_duration(str(ban))
        except ValueError as exc:
            raise self._error(400, "validation_failed", f"invalid format for ban duration: {exc}") from exc
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)

    async def create_user(self, body: dict) -> dict:
        from .auth import _object, user_json

        body = _object(body, "api.AdminUserParams")
        email = str(body.get("email") or "").strip().lower()
        if not email and not body.get("phone"):
            raise self._error(400, "validation_failed", "Cannot create a user without either an email or phone")
        if body.get("phone"):
            raise self._error(400, "validation_failed", "Phone users are not supported by the local Auth")
        if len(email) > 255 or not email_format_ok(email):
            raise self._error(400, "validation_failed", "Unable to validate email address: invalid format")
        hashed = await self._hash(body["password"]) if body.get("password") is not None else None
        meta = body.get("user_metadata") or {}
        app_meta = body.get("app_metadata") or {}
        if not isinstance(meta, dict) or not isinstance(app_meta, dict):
            raise self._error(400, "validation_failed", "metadata must be an object")
        ban = self._ban_until(body.get("ban_duration"))
        async with self.auth.pool.connection() as conn, conn.transaction():
            if await self.auth._user_by(conn, "email", email):
                raise self._error(422, "email_exists", DUPLICATE_EMAIL)
            user = await self.auth.insert_user(conn, email, hashed, meta, confirmed=body.get("email_confirm") is True)
            if app_meta:
                await conn.execute("update auth.users set raw_app_meta_data = raw_app_meta_data || %s::jsonb "
                                   "where id = %s", (orjson.dumps(app_meta).decode(), user["id"]))
            if ban != "keep":
                await conn.execute("update auth.users set banned_until = %s where id = %s", (ban, user["id"]))
            return user_json(await self.auth._user_by(conn, "id", user["id"]))

    async def update_user(self, user_id: str, body: dict) -> dict:
        from .auth import _object, user_json

        body = _object(body, "api.AdminUserParams")
        ban = self._ban_until(body.get("ban_duration"))
        hashed = await self._hash(body["password"]) if body.get("password") is not None else None
        async with self.auth.pool.connection() as conn, conn.transaction():
            user = await self._load(conn, user_id)
            uid = user["id"]
            if ban != "keep":
                await conn.execute("update auth.users set banned_until = %s, updated_at = now() where id = %s",
                                   (ban, uid))
            if hashed:
                await conn.execute("update auth.users set encrypted_password = %s, updated_at = now() where id = %s",
                                   (hashed, uid))
            if isinstance(body.get("email"), str) and body["email"].strip().lower() != user["email"]:
                new = body["email"].strip().lower()
                if await self.auth._user_by(conn, "email", new):
                    raise self._error(422, "email_exists", DUPLICATE_EMAIL)
                await conn.execute("update auth.users set email = %s, updated_at = now() where id = %s", (new, uid))
                await conn.execute("update auth.identities set identity_data = identity_data || "
                                   "jsonb_build_object('email', %s::text) where user_id = %s and provider = 'email'",
                                   (new, uid))
            if body.get("email_confirm") is True:
                await conn.execute("update auth.users set email_confirmed_at = coalesce(email_confirmed_at, now()) "
                                   "where id = %s", (uid,))
            for key, col in (("user_metadata", "raw_user_meta_data"), ("app_metadata", "raw_app_meta_data")):
                if isinstance(body.get(key), dict):
                    await conn.execute(f"update auth.users set {col} = coalesce({col}, '{{}}') || %s::jsonb, "
                                       "updated_at = now() where id = %s", (orjson.dumps(body[key]).decode(), uid))
            return user_json(await self.auth._user_by(conn, "id", uid))

    async def delete_user(self, user_id: str, body: dict | None) -> dict:
        soft = bool((body or {}).get("should_soft_delete"))
        async with self.auth.pool.connection() as conn:
            try:
                async with conn.transaction():
                    user = await self._load(conn, user_id)
                    uid = user["id"]
                    if soft:
                        # GoTrue's SoftDeleteUser: the row stays (what references it keeps its target),
                        # the address becomes a hash, password, tokens and metadata go, sessions end.
                        await conn.execute(
                            "update auth.users set email = %s, email_change = %s, encrypted_password = null, "
                            "confirmation_token = '', recovery_token = '', email_change_token_current = '', "
                            "email_change_token_new = '', phone_change_token = '', raw_user_meta_data = '{}', "
                            "deleted_at = now(), updated_at = now() where id = %s",
                            (_obfuscate(uid, user["email"] or ""), _obfuscate(uid, user["email_change"] or ""), uid))
                        await conn.execute("update auth.identities set identity_data = '{}'::jsonb where user_id = %s",
                                           (uid,))
                        await conn.execute("delete from auth.sessions where user_id = %s", (uid,))
                    else:
                        await conn.execute("delete from auth.users where id = %s", (uid,))
            except Exception as exc:
                import psycopg

                if isinstance(exc, psycopg.errors.ForeignKeyViolation):
                    # What hosted Auth answers when a row elsewhere still references the user
                    # (Koepon's financial records do: docs/privacy.md explains erasure instead).
                    raise self._error(500, "unexpected_failure", "Database error deleting user") from exc
                raise
        return {}

    async def generate_link(self, body: dict, redirect_to: str | None) -> dict:
        """GoTrue's GenerateLink: the link and code of an e-mail, returned instead of sent."""
        from .auth import _object, _string_fields, user_json

        body = _string_fields(_object(body, "api.GenerateLinkParams"), "api.GenerateLinkParams",
                              "type", "email", "password", "new_email", "redirect_to")
        kind = body.get("type")
        email = str(body.get("email") or "").strip().lower()
        if not email_format_ok(email):
            raise self._error(400, "validation_failed", "Unable to validate email address: invalid format")
        redirect = referrer(self.auth.config, body.get("redirect_to") or redirect_to)
        flows = self.auth.flows
        await flows.ensure()
        async with self.auth.pool.connection() as conn, conn.transaction():
            user = await self.auth._user_by(conn, "email", email)
            if kind in ("magiclink", "recovery"):
                if user is None:
                    if kind == "recovery":
                        raise self._error(404, "user_not_found", "User with this email not found")
                    user = await self.auth.insert_user(conn, email, None, body.get("data") or {}, confirmed=False)
                col, sent = flows.COLUMNS[kind]
            elif kind in ("signup", "invite"):
                if user is not None and user["email_confirmed_at"] is not None:
                    raise self._error(422, "email_exists", DUPLICATE_EMAIL)
                if user is None:
                    hashed = await self._hash(body.get("password")) if kind == "signup" else None
                    user = await self.auth.insert_user(conn, email, hashed, body.get("data") or {}, confirmed=False)
                    if kind == "invite":
                        await conn.execute("update auth.users set invited_at = now() where id = %s", (user["id"],))
                col, sent = flows.COLUMNS[kind]
            elif kind in ("email_change_current", "email_change_new"):
                new_email = str(body.get("new_email") or "").strip().lower()
                if user is None:
                    raise self._error(404, "user_not_found", "User with this email not found")
                if not email_format_ok(new_email):
                    raise self._error(400, "validation_failed", "Unable to validate email address: invalid format")
                if await self.auth._user_by(conn, "email", new_email):
                    raise self._error(422, "email_exists", DUPLICATE_EMAIL)
                otp = flows._otp()
                target = user["email"] if kind == "email_change_current" else new_email
                hashed = token_hash(target, otp)
                other = "email_change_token_new" if kind == "email_change_current" else "email_change_token_current"
                own = "email_change_token_current" if kind == "email_change_current" else "email_change_token_new"
                await conn.execute(
                    f"update auth.users set email_change = %s, {own} = %s, {other} = '', email_change_confirm_status"
                    " = 0, email_change_sent_at = now() where id = %s", (new_email, hashed, user["id"]))
                user = await self.auth._user_by(conn, "id", user["id"])
                return user_json(user) | {"action_link": flows._link(hashed, "email_change", redirect),
                                          "email_otp": otp, "hashed_token": hashed,
                                          "verification_type": kind, "redirect_to": redirect}
            else:
                raise self._error(400, "validation_failed", f"Invalid email action link type requested: {kind}")
            otp = flows._otp()
            hashed = token_hash(user["email"], otp)
            await conn.execute(f"update auth.users set {col} = %s, {sent} = now() where id = %s", (hashed, user["id"]))
            user = await self.auth._user_by(conn, "id", user["id"])
        return user_json(user) | {"action_link": flows._link(hashed, kind, redirect), "email_otp": otp,
                                  "hashed_token": hashed, "verification_type": kind, "redirect_to": redirect}

    async def invite(self, body: dict, redirect_to: str | None) -> dict:
        """POST /invite (inviteUserByEmail): creates the user and mails the invitation."""
        from .auth import _object, user_json

        body = _object(body, "api.InviteParams")
        email = str(body.get("email") or "").strip().lower()
        if not email_format_ok(email):
            raise self._error(400, "validation_failed", "Unable to validate email address: invalid format")
        flows = self.auth.flows
        await flows.ensure()
        redirect = referrer(self.auth.config, redirect_to)
        async with self.auth.pool.connection() as conn, conn.transaction():
            user = await self.auth._user_by(conn, "email", email)
            if user is not None and user["email_confirmed_at"] is not None:
                raise self._error(422, "email_exists", DUPLICATE_EMAIL)
            if user is None:
                user = await self.auth.insert_user(conn, email, None, body.get("data") or {}, confirmed=False)
            await conn.execute("update auth.users set invited_at = now() where id = %s", (user["id"],))
            await flows.send_token_mail(conn, user, "invite", redirect, check_frequency=False)
            return user_json(await self.auth._user_by(conn, "id", user["id"]))


def _pagination_headers(request_url: str, page: int, per_page: int, total: int) -> dict:
    """GoTrue's addPaginationHeaders."""
    pages = total // per_page + (1 if total % per_page else 0)
    parts = urlsplit(request_url)

    def link(n: int) -> str:
        from urllib.parse import parse_qsl

        q = dict(parse_qsl(parts.query, keep_blank_values=True)) | {"page": str(n)}
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(q), ""))
    header = ""
    if pages > page:
        header += f'<{link(page + 1)}>; rel="next", '
    header += f'<{link(pages)}>; rel="last"'
    return {"Link": header, "X-Total-Count": str(total)}
