"""The HTTP API through Flask's test client: every endpoint and every error case."""

from __future__ import annotations

import json

import pytest
from conftest import SEEDS

SEED = ("https://www.biometricupdate.com/202002/privacy-rights-groups-call-for-day-of-action-"
        "to-ban-facial-recognition-at-all-schools")
FOX = ("https://www.foxnews.com/us/new-facial-recognition-app-promises-to-solve-crimes-critics-"
       "say-its-the-end-of-privacy")
FOX_VARIANTS = [
    FOX + ".amp",
    "https://www-foxnews-com.cdn.ampproject.org/c/s/www.foxnews.com/us/new-facial-recognition-"
    "app-promises-to-solve-crimes-critics-say-its-the-end-of-privacy.amp",
    FOX + "?utm_source=twitter&utm_medium=social&fbclid=x1",
    "HTTP://FOXNEWS.COM/us/new-facial-recognition-app-promises-to-solve-crimes-critics-say-its-"
    "the-end-of-privacy/",
]


def test_related_by_url_shape(client):
    r = client.get("/v1/related", query_string={"url": SEED, "k": 3})
    assert r.status_code == 200 and r.is_json
    body = r.get_json()
    assert body["article"]["url"] == SEED
    assert 1 <= len(body["related"]) <= 3
    for item in body["related"]:
        assert set(item) == {"url", "title", "excerpt", "provider", "publishedDateTime",
                             "image", "score", "reasons", "days_apart", "curated", "pinned", "also"}
        assert item["reasons"]
        assert item["url"] != SEED and isinstance(item["reasons"], list)
    scores = [item["score"] for item in body["related"]]
    assert scores == sorted(scores, reverse=True)
    assert body["model"]


@pytest.mark.parametrize("variant", FOX_VARIANTS)
def test_every_url_variant_gives_the_same_answer(app, variant, seeds_catalog, seeds_models):
    """Each variant through an app of its own (no answer cache shared with another request),
    against what the CLI, another process, answers for the canonical URL."""
    from conftest import run_cli

    from service import create_app

    cli = run_cli("recommend", FOX, "--json", "--models", str(seeds_models),
                  catalog=seeds_catalog)
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)
    fresh = create_app({"TESTING": True, "CATALOG": str(seeds_catalog),
                        "MODELS": str(seeds_models)}).test_client()
    got = fresh.get("/v1/related", query_string={"url": variant}).get_json()
    assert [r["url"] for r in got["related"]] == [r["url"] for r in want["related"]]
    assert got == want


def test_filters(client):
    full = client.get("/v1/related", query_string={"url": SEED, "k": 100}).get_json()["related"]
    assert len(full) > 3
    first = full[0]
    excluded = client.get("/v1/related", query_string={"url": SEED, "k": 100,
                                                       "exclude": [first["url"] + "?utm_source=x",
                                                                   full[1]["url"]]})
    urls = [x["url"] for x in excluded.get_json()["related"]]
    assert first["url"] not in urls and full[1]["url"] not in urls
    day = first["publishedDateTime"][:10]
    window = client.get("/v1/related", query_string={"url": SEED, "k": 100, "since": day,
                                                     "until": day}).get_json()["related"]
    assert window and all(x["publishedDateTime"][:10] == day for x in window)
    provider = first["provider"]
    only = client.get("/v1/related", query_string={"url": SEED, "k": 100,
                                                   "provider": provider.upper()})
    assert {x["provider"] for x in only.get_json()["related"]} == {provider}


