"""`/auth/v1`: Supabase Auth (GoTrue) for email + password, sessions and rotating refresh tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
import uuid

import bcrypt
import orjson

from .tokens import sign

ACCESS_TTL = 3600
REUSE_INTERVAL = 10
LOCK_AFTER = 5
LOCK_SECONDS = 15 * 60
BCRYPT_COST = 10  # GoTrue's bcrypt.DefaultCost: sign-up hashes and the dummy check below use it
BCRYPT_MAX = 72  # bytes bcrypt reads; the bcrypt module refuses longer input (ValueError)
INSTANCE = "00000000-0000-0000-0000-000000000000"


class AuthError(Exception):
    def __init__(self, status: int, error_code: str, msg: str):
        super().__init__(msg)
        self.status = status
        self.error_code = error_code
        self.msg = msg

    def body(self) -> bytes:
        out = {"code": self.status, "error_code": self.error_code, "msg": self.msg}
        if self.error_code == "weak_password":
            out["weak_password"] = {"reasons": ["length"]}
        return orjson.dumps(out)


def _iso(v) -> str | None:
    return v.isoformat().replace("+00:00", "Z") if v else None


USER_COLS = ("id, aud, role, email, phone, email_confirmed_at, confirmed_at, last_sign_in_at, "
             "raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous, "
             "encrypted_password, banned_until")


def user_json(row: dict) -> dict:
    return {
        "id": str(row["id"]), "aud": row["aud"] or "authenticated", "role": row["role"] or "authenticated",
        "email": row["email"], "phone": row["phone"] or "",
        "email_confirmed_at": _iso(row["email_confirmed_at"]), "confirmed_at": _iso(row["confirmed_at"]),
        "last_sign_in_at": _iso(row["last_sign_in_at"]),
        "app_metadata": row["raw_app_meta_data"] or {}, "user_metadata": row["raw_user_meta_data"] or {},
        "identities": [], "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"]),
        "is_anonymous": bool(row["is_anonymous"]),
    }


class Auth:
    def __init__(self, pool, secret: str, issuer: str):
        self.pool = pool
        self.secret = secret
        self.issuer = issuer
        self._failures: dict[str, list[float]] = {}
        # Checked when the address is unknown (or has no password), so every sign-in attempt costs
        # one bcrypt comparison at the same cost and latency does not tell registered addresses apart.
        self._dummy_hash = bcrypt.hashpw(secrets.token_hex(16).encode(), bcrypt.gensalt(BCRYPT_COST))

    # -- helpers ---------------------------------------------------------------------------

    async def _user_by(self, conn, column: str, value) -> dict | None:
        cur = await conn.execute(f"select {USER_COLS} from auth.users where {column} = %s", (value,))
        row = await cur.fetchone()
        if row is None:
            return None
        return dict(zip([d.name for d in cur.description], row, strict=True))

    def _access_token(self, user: dict, session_id: str) -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": str(user["id"]), "aud": "authenticated", "exp": now + ACCESS_TTL,
            "iat": now, "email": user["email"], "phone": user["phone"] or "",
            "app_metadata": user["raw_app_meta_data"] or {}, "user_metadata": user["raw_user_meta_data"] or {},
            "role": user["role"] or "authenticated", "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}], "session_id": session_id,
            "is_anonymous": bool(user["is_anonymous"]),
        }
        return sign(claims, self.secret), now + ACCESS_TTL

    async def _issue(self, conn, user: dict, session_id: str, parent: str | None) -> dict:
        token = secrets.token_urlsafe(18)
        await conn.execute(
            "insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, "
            "parent, session_id) values (%s, %s, %s, false, now(), now(), %s, %s)",
            (INSTANCE, token, str(user["id"]), parent, session_id))
        access, exp = self._access_token(user, session_id)
        return {"access_token": access, "token_type": "bearer", "expires_in": ACCESS_TTL, "expires_at": exp,
                "refresh_token": token, "user": user_json(user)}

    async def _new_session(self, conn, user: dict) -> dict:
        session_id = str(uuid.uuid4())
        await conn.execute("insert into auth.sessions (id, user_id, created_at, updated_at, aal) "
                           "values (%s, %s, now(), now(), 'aal1')", (session_id, user["id"]))
        await conn.execute("update auth.users set last_sign_in_at = now(), updated_at = now() where id = %s",
                           (user["id"],))
        user["last_sign_in_at"] = dt.datetime.now(dt.UTC)
        return await self._issue(conn, user, session_id, None)

    # -- endpoints -------------------------------------------------------------------------

    async def signup(self, body: dict) -> dict:
        email = str(body.get("email") or "").strip().lower()
        password = body.get("password")
        if not email or "@" not in email or "\x00" in email:
            raise AuthError(400, "validation_failed", "Unable to validate email address: invalid format")
        if not isinstance(password, str) or len(password) < 8:
            raise AuthError(422, "weak_password", "Password should be at least 8 characters.")
        _check_password_length(password)
        meta = (body.get("data") or (body.get("options") or {}).get("data") or {})
        if not isinstance(meta, dict):
            raise AuthError(400, "validation_failed", "data must be an object")
        if _has_nul(meta):
            raise AuthError(400, "validation_failed", "data must not contain NUL characters")
        hashed = (await asyncio.to_thread(bcrypt.hashpw, password.encode(), bcrypt.gensalt(BCRYPT_COST))).decode()
        async with self.pool.connection() as conn, conn.transaction():
            if await self._user_by(conn, "email", email):
                raise AuthError(422, "user_already_exists", "User already registered")
            uid = uuid.uuid4()
            await conn.execute(
                # Supabase Auth writes '' (Go's empty string) into the token columns, which
                # have no default on hosted.
                "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,"
                " raw_app_meta_data, raw_user_meta_data, created_at, updated_at, confirmation_token,"
                " recovery_token, email_change_token_new, email_change) values "
                "(%s, %s, 'authenticated', 'authenticated', %s, %s, now(), %s, %s, now(), now(), '', '', '', '')",
                (INSTANCE, uid, email, hashed, orjson.dumps({"provider": "email", "providers": ["email"]}).decode(),
                 orjson.dumps(meta).decode()))
            await conn.execute(
                "insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)"
                " values (%s, %s, %s, 'email', now(), now())",
                (str(uid), uid, orjson.dumps({"sub": str(uid), "email": email}).decode()))
            user = await self._user_by(conn, "id", uid)
            return await self._new_session(conn, user)

    def _locked(self, email: str) -> bool:
        now = time.time()
        fails = [t for t in self._failures.get(email, []) if now - t < LOCK_SECONDS]
        if fails:
            self._failures[email] = fails
        else:
            self._failures.pop(email, None)
        return len(fails) >= LOCK_AFTER

    def _record_failure(self, email: str) -> None:
        """Counted per address whether or not it is registered: the lockout reveals nothing."""
        now = time.time()
        if len(self._failures) > 100_000:  # addresses made up by the million: forget expired ones
            self._failures = {k: v for k, v in self._failures.items() if v and now - v[-1] < LOCK_SECONDS}
        self._failures.setdefault(email, []).append(now)

    async def password_grant(self, body: dict) -> dict:
        email = str(body.get("email") or "").strip().lower()
        password = body.get("password")
        if not email or not isinstance(password, str):
            raise AuthError(400, "validation_failed", "missing email or password")
        if self._locked(email):
            raise AuthError(429, "over_request_rate_limit",
                            "Too many failed sign-in attempts: try again in 15 minutes")
        async with self.pool.connection() as conn, conn.transaction():
            # A NUL cannot be in a stored address: unknown (and never sent to PostgreSQL).
            user = None if "\x00" in email else await self._user_by(conn, "email", email)
            stored = (user or {}).get("encrypted_password") or ""
            known = stored.startswith("$2")
            # One bcrypt comparison either way: the real hash, or the dummy one (always refused).
            # bcrypt reads the first 72 bytes (as GoTrue's and pgcrypto's comparisons do).
            ok = await asyncio.to_thread(bcrypt.checkpw, password.encode()[:BCRYPT_MAX],
                                         stored.encode() if known else self._dummy_hash)
            ok = ok and known
            if not ok:
                self._record_failure(email)
                raise AuthError(400, "invalid_credentials", "Invalid login credentials")
            self._failures.pop(email, None)
            return await self._new_session(conn, user)

    async def refresh_grant(self, body: dict) -> dict:
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise AuthError(400, "validation_failed", "refresh_token required")
        if "\x00" in token:  # never issued; and PostgreSQL text cannot hold it
            raise AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
        result = await self._refresh(token)
        if result is None:
            raise _ReuseDetected()
        return result

    async def _refresh(self, token: str) -> dict | None:
        """The next session, or None after revoking a session whose spent token was reused."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "select id, user_id, revoked, session_id, updated_at from auth.refresh_tokens "
                "where token = %s for update", (token,))
            row = await cur.fetchone()
            if row is None or row[3] is None:
                raise AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
            _id, user_id, revoked, session_id, updated_at = row
            user = await self._user_by(conn, "id", uuid.UUID(user_id))
            if user is None:
                raise AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
            if revoked:
                age = (dt.datetime.now(dt.UTC) - updated_at).total_seconds()
                cur = await conn.execute(
                    "select token from auth.refresh_tokens where parent = %s and not revoked", (token,))
                child = await cur.fetchone()
                if age <= REUSE_INTERVAL and child:
                    access, exp = self._access_token(user, str(session_id))
                    return {"access_token": access, "token_type": "bearer", "expires_in": ACCESS_TTL,
                            "expires_at": exp, "refresh_token": child[0], "user": user_json(user)}
                # Reuse outside the interval: the token leaked; end the whole session.
                await conn.execute("delete from auth.sessions where id = %s", (session_id,))
                return None
            await conn.execute("update auth.refresh_tokens set revoked = true, updated_at = now() where id = %s",
                               (_id,))
            await conn.execute("update auth.sessions set refreshed_at = now(), updated_at = now() where id = %s",
                               (session_id,))
            return await self._issue(conn, user, str(session_id), token)

    async def get_user(self, claims: dict) -> dict:
        async with self.pool.connection() as conn:
            user = await self._user_by(conn, "id", uuid.UUID(claims["sub"]))
        if user is None:
            raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
        return user_json(user)

    async def update_user(self, claims: dict, body: dict) -> dict:
        async with self.pool.connection() as conn, conn.transaction():
            uid = uuid.UUID(claims["sub"])
            if "data" in body:
                if not isinstance(body["data"], dict):
                    raise AuthError(400, "validation_failed", "data must be an object")
                if _has_nul(body["data"]):
                    raise AuthError(400, "validation_failed", "data must not contain NUL characters")
                await conn.execute("update auth.users set raw_user_meta_data = coalesce(raw_user_meta_data, "
                                   "'{}') || %s::jsonb, updated_at = now() where id = %s",
                                   (orjson.dumps(body["data"]).decode(), uid))
            if "password" in body:
                pw = body["password"]
                if not isinstance(pw, str) or len(pw) < 8:
                    raise AuthError(422, "weak_password", "Password should be at least 8 characters.")
                _check_password_length(pw)
                hashed = (await asyncio.to_thread(bcrypt.hashpw, pw.encode(), bcrypt.gensalt(BCRYPT_COST))).decode()
                await conn.execute("update auth.users set encrypted_password = %s, updated_at = now() "
                                   "where id = %s", (hashed, uid))
            user = await self._user_by(conn, "id", uid)
        if user is None:
            raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
        return user_json(user)

    async def logout(self, claims: dict, scope: str) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            if scope == "global":
                await conn.execute("delete from auth.sessions where user_id = %s", (uuid.UUID(claims["sub"]),))
            elif claims.get("session_id"):
                await conn.execute("delete from auth.sessions where id = %s", (claims["session_id"],))


def _check_password_length(password: str) -> None:
    if len(password.encode()) > BCRYPT_MAX:
        raise AuthError(400, "validation_failed", f"Password cannot be longer than {BCRYPT_MAX} bytes")


def _has_nul(value) -> bool:
    """A NUL character anywhere in a JSON value (PostgreSQL's jsonb refuses \\u0000: 22P05)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class _ReuseDetected(AuthError):
    def __init__(self):
        super().__init__(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
