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
    from distributed import Client

    from .model import Ranking, RelatedModel

CONNECT_TIMEOUT = "distributed.comm.timeouts.connect"  # Dask's own setting (default 30s)
SLICES_PER_CORE = 4  # more slices than cores, so that a slow worker is not waited for


class ClusterError(RuntimeError):
    """The cluster cannot be used (unreachable, no workers, the package missing)."""


def rank_on_cluster(model: RelatedModel, rows: np.ndarray, k: int, address: str) -> Ranking:
    """`model.rank_rows(rows, k)`, ranked on the workers of the scheduler at `address`."""
    from joblib import Parallel, delayed, parallel_config

    from .model import _joined

    with connect(address) as client:
        cores = sum(client.ncores().values())
        slices = np.array_split(rows, min(len(rows), cores * SLICES_PER_CORE) or 1)
        with parallel_config(backend="dask", client=client, scatter=[model]):
            parts = Parallel()(delayed(_rank_slice)(model, part, k) for part in slices)
    return _joined(parts, k)


def connect(address: str) -> Client:
    """A client of the scheduler at `address` with at least one worker, or a ClusterError
    saying why not. `train` connects once before it fits, so that a wrong address is told
    in seconds, not after the fit."""
    try:
        from distributed import Client
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import get_backend
    except ImportError:
        raise ClusterError("ranking on a cluster needs the distributed package: pip install "
                           "'recommender[cluster]'") from None
    try:  # before a Client exists: one made on a bad address complains again at exit
        scheme, location = parse_address(address, strict=True)
        get_backend(scheme)
        parse_host_port(location)
    except ValueError as exc:
        raise ClusterError(f"{address!r} is not a Dask scheduler's address such as "
                           f"tcp://HOST:8786 ({exc})") from None
    # How long to try is Dask's connect timeout, set as any Dask setting is (dask config,
    # DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s): to reach the scheduler, and then for
    # its first worker to be there.
    import dask.config
    from dask.utils import parse_timedelta

    timeout = parse_timedelta(dask.config.get(CONNECT_TIMEOUT), "s")
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise ClusterError(f"the Dask scheduler at {address} has no workers") from None
    return client


def _rank_slice(model: RelatedModel, rows: np.ndarray, k: int) -> Ranking:
    """One slice, on a worker (a module-level function: workers import it by name)."""
    return model._rank_here(rows, k, False)
