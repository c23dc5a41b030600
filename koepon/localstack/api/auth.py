"""`/auth/v1`: Supabase Auth (GoTrue) for email + password, sessions and rotating refresh tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
import uuid

import bcrypt
import orjson

from . import auth_config
from .auth_admin import AdminApi
from .auth_checks import email_format_ok, referrer
from .auth_flows import EmailFlows, client_meta
from .auth_limits import AuthLimits, address_key, sign_in_sign_ups_limit
from .tokens import sign

ACCESS_TTL = 3600
REUSE_INTERVAL = 10
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
             "encrypted_password, banned_until, deleted_at, invited_at, confirmation_token, confirmation_sent_at, "
             "recovery_token, recovery_sent_at, email_change, email_change_token_new, email_change_token_current, "
             "email_change_confirm_status, email_change_sent_at")


def user_json(row: dict) -> dict:
    return {
        "id": str(row["id"]), "aud": row["aud"] or "authenticated", "role": row["role"] or "authenticated",
        "email": row["email"], "phone": row["phone"] or "",
        "email_confirmed_at": _iso(row["email_confirmed_at"]), "confirmed_at": _iso(row["confirmed_at"]),
        "last_sign_in_at": _iso(row["last_sign_in_at"]),
        "app_metadata": _go_numbers(row["raw_app_meta_data"] or {}),
        "user_metadata": _go_numbers(row["raw_user_meta_data"] or {}),
        "identities": [], "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"]),
        "is_anonymous": bool(row["is_anonymous"]),
    } | _omitempty(row)


def _omitempty(row: dict) -> dict:
    """GoTrue's user fields tagged omitempty: present only when set."""
    out = {}
    for key, col in (("invited_at", "invited_at"), ("confirmation_sent_at", "confirmation_sent_at"),
                     ("recovery_sent_at", "recovery_sent_at"), ("email_change_sent_at", "email_change_sent_at"),
                     ("banned_until", "banned_until"), ("deleted_at", "deleted_at")):
        if row.get(col):
            out[key] = _iso(row[col])
    if row.get("email_change"):
        out["new_email"] = row["email_change"]
    return out


