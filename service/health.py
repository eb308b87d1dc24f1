"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .core import recommender

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Alive: the process answers. Says nothing about the model or the catalog."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready: a verified model of this catalog is served and the catalog opens."""
    rec = recommender()  # not ready: the app's one 503 handler answers, naming why
    version = rec.artifact.version
    stories = rec.catalog.db.execute("SELECT COUNT(*) FROM stories").fetchone()[0]
    refused = rec.holder.refused  # versions this worker found damaged and will not serve
    return jsonify(status="ready", model=version, stories=stories, answers=dict(rec.answers),
                   **({"refused": refused} if refused else {}))
