"""Sign-in limits of the local Auth, kept in the database so that every API worker, and the next
process after a restart, sees the same counts.

Two buckets, as Supabase Auth has them:
* per address: five failed sign-ins within 15 minutes lock the address (registered or not, so
  the lockout reveals nothing) until the oldest failure ages out;
* per client IP: sign-in and sign-up requests, `sign_in_sign_ups` per 5 minutes (the Supabase
  CLI's `[auth.rate_limit] sign_in_sign_ups`, default 30), so one password tried on many
  addresses is slowed too.

Keys are bounded: an address is stored as its SHA-256, an IP address is at most 45 characters, so
an attacker inventing addresses by the million fills rows of fixed size that age out (each
write prunes its key; one write in a hundred prunes everything expired).

Like GoTrue, which keeps its own tables in the `auth` schema and creates them when it starts,
the local Auth creates its table on first use.
"""

from __future__ import annotations

import hashlib
import os
import random
import tomllib
from pathlib import Path

LOCK_AFTER = 5
LOCK_SECONDS = 15 * 60
IP_WINDOW_SECONDS = 5 * 60
DEFAULT_SIGN_IN_SIGN_UPS = 30

DDL = """
select pg_advisory_xact_lock(7305719201);
create table if not exists auth.koepon_auth_limit_hits (
  bucket text not null check (bucket in ('sign_in_failure', 'sign_in_sign_up')),
  key text not null check (char_length(key) <= 80),
  at timestamptz not null default now()
);
create index if not exists koepon_auth_limit_hits_bucket_key_at on auth.koepon_auth_limit_hits (bucket, key, at);
revoke all on auth.koepon_auth_limit_hits from public, anon, authenticated, service_role;
comment on table auth.koepon_auth_limit_hits is
  'koepon local Auth (local stack only): failed sign-ins per address hash and sign-in/sign-up requests per IP.';
"""


def sign_in_sign_ups_limit(config_toml: Path | None = None) -> int:
    """KOEPON_AUTH_SIGN_IN_SIGN_UPS, else supabase/config.toml's [auth.rate_limit] sign_in_sign_ups, else 30."""
    env = os.environ.get("KOEPON_AUTH_SIGN_IN_SIGN_UPS")
    if env:
        return int(env)
    if config_toml is None:
        from ...settings import paths

        config_toml = paths().root / "supabase" / "config.toml"
    try:
        conf = tomllib.loads(config_toml.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_SIGN_IN_SIGN_UPS
    return int(conf.get("auth", {}).get("rate_limit", {}).get("sign_in_sign_ups", DEFAULT_SIGN_IN_SIGN_UPS))


def address_key(email: str) -> str:
    return "e:" + hashlib.sha256(email.encode("utf-8", "surrogatepass")).hexdigest()


def ip_key(ip: str) -> str:
    return "ip:" + ip[:45]


class AuthLimits:
    def __init__(self, sign_in_sign_ups: int):
        self.sign_in_sign_ups = sign_in_sign_ups
        self._ready = False

    async def ensure(self, conn) -> None:
        if self._ready:
            return
        cur = await conn.execute("select to_regclass('auth.koepon_auth_limit_hits') is not null")
        if not (await cur.fetchone())[0]:
            await as_auth_admin(conn, DDL)
        self._ready = True

    @staticmethod
    async def serialise(conn, key: str) -> None:
        """Inside a transaction: one attempt at a time per key, across workers."""
        await conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))

    @staticmethod
    async def _count(conn, bucket: str, key: str, seconds: int) -> int:
        cur = await conn.execute(
            "select count(*) from auth.koepon_auth_limit_hits where bucket = %s and key = %s "
            "and at > now() - make_interval(secs => %s)", (bucket, key, seconds))
        return (await cur.fetchone())[0]

    @staticmethod
    async def _hit(conn, bucket: str, key: str, seconds: int) -> None:
        await conn.execute("delete from auth.koepon_auth_limit_hits where bucket = %s and key = %s "
                           "and at <= now() - make_interval(secs => %s)", (bucket, key, seconds))
        await conn.execute("insert into auth.koepon_auth_limit_hits (bucket, key) values (%s, %s)", (bucket, key))
        if random.random() < 0.01:  # noqa: S311 -- housekeeping, not security
            await conn.execute("delete from auth.koepon_auth_limit_hits where at <= now() - make_interval(secs => %s)",
                               (max(LOCK_SECONDS, IP_WINDOW_SECONDS),))

    async def take_ip(self, conn, ip: str | None) -> bool:
        """Counts one sign-in/sign-up request of this client; False when over the limit (not counted)."""
        if not ip:
            return True
        key = ip_key(ip)
        await self.serialise(conn, key)
        if await self._count(conn, "sign_in_sign_up", key, IP_WINDOW_SECONDS) >= self.sign_in_sign_ups:
            return False
        await self._hit(conn, "sign_in_sign_up", key, IP_WINDOW_SECONDS)
        return True

    async def locked(self, conn, email: str) -> bool:
        return await self._count(conn, "sign_in_failure", address_key(email), LOCK_SECONDS) >= LOCK_AFTER

    async def failed(self, conn, email: str) -> None:
        await self._hit(conn, "sign_in_failure", address_key(email), LOCK_SECONDS)

    @staticmethod
    async def succeeded(conn, email: str) -> None:
        await conn.execute("delete from auth.koepon_auth_limit_hits where bucket = 'sign_in_failure' and key = %s",
                           (address_key(email),))


async def as_auth_admin(conn, ddl: str) -> None:
    """Runs Auth's own DDL as supabase_auth_admin (GoTrue creates its tables as that role when it
    starts). `postgres` may create nothing in `auth` (as on hosted), so it goes through the
    tooling superuser of the private cluster, and `postgres` uses the tables through the schema's
    default privileges."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from ...settings import SUPERUSER

    url = make_conninfo(conn.info.dsn, user=SUPERUSER, password="")  # any koepon-made cluster
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as su:
        async with su.transaction():
            await su.execute("set local role supabase_auth_admin")
            await su.execute(ddl)
