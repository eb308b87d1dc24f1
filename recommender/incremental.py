"""Incremental train: keep the fitted model, re-rank only the stories an import can change.

A day's import touches about 1 % of the catalog, yet a full train ranks every story again.
An incremental train keeps the current version's fitted parts (text features, vocabularies,
ranker and the catalog-wide statistics, `Index._carry`), grows its index by the new and
changed stories and the current curated lists (`RelatedModel.grown`), and re-ranks only
the stories whose top 100 can differ from a full rank with that grown model. The others
keep their rows of the current version: the result is that full rank, exactly (a test
compares them story by story), at the cost of the stories an import reaches.

Which stories an import reaches (`affected`): a story's candidates come from its text
search (the best text scores, the best recency-weighted ones, the best listed stories as
voters), its nearest dates, its nearest listed dates, and the lists of its voters. A
version records where each of its stories' sources stopped (`candidates.REACH`). A story
is reached when a changed row (new, new fields, a new list) scores at least that far in
its search, falls in one of its date windows (or the day around it, which the ranker
counts), or is listed by one of its voters; or when its own row, list or judgements
changed.

When the catalog changed too much for the fitted parts to stand for it (settings
`incremental_max_changed`, `incremental_max_new_terms`, `full_train_days`), when the
model's parameters change, when stories were removed, or on `train --full`, the train is a
full one (`plan` says why).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import artifact
from .artifact import Artifact, ArtifactError
from .candidates import Index, search_terms
from .catalog import Snapshot
from .model import RelatedModel

# Arrays a version keeps for the next incremental train (besides its model and top 100).
REACH_FILE = "reach.npy"  # per story, where its candidate sources stopped (REACH)
DIGESTS_FILE = "digests.npy"  # per story, a digest of the fields the model reads
# Parameters that change how a train runs, not the model it makes.
RUN_PARAMS = ("n_jobs", "verbose", "cluster", "parallel_min_rows")
TIE = 1e-4  # relative slack on a recorded reach: scores summed in another order still count
SEARCH_COLUMNS = 4096  # changed rows searched for at once (bounds the product's memory)
SAMPLE = 2000  # fitted stories whose words show what the vocabulary lacks by design


@dataclass
class Plan:
    """What `train` will do, and why."""

    incremental: bool
    reason: str
    previous: Artifact | None = None
    fresh: np.ndarray | None = None  # bool per row: new, or changed fields
    digests: np.ndarray | None = None  # the snapshot's, once computed


def digests(snapshot: Snapshot) -> np.ndarray:
    """Per story, 8 bytes of a hash of every field of its row that the model reads: a
    story whose digest differs from the current version's is transformed and ranked again."""
    out = np.empty(len(snapshot), dtype=np.uint64)
    for i in range(len(snapshot)):
        fields = (snapshot.titles[i], snapshot.excerpts[i], snapshot.published_text[i] or "",
                  snapshot.providers[i] or "", json.dumps(snapshot.topics[i]),
                  bool(snapshot.has_file[i]), repr(float(snapshot.quality[i])),
                  repr(float(snapshot.heat[i])))
        h = hashlib.blake2b("\x1f".join(map(str, fields)).encode(), digest_size=8)
        out[i] = int.from_bytes(h.digest(), "little")
    return out


