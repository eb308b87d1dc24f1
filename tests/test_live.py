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
from recommender.recommend import Filters, Recommender
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


def test_preflight_and_revalidation_over_a_real_socket(live):
    """What a browser on another origin and a CDN do, through gunicorn and our worker: a
    preflight (204, the CORS headers), a GET, then a revalidation on the same keep-alive
    connection (304, no body, the connection still usable)."""
    import http.client

    base, _, _ = live
    conn = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=10)
    path = "/v1/related?k=3&url=" + urllib.request.quote(SEED, safe="")
    origin = {"Origin": "https://news.example"}
    conn.request("OPTIONS", path, headers={**origin, "Access-Control-Request-Method": "GET"})
    preflight = conn.getresponse()
    assert preflight.status == 204 and preflight.read() == b""
    assert preflight.getheader("Access-Control-Allow-Origin") == "https://news.example"
    conn.request("GET", path, headers=origin)
    first = conn.getresponse()
    body, tag = json.loads(first.read()), first.getheader("ETag")
    assert first.status == 200 and len(body["related"]) == 3 and tag
    assert first.getheader("Access-Control-Allow-Origin") == "https://news.example"
    conn.request("GET", path, headers={**origin, "If-None-Match": tag})
    again = conn.getresponse()
    assert again.status == 304 and again.read() == b"" and again.getheader("ETag") == tag
    conn.request("GET", path)
    assert conn.getresponse().status == 200  # the connection survived the bodiless 304
    conn.close()


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


STALLERS = {
    "idle": b"",
    "partial head": b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    "partial body": (b"POST /v1/related HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 1000\r\n\r\n{\"title\": \""),
    "partial chunked body": (b"POST /v1/related HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\n{\"tit\r\n"),
}


def test_stalled_and_idle_connections_do_not_stop_the_service(seeds_catalog, seeds_models,
                                                              tmp_path):
    """Stock gthread stopped answering /healthz for 40 s behind 8 connections that sent half
    a request, and for 25 s behind 50 idle ones. Now a request is gathered in the poller
    until it is whole, so no kind of stalled connection holds a thread: with the default
    threads, 50 of each kind leave every ordinary request answered (a 10 s client timeout:
    far beyond a normal answer, far short of what the stalls once cost)."""
    import socket

    base, proc = start_server({"RECOMMENDER_CATALOG": str(seeds_catalog),
                               "RECOMMENDER_MODELS": str(seeds_models)},
                              tmp_path / "serve.log")
    host, port = urlsplit(base).hostname, urlsplit(base).port
    held = []
    try:
        for payload in STALLERS.values():
            for _ in range(50):
                s = socket.create_connection((host, port), timeout=5)
                if payload:
                    s.sendall(payload)
                held.append(s)
        time.sleep(1.0)  # every stalled connection has reached a worker
        related = "/v1/related?k=3&url=" + urllib.request.quote(SEED, safe="")
        for _ in range(20):
            with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
                assert r.status == 200
            with urllib.request.urlopen(base + related, timeout=10) as r:
                assert r.status == 200 and json.loads(r.read())["related"]
            status, body = fetch(base, "/v1/related?k=3", {"title": "facial recognition"})
            assert status == 200 and body["related"]
    finally:
        for s in held:
            s.close()
        stop_server(proc)
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log  # a dropped client is one line, not a socket-error trace


