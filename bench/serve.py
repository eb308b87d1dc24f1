"""Service latency and throughput on a synthetic catalog, against /healthz in the same run.

    python bench/serve.py --stories 100000 [--seconds 20] [--retrain] [--http-caching]

Builds a synthetic catalog (bench/synthetic.py), imports and trains it, starts `recommender
serve` with 2 workers on 127.0.0.1, then drives each endpoint with a closed-loop load of
keep-alive clients (2 processes × --threads) for a fixed time: /healthz and GET /v1/related
by URL variants (AMP, cache, tracking tags; --filter-share of them with filters) in
alternating slices, then POST /v1/related with
new articles. The catalog and model are read once first so no phase measures the disk.
With --retrain, a retrain runs during a GET phase, and the report counts failed requests and
versions served. With --http-caching, revalidations (If-None-Match with each answer's tag:
304s) and GETs accepting gzip run against /healthz in alternating slices too.
Loopback only; every loop is bounded by --seconds. Prints JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import synthetic  # noqa: E402

from recommender.catalog import Catalog  # noqa: E402
from recommender.importer import import_paths  # noqa: E402
from recommender.training import train  # noqa: E402

HOST = "127.0.0.1"


def _client(port: int, requests: list[tuple], seconds: float, out: list, seed: int,
            track_models: bool) -> None:
    """Requests are (method, path, body) or (method, path, body, headers); a status of 400
    or more counts as an error (a 304 is a revalidated answer)."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    lat, errors, models = [], 0, set()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        method, path, body, *extra = requests[rng.randrange(len(requests))]
        headers = {"Content-Type": "application/json"} if body else {}
        headers.update(*extra)
        start = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            lat.append(time.perf_counter() - start)
            if resp.status >= 400:
                errors += 1
            elif track_models:  # the answer ends with "model": "<version>"}: read only that
                models.add(json.loads(b"{" + data[data.rindex(b'"model"'):])["model"])
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
    conn.close()
    out.append((lat, errors, models))


def _load_process(args: tuple) -> tuple[list[float], int, list[str]]:
    port, requests, seconds, threads, seed, track_models = args
    out: list = []
    ts = [threading.Thread(target=_client, args=(port, requests, seconds, out, seed * 100 + i,
                                                 track_models))
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat = [x for o in out for x in o[0]]
    return lat, sum(o[1] for o in out), sorted({m for o in out for m in o[2] if m})


def _load(port: int, requests: list, seconds: float, threads: int,
          track_models: bool) -> tuple[list[float], int, set[str]]:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_load_process, [(port, requests, seconds, threads, s, track_models)
                                           for s in range(2)])
    return ([x for r in results for x in r[0]], sum(r[1] for r in results),
            {m for r in results for m in r[2]})


def _summary(lat_list: list[float], errors: int, models: set[str], seconds: float) -> dict:
    lat = np.array(lat_list)
    return {
        "requests": int(len(lat)),
        "req_per_s": round(len(lat) / seconds, 1),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 2) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 2) if len(lat) else None,
        "errors": int(errors),
        "models": sorted(models),
    }


def drive(port: int, requests: list, seconds: float, threads: int,
          track_models: bool = False) -> dict:
    """Closed-loop load from 2 processes; returns req/s, p50/p99 (ms), errors, and with
    `track_models` the model versions that answered."""
    return _summary(*_load(port, requests, seconds, threads, track_models), seconds)


def drive_alternating(port: int, phases: dict[str, list], seconds: float, threads: int,
                      slices: int = 4) -> dict[str, dict]:
    """`drive` for each phase, `seconds` each, run as `slices` interleaved slices (A B A B
    ...): phases compared with each other then see the same machine. On this shared 2-core
    VM, /healthz alone swung between 1,499 and 4,446 req/s from one 20 s run to the next."""
    acc: dict[str, tuple[list, list]] = {name: ([], []) for name in phases}
    for _ in range(slices):
        for name, requests in phases.items():
            lat, errors, _ = _load(port, requests, seconds / slices, threads, False)
            acc[name][0].extend(lat)
            acc[name][1].append(errors)
    return {name: _summary(lat, sum(errors), set(), seconds)
            for name, (lat, errors) in acc.items()}


def start_server(env: dict, port: int, log_path: Path, workers: int = 2,
                 threads: int | None = None) -> subprocess.Popen:
    """`recommender serve` on loopback, its output to `log_path` (a pipe nobody reads would
    fill and block it); returns once the process is started, not ready (see wait_ready)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--host", HOST,
                                 "--port", str(port), "--workers", str(workers),
                                 *(["--threads", str(threads)] if threads else [])], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parent)


def warm_page_cache(*paths: Path) -> None:
    """Read the catalog and the model once, as a server that has been up a while has them in
    memory: otherwise the first phase measures this machine's disk, not the service (seen
    here after a retrain: GET by URL at 671 req/s in one run, 2,344 in the next)."""
    for path in paths:
        for file in ([path] if path.is_file() else sorted(path.rglob("*"))):
            if file.is_file():
                with open(file, "rb") as f:
                    while f.read(1 << 20):
                        pass


def wait_ready(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def _tag(port: int, path: str) -> str:
    """The ETag of the answer to `path` (what a cache holds after its first request)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("ETag") or ""
    finally:
        conn.close()


