"""Who is calling: the Supabase access token (HS256, signed with the project's JWT secret)."""

from __future__ import annotations

import uuid

import jwt
from flask import current_app, request

from .errors import Problem


def caller() -> str:
    """The signed-in user's id, from `Authorization: Bearer <access token>`; 401 otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "not_authenticated", "sign in: send Authorization: Bearer <access token>")
    secret = current_app.extensions["koepon"].config.supabase_jwt_secret
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience="authenticated",
                            options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as exc:
        raise Problem(401, "invalid_token", f"the access token is not valid: {exc}") from exc
    if claims.get("role") != "authenticated":
        raise Problem(401, "not_authenticated", "a signed-in user's access token is required")
    try:
        return str(uuid.UUID(claims["sub"]))
    except ValueError as exc:
        raise Problem(401, "invalid_token", "the token's subject is not a user id") from exc