FRAMING = {
    "request line too long": (b"GET /v1/related?url=" + b"a" * 9000 + b" HTTP/1.1\r\n"
                              b"Host: x\r\n\r\n", 414),
    "too many headers": (b"GET /v1/model HTTP/1.1\r\n"
                         + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n", 431),
    "header too large": b"GET /v1/model HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
    "not HTTP": (b"GARBAGE\r\n\r\n", 400),
    "length and chunked": (b"POST /v1/related HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "bad chunk size": (b"POST /v1/related HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                       b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
}
FRAMING["header too large"] = (FRAMING["header too large"], 431)


def test_malformed_http_gets_a_json_4xx_not_an_html_page(live):
    """Errors gunicorn finds before the application runs were its HTML pages."""
    import socket

    host, port = urlsplit(live[0]).hostname, urlsplit(live[0]).port
    for name, (raw, code) in FRAMING.items():
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(raw)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % code), (name, head)
        assert b"content-type: application/json" in head.lower(), (name, head)
        assert set(json.loads(body)) == {"error", "message"}, (name, body)


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


def _seed_urls() -> list[str]:
    from recommender.frontmatter import parse_file

    return [parse_file(p).item.urls["webUrl"] for p in sorted(SEEDS.iterdir())]


def _core_answers(urls: list[str], env: dict) -> dict[str, dict]:
    """What `recommender recommend --json` says for each URL (the answer's payload, from the
    core the CLI calls, in this process: a command per URL would start Python each time):
    the reference every answer of the service is compared with."""
    rec = Recommender(env["RECOMMENDER_CATALOG"], Path(env["RECOMMENDER_MODELS"]))
    try:
        return {url: json.loads(json.dumps(rec.by_url(url, Filters()).payload()))
                for url in urls}
    finally:
        rec.close()


class _Watcher:
    """Asks the service for every URL, round and round, until stopped; keeps every answer."""

    def __init__(self, base: str, urls: list[str]) -> None:
        self.seen: list[tuple[str, int, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(base, urls), daemon=True)

    def _run(self, base: str, urls: list[str]) -> None:
        while not self._stop.is_set() and len(self.seen) < 20_000:
            for url in urls:
                status, body = fetch(base, "/v1/related?url=" + urllib.request.quote(url, ""))
                self.seen.append((url, status, body))

    def __enter__(self) -> _Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self, expected: dict[str, dict[str, dict]]) -> None:
        """Every answer a 200 equal to the reference for the model it names, or a 503."""
        assert self.seen
        for url, status, body in self.seen:
            assert status in (200, 503), (status, body)
            if status == 200:
                assert body == expected[body["model"]][url], (url, body["model"])


def _wait_for_model(base: str, version: str) -> None:
    deadline = time.monotonic() + 30
    while {fetch(base, "/v1/model")[1].get("version") for _ in range(8)} != {version}:
        assert time.monotonic() < deadline, f"the service never served {version}"
        time.sleep(0.1)


def test_a_catalog_rebuilt_under_the_service_is_never_read_with_the_old_model(live, tmp_path):
    """The model's rows name story ids of the catalog it was trained on. A catalog rebuilt
    under the same name gives other ids: until a model of the new catalog is current, the
    service says so (503), and never answers with the old model's rows mapped onto it."""
    base, catalog, models = live
    env = {"RECOMMENDER_CATALOG": str(catalog), "RECOMMENDER_MODELS": str(models)}
    urls = _seed_urls()
    old = fetch(base, "/v1/model")[1]["version"]
    expected = {old: _core_answers(urls, env)}
    extra = tmp_path / "first.md"  # imported first, so that every seed gets another id
    extra_url = "https://news.example/2020/facial-recognition-ban-vote"
    extra.write_text('---\ntitle: "Council votes on a facial recognition ban"\n'
                     'excerpt: "The city council votes on banning facial recognition."\n'
                     f"publishedDateTime: 2020-03-01T10:00:00Z\nwebUrl: {extra_url}\n---\n")
    with _Watcher(base, urls) as watcher:
        time.sleep(0.5)
        (tmp_path / "old").mkdir()
        for part in tmp_path.glob("catalog.sqlite3*"):  # the catalog and its WAL files
            part.rename(tmp_path / "old" / part.name)
        assert run_cli("import", "-q", str(extra), env=env).returncode == 0
        assert run_cli("import", "-q", *map(str, sorted(SEEDS.iterdir(), reverse=True)),
                       env=env).returncode == 0
        status, body = fetch(base, "/readyz")
        assert status == 503 and "another catalog" in body["message"], body
        status, body = fetch(base, "/v1/related?url=" + urllib.request.quote(urls[0], ""))
        assert status == 503 and "another catalog" in body["message"], body
        time.sleep(0.5)
        trained = run_cli("train", "-q", "--param", "ranker__n_estimators=60", env=env)
        assert trained.returncode == 0, trained.stderr
        new = artifact.current_version(models)
        _wait_for_model(base, new)
        time.sleep(0.5)
    expected[new] = _core_answers(urls, env)
    assert expected[new] != expected[old]  # the same stories, other ids: the test can fail
    watcher.check(expected)
    assert any(body.get("model") == new for _, _, body in watcher.seen)
    status, body = fetch(base, "/v1/related?url=" + urllib.request.quote(extra_url, ""))
    assert status == 200 and body["article"]["url"] == extra_url


@pytest.mark.parametrize("damage", ["written through a memory map", "truncated"])
def test_a_version_damaged_in_place_is_refused_before_it_is_read(live, tmp_path, damage):
    """Damage to the served version's files after it was loaded and verified: every answer
    comes from the newest sound version (or is a 503), never from the damaged one, never a
    500; /readyz names the version actually served."""
    import numpy as np

    base, catalog, models = live
    env = {"RECOMMENDER_CATALOG": str(catalog), "RECOMMENDER_MODELS": str(models)}
    urls = _seed_urls()
    older = artifact.current_version(models)
    assert run_cli("train", "-q", "--param", "ranker__n_estimators=40", env=env).returncode == 0
    newer = artifact.current_version(models)
    _wait_for_model(base, newer)
    expected = {newer: _core_answers(urls, env)}
    frozen = tmp_path / "older-models"  # the same older version, made current elsewhere
    shutil.copytree(models, frozen, symlinks=True)
    (frozen / "current").unlink()
    os.symlink(older, frozen / "current")
    expected[older] = _core_answers(urls, {**env, "RECOMMENDER_MODELS": str(frozen)})
    with _Watcher(base, urls) as watcher:
        time.sleep(0.5)
        target = models / newer / "top_rows.npy"
        if damage == "truncated":
            os.truncate(target, target.stat().st_size // 2)
        else:
            rows = np.load(target, mmap_mode="r+")
            rows[:] = 2**30
            rows.flush()
            del rows
        _wait_for_model(base, older)
        time.sleep(0.5)
    watcher.check(expected)
    status, body = fetch(base, "/readyz")
    assert status == 200 and body["model"] == older, body


def test_gunicorn_cmd_args_and_settings_reach_the_server(seeds_catalog, seeds_models, tmp_path):
    """GUNICORN_CMD_ARGS was ignored; now it applies as for any gunicorn app, and the
    service's own settings come from the environment."""
    env = {"RECOMMENDER_CATALOG": str(seeds_catalog), "RECOMMENDER_MODELS": str(seeds_models),
           "GUNICORN_CMD_ARGS": "--workers 1", "RECOMMENDER_MAX_BODY": "2048"}
    base, proc = start_server(env, tmp_path / "serve.log", workers=2)
    try:
        assert len(_children(proc.pid)) == 1
        status, body = fetch(base, "/v1/related", {"title": "x" * 3000})
        assert status == 413 and "2 KiB" in body["message"]
    finally:
        stop_server(proc)


def test_the_workers_answer_cache_lives_and_dies_with_the_server(seeds_catalog, seeds_models,
                                                                 tmp_path):
    """`serve` gives its workers one shared answer cache in a private temporary directory:
    an answer asked for on many connections (both workers) is stored once, the directory
    is readable by its owner only, and it is gone when the server stops."""
    import stat

    import diskcache

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"RECOMMENDER_CATALOG": str(seeds_catalog), "RECOMMENDER_MODELS": str(seeds_models),
           "TMPDIR": str(tmp)}
    base, proc = start_server(env, tmp_path / "serve.log", workers=2)
    try:
        url = "/v1/related?url=" + urllib.request.quote(SEED, safe="")
        answers = {json.dumps(fetch(base, url)[1]) for _ in range(12)}  # a connection each
        assert len(answers) == 1
        (cache_dir,) = tmp.glob("recommender-answers-*")
        assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
        with diskcache.Cache(str(cache_dir)) as shared:
            assert len(shared) == 1
    finally:
        stop_server(proc)
    assert not list(tmp.glob("recommender-answers-*"))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or one that just ended
        if fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def test_the_pages_on_their_own_port(seeds_catalog, seeds_models, tmp_path):
    """pages_port: the editors' pages answer there only, and the API's port the API only."""
    pages_port = free_port()
    base, proc = start_server({"RECOMMENDER_CATALOG": str(seeds_catalog),
                               "RECOMMENDER_MODELS": str(seeds_models),
                               "RECOMMENDER_INSTANCE": str(tmp_path / "instance"),
                               "RECOMMENDER_PAGES_PORT": str(pages_port)},
                              tmp_path / "serve.log", workers=1)
    pages = f"http://127.0.0.1:{pages_port}"
    try:
        api = "/v1/related?k=2&url=" + SEED
        assert fetch(base, api)[0] == 200
        status, body = fetch(pages, api)
        assert status == 404 and body["error"] == "not_found"
        for path in ("/", "/login", "/stories?q=facial"):
            with urllib.request.urlopen(pages + path, timeout=30) as r:
                assert r.status == 200 and "text/html" in r.headers["Content-Type"]
            status, body = fetch(base, path)
            assert status == 404 and body["message"].startswith("no such endpoint")
        assert fetch(base, "/healthz")[0] == fetch(pages, "/healthz")[0] == 200
    finally:
        stop_server(proc)
