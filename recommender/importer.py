"""Import: article files and folders → the catalog, skipping (and naming) bad files.

Files are read in a stable order (arguments as given, folders walked sorted) so that two
imports of the same tree assign the same import order, which the 'newest file wins' rule
falls back on. YAML parsing is the cost that dominates, so large imports parse in a process
pool (results come back in file order) while this process writes the previous chunk. Writes
are committed in batches of whole files: a kill loses at most the batch in flight, and a
rerun skips every file whose content hash the catalog already holds. A file that says just
what the catalog holds and serves (`export.served_already`) writes nothing either.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .catalog import Catalog, ImportCounts
from .export import served_already
from .frontmatter import Article, BadFile, decode, parse_text, read_bytes

SUFFIXES = (".md", ".markdown", ".txt")
BATCH_FILES = 256  # files per transaction
CHUNK_FILES = 1024  # files handed to the parser pool at a time
POOL_MIN_FILES = 512  # below this, starting processes costs more than it saves
COLLECT_EVERY = 256  # files a parser process parses between two cyclic garbage collections

Reporter = Callable[[str, str], None]


def iter_files(paths: list[str | Path]) -> Iterator[Path]:
    """Article files under `paths`, in a deterministic order; missing paths raise.

    A path that is neither a folder nor missing (a FIFO, a device, a dangling link) is
    yielded all the same, so that reading it names it as a bad file (`read_bytes`)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.lower().endswith(SUFFIXES) and not name.startswith("."):
                        yield Path(root) / name
        elif os.path.lexists(path):
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")


@dataclass(slots=True)
class _File:
    path: str
    digest: str = ""
    data: bytes | None = None  # set while the file still needs parsing
    article: Article | None = None
    error: str | None = None


def _read(path: Path) -> _File:
    f = _File(str(path))
    try:
        f.data = read_bytes(path)
        f.digest = hashlib.sha256(f.data).hexdigest()
    except BadFile as exc:
        f.error = str(exc)
    except OSError as exc:
        f.error = f"cannot read ({exc.strerror or exc})"
    return f


