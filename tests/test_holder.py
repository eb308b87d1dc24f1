"""The served model version: bounds checked at load, watched while served, refused when damaged."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from recommender import artifact
from recommender.artifact import ArtifactError
from recommender.catalog import Catalog
from recommender.holder import ModelHolder
from recommender.training import train


@pytest.fixture
def two_versions(seeds_catalog, seeds_models, tmp_path) -> tuple[Path, str, str]:
    models = tmp_path / "models"
    shutil.copytree(seeds_models, models, symlinks=True)
    older = artifact.current_version(models)
    with Catalog(seeds_catalog, readonly=True) as catalog:
        newer = train(catalog, models, params={"ranker__n_estimators": 40})["version"]
    return models, older, newer


def _rewrite_with_checksum(version_dir: Path, name: str, array: np.ndarray) -> None:
    """Damage that a checksum cannot see: the manifest is rewritten to match."""
    np.save(version_dir / name, array)
    manifest = json.loads((version_dir / artifact.MANIFEST).read_text())
    manifest["files"][name] = hashlib.sha256((version_dir / name).read_bytes()).hexdigest()
    (version_dir / artifact.MANIFEST).write_text(json.dumps(manifest))


def test_row_indices_out_of_bounds_are_refused_at_load_whatever_the_checksums(two_versions):
    models, _, newer = two_versions
    rows = np.load(models / newer / "top_rows.npy")
    rows[0, 0] = len(rows)  # one past the last row
    _rewrite_with_checksum(models / newer, "top_rows.npy", rows)
    with pytest.raises(ArtifactError, match="names rows outside"):
        artifact.load(models, newer)
    scores = np.load(models / newer / "top_scores.npy")[:-1]
    _rewrite_with_checksum(models / newer, "top_scores.npy", scores)
    with pytest.raises(ArtifactError, match="do not fit"):
        artifact.load(models, newer)


def test_damage_a_stat_cannot_see_is_found_by_the_periodic_check(two_versions):
    models, older, newer = two_versions
    holder = ModelHolder(models, reverify_seconds=3600)
    assert holder.get().version == newer
    target = models / newer / "top_scores.npy"
    before = target.stat()
    with open(target, "r+b") as f:  # same size, and the mtime put back: a stat sees nothing
        f.seek(-4, os.SEEK_END)
        f.write(b"\xff\xff\xff\xff")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert holder.get().version == newer  # not yet due
    holder.reverify_seconds = 0.0
    holder.get()  # due: a background re-verification starts
    deadline = time.monotonic() + 10
    while holder.get().version != older:
        assert time.monotonic() < deadline, "the periodic check never refused the version"
        time.sleep(0.05)
    assert newer in holder.refused and "checksum" in holder.refused[newer]


def test_an_error_while_answering_rechecks_and_falls_back(two_versions):
    models, older, newer = two_versions
    holder = ModelHolder(models)
    served = holder.get()
    assert not holder.recheck(served)  # sound: the error was not the files'
    (models / newer / "ids.npy").write_bytes(b"gone")
    assert holder.recheck(served)
    assert holder.get().version == older


def test_no_sound_version_is_a_clear_unavailable(two_versions):
    models, older, newer = two_versions
    holder = ModelHolder(models)
    served = holder.get()
    for version in (older, newer):
        (models / version / "model.joblib").write_bytes(b"damaged")
    assert holder.recheck(served)
    with pytest.raises(ArtifactError, match="no sound model"):
        holder.get()
