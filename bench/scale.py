"""How cost grows with the catalog: load, train, artifact, serving and recall at each size.

    python bench/scale.py --stories 10000,100000 [--plot docs/scaling.png] [--workdir DIR]
    python bench/scale.py --stories 1000000 --incremental 10000 --compare-full > big.json
    python bench/scale.py --stories "" --combine small.json big.json --plot docs/scaling.png

Per size: a synthetic corpus (bench/synthetic.py) is bulk-loaded into a fresh SQLite catalog
through the importer's own write path (`Catalog.add_files`; YAML parsing is what
bench/import.py measures, so it is skipped here), then `recommender train` runs in a
subprocess whose process tree's RSS is sampled for the peak. Then: artifact size and load
time (a fresh process), GET-by-URL and POST latency through the Flask app in-process, the
RSS of the first and the private memory of the second of 2 gunicorn workers, and recall@10
against the generator's ground truth: 500 probe articles are withheld from the catalog and
asked for as new articles; their truth is the curated list the generator gave them.
Then the daily job: the newest `--incremental` articles (default 1 % of the stories), held
back so far, are loaded and `recommender train` runs again (an incremental train when the
settings allow: its seconds, peak RSS, how many stories it ranked, and recall@10 of the new
articles' precomputed answers against the generator's truth). With `--compare-full`,
`recommender train --full` then runs on the same catalog, measured the same way.
Prints JSON, with the growth exponent b of train time and peak memory (cost ∝ stories^b)
between consecutive sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import synthetic  # noqa: E402
from serve import start_server, wait_ready  # noqa: E402

from recommender.metrics import recall_at  # noqa: E402

PROBES = 500


def _tree_rss(root: int) -> int:
    """Bytes resident in `root` and all its descendants (shared pages counted per process:
    an upper bound)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_train(env: dict, *flags: str) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "recommender", "train", *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=HERE.parent)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.25)
    err = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"train failed: {err[-2000:]}")
    return time.perf_counter() - started, peak


def _smaps(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


def worker_memory(env: dict, port: int, urls: list[str]) -> dict:
    """RSS of the first gunicorn worker, and what the second adds (its private pages)."""
    import http.client
    import urllib.parse

    log_dir = tempfile.TemporaryDirectory()
    server = start_server(env, port, Path(log_dir.name) / "serve.log")
    try:
        wait_ready(port)
        for _ in range(2):  # keep-alive off: the two workers take turns
            for url in urls[:200]:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/v1/related?url=" + urllib.parse.quote(url, safe=""),
                             headers={"Connection": "close"})
                conn.getresponse().read()
                conn.close()
        workers = sorted(int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children")
                         .read_text().split())
        maps = [_smaps(w) for w in workers]
        first = max(maps, key=lambda m: m["Rss"])
        second = min(maps, key=lambda m: m["Rss"])
        extra = second["Private_Clean"] + second["Private_Dirty"]
        return {"first_worker_rss_mb": round(first["Rss"] / 1e6, 1),
                "second_worker_private_mb": round(extra / 1e6, 1),
                "second_worker_shared_mb": round((second["Rss"] - extra) / 1e6, 1),
                "extra_worker_ratio": round(extra / first["Rss"], 3)}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log_dir.cleanup()


def _percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "n": len(ms)}


def serve_and_recall(env: dict, corpus: synthetic.Corpus, probes: list[int],
                     rng: np.random.Generator, held_back: set[int]) -> dict:
    from service import create_app

    client = create_app({"CATALOG": env["RECOMMENDER_CATALOG"],
                         "MODELS": env["RECOMMENDER_MODELS"]}).test_client()
    listed = np.flatnonzero(corpus.has_file)
    gets = [int(i) for i in rng.choice(listed, 500, replace=False)
            if int(i) not in probes and int(i) not in held_back]
    client.get("/v1/related?url=" + corpus.url(gets[0]))  # model loaded before timing
    get_s, post_s, recalls = [], [], []
    for i in gets:
        started = time.perf_counter()
        resp = client.get("/v1/related", query_string={"url": corpus.url(i), "k": 10})
        get_s.append(time.perf_counter() - started)
        assert resp.status_code == 200, resp.get_json()
    for i in probes:
        body = {"title": corpus.titles[i], "excerpt": corpus.excerpts[i],
                "publishedDateTime": str(corpus.dates[i]) + "Z", "url": corpus.url(i)}
        started = time.perf_counter()
        resp = client.post("/v1/related?k=10&dedupe=false", json=body)
        post_s.append(time.perf_counter() - started)
        assert resp.status_code == 200, resp.get_json()
        got = [int(r["url"].rsplit("story-", 1)[1].split("/")[0].split("?")[0])
               for r in resp.get_json()["related"]]
        recalls.append(recall_at(got, set(int(j) for j in corpus.related[i]), 10))
    return {"get_by_url": _percentiles(get_s), "post_new_article": _percentiles(post_s),
            "recall@10": round(float(np.mean(recalls)), 4),
            "tfidf_cosine_recall@10": tfidf_recall(env, corpus, probes)}