def _parse(job: tuple[str, bytes]) -> tuple[Article | None, str | None]:
    """One file's article, or the reason it cannot be imported: whatever goes wrong with
    one file is that file's problem, never the import's."""
    path, data = job
    try:
        return parse_text(decode(data), path), None
    except BadFile as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a parser bug or limit must not stop the rest
        return None, f"cannot be parsed ({type(exc).__name__}: {str(exc)[:120]})"


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Run the cyclic garbage collector only where the import asks (`gc.collect()` after
    each chunk, and every COLLECT_EVERY files in a parser process), not whenever allocations
    pass its threshold.

    A YAML document allocates hundreds of dicts and lists, and the writer unpickles as many,
    so the automatic collector ran many times per file; each time its oldest generation
    came up it walked every object the process held (in a forked parser, the parent's whole
    heap, copy-on-write pages and all). That was over a quarter of the parsers' CPU (2.1 →
    1.5 ms a file) and up to a sixth of the writer's: 690 → 850-880 files/s in
    `bench/import.py`. What exists on entry is frozen (`gc.freeze`), so the
    collections made here walk only what the import created; forked parsers inherit both
    settings. Parsed files are freed by reference counting (they form cycles only through
    YAML aliases), and the periodic collections bound what any cycle can hold.
    """
    enabled = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


_parsed = itertools.count(1)


def _parse_in_pool(job: tuple[str, bytes]) -> tuple[Article | None, str | None]:
    result = _parse(job)
    if next(_parsed) % COLLECT_EVERY == 0:
        gc.collect()
    return result


def _chunks(files: list[Path], size: int) -> Iterator[list[Path]]:
    for i in range(0, len(files), size):
        yield files[i:i + size]


def import_paths(
    catalog: Catalog,
    paths: list[str | Path],
    *,
    on_error: Reporter,
    on_warning: Reporter | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> ImportCounts:
    """Import every article file under `paths`; bad files go to `on_error(path, reason)`,
    and what was dropped from a file that was imported to `on_warning(path, what)`.

    `workers`: parser processes (default: one per core; 1 parses in this process).
    """
    files = list(iter_files(paths))
    workers = workers or os.cpu_count() or 1
    with _collector_paused():
        return _import(catalog, files, on_error, on_warning or (lambda p, w: None), progress,
                       workers)


def _write(catalog: Catalog, batch: list[tuple[Article, str]], counts: ImportCounts,
           on_error: Reporter) -> None:
    """Write a batch in one transaction; should a file's values make it fail (a number
    the engine cannot store, ...), write the files one by one and name the one that fails.
    Anything else (a full disk, a lost database) stops the import, which a rerun resumes."""
    before = dataclasses.replace(counts)
    try:
        catalog.add_files(batch, counts)
        return
    except catalog.db.data_errors:
        pass  # rolled back whole; a batch of one is retried once, then named below
    for name in ("imported", "updated", "unchanged"):
        setattr(counts, name, getattr(before, name))
    for one in batch:
        try:
            catalog.add_files([one], counts)
        except catalog.db.data_errors as exc:
            counts.skipped += 1
            on_error(one[0].path, f"cannot be stored ({type(exc).__name__}: {str(exc)[:120]})")


def _import(catalog: Catalog, files: list[Path], on_error: Reporter, on_warning: Reporter,
            progress: bool, workers: int) -> ImportCounts:
    counts = ImportCounts()
    pool = None
    if workers > 1 and len(files) >= POOL_MIN_FILES:
        pool = multiprocessing.get_context("fork").Pool(workers)  # before any thread starts
    bar = tqdm(total=len(files), unit="file", disable=not progress, desc="import",
               dynamic_ncols=True)

    def prepare(chunk: list[Path]) -> tuple[list[_File], object]:
        """Read and hash in this process; start parsing what the catalog does not hold."""
        read = [_read(p) for p in chunk]
        known = catalog.known_hashes(f.digest for f in read if f.data is not None)
        todo = []
        for f in read:
            if f.data is not None and f.digest in known:
                f.data = None
                counts.unchanged += 1
            elif f.data is not None:
                todo.append(f)
        jobs = [(f.path, f.data) for f in todo]
        parsed = (pool.map_async(_parse_in_pool, jobs, chunksize=16) if pool
                  else list(map(_parse, jobs)))
        return read, (todo, parsed)

    def finish(read: list[_File], pending: object) -> None:
        """Collect parses (in file order), report bad files, write good ones in batches."""
        todo, parsed = pending  # type: ignore[misc]
        results = parsed.get() if hasattr(parsed, "get") else parsed
        for f, (article, error) in zip(todo, results, strict=True):
            f.article, f.error, f.data = article, error, None
        batch: list[tuple[Article, str]] = []
        for f in read:
            if f.error is not None:
                counts.skipped += 1
                on_error(f.path, f.error)
            elif f.article is not None:
                for warning in f.article.warnings:
                    counts.warnings += 1
                    on_warning(f.path, warning)
                if served_already(catalog, f.article):
                    counts.unchanged += 1  # an export coming back: the catalog says it all
                else:
                    batch.append((f.article, f.digest))
            if len(batch) >= BATCH_FILES:
                _write(catalog, batch, counts, on_error)
                batch = []
        if batch:
            _write(catalog, batch, counts, on_error)
        bar.update(len(read))
        gc.collect()

    try:
        previous = None
        for chunk in _chunks(files, CHUNK_FILES):
            current = prepare(chunk)  # parsing runs in the pool ...
            if previous:
                finish(*previous)  # ... while this process writes the chunk before it
            previous = current
        if previous:
            finish(*previous)
    finally:
        bar.close()
        if pool:
            pool.terminate()
    return counts
