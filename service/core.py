"""The one Recommender a process serves from: a Flask extension in flaskr's shape.

`init_app` registers the teardown that gives a request's catalog connection back when the
request ends (flaskr's `close_db`); the Recommender itself is created on first use, after
gunicorn forks its workers, so each worker loads (memory-maps) its own model.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from pathlib import Path

from flask import Flask, current_app

from recommender.recommend import Recommender, SharedAnswers

_create = threading.Lock()


def recommender() -> Recommender:
    rec = current_app.extensions.get("recommender")
    if rec is None:
        with _create:  # concurrent first requests must not each load the model
            rec = current_app.extensions.get("recommender")
            if rec is None:
                config = current_app.config
                rec = Recommender(config["CATALOG"], Path(config["MODELS"]),
                                  cache_size=config["ANSWER_CACHE"],
                                  reverify_seconds=config["REVERIFY_SECONDS"],
                                  story_cache_size=config["STORY_CACHE"],
                                  shared=SharedAnswers(config["ANSWER_CACHE_DIR"],
                                                       config["ANSWER_CACHE_MB"])
                                  if config["ANSWER_CACHE_DIR"] else None,
                                  idle_connections=config["THREADS"])
                current_app.extensions["recommender"] = rec
                atexit.register(_close, weakref.ref(rec))
    return rec


def _close(ref: weakref.ref) -> None:
    rec = ref()
    if rec is not None:
        rec.close()


def release_catalog(exc: BaseException | None = None) -> None:  # noqa: ARG001 - Flask's
    """The end of a request: its catalog connection goes back to the pool."""
    rec = current_app.extensions.get("recommender")
    if rec is not None:
        rec.release()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(release_catalog)
