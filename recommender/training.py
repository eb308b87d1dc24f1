"""Training: catalog snapshot → fitted RelatedModel → top-100 for every story → new version.

The slow part of serving (ranking a catalog story) is done here, once per story, so that a
request by URL is a lookup; only articles the model has not seen are scored at request time.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from . import artifact
from .artifact import TOP_K
from .catalog import Catalog, Snapshot
from .model import RelatedModel


def fingerprint(snapshot: Snapshot) -> str:
    """Identifies the catalog state a model was trained on (stories, links, import counter)."""
    h = hashlib.sha256()
    h.update(snapshot.ids.tobytes())
    h.update(np.stack([snapshot.link_src, snapshot.link_dst]).tobytes())
    h.update(str(snapshot.max_seq).encode())
    return h.hexdigest()[:16]


def train(catalog: Catalog, models_dir: Path, params: dict | None = None,
          progress: bool = False) -> dict:
    """Train on the whole catalog and publish the result as the current version."""
    started = time.perf_counter()
    snapshot = catalog.snapshot()
    # Every core, and progress bars when asked: neither changes the model (the manifest
    # records them with the rest).
    model = RelatedModel.from_params(
        {"n_jobs": os.cpu_count() or 1, "verbose": progress, **(params or {})}).fit(snapshot)
    fitted = time.perf_counter()
    ranking = model.rank_rows(np.arange(len(snapshot)), k=TOP_K)
    ranked = time.perf_counter()
    info = {
        "catalog": {"id": snapshot.catalog_id, "fingerprint": fingerprint(snapshot),
                    "max_seq": snapshot.max_seq},
        "counts": {"stories": len(snapshot), "links": int(len(snapshot.link_src)),
                   "curated_lists": int(len(np.unique(snapshot.link_src))),
                   "training_pairs": int(model.n_training_pairs_),
                   "training_positives": int(model.n_training_positives_),
                   "judgements": model.n_judged_},
        "training": {"candidate_recall": round(float(model.candidate_recall_), 4),
                     "fit_seconds": round(fitted - started, 2),
                     "precompute_seconds": round(ranked - fitted, 2)},
        "top_k": TOP_K,
    }
    return artifact.publish(Path(models_dir), model, ranking.rows, ranking.scores, info)
