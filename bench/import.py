"""Import throughput against the YAML parse alone, measured on the same files in one run.

    python bench/import.py --files 20000

Prints JSON: files, seconds, files_per_s, parse_only_files_per_s (the same files through the
same YAML loader and nothing else), and their ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402

from recommender.catalog import Catalog  # noqa: E402
from recommender.frontmatter import SafeLoader  # noqa: E402
from recommender.importer import import_paths, iter_files  # noqa: E402


def parse_only(folder: Path) -> tuple[int, float]:
    """Read and YAML-load every file's front matter: the floor any importer pays."""
    start = time.perf_counter()
    n = 0
    for path in iter_files([folder]):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
            yaml.load(text.split("---", 2)[1], Loader=SafeLoader)  # noqa: S506
        except (UnicodeDecodeError, IndexError, yaml.YAMLError):
            pass
        n += 1
    return n, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20000, help="article files to generate")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "articles"
        corpus = synthetic.generate(int(args.files / 0.75) + 1, seed=args.seed)
        written, broken = synthetic.write_files(corpus, folder, seed=args.seed)
        parse_only(folder)  # warm the page cache so both timings read from memory
        n_parse, t_parse = parse_only(folder)
        errors: list[str] = []
        with Catalog(Path(tmp) / "catalog.sqlite3") as catalog:
            start = time.perf_counter()
            counts = import_paths(catalog, [folder], on_error=lambda p, r: errors.append(r))
            seconds = time.perf_counter() - start
            stats = catalog.stats()
    rate, parse_rate = written / seconds, n_parse / t_parse
    print(json.dumps({
        "files": written, "broken_files": broken, "skipped": counts.skipped,
        "stories": stats["stories"], "links": stats["links"],
        "seconds": round(seconds, 2), "files_per_s": round(rate, 1),
        "parse_only_files_per_s": round(parse_rate, 1), "ratio": round(rate / parse_rate, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
