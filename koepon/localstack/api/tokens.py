"""HS256 JWTs as PostgREST checks them (30 s leeway) and as GoTrue/Storage sign them."""

from __future__ import annotations

import time

import jwt

from .errors import jwt_error

LEEWAY = 30


class JwtVerifier:
    """Verifies bearer tokens; caches the verified claims of recently seen tokens."""

    def __init__(self, secret: str, cache_size: int = 4096):
        self.secret = secret
        self._cache: dict[str, dict] = {}
        self._cache_size = cache_size

    def claims(self, token: str) -> dict:
        cached = self._cache.get(token)
        if cached is None:
            cached = self._decode(token)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[token] = cached
        self._check_times(cached)
        return cached

    def _decode(self, token: str) -> dict:
        if token.count(".") != 2:
            raise jwt_error("PGRST301", f"Expected 3 parts in JWT; got {token.count('.') + 1}")
        # One pass over the token (header, claims and signature): PyJWT checks every character of
        # every segment in Python, so reading the header first and then decoding doubled a
        # verification that costs more than the rest of a request's Python.
        try:
            decoded = jwt.decode_complete(token, self.secret, algorithms=["HS256"],
                                          options={"verify_signature": True, "verify_exp": False,
                                                   "verify_nbf": False, "verify_iat": False,
                                                   "verify_aud": False, "verify_iss": False})
        except jwt.InvalidAlgorithmError as exc:  # none, HS384, RS256, … or no alg at all
            raise jwt_error("PGRST301", "Wrong or unsupported encoding algorithm") from exc
        except jwt.InvalidSignatureError as exc:
            raise jwt_error("PGRST301", "No suitable key or wrong key type") from exc
        except jwt.PyJWTError as exc:
            raise jwt_error("PGRST301", "JWT cryptographic operation failed") from exc
        if decoded["header"].get("alg") != "HS256":
            raise jwt_error("PGRST301", "Wrong or unsupported encoding algorithm")
        claims = decoded["payload"]
        if not isinstance(claims, dict):
            raise jwt_error("PGRST303", "Parsing claims failed")
        for key in ("exp", "nbf", "iat"):
            if key in claims and not isinstance(claims[key], int | float):
                raise jwt_error("PGRST303", "Parsing claims failed")
        role = claims.get("role")
        if role is not None and not isinstance(role, str):
            raise jwt_error("PGRST303", "Parsing claims failed")
        return claims

    @staticmethod
    def _check_times(claims: dict) -> None:
        now = time.time()
        exp = claims.get("exp")
        if exp is not None and now - LEEWAY > exp:
            raise jwt_error("PGRST303", "JWT expired")
        nbf = claims.get("nbf")
        if nbf is not None and now + LEEWAY < nbf:
            raise jwt_error("PGRST303", "JWT not yet valid")
        iat = claims.get("iat")
        if iat is not None and now + LEEWAY < iat:
            raise jwt_error("PGRST303", "JWT issued at future")


def sign(claims: dict, secret: str) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_strict(token: str, secret: str) -> dict:
    """For Auth and Storage: signature and exp (no leeway beyond PyJWT's default)."""
    return jwt.decode(token, secret, algorithms=["HS256"],
                      options={"verify_aud": False, "require": ["exp"]})
