"""The precompute on a Dask cluster: every story's ranking, in slices, on the cluster's workers.

Ranking is the bulk of a train (the top 100 of every story), and each story is ranked alone,
so slices can go anywhere. joblib's Dask backend runs them on the workers of a scheduler
(`dask scheduler`, then `dask worker tcp://HOST:8786` on each machine); the fitted model is
broadcast to every worker once (`scatter`), not sent with each slice, and the slices come
back in order: the arrays are the same, byte for byte, as a local run's. The workers need
this package installed (the same version) and read nothing else: no catalog, no models
directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .model import Ranking, RelatedModel

CONNECT_SECONDS = 20  # to reach the scheduler, and for its first worker to be there
SLICES_PER_CORE = 4  # more slices than cores, so that a slow worker is not waited for


class ClusterError(RuntimeError):
    """The cluster cannot be used (unreachable, no workers, the package missing)."""


def rank_on_cluster(model: RelatedModel, rows: np.ndarray, k: int, address: str) -> Ranking:
    """`model.rank_rows(rows, k)`, ranked on the workers of the scheduler at `address`."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError("ranking on a cluster needs the distributed package: pip install "
                           "'recommender[cluster]'") from None
    from joblib import Parallel, delayed, parallel_config

    from .model import _joined

    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except TimeoutError:
            raise ClusterError(f"the Dask scheduler at {address} has no workers") from None
        cores = sum(client.ncores().values())
        slices = np.array_split(rows, min(len(rows), cores * SLICES_PER_CORE) or 1)
        with parallel_config(backend="dask", client=client, scatter=[model]):
            parts = Parallel()(delayed(_rank_slice)(model, part, k) for part in slices)
    return _joined(parts, k)


def _rank_slice(model: RelatedModel, rows: np.ndarray, k: int) -> Ranking:
    """One slice, on a worker (a module-level function: workers import it by name)."""
    return model._rank_here(rows, k, False)
