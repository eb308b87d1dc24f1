"""Versioned model artifacts: write, verify, publish atomically, load, prune.

Layout: `models/<version>/` holds `model.joblib` (the fitted RelatedModel), the precomputed
top-100 neighbours as .npy arrays (memory-mappable), and `manifest.json` with the sha256 of
every file. `models/current` is a relative symlink to the active version. A version is written
under a temporary name, fsynced, verified, renamed into place, and only then is `current`
swapped with an atomic rename, so a train killed at any point leaves the live model untouched.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np

if TYPE_CHECKING:  # importing the model pulls in scikit-learn (and OpenMP); callers decide when
    from .model import RelatedModel

TOP_K = 100  # neighbours precomputed per story: the depth of every answer and of paging
MANIFEST = "manifest.json"
CURRENT = "current"
KEEP_VERSIONS = 3
FORMAT = 3  # 2: search parameters and bare training in the model, vocabularies as arrays;
# 3: the text features and ranker as sub-estimators, every model constant a parameter


class ArtifactError(RuntimeError):
    """A model version that is missing, incomplete or fails verification."""


@dataclass
class Artifact:
    """A loaded, verified model version."""

    path: Path
    manifest: dict
    model: RelatedModel
    ids: np.ndarray  # story id per model row, sorted
    top_rows: np.ndarray  # (rows, K) int32 model rows, -1 pads
    top_scores: np.ndarray  # (rows, K) float32

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def depth(self) -> int:
        """How many stories deep this version ranks (its manifest's top_k): no answer pages
        past it."""
        return int(self.manifest.get("top_k", self.top_rows.shape[1]))

    @functools.cached_property
    def file_paths(self) -> list[str]:
        """The version's files, the manifest last: what a server stats per request."""
        return [str(self.path / name) for name in (*self.manifest["files"], MANIFEST)]

    def row_of(self, story_id: int) -> int | None:
        i = int(np.searchsorted(self.ids, story_id))
        return i if i < len(self.ids) and self.ids[i] == story_id else None

    def rows_of(self, story_ids: np.ndarray) -> np.ndarray:
        """The rows of those of `story_ids` the model has (ids are sorted: a binary search
        each, not a pass over every row)."""
        ids = np.asarray(story_ids, dtype=np.int64)
        if len(self.ids) == 0:
            return np.zeros(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return pos[self.ids[pos] == ids]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _lock(models_dir: Path) -> Iterator[None]:
    """One publisher at a time per models directory (trains may run side by side)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _new_version(models_dir: Path) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    version, n = stamp, 1
    while (models_dir / version).exists():
        n += 1
        version = f"{stamp}-{n}"
    return version


def publish(models_dir: Path, model: RelatedModel, top_rows: np.ndarray,
            top_scores: np.ndarray, info: dict,
            keep: dict[str, np.ndarray] | None = None) -> dict:
    """Write a new version, verify it, make it current, prune old versions; → manifest.
    `keep`: more arrays (file name → array) saved and checksummed with it, for the next
    train (`recommender.incremental`)."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(models_dir)
    tmp = models_dir / f".tmp-{os.getpid()}-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    tmp.mkdir()
    try:
        files = {
            "model.joblib": lambda p: joblib.dump(model, p, compress=0),
            "ids.npy": lambda p: np.save(p, model.ids_),
            "top_rows.npy": lambda p: np.save(p, top_rows.astype(np.int32)),
            "top_scores.npy": lambda p: np.save(p, top_scores.astype(np.float32)),
            **{name: functools.partial(_save, array) for name, array in (keep or {}).items()},
        }
        sums = {}
        for name, write in files.items():
            write(tmp / name)
            _fsync(tmp / name)
            sums[name] = _sha256(tmp / name)
        with _lock(models_dir):
            version = _new_version(models_dir)
            manifest = {
                "format": FORMAT,
                "version": version,
                "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                **info,
                "params": model.manifest_params(),
                "files": sums,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            _fsync(tmp / MANIFEST)
            final = models_dir / version
            os.rename(tmp, final)
            _fsync(models_dir)
            load(models_dir, version)  # verify what landed before anyone can be pointed at it
            _point_current(models_dir, version)
            prune(models_dir)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _save(array: np.ndarray, path: Path) -> None:
    np.save(path, array)


def _point_current(models_dir: Path, version: str) -> None:
    """`current` → `version`, in one atomic rename (a reader sees the old or the new)."""
    link = models_dir / f".{CURRENT}-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(version, link)
    os.replace(link, models_dir / CURRENT)
    _fsync(models_dir)


def rollback(models_dir: Path, version: str | None = None) -> str:
    """Make `version` current (default: the newest version older than the current one),
    once it verifies; → the version now current. Serving workers switch on their next
    request, as after a train."""
    models_dir = Path(models_dir)
    with _lock(models_dir):
        known = versions(models_dir)
        current = current_version(models_dir)
        if version is None:
            older = [v for v in known if current is None or v < current]
            if not older:
                raise ArtifactError(f"no version older than {current} in {models_dir}")
            version = older[-1]
        elif version not in known:
            raise ArtifactError(f"no version {version} in {models_dir} (versions: "
                                f"{', '.join(known) or 'none'})")
        load(models_dir, version)  # refuse a damaged version before pointing at it
        _point_current(models_dir, version)
    return version


def _remove_abandoned(models_dir: Path) -> None:
    """Temporary directories of trains that died (their process is gone)."""
    for path in models_dir.glob(".tmp-*"):
        pid = path.name.split("-")[1]
        alive = pid.isdigit() and Path(f"/proc/{pid}").exists() and int(pid) != os.getpid()
        if not alive:
            shutil.rmtree(path, ignore_errors=True)


def versions(models_dir: Path) -> list[str]:
    """Complete versions (those with a manifest), oldest first."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(p.name for p in models_dir.iterdir()
                  if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                  and (p / MANIFEST).exists())


def current_version(models_dir: Path) -> str | None:
    """The version `current` names (a readlink per request: one system call)."""
    try:
        return os.readlink(os.path.join(models_dir, CURRENT))
    except OSError:  # no link yet (or not a link)
        return None


def prune(models_dir: Path, keep: int = KEEP_VERSIONS) -> list[str]:
    """Delete all but the newest `keep` versions; the current one is never deleted."""
    current = current_version(models_dir)
    doomed = [v for v in versions(models_dir)[:-keep] if v != current]
    for v in doomed:
        shutil.rmtree(Path(models_dir) / v, ignore_errors=True)
    return doomed


def read_manifest(models_dir: Path, version: str | None = None) -> dict:
    path = Path(models_dir) / (version or CURRENT) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        if version is None and current_version(models_dir) is None:
            raise ArtifactError(f"no trained model in {models_dir} (run `recommender train`)")\
                from None
        raise ArtifactError(f"{path.parent}: incomplete model version (no manifest)") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: manifest is not valid JSON ({exc})") from None


def verify(path: Path, manifest: dict) -> None:
    """Refuse a version any of whose files is missing or differs from its checksum."""
    for name, want in manifest.get("files", {}).items():
        file = path / name
        if not file.exists():
            raise ArtifactError(f"{path.name}: {name} is missing")
        if _sha256(file) != want:
            raise ArtifactError(f"{path.name}: {name} fails its checksum (tampered or damaged)")
    if not manifest.get("files"):
        raise ArtifactError(f"{path.name}: manifest lists no files")


def _plain(obj: Any, seen: set[int] | None = None) -> Any:
    """`obj` with every np.memmap inside it replaced by a plain ndarray view of the same
    pages. The pages stay shared; what goes is np.memmap's Python-level __getitem__ and
    __array_finalize__, which every slice on the request path paid (~0.3 ms per new-article
    request at 100,000 stories, in thousands of small slices)."""
    if isinstance(obj, np.memmap):
        return obj.view(np.ndarray)
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, np.ndarray | str | bytes | int | float | type):
        return obj
    seen.add(id(obj))
    if isinstance(obj, list):
        obj[:] = [_plain(v, seen) for v in obj]
    elif isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _plain(value, seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type(np)):
        for key, value in vars(obj).items():
            new = _plain(value, seen)
            if new is not value:
                setattr(obj, key, new)
    return obj


def load(models_dir: Path, version: str | None = None, *, mmap: bool = True) -> Artifact:
    """Load and verify a version (default: current). Arrays are memory-mapped when `mmap`."""
    models_dir = Path(models_dir)
    name = version or current_version(models_dir)
    if name is None:
        raise ArtifactError(f"no trained model in {models_dir} (run `recommender train`)")
    path = models_dir / name
    manifest = read_manifest(models_dir, name)
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{name}: model format {manifest.get('format')}, this program reads "
                            f"format {FORMAT} (run `recommender train`)")
    verify(path, manifest)
    # Memory-mapped, the arrays (TF-IDF matrices, postings, trees, rankings) live once in the
    # page cache and every worker process on the machine shares them.
    mode = "r" if mmap else None
    try:
        model = _plain(joblib.load(path / "model.joblib", mmap_mode=mode))
        arrays = {n: _plain(np.load(path / f"{n}.npy", mmap_mode=mode))
                  for n in ("ids", "top_rows", "top_scores")}
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad artifact
        raise ArtifactError(f"{name}: cannot be loaded ({type(exc).__name__}: {exc})") from None
    _check_arrays(name, model, **arrays)
    return Artifact(path=path, manifest=manifest, model=model, **arrays)


def _check_arrays(name: str, model: RelatedModel, ids: np.ndarray, top_rows: np.ndarray,
                  top_scores: np.ndarray) -> None:
    """Refuse arrays a request would index out of bounds or map onto the wrong stories,
    whatever their checksums say (a manifest rewritten with the damage, a bug in a writer):
    a served answer is then never an IndexError, nor a row read as another story."""
    n = len(ids)
    problems = []
    if ids.ndim != 1 or (n > 1 and not bool(np.all(ids[1:] > ids[:-1]))):
        problems.append("ids.npy is not a strictly increasing list of story ids")
    elif not np.array_equal(ids, getattr(model, "ids_", None)):
        problems.append("ids.npy and the model name different stories")
    if top_rows.ndim != 2 or top_rows.shape[0] != n or top_scores.shape != top_rows.shape:
        problems.append(f"top_rows.npy {top_rows.shape} and top_scores.npy "
                        f"{top_scores.shape} do not fit {n} stories")
    elif top_rows.size and (int(top_rows.min()) < -1 or int(top_rows.max()) >= n):
        problems.append(f"top_rows.npy names rows outside 0..{n - 1}")
    elif not bool(np.isfinite(top_scores[top_rows >= 0]).all()):
        problems.append("top_scores.npy holds scores that are not finite")
    if problems:
        raise ArtifactError(f"{name}: {'; '.join(problems)}")
