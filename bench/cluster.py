"""The precompute (every story's top 100) on this machine and on a local Dask cluster.

    python bench/cluster.py --stories 20000 [--workers 1,2]

A synthetic catalog (bench/synthetic.py) is bulk-loaded and one model fitted; then the same
`rank_rows` runs in this process (1 core), on joblib's local processes (every core), and on
a Dask cluster of 1, then 2 single-threaded workers (`dask scheduler` and `dask worker`
processes on 127.0.0.1, as an operator starts them), each checked equal to the local
arrays. Prints JSON: seconds per run and the speed-up against one local core.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import synthetic  # noqa: E402

from recommender.artifact import TOP_K  # noqa: E402
from recommender.catalog import Catalog  # noqa: E402
from recommender.model import RelatedModel  # noqa: E402

DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster(workers: int, log: Path) -> tuple[str, list[subprocess.Popen]]:
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    with open(log, "ab") as out:
        procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port",
                                   str(port), "--no-dashboard"], stdout=out, stderr=out)]
        procs += [subprocess.Popen([str(DASK), "worker", address, "--host", "127.0.0.1",
                                    "--nthreads", "1", "--no-dashboard"], stdout=out,
                                   stderr=out) for _ in range(workers)]
    with Client(address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs[::-1]:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", type=int, default=20000)
    ap.add_argument("--workers", default="1,2", help="cluster sizes to measure")
    args = ap.parse_args()
    report: dict = {"stories": args.stories, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        corpus = synthetic.generate(args.stories, seed=1)
        location = tmp_path / "catalog.sqlite3"
        synthetic.bulk_load(corpus, location)
        with Catalog(location, readonly=True) as catalog:
            snapshot = catalog.snapshot()
        started = time.perf_counter()
        model = RelatedModel.from_params({"n_jobs": os.cpu_count() or 1}).fit(snapshot)
        report["fit_seconds"] = round(time.perf_counter() - started, 1)
        rows = np.arange(len(snapshot))
        runs: dict = {}
        reference = None

        def timed(name: str, **params: object) -> None:
            nonlocal reference
            ranker = model.set_params(**params)
            started = time.perf_counter()
            ranking = ranker.rank_rows(rows, k=TOP_K)
            runs[name] = {"seconds": round(time.perf_counter() - started, 1)}
            if reference is None:
                reference = ranking
            runs[name]["identical"] = bool(
                np.array_equal(ranking.rows, reference.rows)
                and np.array_equal(ranking.scores, reference.scores))

        timed("local, 1 process", n_jobs=1, cluster=None)
        timed(f"local, {os.cpu_count()} processes", n_jobs=os.cpu_count() or 1,
              parallel_min_rows=0, cluster=None)
        for workers in [int(w) for w in args.workers.split(",") if w]:
            address, procs = _cluster(workers, tmp_path / "dask.log")
            try:
                timed(f"dask, {workers} worker{'s' if workers > 1 else ''}", cluster=address)
            finally:
                _stop(procs)
        one = runs["local, 1 process"]["seconds"]
        for run in runs.values():
            run["speedup"] = round(one / run["seconds"], 2)
        report["precompute"] = runs
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