class Auth:
    def __init__(self, pool, secret: str, issuer: str):
        self.pool = pool
        self.secret = secret
        self.issuer = issuer
        # Lockout per address and sign-in/sign-up limit per client, in the database (all workers).
        self.limits = AuthLimits(sign_in_sign_ups_limit())
        # config.toml's [auth] settings, templates and mail; the e-mail flows use them.
        self.config = auth_config.load()
        self.flows = EmailFlows(self, self.config)
        self.admin = AdminApi(self)
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

    def _access_token(self, user: dict, session_id: str, method: str = "password") -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": str(user["id"]), "aud": "authenticated", "exp": now + ACCESS_TTL,
            "iat": now, "email": user["email"], "phone": user["phone"] or "",
            "app_metadata": user["raw_app_meta_data"] or {}, "user_metadata": user["raw_user_meta_data"] or {},
            "role": user["role"] or "authenticated", "aal": "aal1",
            "amr": [{"method": method, "timestamp": now}], "session_id": session_id,
            "is_anonymous": bool(user["is_anonymous"]),
        }
        return sign(claims, self.secret), now + ACCESS_TTL

    async def _issue(self, conn, user: dict, session_id: str, parent: str | None, method: str = "password") -> dict:
        token = secrets.token_urlsafe(18)
        await conn.execute(
            "insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, "
            "parent, session_id) values (%s, %s, %s, false, now(), now(), %s, %s)",
            (INSTANCE, token, str(user["id"]), parent, session_id))
        access, exp = self._access_token(user, session_id, method)
        return {"access_token": access, "token_type": "bearer", "expires_in": ACCESS_TTL, "expires_at": exp,
                "refresh_token": token, "user": user_json(user)}

    async def _new_session(self, conn, user: dict) -> dict:
        return await self.new_session(conn, user, "password")

    async def new_session(self, conn, user: dict, method: str) -> dict:
        """A row in auth.sessions (with the client's user agent and IP, as GoTrue records them) and
        its first refresh token."""
        session_id = str(uuid.uuid4())
        ip, agent = client_meta.get()
        await conn.execute("insert into auth.sessions (id, user_id, created_at, updated_at, refreshed_at, aal, "
                           "user_agent, ip) values (%s, %s, now(), now(), now(), 'aal1', %s, %s)",
                           (session_id, user["id"], agent, ip))
        await conn.execute("update auth.users set last_sign_in_at = now(), updated_at = now() where id = %s",
                           (user["id"],))
        user["last_sign_in_at"] = dt.datetime.now(dt.UTC)
        return await self._issue(conn, user, session_id, None, method)

    async def insert_user(self, conn, email: str, hashed: str | None, meta: dict, confirmed: bool) -> dict:
        uid = uuid.uuid4()
        await conn.execute(
            # Supabase Auth writes '' (Go's empty string) into the token columns, which
            # have no default on hosted.
            "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,"
            " raw_app_meta_data, raw_user_meta_data, created_at, updated_at, confirmation_token,"
            " recovery_token, email_change_token_new, email_change) values "
            "(%s, %s, 'authenticated', 'authenticated', %s, %s, case when %s then now() end, %s, %s, now(), now(),"
            " '', '', '', '')",
            (INSTANCE, uid, email, hashed or "", confirmed,
             orjson.dumps({"provider": "email", "providers": ["email"]}).decode(),
             orjson.dumps(_go_numbers(meta)).decode()))
        await conn.execute(
            "insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)"
            " values (%s, %s, %s, 'email', now(), now())",
            (str(uid), uid, orjson.dumps({"sub": str(uid), "email": email, "email_verified": confirmed,
                                          "phone_verified": False}).decode()))
        return await self._user_by(conn, "id", uid)

    # -- endpoints -------------------------------------------------------------------------

    async def signup(self, body: dict, client_ip: str | None = None, redirect_to: str | None = None) -> dict:
        body = _object(body, "api.SignupParams")
        email = str(body.get("email") or "").strip().lower()
        password = body.get("password")
        if len(email) > 255:  # auth.users.email is varchar(255); GoTrue's own limit
            raise AuthError(400, "validation_failed", "An email address is too long")
        if not email_format_ok(email):
            raise AuthError(400, "validation_failed", "Unable to validate email address: invalid format")
        if not isinstance(password, str) or len(password) < 8:
            raise AuthError(422, "weak_password", "Password should be at least 8 characters.")
        _check_password_length(password)
        options = body.get("options") or {}
        meta = body.get("data") or (options.get("data") if isinstance(options, dict) else None) or {}
        if not isinstance(meta, dict):
            raise AuthError(400, "validation_failed", "data must be an object")
        if _has_nul(meta):
            raise AuthError(400, "validation_failed", "data must not contain NUL characters")
        await self._take_ip(client_ip)
        hashed = (await asyncio.to_thread(bcrypt.hashpw, password.encode(), bcrypt.gensalt(BCRYPT_COST))).decode()
        if not self.config.enable_signup:
            raise AuthError(422, "signup_disabled", "Signups not allowed for this instance")
        pkce = _pkce(body)
        async with self.pool.connection() as conn, conn.transaction():
            existing = await self._user_by(conn, "email", email)
            if not self.config.enable_confirmations:
                if existing:
                    raise AuthError(422, "user_already_exists", "User already registered")
                user = await self.insert_user(conn, email, hashed, meta, confirmed=True)
                return await self._new_session(conn, user)
            # Confirmations on: the new user gets a confirmation e-mail and no session. GoTrue answers
            # a repeated sign-up of a confirmed address with a look-alike user (nothing revealed) and
            # one of an unconfirmed address by sending the confirmation again.
            await self.flows.ensure()
            redirect = referrer(self.config, redirect_to or (options.get("emailRedirectTo")
                                                              if isinstance(options, dict) else None))
            if existing and existing["email_confirmed_at"] is not None:
                now = dt.datetime.now(dt.UTC)
                fake = dict(existing, id=uuid.uuid4(), created_at=now, updated_at=now, last_sign_in_at=None,
                            confirmation_sent_at=now, raw_app_meta_data={"provider": "email", "providers": ["email"]},
                            raw_user_meta_data=meta, email_confirmed_at=None, banned_until=None)
                return user_json(fake)
            user = existing or await self.insert_user(conn, email, hashed, meta, confirmed=False)
            await self.flows.send_token_mail(conn, user, "signup", redirect, pkce)
            return user_json(await self._user_by(conn, "id", user["id"]))

    async def _take_ip(self, client_ip: str | None) -> None:
        """GoTrue's per-IP limit on sign-in and sign-up requests (its own transaction: a refused
        request is not counted, an accepted one is counted whatever happens next)."""
        async with self.pool.connection() as conn:
            await self.limits.ensure(conn)
            async with conn.transaction():
                allowed = await self.limits.take_ip(conn, client_ip)
        if not allowed:
            raise AuthError(429, "over_request_rate_limit", "Request rate limit reached")

    async def password_grant(self, body: dict, client_ip: str | None = None) -> dict:
        body = _object(body, "api.PasswordGrantParams")
        email = str(body.get("email") or "").strip().lower()
        password = body.get("password")
        if not email or not isinstance(password, str):
            raise AuthError(400, "validation_failed", "missing email or password")
        await self._take_ip(client_ip)
        outcome, result = "failed", None
        async with self.pool.connection() as conn, conn.transaction():
            # One attempt at a time per address (across workers), so the lockout count is exact.
            await self.limits.serialise(conn, address_key(email))
            if await self.limits.locked(conn, email):
                outcome = "locked"
            else:
                # A NUL cannot be in a stored address: unknown (and never sent to PostgreSQL).
                user = None if "\x00" in email else await self._user_by(conn, "email", email)
                stored = (user or {}).get("encrypted_password") or ""
                known = stored.startswith("$2")
                if known and _banned(user):  # GoTrue answers this before it checks the password
                    raise AuthError(400, "user_banned", "User is banned")
                # One bcrypt comparison either way: the real hash, or the dummy one (always refused).
                # bcrypt reads the first 72 bytes (as GoTrue's and pgcrypto's comparisons do).
                ok = await asyncio.to_thread(bcrypt.checkpw, password.encode()[:BCRYPT_MAX],
                                             stored.encode() if known else self._dummy_hash)
                if ok and known and user["email_confirmed_at"] is None:
                    outcome = "unconfirmed"  # GoTrue checks this after the password
                elif ok and known:
                    await self.limits.succeeded(conn, email)
                    outcome, result = "ok", await self._new_session(conn, user)
                else:
                    # Counted per address whether or not it is registered: the lockout reveals nothing.
                    await self.limits.failed(conn, email)
        # Committed: the failure counts even though the answer is an error.
        if outcome == "locked":
            raise AuthError(429, "over_request_rate_limit",
                            "Too many failed sign-in attempts: try again in 15 minutes")
        if outcome == "failed":
            raise AuthError(400, "invalid_credentials", "Invalid login credentials")
        if outcome == "unconfirmed":
            raise AuthError(400, "email_not_confirmed", "Email not confirmed")
        return result

    async def refresh_grant(self, body: dict) -> dict:
        token = _object(body, "api.RefreshTokenGrantParams").get("refresh_token")
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
            if _banned(user):
                raise AuthError(400, "user_banned", "Invalid Refresh Token: User Banned")
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

    async def _authenticated(self, conn, claims: dict) -> dict:
        """GoTrue's check on every endpoint that takes a user's token: the user exists, the
        token's session still exists (sign-out, a password change elsewhere or refresh-token reuse
        ended it), and the user is not banned."""
        try:
            uid = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise AuthError(400, "bad_jwt", "invalid claim: sub claim must be a UUID") from exc
        user = await self._user_by(conn, "id", uid)
        if user is None:
            raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
        sid = claims.get("session_id")
        if sid and sid != INSTANCE:
            try:
                sid = uuid.UUID(str(sid))
            except ValueError as exc:
                raise AuthError(403, "bad_jwt", "invalid claim: session_id claim must be a UUID") from exc
            cur = await conn.execute("select 1 from auth.sessions where id = %s", (sid,))
            if await cur.fetchone() is None:
                raise AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
        if _banned(user):
            raise AuthError(403, "user_banned", "User is banned")
        return user

    async def get_user(self, claims: dict) -> dict:
        async with self.pool.connection() as conn:
            user = await self._authenticated(conn, claims)
        return user_json(user)

    async def update_user(self, claims: dict, body: dict, redirect_to: str | None = None) -> dict:
        body = _object(body, "api.UserUpdateParams")
        async with self.pool.connection() as conn, conn.transaction():
            current = await self._authenticated(conn, claims)
            uid = current["id"]
            if "data" in body:
                if not isinstance(body["data"], dict):
                    raise AuthError(400, "validation_failed", "data must be an object")
                if _has_nul(body["data"]):
                    raise AuthError(400, "validation_failed", "data must not contain NUL characters")
                await conn.execute("update auth.users set raw_user_meta_data = coalesce(raw_user_meta_data, "
                                   "'{}') || %s::jsonb, updated_at = now() where id = %s",
                                   (orjson.dumps(_go_numbers(body["data"])).decode(), uid))
            if "password" in body:
                pw = body["password"]
                if not isinstance(pw, str) or len(pw) < 8:
                    raise AuthError(422, "weak_password", "Password should be at least 8 characters.")
                _check_password_length(pw)
                await self.flows.check_reauthentication(conn, current, claims, body.get("nonce"))
                stored = current.get("encrypted_password") or ""
                if stored.startswith("$2") and await asyncio.to_thread(bcrypt.checkpw, pw.encode()[:BCRYPT_MAX],
                                                                        stored.encode()):
                    raise AuthError(422, "same_password", "New password should be different from the old password.")
                hashed = (await asyncio.to_thread(bcrypt.hashpw, pw.encode(), bcrypt.gensalt(BCRYPT_COST))).decode()
                await conn.execute("update auth.users set encrypted_password = %s, updated_at = now() "
                                   "where id = %s", (hashed, uid))
                # As GoTrue: a new password ends every other session (their refresh tokens go with
                # them), so a thief holding a refresh token is locked out by the change.
                await conn.execute("delete from auth.sessions where user_id = %s and id is distinct from %s",
                                   (uid, _session_uuid(claims)))
            if isinstance(body.get("email"), str) and body["email"].strip():
                await self.flows.change_email(conn, current, body["email"], body, redirect_to)
            user = await self._user_by(conn, "id", uid)
        return user_json(user)

    async def logout(self, claims: dict, scope: str | None) -> None:
        """scope global (GoTrue's default): every session of the user; local: this one; others:
        every one but this."""
        scope = scope or "global"
        if scope not in ("global", "local", "others"):
            raise AuthError(400, "validation_failed", f'Unsupported logout scope "{scope}"')
        async with self.pool.connection() as conn, conn.transaction():
            uid = (await self._authenticated(conn, claims))["id"]
            sid = _session_uuid(claims)
            if sid is None or scope == "global":
                await conn.execute("delete from auth.sessions where user_id = %s", (uid,))
            elif scope == "local":
                await conn.execute("delete from auth.sessions where id = %s", (sid,))
            else:
                await conn.execute("delete from auth.sessions where user_id = %s and id <> %s", (uid, sid))


