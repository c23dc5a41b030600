"""The database reached directly: a pooled psycopg 3 connection, each call its own transaction.

`DirectDatabase.rpc(name, **params)` is `Database.rpc` (webhooks/db.py) without the HTTP hop: it
runs `select public.<name>(p_x => …)` as `service_role` and turns an error into the same
RpcError / Unavailable / ServerFault (through `db.error_for`), so a provider gets the same HTTP
status and body whichever transport carried the call (tests/webhooks/test_transport_parity.py
drives both with the same SQLSTATEs).

Made for hosted Supabase's pooler, Supavisor, in transaction mode (port 6543), where consecutive
transactions of one client connection may run on different server connections:

  * no server-side prepared statements (`prepare_threshold=None`);
  * nothing kept in the session: the role, the claims, the request headers and the statement
    timeout are set with `set_config(…, true)` (transaction-local) inside each call's transaction,
    as PostgREST does for every request;
  * every call is one transaction and one round trip: the settings and the call go as ONE
    simple-protocol message (`select set_config(…); select public.<name>(…)`), which PostgreSQL
    runs as one implicit transaction -- committed together, or rolled back together on an error,
    leaving the connection idle. The arguments are bound client-side by psycopg's ClientCursor
    (its quoting, never string formatting of ours). Measured on this machine: 60-90 µs of client
    CPU per call, against 130-165 µs for BEGIN / settings / call / COMMIT as separate statements
    and 210-230 µs for the same pipelined (psycopg's pipeline spins while it waits).

The login role is the project's `postgres` (a member of `service_role` on hosted Supabase and on
the local stack); the call itself runs as `service_role`, so it can do exactly what the service
role key could through the API: execute the `public.service_*` functions granted to it. The
pool is opened lazily in the process that uses it (gunicorn forks its workers after the app is
built; a pool's connections and threads must not cross a fork).
"""

from __future__ import annotations

import json
import logging
import os
import threading

import psycopg
from flask import g, has_request_context
from psycopg import ClientCursor, sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from .db import Unavailable, error_for

log = logging.getLogger("webhooks.db")

# What PostgREST sets for a request (role, claims, headers), plus this call's own time limit.
_SETTINGS = sql.SQL("select set_config('search_path', 'public, extensions', true), "
                    "set_config('role', 'service_role', true), "
                    "set_config('request.jwt.claims', '{\"role\": \"service_role\"}', true), "
                    "set_config('request.method', 'POST', true), "
                    "set_config('request.path', %s, true), "
                    "set_config('request.headers', %s, true), "
                    "set_config('statement_timeout', %s, true)")


class DirectDatabase:
    def __init__(self, url: str, timeout: float, pool_size: int):
        self._url, self._timeout, self._size = url, timeout, max(1, pool_size)
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, tuple[str, ...]], bytes] = {}

    def _get_pool(self) -> ConnectionPool:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # autocommit: psycopg sends no BEGIN; the one message of each call is its transaction.
                self._pool = ConnectionPool(
                    self._url, min_size=1, max_size=self._size, timeout=self._timeout, open=True,
                    name="payments-db", reconnect_timeout=60,
                    kwargs={"autocommit": True, "prepare_threshold": None,
                            "connect_timeout": max(1, round(self._timeout * 2)),
                            "application_name": "koepon-payments"})
                self._pid = os.getpid()
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    def _call(self, conn: psycopg.Connection, name: str, keys: tuple[str, ...]) -> bytes:
        """The message's text for this function and these argument names, rendered once (quoting
        identifiers costs more than the call's other Python: py-spy)."""
        stmt = self._calls.get((name, keys))
        if stmt is None:
            args = sql.SQL(", ").join(sql.SQL("{} => %s").format(sql.Identifier(k)) for k in keys)
            stmt = (_SETTINGS + sql.SQL("; select {}.{}({})").format(
                sql.Identifier("public"), sql.Identifier(name), args)).as_bytes(conn)
            if len(self._calls) < 256:
                self._calls[(name, keys)] = stmt
        return stmt

    def rpc(self, name: str, **params):
        keys = tuple(params)
        values = [Jsonb(v) if isinstance(v, (dict, list)) else v for v in params.values()]
        request_id = g.get("request_id") if has_request_context() else None
        headers = json.dumps({"x-request-id": request_id} if request_id else {})
        settings = [f"/rpc/{name}", headers, f"{max(1, int(self._timeout * 1000))}ms"]
        if _text_with_nul(values):
            # psycopg refuses a NUL before sending. PostgREST sends an RPC's arguments as one JSON
            # body, where PostgreSQL refuses "\u0000" in a text argument with 22P05: that answer, so
            # both transports decide (and word) it alike.
            raise error_for(name, "22P05", "unsupported Unicode escape sequence",
                            "\\u0000 cannot be converted to text.", None)
        try:
            with self._get_pool().connection() as conn:
                cur = ClientCursor(conn)
                cur.execute(self._call(conn, name, keys), [*settings, *values])
                cur.nextset()  # past the settings' row, to the call's
                row = cur.fetchone()
        except PoolTimeout as exc:
            log.warning("rpc %s: no database connection within %.1f s", name, self._timeout)
            raise Unavailable(f"no database connection: {exc}") from exc
        except psycopg.Error as exc:
            diag = exc.diag
            if exc.sqlstate is None:
                # No SQLSTATE: the connection failed or broke (the server, the pooler or the network).
                log.warning("rpc %s: database unreachable: %s", name, exc)
                raise Unavailable(str(exc).strip() or type(exc).__name__) from exc
            raise error_for(name, exc.sqlstate, diag.message_primary, diag.message_detail,
                            diag.message_hint) from exc
        except OSError as exc:
            log.warning("rpc %s: database unreachable: %s", name, exc)
            raise Unavailable(str(exc) or type(exc).__name__) from exc
        return row[0] if row else None


def _text_with_nul(values: list) -> bool:
    return any(isinstance(v, str) and "\x00" in v for v in values)
