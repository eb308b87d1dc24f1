"""Shared fixtures: the shipped seeds, the shared corpus (read in place), fresh catalogs."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real corpus; CI always has it beside the clone, so there its absence fails."""
    if not CORPUS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{CORPUS} is missing (CI must have ../shared beside the clone)")
        pytest.skip(f"{CORPUS} not present")
    return CORPUS


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session; required in CI, skipped (visibly) without."""
    from postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        reason = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(bindir).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_catalog(request, tmp_path: Path):
    """Makes fresh, empty catalog locations on the test's engine: the catalog suite runs on
    both SQLite and PostgreSQL."""
    if request.param == "sqlite":
        made = iter(range(1_000_000))
        return lambda: str(tmp_path / "instance" / f"catalog{next(made)}.sqlite3")
    return request.getfixturevalue("postgres").new_database


@pytest.fixture
def catalog_location(new_catalog) -> str:
    return new_catalog()


def run_cli(*args: str, catalog: Path | str | None = None, env: dict | None = None,
            timeout: float = 600, input: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m recommender ...` as a user would, in a real subprocess (`input`: what
    it reads on stdin; none by default)."""
    full_env = {**os.environ, **(env or {})}
    if catalog is not None:
        full_env["RECOMMENDER_CATALOG"] = str(catalog)
    return subprocess.run([sys.executable, "-m", "recommender", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=ROOT, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


@pytest.fixture(scope="session")
def synthetic_catalog(tmp_path_factory) -> Path:
    """A 1,500-story synthetic catalog (clusters, syndication, curated lists), imported once."""
    import synthetic

    from recommender.catalog import Catalog
    from recommender.importer import import_paths

    folder = tmp_path_factory.mktemp("synthetic")
    corpus = synthetic.generate(1500, seed=7)
    synthetic.write_files(corpus, folder / "files", broken_fraction=0, seed=7)
    path = folder / "catalog.sqlite3"
    with Catalog(path) as catalog:
        import_paths(catalog, [folder / "files"], on_error=lambda p, r: None)
    return path


@pytest.fixture(scope="session")
def synthetic_snapshot(synthetic_catalog):
    from recommender.catalog import Catalog

    with Catalog(synthetic_catalog, readonly=True) as catalog:
        return catalog.snapshot()


@pytest.fixture(scope="session")
def seeds_catalog(tmp_path_factory) -> Path:
    from recommender.catalog import Catalog
    from recommender.importer import import_paths

    path = tmp_path_factory.mktemp("seeds") / "catalog.sqlite3"
    with Catalog(path) as catalog:
        import_paths(catalog, [SEEDS], on_error=lambda p, r: None)
    return path


@pytest.fixture(scope="session")
def seeds_models(seeds_catalog, tmp_path_factory) -> Path:
    """A model trained on the shipped seeds (a small, fast, real artifact)."""
    from recommender.catalog import Catalog
    from recommender.training import train

    models = tmp_path_factory.mktemp("seeds-models")
    with Catalog(seeds_catalog, readonly=True) as catalog:
        train(catalog, models, params={"ranker__n_estimators": 60})
    return models


@pytest.fixture
def app(seeds_catalog, seeds_models, tmp_path):
    from service import create_app

    return create_app({"TESTING": True, "CATALOG": str(seeds_catalog),
                       "MODELS": str(seeds_models)})


@pytest.fixture
def client(app):
    return app.test_client()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_killed_at(marker: bytes | None, env: dict, *args: str) -> int:
    """Run `recommender train [args]` on a terminal and SIGKILL it when its progress shows `marker`.

    Killing at a phase the process announces, not after a fixed delay, keeps the test
    meaningful on any machine speed: a delay that lands mid-fit here lands after publishing
    on a faster one. Returns the exit status (negative: killed by that signal).
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "recommender", "train", *args], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        while marker is not None and marker not in seen:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process exited and closed the terminal
                chunk = b""
            if not chunk:
                break
            seen = seen[-4096:] + chunk
        proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=120)
    finally:
        os.close(master)
