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

from collections.abc import Callable, Sequence
from dataclasses import InitVar, dataclass
from functools import cache

import numpy as np
import scipy.sparse as sp

from . import sparse_rows

DAY = 86400.0
FEATURES = (
    "cos_full", "cos_title", "cos_full_rel", "rank_text", "days", "abs_days", "rank_date",
    "votes_text", "votes_date", "votes_reverse", "rank_votes", "log_in_degree", "has_list",
    "has_file", "same_provider", "topic_overlap", "query_day_density", "cos_recent",
    "rank_recent", "quality", "heat", "topic_match", "recent_in_degree", "age",
)
RECENT_LINK_DAYS = 30.0  # a link counts for `recent_in_degree` when its two ends are this close
# What a ranked query's candidate sources stopped at (`Pairs.reach`): the last text score
# taken, the last recency-weighted text score taken, the last listed text neighbour taken as
# a voter (0: the source took every hit). A story scoring below all three with the query
# cannot enter its candidates: what an incremental train (recommender.incremental) reads.
REACH = ("text", "recent", "voter")


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
    # Grown from an earlier index (an incremental train): (that index, a bool per row of
    # this one marking the rows that are new or changed since).
    grown_from: InitVar[tuple[Index, np.ndarray] | None] = None

    def __post_init__(self, grown_from: tuple[Index, np.ndarray] | None) -> None:
        # Stories known only from lists have no topics of their own: they inherit the topics
        # of the stories whose lists hold them.
        own = np.diff(self.topics.indptr) > 0
        inherited = (self.graph.T @ self.topics).tocsr()
        inherited.data[:] = 1.0
        self.topics = (sp.diags(own.astype(np.float32)) @ self.topics
                       + sp.diags((~own).astype(np.float32)) @ inherited).tocsr()
        self.full_t = self.full.T.tocsr()
        self.doc_freq = np.diff(self.full_t.indptr)
        self.title_t = self.title.T.tocsr()
        self.graph_t = self.graph.T.tocsr()
        self.in_degree = np.asarray(self.graph.sum(axis=0)).ravel().astype(np.float32)
        # Links from lists of stories published near the story itself: what a story gets
        # while it is news, unlike the slow accumulation of later lists.
        links = self.graph.tocoo()
        near = np.abs(self.times[links.row] - self.times[links.col]) <= RECENT_LINK_DAYS
        self.recent_in_degree = np.bincount(links.col[near], minlength=len(self.times)
                                            ).astype(np.float32)
        self.newest = float(np.nanmax(self.times)) if np.isfinite(self.times).any() else np.nan
        if grown_from is not None:
            self._carry(*grown_from)
        self.has_list = np.diff(self.graph.indptr) > 0
        known = np.flatnonzero(~np.isnan(self.times))
        self.by_time = known[np.argsort(self.times[known], kind="stable")]
        self.sorted_times = self.times[self.by_time]
        listed = self.by_time[self.has_list[self.by_time]]
        self.listed_by_time = listed
        self.listed_times = self.times[listed]
        self.listed_rows = np.flatnonzero(self.has_list)

    def _carry(self, old: Index, fresh: np.ndarray) -> None:
        """Keep the catalog-wide statistics of `old`, as the fitted TF-IDF keeps its IDF:
        which terms are too common to search, in-degrees, the newest date, and the topics
        of the rows that did not change (inherited ones included). They move with every
        import and are read by every query, so were they recomputed, one import would
        change every story's answer; they are brought up to date by the next full train.
        New rows get their own statistics as they are now."""
        n_old = len(old)
        keep = np.zeros(len(self), dtype=bool)
        keep[:n_old] = ~fresh[:n_old]
        at = np.where(keep, np.arange(len(self)), n_old + np.arange(len(self)))
        self.topics = sp.vstack([old.topics, self.topics], format="csr")[at]
        self.doc_freq = old.doc_freq
        self.in_degree = np.r_[old.in_degree, self.in_degree[n_old:]]
        self.recent_in_degree = np.r_[old.recent_in_degree, self.recent_in_degree[n_old:]]
        self.newest = old.newest

    def __len__(self) -> int:
        return self.full.shape[0]

    def batch_size(self, budget: int) -> int:
        """Queries per batch: B×N search results stay within `budget` cells (RelatedModel's
        `batch_budget`) even for common terms."""
        return int(np.clip(budget // max(len(self), 1), 16, 512))


@dataclass
class Pairs:
    """Candidate pairs for a batch: query position in the batch, candidate row, evidence."""

    query: np.ndarray  # int64, position within the batch
    candidate: np.ndarray  # int64, catalog row
    features: np.ndarray  # float32, len(pairs) × the features asked for, in their order
    reach: np.ndarray  # float32, queries × REACH (zeros under a filter)


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


def _sparse_top(m: sp.csr_matrix, k: int, score: np.ndarray | None = None,
                reach: np.ndarray | None = None) -> np.ndarray:
    """Per row, the columns of the k largest stored entries (by `score`, default the data);
    -1 pads rows with fewer. Ties go to the lower column, so results are deterministic.
    `reach`, when given, receives each row's k-th largest score (0 when the row has fewer
    than k): what a new entry must at least score to be taken."""
    score = m.data if score is None else score
    out = np.full((m.shape[0], k), -1, dtype=np.int64)
    for i in range(m.shape[0]):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        if hi == lo:
            continue
        cols, vals = m.indices[lo:hi], score[lo:hi]
        keep = vals > 0
        cols, vals = cols[keep], vals[keep]
        if len(cols) > k:
            part = np.argpartition(-vals, k - 1)[:k]
            cols, vals = cols[part], vals[part]
        if reach is not None and len(cols) >= k > 0:
            reach[i] = vals.min()
        order = np.lexsort((cols, -vals))
        out[i, :len(order)] = cols[order]
    return out


def _weights(b: int, n: int, cols: np.ndarray, vals: np.ndarray) -> sp.csr_matrix:
    """B×N sparse matrix with `vals` at (row, cols[row]), rows normalised to sum 1 (a row's
    columns are distinct). Built from its arrays directly: through scipy's constructors this
    cost a single query more than the arithmetic. Row sums are taken as scipy takes them
    (a reduceat over each row in ascending columns) and rows are stored in descending column
    order, as scipy's own construction (COO, then a diagonal product) left them: the votes
    come out to the bit."""
    keep = (cols >= 0) & (vals > 0)
    order = np.argsort(np.where(keep, cols, n), axis=1, kind="stable")  # kept, ascending
    cols = np.take_along_axis(cols, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    counts = np.take_along_axis(keep, order, axis=1).sum(axis=1)
    ascending = np.arange(cols.shape[1])[None, :] < counts[:, None]
    data = vals[ascending]
    scale = np.float32(1.0) / np.maximum(_row_sums(data, counts), np.float32(1e-9))
    descending = ascending[:, ::-1]
    data = (vals[:, ::-1][descending] * np.repeat(scale, counts)).astype(np.float32)
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int32)
    return sp.csr_matrix((data, cols[:, ::-1][descending].astype(np.int32), indptr),
                         shape=(b, n))


def _row_sums(data: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sums of consecutive runs of `data` (`counts` long; 0 for an empty run), summed as
    scipy's sparse `sum(axis=1)` sums a row, so results match it to the bit."""
    sums = np.zeros(len(counts), dtype=data.dtype)
    nonempty = counts > 0
    if nonempty.any():
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        sums[nonempty] = np.add.reduceat(data, starts[nonempty])
    return sums


def _rank_within(query: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Rank (0 = best, smallest key) of each pair among the pairs of its query."""
    order = np.lexsort((key, query))
    ranks = np.empty(len(order), dtype=np.float32)
    starts = np.r_[0, np.flatnonzero(np.diff(query[order])) + 1]
    counts = np.diff(np.r_[starts, len(order)])
    ranks[order] = np.arange(len(order)) - np.repeat(starts, counts)
    return ranks


def _prune(m: sp.csr_matrix, terms: int, too_common: np.ndarray | None = None) -> sp.csr_matrix:
    """Keep each row's `terms` heaviest entries, none of them `too_common` (a bool mask over
    columns): the more-like-this trick that keeps search cost proportional to the postings
    of distinctive terms instead of the whole catalog."""
    m = m.tocsr(copy=True)
    if too_common is not None:
        m.data[too_common[m.indices]] = 0
    for i in range(m.shape[0]):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        if hi - lo > terms:
            row = m.data[lo:hi]
            row[np.argsort(-row, kind="stable")[terms:]] = 0
    m.eliminate_zeros()
    return m


def _rowwise_dot(a: sp.csr_matrix, query: np.ndarray, b: sp.csr_matrix,
                 cand: np.ndarray) -> np.ndarray:
    """Per pair, the dot product of row query[i] of `a` with row cand[i] of `b`, without
    building the pairs' matrices: the products over shared columns, in ascending column
    order, summed as scipy's `a[query].multiply(b[cand]).sum(axis=1)` summed them (equal to
    the bit; both matrices hold each row's columns sorted)."""
    owner, cols, b_vals = sparse_rows.gather(b, cand)
    prod = _lookup(a, query[owner], cols) * b_vals.astype(np.float32)
    hit = prod != 0
    return _row_sums(prod[hit], np.bincount(owner[hit], minlength=len(cand)))


def _lookup(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Values of csr `m` at (rows[i], cols[i]), 0 where none is stored (a row holds a column
    at most once). A binary search over the entries' (row, column) keys, in numpy: scipy's
    fancy indexing validated and converted more than it looked up."""
    if len(rows) == 0 or m.nnz == 0:
        return np.zeros(len(rows), dtype=np.float32)
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64) * m.shape[1], np.diff(m.indptr))
    keys += m.indices
    order = None if m.has_sorted_indices else np.argsort(keys, kind="stable")
    if order is not None:
        keys = keys[order]
    want = rows.astype(np.int64) * m.shape[1] + cols
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    at = pos if order is None else order[pos]
    return np.where(keys[pos] == want, m.data[at], 0).astype(np.float32)


def search_terms(index: Index, full: sp.csr_matrix, query_terms: int,
                 max_postings: int | None) -> sp.csr_matrix:
    """The terms of queries' TF-IDF rows (`full`) that their text search uses: each row's
    `query_terms` heaviest among those held by at most `max_postings` of the index's
    stories (all of them while the index is no larger)."""
    too_common = (index.doc_freq > max_postings
                  if max_postings is not None and max_postings < len(index) else None)
    return _prune(full, query_terms, too_common)


def generate(index: Index, q: Queries, *, features: Sequence[str], n_text: int, n_date: int,
             n_graph: int, n_voters: int, query_terms: int, max_postings: int | None,
             recent_days: float, undated_gap_days: float, date_vote_days: float,
             allowed: np.ndarray | None = None) -> Pairs:
    """Candidates and their evidence for every query of the batch; O(postings), not O(N).
    The sizes and limits are RelatedModel's parameters (its defaults are the only ones).
    Only the named `features` are computed, in that order: a served request pays for the
    evidence its ranker reads, not for all of FEATURES.

    Text search uses each query's `query_terms` heaviest terms among those held by at most
    `max_postings` stories, which bounds a query's search cost whatever the catalog's size;
    the pair evidence uses every term. A text score is halved at `recent_days` apart (an
    undated story counts as `undated_gap_days` away), and a date neighbour's list votes with
    weight exp(-gap / `date_vote_days`).

    With `allowed` (a bool per catalog row: a filter on date, provider, ...), candidates are
    drawn from the allowed rows only, each source looking past the rows it would otherwise
    stop at: the best allowed text hits, the nearest allowed dates however far, the allowed
    stories the lists vote for. Voters are still the query's own neighbours: who voted does
    not depend on the filter, only whom for. Used when a filter leaves the precomputed
    ranking short; the search itself is bounded as for any query, so it costs what ranking
    a new article costs."""
    b, n = q.full.shape[0], len(index)
    own = q.rows >= 0
    search = (search_terms(index, q.full, query_terms, max_postings) @ index.full_t).tocsr()
    # A story is never its own candidate.
    self_hits = own[np.repeat(np.arange(b), np.diff(search.indptr))] & (
        search.indices == np.repeat(q.rows, np.diff(search.indptr)))
    search.data[self_hits] = 0
    search.eliminate_zeros()
    hit_rows = np.repeat(np.arange(b), np.diff(search.indptr))
    hit_gap = np.abs(index.times[search.indices] - q.times[hit_rows])
    recent_score = search.data / (1.0 + np.nan_to_num(hit_gap, nan=undated_gap_days)
                                  / recent_days)

    reach = np.zeros((b, len(REACH)), dtype=np.float32)
    if allowed is None:
        text_cols = _sparse_top(search, n_text, reach=reach[:, 0])
        recent_cols = _sparse_top(search, n_date, recent_score, reach=reach[:, 1])
        date_cols, _ = _nearest_in_time(index.sorted_times, index.by_time, q.times, n_date)
    else:
        ok = allowed[search.indices]
        text_cols = _sparse_top(search, n_text, np.where(ok, search.data, 0))
        recent_cols = _sparse_top(search, n_date, np.where(ok, recent_score, 0))
        dated = allowed[index.by_time]
        date_cols, _ = _nearest_in_time(index.sorted_times[dated], index.by_time[dated],
                                        q.times, n_date)
    date_cols = np.where(date_cols == q.rows[:, None], -1, date_cols)
    # Voters: the query's nearest stories (by text, by date) that have curated lists.
    listed = index.has_list[search.indices]
    voter_cols = _sparse_top(search, n_voters, np.where(listed, search.data, 0),
                             reach=reach[:, 2] if allowed is None else None)
    voter_sim = np.where(voter_cols >= 0, _lookup_dense(search, voter_cols), 0)
    w_text = _weights(b, n, voter_cols, voter_sim)
    date_voters, gaps = _nearest_in_time(index.listed_times, index.listed_by_time, q.times,
                                         n_voters)
    date_voters = np.where(date_voters == q.rows[:, None], -1, date_voters)
    w_date = _weights(b, n, date_voters,
                      np.exp(-np.nan_to_num(gaps, posinf=1e9) / date_vote_days))
    votes_text = (w_text @ index.graph).tocsr()
    votes_date = (w_date @ index.graph).tocsr()
    votes = (votes_text + votes_date).tocsr()
    vote_rows = np.repeat(np.arange(b), np.diff(votes.indptr))
    votes.data[own[vote_rows] & (votes.indices == q.rows[vote_rows])] = 0
    graph_cols = _sparse_top(votes, n_graph, None if allowed is None
                             else np.where(allowed[votes.indices], votes.data, 0))

    cols = np.concatenate([text_cols, recent_cols, date_cols, graph_cols], axis=1)
    cols.sort(axis=1)
    dup = np.zeros_like(cols, dtype=bool)
    dup[:, 1:] = cols[:, 1:] == cols[:, :-1]
    keep = (cols >= 0) & ~dup & (cols != q.rows[:, None])
    if allowed is not None:
        keep &= allowed[np.maximum(cols, 0)]
    query = np.repeat(np.arange(b), cols.shape[1])[keep.ravel()]
    cand = cols[keep]
    return Pairs(query=query, candidate=cand,
                 features=_evidence(index, q, query, cand, votes_text, votes_date, w_text,
                                    features, recent_days, undated_gap_days),
                 reach=reach)


def _evidence(index: Index, q: Queries, query: np.ndarray, cand: np.ndarray,
              votes_text: sp.csr_matrix, votes_date: sp.csr_matrix, w_text: sp.csr_matrix,
              features: Sequence[str], recent_days: float,
              undated_gap_days: float) -> np.ndarray:
    """The pair evidence, one column per name in `features`, each computed only if asked
    (intermediates shared between columns are computed once, on first use)."""
    b = q.full.shape[0]

    @cache
    def cos() -> np.ndarray:
        return _rowwise_dot(q.full, query, index.full, cand)

    @cache
    def days() -> np.ndarray:
        return index.times[cand] - q.times[query]

    @cache
    def recent() -> np.ndarray:
        return cos() / (1.0 + np.nan_to_num(np.abs(days()), nan=undated_gap_days)
                        / recent_days)

    @cache
    def v_t() -> np.ndarray:
        return _lookup(votes_text, query, cand)

    @cache
    def v_d() -> np.ndarray:
        return _lookup(votes_date, query, cand)

    @cache
    def row_max() -> np.ndarray:
        out = np.zeros(b, dtype=np.float32)
        np.maximum.at(out, query, cos())
        return out

    def density() -> np.ndarray:
        return np.array([
            np.searchsorted(index.sorted_times, t + 1)
            - np.searchsorted(index.sorted_times, t - 1)
            if not np.isnan(t) else np.nan for t in q.times], dtype=np.float32)[query]

    @cache
    def topic_overlap() -> np.ndarray:
        return _rowwise_dot(q.topics, query, index.topics, cand)

    @cache
    def q_has_topics() -> np.ndarray:
        return np.diff(q.topics.indptr)[query] > 0

    def topic_match() -> np.ndarray:
        c_has = np.diff(index.topics.indptr)[cand] > 0
        return np.where(q_has_topics() & c_has, topic_overlap() > 0, np.nan)

    def same_provider() -> np.ndarray:
        pq = q.providers[query]
        return (index.providers[cand] == pq) & (pq >= 0)

    columns: dict[str, Callable[[], np.ndarray]] = {
        "cos_full": cos,
        "cos_title": lambda: _rowwise_dot(q.title, query, index.title, cand),
        "cos_full_rel": lambda: cos() / np.maximum(row_max()[query], 1e-6),
        "rank_text": lambda: _rank_within(query, -cos()),
        "days": days,
        "abs_days": lambda: np.abs(days()),
        "rank_date": lambda: _rank_within(query, np.nan_to_num(np.abs(days()), nan=1e9)),
        "votes_text": v_t,
        "votes_date": v_d,
        "votes_reverse": lambda: _lookup((w_text @ index.graph_t).tocsr(), query, cand),
        "rank_votes": lambda: _rank_within(query, -(v_t() + v_d())),
        "log_in_degree": lambda: np.log1p(index.in_degree[cand]),
        "has_list": lambda: index.has_list[cand],
        "has_file": lambda: index.has_file[cand],
        "same_provider": same_provider,
        # A query without topics: unknown, not 0.
        "topic_overlap": lambda: np.where(q_has_topics(), topic_overlap(), np.nan),
        "query_day_density": density,
        "cos_recent": recent,
        "rank_recent": lambda: _rank_within(query, -recent()),
        "quality": lambda: index.quality[cand],
        "heat": lambda: index.heat[cand],
        "topic_match": topic_match,
        "recent_in_degree": lambda: np.log1p(index.recent_in_degree[cand]),
        # Days from the candidate's publication to the catalog's newest story.
        "age": lambda: index.newest - index.times[cand],
    }
    assert tuple(columns) == FEATURES
    out = np.empty((len(query), len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        out[:, j] = columns[name]()
    return out


def _lookup_dense(m: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    """Values of csr `m` at (row i, cols[i, j]); cols -1 give 0."""
    rows = np.repeat(np.arange(cols.shape[0]), cols.shape[1])
    flat = cols.ravel()
    ok = flat >= 0
    out = np.zeros(len(flat), dtype=np.float32)
    out[ok] = _lookup(m, rows[ok], flat[ok])
    return out.reshape(cols.shape)
