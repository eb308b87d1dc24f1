"""Batch requests, API keys and rate limits: what a site calling the API from its pages, a
partner holding a key, and an operator capping traffic rely on."""

from __future__ import annotations

import shutil

import pytest
from conftest import run_cli
from test_service import FOX, SEED

NEW = {"title": "Facial recognition banned in schools", "excerpt": "A district drops it."}


def _app(seeds_catalog, seeds_models, **config):
    from service import create_app

    return create_app({"CATALOG": str(seeds_catalog), "MODELS": str(seeds_models),
                       "TESTING": True, **config})


def test_a_batch_answers_each_item_on_its_own_in_order(client):
    items = [{"url": SEED}, {"url": "https://nowhere.example/story"}, NEW, {"title": ""},
             {"url": "javascript:alert(1)"}, ["not", "an", "object"], {"url": FOX + ".amp"}]
    response = client.post("/v1/related/batch?k=2", json={"items": items})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [200, 404, 200, 400, 400, 400, 200]
    # An item's answer is the single request's answer, filters and all.
    assert results[0]["answer"] == client.get("/v1/related?k=2&url=" + SEED).get_json()
    assert results[2]["answer"] == client.post("/v1/related?k=2", json=NEW).get_json()
    assert results[6]["answer"]["article"]["url"] == FOX
    assert all(len(r["answer"]["related"]) == 2 for r in results if r["status"] == 200)
    assert results[1]["error"] == "not_found" and "nowhere.example" in results[1]["message"]
    assert "title" in results[3]["message"] and "http" in results[4]["message"]


@pytest.mark.parametrize("body,words", [
    ({"items": []}, "1 to 100 items"),
    ({"items": [{"url": SEED}] * 101}, "1 to 100 items"),
    ({"items": {"url": SEED}}, "1 to 100 items"),
    ([{"url": SEED}], "1 to 100 items"),
])
def test_a_malformed_batch_is_one_400_naming_the_shape(client, body, words):
    response = client.post("/v1/related/batch", json=body)
    assert response.status_code == 400 and words in response.get_json()["message"]
    assert client.post("/v1/related/batch?k=0", json={"items": [{"url": SEED}]}
                       ).status_code == 400


def test_api_keys_are_required_when_on_and_a_revoked_key_is_refused(seeds_catalog,
                                                                    seeds_models, tmp_path):
    catalog = tmp_path / "catalog.sqlite3"
    shutil.copy(seeds_catalog, catalog)
    added = run_cli("apikey", "add", "news-site", catalog=catalog)
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("rk_") and len(key) > 40 and "shown once" in added.stderr
    assert key not in catalog.read_bytes().decode("latin-1")  # only its digest is kept
    again = run_cli("apikey", "add", "news-site", catalog=catalog)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "exists" in again.stderr
    client = _app(catalog, seeds_models, API_KEYS=True).test_client()
    url = "/v1/related?k=2&url=" + SEED

    missing = client.get(url)
    assert missing.status_code == 401 and "X-API-Key" in missing.get_json()["message"]
    wrong = client.get(url, headers={"X-API-Key": key + "x"})
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "unauthorized"
    assert client.get(url, headers={"X-API-Key": key}).status_code == 200
    assert client.post("/v1/related/batch", json={"items": [{"url": SEED}]},
                       headers={"X-API-Key": key}).status_code == 200
    # Health checks, preflights and the pages never need one.
    assert client.get("/healthz").status_code == 200
    assert client.options("/v1/related", headers={
        "Origin": "https://news.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-api-key"}).status_code == 204

    revoked = run_cli("apikey", "revoke", "news-site", catalog=catalog)
    assert revoked.returncode == 0, revoked.stderr
    refused = client.get(url, headers={"X-API-Key": key})
    assert refused.status_code == 401 and "revoked" in refused.get_json()["message"]
    listed = run_cli("apikey", "list", catalog=catalog)
    assert "news-site" in listed.stdout and "revoked" in listed.stdout
    unknown = run_cli("apikey", "revoke", "nobody", catalog=catalog)
    assert unknown.returncode == 1 and unknown.stderr == "error: no key named nobody\n"


def test_over_the_rate_limit_is_a_429_with_retry_after_per_key_and_batches_count_items(
        seeds_catalog, seeds_models, tmp_path):
    from recommender import api_keys
    from recommender.catalog import Catalog

    catalog = tmp_path / "catalog.sqlite3"
    shutil.copy(seeds_catalog, catalog)
    with Catalog(catalog) as cat:
        first, second = api_keys.add(cat, "first"), api_keys.add(cat, "second")
    client = _app(catalog, seeds_models, API_KEYS=True, RATE_LIMIT="3/minute",
                  INSTANCE=str(tmp_path / "instance")).test_client()
    url = "/v1/related?k=2&url=" + SEED
    assert [client.get(url, headers={"X-API-Key": first}).status_code
            for _ in range(3)] == [200, 200, 200]
    over = client.get(url, headers={"X-API-Key": first})
    assert over.status_code == 429 and over.get_json()["error"] == "too_many_requests"
    assert "3 per 1 minute" in over.get_json()["message"]
    assert 0 < int(over.headers["Retry-After"]) <= 60
    assert over.headers["Cache-Control"] == "no-store"
    # Another key has its own budget; a batch costs its items.
    batch = {"items": [{"url": SEED}, NEW]}
    assert client.post("/v1/related/batch", json=batch,
                       headers={"X-API-Key": second}).status_code == 200
    assert client.get(url, headers={"X-API-Key": second}).status_code == 200
    assert client.post("/v1/related/batch", json=batch,
                       headers={"X-API-Key": second}).status_code == 429
    assert client.get("/healthz").status_code == 200  # never limited


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_replicas_share_one_rate_limit(engine, request, tmp_path):
    """Two apps (two replicas, or two workers) count against one limit: in the catalog's
    PostgreSQL database, or the instance folder's SQLite file beside a SQLite catalog."""
    from service import create_app

    if engine == "postgresql":
        catalog = request.getfixturevalue("postgres").new_database()
    else:
        catalog = str(tmp_path / "instance" / "catalog.sqlite3")
    replicas = [create_app({"CATALOG": catalog, "MODELS": str(tmp_path / "models"),
                            "INSTANCE": str(tmp_path / "instance"), "RATE_LIMIT": "4/minute",
                            "TESTING": True}).test_client() for _ in range(2)]
    url = "/v1/related?url=" + SEED  # no catalog yet: a 503, but counted all the same
    statuses = [replicas[i % 2].get(url).status_code for i in range(6)]
    assert statuses[:4] == [503] * 4 and statuses[4:] == [429, 429]


def test_a_bad_rate_limit_setting_is_named(seeds_catalog, seeds_models):
    from recommender.settings import SettingError

    with pytest.raises(SettingError, match="rate_limit"):
        _app(seeds_catalog, seeds_models, RATE_LIMIT="lots")
