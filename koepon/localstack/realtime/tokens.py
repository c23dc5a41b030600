"""JWTs as Supabase Realtime checks them (lib/realtime_web/channels/auth/).

Same secret and HS256 as the local API, but Realtime's own rules: `role` and `exp` are required
(ChannelsAuthorization.authorize_conn), `exp` must be strictly in the future with no leeway
(JwtVerification's exp validator: `exp > current_time`), and the messages below are Realtime's.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

import jwt


class TokenError(Exception):
    """kind is Realtime's error atom; code its log code (the join reply's reason prefix)."""

    def __init__(self, kind: str, code: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}"


MISSING_CLAIMS = "Fields `role` and `exp` are required in JWT"


def verify(token, secret: str, now: float | None = None) -> dict:
    if not isinstance(token, str) or not token:
        raise TokenError("missing_api_key", "MissingAPIKey", "API key is missing")
    token = "".join(unquote(token).split())  # clean_token: URI-decode, drop whitespace
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError("token_malformed", "MalformedJWT", "The token provided is not a valid JWT") from exc
    if header.get("alg") not in ("HS256", "HS384", "HS512"):
        raise TokenError("error_generating_signer", "JwtSignerError",
                         "Failed to generate JWT signer, check your JWT secret or JWKS configuration")
    try:
        claims = jwt.decode(token, secret, algorithms=[header["alg"]],
                            options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                                     "verify_nbf": False, "verify_iss": False})
    except jwt.InvalidSignatureError as exc:
        raise TokenError("signature_error", "JwtSignatureError", "Failed to validate JWT signature") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("token_malformed", "MalformedJWT", "The token provided is not a valid JWT") from exc
    if not isinstance(claims, dict) or "role" not in claims or "exp" not in claims:
        raise TokenError("missing_claims", "InvalidJWTToken", MISSING_CLAIMS)
    exp = claims["exp"]
    if not isinstance(exp, int | float):
        raise TokenError("missing_claims", "InvalidJWTToken", MISSING_CLAIMS)
    current = int(now if now is not None else time.time())
    if not round(exp) > current:
        raise TokenError("expired_token", "InvalidJWTToken",
                         f"Token has expired {current - round(exp)} seconds ago")
    return claims


# The HTTP answer to a refused websocket upgrade (UserSocket.error_response).
CONNECT_ERRORS = {
    "missing_api_key": (401, "API key is missing"),
    "expired_token": (401, "Token has expired"),
    "missing_claims": (401, MISSING_CLAIMS),
    "token_malformed": (401, "The token provided is not a valid JWT"),
    "signature_error": (401, "Failed to validate JWT signature"),
    "error_generating_signer": (401, "Failed to generate JWT signer, check your JWT secret or JWKS configuration"),
}
