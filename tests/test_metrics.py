"""Metrics on cases small enough to compute by hand."""

import math

import pytest

from recommender.metrics import ndcg_at, recall_at, reciprocal_rank, summarize


def test_recall_divides_hits_by_list_size():
    ranked = [1, 2, 3, 4, 5, 6]
    assert recall_at(ranked, {2, 5, 9, 10}, 5) == pytest.approx(2 / 4)
    assert recall_at(ranked, {2, 5, 9, 10}, 1) == 0
    assert recall_at(ranked, {1}, 1) == 1


def test_reciprocal_rank_is_first_hit_within_depth():
    assert reciprocal_rank([7, 8, 3], {3, 8}) == pytest.approx(1 / 2)
    assert reciprocal_rank([7, 8, 3], {9}) == 0
    assert reciprocal_rank(list(range(200)), {150}) == 0  # beyond the top 100
    assert reciprocal_rank(list(range(200)), {99}) == pytest.approx(1 / 100)


def test_ndcg_binary_gains_with_ideal_over_min_k_and_list():
    # hits at ranks 1 and 3; the list has 2 items, so the ideal is hits at ranks 1 and 2.
    dcg = 1 + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at([5, 6, 7], {5, 7}, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at([5, 7], {5, 7}, 10) == pytest.approx(1.0)
    # a list longer than k: the ideal counts k hits.
    assert ndcg_at([1] + [0] * 9, set(range(1, 30)), 10) == pytest.approx(
        1 / sum(1 / math.log2(i + 2) for i in range(10)))


def test_summary_macro_averages():
    out = summarize([[1, 2], [3, 4]], [{1}, {9, 4}])
    assert out["recall@5"] == pytest.approx((1 + 0.5) / 2)
    assert out["mrr"] == pytest.approx((1 + 0.5) / 2)
    assert len(out["recall_curve"]) == 50 and out["recall_curve"][0] == pytest.approx(0.5)
