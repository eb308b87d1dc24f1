"""Every error the service answers, in one shape: JSON `{"error", "message"}`, never an
HTML page or a stack trace. Views and hooks raise (`fail`); the handlers registered here
write the response, so the status, its name and the body are decided in one place."""

from __future__ import annotations

from typing import NoReturn

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, default_exceptions

from recommender import database
from recommender.artifact import ArtifactError
from recommender.catalog import CatalogError


def name_of(status: int) -> str:
    """The error's name in a body: the status's own, in snake case ("bad_request")."""
    return default_exceptions[status]().name.lower().replace(" ", "_")


def body(status: int, message: str) -> dict:
    return {"error": name_of(status), "message": message}


def fail(status: int, message: str, close: bool = False) -> NoReturn:
    """Answer this request with `status` and `message`. `close`: the request's framing is
    lost, so nothing more is read from the connection."""
    exc = default_exceptions[status](description=message)
    exc.close_connection = close  # type: ignore[attr-defined]
    raise exc


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        message = exc.description or exc.name
        if exc.code == 413:
            limit = current_app.config["MAX_BODY"]
            size = f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
            message = f"request body too large (the limit is {size})"
        elif exc.code == 404 and request.blueprint is None and exc.description == \
                default_exceptions[404].description:
            message = f"no such endpoint: {request.path}"
        elif exc.code == 429:
            message = (f"rate limit exceeded ({exc.description}); retry after the seconds in "
                       "Retry-After")
        elif exc.code == 405:
            message = f"method {request.method} not allowed on {request.path}"
        response = jsonify(error=exc.name.lower().replace(" ", "_"), message=message)
        response.status_code = exc.code
        if getattr(exc, "valid_methods", None):  # a 405 says what is allowed
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        if getattr(exc, "close_connection", False):
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(ArtifactError)
    @app.errorhandler(CatalogError)
    def unavailable(exc: Exception):
        """No sound model of this catalog to serve, or no catalog: the one 503 of the API
        (the pages render their own, from the same exceptions)."""
        return jsonify(error="unavailable", message=str(exc)), 503

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if database.is_unavailable(exc):
            app.logger.warning("catalog unavailable on %s %s: %s", request.method,
                               request.path, exc)
            return jsonify(error="catalog_unavailable",
                           message="the catalog database did not answer; retry"), 503
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal_error", message="internal error; see the server log"), 500
