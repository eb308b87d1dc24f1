"""The learned scorers follow scikit-learn's conventions (estimator checks), and the model's
nested parameters round-trip through `set_params` and the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from recommender.model import RelatedModel
from recommender.ranker import LambdaRanker, LinkRanker


def _expected_failures(estimator) -> dict[str, str]:
    """The one check that does not apply: a ranking score orders a query's candidates, it is
    not on the target's scale, so its R² is no test of it."""
    if not isinstance(estimator, LambdaRanker):
        return {}
    why = "a ranking score is not on the target's scale (R² does not apply)"
    return {name: why for name in (
        "check_regressors_train", "check_regressors_train(readonly_memmap=True)",
        "check_regressors_train(readonly_memmap=True,X_dtype=float32)")}


@parametrize_with_checks([LinkRanker(max_iter=10), LambdaRanker(n_estimators=10)],
                         expected_failed_checks=_expected_failures)
def test_rankers_are_scikit_learn_estimators(estimator, check):
    check(estimator)


def test_nested_parameters_round_trip_through_set_params_and_clone():
    model = RelatedModel.from_params({"ranker__n_estimators": 77, "ranker__learning_rate": 0.2,
                                      "n_text": 40})
    params = model.get_params(deep=True)
    assert params["ranker__n_estimators"] == 77 and params["n_text"] == 40
    copy = clone(model)
    assert copy.get_params(deep=True)["ranker__n_estimators"] == 77
    assert copy.ranker is not model.ranker  # cloned, not shared
    assert RelatedModel.from_params({"ranker__n_estimators": 77}).ranker.n_estimators == 77
    recorded = json.loads(json.dumps(model.manifest_params()))  # JSON as the manifest holds it
    assert recorded["ranker"] == "LambdaRanker" and recorded["ranker__n_estimators"] == 77
    rebuilt = RelatedModel.from_params({k: v for k, v in recorded.items()
                                        if "__" in k or k in ("n_text", "training_graph")})
    assert rebuilt.get_params(deep=True)["ranker__learning_rate"] == 0.2


def test_sub_estimators_are_never_shared_nor_fitted_in_place(synthetic_snapshot):
    first = RelatedModel.from_params({"ranker__n_estimators": 20, "text__min_df": 2})
    second = RelatedModel.from_params()
    assert second.ranker.n_estimators == LambdaRanker().n_estimators  # first's did not leak
    assert second.text.min_df == 1
    first.fit(synthetic_snapshot)
    assert first.ranker_ is not first.ranker and not hasattr(first.ranker, "model_")
    assert first.text_ is not first.text and not hasattr(first.text, "full_")
    bare = RelatedModel(ranker=LambdaRanker(n_estimators=20)).fit(synthetic_snapshot)
    assert bare.text is None and hasattr(bare.text_, "full_")  # None: the default, made fresh


def test_ranking_before_fit_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        RelatedModel().rank_rows(np.arange(3))


def test_train_param_flags_reach_the_manifest(seeds_catalog, tmp_path):
    from conftest import run_cli

    models = tmp_path / "models"
    result = run_cli("train", "-q", "--models", str(models), "--param",
                     "ranker__n_estimators=20", "--param", "recent_days=5",
                     "--param", "text__ngram_range=[1, 1]", catalog=seeds_catalog)
    assert result.returncode == 0, result.stderr
    params = json.loads((models / "current" / "manifest.json").read_text())["params"]
    assert params["ranker__n_estimators"] == 20 and params["recent_days"] == 5
    assert params["text__ngram_range"] == [1, 1] and params["ranker"] == "LambdaRanker"
    for flags, words in ((["--param", "no_such_thing=1"], "no_such_thing"),
                         (["--param", "oops"], "NAME=VALUE")):
        bad = run_cli("train", "-q", "--models", str(models), *flags, catalog=seeds_catalog)
        assert bad.returncode in (1, 2) and words in bad.stderr
        assert "Traceback" not in bad.stderr
    bad = run_cli("evaluate", "--test-fraction", "1.5", catalog=seeds_catalog)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_compiled_trees_rank_as_lightgbm_wherever_the_model_goes(synthetic_snapshot, tmp_path,
                                                                  caplog):
    """A large catalog's model scores with its trees compiled (`compiled_trees`): the same
    rankings and scores, to the bit, as LightGBM's predictor gives, here, after the model is
    saved and loaded as an artifact is, in the processes of a parallel rank, and where the
    code cannot run (another architecture: LightGBM again, with a warning)."""
    import joblib

    from recommender.model import COMPILE_MIN_STORIES

    params = {"ranker__n_estimators": 60}
    small = RelatedModel.from_params(params).fit(synthetic_snapshot)
    assert len(synthetic_snapshot) < COMPILE_MIN_STORIES
    assert not hasattr(small.ranker_, "compiled_")  # not worth its compile time here

    model = RelatedModel.from_params({**params, "compile_min_stories": 0}).fit(synthetic_snapshot)
    assert model.ranker_.compiled_.object_code
    rows = np.arange(len(synthetic_snapshot))
    expected = small.rank_rows(rows, k=50)  # same data and seed: the same trees, uncompiled
    assert small.ranker_.model_.booster_.model_to_string() == \
        model.ranker_.model_.booster_.model_to_string()

    joblib.dump(model, tmp_path / "model.joblib", compress=0)
    loaded = joblib.load(tmp_path / "model.joblib", mmap_mode="r")
    assert loaded.ranker_.compiled_._model is None  # the code is loaded on first use
    parallel = joblib.load(tmp_path / "model.joblib").set_params(n_jobs=2, parallel_min_rows=0)
    elsewhere = joblib.load(tmp_path / "model.joblib")
    elsewhere.ranker_.compiled_.triple = "aarch64-unknown-linux-gnu"
    for ranker in (model, loaded, parallel, elsewhere):
        got = ranker.rank_rows(rows, k=50)
        np.testing.assert_array_equal(got.rows, expected.rows)
        np.testing.assert_array_equal(got.scores, expected.scores)
    assert loaded.ranker_.compiled_._model  # it did run compiled
    assert elsewhere.ranker_.compiled_._model is False
    assert "compiled for aarch64-unknown-linux-gnu" in caplog.text
