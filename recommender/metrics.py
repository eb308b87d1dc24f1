"""Ranking metrics against a curated list, per query; callers macro-average.

Conventions (the evaluation protocol's): recall@k = hits in the top k ÷ size of the list;
MRR counts the first hit within the top 100; nDCG@k uses binary gains and an ideal DCG over
min(k, list size) hits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

MRR_DEPTH = 100


def recall_at(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    if not relevant:
        return 0.0
    return sum(1 for r in ranked[:k] if r in relevant) / len(relevant)


def reciprocal_rank(ranked: Sequence[int], relevant: Collection[int],
                    depth: int = MRR_DEPTH) -> float:
    for i, r in enumerate(ranked[:depth]):
        if r in relevant:
            return 1.0 / (i + 1)
    return 0.0


def ndcg_at(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    if not relevant:
        return 0.0
    dcg = sum(1.0 / np.log2(i + 2) for i, r in enumerate(ranked[:k]) if r in relevant)
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def summarize(rankings: Sequence[Sequence[int]], relevant: Sequence[Collection[int]],
              curve_to: int = 50) -> dict:
    """Macro averages over queries, plus the recall@k curve for k = 1..curve_to."""
    pairs = list(zip(rankings, relevant, strict=True))
    if not pairs:
        raise ValueError("no queries to evaluate")

    def mean(values: list[float]) -> float:
        return round(float(np.mean(values)), 6)

    return {
        "recall@5": mean([recall_at(r, s, 5) for r, s in pairs]),
        "recall@10": mean([recall_at(r, s, 10) for r, s in pairs]),
        "recall@20": mean([recall_at(r, s, 20) for r, s in pairs]),
        "mrr": mean([reciprocal_rank(r, s) for r, s in pairs]),
        "ndcg@10": mean([ndcg_at(r, s, 10) for r, s in pairs]),
        "recall_curve": [mean([recall_at(r, s, k) for r, s in pairs])
                         for k in range(1, curve_to + 1)],
    }
