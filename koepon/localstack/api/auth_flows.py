"""GoTrue's e-mail flows for the local Auth: confirmation, resend, verify (GET with redirect and
POST; token hash or 6-digit code), recovery, magic link and e-mail OTP, e-mail change confirmed
from both addresses, reauthentication, and the PKCE exchange.

Behaviour follows supabase/auth (internal/api/verify.go, mail.go, otp.go, magic_link.go,
recover.go, resend.go, reauthenticate.go, token.go): tokens are stored as GoTrue stores them (the
hex SHA-224 of address + code in the users' token columns, `pkce_`-prefixed in a PKCE flow), the
same error codes, statuses and messages, and the same answers that reveal nothing about whether an
address is registered.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import secrets
import uuid
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .auth_checks import email_format_ok, pkce_params, referrer, token_hash, verify_challenge
from .auth_config import AuthConfig
from .auth_mail import EMAIL_SENDS_DDL, Mailer

# The client of the current request (IP, user agent), for sessions and e-mail send limits.
client_meta: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "client_meta", default=(None, None))

SINGLE_CONFIRMATION = "Confirmation link accepted. Please proceed to confirm link sent to the other email"
DUPLICATE_EMAIL = "A user with this email address has already been registered"
FLOW_STATE_TTL = 300  # GoTrue's FlowStateExpiryDuration default: 5 minutes

FLOW_STATE_DDL = """
select pg_advisory_xact_lock(7305719203);
do $$
begin
  if to_regtype('auth.code_challenge_method') is null then
    create type auth.code_challenge_method as enum ('s256', 'plain');
  end if;
