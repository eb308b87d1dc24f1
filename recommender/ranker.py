"""The learned scorer: P(editor would list this candidate | pair evidence).

Gradient-boosted trees over the pair evidence from `candidates`; curated links are the
positives and every other candidate of the same query a negative. Trees suit this evidence:
it mixes scales (cosines, days, counts), has missing values (undated stories), and the useful
rules are interactions ("close in time AND voted for by similar stories").
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier


class LinkRanker(ClassifierMixin, BaseEstimator):
    """A seeded, deterministic HistGradientBoostingClassifier over pair features."""

    def __init__(self, max_iter: int = 200, learning_rate: float = 0.12,
                 max_leaf_nodes: int = 31, min_samples_leaf: int = 40,
                 l2_regularization: float = 1.0, random_state: int = 0):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinkRanker:
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=self.random_state)
        if len(np.unique(y)) < 2:
            raise ValueError("training pairs need both curated and non-curated candidates")
        self.model_.fit(X, y)
        self.classes_ = self.model_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)

    def score_pairs(self, X: np.ndarray) -> np.ndarray:
        """Scores to rank by (probability of the curated class)."""
        if len(X) == 0:
            return np.empty(0, dtype=np.float32)
        return self.model_.predict_proba(X)[:, 1].astype(np.float32)
