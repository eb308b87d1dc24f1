"""Evaluation: the trainer on a cold view of the catalog, scored against the curated lists.

The protocol, exactly:
1. Queries are the stories with a curated list of their own, sorted by (publishedDateTime,
   canonical URL); the newest round(n × fraction), at least one, are the test queries.
2. A model is trained from scratch on a view with the test queries' lists removed and every
   link pointing to a test query removed: test queries are cold, as if just published.
3. Every catalog story but the query itself is a candidate; the relevant set is its list.
4. Macro averages of recall@5/10/20, MRR and nDCG@10, for the model and, in the same run,
   for a plain TF-IDF cosine baseline and the time-aware peer (that cosine × a date decay).
With `folds` = N > 1, the newest `test_fraction` of the queries is cut into N consecutive
slices; fold i tests slice i, trained from scratch on what precedes it: the lists of slice i
and of every later slice, and every link pointing to them, are left out (later slices are
the future). The report gives each fold and the mean and spread over folds.
`models/current` is never read or written here.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from .candidates import DAY
from .catalog import Snapshot
from .graph import without
from .metrics import MRR_DEPTH, summarize
from .model import RelatedModel

DEPTH = MRR_DEPTH  # every ranking is cut at 100, the deepest any metric looks


@dataclass
class Split:
    test_rows: np.ndarray  # catalog rows of the test queries, oldest first
    n_queries: int
    view: Snapshot  # what training may see
    relevant: list[set[int]]  # each test query's curated list, as catalog rows


def make_split(snapshot: Snapshot, test_fraction: float = 0.2, fold: int = 0,
               folds: int = 1) -> Split:
    """The protocol's split; with `folds` > 1, fold `fold` of the rolling folds."""
    if not 0 < test_fraction < 1:
        raise ValueError("test fraction must be between 0 and 1")
    if not 0 <= fold < folds:
        raise ValueError("fold must be between 0 and folds - 1")
    queries = np.unique(snapshot.link_src)
    if len(queries) < 2:
        raise ValueError("evaluation needs at least two stories with curated lists")
    keys = [snapshot.keys[i] for i in queries]
    dates = [snapshot.published_text[i] or "" for i in queries]
    order = sorted(range(len(queries)), key=lambda i: (dates[i], keys[i]))
    queries = queries[order]
    n_test = min(max(1, round(len(queries) * test_fraction)), len(queries) - 1)
    if n_test < folds:
        raise ValueError(f"{n_test} test queries cannot make {folds} folds")
    span = np.array_split(queries[-n_test:], folds)
    test = span[fold]
    cold = np.zeros(len(snapshot), dtype=bool)
    cold[np.concatenate(span[fold:])] = True  # this slice, and the future
    keep = without(snapshot.link_src, snapshot.link_dst, cold)
    # No judgement touching a test query (or a later one) is seen either, as no link is.
    judged = without(snapshot.judged_src, snapshot.judged_dst, cold)
    view = dataclasses.replace(snapshot, link_src=snapshot.link_src[keep],
                               link_dst=snapshot.link_dst[keep],
                               link_pos=snapshot.link_pos[keep],
                               judged_src=snapshot.judged_src[judged],
                               judged_dst=snapshot.judged_dst[judged],
                               judged_belongs=snapshot.judged_belongs[judged])
    relevant = [set(snapshot.link_dst[snapshot.link_src == q].tolist()) for q in test]
    return Split(test_rows=test, n_queries=len(queries), view=view, relevant=relevant)


def rank_by_similarity(scores: np.ndarray, exclude: np.ndarray, k: int = DEPTH) -> np.ndarray:
    """Top-k columns per row of a dense score matrix, ties by column, `exclude[i]` left out."""
    scores = scores.astype(np.float64, copy=True)
    scores[np.arange(len(exclude)), exclude] = -np.inf
    k = min(k, scores.shape[1] - 1)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    out = []
    for i, cols in enumerate(part):
        cols = cols[np.lexsort((cols, -scores[i, cols]))]
        out.append(cols)
    return np.array(out)


DECAY_DAYS = 7.0  # the time-aware peers' decay: exp(-|gap in days| / 7)
UNDATED_FACTOR = 0.5  # ... and this factor when either story has no date


def date_decay(snapshot: Snapshot, rows: np.ndarray) -> np.ndarray:
    """rows × N factors exp(-|Δdays|/DECAY_DAYS): what a search engine's decay function on
    the publication date multiplies a text score by (UNDATED_FACTOR when a date is missing)."""
    days = snapshot.published / DAY
    gap = np.abs(days[rows][:, None] - days[None, :])
    return np.where(np.isnan(gap), UNDATED_FACTOR, np.exp(-np.nan_to_num(gap) / DECAY_DAYS))


