"""Training: catalog snapshot → fitted RelatedModel → top-100 for every story → new version.

The slow part of serving (ranking a catalog story) is done here, once per story, so that a
request by URL is a lookup; only articles the model has not seen are scored at request time.
After an import that changed little, the train is incremental (`recommender.incremental`):
the current version's fitted parts are kept and only the stories the import reaches are
ranked again.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import artifact, incremental, settings
from .artifact import TOP_K
from .catalog import Catalog, Snapshot
from .model import Ranking, RelatedModel


def fingerprint(snapshot: Snapshot) -> str:
    """Identifies the catalog state a model was trained on (stories, links, import counter)."""
    h = hashlib.sha256()
    h.update(snapshot.ids.tobytes())
    h.update(np.stack([snapshot.link_src, snapshot.link_dst]).tobytes())
    h.update(str(snapshot.max_seq).encode())
    return h.hexdigest()[:16]


def train(catalog: Catalog, models_dir: Path, params: dict | None = None,
          progress: bool = False, full: bool = False,
          config: Mapping[str, Any] | None = None) -> dict:
    """Train on the whole catalog and publish the result as the current version: grown from
    the current version when the catalog changed little since (the settings in `config` or
    the environment say how little), else, or with `full`, fitted anew."""
    started = time.perf_counter()
    snapshot = catalog.snapshot()
    models_dir = Path(models_dir)
    # Every core, and progress bars when asked: neither changes the model (the manifest
    # records them with the rest).
    model = RelatedModel.from_params(
        {"n_jobs": os.cpu_count() or 1, "verbose": progress, **(params or {})})
    plan = incremental.plan(
        snapshot, models_dir, model, full=full,
        max_changed=settings.get("incremental_max_changed", config=config),
        max_new_terms=settings.get("incremental_max_new_terms", config=config),
        full_train_days=settings.get("full_train_days", config=config))
    if plan.incremental:
        assert plan.previous is not None and plan.fresh is not None
        previous = plan.previous
        run = {k: v for k, v in model.get_params(deep=False).items()
               if k in incremental.RUN_PARAMS}
        model = previous.model.grown(snapshot, plan.fresh).set_params(**run)
        reach = np.load(previous.path / incremental.REACH_FILE)
        rows = np.flatnonzero(incremental.affected(previous.model, model, reach, plan.fresh))
        fitted = time.perf_counter()
        ranking = _merged(previous, reach, rows, model.rank_rows(rows, k=TOP_K), len(snapshot))
        lineage = previous.manifest.get("train", {})
        kind = {"kind": "incremental", "grew_from": previous.version,
                "full": lineage.get("full") or {"version": previous.version,
                                                "created": previous.manifest["created"]}}
    else:
        model.fit(snapshot)
        fitted = time.perf_counter()
        rows = np.arange(len(snapshot))
        ranking = model.rank_rows(rows, k=TOP_K)
        kind = {"kind": "full"}
    ranked = time.perf_counter()
    info = {
        "catalog": {"id": snapshot.catalog_id, "fingerprint": fingerprint(snapshot),
                    "max_seq": snapshot.max_seq},
        "counts": {"stories": len(snapshot), "links": int(len(snapshot.link_src)),
                   "curated_lists": int(len(np.unique(snapshot.link_src))),
                   "training_pairs": int(model.n_training_pairs_),
                   "training_positives": int(model.n_training_positives_),
                   "judgements": model.n_judged_},
        "train": {**kind, "reason": plan.reason, "ranked": int(len(rows))},
        "training": {"candidate_recall": round(float(model.candidate_recall_), 4),
                     "fit_seconds": round(fitted - started, 2),
                     "precompute_seconds": round(ranked - fitted, 2)},
        "top_k": TOP_K,
    }
    assert ranking.reach is not None  # every ranking without a filter records its reach
    keep = {incremental.REACH_FILE: ranking.reach,
            incremental.DIGESTS_FILE: (plan.digests if plan.digests is not None
                                       else incremental.digests(snapshot))}
    return artifact.publish(models_dir, model, ranking.rows, ranking.scores, info, keep)


def _merged(previous: artifact.Artifact, reach: np.ndarray, rows: np.ndarray,
            ranked: Ranking, n: int) -> Ranking:
    """The previous version's rankings, with `rows` ranked again (new rows among them)."""
    n_old, k = previous.top_rows.shape
    out = Ranking(np.full((n, k), -1, dtype=np.int64), np.full((n, k), -np.inf, np.float32),
                  np.zeros((n, reach.shape[1]), dtype=np.float32))
    out.rows[:n_old], out.scores[:n_old], out.reach[:n_old] = \
        previous.top_rows, previous.top_scores, reach
    out.rows[rows], out.scores[rows], out.reach[rows] = ranked.rows, ranked.scores, ranked.reach
    return out
