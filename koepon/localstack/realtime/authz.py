"""Private channels: RLS policies on realtime.messages decide who may receive and send.

The same checks Supabase Realtime runs (lib/realtime/tenants/authorization.ex):

* read: in a transaction, insert one probe row per extension (`broadcast`, and `presence` when
  presence is enabled) for the topic, switch to the caller's role and claims, select the probes
  back — the rows RLS lets through are the extensions the caller may read — then roll back.
* write: switch to the caller's role and claims and insert a row per extension, each in a
  savepoint; `insufficient_privilege` means no — then roll back.

Both set the settings Realtime sets (role, realtime.topic, request.jwt.claims, ...claim.sub,
...claim.role, request.headers), so `realtime.topic()` and `auth.uid()` work in policies.
"""

from __future__ import annotations

import uuid

import orjson
import psycopg

SET_CONFIG = ("select set_config('role', %s, true), set_config('realtime.topic', %s, true), "
              "set_config('request.jwt.claims', %s, true), set_config('request.jwt.claim.sub', %s, true), "
              "set_config('request.jwt.claim.role', %s, true), set_config('request.headers', %s, true)")


class PolicyError(Exception):
    """The policies themselves failed (Realtime: RlsPolicyError → treated as not permitted)."""


def _config_args(topic: str, claims: dict) -> tuple:
    role = str(claims.get("role") or "anon")
    return (role, topic, orjson.dumps(claims).decode(), str(claims.get("sub") or ""), role, "{}")


async def read(pool, topic: str, claims: dict, extensions: tuple[str, ...]) -> dict[str, bool]:
    probes = {ext: uuid.uuid4() for ext in extensions}
    try:
        async with pool.connection() as conn, conn.transaction(force_rollback=True):
            async with conn.cursor() as cur:
                for ext, probe in probes.items():
                    await cur.execute("insert into realtime.messages (id, topic, extension) values (%s, %s, %s)",
                                      (probe, topic, ext))
                await cur.execute(SET_CONFIG, _config_args(topic, claims))
                await cur.execute("select id from realtime.messages where id = any(%s)", (list(probes.values()),))
                seen = {row[0] for row in await cur.fetchall()}
    except psycopg.Error as exc:
        raise PolicyError(str(exc).strip()) from exc
    return {ext: probe in seen for ext, probe in probes.items()}


async def write(pool, topic: str, claims: dict, extensions: tuple[str, ...]) -> dict[str, bool]:
    out = {}
    try:
        async with pool.connection() as conn, conn.transaction(force_rollback=True):
            async with conn.cursor() as cur:
                await cur.execute(SET_CONFIG, _config_args(topic, claims))
                for ext in extensions:
                    try:
                        async with conn.transaction():
                            await cur.execute("insert into realtime.messages (topic, extension) values (%s, %s)",
                                              (topic, ext))
                        out[ext] = True
                    except psycopg.errors.InsufficientPrivilege:
                        out[ext] = False
    except psycopg.Error as exc:
        raise PolicyError(str(exc).strip()) from exc
    return out
