"""The collapsing rule, measured on real lists: slots freed and recall, on and off.

    python bench/collapse.py [--catalog PATH] [--grid]

Imports the shared corpus into a temporary catalog (or reads --catalog), makes the
evaluation's split (the newest 20 % of curated lists are cold test queries), trains the
model on the rest and ranks every test query 100 deep. Then, per rule, over the test
queries' top 10: how many slots collapsing frees (rows past the 10th that the 10 entries
reach), recall@10 without collapsing, with it counting each entry's kept story only, and
counting the stories listed under `also` too; and, of the pairs a rule merged, how many the
editor split (one in the curated list, the other not). With --grid, a grid of thresholds.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from recommender.catalog import Catalog  # noqa: E402
from recommender.collapse import DAYS, TEXT_COS, TITLE_COS, collapse, title_key  # noqa: E402
from recommender.evaluation import make_split  # noqa: E402
from recommender.importer import import_paths  # noqa: E402
from recommender.model import RelatedModel  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpus"


def measure(index, ranked: list[list[int]], relevant: list[set[int]], titles: list[str],
            rule: dict | None) -> dict:
    freed, plain, heads, everything, merged, split_by_editor = [], [], [], [], 0, 0
    for rows, rel in zip(ranked, relevant, strict=True):
        if rule is None:  # the exact-title rule served before
            entries, seen = [], {}
            for r in rows:
                key = title_key(titles[r])
                if key in seen:
                    entries[seen[key]][1].append(r)
                else:
                    seen[key] = len(entries)
                    entries.append((r, []))
        else:
            entries = collapse(index, rows, **rule)
        top = entries[:10]
        used = sum(1 + len(also) for _, also in top)
        freed.append(used - min(10, len(rows)))
        plain.append(len(set(rows[:10]) & rel) / len(rel))
        heads.append(len({h for h, _ in top} & rel) / len(rel))
        everything.append(len({r for h, also in top for r in [h, *also]} & rel) / len(rel))
        for head, also in top:
            for r in also:
                merged += 1
                split_by_editor += (head in rel) != (r in rel)
    return {"rule": rule or "exact title", "slots_freed_per_query": round(float(np.mean(freed)), 3),
            "queries_with_a_slot_freed": int(np.sum(np.array(freed) > 0)),
            "recall@10_off": round(float(np.mean(plain)), 4),
            "recall@10_on_entries": round(float(np.mean(heads)), 4),
            "recall@10_on_with_also": round(float(np.mean(everything)), 4),
            "pairs_merged": merged, "pairs_the_editor_split": split_by_editor}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", help="a catalog already holding the corpus")
    ap.add_argument("--grid", action="store_true", help="also a grid of thresholds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        location = args.catalog or str(Path(tmp) / "catalog.sqlite3")
        if not args.catalog:
            with Catalog(location) as catalog:
                import_paths(catalog, [CORPUS], on_error=lambda p, r: None)
        with Catalog(location, readonly=True) as catalog:
            snapshot = catalog.snapshot()
    split = make_split(snapshot, 0.2)
    model = RelatedModel.from_params({"n_jobs": 2}).fit(split.view)
    ranking = model.rank_rows(split.test_rows, k=100).rows
    ranked = [[int(r) for r in row if r >= 0] for row in ranking]
    titles = list(snapshot.titles)
    rules: list[dict | None] = [None, {"days": DAYS, "title_cos": TITLE_COS,
                                       "text_cos": TEXT_COS}]
    if args.grid:
        rules += [{"days": d, "title_cos": t, "text_cos": x} for d in (1.0, 2.0, 3.0)
                  for t in (0.5, 0.6, 0.7) for x in (0.6, 0.7, 0.8)]
    print(json.dumps({"test_queries": len(ranked),
                      "rules": [measure(model.index_, ranked, split.relevant, titles, rule)
                                for rule in rules]}, indent=1))


if __name__ == "__main__":
    main()
