"""Every refusal is JSON {code, message} with a stable snake_case code; never an HTML page."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from .db import RpcError, ServerFault, Unavailable
from .providers import ProviderError

log = logging.getLogger("webhooks")


class Problem(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def body(code: str, message: str | None):
    return {"code": code, "message": message}


def init_app(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem):
        return jsonify(body(exc.code, exc.message)), exc.status

    @app.errorhandler(RpcError)
    def _rpc(exc: RpcError):
        resp = jsonify(body(exc.code, exc.detail))
        if exc.status == 429:
            resp.headers["Retry-After"] = str(exc.retry_after or 60)
        return resp, exc.status

    @app.errorhandler(ServerFault)
    def _fault(exc: ServerFault):
        # Not the request's fault: a fixed deployment answers the same request (providers retry).
        return jsonify(body("server_error", f"the database refused the call ({exc.sqlstate})")), 500

    @app.errorhandler(Unavailable)
    def _unavailable(exc: Unavailable):
        resp = jsonify(body("database_unavailable", "the database could not be reached; try again"))
        resp.headers["Retry-After"] = "5"
        return resp, 503

    @app.errorhandler(ProviderError)
    def _provider(exc: ProviderError):
        return jsonify(body("provider_error", exc.message)), exc.status

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                400: "bad_request"}.get(exc.code or 500, "http_error")
        return jsonify(body(code, exc.description)), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return jsonify(body("internal_error", "unexpected error")), 500