def _filters(corpus, i: int, rng: random.Random) -> str:
    """Filters as a news site would send them: a week around a story, one provider, a later
    period (which the precomputed top 100 may hold few of: ranked again on the fly), or the
    second page."""
    day = corpus.dates[i].astype("datetime64[D]")
    kind = rng.randrange(4)
    if kind == 0:
        return f"&since={day - 3}&until={day + 3}"
    if kind == 1:
        return "&provider=" + corpus.provider_domain(int(corpus.providers[i]))
    if kind == 2:
        return f"&since={day + 180}"
    return "&offset=10"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=20, help="per phase")
    ap.add_argument("--threads", type=int, default=2, help="client threads per load process")
    ap.add_argument("--server-threads", type=int,
                    help="threads per server worker (default: `recommender serve`'s)")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--retrain", action="store_true", help="retrain during a GET phase")
    ap.add_argument("--filter-share", type=float, default=0.1,
                    help="share of GET requests with filters (a date window, a provider, a "
                         "later period, a second page), default 0.1")
    ap.add_argument("--http-caching", action="store_true",
                    help="also measure revalidations (If-None-Match: 304) and gzip GETs "
                         "against /healthz, in alternating slices")
    ap.add_argument("--workdir", type=Path,
                    help="keep the catalog and model here; a later run with the same "
                         "--workdir and --stories reuses them (default: a temporary folder)")
    args = ap.parse_args()
    report: dict = {"stories": args.stories}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = args.workdir or Path(tmp)
        tmp_path.mkdir(parents=True, exist_ok=True)
        corpus = synthetic.generate(args.stories, seed=1)
        catalog_path, models = tmp_path / "catalog.sqlite3", tmp_path / "models"
        built = (tmp_path / "built.json")
        if built.exists() and json.loads(built.read_text())["stories"] == args.stories:
            report.update(json.loads(built.read_text()))
            manifest = json.loads((models / "current" / "manifest.json").read_text())
        else:
            synthetic.write_files(corpus, tmp_path / "files", seed=1)
            started = time.perf_counter()
            with Catalog(catalog_path) as catalog:
                import_paths(catalog, [tmp_path / "files"], on_error=lambda p, r: None)
            report["import_seconds"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            with Catalog(catalog_path, readonly=True) as catalog:
                manifest = train(catalog, models)
            report["train_seconds"] = round(time.perf_counter() - started, 1)
            report["artifact_mb"] = round(sum(f.stat().st_size for f in
                                              (models / manifest["version"]).iterdir()) / 1e6, 1)
            built.write_text(json.dumps(report))

        rng = random.Random(0)
        gets = []
        for i in rng.sample(range(args.stories), min(5000, args.stories)):
            url = corpus.url(i)
            url = rng.choice([url, url + "/amp", url + "?utm_source=x&fbclid=y",
                              url.replace("https://www.", "http://")])
            filters = _filters(corpus, i, rng) if rng.random() < args.filter_share else ""
            gets.append(("GET", "/v1/related?k=10&url=" + urllib.parse.quote(url, safe="")
                         + filters, None))
        posts = [("POST", "/v1/related?k=10", json.dumps({
            "title": corpus.titles[i], "excerpt": corpus.excerpts[i],
            "publishedDateTime": str(corpus.dates[i]) + "Z"}).encode())
            for i in rng.sample(range(args.stories), min(2000, args.stories))]
        env = {**os.environ, "RECOMMENDER_CATALOG": str(catalog_path),
               "RECOMMENDER_MODELS": str(models)}
        warm_page_cache(catalog_path, models / manifest["version"])
        server = start_server(env, args.port, tmp_path / "serve.log",
                              threads=args.server_threads)
        try:
            wait_ready(args.port)
            drive(args.port, gets[:200], 3, args.threads)  # warm both workers
            report.update(drive_alternating(
                args.port, {"healthz": [("GET", "/healthz", None)], "get_by_url": gets},
                args.seconds, args.threads))
            if args.http_caching:
                # What a CDN and browsers send: revalidations of answers they hold (the tag
                # of each request, asked once), and GETs that accept gzip.
                tagged = [(m, p, b, {"If-None-Match": _tag(args.port, p)})
                          for m, p, b in gets[:1000]]
                gzipped = [(m, p, b, {"Accept-Encoding": "gzip"}) for m, p, b in gets]
                both = drive_alternating(
                    args.port, {"healthz": [("GET", "/healthz", None)],
                                "revalidate": tagged, "get_gzip": gzipped},
                    args.seconds, args.threads)
                report["http_caching"] = {
                    **both, "revalidate_vs_healthz": round(
                        both["revalidate"]["req_per_s"] / both["healthz"]["req_per_s"], 3),
                    "get_gzip_vs_healthz": round(
                        both["get_gzip"]["req_per_s"] / both["healthz"]["req_per_s"], 3)}
            report["post_new_article"] = drive(args.port, posts, args.seconds, args.threads)
            if args.retrain:
                before = manifest["version"]
                box: dict = {}

                def retrain() -> None:
                    time.sleep(1)
                    with Catalog(catalog_path, readonly=True) as catalog:
                        box["version"] = train(catalog, models)["version"]

                t = threading.Thread(target=retrain)
                t.start()
                during = drive(args.port, gets, args.seconds, args.threads, track_models=True)
                t.join()
                after = drive(args.port, gets, 3, args.threads, track_models=True)
                report["retrain"] = {"before": before, "after": box.get("version"),
                                     "during": during, "failed_requests": during["errors"],
                                     "served_after": after["models"]}
        finally:
            server.terminate()
            server.wait(timeout=30)
    for phase in ("healthz", "get_by_url", "post_new_article"):
        report[phase].pop("models", None)
    for phase in ("healthz", "revalidate", "get_gzip"):
        report.get("http_caching", {}).get(phase, {}).pop("models", None)
    report["get_vs_healthz_throughput"] = round(
        report["get_by_url"]["req_per_s"] / max(report["healthz"]["req_per_s"], 1e-9), 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