_GO_KIND = {list: "array", str: "string", int: "number", float: "number", bool: "bool"}


def _object(body, go_type: str) -> dict:
    """GoTrue decodes every body into a struct: anything but a JSON object is 400 bad_json."""
    if isinstance(body, dict):
        return body
    kind = _GO_KIND.get(type(body), "value")
    raise AuthError(400, "bad_json", f"Could not parse request body as JSON: json: cannot unmarshal {kind} into "
                                     f"Go value of type {go_type}")


def _string_fields(body: dict, go_type: str, *fields: str) -> dict:
    """Fields GoTrue declares as strings: a JSON value of another kind fails its decoding (400
    bad_json), where Python would carry it on until it broke something."""
    for field in fields:
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            kind, struct = _GO_KIND.get(type(value), "object"), go_type.rsplit(".", 1)[-1]
            raise AuthError(400, "bad_json", f"Could not parse request body as JSON: json: cannot unmarshal {kind} "
                                             f"into Go struct field {struct}.{field} of type string")
    return body


_INT64 = 2 ** 63


def _go_numbers(value):
    """User metadata as GoTrue keeps it: Go decodes JSON numbers into float64, so an integer beyond
    64 bits is stored as a float rather than refused (orjson cannot write it, and the answer that
    echoes the metadata back must not fail)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        return float(value)
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    return value


def _banned(user: dict) -> bool:
    until = user.get("banned_until")
    return until is not None and until > dt.datetime.now(dt.UTC)


def _session_uuid(claims: dict) -> uuid.UUID | None:
    try:
        sid = uuid.UUID(str(claims.get("session_id")))
    except ValueError:
        return None
    return None if str(sid) == INSTANCE else sid


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


def _pkce(body: dict):
    from .auth_checks import pkce_params

    return pkce_params(body)


class _ReuseDetected(AuthError):
    def __init__(self):
        super().__init__(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
