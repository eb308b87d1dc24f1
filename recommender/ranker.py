"""The learned scorers: how likely an editor is to list a candidate, from the pair evidence.

Gradient-boosted trees over the evidence from `candidates`; curated links are the positives
and every other candidate of the same query a negative. Trees suit this evidence: it mixes
scales (cosines, days, counts), has missing values (undated stories), and the useful rules
are interactions ("close in time AND voted for by similar stories").

Two objectives, both scikit-learn estimators that `RelatedModel` takes as its `ranker`:
- `LambdaRanker` (the default): LightGBM's lambdarank, which optimises nDCG within each
  query's candidates, which is what a related list is judged by; it needs `group`.
- `LinkRanker`: a pointwise classifier (scikit-learn's HistGradientBoostingClassifier), kept
  for comparison (README, "Evaluation").
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.utils.validation import check_is_fitted, validate_data


def _groups(n: int, group: np.ndarray | None) -> np.ndarray:
    """Query sizes of consecutive rows; all rows one query when none are given."""
    if group is None:
        return np.array([n], dtype=np.int64)
    group = np.asarray(group, dtype=np.int64)
    if group.sum() != n or (group < 0).any():
        raise ValueError(f"group sizes must be non-negative and add up to {n} rows")
    return group[group > 0]


MAX_GRADE = 30  # lambdarank's gain table holds grades 0..30


def _grades(y: np.ndarray) -> np.ndarray:
    """Relevance as lambdarank's whole-number grades: 0/1 labels stay as they are; other
    ordered values are graded by their order (equal values, equal grades), at most 31."""
    if np.all(y == np.round(y)) and y.min() >= 0 and y.max() <= MAX_GRADE:
        return y.astype(np.int64)
    ranks = np.unique(y, return_inverse=True)[1].astype(np.float64)
    return np.round(ranks * MAX_GRADE / max(ranks.max(), 1)).astype(np.int64)


class LinkRanker(ClassifierMixin, BaseEstimator):
    """A seeded, deterministic HistGradientBoostingClassifier over pair features (pointwise:
    `group` is accepted and ignored)."""

    def __init__(self, max_iter: int = 200, learning_rate: float = 0.12,
                 max_leaf_nodes: int = 31, min_samples_leaf: int = 40,
                 l2_regularization: float = 1.0, random_state: int = 0):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, group: np.ndarray | None = None) -> LinkRanker:
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan")
        if len(np.unique(y)) < 2:
            raise ValueError("only one class in the training pairs: they need both curated "
                             "and non-curated candidates")
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=self.random_state).fit(X, y)
        self.classes_ = self.model_.classes_
        self.n_iter_ = self.model_.n_iter_
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # an undated story's date gap is unknown, not 0
        return tags

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return self.model_.predict_proba(validate_data(self, X, reset=False,
                                                       ensure_all_finite="allow-nan"))

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return self.model_.predict(validate_data(self, X, reset=False,
                                                 ensure_all_finite="allow-nan"))

    def score_pairs(self, X: np.ndarray) -> np.ndarray:
        """Scores to rank by (probability of the curated class); no input checks, since
        this is the request path and the features come from `candidates`."""
        if len(X) == 0:
            return np.empty(0, dtype=np.float32)
        return self.model_.predict_proba(X)[:, 1].astype(np.float32)


class LambdaRanker(RegressorMixin, BaseEstimator):
    """LightGBM lambdarank over pair features, grouped by query; seeded and `deterministic`
    (row-wise histograms), so the same data and parameters give the same trees. `n_jobs`
    threads fit it (on the shared corpus 1 and 2 threads gave identical models); scoring
    is single-threaded, since serving workers and precompute processes already fill the
    cores.

    `predict` gives the raw ranking score; `score_pairs` squashes it into (0, 1) so the
    scores an answer shows stay on one scale, in the same order."""

    def __init__(self, n_estimators: int = 300, learning_rate: float = 0.05,
                 num_leaves: int = 31, min_child_samples: int = 40, reg_lambda: float = 1.0,
                 subsample: float = 1.0, colsample_bytree: float = 1.0,
                 truncation_level: int = 30, random_state: int = 0, n_jobs: int = 2):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.truncation_level = truncation_level
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: np.ndarray, y: np.ndarray, group: np.ndarray | None = None
            ) -> LambdaRanker:
        import lightgbm

        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", y_numeric=True)
        labels = _grades(np.asarray(y, dtype=np.float64))
        self.model_ = lightgbm.LGBMRanker(
            objective="lambdarank", n_estimators=self.n_estimators,
            learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples, reg_lambda=self.reg_lambda,
            subsample=self.subsample, subsample_freq=1 if self.subsample < 1 else 0,
            colsample_bytree=self.colsample_bytree,
            lambdarank_truncation_level=self.truncation_level, random_state=self.random_state,
            n_jobs=self.n_jobs, deterministic=True, force_row_wise=True, verbose=-1)
        self.model_.fit(X, labels, group=_groups(len(labels), group))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return self.model_.predict(X, num_threads=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def compile(self) -> LambdaRanker:
        """Compile the fitted trees to machine code for `score_pairs` (`compiled_trees`):
        the same scores, several times faster, after seconds of compiling. The caller
        decides when that pays (`RelatedModel`'s `compile_min_stories`)."""
        from .compiled_trees import CompiledTrees

        check_is_fitted(self)
        self.compiled_ = CompiledTrees(self.model_.booster_.model_to_string())
        return self

    def score_pairs(self, X: np.ndarray) -> np.ndarray:
        """Scores to rank by, in (0, 1); no input checks on this, the request path."""
        if len(X) == 0:
            return np.empty(0, dtype=np.float32)
        compiled = getattr(self, "compiled_", None)
        raw = compiled.raw_scores(X) if compiled is not None else None
        if raw is None:
            raw = self.model_.booster_.predict(X, num_threads=1)
        return (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)