def test_syndicated_copies_collapse_unless_asked(tmp_path):
    """A catalog that really holds syndicated copies: one story republished under the same
    title by two more providers, all three related to a seed article."""
    from conftest import SEEDS

    from recommender.catalog import Catalog
    from recommender.importer import import_paths
    from recommender.training import train
    from service import create_app

    title = "Privacy groups plan a day of action against facial recognition in schools"
    for i, site in enumerate(("wire.example", "daily.example", "post.example")):
        (tmp_path / f"copy{i}.md").write_text(
            f'---\ntitle: "{title}"\nexcerpt: "Facial recognition privacy schools ban"\n'
            f"publishedDateTime: 2020-02-19T1{i}:00:00Z\nwebUrl: https://{site}/fr\n"
            f"provider:\n  name: {site}\n---\n")
    catalog, models = tmp_path / "catalog.sqlite3", tmp_path / "models"
    with Catalog(catalog) as cat:
        import_paths(cat, [SEEDS, tmp_path], on_error=lambda p, r: pytest.fail(r))
        train(cat, models, params={"ranker__n_estimators": 20})
    client = create_app({"TESTING": True, "CATALOG": str(catalog),
                         "MODELS": str(models)}).test_client()

    def related(dedupe):
        body = client.get("/v1/related", query_string={"url": SEED, "k": 100, "dedupe": dedupe})
        return body.get_json()["related"]

    deduped, everything = related("true"), related("false")
    assert [x["title"] for x in everything].count(title) == 3
    assert [x["title"] for x in deduped].count(title) == 1
    entry = next(x for x in deduped if x["title"] == title)
    assert {a["provider"] for a in entry["also"]} | {entry["provider"]} == \
        {"wire.example", "daily.example", "post.example"}
    # Nothing is lost: every story is an entry or listed under one.
    kept = {x["url"] for x in deduped} | {a["url"] for x in deduped for a in x["also"]}
    assert kept == {x["url"] for x in everything}


def test_post_new_article(client):
    r = client.post("/v1/related", json={
        "title": "Clearview AI facial recognition app faces a class action over privacy",
        "excerpt": "A lawsuit claims the facial recognition company took biometric data.",
        "publishedDateTime": "2020-02-15T10:00:00Z"}, query_string={"k": 5})
    assert r.status_code == 200
    body = r.get_json()
    assert body["article"]["title"].startswith("Clearview") and body["article"]["url"] is None
    assert len(body["related"]) == 5
    assert any("facial" in x["title"].lower() for x in body["related"])


def test_post_with_a_catalog_url_does_not_return_itself(client):
    r = client.post("/v1/related", json={"title": "New facial recognition app promises to solve "
                                         "crimes", "url": FOX + ".amp"}, query_string={"k": 100})
    assert all(x["url"] != FOX for x in r.get_json()["related"])


@pytest.mark.parametrize("query,status,words", [
    ({}, 400, "missing parameter: url"),
    ({"url": ""}, 400, "missing parameter: url"),
    ({"url": "not a url"}, 400, "not a URL"),
    ({"url": "https://nowhere.example/story"}, 404, "no story in the catalog"),
    ({"url": SEED, "k": "0"}, 400, "k must be an integer from 1 to 100"),
    ({"url": SEED, "k": "101"}, 400, "k must be an integer from 1 to 100"),
    ({"url": SEED, "k": "ten"}, 400, "k must be an integer from 1 to 100"),
    ({"url": SEED, "since": "last week"}, 400, "since"),
    ({"url": SEED, "until": "2020-13-45"}, 400, "until"),
    ({"url": SEED, "dedupe": "maybe"}, 400, "dedupe must be true or false"),
    ({"url": SEED, "colour": "red"}, 400, "unknown parameter: colour"),
    # Once 500s: '²'.isdigit() is true and int('²') fails; a window that cannot hold a day.
    ({"url": SEED, "k": "²"}, 400, "k must be an integer from 1 to 100"),
    ({"url": SEED, "k": "١٠"}, 400, "k must be an integer from 1 to 100"),
    ({"url": SEED, "since": "2021-01-02", "until": "2021-01-01"}, 400,
     "since must not be later than until"),
])
def test_get_errors_are_json_and_name_the_problem(client, query, status, words):
    r = client.get("/v1/related", query_string=query)
    assert r.status_code == status and r.is_json
    assert words in r.get_json()["message"]


@pytest.mark.parametrize("kwargs,status,words", [
    ({"data": "title=x", "content_type": "application/x-www-form-urlencoded"}, 415, "JSON"),
    ({"data": "{not json", "content_type": "application/json"}, 400, "JSON object"),
    ({"json": ["a", "list"]}, 400, "JSON object"),
    ({"json": {"excerpt": "no title"}}, 400, "missing field: title"),
    ({"json": {"title": "   "}}, 400, "field title must not be empty"),
    ({"json": {"title": 42}}, 400, "field title must be a string"),
    ({"json": {"title": "t", "publishedDateTime": "someday"}}, 400, "not an ISO 8601 date"),
    ({"json": {"title": "x" * (70 * 1024)}}, 413, "64 KiB"),
    ({"data": "[" * 5000 + "]" * 5000, "content_type": "application/json"}, 400,
     "nested too deeply"),
    ({"data": b"\xff\xfe{", "content_type": "application/json"}, 400, "not valid JSON"),
])
def test_post_errors(client, kwargs, status, words):
    r = client.post("/v1/related", **kwargs)
    assert r.status_code == status and r.is_json, r.data[:200]
    assert words in r.get_json()["message"]


