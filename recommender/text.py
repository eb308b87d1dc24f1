"""Text features: TF-IDF over titles and excerpts, fitted on the whole catalog.

Two spaces: title+excerpt with word uni- and bigrams (the title counted twice, since
headlines carry most of a story's identity), and titles alone (which is what tells syndicated
copies and follow-ups apart from stories that merely share a subject).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer


def story_text(title: str, excerpt: str, title_weight: int = 2) -> str:
    return " ".join([title + "."] * title_weight + [excerpt])


class TermIndex(Mapping):
    """A fitted vectorizer's term → column map held in numpy arrays instead of a dict.

    Saved with the model and memory-mapped on load, the arrays are shared by every serving
    worker through the page cache, where a 500,000-term dict costs each process ~100 MB of
    its own. scikit-learn's transform only looks terms up (`vocabulary_[term]`, KeyError when
    absent), so it runs unchanged on this; a lookup is a binary search (a few µs)."""

    def __init__(self, vocabulary: Mapping[str, int]) -> None:
        terms = sorted(vocabulary)  # code-point order is UTF-8 byte order
        self.sorted_ = np.array([t.encode() for t in terms], dtype=bytes)
        self.columns_ = np.array([vocabulary[t] for t in terms], dtype=np.int64)
        self.by_column_ = np.empty_like(self.sorted_)
        self.by_column_[self.columns_] = self.sorted_

    def __getitem__(self, term: str) -> int:
        key = term.encode()
        if len(key) > self.sorted_.dtype.itemsize:
            raise KeyError(term)  # longer than every term (and would be truncated)
        i = int(np.searchsorted(self.sorted_, key))
        if i < len(self.sorted_) and self.sorted_[i] == key:
            return int(self.columns_[i])
        raise KeyError(term)

    def __len__(self) -> int:
        return len(self.columns_)

    def __iter__(self) -> Iterator[str]:
        return (t.decode() for t in self.sorted_)

    def term(self, column: int) -> str:
        return self.by_column_[column].decode()


def _compact(vectorizer: TfidfVectorizer) -> TfidfVectorizer:
    """A shallow copy whose vocabulary is a TermIndex (what is saved with the model)."""
    if isinstance(vectorizer.vocabulary_, TermIndex):
        return vectorizer
    out = object.__new__(type(vectorizer))
    out.__dict__.update(vectorizer.__dict__, vocabulary_=TermIndex(vectorizer.vocabulary_))
    return out


class TextFeatures(TransformerMixin, BaseEstimator):
    """L2-normalised TF-IDF rows for (titles, excerpts): `transform` → (full, title) matrices."""

    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 1,
                 max_df: float = 0.5, title_weight: int = 2, max_features: int | None = 500_000,
                 small_catalog: int = 50):
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_df = max_df
        self.title_weight = title_weight
        self.max_features = max_features
        self.small_catalog = small_catalog  # below this many stories, max_df keeps every term

    def _docs(self, titles: Sequence[str], excerpts: Sequence[str]) -> list[str]:
        return [story_text(t, e, self.title_weight) for t, e in zip(titles, excerpts, strict=True)]

    def fit(self, titles: Sequence[str], excerpts: Sequence[str]) -> TextFeatures:
        max_df = self.max_df if len(titles) >= self.small_catalog else 1.0
        self.full_ = TfidfVectorizer(
            sublinear_tf=True, ngram_range=self.ngram_range, stop_words="english",
            min_df=self.min_df, max_df=max_df, max_features=self.max_features,
            dtype=np.float32).fit(self._docs(titles, excerpts))
        self.title_ = TfidfVectorizer(
            sublinear_tf=True, stop_words="english", min_df=1, max_df=max_df,
            dtype=np.float32).fit(titles)
        return self

    def transform(self, titles: Sequence[str],
                  excerpts: Sequence[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        full = self.full_.transform(self._docs(titles, excerpts)).tocsr()
        title = self.title_.transform(titles).tocsr()
        return full, title

    def unknown_words(self, titles: Sequence[str], excerpts: Sequence[str]) -> float:
        """The share of these texts' words (not bigrams) that the full space's vocabulary
        lacks: new words, or words too common or too rare to have been kept."""
        analyze = self.full_.build_analyzer()
        words = [t for doc in self._docs(titles, excerpts) for t in analyze(doc) if " " not in t]
        return sum(t not in self.full_.vocabulary_ for t in words) / max(len(words), 1)

    def term(self, column: int) -> str:
        """The full space's term at `column` (what a reason names)."""
        vocabulary = self.full_.vocabulary_
        if isinstance(vocabulary, TermIndex):
            return vocabulary.term(column)
        return str(self._terms()[column])

    def _terms(self) -> np.ndarray:
        """Column → term while the vocabulary is still a dict (fitted in this process)."""
        terms = self.__dict__.get("_terms_cache")
        if terms is None:
            terms = self.__dict__["_terms_cache"] = self.full_.get_feature_names_out()
        return terms

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # a copy: the live object stays as it is
        state.pop("_terms_cache", None)  # derived; not worth its size in the artifact
        # Saved vocabularies are arrays, so loading memory-maps them (shared by workers).
        for name in ("full_", "title_"):
            if name in state:
                state[name] = _compact(state[name])
        return state
