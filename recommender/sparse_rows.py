"""A few rows of a CSR matrix at a time, in plain numpy: the request path's arithmetic.

A request compares a handful of stories (a page of ten, the twenty-odd it was picked from).
At that size scipy's sparse objects cost more in construction and checks than in arithmetic,
so these functions read a CSR matrix's `indptr`, `indices` and `data` arrays directly, in
one vectorised pass per call. Rows are given as (column indices, values) pairs or as row
numbers of a matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Row = tuple[np.ndarray, np.ndarray]  # (column indices, values) of one CSR row


def csr_row(m, i: int) -> Row:
    """Row i of a CSR matrix as (column indices, values), without building a matrix."""
    lo, hi = m.indptr[i], m.indptr[i + 1]
    return m.indices[lo:hi], m.data[lo:hi]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenated index ranges [start, start + length) of each pair."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return offsets + np.arange(total)


def gather(m, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries of `rows` of CSR `m`, concatenated: (owner position in `rows`, column,
    value)."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = m.indptr[rows + 1] - m.indptr[rows]
    at = ranges(m.indptr[rows], lengths)
    return np.repeat(np.arange(len(rows)), lengths), m.indices[at], m.data[at]


def gram(m, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """Dot products between every two of `rows` of CSR `m` (cosines, for L2-normalised
    rows), as a dense len(rows)² array: the rows are laid out densely over the columns
    they use, which for a page of stories is a few hundred."""
    owner, cols, vals = gather(m, rows)
    used, col = np.unique(cols, return_inverse=True)
    dense = np.zeros((len(rows), len(used)))
    dense[owner, col] = vals
    return dense @ dense.T


def products(query: Row, m, rows: Sequence[int] | np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The terms `query` shares with each of `rows` of CSR `m`: (owner position in `rows`,
    column, query value × row value), one entry per shared column."""
    owner, cols, vals = gather(m, rows)
    order = np.argsort(query[0], kind="stable")
    q_cols, q_vals = query[0][order], query[1][order]
    if len(q_cols) == 0:
        return owner[:0], cols[:0], vals[:0].astype(np.float64)
    j = np.clip(np.searchsorted(q_cols, cols), 0, len(q_cols) - 1)
    hit = q_cols[j] == cols
    return owner[hit], cols[hit], vals[hit].astype(np.float64) * q_vals[j[hit]]


def dots(query: Row, m, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """The dot product of `query` with each of `rows` of CSR `m`."""
    owner, _, prod = products(query, m, rows)
    return np.bincount(owner, prod, minlength=len(rows))
