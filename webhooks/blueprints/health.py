"""GET /health: the process answers (it does not touch the database: providers must not wait on it).
GET /ready: the database answers through the API within the service's API timeout (0.8 s), so a
load balancer sends traffic only to instances that can record an event."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from ..db import RpcError, ServerFault, Unavailable

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    cfg = current_app.extensions["koepon"].config
    return jsonify({"status": "ok", "stripe": "fake" if cfg.stripe_is_fake else "live",
                    "komoju": "fake" if cfg.komoju_is_fake else "live"})


@bp.get("/ready")
def ready():
    svc = current_app.extensions["koepon"]
    started = time.perf_counter()
    try:
        svc.db.rpc("service_ping")
    except (Unavailable, ServerFault, RpcError) as exc:
        resp = jsonify({"status": "unavailable", "database": "unreachable", "reason": str(exc)[:200]})
        resp.headers["Retry-After"] = "5"
        return resp, 503
    return jsonify({"status": "ready", "database": "ok",
                    "database_ms": round((time.perf_counter() - started) * 1000, 1)})
