"""Candidates for a query and the evidence for each (query, candidate) pair.

Curated lists in this domain are mostly stories from the same few days on the same subject,
and lists of similar stories overlap heavily. So candidates come from three cheap sources:
text neighbours (TF-IDF cosine), date neighbours (closest publication times), and graph votes
(what the curated lists of the query's text and date neighbours point to). Each pair then gets
a row of evidence (similarities, date gap, votes, popularity, provider and topic agreement)
that the ranker turns into a score. Everything is computed for a batch of queries at once
with dense B×N blocks, so batch size is chosen from N to bound memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

DAY = 86400.0
FEATURES = (
    "cos_full", "cos_title", "cos_full_rel", "rank_text", "days", "abs_days", "rank_date",
    "votes_text", "votes_date", "votes_reverse", "rank_votes", "log_in_degree", "has_list",
    "has_file", "same_provider", "topic_overlap", "query_day_density", "cos_recent",
    "rank_recent", "quality", "heat", "topic_match",
)
RECENT_DAYS = 7.0  # half-weight gap for the recency-weighted text score


@dataclass
class Index:
    """What candidate generation reads: text rows, times, providers, topics, the link graph."""

    full: sp.csr_matrix  # N×V, L2-normalised rows
    title: sp.csr_matrix  # N×Vt
    times: np.ndarray  # float64 days since epoch, NaN when unknown
    providers: np.ndarray  # int32 code, -1 unknown
    topics: sp.csr_matrix  # N×T binary
    graph: sp.csr_matrix  # N×N curated links
    has_file: np.ndarray  # bool
    quality: np.ndarray  # float32, NaN unknown
    heat: np.ndarray  # float32, NaN unknown

    def __post_init__(self) -> None:
        # Stories known only from lists have no topics of their own: they inherit the topics
        # of the stories whose lists hold them.
        own = np.diff(self.topics.indptr) > 0
        inherited = (self.graph.T @ self.topics).tocsr()
        inherited.data[:] = 1.0
        self.topics = (sp.diags(own.astype(np.float32)) @ self.topics
                       + sp.diags((~own).astype(np.float32)) @ inherited).tocsr()
        self.full_t = self.full.T.tocsr()
        self.title_t = self.title.T.tocsr()
        self.graph_t = self.graph.T.tocsr()
        self.in_degree = np.asarray(self.graph.sum(axis=0)).ravel().astype(np.float32)
        self.has_list = np.diff(self.graph.indptr) > 0
        known = np.flatnonzero(~np.isnan(self.times))
        self.by_time = known[np.argsort(self.times[known], kind="stable")]
        self.sorted_times = self.times[self.by_time]
        listed = self.by_time[self.has_list[self.by_time]]
        self.listed_by_time = listed
        self.listed_times = self.times[listed]
        self.listed_rows = np.flatnonzero(self.has_list)

    def __len__(self) -> int:
        return self.full.shape[0]

    def batch_size(self) -> int:
        """Queries per batch so that each dense B×N block stays near 16 MB."""
        return int(np.clip(4_000_000 // max(len(self), 1), 8, 512))


@dataclass
class Pairs:
    """Candidate pairs for a batch: query position in the batch, candidate row, evidence."""

    query: np.ndarray  # int64, position within the batch
    candidate: np.ndarray  # int64, catalog row
    features: np.ndarray  # float32, len(pairs) × len(FEATURES)


@dataclass
class Queries:
    """A batch of queries: catalog rows (`rows` ≥ 0) or new articles (`rows` = -1)."""

    full: sp.csr_matrix
    title: sp.csr_matrix
    times: np.ndarray
    providers: np.ndarray
    topics: sp.csr_matrix
    rows: np.ndarray


def _top(matrix: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest entries of each row (unordered), k ≤ columns."""
    k = min(k, matrix.shape[1])
    if k == matrix.shape[1]:
        return np.tile(np.arange(k), (matrix.shape[0], 1))
    return np.argpartition(-matrix, k - 1, axis=1)[:, :k]


