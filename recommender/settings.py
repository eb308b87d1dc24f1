"""Where things live: flags win, then environment variables, then defaults under the cwd.

The CLI and the web app read locations through these functions only, so the two shells
always agree on which catalog and which models directory they mean.
"""

from __future__ import annotations

import os
from pathlib import Path


def instance_dir() -> Path:
    """Per-deployment state (catalog, evaluation reports), like Flask's instance folder."""
    return Path(os.environ.get("RECOMMENDER_INSTANCE") or "instance")


def catalog_location(flag: str | None = None) -> str:
    return flag or os.environ.get("RECOMMENDER_CATALOG") or str(instance_dir() / "catalog.sqlite3")


def models_dir(flag: str | None = None) -> Path:
    return Path(flag or os.environ.get("RECOMMENDER_MODELS") or "models")
