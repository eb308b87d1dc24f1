"""The related-story model: text features + link graph + candidates + learned ranker.

Where a link is learned: `RelatedModel.fit`. Training queries are featurised the way the
model will be used on a new article: cold. Queries are split into time blocks, and block b's
pairs are built from a graph that holds none of block b's lists and no link pointing to its
stories, so the ranker learns how much to trust graph evidence for a story whose own list
and incoming links are unknown: the situation of an article published today, and of the
evaluation's test queries. With `training_graph="others"` (the default) that graph holds
every other block's lists, so every block, the oldest included, yields training queries;
with "earlier", only the lists of earlier blocks (the first block then yields none).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted
from tqdm import tqdm

from . import sparse_rows
from .candidates import DAY, FEATURES, Index, Queries, generate
from .catalog import Snapshot
from .graph import adjacency, without
from .ranker import MAX_GRADE, LambdaRanker
from .sparse_rows import Row
from .text import TextFeatures


@dataclass
class Ranking:
    """Top-k per query: catalog rows (-1 pads short lists) and scores, best first."""

    rows: np.ndarray  # (queries, k) int64
    scores: np.ndarray  # (queries, k) float32
    reach: np.ndarray | None = None  # (queries, len(REACH)) float32: candidates.REACH


@dataclass
class Evidence:
    """What the model can show of why it ranked a candidate for a query."""

    terms: list[str]  # shared title and excerpt terms, heaviest in the pair's cosine first
    lister: int | None  # row of the story most like the query whose curated list holds it


def _codes(values: Sequence[str | None]) -> tuple[dict[str, int], np.ndarray]:
    vocab: dict[str, int] = {}
    for v in values:
        if v and v not in vocab:
            vocab[v] = len(vocab)
    return vocab, np.array([vocab.get(v, -1) if v else -1 for v in values], dtype=np.int32)


def _topic_matrix(topics: Sequence[Sequence[str]], vocab: dict[str, int]) -> sp.csr_matrix:
    rows, cols = [], []
    for i, ts in enumerate(topics):
        for t in set(ts):
            if t in vocab:
                rows.append(i)
                cols.append(vocab[t])
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(topics), max(len(vocab), 1)))


def _joined(parts: list[Ranking], k: int) -> Ranking:
    if not parts:
        return Ranking(np.empty((0, k), np.int64), np.empty((0, k), np.float32))
    reach = (np.concatenate([p.reach for p in parts])
             if all(p.reach is not None for p in parts) else None)
    return Ranking(np.concatenate([p.rows for p in parts]),
                   np.concatenate([p.scores for p in parts]), reach)


def top_k(query: np.ndarray, cand: np.ndarray, scores: np.ndarray, n_queries: int,
          k: int) -> Ranking:
    """Best k candidates per query; ties broken by catalog row, so output is deterministic."""
    out_rows = np.full((n_queries, k), -1, dtype=np.int64)
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    order = np.lexsort((cand, -scores, query))
    q_sorted = query[order]
    starts = np.r_[0, np.flatnonzero(np.diff(q_sorted)) + 1] if len(order) else np.empty(0, int)
    counts = np.diff(np.r_[starts, len(order)])
    pos = np.arange(len(order)) - np.repeat(starts, counts)
    take = pos < k
    out_rows[q_sorted[take], pos[take]] = cand[order][take]
    out_scores[q_sorted[take], pos[take]] = scores[order][take]
    return Ranking(out_rows, out_scores)


# The evidence the ranker sees by default: what held-out time shows to help (README,
# "Evaluation", the ablation table). Popularity (in-degree) and the votes of text neighbours'
# lists once lowered held-out recall, when training queries saw only earlier blocks' lists;
# trained on every block (training_graph="others") they raise it. The recency-weighted text
# score did not (it still ranks text candidates in `candidates.generate`).
DEFAULT_FEATURES = (
    "cos_full", "cos_title", "cos_full_rel", "rank_text", "days", "abs_days", "rank_date",
    "votes_text", "votes_date", "votes_reverse", "rank_votes", "log_in_degree", "has_list",
    "has_file", "same_provider", "topic_overlap", "query_day_density", "quality", "heat",
    "topic_match",
)


# From this many stories a fit compiles the ranker's trees (`compiled_trees`): the compile's
# seconds are then a small part of scoring every story's candidates, and smaller catalogs
# (tests, evaluations of the shared corpus) keep LightGBM's own predictor.
COMPILE_MIN_STORIES = 20_000


class RelatedModel(BaseEstimator):
    """Ranks catalog stories as related stories for a catalog story or a new article."""

    def __init__(self, n_text: int = 60, n_date: int = 60, n_graph: int = 60,
                 n_voters: int = 30, n_blocks: int = 10, max_train_queries: int = 2_500,
                 text: BaseEstimator | None = None, ranker: BaseEstimator | None = None,
                 training_graph: str = "others", features: tuple[str, ...] = DEFAULT_FEATURES,
                 query_terms: int = 20, max_postings: int | None = 2000,
                 bare_fraction: float = 0.3, recent_days: float = 7.0,
                 undated_gap_days: float = 365.0, date_vote_days: float = 3.0,
                 batch_budget: int = 20_000_000, n_jobs: int = 1,
                 parallel_min_rows: int = 20_000, verbose: bool = False, random_state: int = 0,
                 judgement_weight: int = 1, cluster: str | None = None,
                 compile_min_stories: int | None = COMPILE_MIN_STORIES):
        self.n_text = n_text
        self.n_date = n_date
        self.n_graph = n_graph
        self.n_voters = n_voters
        self.n_blocks = n_blocks
        self.max_train_queries = max_train_queries
        self.text = text
        self.ranker = ranker
        self.training_graph = training_graph
        self.features = features
        self.query_terms = query_terms
        self.max_postings = max_postings
        self.bare_fraction = bare_fraction
        self.recent_days = recent_days
        self.undated_gap_days = undated_gap_days
        self.date_vote_days = date_vote_days
        self.batch_budget = batch_budget
        self.n_jobs = n_jobs
        self.parallel_min_rows = parallel_min_rows
        self.verbose = verbose
        self.random_state = random_state
        self.judgement_weight = judgement_weight
        self.cluster = cluster
        self.compile_min_stories = compile_min_stories

    @classmethod
    def from_params(cls, params: dict | None = None) -> RelatedModel:
        """A model with `params` set, nested ones included (`ranker__n_estimators=...`):
        the sub-estimators are made here, fresh, so that nested parameters have somewhere
        to go and no two models share one."""
        return cls(text=TextFeatures(), ranker=LambdaRanker()).set_params(**(params or {}))

    def manifest_params(self) -> dict:
        """Every parameter, nested ones included, as JSON values (an estimator by its class
        name; its own parameters are listed beside it under `name__param`)."""
        return {k: type(v).__name__ if isinstance(v, BaseEstimator)
                else list(v) if isinstance(v, tuple) else v
                for k, v in sorted(self.get_params(deep=True).items())}

    # -- fitting --------------------------------------------------------------------------

    def fit(self, snapshot: Snapshot) -> RelatedModel:
        n = len(snapshot)
        if n < 2:
            raise ValueError("the catalog needs at least two stories to train on")
        self.ids_ = snapshot.ids.copy()
        snapshot, grades = self._with_judgements(snapshot)
        self.text_ = clone(self.text if self.text is not None else TextFeatures()).fit(
            snapshot.titles, snapshot.excerpts)
        full, title = self.text_.transform(snapshot.titles, snapshot.excerpts)
        times = snapshot.published / DAY
        self.provider_vocab_, providers = _codes(snapshot.providers)
        topic_vocab, _ = _codes([t for ts in snapshot.topics for t in ts])
        self.topic_vocab_ = topic_vocab
        topics = _topic_matrix(snapshot.topics, topic_vocab)
        truth = adjacency(snapshot.link_src, snapshot.link_dst, n)
        parts = dict(full=full, title=title, times=times, providers=providers, topics=topics,
                     has_file=snapshot.has_file, quality=snapshot.quality.astype(np.float32),
                     heat=snapshot.heat.astype(np.float32))

        unknown = set(self.features) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features: {sorted(unknown)}; known: {FEATURES}")
        if self.training_graph not in ("others", "earlier"):
            raise ValueError("training_graph must be 'others' or 'earlier'")
        X, y, group = self._training_pairs(snapshot, parts,
                                           truth if grades is None else grades)
        self.n_training_pairs_ = len(y)
        self.n_training_positives_ = int((y > 0).sum())
        self.ranker_ = clone(self.ranker if self.ranker is not None else LambdaRanker())
        self.ranker_.fit(X, y, group=group)
        if (self.compile_min_stories is not None and n >= self.compile_min_stories
                and hasattr(self.ranker_, "compile")):
            self.ranker_.compile()
        self.index_ = Index(graph=truth, **parts)
        self.feature_names_ = tuple(self.features)
        return self

    def grown(self, snapshot: Snapshot, fresh: np.ndarray) -> RelatedModel:
        """This model's fitted parts (text features, vocabularies, ranker) over the catalog
        as it has grown since the fit: what an incremental train ranks with
        (`recommender.incremental`). `snapshot` holds the fitted stories in the same rows,
        then the new ones; `fresh` marks the rows that are new or whose own fields changed,
        the only ones transformed again. The index keeps the fit's catalog-wide statistics
        (`Index._carry`); the curated links and judgements are the snapshot's."""
        check_is_fitted(self, "ranker_")
        n_old, n = len(self.ids_), len(snapshot)
        if not np.array_equal(snapshot.ids[:n_old], self.ids_):
            raise ValueError("the catalog lost or reordered stories since the fit")
        model = copy.copy(self)
        model.ids_ = snapshot.ids.copy()
        snapshot, _ = model._with_judgements(snapshot)
        rows = np.flatnonzero(fresh)
        old = self.index_
        if len(rows):
            full, title = self.text_.transform([snapshot.titles[i] for i in rows],
                                               [snapshot.excerpts[i] for i in rows])
        else:  # nothing new: a retrain after judgements alone
            full = sp.csr_matrix((0, old.full.shape[1]), dtype=old.full.dtype)
            title = sp.csr_matrix((0, old.title.shape[1]), dtype=old.title.dtype)
        at = np.where(fresh, n_old + np.searchsorted(rows, np.arange(n)), np.arange(n))
        model.index_ = Index(
            full=sp.vstack([old.full, full], format="csr")[at],
            title=sp.vstack([old.title, title], format="csr")[at],
            times=snapshot.published / DAY,
            providers=np.array([self.provider_vocab_.get(p, -1) if p else -1
                                for p in snapshot.providers], dtype=np.int32),
            topics=_topic_matrix(snapshot.topics, self.topic_vocab_),
            graph=adjacency(snapshot.link_src, snapshot.link_dst, n),
            has_file=snapshot.has_file, quality=snapshot.quality.astype(np.float32),
            heat=snapshot.heat.astype(np.float32), grown_from=(old, fresh))
        return model

    def _with_judgements(self, snapshot: Snapshot) -> tuple[Snapshot, sp.csr_matrix | None]:
        """The curated links as training reads them, with the editors' judgements: a story
        pinned or accepted for an article joins its list (as a link for the graph evidence,
        and as a positive of relevance grade `judgement_weight`, against 1 for a curated
        story); one blocked or rejected leaves it, and the model never ranks it for that
        article (`rejected_`). Returns the snapshot so changed, and the grades (None: no
        judgement used). `judgement_weight=0` ignores judgements."""
        n = len(snapshot)
        self.rejected_ = np.zeros(0, dtype=np.int64)
        self.n_judged_ = {"positive": 0, "negative": 0}
        if not self.judgement_weight or not len(snapshot.judged_src):
            return snapshot, None
        if not 0 < self.judgement_weight <= MAX_GRADE:
            raise ValueError(f"judgement_weight must be from 0 to {MAX_GRADE}")
        keys = snapshot.judged_src * n + snapshot.judged_dst
        good, bad = keys[snapshot.judged_belongs], keys[~snapshot.judged_belongs]
        self.rejected_ = np.unique(bad)
        self.n_judged_ = {"positive": int(len(good)), "negative": int(len(bad))}
        links = snapshot.link_src * n + snapshot.link_dst
        keep = ~np.isin(links, bad)
        added = np.setdiff1d(good, links)
        src = np.concatenate([snapshot.link_src[keep], added // n])
        dst = np.concatenate([snapshot.link_dst[keep], added % n])
        pos = np.concatenate([snapshot.link_pos[keep], np.full(len(added), 1 << 20)])
        grade = np.where(np.isin(src * n + dst, good), self.judgement_weight, 1)
        grades = sp.csr_matrix((grade.astype(np.float32), (src, dst)), shape=(n, n))
        return dataclasses.replace(snapshot, link_src=src, link_dst=dst, link_pos=pos), grades

    def _training_pairs(self, snapshot: Snapshot, parts: dict, truth: sp.csr_matrix
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(snapshot)
        queries = np.unique(snapshot.link_src)
        if len(queries) < 2:
            raise ValueError("training needs at least two stories with curated lists")
        key = np.array(snapshot.keys, dtype=object)[queries]
        when = np.nan_to_num(snapshot.published[queries], nan=-np.inf)
        queries = queries[np.lexsort((key, when))]
        blocks = np.array_split(queries, min(self.n_blocks, len(queries)))
        rng = np.random.default_rng(self.random_state)
        others = self.training_graph == "others"
        use = range(len(blocks)) if others or len(blocks) == 1 else range(1, len(blocks))
        per_block = max(1, self.max_train_queries // len(use))
        X_parts, y_parts, g_parts, found, total = [], [], [], 0, 0
        bar = tqdm(total=sum(min(len(blocks[b]), per_block) for b in use), unit="query",
                   desc="train", disable=not self.verbose, dynamic_ncols=True)
        for b in use:
            cold = np.zeros(n, dtype=bool)
            cold[blocks[b] if others else np.concatenate(blocks[b:])] = True
            keep = without(snapshot.link_src, snapshot.link_dst, cold)
            index = Index(graph=adjacency(snapshot.link_src[keep], snapshot.link_dst[keep], n),
                          **parts)
            rows = blocks[b]
            if len(rows) > per_block:
                rows = np.sort(rng.choice(rows, per_block, replace=False))
            step = index.batch_size(self.batch_budget)
            for start in range(0, len(rows), step):
                batch = rows[start:start + step]
                queries = self._queries(index, batch)
                # A new article sent to the service often comes without provider or topics:
                # some training queries come that way too, so the ranker learns to do
                # without them instead of reading their absence as "unrelated".
                self._strip(queries, rng.random(len(batch)) < self.bare_fraction)
                pairs = self._generate(index, queries)
                labels = np.asarray(truth[batch[pairs.query], pairs.candidate]).ravel()
                found += int((labels > 0).sum())
                total += int((truth[batch] > 0).sum())
                X_parts.append(pairs.features)
                y_parts.append(labels)
                g_parts.append(np.bincount(pairs.query, minlength=len(batch)))
                bar.update(len(batch))
        bar.close()
        y = np.concatenate(y_parts).astype(np.int8)
        self.candidate_recall_ = found / max(total, 1)  # of the sampled queries' links
        return np.concatenate(X_parts), y, np.concatenate(g_parts)

    # -- ranking --------------------------------------------------------------------------

    def _generate(self, index: Index, queries: Queries, allowed: np.ndarray | None = None):
        return generate(index, queries, features=self.features, n_text=self.n_text,
                        n_date=self.n_date, n_graph=self.n_graph, n_voters=self.n_voters,
                        query_terms=self.query_terms, max_postings=self.max_postings,
                        recent_days=self.recent_days, undated_gap_days=self.undated_gap_days,
                        date_vote_days=self.date_vote_days, allowed=allowed)

    @staticmethod
    def _strip(queries: Queries, bare: np.ndarray) -> None:
        """Present the `bare` queries as title, excerpt and date only."""
        if bare.any():
            queries.providers = np.where(bare, -1, queries.providers).astype(np.int32)
            queries.topics = (sp.diags((~bare).astype(np.float32)) @ queries.topics).tocsr()
            queries.topics.eliminate_zeros()

    @staticmethod
    def _queries(index: Index, rows: np.ndarray) -> Queries:
        return Queries(full=index.full[rows], title=index.title[rows], times=index.times[rows],
                       providers=index.providers[rows], topics=index.topics[rows], rows=rows)

    def _rank(self, index: Index, queries: Queries, k: int,
              allowed: np.ndarray | None = None) -> Ranking:
        pairs = self._generate(index, queries, allowed)
        scores = self.ranker_.score_pairs(pairs.features)
        rejected = getattr(self, "rejected_", None)  # absent from models made before it
        if rejected is not None and len(rejected):
            own = queries.rows[pairs.query]
            keep = ~((own >= 0) & np.isin(own * len(index) + pairs.candidate, rejected))
            ranking = top_k(pairs.query[keep], pairs.candidate[keep], scores[keep],
                            queries.full.shape[0], k)
        else:
            ranking = top_k(pairs.query, pairs.candidate, scores, queries.full.shape[0], k)
        ranking.reach = pairs.reach
        return ranking

    def rank_rows(self, rows: np.ndarray, k: int = 100) -> Ranking:
        """Related stories for catalog rows, using everything the catalog knows.

        With `cluster` (a Dask scheduler's address), slices are ranked on its workers
        (`recommender.cluster`). With `n_jobs` > 1, contiguous slices are ranked in worker
        processes (one thread each). Either way they are joined in order: the same result
        as n_jobs=1, on more cores. Starting workers and shipping the model to them costs
        seconds, so below `parallel_min_rows` rows (and without a cluster) it runs here
        (docs/scaling.md has the measurements)."""
        check_is_fitted(self, "ranker_")
        rows = np.asarray(rows, dtype=np.int64)
        if self.cluster and len(rows):
            from .cluster import rank_on_cluster

            return rank_on_cluster(self, rows, k, self.cluster)
        if self.n_jobs > 1 and len(rows) >= max(self.parallel_min_rows, self.n_jobs):
            from joblib import Parallel, delayed, parallel_config

            slices = np.array_split(rows, self.n_jobs * 4)
            with parallel_config(backend="loky", inner_max_num_threads=1):
                parts = Parallel(n_jobs=self.n_jobs)(
                    delayed(self._rank_here)(part, k, False) for part in slices)
            return _joined(parts, k)
        return self._rank_here(rows, k, self.verbose)

    def _rank_here(self, rows: np.ndarray, k: int, verbose: bool) -> Ranking:
        index = self.index_
        step = index.batch_size(self.batch_budget)
        parts = [self._rank(index, self._queries(index, rows[start:start + step]), k)
                 for start in tqdm(range(0, len(rows), step), desc="rank", unit="batch",
                                   disable=not verbose, dynamic_ncols=True)]
        return _joined(parts, k)

    def new_query(self, title: str, excerpt: str, published_days: float | None = None,
                  provider: str | None = None, topics: Sequence[str] = ()) -> Queries:
        """An article the catalog does not hold, as a (cold) query of one."""
        check_is_fitted(self, "ranker_")
        full, title_m = self.text_.transform([title], [excerpt])
        return Queries(
            full=full, title=title_m,
            times=np.array([np.nan if published_days is None else published_days]),
            providers=np.array([self.provider_vocab_.get(provider or "", -1)], dtype=np.int32),
            topics=_topic_matrix([list(topics)], self.topic_vocab_),
            rows=np.array([-1]))

    def rank_queries(self, queries: Queries, k: int = 10,
                     allowed: np.ndarray | None = None) -> Ranking:
        """Top k for a batch of queries; with `allowed` (a bool per catalog row), among the
        allowed rows only (`candidates.generate` says how)."""
        return self._rank(self.index_, queries, k, allowed)

    def query_of_row(self, row: int) -> Queries:
        """A catalog row as a query, with everything the catalog knows of it."""
        check_is_fitted(self, "ranker_")
        return self._queries(self.index_, np.array([row], dtype=np.int64))

    def explain(self, query: Row, own: int, rows: Sequence[int | None],
                n_terms: int = 3) -> list[Evidence]:
        """The evidence behind each candidate row (None: a story the model has no row for),
        for `query` (its TF-IDF row) whose own row is `own` (-1 for a new article): the
        terms it shares with the query that weigh most in their cosine, and the story most
        like the query whose curated list holds it (the graph evidence of the pair, in a form
        an editor can read). One vectorised pass over the page."""
        check_is_fitted(self, "ranker_")
        index = self.index_
        known = [(i, r) for i, r in enumerate(rows) if r is not None]
        evidence = [Evidence([], None) for _ in rows]
        if not known or len(query[0]) == 0:
            return evidence
        pos = np.array([i for i, _ in known])
        cand = np.array([r for _, r in known], dtype=np.int64)
        owner, cols, prod = sparse_rows.products(query, index.full, cand)
        # Per candidate, its heaviest shared terms (ties: the lower column).
        order = np.lexsort((cols, -prod, owner))
        rank = np.arange(len(order)) - np.searchsorted(owner[order], owner[order])
        for o, c in zip(owner[order][rank < n_terms].tolist(),
                        cols[order][rank < n_terms].tolist(), strict=True):
            evidence[pos[o]].terms.append(self.text_.term(c))
        owner, listers = sparse_rows.gather(index.graph_t, cand)[:2]
        keep = listers != own
        owner, listers = owner[keep], listers[keep]
        # Co-listed candidates share listers: each lister's similarity is computed once.
        unique, at = np.unique(listers, return_inverse=True)
        sims = sparse_rows.dots(query, index.full, unique)[at]
        # Per candidate, the most similar lister (ties: the lower row), if similar at all.
        order = np.lexsort((listers, -sims, owner))
        first = np.r_[True, owner[order][1:] != owner[order][:-1]][:len(order)]
        top = order[first]
        for t in top[sims[top] > 0].tolist():
            evidence[pos[owner[t]]].lister = int(listers[t])
        return evidence

    def rank_new(self, title: str, excerpt: str, published_days: float | None = None,
                 provider: str | None = None, topics: Sequence[str] = (),
                 k: int = 10) -> Ranking:
        """Related stories for an article the catalog does not hold (a cold query)."""
        return self.rank_queries(
            self.new_query(title, excerpt, published_days, provider, topics), k)
