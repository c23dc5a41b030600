"""PostgREST's error bodies and its SQLSTATE -> HTTP status mapping (v14)."""

from __future__ import annotations

import orjson


class ApiError(Exception):
    """An error answered as {code, message, details, hint} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, details: str | list | None = None,
                 hint: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = headers or {}

    def body(self) -> bytes:
        return orjson.dumps({"code": self.code, "details": self.details, "hint": self.hint,
                             "message": self.message})


def pgrst(status: int, code: str, message: str, details: str | None = None,
          hint: str | None = None) -> ApiError:
    return ApiError(status, code, message, details, hint)


def jwt_error(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, None, None, {
        "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'})


def status_for(sqlstate: str, role_is_anon: bool, message: str = "") -> int:
    """HTTP status PostgREST answers for a PostgreSQL error (src/PostgREST/Error.hs)."""
    s = sqlstate or ""
    if s.startswith("PT") and len(s) == 5 and s[2:].isdigit():
        return int(s[2:])
    if s == "P0001":
        return 400
    if s.startswith("P0"):
        return 500
    if s == "42501":
        return 401 if role_is_anon else 403
    if s in ("23505", "23503"):
        return 409
    if s.startswith("23"):
        return 400
    if s == "25006":
        return 405
    if s in ("42883", "42P01"):
        return 404
    if s == "42P17":
        return 500
    if s == "22023":
        return 401 if ("role" in message and "does not exist" in message) else 400
    if s == "53400":
        return 500
    if s.startswith(("08", "53")):
        return 503
    if s == "57P01":  # admin_shutdown, also "terminating connection due to unexpected postmaster exit"
        return 503
    if s.startswith("57"):  # operator intervention (57014 query_canceled, …)
        return 500
    if s == "21000":
        return 400 if "requires a WHERE clause" in message else 500
    if s.startswith(("40", "25", "2D", "3B", "38", "39", "XX", "F0", "HV", "54", "55", "58")):
        return 500
    if s.startswith(("0L", "0P", "28")):
        return 403
    return 400


def from_pg(exc, role_is_anon: bool) -> ApiError:
    """The ApiError for a psycopg.Error raised by the database."""
    diag = exc.diag
    sqlstate = exc.sqlstate or ""
    message = diag.message_primary or str(exc)
    details = diag.message_detail
    hint = diag.message_hint
    if sqlstate == "PGRST":
        return _raised_pgrst(message, details)
    if sqlstate == "" and "NUL (0x00)" in str(exc):
        # psycopg refused a NUL byte in a text parameter before sending it: the client's data, not
        # the connection; PostgreSQL would have refused the same bytes as invalid UTF-8.
        return ApiError(400, "22021", 'invalid byte sequence for encoding "UTF8": 0x00')
    if sqlstate == "":
        return ApiError(503, "PGRST001", "Database client error. Retrying the connection.",
                        str(exc))
    status = status_for(sqlstate, role_is_anon, message)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return ApiError(status, sqlstate, message, details, hint, headers)


def _raised_pgrst(message: str, details: str | None) -> ApiError:
    bad = ApiError(500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" "
                   "error", f"Invalid JSON value for MESSAGE: '{message}'",
                   "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and "
                   "optional keys: 'details', 'hint'.")
    try:
        m = orjson.loads(message)
        d = orjson.loads(details) if details else {}
        if not isinstance(m, dict) or "code" not in m or "message" not in m:
            return bad
        if not isinstance(d, dict):
            return bad
        status = int(d.get("status", 400))
        headers = {str(k): str(v) for k, v in (d.get("headers") or {}).items()}
        det = m.get("details")
        hint = m.get("hint")
        return ApiError(status, str(m["code"]), str(m["message"]),
                        None if det is None else str(det), None if hint is None else str(hint),
                        headers)
    except (ValueError, TypeError):
        return bad