end
$$;
create table if not exists auth.flow_state (
  id uuid primary key,
  user_id uuid,
  auth_code text not null,
  code_challenge_method auth.code_challenge_method not null,
  code_challenge text not null,
  provider_type text not null,
  provider_access_token text,
  provider_refresh_token text,
  created_at timestamptz,
  updated_at timestamptz,
  authentication_method text not null,
  auth_code_issued_at timestamptz
);
create index if not exists idx_auth_code on auth.flow_state (auth_code);
create index if not exists idx_user_id_auth_method on auth.flow_state (user_id, authentication_method);
alter table auth.flow_state enable row level security;
"""


class EmailFlows:
    """The e-mail lifecycle; `auth` is the Auth (its pool, users, sessions and errors)."""

    # (token column, sent-at column) per e-mail kind
    COLUMNS = {"signup": ("confirmation_token", "confirmation_sent_at"),
               "invite": ("confirmation_token", "confirmation_sent_at"),
               "recovery": ("recovery_token", "recovery_sent_at"),
               "magiclink": ("recovery_token", "recovery_sent_at")}
    TEMPLATE = {"signup": "confirmation", "invite": "invite", "recovery": "recovery", "magiclink": "magic_link"}
    AUTH_METHOD = {"signup": "email/signup", "invite": "invite", "recovery": "recovery", "magiclink": "magiclink",
                   "email_change": "email_change"}

    def __init__(self, auth, config: AuthConfig):
        self.auth = auth
        self.config = config
        self.mailer = Mailer(config)
        self._ready = False

    async def ensure(self) -> None:
        """Creates Auth's own tables on first use (GoTrue creates its tables when it starts), on a
        connection of its own so a caller's transaction is not disturbed."""
        if self._ready:
            return
        async with self.auth.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("select to_regclass('auth.flow_state') is not null "
                                     "and to_regclass('auth.koepon_email_sends') is not null")
            if not (await cur.fetchone())[0]:
                from .auth_limits import as_auth_admin

                await as_auth_admin(conn, FLOW_STATE_DDL + EMAIL_SENDS_DDL)
        self._ready = True

    # -- helpers ---------------------------------------------------------------------------

    def _error(self, status, code, msg):
        from .auth import AuthError

        return AuthError(status, code, msg)

    def _otp(self) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(self.config.otp_length))

    def _frequency(self, sent_at) -> None:
        if sent_at is None:
            return
        left = (sent_at + dt.timedelta(seconds=self.config.max_frequency)) - dt.datetime.now(dt.UTC)
        if left.total_seconds() > 0:
            raise self._error(429, "over_email_send_rate_limit",
                              f"For security purposes, you can only request this after {int(left.total_seconds())} "
                              "seconds.")

    async def _take_send(self, conn) -> None:
        """[auth.rate_limit] email_sent: e-mails per hour, per client IP."""
        ip = client_meta.get()[0] or "-"
        key = "ip:" + ip[:45]
        await conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 1))", (key,))
        await conn.execute("delete from auth.koepon_email_sends where key = %s and at <= now() - interval '1 hour'",
                           (key,))
        cur = await conn.execute("select count(*) from auth.koepon_email_sends where key = %s", (key,))
        if (await cur.fetchone())[0] >= self.config.email_sent_per_hour:
            raise self._error(429, "over_email_send_rate_limit", "email rate limit exceeded")
        await conn.execute("insert into auth.koepon_email_sends (key) values (%s)", (key,))

    def _link(self, token: str, kind: str, redirect: str) -> str:
        # GoTrue's getPath: the redirect is taken as is unless it holds &, = or # (then escaped).
        red = quote(redirect, safe="") if any(c in redirect for c in "&=#") else redirect
        return (f"{self.config.external_url}/verify?token={quote(token, safe='')}&type={quote(kind)}"
                f"&redirect_to={red}")

    async def _flow_state(self, conn, user_id, pkce: tuple[str, str] | None, kind: str) -> None:
        if pkce is None:
            return
        await conn.execute(
            "insert into auth.flow_state (id, user_id, auth_code, code_challenge_method, code_challenge, "
            "provider_type, created_at, updated_at, authentication_method) values "
            "(%s, %s, %s, %s, %s, %s, now(), now(), %s)",
            (uuid.uuid4(), user_id, str(uuid.uuid4()), pkce[1], pkce[0], "email" if kind != "email_change"
             else "email_change", self.AUTH_METHOD[kind]))

    async def send_token_mail(self, conn, user: dict, kind: str, redirect: str,
                              pkce: tuple[str, str] | None = None, check_frequency: bool = True) -> tuple[str, str]:
        """Stores a new code for `kind` (signup, invite, recovery, magiclink) and mails it.
        Returns (otp, stored hash)."""
        token_col, sent_col = self.COLUMNS[kind]
        if check_frequency:
            cur = await conn.execute(f"select {sent_col} from auth.users where id = %s", (user["id"],))
            self._frequency((await cur.fetchone())[0])
        await self._take_send(conn)
        otp = self._otp()
        hashed = ("pkce_" if pkce else "") + token_hash(user["email"], otp)
        await self._flow_state(conn, user["id"], pkce, kind)
        await conn.execute(f"update auth.users set {token_col} = %s, {sent_col} = now() where id = %s",
                           (hashed, user["id"]))
        await self._mail(user, self.TEMPLATE[kind], user["email"], otp, hashed, self._link(hashed, kind, redirect),
                         redirect)
        return otp, hashed

    async def _mail(self, user: dict, template: str, to: str, otp: str, hashed: str | None, link: str | None,
                    redirect: str | None, new_email: str | None = None) -> None:
        data = {"SiteURL": self.config.site_url, "ConfirmationURL": link, "Email": user["email"], "Token": otp,
                "TokenHash": hashed, "RedirectTo": redirect, "NewEmail": new_email,
                "Data": user.get("raw_user_meta_data") or {}}
        try:
            await self.mailer.send(template, to, data)
        except OSError as exc:
            raise self._error(500, "unexpected_failure", f"Error sending {template} email: {exc}") from exc

    # -- endpoints -------------------------------------------------------------------------

    async def resend(self, body: dict, redirect_to: str | None) -> dict:
        kind = body.get("type")
        email = str(body.get("email") or "").strip().lower()
        if kind not in ("signup", "email_change", "sms", "phone_change"):
            raise self._error(400, "validation_failed", "Missing one of these types: signup, email_change, sms, "
                                                        "phone_change")
        if kind in ("sms", "phone_change"):
            raise self._error(400, "validation_failed", "Type provided requires a phone number")
        if not email:
            raise self._error(400, "validation_failed", "Type provided requires an email address")
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        pkce = pkce_params(body)
        redirect = referrer(self.config, redirect_to or options.get("emailRedirectTo"))
        async with self.auth.pool.connection() as conn:
            await self.ensure()
            async with conn.transaction():
                if kind == "signup":
                    user = await self.auth._user_by(conn, "email", email)
                    if user is None or user["email_confirmed_at"] is not None:
                        return {}  # nothing to resend; the answer reveals nothing
                    await self.send_token_mail(conn, user, "signup", redirect, pkce)
                else:
                    cur = await conn.execute("select id from auth.users where email = %s and "
                                             "coalesce(email_change, '') <> ''", (email,))
                    row = await cur.fetchone()
                    if row is None:
                        return {}
                    user = await self.auth._user_by(conn, "id", row[0])
                    await self.send_email_change(conn, user, user["email_change"], redirect, pkce)
        return {}

    async def recover(self, body: dict, redirect_to: str | None) -> dict:
        email = str(body.get("email") or "").strip().lower()
        if not email:
            raise self._error(400, "validation_failed", "Password recovery requires an email")
        pkce = pkce_params(body)
        redirect = referrer(self.config, redirect_to)
        async with self.auth.pool.connection() as conn:
            await self.ensure()
            async with conn.transaction():
                user = None if "\x00" in email else await self.auth._user_by(conn, "email", email)
                if user is None:
                    return {}  # as GoTrue: an unknown address gets the same answer
                await self.send_token_mail(conn, user, "recovery", redirect, pkce)
        return {}

    async def otp(self, body: dict, redirect_to: str | None, magiclink_endpoint: bool = False) -> dict:
        email = str(body.get("email") or "").strip().lower()
        if body.get("phone"):
            raise self._error(400, "validation_failed", "Unsupported phone provider")
        if not email:
            if magiclink_endpoint:
                raise self._error(422, "validation_failed", "Password recovery requires an email")
            raise self._error(400, "validation_failed", "One of email or phone must be set")
        if len(email) > 255 or not email_format_ok(email):
            raise self._error(400, "validation_failed", "Unable to validate email address: invalid format")
        create_user = body.get("create_user", True) is not False
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise self._error(400, "validation_failed", "data must be an object")
        pkce = pkce_params(body)
        redirect = referrer(self.config, redirect_to)
        async with self.auth.pool.connection() as conn:
            await self.ensure()
            async with conn.transaction():
                user = await self.auth._user_by(conn, "email", email)
                if user is None:
                    if not create_user:
                        raise self._error(422, "otp_disabled", "Signups not allowed for otp")
                    if not self.config.enable_signup:
                        raise self._error(422, "signup_disabled", "Signups not allowed for this instance")
                    user = await self.auth.insert_user(conn, email, None, data, confirmed=False)
                if user["email_confirmed_at"] is None:
                    await self.send_token_mail(conn, user, "signup", redirect, pkce)
                else:
                    await self.send_token_mail(conn, user, "magiclink", redirect, pkce)
        return {}

    async def send_email_change(self, conn, user: dict, new_email: str, redirect: str,
                                pkce: tuple[str, str] | None = None, check_frequency: bool = True) -> dict:
        """GoTrue's sendEmailChange: a code to the new address, and with double_confirm_changes one to
        the current address too. Returns the codes and hashes (generateLink uses them)."""
        if check_frequency:
            self._frequency(user.get("email_change_sent_at"))
        await self._take_send(conn)
        await self._flow_state(conn, user["id"], pkce, "email_change")
        prefix = "pkce_" if pkce else ""
        otp_new = self._otp()
        new_hash = prefix + token_hash(new_email, otp_new)
        otp_cur, cur_hash = "", ""
        if self.config.double_confirm_changes and user["email"]:
            otp_cur = self._otp()
            cur_hash = prefix + token_hash(user["email"], otp_cur)
        await conn.execute(
            "update auth.users set email_change = %s, email_change_token_new = %s, email_change_token_current = %s,"
            " email_change_confirm_status = 0, email_change_sent_at = now(), updated_at = now() where id = %s",
            (new_email, new_hash, cur_hash, user["id"]))
        await self._mail(user, "email_change", new_email, otp_new, new_hash,
                         self._link(new_hash, "email_change", redirect), redirect, new_email)
        if cur_hash:
            await self._mail(user, "email_change", user["email"], otp_cur, cur_hash,
                             self._link(cur_hash, "email_change", redirect), redirect, new_email)
        return {"otp_new": otp_new, "hash_new": new_hash, "otp_current": otp_cur, "hash_current": cur_hash}

    async def change_email(self, conn, user: dict, new_email: str, body: dict, redirect_to: str | None) -> None:
        new_email = new_email.strip().lower()
        if len(new_email) > 255 or not email_format_ok(new_email):
            raise self._error(400, "validation_failed", "Unable to validate email address: invalid format")
        if new_email == user["email"]:
            return
        cur = await conn.execute("select 1 from auth.users where email = %s and id <> %s", (new_email, user["id"]))
        if await cur.fetchone():
            raise self._error(422, "email_exists", DUPLICATE_EMAIL)
        await self.ensure()
        await self.send_email_change(conn, user, new_email, referrer(self.config, redirect_to), pkce_params(body))

    async def reauthenticate(self, claims: dict) -> dict:
        async with self.auth.pool.connection() as conn:
            await self.ensure()
            async with conn.transaction():
                user = await self.auth._authenticated(conn, claims)
                if not user["email"]:
                    raise self._error(400, "validation_failed", "Reauthentication requires the user to have an "
                                                                "email or a phone number")
                if user["email_confirmed_at"] is None:
                    raise self._error(422, "email_not_confirmed", "Please verify your email first.")
                cur = await conn.execute("select reauthentication_sent_at from auth.users where id = %s",
                                         (user["id"],))
                self._frequency((await cur.fetchone())[0])
                await self._take_send(conn)
                otp = self._otp()
                await conn.execute("update auth.users set reauthentication_token = %s, reauthentication_sent_at = "
                                   "now() where id = %s", (token_hash(user["email"], otp), user["id"]))
                await self._mail(user, "reauthentication", user["email"], otp, None, None, None)
        return {}

    async def check_reauthentication(self, conn, user: dict, claims: dict, nonce) -> None:
        """secure_password_change: a session older than 24 hours needs the reauthentication code."""
        if not self.config.secure_password_change:
            return
        sid = claims.get("session_id")
        fresh = False
        if sid:
            cur = await conn.execute("select created_at > now() - interval '24 hours' from auth.sessions "
                                     "where id::text = %s", (str(sid),))
            row = await cur.fetchone()
            fresh = bool(row and row[0])
        if fresh:
            return
        if not nonce:
            raise self._error(400, "reauthentication_needed", "Password update requires reauthentication")
        cur = await conn.execute("select reauthentication_token, reauthentication_sent_at from auth.users "
                                 "where id = %s", (user["id"],))
        stored, sent_at = await cur.fetchone()
        if not stored or sent_at is None or not self._valid(token_hash(user["email"], str(nonce)), stored, sent_at):
            raise self._error(422, "reauthentication_not_valid", "Nonce has expired or is invalid")
        await conn.execute("update auth.users set reauthentication_token = '', reauthentication_sent_at = null "
                           "where id = %s", (user["id"],))

    def _expired(self, sent_at) -> bool:
        return sent_at is None or dt.datetime.now(dt.UTC) > sent_at + dt.timedelta(seconds=self.config.otp_expiry)

    def _valid(self, actual: str, expected: str | None, sent_at) -> bool:
        if not expected or sent_at is None or self._expired(sent_at):
            return False
        return secrets.compare_digest(actual, expected) or secrets.compare_digest("pkce_" + actual, expected)

    # -- verify ----------------------------------------------------------------------------

    async def _find_by_hash(self, conn, kind: str, hashed: str) -> dict:
        cols = {"signup": ["confirmation_token"], "invite": ["confirmation_token"],
                "recovery": ["recovery_token"], "magiclink": ["recovery_token"],
                "email": ["confirmation_token", "recovery_token"],
                "email_change": ["email_change_token_current", "email_change_token_new"]}.get(kind)
        if cols is None:
            raise self._error(400, "validation_failed", "Invalid email verification type")
        if "\x00" in hashed:  # never issued, and PostgreSQL text cannot hold it
            raise self._error(403, "otp_expired", "Email link is invalid or has expired")
        where = " or ".join(f"{c} = %s" for c in cols)
        cur = await conn.execute(f"select id from auth.users where ({where}) and deleted_at is null for update",
                                 (hashed,) * len(cols))
        row = await cur.fetchone()
        if row is None:
            raise self._error(403, "otp_expired", "Email link is invalid or has expired")
        return await self.auth._user_by(conn, "id", row[0])

    async def _check_hash_user(self, conn, user: dict, kind: str, hashed: str) -> str:
        from .auth import _banned

        if _banned(user):
            raise self._error(403, "user_banned", "User is banned")
        if kind == "email":
            kind = "magiclink" if user.get("recovery_token") == hashed else "signup"
        sent = {"signup": "confirmation_sent_at", "invite": "confirmation_sent_at", "recovery": "recovery_sent_at",
                "magiclink": "recovery_sent_at", "email_change": "email_change_sent_at"}[kind]
        if self._expired(user.get(sent)):
            raise self._error(403, "otp_expired", "Email link is invalid or has expired")
        return kind

    async def _find_by_code(self, conn, kind: str, email: str, hashed: str) -> tuple[dict, str]:
        from .auth import _banned

        if kind == "email_change":
            cur = await conn.execute(
                "select id from auth.users where deleted_at is null and ((email = %s and "
                "email_change_token_current in (%s, %s)) or (email_change = %s and email_change_token_new in (%s, %s)))"
                " for update", (email, hashed, "pkce_" + hashed, email, hashed, "pkce_" + hashed))
        else:
            cur = await conn.execute("select id from auth.users where email = %s and deleted_at is null for update",
                                     (email,))
        row = await cur.fetchone()
        if row is None:
            raise self._error(403, "otp_expired", "Token has expired or is invalid")
        user = await self.auth._user_by(conn, "id", row[0])
        if _banned(user):
            raise self._error(403, "user_banned", "User is banned")
        ok = False
        if kind == "email":
            if self._valid(hashed, user.get("confirmation_token"), user.get("confirmation_sent_at")):
                ok, kind = True, "signup"
            elif self._valid(hashed, user.get("recovery_token"), user.get("recovery_sent_at")):
                ok, kind = True, "magiclink"
        elif kind in ("signup", "invite"):
            ok = self._valid(hashed, user.get("confirmation_token"), user.get("confirmation_sent_at"))
        elif kind in ("recovery", "magiclink"):
            ok = self._valid(hashed, user.get("recovery_token"), user.get("recovery_sent_at"))
        elif kind == "email_change":
            ok = (self._valid(hashed, user.get("email_change_token_current"), user.get("email_change_sent_at"))
                  or self._valid(hashed, user.get("email_change_token_new"), user.get("email_change_sent_at")))
        if not ok:
            raise self._error(403, "otp_expired", "Token has expired or is invalid")
        return user, kind

    async def _apply(self, conn, user: dict, kind: str, hashed: str | None, code: str | None) -> dict | None:
        """The verified token's effect; None when an e-mail change awaits its second confirmation."""
        uid = user["id"]
        if kind in ("signup", "invite"):
            await conn.execute("update auth.users set email_confirmed_at = coalesce(email_confirmed_at, now()), "
                               "confirmation_token = '', updated_at = now() where id = %s", (uid,))
        elif kind in ("recovery", "magiclink"):
            await conn.execute("update auth.users set recovery_token = '', recovery_sent_at = null, "
                               "email_confirmed_at = coalesce(email_confirmed_at, now()), updated_at = now() "
                               "where id = %s", (uid,))
        elif kind == "email_change":
            cur_tok = user.get("email_change_token_current") or ""
            matches_current = bool(cur_tok) and hashed in (cur_tok, cur_tok.removeprefix("pkce_"))
            if (self.config.double_confirm_changes and user.get("email_change_confirm_status", 0) == 0
                    and user["email"] and user.get("email_change_token_current")
                    and user.get("email_change_token_new")):
                col = "email_change_token_current" if matches_current else "email_change_token_new"
                await conn.execute(f"update auth.users set email_change_confirm_status = 1, {col} = '' "
                                   "where id = %s", (uid,))
                return None
            new = user["email_change"]
            cur = await conn.execute("select 1 from auth.users where email = %s and id <> %s", (new, uid))
            if await cur.fetchone():
                raise self._error(422, "email_exists", DUPLICATE_EMAIL)
            await conn.execute(
                "update auth.users set email = email_change, email_change = '', email_change_token_current = '', "
                "email_change_token_new = '', email_change_confirm_status = 0, email_change_sent_at = null, "
                "updated_at = now() where id = %s", (uid,))
            await conn.execute(
                "update auth.identities set identity_data = identity_data || jsonb_build_object('email', %s::text, "
                "'email_verified', true), updated_at = now() where user_id = %s and provider = 'email'", (new, uid))
        return await self.auth._user_by(conn, "id", uid)

    async def verify_post(self, body: dict) -> dict:
        kind = body.get("type")
        token, hashed, email = body.get("token") or "", body.get("token_hash") or "", body.get("email") or ""
        if not kind:
            raise self._error(400, "validation_failed", "Verify requires a verification type")
        if bool(token) == bool(hashed):
            raise self._error(400, "validation_failed", "Verify requires either a token or a token hash")
        if kind in ("sms", "phone_change") or body.get("phone"):
            raise self._error(400, "validation_failed", "Unsupported verification type")
        if token:
            email = str(email).strip().lower()
            if not email:
                raise self._error(400, "validation_failed", "Only an email address or phone number should be "
                                                            "provided on verify")
            if not email_format_ok(email):
                raise self._error(422, "validation_failed", "Invalid email format")
            hashed = token_hash(email, str(token))
        elif email or body.get("redirect_to"):
            raise self._error(400, "validation_failed", "Only the token_hash and type should be provided")
        if kind not in ("signup", "invite", "recovery", "magiclink", "email_change", "email"):
            raise self._error(400, "validation_failed", "Unsupported verification type")
        async with self.auth.pool.connection() as conn:
            await self.ensure()
            async with conn.transaction():
                if token:
                    user, kind = await self._find_by_code(conn, kind, email, hashed)
                else:
                    user = await self._find_by_hash(conn, kind, str(hashed))
                    kind = await self._check_hash_user(conn, user, kind, str(hashed))
                done = await self._apply(conn, user, kind, str(hashed), str(token) if token else None)
                if done is None:
                    return {"msg": SINGLE_CONFIRMATION, "code": "200"}
                return await self.auth.new_session(conn, done, "otp")

    async def verify_get(self, params: dict, referer: str | None) -> str:
        """The Location of GoTrue's 303 answer to a link in an e-mail."""
        kind, token = params.get("type") or "", params.get("token") or ""
        if not kind:
            raise self._error(400, "validation_failed", "Verify requires a verification type")
        if not token:
            raise self._error(400, "validation_failed", "Verify requires a token or a token hash")
        redirect = referrer(self.config, params.get("redirect_to"), referer)
        pkce = token.startswith("pkce_")
        try:
            async with self.auth.pool.connection() as conn:
                await self.ensure()
                async with conn.transaction():
                    if kind not in ("signup", "invite", "recovery", "magiclink", "email_change"):
                        raise self._error(400, "validation_failed", "Unsupported verification type")
                    user = await self._find_by_hash(conn, kind, token)
                    kind = await self._check_hash_user(conn, user, kind, token)
                    done = await self._apply(conn, user, kind, token, None)
                    if done is None:
                        return _with(redirect, query={"message": SINGLE_CONFIRMATION} if pkce else None,
                                     fragment={"message": SINGLE_CONFIRMATION, "sb": ""})
                    if pkce:
                        code = await self._issue_auth_code(conn, done["id"], kind)
                        return _with(redirect, query={"code": code})
                    session = await self.auth.new_session(conn, done, "otp")
        except Exception as exc:
            from .auth import AuthError

            if not isinstance(exc, AuthError):
                raise
            oauth = {400: "invalid_request", 401: "unauthorized_client", 403: "access_denied",
                     404: "invalid_request", 422: "invalid_request", 429: "invalid_request",
                     500: "server_error"}.get(exc.status)
            frag = ({"error": oauth} if oauth else {}) | {"error_code": exc.error_code, "error_description": exc.msg,
                                                          "sb": ""}
            query = (({"error": oauth} if oauth else {}) | {"error_code": exc.error_code,
                                                            "error_description": exc.msg}) if pkce else None
            return _with(redirect, query=query, fragment=frag)
        frag = {"access_token": session["access_token"], "expires_at": str(session["expires_at"]),
                "expires_in": str(session["expires_in"]), "refresh_token": session["refresh_token"],
                "token_type": "bearer", "type": kind, "sb": ""}
        return _with(redirect, fragment=frag)

    async def _issue_auth_code(self, conn, user_id, kind: str) -> str:
        cur = await conn.execute(
            "select id from auth.flow_state where user_id = %s and authentication_method = %s "
            "order by created_at desc limit 1", (user_id, self.AUTH_METHOD[kind]))
        row = await cur.fetchone()
        if row is None:
            raise self._error(422, "flow_state_not_found", "No valid flow state found for user.")
        code = str(uuid.uuid4())
        await conn.execute("update auth.flow_state set auth_code = %s, auth_code_issued_at = now(), "
                           "updated_at = now() where id = %s", (code, row[0]))
        return code

    async def pkce_grant(self, body: dict) -> dict:
        code, verifier = body.get("auth_code") or "", body.get("code_verifier") or ""
        if not code or not verifier:
            raise self._error(400, "validation_failed",
                              "invalid request: both auth code and code verifier should be non-empty")
        async with self.auth.pool.connection() as conn:
            await self.ensure()
            async with conn.transaction():
                cur = await conn.execute(
                    "select id, user_id, code_challenge, code_challenge_method::text, created_at, "
                    "auth_code_issued_at, authentication_method from auth.flow_state where auth_code = %s for update",
                    (str(code),))
                row = await cur.fetchone()
                if row is None or row[1] is None:
                    raise self._error(404, "flow_state_not_found", "invalid flow state, no valid flow state found")
                fid, uid, challenge, method, created, issued, auth_method = row
                start = issued if (issued and auth_method == "magiclink") else created
                if dt.datetime.now(dt.UTC) > start + dt.timedelta(seconds=FLOW_STATE_TTL):
                    raise self._error(422, "flow_state_expired", "invalid flow state, flow state has expired")
                if not verify_challenge(challenge, method, str(verifier)):
                    raise self._error(400, "bad_code_verifier",
                                      "code challenge does not match previously saved code verifier")
                user = await self.auth._user_by(conn, "id", uid)
                await conn.execute("delete from auth.flow_state where id = %s", (fid,))
                return await self.auth.new_session(conn, user, "otp")


def _with(url: str, query: dict | None = None, fragment: dict | None = None) -> str:
    parts = urlsplit(url)
    q = parts.query
    if query:
        merged = dict(parse_qsl(parts.query, keep_blank_values=True)) | query
        q = urlencode(merged)
    frag = urlencode(fragment) if fragment else parts.fragment
    return urlunsplit((parts.scheme, parts.netloc, parts.path, q, frag))
