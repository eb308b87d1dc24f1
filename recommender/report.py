"""Evaluation reports for people: the summary table, the recall@k plot, the stored copy.

`recommender evaluate` stores its latest report in the instance folder, where the web
pages read it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

METRICS = ("recall@5", "recall@10", "recall@20", "mrr", "ndcg@10")


def summary_table(report: dict) -> str:
    """The model against the TF-IDF baseline and the time-aware one (TF-IDF × date decay);
    with folds, means over the folds and the model's spread (±1 standard deviation)."""
    counts, protocol = report["counts"], report["protocol"]
    folds = protocol.get("folds", 1)
    split = (f"{folds} rolling folds over the newest {protocol['test_fraction']:.0%}, cold"
             if folds > 1 else f"newest {protocol['test_fraction']:.0%}, cold")
    date = report.get("baseline_date")
    lines = [
        f"stories {counts['stories']}, queries {counts['queries']}, "
        f"test queries {counts['test_queries']} ({split})",
        f"{'metric':<10} {'model':>8} {'baseline':>9} {'ratio':>6}"
        + (f" {'tfidf×date':>10} {'ratio':>6}" if date else "")
        + (f" {'± model':>8}" if folds > 1 else ""),
    ]
    for m in METRICS:
        ours, base = report["model"][m], report["baseline"][m]
        line = f"{m:<10} {ours:>8.4f} {base:>9.4f} {_ratio(ours, base):>6}"
        if date:
            line += f" {date[m]:>10.4f} {_ratio(ours, date[m]):>6}"
        if folds > 1:
            line += f" {report['model_spread'][m]:>8.4f}"
        lines.append(line)
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def plot_recall(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = range(1, len(report["model"]["recall_curve"]) + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.plot(ks, report["model"]["recall_curve"], label="model", linewidth=2)
    ax.plot(ks, report["baseline"]["recall_curve"], label="TF-IDF baseline", linestyle="--")
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k (macro average)")
    ax.set_title(f"Recall against curated lists ({report['counts']['test_queries']} "
                 "cold test queries)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, folder: Path) -> Path:
    """Store the report (and its plot) for the evaluation page, replacing the last atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".report-{os.getpid()}.json"
    tmp.write_text(json.dumps(report))
    plot_recall(report, folder / "recall.png")
    os.replace(tmp, folder / "report.json")
    return folder / "report.json"
