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
    counts = report["counts"]
    lines = [
        f"stories {counts['stories']}, queries {counts['queries']}, "
        f"test queries {counts['test_queries']} (newest "
        f"{report['protocol']['test_fraction']:.0%}, cold)",
        f"{'metric':<10} {'model':>8} {'baseline':>9} {'ratio':>6}",
    ]
    for m in METRICS:
        ours, base = report["model"][m], report["baseline"][m]
        ratio = f"{ours / base:.2f}" if base else "-"
        lines.append(f"{m:<10} {ours:>8.4f} {base:>9.4f} {ratio:>6}")
    return "\n".join(lines)


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
