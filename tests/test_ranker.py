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
    model = RelatedModel().set_params(ranker__n_estimators=77, ranker__learning_rate=0.2,
                                      n_text=40)
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


def test_the_default_ranker_is_never_fitted_itself(synthetic_snapshot):
    from recommender.model import DEFAULT_RANKER

    model = RelatedModel.from_params({"ranker__n_estimators": 20}).fit(synthetic_snapshot)
    assert model.ranker_ is not model.ranker and not hasattr(DEFAULT_RANKER, "model_")


def test_ranking_before_fit_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        RelatedModel().rank_rows(np.arange(3))
