"""The model version a process serves: loaded, verified, swapped, and watched while it serves.

A version is checked in full (every file's sha256, the arrays' bounds) when it is loaded. A
served version can still be damaged in place afterwards: a file overwritten through a
memory map, truncated, replaced. Hashing gigabytes per request is out of the question, so
the holder watches in three ways, from cheap to thorough:
- every request that reads the version's arrays stats its files first (inode, size, mtime:
  a write through a memory map moves the mtime); a change means a full re-verification
  before the request goes on, so neither a truncated file (which would kill the process with
  SIGBUS) nor changed bytes are ever read (a revalidation or a cached answer reads none);
- every `reverify_seconds`, the files are hashed again in a background thread, for damage
  that leaves no trace in a stat;
- an unexpected error while answering re-verifies at once (`recheck`).
A version that fails is refused for the life of the process and the newest sound version is
served instead, until a new one is published.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from . import artifact
from .artifact import Artifact, ArtifactError
from .settings import SETTINGS

log = logging.getLogger(__name__)

REVERIFY_SECONDS: float = SETTINGS["reverify_seconds"].default


def _stamp(art: Artifact) -> tuple:
    """What a stat tells of the version's files; any write, truncation or swap changes it."""
    stamp = []
    for path in art.file_paths:
        try:
            st = os.stat(path)
        except OSError:
            return ("missing", path)
        stamp.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


class ModelHolder:
    """The served version of one models directory; shared by a process's threads."""

    def __init__(self, models_dir: Path, reverify_seconds: float = REVERIFY_SECONDS) -> None:
        self.models_dir = Path(models_dir)
        self.reverify_seconds = reverify_seconds
        # The served version and its files' stamp, swapped together as one tuple so that a
        # request never pairs a new version with the old one's stamp.
        self._served: tuple[Artifact | None, tuple] = (None, ())
        self._verified_at = 0.0
        self._refused: dict[str, str] = {}  # version → why; never loaded again by this process
        self._loading: str | None = None
        self._lock = threading.RLock()

    # -- what requests call ---------------------------------------------------------------

    def get(self, stat: bool = True) -> Artifact:
        """The version to answer from, sound as far as its files' stats tell. `stat=False`
        for a caller that reads none of its arrays (an answer's tag, a cached answer): the
        stats are then left to `unchanged`, before the first read."""
        self._follow_current()
        art, stamp = self._served
        if stat and art is not None and _stamp(art) != stamp:
            self.recheck(art)  # changed under us: verified again before anything reads it
            art = self._artifact
        if art is None:
            raise ArtifactError(self.why_unavailable())
        if time.monotonic() - self._verified_at > self.reverify_seconds:
            self._verified_at = time.monotonic()  # one background check at a time
            threading.Thread(target=self.recheck, args=(art,), daemon=True,
                             name=f"reverify-{art.version}").start()
        return art

    def unchanged(self, art: Artifact) -> bool:
        """Whether `art` is still the version served, its files' stats as verified: its
        arrays may be read. When not, `get()` tells what to read instead."""
        served, stamp = self._served
        return served is art and _stamp(art) == stamp

    def follow_now(self) -> None:
        """Load `current` in the foreground if it is not what is served (a request that
        cannot be answered by the served version waits for it rather than fail)."""
        name = artifact.current_version(self.models_dir)
        served = self._artifact.version if self._artifact else None
        if name is not None and name != served and name not in self._refused:
            with self._lock:
                if self._artifact is None or self._artifact.version != name:
                    self._load(name)

    def recheck(self, art: Artifact) -> bool:
        """Verify `art`'s files again; when they fail, refuse it and serve the newest sound
        version instead. True when `art` was refused (an answer from it is worth retrying
        on what is served now)."""
        with self._lock:
            if art.version in self._refused:
                return True
            try:
                stamp = _stamp(art)
                artifact.verify(art.path, art.manifest)
            except (ArtifactError, OSError) as exc:
                self._refuse(art.version, str(exc))
                if self._artifact is art:
                    self._serve(self._newest_sound())
                return True
            if self._artifact is art:
                self._served, self._verified_at = (art, stamp), time.monotonic()
            return False

    def why_unavailable(self) -> str:
        if self._refused:
            refused = "; ".join(f"{v}: {why}" for v, why in self._refused.items())
            return (f"no sound model in {self.models_dir} (refused {refused}; run "
                    "`recommender train`)")
        return f"no usable model in {self.models_dir} (run `recommender train`)"

    @property
    def refused(self) -> dict[str, str]:
        return dict(self._refused)

    @property
    def _artifact(self) -> Artifact | None:
        return self._served[0]

    def close(self) -> None:
        """Drop the served version (its memory maps go with the last reference)."""
        with self._lock:
            self._served = (None, ())

    # -- switching versions ---------------------------------------------------------------

    def _follow_current(self) -> None:
        """Switch to `current` if it names a version other than the one serving: a readlink
        per request. With a version serving, the new one is loaded and verified in a
        background thread and swapped in when ready, so no request waits for it; a process
        with nothing to serve yet loads in the foreground."""
        name = artifact.current_version(self.models_dir)
        if name is None:
            return
        if self._artifact is None:
            with self._lock:  # nothing served: `current`, or else the newest sound version
                if self._artifact is None and name not in self._refused:
                    self._load(name)
                if self._artifact is None:
                    self._serve(self._newest_sound())
            return
        if name in (self._artifact.version, self._loading) or name in self._refused:
            return
        with self._lock:
            if self._loading is not None or self._artifact.version == name:
                return
            self._loading = name
        threading.Thread(target=self._load_in_background, args=(name,), daemon=True,
                         name=f"load-{name}").start()

    def _load_in_background(self, name: str) -> None:
        try:
            with self._lock:
                self._load(name)
        finally:
            self._loading = None

    def _load(self, name: str) -> None:
        try:
            loaded = artifact.load(self.models_dir, name)
        except ArtifactError as exc:
            self._refuse(name, str(exc))
            return
        self._serve(loaded)

    def _serve(self, art: Artifact | None) -> None:
        if art is not None:
            log.info("serving model %s", art.version)
        self._served = (art, _stamp(art) if art is not None else ())
        self._verified_at = time.monotonic()

    def _refuse(self, name: str, why: str) -> None:
        served = self._artifact.version if self._artifact else None
        self._refused[name] = why
        log.error("refusing model %s: %s (serving %s)", name, why,
                  served if served != name else "the newest sound version")

    def _newest_sound(self) -> Artifact | None:
        for version in reversed(artifact.versions(self.models_dir)):
            if version in self._refused:
                continue
            try:
                loaded = artifact.load(self.models_dir, version)
            except ArtifactError as exc:
                self._refuse(version, str(exc))
                continue
            log.warning("serving model %s in place of the refused current one", version)
            return loaded
        return None
