"""The database, reached only through the Supabase API with the service-role key.

`Database.rpc(name, **params)` calls `public.<name>` with the real `supabase` client. An error
the SQL raised on purpose (SQLSTATE PTxyz) becomes `RpcError(status=xyz, code=<snake_case>)`;
anything else (API or database unreachable, timeout, unexpected error) becomes `Unavailable`,
which the service answers with 503 so providers retry.
"""

from __future__ import annotations

import logging
import re

import httpx
from postgrest.exceptions import APIError

from supabase import ClientOptions, create_client

log = logging.getLogger("webhooks.db")
_PT = re.compile(r"^PT([1-5]\d\d)$")


class RpcError(Exception):
    def __init__(self, status: int, code: str, detail: str | None):
        super().__init__(f"{code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


class Unavailable(Exception):
    """The API or the database did not answer (in time): try again later."""


class Database:
    def __init__(self, url: str, service_role_key: str, timeout: float):
        self._client = create_client(url, service_role_key, options=ClientOptions(
            auto_refresh_token=False, persist_session=False, postgrest_client_timeout=httpx.Timeout(timeout),
            postgrest_client_retry=False))

    def rpc(self, name: str, **params):
        try:
            return self._client.rpc(name, params).execute().data
        except APIError as exc:
            m = _PT.match(exc.code or "")
            if m:
                raise RpcError(int(m.group(1)), exc.message or "error", exc.details) from exc
            log.warning("rpc %s failed: %s %s", name, exc.code, exc.message)
            raise Unavailable(f"{exc.code}: {exc.message}") from exc
        except (httpx.HTTPError, OSError) as exc:
            log.warning("rpc %s: API unreachable: %s", name, exc)
            raise Unavailable(str(exc) or type(exc).__name__) from exc
