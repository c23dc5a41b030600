"""Reward downloads: the one place a signed URL for a reward object is made.

Fans have no Storage read on reward objects, because Storage (hosted Supabase Storage too) signs
whatever lifetime its caller asks for. This endpoint calls `request_download` through the API AS
THE FAN, with their own access token, so the database's rules apply unchanged (owner, not
revoked, 3 per reward per JST day, suspended accounts, rate limits, the download log), and then
signs that one object with the service role for a fixed, short lifetime. Nobody can ask for more.
"""

from __future__ import annotations

import logging
import re
import uuid
from urllib.parse import quote

import httpx
from flask import Blueprint, current_app, jsonify, request

from ..auth import caller
from ..db import Unavailable
from ..errors import Problem

bp = Blueprint("downloads", __name__, url_prefix="/payments")
log = logging.getLogger("webhooks.downloads")

# The lifetime of every signed reward URL, in seconds. A refund stops downloads authorised before
# it within this time at most (request_download refuses revoked rewards at once).
URL_SECONDS = 60
_PT = re.compile(r"^PT([1-5]\d\d)$")
_http = httpx.Client(timeout=10)


def as_fan(cfg, token: str, fn: str, args: dict) -> dict:
    """`public.<fn>` with the fan's own token (role authenticated, RLS, pre-request hook); a refusal
    becomes a Problem with the database's own code and HTTP status."""
    headers = {"apikey": cfg.supabase_service_role_key, "Authorization": f"Bearer {token}",
               "Content-Type": "application/json"}
    # The fan's user agent goes into the download log, as if they had called the API.
    if request.headers.get("User-Agent"):
        headers["User-Agent"] = request.headers["User-Agent"][:500]
    try:
        r = _http.post(f"{cfg.supabase_url}/rest/v1/rpc/{fn}", headers=headers, json=args)
    except httpx.HTTPError as exc:
        raise Unavailable(str(exc) or type(exc).__name__) from exc
    if r.status_code < 300:
        return r.json()
    try:
        err = r.json()
    except ValueError:
        err = {}
    code = str(err.get("code") or "")
    m = _PT.match(code)
    if m:
        raise Problem(int(m.group(1)), err.get("message") or "error", err.get("details") or "")
    if r.status_code == 401:  # PostgREST's own refusal of the token (expired, ...)
        raise Problem(401, "invalid_token", err.get("message") or "the access token is not valid")
    if 400 <= r.status_code < 500:
        raise Problem(r.status_code, "request_refused", err.get("message") or r.text[:200])
    raise Unavailable(f"{fn}: HTTP {r.status_code}")


def sign(cfg, bucket: str, path: str) -> str:
    key = cfg.supabase_service_role_key
    try:
        r = _http.post(f"{cfg.supabase_url}/storage/v1/object/sign/{quote(bucket)}/{quote(path)}",
                       headers={"apikey": key, "Authorization": f"Bearer {key}"}, json={"expiresIn": URL_SECONDS})
    except httpx.HTTPError as exc:
        raise Unavailable(str(exc) or type(exc).__name__) from exc
    if r.status_code != 200:
        log.error("signing %s/%s failed: HTTP %s %s", bucket, path, r.status_code, r.text[:200])
        raise Problem(404, "reward_content_missing", "the reward's file is not in Storage")
    return f"{cfg.supabase_url}/storage/v1{r.json()['signedURL']}"


@bp.post("/rewards/<user_reward_id>/download")
def download(user_reward_id: str):
    caller()  # a valid user access token, or 401 before anything is asked
    try:
        user_reward_id = str(uuid.UUID(user_reward_id))
    except ValueError as exc:
        raise Problem(400, "invalid_user_reward_id", "user_reward_id must be a UUID") from exc
    token = request.headers["Authorization"].partition(" ")[2].strip()
    cfg = current_app.extensions["koepon"].config
    dl = as_fan(cfg, token, "request_download", {"p_user_reward_id": user_reward_id})
    url = sign(cfg, dl["bucket"], dl["path"])
    return jsonify({**dl, "signed_url": url, "expires_in": URL_SECONDS}), 200
