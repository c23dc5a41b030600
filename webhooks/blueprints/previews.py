"""Reveal previews: the media of an order's results while the fan watches them turn over.

Not a download (nothing is counted against the 3-per-day limit, nothing is logged as one). The
database decides what may be previewed (`request_reveal_previews`, called AS THE FAN with their own
token: their own fulfilled order, for 15 minutes after it was fulfilled, rewards not revoked);
this endpoint only signs those objects with the service role for the same fixed minute as
downloads, because fans cannot sign reward objects themselves (Storage signs any lifetime).
"""

from __future__ import annotations

import uuid

from flask import Blueprint, current_app, jsonify, request

from ..auth import caller
from ..errors import Problem
from .downloads import URL_SECONDS, as_fan, sign

bp = Blueprint("previews", __name__, url_prefix="/payments")


@bp.post("/orders/<order_id>/previews")
def previews(order_id: str):
    caller()  # a valid user access token, or 401 before anything is asked
    try:
        order_id = str(uuid.UUID(order_id))
    except ValueError as exc:
        raise Problem(400, "invalid_order_id", "order_id must be a UUID") from exc
    token = request.headers["Authorization"].partition(" ")[2].strip()
    cfg = current_app.extensions["koepon"].config
    res = as_fan(cfg, token, "request_reveal_previews", {"p_order_id": order_id})
    urls: dict[tuple[str, str], str] = {}  # one signature per object: a 10-pull often repeats an item
    for p in res["previews"]:
        key = (p["bucket"], p["path"])
        if key not in urls:
            urls[key] = sign(cfg, *key)
        p["signed_url"] = urls[key]
    return jsonify({**res, "expires_in": URL_SECONDS}), 200
