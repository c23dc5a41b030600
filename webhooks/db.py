"""The database through the Supabase API with the service-role key (without PAYMENTS_DATABASE_URL;
with it, webhooks/db_direct.py calls the same functions over a pooled PostgreSQL connection and
decides its errors with `error_for` below, the same way).

`Database.rpc(name, **params)` calls `public.<name>` with the real `supabase` client and decides,
from the SQLSTATE the API reports, whether trying again can ever help:

  * PTxyz: an error the SQL raised on purpose -> `RpcError(status=xyz, code=<snake_case>)`.
  * permanent: the request as sent can never succeed, whoever retries it and whenever
    (classes 21 cardinality, 22 data exception -- e.g. 22P05, a \\u0000 PostgreSQL cannot store --,
    23 integrity constraint, 54 program limit exceeded) -> `RpcError(400|409, ...)`. A webhook
    answers such a verified event so that the provider stops (see blueprints/_inbox.py).
  * transient: the same request can succeed later (08 connection, 40 serialization failure or
    deadlock, 53 insufficient resources, 55 lock not available, 57 statement timeout or shutdown,
    58 system error, PostgREST's PGRST000-PGRST003 connection errors, the API unreachable or
    slow) -> `Unavailable`, answered 503 with Retry-After so providers retry.
  * anything else (42 undefined function or privilege, XX internal error, a plain RAISE,
    PostgREST's own request errors): a fault of this deployment, not of the request; a fixed
    deployment makes the same request succeed -> `ServerFault`, answered 500 (logged as an error;
    providers keep retrying, which is what lets the fix catch up).

Every call carries the request's X-Request-Id to the API, which hands it to the database in
`request.headers` (PostgREST does the same), so audit rows can carry it.
"""

from __future__ import annotations

import logging
import re

import httpx
from flask import g, has_request_context
from postgrest.exceptions import APIError

from supabase import ClientOptions, create_client

log = logging.getLogger("webhooks.db")
_PT = re.compile(r"^PT([1-5]\d\d)$")

# SQLSTATE class (first two characters) -> (HTTP status, stable code) for errors that no retry cures.
PERMANENT = {"21": (400, "invalid_input"), "22": (400, "invalid_input"), "23": (409, "constraint_violation"),
             "54": (400, "input_too_complex")}
TRANSIENT = {"08", "40", "53", "55", "57", "58"}
# PostgREST's own codes for "could not reach / connect to the database".
TRANSIENT_PGRST = {"PGRST000", "PGRST001", "PGRST002", "PGRST003"}


class RpcError(Exception):
    def __init__(self, status: int, code: str, detail: str | None, sqlstate: str | None = None,
                 hint: str | None = None):
        super().__init__(f"{code}: {detail}")
        self.status, self.code, self.detail, self.sqlstate = status, code, detail, sqlstate
        # rate_limited says when to come back in its hint ("retry after N seconds").
        m = re.search(r"retry after (\d+) seconds", hint or "")
        self.retry_after = int(m.group(1)) if m else None


class Unavailable(Exception):
    """The API or the database did not answer (in time), or answered "try again": transient."""


class ServerFault(Exception):
    """The deployment (not the request) is wrong: an unexpected SQLSTATE from our own SQL."""

    def __init__(self, sqlstate: str | None, message: str | None):
        super().__init__(f"{sqlstate}: {message}")
        self.sqlstate = sqlstate


def classify(sqlstate: str | None) -> str:
    """'pt', 'permanent', 'transient' or 'fault' for a SQLSTATE (or PostgREST code) the API reported."""
    code = sqlstate or ""
    if _PT.match(code):
        return "pt"
    if code in TRANSIENT_PGRST or not code:
        # No code at all: a gateway or proxy answered instead of the API (502/504 pages).
        return "transient"
    if code.startswith("PGRST"):
        return "fault"
    if code[:2] in PERMANENT:
        return "permanent"
    if code[:2] in TRANSIENT:
        return "transient"
    return "fault"


class Database:
    def __init__(self, url: str, service_role_key: str, timeout: float):
        self._client = create_client(url, service_role_key, options=ClientOptions(
            auto_refresh_token=False, persist_session=False, postgrest_client_timeout=httpx.Timeout(timeout),
            postgrest_client_retry=False))

    def close(self) -> None:
        """Nothing to release: the API client holds no database connection (see db_direct.py)."""

    def rpc(self, name: str, **params):
        call = self._client.rpc(name, params)
        request_id = g.get("request_id") if has_request_context() else None
        if request_id:
            # The builder's headers are this call's own copy: safe across threads.
            call.request.headers["X-Request-Id"] = request_id
        try:
            return call.execute().data
        except APIError as exc:
            raise error_for(name, exc.code, exc.message, exc.details, exc.hint) from exc
        except (httpx.HTTPError, OSError) as exc:
            log.warning("rpc %s: API unreachable: %s", name, exc)
            raise Unavailable(str(exc) or type(exc).__name__) from exc


def error_for(name: str, code: str | None, message: str | None, details: str | None,
              hint: str | None) -> Exception:
    """The exception that says what an error the database (or the API) reported means for the caller; the one place
    both transports (this API client and webhooks/db_direct.py) decide it, so a provider gets the
    same answer whichever carried the call."""
    kind = classify(code)
    if kind == "pt":
        return RpcError(int(code[2:]), message or "error", details, code, hint)
    if kind == "permanent":
        status, stable = PERMANENT[code[:2]]
        log.warning("rpc %s refused for good: %s %s", name, code, message)
        return RpcError(status, stable, f"{code}: {message}", code)
    if kind == "transient":
        log.warning("rpc %s failed, retry later: %s %s", name, code, message)
        return Unavailable(f"{code}: {message}")
    log.error("rpc %s failed: %s %s", name, code, message)
    return ServerFault(code, message)