def plan(snapshot: Snapshot, models_dir: Path, model: RelatedModel, *, full: bool,
         max_changed: float, max_new_terms: float, full_train_days: float) -> Plan:
    """Incremental or full, and the reason, for training `model` (unfitted, with the
    parameters asked for) on `snapshot`."""
    if full:
        return Plan(False, "asked for (--full)")
    try:
        previous = artifact.load(models_dir)
    except ArtifactError:
        return Plan(False, "no current version to grow from")
    manifest = previous.manifest
    if not {REACH_FILE, DIGESTS_FILE} <= set(manifest.get("files", {})):
        return Plan(False, f"{previous.version} keeps no reach for an incremental train")
    if manifest.get("catalog", {}).get("id") != snapshot.catalog_id:
        return Plan(False, f"{previous.version} was trained on another catalog")
    asked = {k: v for k, v in model.manifest_params().items() if k not in RUN_PARAMS}
    had = {k: v for k, v in manifest.get("params", {}).items() if k not in RUN_PARAMS}
    if asked != had:
        changed = sorted(k for k in asked.keys() | had.keys() if asked.get(k) != had.get(k))
        return Plan(False, f"the model's parameters changed ({', '.join(changed)})")
    grown_from = manifest.get("train", {}).get("full", {})
    born = grown_from.get("created", manifest["created"])
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(born.replace("Z", "+00:00"))
    if age > dt.timedelta(days=full_train_days):
        return Plan(False, f"the last full train is {age.days} days old "
                           f"(full_train_days={full_train_days:g})")
    old_ids = previous.ids
    if not np.array_equal(snapshot.ids[:len(old_ids)], old_ids):
        return Plan(False, "stories were removed or merged since the current version")
    old = np.load(previous.path / DIGESTS_FILE)
    now = digests(snapshot)
    fresh = np.ones(len(snapshot), dtype=bool)
    fresh[:len(old)] = now[:len(old)] != old
    share = fresh.sum() / max(len(snapshot), 1)
    if share > max_changed:
        return Plan(False, f"{share:.1%} of the stories are new or changed "
                           f"(incremental_max_changed={max_changed:g})", digests=now)
    unknown = new_term_share(previous.model, snapshot, np.flatnonzero(fresh))
    if unknown > max_new_terms:
        return Plan(False, f"{unknown:.1%} more of the new text's words than of the fitted "
                           f"text's are not in the vocabulary "
                           f"(incremental_max_new_terms={max_new_terms:g})", digests=now)
    return Plan(True, f"{int(fresh.sum())} new or changed stories, {share:.2%}",
                previous, fresh, now)


def new_term_share(model: RelatedModel, snapshot: Snapshot, rows: np.ndarray) -> float:
    """How much more of the new and changed stories' words the fitted vocabulary lacks than
    of the words of the stories it was fitted on (which it lacks only for being too common
    to keep): text the kept features cannot see until a full train. Words, not the bigrams
    also in the vocabulary: most bigrams of any new text are new."""
    if not len(rows):
        return 0.0
    fitted = np.setdiff1d(np.linspace(0, len(model.ids_) - 1, min(len(model.ids_), SAMPLE),
                                      dtype=np.int64), rows)

    def unknown(rows: np.ndarray) -> float:
        return model.text_.unknown_words([snapshot.titles[i] for i in rows.tolist()],
                                         [snapshot.excerpts[i] for i in rows.tolist()])
    return max(0.0, unknown(rows) - unknown(fitted))


def affected(old: RelatedModel, new: RelatedModel, reach: np.ndarray,
             fresh: np.ndarray) -> np.ndarray:
    """A bool per row of `new` (the grown model): the stories whose ranking by `new` can
    differ from their ranking by `old`, given `reach` (old's, per old row) and `fresh`
    (the rows that are new or whose fields changed). The module docstring says why these."""
    before, after = old.index_, new.index_
    n_old, n = len(before), len(after)
    if new.max_postings is not None and (new.max_postings < n_old) != (new.max_postings < n):
        return np.ones(n, dtype=bool)  # the catalog crossed the size at which search prunes
    indptr = np.r_[before.graph.indptr, np.full(n - n_old, before.graph.indptr[-1])]
    grown_graph = sp.csr_matrix((before.graph.data, before.graph.indices, indptr), (n, n))
    relisted = np.diff((after.graph != grown_graph).tocsr().indptr) > 0
    changed = fresh | relisted
    out = changed.copy()
    out[_rejections_changed(old, new)] = True
    changed_old = np.flatnonzero(changed[:n_old])
    # Unchanged stories listing a changed old row: as voters they bring it as a candidate.
    # (A new row is listed only by new or changed lists.)
    voters = np.flatnonzero(np.diff(after.graph[:, changed_old].tocsr().indptr) > 0)
    voters = voters[~changed[voters]]

    out |= _searched(new, after, before, reach, changed, fresh, voters)
    # Date windows: nearest dates (n_date), nearest listed dates (n_voters), as they were
    # and as they are.
    out[:n_old] |= _in_window(before, changed_old, new.n_date)
    out |= _in_window(after, np.flatnonzero(changed), new.n_date)
    out[:n_old] |= _in_window(before, changed_old, new.n_voters, listed=True)
    out |= _in_window(after, np.union1d(np.flatnonzero(changed), voters), new.n_voters,
                      listed=True)
    if "query_day_density" in new.features:
        moved = np.ones(n, dtype=bool)
        moved[:n_old] = ~((before.times == after.times[:n_old])
                          | (np.isnan(before.times) & np.isnan(after.times[:n_old])))
        days = np.r_[before.times[moved[:n_old]], after.times[moved]]
        out |= _near(np.sort(days[~np.isnan(days)]), after.times, 1.0)
    return out


