"""Soak: the service under steady load through imports, retrains and a killed train.

    python bench/soak.py --minutes 5 [--stories 3000]

Starts `recommender serve` (2 workers, loopback) on a synthetic catalog holding half of a
corpus (bench/synthetic.py) and drives it with keep-alive clients (GET by URL variants and
POST new articles) for the whole run. Every minute a further slice of the corpus is
imported and a retrain runs; in the second minute a train is first killed with SIGKILL
part-way. Prints JSON: requests, failed requests, p99 and worker RSS per minute, every
model version and when it was first and last served, whether each retrain was served
afterwards and the killed train left the previous version serving, whether each newly
imported story was servable at once, and the RSS growth after warm-up.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import signal
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
from serve import HOST, start_server, wait_ready  # noqa: E402

from recommender import artifact  # noqa: E402

_STOP = None  # a multiprocessing Event the load processes inherit when forked


def _client(port: int, requests: list, until: float, seed: int, out: list) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    while time.time() < until and not _STOP.is_set():
        method, path, body = requests[rng.randrange(len(requests))]
        started = time.time()
        model, ok = "", False
        try:
            conn.request(method, path, body=body,
                         headers={"Content-Type": "application/json"} if body else {})
            resp = conn.getresponse()
            data = resp.read()
            ok = resp.status == 200
            if ok:
                model = json.loads(b"{" + data[data.rindex(b'"model"'):])["model"]
        except (OSError, http.client.HTTPException, ValueError):
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
        out.append((started, time.time() - started, ok, model))
    conn.close()


def _load_process(args: tuple) -> list:
    port, requests, until, threads, seed = args
    out: list = []
    ts = [threading.Thread(target=_client, args=(port, requests, until, seed * 100 + i, out))
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def _workers_rss(master: int) -> int:
    total = 0
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    for pid in children:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recommender", *args], env=env,
                          capture_output=True, text=True, cwd=HERE.parent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=5)
    ap.add_argument("--stories", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2, help="client threads per load process")
    ap.add_argument("--port", type=int, default=8791)
    args = ap.parse_args()
    global _STOP
    ctx = multiprocessing.get_context("fork")
    _STOP = ctx.Event()
    minutes = max(args.minutes, 2)
    corpus = synthetic.generate(args.stories, seed=4)
    with_file = np.flatnonzero(corpus.has_file)
    first, rest = with_file[: len(with_file) // 2], with_file[len(with_file) // 2:]
    slices = np.array_split(rest, minutes - 1)
    events: list[dict] = []

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        models = tmp_path / "models"
        env = {**os.environ, "RECOMMENDER_CATALOG": str(tmp_path / "catalog.sqlite3"),
               "RECOMMENDER_MODELS": str(models)}

        def import_slice(rows: np.ndarray, name: str) -> None:
            folder = tmp_path / name
            folder.mkdir()
            rng = np.random.default_rng(len(rows))
            for i in rows:
                (folder / f"{int(i):07d}.md").write_text(
                    synthetic.article_text(corpus, int(i), rng), encoding="utf-8")
            result = _cli(env, "import", "-q", str(folder))
            if result.returncode != 0:
                raise RuntimeError(f"import failed: {result.stderr[-2000:]}")

        import_slice(first, "initial")
        if _cli(env, "train").returncode != 0:
            raise RuntimeError("initial train failed")
        rng = random.Random(0)
        requests = []
        for i in rng.sample(list(first), min(2000, len(first))):
            url = corpus.url(int(i))
            url = rng.choice([url, url + "/amp", url + "?utm_source=x", url.replace("www.", "")])
            requests.append(("GET", "/v1/related?k=10&url=" + urllib.parse.quote(url, safe=""),
                             None))
        for i in rng.sample(range(args.stories), 300):
            requests.append(("POST", "/v1/related?k=10", json.dumps({
                "title": corpus.titles[i] + " update", "excerpt": corpus.excerpts[i],
                "publishedDateTime": str(corpus.dates[i]) + "Z"}).encode()))

        server = start_server(env, args.port, tmp_path / "serve.log")
        try:
            wait_ready(args.port)
            warm_until = time.time() + 15  # every GET URL answered once by each worker
            with ctx.Pool(1) as pool:
                pool.apply(_load_process, ((args.port, requests, warm_until, args.threads, 9),))
            start = time.time()
            # Load goes on until 20 s after the last retrain (so it is seen served); trains
            # under load may take longer than their minute. `until` is only a hard bound.
            until = start + minutes * 60 * 3
            pool = ctx.Pool(2)
            load = pool.map_async(_load_process, [(args.port, requests, until, args.threads, s)
                                                  for s in range(2)])
            rss: list[tuple[float, int]] = []
            done = threading.Event()

            def sample() -> None:
                while not done.wait(5):
                    rss.append((time.time() - start, _workers_rss(server.pid)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            for minute in range(minutes):
                time.sleep(max(0.0, start + minute * 60 - time.time()))
                if minute >= 1:
                    rows = slices[minute - 1]
                    import_slice(rows, f"minute{minute}")
                    # Imported stories are servable at once, before any retrain.
                    url = corpus.url(int(rows[0]))
                    conn = http.client.HTTPConnection(HOST, args.port, timeout=30)
                    conn.request("GET", "/v1/related?url=" + urllib.parse.quote(url, safe=""))
                    status = conn.getresponse().status
                    conn.close()
                    events.append({"at": round(time.time() - start, 1), "event": "import",
                                   "files": len(rows), "new_story_status": status})
                if minute == 1:
                    before = artifact.current_version(models)
                    proc = subprocess.Popen([sys.executable, "-m", "recommender", "train"],
                                            env=env, cwd=HERE.parent,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(3)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    events.append({"at": round(time.time() - start, 1), "event": "train killed",
                                   "current_before": before,
                                   "current_after": artifact.current_version(models)})
                if minute >= 1:
                    result = _cli(env, "train")
                    events.append({"at": round(time.time() - start, 1), "event": "train",
                                   "ok": result.returncode == 0,
                                   "version": artifact.current_version(models)})
                if events:
                    print(json.dumps(events[-1]), file=sys.stderr, flush=True)
            time.sleep(20)
            _STOP.set()
            end = time.time() - start
            results = [r for part in load.get() for r in part]
            done.set()
            sampler.join()
            pool.close()
        finally:
            server.terminate()
            server.wait(timeout=30)

    t = np.array([r[0] - start for r in results])
    lat = np.array([r[1] for r in results])
    ok = np.array([r[2] for r in results])
    models_seen = [r[3] for r in results]
    per_minute = []
    for m in range(int(np.ceil(end / 60))):
        sel = (t >= m * 60) & (t < (m + 1) * 60)
        samples = [v for (at, v) in rss if m * 60 <= at < (m + 1) * 60]
        per_minute.append({
            "minute": m + 1, "requests": int(sel.sum()), "failed": int((~ok[sel]).sum()),
            "p99_ms": round(float(np.percentile(lat[sel], 99)) * 1000, 2) if sel.any() else None,
            "workers_rss_mb": round(max(samples) / 1e6, 1) if samples else None})
    versions: dict[str, dict] = {}
    for at, model in zip(t, models_seen, strict=True):
        if model:
            v = versions.setdefault(model, {"first_served": at, "last_served": at})
            v["last_served"] = max(v["last_served"], at)
    trains = [e for e in events if e["event"] == "train"]
    killed = next(e for e in events if e["event"] == "train killed")
    served_after = all(e["version"] in versions and versions[e["version"]]["last_served"]
                       > e["at"] for e in trains)
    # No answer from an older model once a newer one has been published for 10 s.
    stale = sum(1 for at, model in zip(t, models_seen, strict=True) if model and any(
        e["at"] + 10 < at and e["version"] != model and model < e["version"] for e in trains))
    # Warm-up ends with the first minute (every worker has answered every URL once).
    rss_first = max(v for at, v in rss if at < 60) / 1e6
    rss_last = max(v for at, v in rss if at >= end - 60) / 1e6
    report = {
        "minutes": minutes, "seconds_under_load": round(end, 1), "stories": args.stories,
        "requests": int(len(results)), "failed_requests": int((~ok).sum()),
        "per_minute": per_minute,
        "events": events,
        "versions": {k: {"first_served": round(v["first_served"], 1),
                         "last_served": round(v["last_served"], 1)}
                     for k, v in sorted(versions.items())},
        "every_retrain_served_afterwards": served_after,
        "answers_from_an_older_model_10s_after_a_retrain": stale,
        "killed_train_left_previous_serving": killed["current_before"] == killed["current_after"],
        "new_stories_servable_at_once": all(e["new_story_status"] == 200 for e in events
                                            if e["event"] == "import"),
        "rss_growth_after_warmup": round((rss_last - rss_first) / rss_first, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
