"""The request path's sparse arithmetic, in numpy, against scipy's own operations: the pair
evidence a served query gets must equal, to the bit, what training computed with the same
functions, and what scipy computed before them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender import sparse_rows
from recommender.candidates import _lookup, _rowwise_dot, _weights


def _tfidf_like(rows: int, cols: int, seed: int) -> sp.csr_matrix:
    m = sp.random(rows, cols, density=0.08, random_state=seed, dtype=np.float32,
                  format="csr")
    m.data = np.abs(m.data) + np.float32(1e-3)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    out = sp.csr_matrix(sp.diags(1 / norms) @ m, dtype=np.float32)
    out.sort_indices()  # as TF-IDF rows are: each row's columns ascending
    return out


@pytest.mark.parametrize("seed", range(5))
def test_pair_dot_products_equal_scipys_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    a, b = _tfidf_like(7, 300, seed), _tfidf_like(40, 300, seed + 100)
    query, cand = rng.integers(0, 7, 500), rng.integers(0, 40, 500)
    want = np.asarray(a[query].multiply(b[cand]).sum(axis=1)).ravel().astype(np.float32)
    assert np.array_equal(_rowwise_dot(a, query, b, cand), want)


@pytest.mark.parametrize("seed", range(5))
def test_lookups_equal_scipys_fancy_indexing(seed):
    rng = np.random.default_rng(seed)
    m = (_tfidf_like(9, 200, seed) @ _tfidf_like(200, 200, seed + 1)).tocsr()  # as votes are
    assert not m.has_sorted_indices
    rows, cols = rng.integers(0, 9, 400), rng.integers(0, 200, 400)
    assert np.array_equal(_lookup(m, rows, cols),
                          np.asarray(m[rows, cols]).ravel().astype(np.float32))


def test_vote_weights_equal_scipys_construction_to_the_bit():
    rng = np.random.default_rng(0)
    b, n = 6, 500
    cols = np.stack([rng.choice(n, 12, replace=False) for _ in range(b)])
    cols[rng.random(cols.shape) < 0.2] = -1
    vals = rng.random(cols.shape).astype(np.float32)
    keep = (cols >= 0) & (vals > 0)
    rows = np.repeat(np.arange(b), cols.shape[1])[keep.ravel()]
    w = sp.csr_matrix((vals[keep], (rows, cols[keep])), shape=(b, n))
    sums = np.asarray(w.sum(axis=1)).ravel()
    want = (sp.diags(1.0 / np.maximum(sums, 1e-9)) @ w).tocsr()
    got = _weights(b, n, cols, vals)
    graph = sp.random(n, n, density=0.02, random_state=1, dtype=np.float32, format="csr")
    assert (got != want).nnz == 0
    assert np.array_equal((got @ graph).toarray(), (want @ graph).toarray())


def test_gram_and_dots_are_the_rows_dot_products():
    m = _tfidf_like(30, 400, 3)
    rows = [4, 0, 17, 4, 29]
    dense = m[rows].toarray().astype(np.float64)
    assert np.allclose(sparse_rows.gram(m, rows), dense @ dense.T)
    query = sparse_rows.csr_row(m, 8)
    assert np.allclose(sparse_rows.dots(query, m, rows), dense @ m[8].toarray().ravel())
