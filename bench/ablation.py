"""What each ingredient of the model is worth, on the evaluation protocol's split.

    python bench/ablation.py [--catalog PATH] [--test-fraction 0.2] [--only NAME ...]

Each variant is `RelatedModel` with one setting changed from the default (the ranker, which
blocks training queries come from, which evidence the ranker reads), trained on the cold view
and scored exactly as `recommender evaluate` scores the default. Prints one JSON line per
variant: recall@10, nDCG@10, recall@20, MRR, the candidate generator's recall and seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommender import settings  # noqa: E402
from recommender.candidates import FEATURES  # noqa: E402
from recommender.catalog import Catalog  # noqa: E402
from recommender.evaluation import DEPTH, _clean, make_split  # noqa: E402
from recommender.metrics import summarize  # noqa: E402
from recommender.model import DEFAULT_FEATURES, RelatedModel  # noqa: E402
from recommender.ranker import LinkRanker  # noqa: E402

OLD_FEATURES = (  # the evidence the pointwise ranker read before lambdarank
    "cos_full", "cos_title", "cos_full_rel", "rank_text", "days", "abs_days", "rank_date",
    "votes_date", "has_file", "same_provider", "topic_overlap", "query_day_density",
    "cos_recent", "rank_recent", "topic_match",
)
NEW = ("recent_in_degree", "age")  # measured separately: "default + ..." below
ALL_BUT_NEW = tuple(f for f in FEATURES if f not in NEW)
GROUPS = {
    "graph votes": ("votes_text", "votes_date", "votes_reverse", "rank_votes"),
    "popularity": ("log_in_degree", "has_list"),
    "date gap": ("days", "abs_days", "rank_date", "query_day_density"),
    "title-only similarity": ("cos_title",),
    "recency-weighted text": ("cos_recent", "rank_recent"),
    "provider and topics": ("same_provider", "topic_overlap", "topic_match"),
}
VARIANTS: dict[str, dict] = {
    "pointwise, earlier blocks, old features": {
        "ranker": LinkRanker(), "training_graph": "earlier", "features": OLD_FEATURES},
    "pointwise, every block, old features": {"ranker": LinkRanker(), "features": OLD_FEATURES},
    "lambdarank, earlier blocks, old features": {
        "training_graph": "earlier", "features": OLD_FEATURES},
    "lambdarank, every block, old features": {"features": OLD_FEATURES},
    "lambdarank, every block, all features": {"features": ALL_BUT_NEW},
    "default": {},
    "default + recent in-degree": {"features": DEFAULT_FEATURES + ("recent_in_degree",)},
    "default + candidate age": {"features": DEFAULT_FEATURES + ("age",)},
    **{f"all features without {name}": {"features": tuple(f for f in ALL_BUT_NEW
                                                          if f not in drop)}
       for name, drop in GROUPS.items()},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", help="catalog (default: as `recommender` finds it)")
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="variants to run")
    args = ap.parse_args()
    with Catalog(settings.catalog_location(args.catalog), readonly=True) as catalog:
        snapshot = catalog.snapshot()
    split = make_split(snapshot, args.test_fraction)
    print(json.dumps({"default_features": list(DEFAULT_FEATURES)}), flush=True)
    for name, params in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        model = RelatedModel.from_params(params).fit(split.view)
        ranked = _clean(model.rank_rows(split.test_rows, k=DEPTH).rows)
        m = summarize(ranked, split.relevant)
        print(json.dumps({"variant": name, "recall@10": round(m["recall@10"], 4),
                          "ndcg@10": round(m["ndcg@10"], 4),
                          "recall@20": round(m["recall@20"], 4), "mrr": round(m["mrr"], 4),
                          "candidate_recall": round(model.candidate_recall_, 4),
                          "seconds": round(time.perf_counter() - started, 1)}), flush=True)


if __name__ == "__main__":
    main()
