"""Shared fixtures: the shipped seeds, the shared corpus (read in place), fresh catalogs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture
def corpus() -> Path:
    """The real corpus; CI always has it beside the clone, so there its absence fails."""
    if not CORPUS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{CORPUS} is missing (CI must have ../shared beside the clone)")
        pytest.skip(f"{CORPUS} not present")
    return CORPUS


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return tmp_path / "instance" / "catalog.sqlite3"


def run_cli(*args: str, catalog: Path | None = None, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m recommender ...` as a user would, in a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    if catalog is not None:
        full_env["RECOMMENDER_CATALOG"] = str(catalog)
    return subprocess.run([sys.executable, "-m", "recommender", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=ROOT)
