"""The one Recommender a process serves from, created on first use per app."""

from __future__ import annotations

import threading
from pathlib import Path

from flask import current_app

from recommender.recommend import Recommender

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
                                  reverify_seconds=config["REVERIFY_SECONDS"])
                current_app.extensions["recommender"] = rec
    return rec