def tfidf_recall(env: dict, corpus: synthetic.Corpus, probes: list[int]) -> float:
    """The same probes ranked by plain TF-IDF cosine over the model's own vectors."""
    from recommender import artifact
    from recommender.catalog import Catalog

    art = artifact.load(Path(env["RECOMMENDER_MODELS"]))
    with Catalog(env["RECOMMENDER_CATALOG"], readonly=True) as catalog:
        key_of = dict(catalog.db.execute("SELECT id, key FROM stories").fetchall())
    story = np.array([int(key_of[int(i)].rsplit("story-", 1)[1]) for i in art.model.ids_])
    full_t = art.model.index_.full.T.tocsr()
    recalls = []
    for i in probes:
        query, _ = art.model.text_.transform([corpus.titles[i]], [corpus.excerpts[i]])
        scores = (query @ full_t).toarray().ravel()
        top = np.argsort(-scores, kind="stable")[:11]
        got = [int(story[r]) for r in top if story[r] != i][:10]
        recalls.append(recall_at(got, set(corpus.related[i].tolist()), 10))
    return round(float(np.mean(recalls)), 4)


def measure(n: int, workdir: Path, port: int, incremental: int | None,
            compare_full: bool) -> dict:
    row: dict = {"stories": n}
    started = time.perf_counter()
    corpus = synthetic.generate(n, seed=1)
    row["generate_seconds"] = round(time.perf_counter() - started, 1)
    rng = np.random.default_rng(0)
    probes = sorted(int(i) for i in rng.choice(np.flatnonzero(corpus.has_file), PROBES,
                                               replace=False))
    files = np.setdiff1d(np.flatnonzero(corpus.has_file), probes)
    newest = files[np.argsort(corpus.dates[files], kind="stable")][
        -(incremental if incremental is not None else n // 100):]
    catalog, models = workdir / "catalog.sqlite3", workdir / "models"
    started = time.perf_counter()
    row["files_loaded"] = synthetic.bulk_load(corpus, catalog,
                                              skip=set(probes) | set(newest.tolist()))
    row["load_seconds"] = round(time.perf_counter() - started, 1)
    env = {**os.environ, "RECOMMENDER_CATALOG": str(catalog), "RECOMMENDER_MODELS": str(models)}
    seconds, peak = run_train(env)
    row["train_seconds"] = round(seconds, 1)
    row["train_peak_rss_mb"] = round(peak / 1e6, 1)
    current = models / "current"
    manifest = json.loads((current / "manifest.json").read_text())
    row["train_fit_seconds"] = manifest["training"]["fit_seconds"]
    row["train_precompute_seconds"] = manifest["training"]["precompute_seconds"]
    row["artifact_mb"] = round(sum(f.stat().st_size for f in current.resolve().iterdir()) / 1e6, 1)
    load = subprocess.run(
        [sys.executable, "-c", "import time, sys; from pathlib import Path; "
         "from recommender import artifact; t = time.perf_counter(); "
         "artifact.load(Path(sys.argv[1])); print(time.perf_counter() - t)", str(models)],
        capture_output=True, text=True, check=True, cwd=HERE.parent)
    row["artifact_load_seconds"] = round(float(load.stdout), 2)
    row.update(serve_and_recall(env, corpus, probes, rng, set(newest.tolist())))
    row["workers"] = worker_memory(env, port, [corpus.url(int(i)) for i in
                                               np.flatnonzero(corpus.has_file)[:400]])
    if len(newest):
        row["incremental"] = daily_import(corpus, newest, env, compare_full)
    return row


def daily_import(corpus: synthetic.Corpus, newest: np.ndarray, env: dict,
                 compare_full: bool) -> dict:
    """Load the held-back newest articles, then train (incremental when allowed) and, when
    asked, train --full: time, peak RSS, what each ranked, recall@10 of the new articles'
    answers."""
    catalog, models = Path(env["RECOMMENDER_CATALOG"]), Path(env["RECOMMENDER_MODELS"])
    out: dict = {"new_files": len(newest)}
    everything_else = set(np.flatnonzero(corpus.has_file).tolist()) - set(newest.tolist())
    started = time.perf_counter()
    synthetic.bulk_load(corpus, catalog, skip=everything_else)
    out["load_seconds"] = round(time.perf_counter() - started, 1)
    for name, flags in (("train", ()), ("full_train", ("--full",)))[:1 + compare_full]:
        seconds, peak = run_train(env, *flags)
        manifest = json.loads((models / "current" / "manifest.json").read_text())
        out[name] = {"kind": manifest["train"]["kind"], "reason": manifest["train"]["reason"],
                     "stories_ranked": manifest["train"]["ranked"],
                     "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1e6, 1),
                     "new_recall@10": new_recall(corpus, newest, env)}
    return out


def new_recall(corpus: synthetic.Corpus, newest: np.ndarray, env: dict) -> float:
    """Recall@10 of the current version's precomputed answers for the `newest` stories."""
    from recommender import artifact
    from recommender.catalog import Catalog

    art = artifact.load(Path(env["RECOMMENDER_MODELS"]))
    with Catalog(env["RECOMMENDER_CATALOG"], readonly=True) as catalog:
        key_of = dict(catalog.db.execute("SELECT id, key FROM stories").fetchall())
    story = np.array([int(key_of[int(i)].rsplit("story-", 1)[1]) for i in art.ids])
    row_of = {int(s): r for r, s in enumerate(story)}
    recalls = []
    for i in newest.tolist():
        top = art.top_rows[row_of[i]]
        got = [int(story[r]) for r in top[top >= 0]]
        recalls.append(recall_at(got, set(int(j) for j in corpus.related[i]), 10))
    return round(float(np.mean(recalls)), 4)


def growth(rows: list[dict], key: str) -> list[dict]:
    return [{"from": a["stories"], "to": b["stories"],
             "exponent": round(math.log(b[key] / a[key])
                               / math.log(b["stories"] / a["stories"]), 2)}
            for a, b in zip(rows, rows[1:], strict=False)]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["stories"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    axes[0].loglog(n, [r["train_seconds"] for r in rows], "o-", label="train")
    axes[0].loglog(n, [r["load_seconds"] for r in rows], "s--", label="bulk load")
    axes[0].set_title("seconds")
    axes[1].loglog(n, [r["train_peak_rss_mb"] for r in rows], "o-", label="train peak RSS")
    axes[1].loglog(n, [r["artifact_mb"] for r in rows], "s--", label="artifact")
    axes[1].loglog(n, [r["workers"]["first_worker_rss_mb"] for r in rows], "^:",
                   label="serving worker RSS")
    axes[1].set_title("MB")
    axes[2].semilogx(n, [r["get_by_url"]["p99_ms"] for r in rows], "o-", label="GET p99")
    axes[2].semilogx(n, [r["post_new_article"]["p99_ms"] for r in rows], "s--",
                     label="POST p99")
    axes[2].set_title("latency, ms (in-process)")
    for ax in axes:
        ax.set_xlabel("stories")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", default="10000,100000",
                    help="comma-separated catalog sizes (default 10000,100000)")
    ap.add_argument("--plot", type=Path, help="write the growth curves to this PNG")
    ap.add_argument("--workdir", type=Path, help="keep each size's catalog and models here")
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--incremental", type=int, metavar="FILES",
                    help="newest articles held back, then loaded for the incremental train "
                         "(default 1%% of the stories; 0: none)")
    ap.add_argument("--compare-full", action="store_true",
                    help="after the incremental train, train --full on the same catalog too")
    ap.add_argument("--combine", type=Path, nargs="+", default=[], metavar="JSON",
                    help="earlier reports of this script whose sizes join the growth "
                         "exponents and the plot (e.g. a 1,000,000 run made on its own)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.stories.split(",") if s]
    rows = [row for path in args.combine for row in json.loads(path.read_text())["sizes"]]
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            workdir = (args.workdir or Path(tmp)) / f"scale-{n}"
            workdir.mkdir(parents=True, exist_ok=True)
            rows.append(measure(n, workdir, args.port, args.incremental, args.compare_full))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    rows.sort(key=lambda r: r["stories"])
    report = {"sizes": rows, "cpu_count": os.cpu_count(),
              "growth": {"train_seconds": growth(rows, "train_seconds"),
                         "train_peak_rss_mb": growth(rows, "train_peak_rss_mb")}}
    if args.plot:
        plot(rows, args.plot)
        report["plot"] = str(args.plot)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
