"""The service over a real socket: gunicorn workers, imports and retrains while serving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, SEEDS, free_port, run_cli
from test_service import FOX, FOX_VARIANTS, SEED

from recommender import artifact
from recommender.catalog import Catalog
from recommender.importer import import_paths
from recommender.training import train

SMALL = {"ranker__n_estimators": 60}


def fetch(base: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def start_server(env: dict, log_path: Path, workers: int = 2,
                 threads: int | None = None) -> tuple[str, subprocess.Popen]:
    """`recommender serve` in a real subprocess on a free loopback port, once ready."""
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - a pipe nobody reads would fill
    proc = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--port", str(port),
                             "--workers", str(workers),
                             *(["--threads", str(threads)] if threads else [])],
                            env={**os.environ, **env}, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if fetch(base, "/readyz")[0] == 200:
                return base, proc
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("server did not become ready: " + log_path.read_text()[-2000:])
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def live(seeds_catalog, seeds_models, tmp_path):
    """`recommender serve` with 2 workers on a private copy of the seeds catalog and models."""
    catalog = tmp_path / "catalog.sqlite3"
    shutil.copy(seeds_catalog, catalog)
    models = tmp_path / "models"
    shutil.copytree(seeds_models, models, symlinks=True)
    base, proc = start_server({"RECOMMENDER_CATALOG": str(catalog),
                               "RECOMMENDER_MODELS": str(models)}, tmp_path / "serve.log")
    yield base, catalog, models
    stop_server(proc)


def test_real_socket_get_post_and_variants(live):
    base, _, _ = live
    status, body = fetch(base, "/v1/related?k=3&url=" + urllib.request.quote(SEED, safe=""))
    assert status == 200 and len(body["related"]) == 3
    want = fetch(base, "/v1/related?url=" + urllib.request.quote(FOX, safe=""))[1]
    for variant in FOX_VARIANTS:
        assert fetch(base, "/v1/related?url=" + urllib.request.quote(variant, safe=""))[1] == want
    status, body = fetch(base, "/v1/related?k=2", {"title": "Facial recognition ban in schools"})
    assert status == 200 and len(body["related"]) == 2
    status, body = fetch(base, "/v1/related?url=https%3A%2F%2Fnowhere.example%2Fx")
    assert status == 404 and "no story" in body["message"]


def test_a_chunked_body_past_the_limit_is_a_json_413(live):
    """Without a Content-Length the limit can only be found while reading: still a 413."""
    import http.client

    host, port = live[0].removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    chunk = b'{"title": "' + b"x" * (80 * 1024) + b'"}'
    conn.request("POST", "/v1/related", body=iter([chunk]), encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    response = conn.getresponse()
    body = json.loads(response.read())
    assert response.status == 413, body
    assert "64 KiB" in body["message"]
    conn.close()


@pytest.mark.parametrize("threads,stalled", [(None, 4), (64, 50)])
def test_stalled_and_idle_connections_do_not_stop_the_service(seeds_catalog, seeds_models,
                                                              tmp_path, threads, stalled):
    """Stock gthread stopped answering /healthz for 40 s behind 8 connections that sent half
    a request, and for 25 s behind 50 idle ones. Now 50 idle connections cost no thread, and
    a stalled request holds one for at most 3 s: with the default threads a few stalled
    requests, with 64 a worker 50 of them, leave every ordinary request answered (a 10 s
    client timeout: far beyond a normal answer, far short of what the stalls once cost)."""
    import socket

    base, proc = start_server({"RECOMMENDER_CATALOG": str(seeds_catalog),
                               "RECOMMENDER_MODELS": str(seeds_models)},
                              tmp_path / "serve.log", threads=threads)
    host, port = urlsplit(base).hostname, urlsplit(base).port
    held = []
    try:
        for i in range(50 + stalled):
            s = socket.create_connection((host, port), timeout=5)
            if i < stalled:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        time.sleep(1.0)  # every stalled connection has reached a worker
        related = "/v1/related?k=3&url=" + urllib.request.quote(SEED, safe="")
        for _ in range(20):
            with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
                assert r.status == 200
            with urllib.request.urlopen(base + related, timeout=10) as r:
                assert r.status == 200 and json.loads(r.read())["related"]
    finally:
        for s in held:
            s.close()
        stop_server(proc)
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log  # a dropped client is one line, not a socket-error trace


def test_a_removed_story_leaves_every_answer_at_once(live):
    base, catalog, _ = live
    url = "/v1/related?k=100&url=" + urllib.request.quote(SEED, safe="")
    status, body = fetch(base, url)
    assert status == 200 and body["related"]
    gone = body["related"][0]["url"]  # precomputed at train time, first in this answer
    result = run_cli("remove", gone, catalog=catalog)
    assert result.returncode == 0, result.stderr
    for _ in range(4):  # every worker, its answer cache included
        status, body = fetch(base, url)
        assert status == 200 and gone not in [r["url"] for r in body["related"]]
    status, body = fetch(base, "/v1/related?url=" + urllib.request.quote(gone, safe=""))
    assert status == 404


def test_story_imported_after_training_is_served_at_once(live, tmp_path):
    base, catalog, _ = live
    new = tmp_path / "new.md"
    new.write_text('---\ntitle: "Schools weigh a ban on facial recognition cameras"\n'
                   'excerpt: "Privacy groups ask districts to stop biometric surveillance."\n'
                   "publishedDateTime: 2020-02-20T09:00:00Z\n"
                   'webUrl: "https://news.example/schools-facial-recognition"\n---\n')
    with Catalog(catalog) as cat:
        import_paths(cat, [new], on_error=lambda p, r: pytest.fail(r))
    status, body = fetch(base, "/v1/related?url=https%3A%2F%2Fnews.example%2Fschools-facial-"
                               "recognition%3Futm_source%3Dx")
    assert status == 200, body
    assert body["article"]["title"].startswith("Schools weigh")
    assert body["related"] and any("facial" in r["title"].lower() for r in body["related"])


def test_retrain_under_load_switches_version_without_failures(live):
    base, catalog, models = live
    before = fetch(base, "/v1/model")[1]["version"]
    failures: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        path = "/v1/related?k=5&url=" + urllib.request.quote(SEED, safe="")
        while not stop.is_set():
            try:
                status, body = fetch(base, path)
                if status != 200:
                    failures.append(f"{status} {body}")
                else:
                    seen.add(body["model"])
            except Exception as exc:  # noqa: BLE001 - any failure counts
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        with Catalog(catalog, readonly=True) as cat:
            after = train(cat, models, params=SMALL)["version"]
        deadline = time.monotonic() + 10
        while after not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert after in seen and before in seen
    # Every worker switches (each loads the new version in the background, then swaps).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if {fetch(base, "/v1/model")[1]["version"] for _ in range(20)} == {after}:
            break
        time.sleep(0.1)
    assert {fetch(base, "/v1/model")[1]["version"] for _ in range(20)} == {after}


def test_a_damaged_version_is_refused_and_the_old_one_keeps_serving(live):
    base, _, models = live
    before = fetch(base, "/v1/model")[1]["version"]
    bad = "29991231T000000Z"
    shutil.copytree(models / before, models / bad)
    (models / bad / "top_rows.npy").write_bytes(b"damaged")
    link = models / ".switch"
    os.symlink(bad, link)
    os.replace(link, models / "current")  # as if someone pointed `current` at it by hand
    assert artifact.current_version(models) == bad
    time.sleep(1)  # let the workers' background loads try it and refuse it
    for _ in range(10):
        status, body = fetch(base, "/v1/related?url=" + urllib.request.quote(SEED, safe=""))
        assert status == 200 and body["model"] == before
    assert fetch(base, "/v1/model")[1]["version"] == before
    assert Path(models / bad).exists()


def test_a_fresh_worker_facing_a_damaged_current_serves_the_newest_sound_version(
        seeds_catalog, seeds_models, tmp_path):
    from service import create_app

    models = tmp_path / "models"
    shutil.copytree(seeds_models, models, symlinks=True)
    good = artifact.current_version(models)
    bad = "29991231T000000Z"
    shutil.copytree(models / good, models / bad)
    (models / bad / "model.joblib").write_bytes(b"damaged")
    os.symlink(bad, models / ".switch")
    os.replace(models / ".switch", models / "current")
    client = create_app({"CATALOG": str(seeds_catalog), "MODELS": str(models)}).test_client()
    r = client.get("/v1/related", query_string={"url": SEED})
    assert r.status_code == 200 and r.get_json()["model"] == good


def test_two_replicas_on_one_postgres_catalog_serve_what_either_imports(postgres, tmp_path):
    catalog = postgres.new_database()
    models = tmp_path / "models"
    env = {"RECOMMENDER_CATALOG": catalog, "RECOMMENDER_MODELS": str(models)}
    assert run_cli("import", "-q", str(SEEDS), env=env).returncode == 0
    trained = run_cli("train", env=env)
    assert trained.returncode == 0, trained.stderr
    replicas = [start_server(env, tmp_path / f"replica{i}.log", workers=1) for i in (1, 2)]
    try:
        bases = [base for base, _ in replicas]
        for i, via in enumerate(bases):
            # A new article, imported next to one replica (its own host would run this).
            url = f"https://news.example/replica-{i}/facial-recognition-schools"
            (tmp_path / f"new{i}.md").write_text(
                f'---\ntitle: "Schools pause facial recognition, replica {i}"\n'
                f'excerpt: "Districts halt facial recognition cameras in schools."\n'
                f"publishedDateTime: 2020-08-0{i + 1}T10:00:00Z\nwebUrl: {url}\n---\n")
            imported = run_cli("import", "-q", str(tmp_path / f"new{i}.md"), env=env)
            assert imported.returncode == 0, imported.stderr
            answers = [fetch(base, "/v1/related?k=3&url=" + urllib.request.quote(url, safe=""))
                       for base in bases]
            for status, body in answers:
                assert status == 200, body
                assert body["article"]["url"] == url
                assert len(body["related"]) == 3
            assert answers[0][1] == answers[1][1], f"replicas disagree on what {via} imported"
        # The database drops every connection (a restart, a failover): replicas reconnect
        # without failing a request.
        import psycopg
        with psycopg.connect(postgres.url(), autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s", (urlsplit(catalog).path.lstrip("/"),)).fetchone()[0]
        assert dropped >= 2  # at least one connection per replica was cut
        for base in bases:
            for _ in range(12):
                status, body = fetch(base, "/v1/related?url=" + urllib.request.quote(SEED, safe=""))
                assert status == 200, body
    finally:
        for _, proc in replicas:
            stop_server(proc)