def tfidf_baseline(snapshot: Snapshot, rows: np.ndarray, k: int = DEPTH,
                   decay: bool = False) -> np.ndarray:
    """The plain cosine baseline the protocol fixes: title + '. ' + excerpt, uni+bigrams;
    with `decay`, times `date_decay` (the time-aware peer `tfidf_date`)."""
    docs = [t + ". " + e for t, e in zip(snapshot.titles, snapshot.excerpts, strict=True)]
    X = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2),
                        stop_words="english").fit_transform(docs)
    out = []
    for start in range(0, len(rows), 256):
        batch = rows[start:start + 256]
        scores = (X[batch] @ X.T).toarray()
        if decay:
            scores *= date_decay(snapshot, batch)
        out.append(rank_by_similarity(scores, batch, k))
    return np.concatenate(out) if out else np.empty((0, k), dtype=np.int64)


def _clean(ranked: np.ndarray) -> list[list[int]]:
    return [[int(c) for c in row if c >= 0] for row in ranked]


def evaluate(snapshot: Snapshot, test_fraction: float = 0.2, params: dict | None = None,
             progress: bool = False, folds: int = 1) -> dict:
    """Run the protocol; returns the report (metrics, baselines, counts, per-query details).
    With `folds` > 1: the mean over the rolling folds, each fold's report under "folds"."""
    if folds > 1:
        runs = [_evaluate(make_split(snapshot, test_fraction, i, folds), snapshot,
                          test_fraction, params, progress) for i in range(folds)]
        report = {key: runs[-1][key] for key in ("protocol", "params")}
        report["protocol"]["folds"] = folds
        report["counts"] = {**runs[-1]["counts"],
                            "test_queries": sum(r["counts"]["test_queries"] for r in runs)}
        for system in SYSTEMS:
            report[system] = _mean(r[system] for r in runs)
            report[system + "_spread"] = _spread(r[system] for r in runs)
        report["seconds"] = {k: round(sum(r["seconds"][k] for r in runs), 2)
                             for k in runs[0]["seconds"]}
        report["queries"] = [q for r in runs for q in r["queries"]]
        report["folds"] = [{k: r[k] for k in ("counts", *SYSTEMS)} for r in runs]
        return report
    return _evaluate(make_split(snapshot, test_fraction), snapshot, test_fraction, params,
                     progress)


SYSTEMS = ("model", "baseline", "baseline_date")  # what a report compares, in this order


def _mean(reports) -> dict:
    reports = list(reports)
    return {k: (np.mean([r[k] for r in reports], axis=0).round(6).tolist()
                if isinstance(reports[0][k], list) else round(float(np.mean(
                    [r[k] for r in reports])), 6)) for k in reports[0]}


def _spread(reports) -> dict:
    """Standard deviation over folds of each scalar metric."""
    reports = list(reports)
    return {k: round(float(np.std([r[k] for r in reports])), 6)
            for k in reports[0] if not isinstance(reports[0][k], list)}


def _evaluate(split: Split, snapshot: Snapshot, test_fraction: float, params: dict | None,
              progress: bool) -> dict:
    started = time.perf_counter()
    # Every core once the test set is large enough to pay for the workers (rank_rows decides).
    model = RelatedModel.from_params(
        {"n_jobs": os.cpu_count() or 1, "verbose": progress, **(params or {})}).fit(split.view)
    trained = time.perf_counter()
    ours = _clean(model.rank_rows(split.test_rows, k=DEPTH).rows)
    ranked = time.perf_counter()
    base = _clean(tfidf_baseline(snapshot, split.test_rows))
    base_date = _clean(tfidf_baseline(snapshot, split.test_rows, decay=True))
    per_query = []
    for i, q in enumerate(split.test_rows):
        rel = split.relevant[i]
        per_query.append({
            "id": int(snapshot.ids[q]),
            "curated": [int(snapshot.ids[c]) for c in sorted(rel)],
            "ours": [int(snapshot.ids[c]) for c in ours[i][:10]],
            "baseline": [int(snapshot.ids[c]) for c in base[i][:10]],
            "recall@10": round(len(set(ours[i][:10]) & rel) / len(rel), 6),
        })
    return {
        "protocol": {"test_fraction": test_fraction, "depth": DEPTH},
        "counts": {"stories": len(snapshot), "queries": split.n_queries,
                   "test_queries": len(split.test_rows),
                   "training_links": int(len(split.view.link_src)),
                   "training_pairs": int(model.n_training_pairs_)},
        "model": summarize(ours, split.relevant),
        "baseline": summarize(base, split.relevant),
        "baseline_date": summarize(base_date, split.relevant),
        "seconds": {"train": round(trained - started, 2), "rank": round(ranked - trained, 2)},
        "params": model.manifest_params(),
        "queries": per_query,
    }
