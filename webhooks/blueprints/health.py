"""GET /health: the process answers (it does not touch the database: providers must not wait on it)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    cfg = current_app.extensions["koepon"].config
    return jsonify({"status": "ok", "stripe": "fake" if cfg.stripe_is_fake else "live",
                    "komoju": "fake" if cfg.komoju_is_fake else "live"})
