"""Incremental train on the shared corpus: the newest articles arrive after a full train,
one old article comes back changed, editors judge; `train` then grows the current version
and must publish exactly what a full rank with the grown model gives, for every story."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli, train_killed_at

from recommender import artifact, incremental, judgements
from recommender.catalog import Catalog
from recommender.importer import import_paths
from recommender.model import RelatedModel
from recommender.training import train

SMALL = {"ranker__n_estimators": 30}
NEWEST = 0.03  # share of the corpus's articles (by date) held back for the second import


def _published(path: Path) -> str:
    found = re.search(r"^publishedDateTime:\s*['\"]?([0-9T:\-]+)", path.read_text(errors="replace"),
                      re.M)
    return found.group(1) if found else ""


@pytest.fixture(scope="module")
def grown(corpus, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("incremental")
    files = sorted((corpus / "azure").glob("*.md"), key=lambda p: (_published(p), p.name))
    cut = int(len(files) * (1 - NEWEST))
    for name, part in (("first", files[:cut]), ("second", files[cut:])):
        (work / name).mkdir()
        for path in part:
            (work / name / path.name).symlink_to(path)
    # An old article comes back edited, an hour later: a new title, half its curated list.
    edited = next(p for p in files[cut // 2:cut] if "\nrelated:" in p.read_text())
    _, head, body = edited.read_text().split("---", 2)
    fields = yaml.safe_load(head)
    fields["title"] = "Edited: " + fields["title"]
    fields["related"] = fields["related"][: len(fields["related"]) // 2]
    fields["publishedDateTime"] = (dt.datetime.fromisoformat(
        str(fields["publishedDateTime"]).replace("Z", "+00:00")) + dt.timedelta(hours=1)
                                   ).strftime("%Y-%m-%dT%H:%M:%SZ")
    (work / "second" / "edited.md").write_text(
        "---\n" + yaml.safe_dump(fields, allow_unicode=True) + "---" + body)
    catalog_path, models = work / "catalog.sqlite3", work / "models"
    with Catalog(catalog_path) as catalog:
        import_paths(catalog, [work / "first"], on_error=lambda p, r: None)
        first = train(catalog, models, params=SMALL)
        counts = import_paths(catalog, [work / "second"], on_error=lambda p, r: None)
        assert counts.updated >= 1
        # Editors: a block and a pin on an old article's list.
        loaded = artifact.load(models)
        article = int(loaded.ids[np.flatnonzero(loaded.top_rows[:, 5] >= 0)[10]])
        row = loaded.row_of(article)
        judgements.record(catalog, "block", int(loaded.ids[loaded.top_rows[row, 0]]), "ada",
                          article=article)
        judgements.record(catalog, "pin", int(loaded.ids[loaded.top_rows[row, 40]]), "ada",
                          article=article, position=1)
        snapshot = catalog.snapshot()
        second = train(catalog, models, params=SMALL)
    return {"work": work, "catalog": catalog_path, "models": models, "first": first,
            "second": second, "snapshot": snapshot, "article": article}


def test_incremental_train_equals_a_full_rank_with_the_same_fitted_parts(grown):
    first, second = grown["first"], grown["second"]
    assert first["train"]["kind"] == "full"
    how = second["train"]
    assert how["kind"] == "incremental", how
    assert how["grew_from"] == first["version"]
    assert how["full"] == {"version": first["version"], "created": first["created"]}
    loaded = artifact.load(grown["models"])
    n_old, n = first["counts"]["stories"], len(loaded.ids)
    assert n > n_old
    # The reference: every story ranked from scratch by the grown model.
    everything = loaded.model.rank_rows(np.arange(n), k=artifact.TOP_K)
    same = (np.all(everything.rows == loaded.top_rows, axis=1)
            & np.all(everything.scores == loaded.top_scores, axis=1))
    assert same.all(), f"{int((~same).sum())} stories differ, e.g. rows {np.flatnonzero(~same)[:5]}"
    reach = np.load(loaded.path / incremental.REACH_FILE)
    assert np.array_equal(reach, everything.reach)
    # Each kind of story was there: new ones, old ones ranked again, untouched old ones.
    previous = artifact.load(grown["models"], first["version"])
    untouched = np.all(previous.top_rows == loaded.top_rows[:n_old], axis=1)
    assert how["ranked"] < n and untouched.any() and not untouched.all()
    # The editors' judgements hold in the grown version.
    row = loaded.row_of(grown["article"])
    block_row = previous.top_rows[row, 0]
    assert block_row not in loaded.top_rows[row]


def test_fallback_to_a_full_train_at_each_threshold(grown, tmp_path):
    # A models directory whose current version is the first (full) one again.
    models = tmp_path / "models"
    version = grown["first"]["version"]
    shutil.copytree(grown["models"] / version, models / version)
    os.symlink(version, models / "current")
    snapshot = grown["snapshot"]
    model = RelatedModel.from_params({"n_jobs": 1, **SMALL})
    limits = {"max_changed": 0.05, "max_new_terms": 0.2, "full_train_days": 7.0}
    planned = incremental.plan(snapshot, models, model, full=False, **limits)
    assert planned.incremental, planned.reason
    share = planned.fresh.sum() / len(snapshot)
    below = incremental.plan(snapshot, models, model, full=False,
                             **{**limits, "max_changed": share * 0.99})
    assert not below.incremental and "incremental_max_changed" in below.reason
    assert incremental.plan(snapshot, models, model, full=False,
                            **{**limits, "max_changed": share * 1.01}).incremental
    words = incremental.new_term_share(planned.previous.model, snapshot,
                                       np.flatnonzero(planned.fresh))
    assert 0 < words < 0.2
    assert "incremental_max_new_terms" in incremental.plan(
        snapshot, models, model, full=False, **{**limits, "max_new_terms": words * 0.99}).reason
    assert "full_train_days" in incremental.plan(
        snapshot, models, model, full=False, **{**limits, "full_train_days": 0}).reason
    assert incremental.plan(snapshot, models, model, full=True, **limits).reason == \
        "asked for (--full)"
    other = RelatedModel.from_params({**SMALL, "n_text": 50})
    assert "parameters changed (n_text)" in incremental.plan(
        snapshot, models, other, full=False, **limits).reason
    # The same through the command line and the environment.
    env = {"RECOMMENDER_MODELS": str(models), "RECOMMENDER_INCREMENTAL_MAX_CHANGED": "0.0001"}
    out = run_cli("train", "-q", "--param", "ranker__n_estimators=30", catalog=grown["catalog"],
                  env=env)
    assert out.returncode == 0, out.stderr
    assert "full train (" in out.stdout and "incremental_max_changed=0.0001" in out.stdout


@pytest.mark.parametrize("marker", [None, b"rank:   0%"], ids=["starting", "ranking"])
def test_sigkill_during_an_incremental_train_leaves_current_serving(grown, tmp_path, marker):
    models = tmp_path / "models"
    version = grown["first"]["version"]
    shutil.copytree(grown["models"] / version, models / version)
    os.symlink(version, models / "current")
    env = {**os.environ, "RECOMMENDER_CATALOG": str(grown["catalog"]),
           "RECOMMENDER_MODELS": str(models)}
    status = train_killed_at(marker, env, "--param", "ranker__n_estimators=30")
    assert status == -signal.SIGKILL
    assert artifact.current_version(models) == version
    assert artifact.load(models).version == version
    out = run_cli("train", "-q", "--param", "ranker__n_estimators=30", catalog=grown["catalog"],
                  env={"RECOMMENDER_MODELS": str(models)})
    assert out.returncode == 0, out.stderr
    assert f"grown from {version}" in out.stdout
    assert not list(models.glob(".tmp-*"))
    loaded = artifact.load(models)
    assert np.array_equal(loaded.top_rows, artifact.load(grown["models"]).top_rows)


def test_a_retrain_with_nothing_new_ranks_nothing_and_changes_no_answer(grown, tmp_path):
    models = tmp_path / "models"
    version = grown["second"]["version"]
    shutil.copytree(grown["models"] / version, models / version)
    os.symlink(version, models / "current")
    with Catalog(grown["catalog"], readonly=True) as catalog:
        again = train(catalog, models, params=SMALL)
    assert again["train"]["kind"] == "incremental" and again["train"]["ranked"] == 0
    assert again["train"]["grew_from"] == version
    assert again["train"]["full"] == grown["second"]["train"]["full"]  # the lineage goes on
    before, after = artifact.load(models, version), artifact.load(models)
    assert np.array_equal(before.top_rows, after.top_rows)
    assert np.array_equal(before.top_scores, after.top_scores)
