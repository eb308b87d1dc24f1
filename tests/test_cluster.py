"""The precompute on a real Dask cluster: a scheduler and two workers on 127.0.0.1, started
as an operator would (`dask scheduler`, `dask worker`), and a train through them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, free_port, run_cli

DASK = Path(sys.executable).with_name("dask")


def _start(*args: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([str(DASK), *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and two single-threaded `dask worker`s, loopback only."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_start("scheduler", "--host", "127.0.0.1", "--port", str(port),
                    "--no-dashboard", log=tmp_path / "scheduler.log")]
    procs += [_start("worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                     "--no-dashboard", "--name", f"w{i}", log=tmp_path / f"worker{i}.log")
              for i in range(2)]
    try:
        from distributed import Client

        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in procs[::-1]:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _arrays(models: Path) -> dict[str, bytes]:
    version = (models / "current").resolve()
    return {p.name: p.read_bytes() for p in sorted(version.glob("*.npy"))}


def test_a_train_on_a_dask_cluster_publishes_the_local_arrays(dask_cluster, synthetic_catalog,
                                                              tmp_path):
    local, remote = tmp_path / "local", tmp_path / "remote"
    done = run_cli("train", "--models", str(local), "-q", catalog=synthetic_catalog)
    assert done.returncode == 0, done.stderr
    started = time.monotonic()
    done = run_cli("train", "--models", str(remote), "-q", "--cluster", dask_cluster,
                   catalog=synthetic_catalog)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 600
    ours, theirs = _arrays(local), _arrays(remote)
    assert ours and ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name] == theirs[name], name
    # The work went to the workers: each ran slices (the scheduler counts their tasks).
    from distributed import Client

    with Client(dask_cluster, timeout=30, set_as_default=False) as client:
        done_by = client.run(lambda dask_worker: len(dask_worker.state.tasks) +
                             dask_worker.state.executed_count)
    assert len(done_by) == 2 and all(n > 0 for n in done_by.values()), done_by


def test_an_unreachable_cluster_is_one_line(synthetic_catalog, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    # How long it tries is Dask's own connect timeout, set the way Dask's settings are.
    done = run_cli("train", "--models", str(tmp_path / "m"), "-q", "--cluster", address,
                   catalog=synthetic_catalog,
                   env={"RECOMMENDER_CLUSTER": "",
                        "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot reach the Dask scheduler at {address}")
    assert done.stderr.count("\n") == 1 and not (tmp_path / "m" / "current").exists()
    for bad in ("http://127.0.0.1:8786", "127.0.0.1", "tcp://127.0.0.1:"):
        done = run_cli("train", "--models", str(tmp_path / "m"), "--cluster", bad,
                       catalog=synthetic_catalog)
        assert done.returncode == 1 and done.stderr.count("\n") == 1
        assert "is not a Dask scheduler's address" in done.stderr
