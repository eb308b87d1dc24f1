"""Server time of the editor pages on a built catalog (use bench/serve.py's --workdir).

    python bench/serve.py --stories 100000 --workdir /tmp/bench100k   # builds it once
    python bench/pages.py --workdir /tmp/bench100k

Renders each page in-process (Flask test client: server time, no network) for 200 stories
and prints JSON: p50/p99/max milliseconds per page.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as `recommender serve` runs
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from service import create_app  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    catalog = args.workdir / "catalog.sqlite3"
    client = create_app({"CATALOG": str(catalog), "MODELS": str(args.workdir / "models"),
                         "INSTANCE": str(args.workdir)}).test_client()
    with sqlite3.connect(catalog) as db:
        stories = db.execute("SELECT COUNT(*) FROM stories").fetchone()[0]
        rows = db.execute("SELECT url, title, excerpt FROM stories WHERE has_file ORDER BY id"
                          " LIMIT ?", (args.n + 1,)).fetchall()
    client.get("/", query_string={"url": rows[0][0]})  # load the model
    pages = {
        "preview_by_url": lambda r: {"url": r[0]},
        "preview_by_text": lambda r: {"title": r[1], "excerpt": r[2]},
        "stories_search": lambda r: {"q": r[1].split()[0]},
    }
    report: dict = {"stories": stories, "pages": args.n}
    for name, query in pages.items():
        path = "/stories" if name == "stories_search" else "/"
        ms = []
        for row in rows[1:]:
            start = time.perf_counter()
            status = client.get(path, query_string=query(row)).status_code
            ms.append((time.perf_counter() - start) * 1000)
            if status != 200:
                raise SystemExit(f"{name}: status {status}")
        report[name] = {"p50_ms": round(float(np.percentile(ms, 50)), 2),
                        "p99_ms": round(float(np.percentile(ms, 99)), 2),
                        "max_ms": round(max(ms), 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
