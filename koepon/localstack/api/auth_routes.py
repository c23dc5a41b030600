"""`/auth/v1/*`: which GoTrue endpoint a request is, and the HTTP answer (JSON, 204 or GoTrue's
303 redirect for links opened from e-mail)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .auth import AuthError
from .auth_flows import client_meta
from .errors import ApiError


def _json(status: int, body, headers: dict | None = None) -> Response:
    if body is None:
        return Response(b"", status_code=status, headers=headers or {})
    return Response(orjson.dumps(body), status_code=status, headers=headers or {}, media_type="application/json")


def _redirect_to(request: Request) -> str | None:
    """GoTrue's getRedirectTo: a `redirect_to` header, else the query parameter."""
    return request.headers.get("redirect_to") or request.query_params.get("redirect_to")


async def _claims(api, request: Request) -> dict:
    try:
        _role, claims = api.identify(request)
    except ApiError as exc:
        raise AuthError(401, "bad_jwt", exc.message) from exc
    return claims


async def _user_claims(api, request: Request) -> dict:
    claims = await _claims(api, request)
    if not claims.get("sub"):
        raise AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token")
    return claims


async def _body(api, request: Request):
    raw = await api.body(request)
    return api.parse_json(raw) if raw.strip() else {}


async def _flow_body(api, request: Request, go_type: str) -> dict:
    """A body of the e-mail flows and the admin API: a JSON object without NUL characters (which no
    address, code or token holds, and PostgreSQL's text cannot store)."""
    from .auth import _has_nul

    body = auth_object(await _body(api, request), go_type)
    if _has_nul(body):
        raise AuthError(400, "validation_failed", "The request must not contain NUL characters")
    return body


async def handle(api, request: Request, client_ip: str | None) -> Response:
    client_meta.set((client_ip, request.headers.get("user-agent")))
    auth = api.auth
    action = request.path_params["action"].strip("/")
    method = request.method
    if action == "signup" and method == "POST":
        return _json(200, await auth.signup(await _body(api, request), client_ip, _redirect_to(request)))
    if action == "token" and method == "POST":
        grant = request.query_params.get("grant_type")
        body = await _body(api, request)
        if grant == "password":
            return _json(200, await auth.password_grant(body, client_ip))
        if grant == "refresh_token":
            return _json(200, await auth.refresh_grant(body))
        if grant == "pkce":
            from .auth import _has_nul

            body = auth_object(body, "api.PKCEGrantParams")
            if _has_nul(body):  # no code or verifier holds one; PostgreSQL's text cannot
                raise AuthError(400, "validation_failed", "The request must not contain NUL characters")
            return _json(200, await auth.flows.pkce_grant(body))
        raise AuthError(400, "validation_failed", "unsupported_grant_type")
    if action == "verify" and method == "GET":
        location = await auth.flows.verify_get(dict(request.query_params), request.headers.get("referer"))
        return RedirectResponse(location, status_code=303)
    if action == "verify" and method == "POST":
        return _json(200, await auth.flows.verify_post(await _flow_body(api, request, "api.VerifyParams")))
    if action == "recover" and method == "POST":
        return _json(200, await auth.flows.recover(await _flow_body(api, request, "api.RecoverParams"),
                                                   _redirect_to(request)))
    if action in ("otp", "magiclink") and method == "POST":
        return _json(200, await auth.flows.otp(await _flow_body(api, request, "api.OtpParams"),
                                               _redirect_to(request), magiclink_endpoint=action == "magiclink"))
    if action == "resend" and method == "POST":
        body = await _flow_body(api, request, "api.ResendConfirmationParams")
        return _json(200, await auth.flows.resend(body, _redirect_to(request)))
    if action == "reauthenticate" and method == "GET":
        return _json(200, await auth.flows.reauthenticate(await _user_claims(api, request)))
    if action == "settings" and method == "GET":
        return _json(200, settings(auth.config))
    if action == "invite" and method == "POST":
        auth.admin.require_admin(await _claims(api, request))
        body = await _flow_body(api, request, "api.InviteParams")
        return _json(200, await auth.admin.invite(body, _redirect_to(request)))
    if action.startswith("admin/"):
        return await _admin(api, request, action.removeprefix("admin/"))
    if action in ("user", "logout"):
        claims = await _user_claims(api, request)
        if action == "logout" and method == "POST":
            await auth.logout(claims, request.query_params.get("scope"))
            return _json(204, None)
        if action == "user" and method == "GET":
            return _json(200, await auth.get_user(claims))
        if action == "user" and method == "PUT":
            return _json(200, await auth.update_user(claims, await _body(api, request), _redirect_to(request)))
    raise AuthError(404, "not_found", "Not found")


async def _admin(api, request: Request, rest: str) -> Response:
    admin = api.auth.admin
    admin.require_admin(await _claims(api, request))
    method = request.method
    if rest == "users" and method == "GET":
        body, headers = await admin.list_users(dict(request.query_params), str(request.url))
        return _json(200, body, headers)
    if rest == "users" and method == "POST":
        return _json(200, await admin.create_user(await _flow_body(api, request, "api.AdminUserParams")))
    if rest == "generate_link" and method == "POST":
        body = await _flow_body(api, request, "api.GenerateLinkParams")
        return _json(200, await admin.generate_link(body, _redirect_to(request)))
    if rest.startswith("users/") and "/" not in rest.removeprefix("users/"):
        user_id = rest.removeprefix("users/")
        if method == "GET":
            return _json(200, await admin.get_user(user_id))
        if method == "PUT":
            return _json(200, await admin.update_user(user_id, await _flow_body(api, request, "api.AdminUserParams")))
        if method == "DELETE":
            body = await _flow_body(api, request, "api.adminUserDeleteParams")
            return _json(200, await admin.delete_user(user_id, body))
    raise AuthError(404, "not_found", "Not found")


def auth_object(body, go_type: str) -> dict:
    from .auth import _object

    return _object(body, go_type)


def settings(config) -> dict:
    """GoTrue's GET /settings for this configuration (e-mail is the one provider)."""
    providers = ("anonymous_users", "apple", "azure", "bitbucket", "discord", "facebook", "snapchat", "figma",
                 "fly", "github", "gitlab", "google", "keycloak", "kakao", "linkedin", "linkedin_oidc", "notion",
                 "spotify", "slack", "slack_oidc", "workos", "twitch", "twitter", "email", "phone", "zoom")
    return {"external": {p: p == "email" for p in providers}, "disable_signup": not config.enable_signup,
            "mailer_autoconfirm": config.mailer_autoconfirm, "phone_autoconfirm": False, "sms_provider": "",
            "saml_enabled": False, "saml_private_key_next_configured": False, "passkeys_enabled": False}
