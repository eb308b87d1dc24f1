"""The curated-link graph as sparse matrices, and the cold views training and evaluation need.

A row is a story's curated list. 'Cold' means: as if some stories had just been published,
so neither their own lists nor any link pointing to them is known.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def adjacency(src: np.ndarray, dst: np.ndarray, n: int) -> sp.csr_matrix:
    """Binary N×N matrix, A[i, j] = 1 when story i's curated list holds story j."""
    data = np.ones(len(src), dtype=np.float32)
    a = sp.csr_matrix((data, (src, dst)), shape=(n, n), dtype=np.float32)
    a.sum_duplicates()
    a.data[:] = 1.0
    return a


def without(src: np.ndarray, dst: np.ndarray, cold: np.ndarray) -> np.ndarray:
    """Mask of links to keep when the stories flagged in `cold` (bool, by row) are cold."""
    return ~(cold[src] | cold[dst])