def _nearest_in_time(sorted_times: np.ndarray, rows_by_time: np.ndarray, t: np.ndarray,
                     k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each query time, the k rows closest in time and their gaps in days (inf: none)."""
    b = len(t)
    if len(sorted_times) == 0 or k == 0:
        return np.full((b, 0), -1), np.full((b, 0), np.inf)
    pos = np.searchsorted(sorted_times, np.nan_to_num(t, nan=0.0))
    window = pos[:, None] + np.arange(-k, k)[None, :]
    valid = (window >= 0) & (window < len(sorted_times)) & ~np.isnan(t)[:, None]
    window = np.clip(window, 0, len(sorted_times) - 1)
    gaps = np.where(valid, np.abs(sorted_times[window] - t[:, None]), np.inf)
    pick = _top(-gaps, k)
    rows = np.take_along_axis(rows_by_time[window], pick, axis=1)
    gaps = np.take_along_axis(gaps, pick, axis=1)
    return np.where(np.isfinite(gaps), rows, -1), gaps


def _weights(b: int, n: int, cols: np.ndarray, vals: np.ndarray) -> sp.csr_matrix:
    """B×N sparse matrix with `vals` at (row, cols[row]); cols -1 are dropped."""
    keep = cols >= 0
    rows = np.repeat(np.arange(b), cols.shape[1])[keep.ravel()]
    w = sp.csr_matrix((vals[keep].astype(np.float32), (rows, cols[keep])), shape=(b, n))
    sums = np.asarray(w.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(sums, 1e-9)) @ w


def _rank_within(query: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Rank (0 = best, smallest key) of each pair among the pairs of its query."""
    order = np.lexsort((key, query))
    ranks = np.empty(len(order), dtype=np.float32)
    starts = np.r_[0, np.flatnonzero(np.diff(query[order])) + 1]
    counts = np.diff(np.r_[starts, len(order)])
    ranks[order] = np.arange(len(order)) - np.repeat(starts, counts)
    return ranks


def generate(index: Index, q: Queries, *, n_text: int = 100, n_date: int = 60,
             n_graph: int = 60, n_voters: int = 30) -> Pairs:
    """Candidates and their evidence for every query of the batch."""
    b, n = q.full.shape[0], len(index)
    own = q.rows >= 0
    sim = (q.full @ index.full_t).toarray()
    sim_title = (q.title @ index.title_t).toarray()
    sim[own, q.rows[own]] = -np.inf  # a story is never its own candidate

    text_cols = _top(sim, n_text)
    gap = np.abs(index.times[None, :] - q.times[:, None])
    recent = sim / (1.0 + np.nan_to_num(gap, nan=365.0) / RECENT_DAYS)
    recent_cols = _top(recent, n_date)
    date_cols, _ = _nearest_in_time(index.sorted_times, index.by_time, q.times, n_date)
    # Voters: the query's nearest stories (by text, by date) that have curated lists.
    if len(index.listed_rows):
        listed_sim = sim[:, index.listed_rows]
        pick = _top(listed_sim, n_voters)
        voter_cols = index.listed_rows[pick]
        voter_sim = np.maximum(np.take_along_axis(listed_sim, pick, axis=1), 0)
        w_text = _weights(b, n, np.where(voter_sim > 0, voter_cols, -1), voter_sim)
        date_voters, gaps = _nearest_in_time(index.listed_times, index.listed_by_time, q.times,
                                             n_voters)
        date_voters = np.where(date_voters == q.rows[:, None], -1, date_voters)
        w_date = _weights(b, n, date_voters, np.exp(-np.nan_to_num(gaps, posinf=1e9) / 3.0))
        votes_text = (w_text @ index.graph).toarray()
        votes_date = (w_date @ index.graph).toarray()
        votes_reverse = (w_text @ index.graph_t).toarray()
    else:
        votes_text = votes_date = votes_reverse = np.zeros((b, n), dtype=np.float32)
    votes = votes_text + votes_date
    if own.any():
        votes[own, q.rows[own]] = -np.inf
    graph_cols = _top(votes, n_graph)
    graph_cols = np.where(np.take_along_axis(votes, graph_cols, axis=1) > 0, graph_cols, -1)

    cols = np.concatenate([text_cols, recent_cols, date_cols, graph_cols], axis=1)
    cols.sort(axis=1)
    dup = np.zeros_like(cols, dtype=bool)
    dup[:, 1:] = cols[:, 1:] == cols[:, :-1]
    keep = (cols >= 0) & ~dup & (cols != q.rows[:, None])
    query = np.repeat(np.arange(b), cols.shape[1])[keep.ravel()]
    cand = cols[keep]

    cos = sim[query, cand]
    row_max = np.maximum(sim.max(axis=1, where=np.isfinite(sim), initial=0), 1e-6)
    days = index.times[cand] - q.times[query]
    v_t, v_d = votes_text[query, cand], votes_date[query, cand]
    pq = q.providers[query]
    density = np.array([
        np.searchsorted(index.sorted_times, t + 1) - np.searchsorted(index.sorted_times, t - 1)
        if not np.isnan(t) else np.nan for t in q.times], dtype=np.float32)
    topic_overlap = np.asarray(
        q.topics[query].multiply(index.topics[cand]).sum(axis=1)).ravel()
    q_has = np.diff(q.topics.indptr)[query] > 0
    c_has = np.diff(index.topics.indptr)[cand] > 0
    topic_match = np.where(q_has & c_has, topic_overlap > 0, np.nan)
    rec = recent[query, cand]
    features = np.column_stack([
        cos,
        sim_title[query, cand],
        cos / row_max[query],
        _rank_within(query, -cos),
        days,
        np.abs(days),
        _rank_within(query, np.nan_to_num(np.abs(days), nan=1e9)),
        v_t,
        v_d,
        votes_reverse[query, cand],
        _rank_within(query, -(v_t + v_d)),
        np.log1p(index.in_degree[cand]),
        index.has_list[cand],
        index.has_file[cand],
        (index.providers[cand] == pq) & (pq >= 0),
        topic_overlap,
        density[query],
        rec,
        _rank_within(query, -rec),
        index.quality[cand],
        index.heat[cand],
        topic_match,
    ]).astype(np.float32)
    return Pairs(query=query, candidate=cand, features=features)