def test_unknown_endpoint_and_method_are_json(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    r = client.delete("/v1/related")
    assert r.status_code == 405 and "DELETE" in r.get_json()["message"]
    assert set(r.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_health_ready_model_and_openapi(client, seeds_models):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["stories"] > 5
    manifest = client.get("/v1/model").get_json()
    assert manifest["version"] == ready["model"] and manifest["files"]
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {"/v1/related", "/v1/related/batch", "/v1/model", "/healthz",
                                  "/readyz", "/openapi.json"}


def test_not_ready_without_a_model(seeds_catalog, tmp_path):
    from service import create_app

    client = create_app({"CATALOG": str(seeds_catalog), "MODELS": str(tmp_path / "none")}
                        ).test_client()
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503 and "recommender train" in r.get_json()["message"]
    r = client.get("/v1/related", query_string={"url": SEED})
    assert r.status_code == 503 and r.is_json


def test_one_log_line_per_request(client, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="service.requests"):
        client.get("/healthz")
        client.get("/v1/related", query_string={"url": "https://nowhere.example/x"})
    lines = [r.getMessage() for r in caplog.records if r.name == "service.requests"]
    assert len(lines) == 2
    assert '"GET /healthz" 200' in lines[0] and " 404 " in lines[1]


def test_answer_cache_holds_one_generation_and_a_bounded_size():
    from recommender.recommend import GenerationCache

    cache = GenerationCache(size=4)
    cache.put(("v1", 1), ("a",), b"1")
    assert cache.get(("v1", 1), ("a",)) == b"1"
    assert cache.get(("v1", 2), ("a",)) is None  # an import since: not served stale
    cache.put(("v2", 1), ("b",), b"2")  # a retrain: the old generation is dropped whole
    assert len(cache) == 1 and cache.get(("v1", 1), ("a",)) is None
    for i in range(6):
        cache.put(("v2", 1), (i,), b"x")
    assert len(cache) == 4 and cache.get(("v2", 1), (5,)) == b"x"


def test_catalog_connections_go_back_at_the_end_of_each_request(postgres, tmp_path):
    """flaskr's pattern: a request's connection is given back in teardown, so threads that
    answered once hold none: after 8 threads' requests only the pool's few idle ones stay
    open (PostgreSQL counts them), and closing the app's core closes those."""
    import threading
    import urllib.parse

    from recommender.catalog import Catalog
    from recommender.importer import import_paths
    from recommender.training import train
    from service import create_app

    location = postgres.new_database()
    with Catalog(location) as catalog:
        import_paths(catalog, [SEEDS], on_error=lambda p, r: None)
    with Catalog(location, readonly=True) as catalog:
        train(catalog, tmp_path / "models")
    with Catalog(location, readonly=True) as watcher:

        def open_connections(expected: int) -> int:
            """The server's count, once it has caught up: a backend whose client hung up
            stays listed until it has exited, so a bounded wait for `expected`."""
            import time

            deadline = time.monotonic() + 10
            while True:
                count = watcher.db.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND pid <> pg_backend_pid()").fetchone()[0]
                if count == expected or time.monotonic() > deadline:
                    return count
                time.sleep(0.05)

        app = create_app({"CATALOG": location, "MODELS": str(tmp_path / "models"),
                          "THREADS": 2, "TESTING": True})

        def ask() -> None:
            client = app.test_client()
            for _ in range(3):
                assert client.get("/v1/related?url=" + urllib.parse.quote(SEED)).status_code \
                    == 200
                assert client.get("/readyz").status_code == 200

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rec = app.extensions["recommender"]
        assert 1 <= len(rec.pool) <= 2
        assert open_connections(len(rec.pool)) == len(rec.pool)
        rec.close()
        assert open_connections(0) == 0


def test_workers_share_answers_and_never_load_a_foreign_pickle(seeds_catalog, seeds_models,
                                                              tmp_path):
    """Two Recommenders on one shared directory stand for two workers of one server: an
    answer computed by one is served by the other; a pickle planted in the directory is
    refused, not loaded (loading would have run its code)."""

    import diskcache

    from recommender.recommend import Filters, Recommender, SharedAnswers

    shared = tmp_path / "answers"

    def worker() -> Recommender:
        return Recommender(str(seeds_catalog), seeds_models,
                           shared=SharedAnswers(str(shared), 16))

    def answer(rec: Recommender) -> bytes | None:
        return rec.by_url_tagged(SEED, Filters())[1]

    a, b = worker(), worker()
    body = answer(a)
    assert a.answers["computed"] == 1
    assert answer(b) == body
    assert b.answers == {"unchanged": 0, "cached": 0, "shared": 1, "computed": 0}
    assert answer(b) == body and b.answers["cached"] == 1

    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (marker.write_text, ("code from the cache directory ran",))

    with diskcache.Cache(str(shared)) as raw:
        (key,) = list(raw)
        raw.set(key, Planted())  # stored pickled: what a hostile writer would leave
    c = worker()
    assert answer(c) == body  # computed again, equal
    assert c.answers["computed"] == 1 and not marker.exists()
    for rec in (a, b, c):
        rec.close()

    unusable = tmp_path / "a-file"
    unusable.write_text("not a directory")
    d = Recommender(str(seeds_catalog), seeds_models, shared=SharedAnswers(str(unusable), 16))
    assert answer(d) == body  # computed: the cache is optional
    d.close()


def test_the_depth_of_an_answer_is_the_served_models(seeds_catalog, seeds_models, tmp_path):
    """The top-k bound is read from the served version's manifest, not assumed: a version
    ranked 3 deep pages to 3 and refuses more with a 400 that names its depth."""
    import hashlib
    import shutil

    import numpy as np

    from recommender import artifact
    from service import create_app

    models = tmp_path / "models"
    shutil.copytree(seeds_models, models, symlinks=True)
    old = artifact.current_version(models)
    shallow = models / (old + "-shallow")
    shutil.copytree(models / old, shallow)
    manifest = json.loads((shallow / "manifest.json").read_text())
    for name in ("top_rows.npy", "top_scores.npy"):
        np.save(shallow / name, np.load(shallow / name)[:, :3])
        manifest["files"][name] = hashlib.sha256((shallow / name).read_bytes()).hexdigest()
    manifest.update(top_k=3, version=shallow.name)
    (shallow / "manifest.json").write_text(json.dumps(manifest))
    artifact.rollback(models, shallow.name)

    client = create_app({"CATALOG": str(seeds_catalog), "MODELS": str(models),
                         "TESTING": True}).test_client()
    url = "/v1/related?url=" + SEED
    body = client.get(url + "&k=2").get_json()
    assert body["model"] == shallow.name and body["next_offset"] == 2
    last = client.get(url + "&k=1&offset=2").get_json()
    assert len(last["related"]) == 1 and last["next_offset"] is None
    response = client.get(url + "&k=2&offset=2")
    assert response.status_code == 400 and "3" in response.get_json()["message"]
    response = client.post("/v1/related?k=4", json={"title": "Facial recognition in schools"})
    assert response.status_code == 400 and "depth" in response.get_json()["message"]


def test_an_answer_revalidates_with_its_tag_until_the_model_or_catalog_changes(
        seeds_catalog, seeds_models, tmp_path):
    """A CDN or browser keeps a GET answer max-age seconds, then asks with If-None-Match:
    a 304 (nothing computed) while the answer stands; a 200 with a new tag after a retrain
    or an import."""
    import shutil
    import time

    from recommender.catalog import Catalog
    from recommender.importer import import_paths
    from recommender.training import train
    from service import create_app

    catalog, models = tmp_path / "catalog.sqlite3", tmp_path / "models"
    shutil.copy(seeds_catalog, catalog)
    shutil.copytree(seeds_models, models, symlinks=True)
    app = create_app({"CATALOG": str(catalog), "MODELS": str(models), "TESTING": True})
    client = app.test_client()
    url = "/v1/related?k=3&url=" + SEED

    first = client.get(url)
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag.startswith('"')
    assert first.headers["Cache-Control"] == "public, max-age=300"
    again = client.get(url, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == tag
    assert app.extensions["recommender"].answers["unchanged"] == 1
    assert client.get(url, headers={"If-None-Match": "W/" + tag}).status_code == 304
    other = client.get(url.replace("k=3", "k=4"))  # another request, another tag
    assert other.status_code == 200 and other.headers["ETag"] != tag

    with Catalog(catalog, readonly=True) as cat:
        version = train(cat, models)["version"]  # a retrain: a new version, every tag changes
    deadline = time.monotonic() + 60  # the worker loads it in the background, then swaps
    while client.get("/v1/model").get_json()["version"] != version:
        assert time.monotonic() < deadline, "the new version was never served"
        time.sleep(0.05)
    retrained = client.get(url, headers={"If-None-Match": tag})
    assert retrained.status_code == 200 and retrained.headers["ETag"] != tag
    tag = retrained.headers["ETag"]
    new = tmp_path / "new.md"
    new.write_text('---\ntitle: "A school board bans face scanning"\npublishedDateTime: '
                   '2020-02-21T09:00:00Z\nwebUrl: "https://news.example/board-bans"\n---\n')
    with Catalog(catalog) as cat:
        import_paths(cat, [new], on_error=lambda p, r: pytest.fail(r))
    imported = client.get(url, headers={"If-None-Match": tag})
    assert imported.status_code == 200 and imported.headers["ETag"] != tag


def test_a_new_articles_answer_and_errors_are_never_stored(client):
    post = client.post("/v1/related?k=2", json={"title": "Facial recognition in schools"})
    assert post.status_code == 200 and post.headers["Cache-Control"] == "no-store"
    for bad in ("/v1/related?url=https://nowhere.example/x", "/v1/related?k=0&url=" + SEED):
        response = client.get(bad)
        assert response.status_code in (400, 404)
        assert response.headers["Cache-Control"] == "no-store" and "ETag" not in response.headers


@pytest.mark.parametrize("allowed", ["*", "https://news.example, https://other.example"])
def test_pages_on_allowed_origins_may_call_the_api(seeds_catalog, seeds_models, allowed):
    from service import create_app

    client = create_app({"CATALOG": str(seeds_catalog), "MODELS": str(seeds_models),
                         "CORS_ORIGINS": allowed, "TESTING": True}).test_client()
    origin = {"Origin": "https://news.example"}
    preflight = client.options("/v1/related", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, if-none-match"})
    assert preflight.status_code == 204 and preflight.data == b""
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://news.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "if-none-match" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert preflight.headers["Access-Control-Max-Age"] == "600"
    answer = client.get("/v1/related?url=" + SEED, headers=origin)
    assert answer.headers["Access-Control-Allow-Origin"] == "https://news.example"
    assert "Origin" in ", ".join(answer.headers.get_all("Vary"))  # a copy per origin
    assert "ETag" in answer.headers["Access-Control-Expose-Headers"]
    error = client.get("/v1/related?k=0&url=" + SEED, headers=origin)
    assert error.status_code == 400 and error.headers["Access-Control-Allow-Origin"]
    if allowed != "*":
        foreign = client.get("/v1/related?url=" + SEED, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in foreign.headers


def test_no_cross_origin_access_when_no_origin_is_allowed(seeds_catalog, seeds_models):
    from service import create_app

    client = create_app({"CATALOG": str(seeds_catalog), "MODELS": str(seeds_models),
                         "CORS_ORIGINS": "", "TESTING": True}).test_client()
    answer = client.get("/v1/related?url=" + SEED, headers={"Origin": "https://news.example"})
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_compressed_answers_decode_to_the_same_json_and_revalidate(client, encoding):
    """gzip, brotli and zstd (by flask-compress) for clients that accept them; the answer's
    tag comes back with the encoding appended, and revalidating with that form is a 304."""
    import gzip

    import brotli
    from backports import zstd

    decode = {"gzip": gzip.decompress, "br": brotli.decompress,
              "zstd": zstd.decompress}[encoding]
    url = "/v1/related?k=10&url=" + SEED
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    packed = client.get(url, headers={"Accept-Encoding": encoding})
    assert packed.headers["Content-Encoding"] == encoding
    assert "Accept-Encoding" in ", ".join(packed.headers.get_all("Vary"))
    assert len(packed.data) < len(plain.data)
    assert json.loads(decode(packed.data)) == plain.get_json()
    tag = packed.headers["ETag"]
    assert tag == plain.headers["ETag"][:-1] + f':{encoding}"'
    again = client.get(url, headers={"Accept-Encoding": encoding, "If-None-Match": tag})
    assert again.status_code == 304 and again.headers["ETag"] == tag