def _rejections_changed(old: RelatedModel, new: RelatedModel) -> np.ndarray:
    """Articles whose rejected stories differ between the two models."""
    def pairs(model: RelatedModel) -> set[tuple[int, int]]:
        n = len(model.index_)
        keys = getattr(model, "rejected_", np.zeros(0, dtype=np.int64))
        return set(zip((keys // n).tolist(), (keys % n).tolist(), strict=True))
    return np.array(sorted({a for a, _ in pairs(old) ^ pairs(new)}), dtype=np.int64)


def _searched(model: RelatedModel, after: Index, before: Index, reach: np.ndarray,
              changed: np.ndarray, fresh: np.ndarray, voters: np.ndarray) -> np.ndarray:
    """Stories whose text search reaches a changed row (as it was, or as it is) or one of
    `voters` far enough to take it: score at least the recorded reach."""
    n_old, n = len(before), len(after)
    queries = search_terms(after, after.full[:n_old], model.query_terms, model.max_postings)
    was = np.flatnonzero(changed[:n_old] & fresh[:n_old])  # rows whose text may have moved
    now = np.flatnonzero(changed)
    # Each searched row: its text, time, whether it is listed, whether only as a voter.
    rows = np.r_[was, now, voters]
    text = sp.vstack([before.full[was], after.full[now], after.full[voters]], format="csr")
    times = np.r_[before.times[was], after.times[now], after.times[voters]]
    listed = np.r_[before.has_list[was], after.has_list[now], np.ones(len(voters), dtype=bool)]
    voter_only = np.r_[np.zeros(len(was) + len(now), dtype=bool),
                       np.ones(len(voters), dtype=bool)]
    floor = reach[:n_old] * (1 - TIE)
    out = np.zeros(n, dtype=bool)
    for start in range(0, len(rows), SEARCH_COLUMNS):
        part = slice(start, start + SEARCH_COLUMNS)
        hits = (queries @ text[part].T).tocoo()
        q, j, score = hits.row, hits.col + start, hits.data
        keep = q != rows[j]
        q, j, score = q[keep], j[keep], score[keep]
        gap = np.nan_to_num(np.abs(times[j] - after.times[q]), nan=model.undated_gap_days)
        recent = score / (1.0 + gap / model.recent_days)
        taken = ((~voter_only[j] & ((score >= floor[q, 0]) | (recent >= floor[q, 1])))
                 | (listed[j] & (score >= floor[q, 2])))
        out[q[taken]] = True
    return out


def _in_window(index: Index, marked: np.ndarray, k: int, listed: bool = False) -> np.ndarray:
    """Stories of `index` whose window of the k nearest dates (of listed stories, with
    `listed`) holds a `marked` row: `candidates._nearest_in_time` picks from the 2k
    positions around a story's date, and outside them its window's rows and their order
    are untouched."""
    by_time, sorted_times = ((index.listed_by_time, index.listed_times) if listed
                             else (index.by_time, index.sorted_times))
    out = np.zeros(len(index), dtype=bool)
    if not len(marked) or not len(by_time) or k == 0:
        return out
    position = np.full(len(index), -1, dtype=np.int64)
    position[by_time] = np.arange(len(by_time))
    spots = np.sort(position[marked])
    spots = spots[spots >= 0]
    dated = np.flatnonzero(~np.isnan(index.times))
    p = np.searchsorted(sorted_times, index.times[dated])
    count = np.searchsorted(spots, p + k) - np.searchsorted(spots, p - k)
    out[dated[count > 0]] = True
    return out


def _near(days: np.ndarray, times: np.ndarray, radius: float) -> np.ndarray:
    """Stories with one of the sorted `days` within `radius` days of their own date."""
    out = np.zeros(len(times), dtype=bool)
    dated = np.flatnonzero(~np.isnan(times))
    if len(days):
        t = times[dated]
        slack = 1e-6
        count = (np.searchsorted(days, t + radius + slack, side="right")
                 - np.searchsorted(days, t - radius - slack))
        out[dated[count > 0]] = True
    return out
