"""Where a request is answered: related stories for a catalog URL or for a new article.

Both shells (the CLI's `recommend`, the HTTP API) call `Recommender`. For a story the model
was trained with, the answer is the precomputed top-100, filtered; for a story imported
since, or an article the catalog does not hold, the model scores it on the fly. Which model
version answers is the `ModelHolder`'s business (recommender.holder: follow `current`,
verify, refuse damaged versions); this module adds the one rule that pairs a version with a
catalog: a model answers only from the catalog it was trained on (the catalog's identity,
recorded in the manifest), since story ids of one catalog mean nothing in another.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import math
import re
import sqlite3
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import diskcache
import numpy as np

from . import database, judgements
from .artifact import TOP_K, Artifact, ArtifactError
from .candidates import DAY, Queries
from .catalog import Catalog, CatalogError, Story
from .catalog_pool import CatalogPool
from .collapse import same_pairs, title_key
from .frontmatter import iso_utc
from .holder import REVERIFY_SECONDS, ModelHolder
from .settings import SETTINGS
from .sparse_rows import csr_row
from .urls import InvalidURL, canonical_url, is_web_url

log = logging.getLogger(__name__)
# k and offset + k as the API documents them; a served model may rank less deep (its
# manifest's top_k, checked when answering).
MAX_K = TOP_K
MAX_TOPICS = 100  # topics a new article may name
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class NotFound(LookupError):
    """The catalog holds no story for the URL."""


_NUMBER = re.compile(r"[0-9]{1,3}")  # ASCII digits only: '²'.isdigit() is true, int('²') fails
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}
CURATED_MODES = ("first", "model")


def _whole_number(get, name: str, default: str, low: int, high: int) -> int:
    raw = (get(name) or default).strip()
    if not _NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return int(raw)


@dataclass(frozen=True)
class Filters:
    """What a request asks for besides the article. `since` and `until` are normalised ISO
    times (a bare `until` date means the whole day); `offset` pages through the ranking,
    whose depth is MAX_K."""

    k: int = 10
    offset: int = 0
    since: str | None = None  # inclusive
    until: str | None = None  # inclusive
    exclude: tuple[str, ...] = ()  # URLs (any variant)
    provider: str | None = None  # provider name or domain, case-insensitive
    dedupe: bool = True
    curated: str = "first"  # "first": the editor's list, then the model's; "model": the model's

    @classmethod
    def parse(cls, get, getlist=lambda name: [], dedupe_default: str = "true") -> Filters:
        """Filters from text parameters (a query string, a form, command-line flags): the one
        place they are checked, for the API, the pages and the CLI; ValueError names the
        parameter."""
        k = _whole_number(get, "k", "10", 1, MAX_K)
        offset = _whole_number(get, "offset", "0", 0, MAX_K - 1)
        if offset + k > MAX_K:
            raise ValueError(f"offset + k must not exceed {MAX_K}, the depth of a ranking")
        dates = {}
        for name in ("since", "until"):
            value = (get(name) or "").strip()
            dates[name] = iso_utc(value, name) if value else None
            if name == "until" and dates[name] and len(value) <= 10:  # a bare date: all of it
                dates[name] = dates[name][:10] + "T23:59:59Z"
        if dates["since"] and dates["until"] and dates["since"] > dates["until"]:
            raise ValueError("since must not be later than until")
        dedupe = (get("dedupe") or dedupe_default).lower()
        if dedupe not in _BOOLEAN:
            raise ValueError("dedupe must be true or false")
        curated = (get("curated") or "first").lower()
        if curated not in CURATED_MODES:
            raise ValueError("curated must be first or model")
        return cls(k=k, offset=offset, since=dates["since"], until=dates["until"],
                   exclude=tuple(sorted(set(getlist("exclude")))),
                   provider=(get("provider") or "").strip().lower() or None,
                   dedupe=_BOOLEAN[dedupe], curated=curated)

    @property
    def narrowing(self) -> bool:
        """Whether the filters select a subset of the catalog that a ranking of the whole
        may hold too few of."""
        return bool(self.since or self.until or self.provider)

    def admits(self, story: Story) -> bool:
        if self.since and (not story.published or story.published < self.since):
            return False
        if self.until and (not story.published or story.published > self.until):
            return False
        return not self.provider or self.provider in ((story.provider_name or "").lower(),
                                                      (story.provider_domain or "").lower())


@dataclass
class Related:
    story: Story
    score: float | None  # None: a curated story the model did not rank
    reasons: list[str] = field(default_factory=list)
    days_apart: float | None = None  # published after (+) or before (-) the article
    curated: bool = False
    also: list[Story] = field(default_factory=list)  # the same announcement, collapsed here
    pinned: bool = False  # an editor pinned it into the article's list


@dataclass
class Answer:
    article: dict
    related: list[Related]
    model: str
    offset: int = 0
    next_offset: int | None = None

    def payload(self) -> dict:
        """The JSON body of the answer."""
        return {"article": self.article, "related": [related_view(r) for r in self.related],
                "model": self.model, "offset": self.offset, "next_offset": self.next_offset}


class GenerationCache(Generic[K, V]):
    """A small LRU for one generation: the model version and the catalog's import counter
    (answers as JSON bytes, stories as read). A retrain or an import starts a new generation
    and drops the old one whole, so nothing is served stale and memory does not grow with
    the number of retrains a worker lives through."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._generation: tuple | None = None
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, generation: tuple, key: K) -> V | None:
        with self._lock:
            if generation != self._generation:
                return None
            answer = self._items.get(key)
            if answer is not None:
                self._items.move_to_end(key)
            return answer

    def put(self, generation: tuple, key: K, value: V) -> None:
        with self._lock:
            if generation != self._generation:
                self._items.clear()
                self._generation = generation
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class _BytesOnly(diskcache.Disk):
    """Values are answers (bytes) only: a pickle found in the directory is refused, never
    loaded (loading one runs whatever code it names)."""

    def fetch(self, mode, filename, value, read):  # noqa: ANN001 - diskcache's signature
        if mode == diskcache.core.MODE_PICKLE:
            raise ValueError("not an answer")
        return super().fetch(mode, filename, value, read)


class SharedAnswers:
    """Answers shared by a server's worker processes (diskcache: SQLite in a directory), so
    an article's answer is computed once per server instead of once per worker. Keys name
    the generation, so old answers are never served, only evicted (the least recently stored
    first: a read writes nothing). A cache never fails a request: an error reading or
    writing it is logged once and the answer computed."""

    _errors = (diskcache.Timeout, sqlite3.Error, OSError, ValueError)

    def __init__(self, directory: str, size_mb: int) -> None:
        self._warned = False
        try:
            self._cache: diskcache.Cache | None = diskcache.Cache(
                directory, size_limit=size_mb << 20, eviction_policy="least-recently-stored",
                disk=_BytesOnly)
        except self._errors as exc:  # an unusable directory: every answer is computed
            self._cache = None
            self._warn(exc)

    def get(self, key: str) -> bytes | None:
        if self._cache is None:
            return None
        try:
            return self._cache.get(key, retry=False)
        except self._errors as exc:
            self._warn(exc)
            return None

    def put(self, key: str, body: bytes) -> None:
        if self._cache is None:
            return
        try:
            self._cache.set(key, body, retry=False)
        except self._errors as exc:
            self._warn(exc)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("shared answer cache unavailable (answers computed instead): %s", exc)


@functools.lru_cache(maxsize=1 << 16)
def _days(iso: str | None) -> float | None:
    if not iso:
        return None
    stamp = dt.datetime.fromisoformat(iso.rstrip("Z")).replace(tzinfo=dt.UTC)
    return stamp.timestamp() / DAY


def _checked_key(url: str) -> str:
    try:
        return canonical_url(url)
    except InvalidURL as exc:
        raise ValueError(f"url: {exc}") from None


class Query:
    """The article asked about: its TF-IDF row at once (reasons need it), the model's
    `Queries` only when a ranking must be computed (a GET answered from the precomputed
    top 100 never builds one)."""

    def __init__(self, vec: tuple[np.ndarray, np.ndarray], row: int,
                 build: Callable[[], Queries]) -> None:
        self.vec, self.row = vec, row  # row: the model's, -1 for an article it has none for
        self._build, self._queries = build, None

    @classmethod
    def new(cls, queries: Queries) -> Query:
        query = cls(csr_row(queries.full, 0), -1, lambda: queries)
        query._queries = queries
        return query

    def queries(self) -> Queries:
        if self._queries is None:
            self._queries = self._build()
        return self._queries


def _catalog_id(art: Artifact) -> str | None:
    """The identity of the catalog a version was trained on (None before catalogs had one)."""
    return art.manifest.get("catalog", {}).get("id")


class Recommender:
    """Answers requests from one catalog and one models directory; safe to share by threads."""

    def __init__(self, catalog_location: str, models_dir: Path,
                 cache_size: int = SETTINGS["answer_cache"].default,
                 reverify_seconds: float = REVERIFY_SECONDS,
                 story_cache_size: int = SETTINGS["story_cache"].default,
                 shared: SharedAnswers | None = None, idle_connections: int = 4) -> None:
        self.catalog_location = catalog_location
        self.pool = CatalogPool(catalog_location, idle_connections)
        self.models_dir = Path(models_dir)
        self.holder = ModelHolder(self.models_dir, reverify_seconds)
        self._local = threading.local()
        self.cache: GenerationCache[tuple, bytes] = GenerationCache(cache_size)
        self.story_cache: GenerationCache[int, Story] = GenerationCache(story_cache_size)
        self.shared = shared
        # Answers by URL by where they came from (the client's own copy, this worker's cache,
        # the workers' shared cache, computed): what /readyz shows of the caches' use.
        self.answers: Counter[str] = Counter(unchanged=0, cached=0, shared=0, computed=0)
        self.holder.follow_now()  # a worker loads its model before its first request

    # -- state ----------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """The catalog connection of this thread's request, taken from the pool on first use
        and given back by `release` when the request ends."""
        cat = getattr(self._local, "catalog", None)
        if cat is None:
            cat = self._local.catalog = self.pool.take()
        return cat

    def release(self) -> None:
        """The end of a request on this thread: its connection goes back to the pool."""
        cat = getattr(self._local, "catalog", None)
        if cat is not None:
            self._local.catalog = None
            self.pool.give(cat)

    def close(self) -> None:
        """Close every connection and drop the served model (a shutting-down process)."""
        self.release()
        self.pool.close()
        self.holder.close()
        if self.shared:
            self.shared.close()

    @property
    def artifact(self) -> Artifact:
        """The served model version, checked against the catalog it answers from."""
        return self._matched().art

    def _matched(self, stat: bool = True) -> _Served:
        """The served version with the catalog state it answers from, refusing to pair a
        model with a catalog other than the one it was trained on: story ids of one catalog
        mean nothing in another. `stat=False`: none of its arrays will be read (holder.get)."""
        catalog_id, seq = self.catalog.identity()
        art = self.holder.get(stat)
        if _catalog_id(art) != catalog_id:
            self.holder.follow_now()  # a retrain on the new catalog may be published already
            art = self.holder.get()
            if _catalog_id(art) != catalog_id:
                raise ArtifactError(
                    f"model {art.version} was trained on another catalog than "
                    f"{self.catalog.path} (catalog {catalog_id or 'without an id'}, the "
                    f"model's {_catalog_id(art) or 'none'}): run `recommender train`")
        return _Served(art, (catalog_id, seq))

    def _guarded(self, answer: Callable[[_Served], T], served: _Served) -> T:
        """`answer(served)`; on an unexpected error the version's files are verified again,
        and if they fail the request is answered once more from the version served now."""
        try:
            return answer(served)
        except (NotFound, ArtifactError, CatalogError):
            raise
        except Exception as exc:
            if database.is_database_error(exc) or not self.holder.recheck(served.art):
                raise
            log.warning("answered again after %s from a damaged model", type(exc).__name__)
            return answer(self._matched())

    def _stories(self, served: _Served, ids: Sequence[int]) -> dict[int, Story]:
        """Stories by id, through a cache of this catalog state (a ranking's stories recur
        from one article's answer to the next)."""
        out, missing = {}, []
        for i in ids:
            story = self.story_cache.get(served.catalog, i)
            if story is None:
                missing.append(i)
            else:
                out[i] = story
        if missing:
            for i, story in self.catalog.stories(missing).items():
                self.story_cache.put(served.catalog, i, story)
                out[i] = story
        return out

    # -- answers --------------------------------------------------------------------------

    def by_url_tagged(self, url: str, filters: Filters,
                      known: Callable[[str], bool] = lambda tag: False
                      ) -> tuple[str, bytes | None]:
        """(entity tag, `by_url` as JSON bytes). The tag names the model version, the
        catalog's state and the request, so it changes when any answer may (a retrain, an
        import, a removal) and is known before the answer is: when `known(tag)` (the client
        holds this answer already, an HTTP 304) the body is None and nothing is computed.
        Otherwise the body comes from this worker's cache, the workers' shared cache, or is
        computed (pages ask for the same articles again and again)."""
        key = _checked_key(url)
        # Once: the tag, the cache key and the answer agree. A revalidation or a cached
        # answer reads no array of the model, so its files are stat'ed only before a compute.
        served = self._matched(stat=False)
        generation, cache_key, shared_key, tag = self._keys(served, key, filters)
        if known(tag):
            self.answers["unchanged"] += 1
            return tag, None
        body = self.cache.get(generation, cache_key)
        if body is not None:
            self.answers["cached"] += 1
            return tag, body
        body = self.shared.get(shared_key) if self.shared else None
        if body is not None:
            self.answers["shared"] += 1
        else:
            if not self.holder.unchanged(served.art):  # swapped, or its files changed
                served = self._matched()
                generation, cache_key, shared_key, tag = self._keys(served, key, filters)
            body = json.dumps(self._guarded(lambda s: self._by_url(s, url, filters),
                                            served).payload()).encode()
            self.answers["computed"] += 1
            if self.shared:
                self.shared.put(shared_key, body)
        self.cache.put(generation, cache_key, body)
        return tag, body

    @staticmethod
    def _keys(served: _Served, key: str, filters: Filters) -> tuple[tuple, tuple, str, str]:
        """(generation, this worker's cache key, the shared cache's key, the answer's tag)."""
        generation = (served.art.version, *served.catalog)
        cache_key = (key, filters)
        shared_key = repr((generation, cache_key))
        return (generation, cache_key, shared_key,
                hashlib.blake2b(shared_key.encode(), digest_size=12).hexdigest())

    def by_url(self, url: str, filters: Filters) -> Answer:
        _checked_key(url)
        return self._guarded(lambda s: self._by_url(s, url, filters), self._matched())

    def _by_url(self, served: _Served, url: str, filters: Filters) -> Answer:
        art = served.art
        story_id = self.catalog.story_id_for(url)
        story = None if story_id is None else self._stories(served, [story_id]).get(story_id)
        if story is None:
            raise NotFound(f"no story in the catalog for {url}")
        row = art.row_of(story.id)
        model = art.model
        if row is not None:
            query = Query(csr_row(model.index_.full, row), row,
                          lambda: model.query_of_row(row))
            ranking = (np.asarray(art.top_rows[row]), np.asarray(art.top_scores[row]))
        else:  # imported after the last train: score it as a new article
            query = Query.new(model.new_query(story.title, story.excerpt,
                                              _days(story.published), story.provider_name,
                                              story.topics))
            ranking = None
        curated = self.catalog.curated(story.id)
        return self._answer(served, query, ranking, filters, story, curated, skip={story.id},
                            article=story_view(story),
                            judged=judgements.applied(self.catalog, story.id))

    def for_article(self, title: str, excerpt: str, published: str | None, url: str | None,
                    filters: Filters, provider: str | None = None,
                    topics: Sequence[str] = ()) -> Answer:
        published_iso = iso_utc(published) if published else None
        article = {"url": url, "title": title, "excerpt": excerpt, "provider": provider,
                   "publishedDateTime": published_iso, "image": None}

        def answer(served: _Served) -> Answer:
            query = Query.new(served.art.model.new_query(title, excerpt, _days(published_iso),
                                                         provider, topics))
            known = self.catalog.story_id_for(url) if url else None
            pseudo = Story(id=-1, key="", url=url or "", urls_json="{}", title=title,
                           excerpt=excerpt, published=published_iso, provider_name=provider,
                           provider_domain=None, topics=list(topics), image=None,
                           quality=None, heat=None, type=None, has_file=False,
                           file_rank=None, changed_seq=0)
            return self._answer(served, query, None, filters, pseudo, [],
                                skip={known} - {None}, article=article,
                                judged=judgements.applied(self.catalog, None))

        return self._guarded(answer, self._matched())

    def _answer(self, served: _Served, query: Query, ranking: tuple | None, f: Filters,
                story: Story, curated: list[int], skip: set[int], article: dict,
                judged: judgements.Applied) -> Answer:
        """The page of related stories: the editors' pins at their positions and their
        curated picks first (when asked), then the model's ranking; never a story they
        blocked, rejected or retracted; filtered, de-duplicated, paged. When the filters
        leave the ranking short of the page, the model ranks again among the stories they
        admit."""
        art, model = served.art, served.art.model
        if f.offset + f.k > art.depth:
            raise ValueError(f"offset + k must not exceed {art.depth}, the depth of the "
                             f"rankings of model {art.version}")
        if ranking is None:
            ranked = model.rank_queries(query.queries(), k=art.depth)
            ranking = (ranked.rows[0], ranked.scores[0])
        excluded = {self.catalog.story_id_for(u) for u in f.exclude} - {None}
        skip = skip | excluded | judged.hidden
        pinned = judged.positions if f.curated == "first" else {}
        # The model's own dates and providers thin the ranking before any story is fetched.
        allowed = self._allowed(art, f, skip) if f.narrowing else None
        # When the filters leave fewer stories in the ranking than the page needs (a later
        # period, a small provider), walking it would only prove the page short.
        rows = ranking[0]
        short = allowed is not None and (
            np.count_nonzero(allowed[rows[rows >= 0]]) + len(curated) + len(pinned)
            < f.offset + f.k)
        page, more = ([], False) if short else self._pick(served, ranking, f, curated,
                                                           pinned, skip, allowed)
        if allowed is not None and not more and len(page) < f.k:
            ranked = model.rank_queries(query.queries(), k=art.depth, allowed=allowed)
            ranking = (ranked.rows[0], ranked.scores[0])
            page, more = self._pick(served, ranking, f, curated, pinned, skip, allowed)
        return Answer(article=article,
                      related=self._related(served, ranking, f, story, query, page),
                      model=art.version, offset=f.offset,
                      next_offset=f.offset + len(page) if more else None)

    def _allowed(self, art: Artifact, f: Filters, skip: set[int]) -> np.ndarray:
        """The model's rows the filters admit (the catalog decides the provider: a name or a
        domain, as stored)."""
        index = art.model.index_
        allowed = np.ones(len(index), dtype=bool)
        with np.errstate(invalid="ignore"):  # an undated story is admitted by no date filter
            if f.since:
                allowed &= index.times >= _days(f.since)
            if f.until:
                allowed &= index.times <= _days(f.until)
        if f.provider:
            rows = np.zeros(len(index), dtype=bool)
            rows[art.rows_of(self.catalog.ids_of_provider(f.provider))] = True
            allowed &= rows
        allowed[[r for r in map(art.row_of, skip) if r is not None]] = False
        return allowed

    def _pick(self, served: _Served, ranking: tuple, f: Filters, curated: list[int],
              pinned: dict[int, int], skip: set[int], allowed: np.ndarray | None
              ) -> tuple[list[_Entry], bool]:
        """Entries `offset` to `offset + k` of the answer, and whether more follow.
        `pinned`: story id → the 1-based position an editor pinned it at."""
        art = served.art
        rows = ranking[0]
        valid = rows >= 0
        if allowed is not None:
            valid &= allowed[np.maximum(rows, 0)]
        rows = rows[valid]
        ids = art.model.ids_[rows].tolist()  # one gather, not one per row
        in_list = set(curated)
        listed = in_list | set(pinned)
        first = curated if f.curated == "first" else []
        picks = set(first) | set(pinned)
        # The pins lead `order` (so their rows fall in the first block of the collapsing
        # rule); the walk takes each when the answer reaches its position.
        pins = sorted(pinned, key=lambda sid: pinned[sid])
        order = pins + [i for i in first if i not in pinned] + [i for i in ids
                                                                if i not in picks]
        row_of = dict(zip(ids, rows.tolist(), strict=True))
        same = _SameAnnouncement(art, [row_of[i] if i in row_of else art.row_of(i)
                                       for i in order])
        picked: list[_Entry] = []
        chunk = f.offset + f.k + 6  # fetch only as far down the ranking as the filters need
        stories = self._stories(served, pins) if pins else {}
        waiting = list(range(len(pins)))  # positions in `order` of the pins not yet placed
        walk = len(pins)
        while len(picked) <= f.offset + f.k:
            if waiting and (pinned[order[waiting[0]]] <= len(picked) + 1 or walk == len(order)):
                pos = waiting.pop(0)
            elif walk < len(order):
                pos, walk = walk, walk + 1
                if (pos - len(pins)) % chunk == 0:
                    stories.update(self._stories(served, order[pos:pos + chunk]))
            else:
                break
            sid = order[pos]
            found = stories.get(sid)
            if found is None or sid in skip or not f.admits(found):
                continue
            if f.dedupe and sid not in listed:  # an editor's picks are kept as picked
                head = next((e for e in picked if same(e, pos, found)), None)
                if head is not None:
                    head.also.append(found)
                    continue
            picked.append(_Entry(found, pos, same.rows[pos], sid in in_list, sid in pinned))
        return picked[f.offset:f.offset + f.k], len(picked) > f.offset + f.k

    def _related(self, served: _Served, ranking: tuple, f: Filters, story: Story,
                 query: Query, page: list[_Entry]) -> list[Related]:
        """The page's stories as answered: score, reasons, days apart, collapsed copies."""
        art = served.art
        rows, scores = ranking
        valid = rows >= 0
        score_of = dict(zip(art.model.ids_[rows[valid]].tolist(), scores[valid].tolist(),
                            strict=True))
        evidence = art.model.explain(query.vec, query.row, [e.row for e in page])
        listers = self._stories(served, [int(art.model.ids_[e.lister]) for e in evidence
                                         if e.lister is not None])
        out = []
        for entry, why in zip(page, evidence, strict=True):
            s = entry.story
            gap = _days_apart(story, s)
            lister = None if why.lister is None else listers.get(int(art.model.ids_[why.lister]))
            reasons = _reasons(story, s, entry.curated and f.curated == "first", why.terms,
                               lister, entry.also, gap, entry.pinned)
            out.append(Related(s, score_of.get(s.id), reasons, gap, entry.curated,
                               entry.also, entry.pinned))
        return out


@dataclass(frozen=True)
class _Served:
    """What one request is answered from: a model version and the catalog's state."""

    art: Artifact
    catalog: tuple[str | None, int]  # (catalog id, import counter)


@dataclass
class _Entry:
    """A story on the page being picked: its position in the ranking walked, whether the
    editor listed it, and the copies collapsed into it."""

    story: Story
    pos: int
    row: int | None  # the model's (None: a story imported since the last train)
    curated: bool
    pinned: bool = False
    also: list[Story] = field(default_factory=list)


class _SameAnnouncement:
    """The collapsing rule (recommender.collapse) between positions of a ranking, computed
    for a block of positions at once and extended when the walk goes past it; by title
    alone for a story the model has no row for (imported since the last train)."""

    def __init__(self, art: Artifact, rows: list[int | None], block: int = 32) -> None:
        self.index, self.rows, self.block = art.model.index_, rows, block
        self.same = np.zeros((0, 0), dtype=bool)

    def __call__(self, head: _Entry, pos: int, story: Story) -> bool:
        if self.rows[head.pos] is None or self.rows[pos] is None:
            return title_key(head.story.title) == title_key(story.title)
        if pos >= len(self.same):
            n = min(len(self.rows), max(2 * len(self.same), pos + 1, self.block))
            known = [i for i in range(n) if self.rows[i] is not None]
            self.same = np.zeros((n, n), dtype=bool)
            if known:
                self.same[np.ix_(known, known)] = same_pairs(self.index,
                                                             [self.rows[i] for i in known])
        return bool(self.same[head.pos, pos])


def _reasons(article: Story, story: Story, curated: bool, terms: list[str],
             lister: Story | None, also: Sequence[Story], gap: float | None,
             pinned: bool = False) -> list[str]:
    """Why `story` is related to `article`, in the terms of the evidence the ranker reads
    (the model's `explain`: shared terms, the editors' lists) and of what the catalog says
    of both (topics, provider, closeness in time). Never empty. `curated`: the story stands
    in the answer as the editor's pick; `gap`: its days apart; `pinned`: an editor pinned
    it here."""
    reasons = []
    if pinned:
        reasons.append("pinned by an editor")
    if curated:
        reasons.append("in the editors' curated list for this story")
    if terms:
        reasons.append("shared terms: " + ", ".join(terms))
    if lister is not None and not curated:
        reasons.append(f"listed by editors beside \u201c{_short(lister.title)}\u201d")
    if also:
        reasons.append(f"the same announcement as {len(also)} other "
                       f"{'story' if len(also) == 1 else 'stories'} (under also)")
    topics = sorted(set(article.topics) & set(story.topics))
    if topics:
        reasons.append("same topic: " + ", ".join(topics[:3]))
    if gap is not None and abs(gap) < 3.5:
        reasons.append("published the same day" if abs(gap) < 1 else
                       f"published within {math.ceil(abs(gap))} days")
    if article.provider_name and article.provider_name == story.provider_name:
        reasons.append(f"same provider: {story.provider_name}")
    if not reasons:
        reasons.append("among the stories published nearest in time" if gap is not None
                       else "ranked by the model on title and excerpt")
    return reasons


def _short(title: str, limit: int = 80) -> str:
    return title if len(title) <= limit else title[:limit - 1].rstrip() + "\u2026"


def _days_apart(article: Story, story: Story) -> float | None:
    a, b = _days(article.published), _days(story.published)
    return None if a is None or b is None else round(b - a, 1)


def story_view(story: Story) -> dict:
    """A story as the API and the CLI show it."""
    return {
        # Only http(s) URLs leave the service, even from a catalog imported before that rule.
        "url": story.url if is_web_url(story.url) else "https://" + story.key,
        "title": story.title,
        "excerpt": story.excerpt,
        "provider": story.provider_name,
        "publishedDateTime": story.published,
        "image": story.image if is_web_url(story.image) else None,
    }


def related_view(item: Related) -> dict:
    return {**story_view(item.story),
            "score": None if item.score is None else round(item.score, 6),
            "reasons": item.reasons, "days_apart": item.days_apart, "curated": item.curated,
            "pinned": item.pinned,
            "also": [{"url": story_view(s)["url"], "provider": s.provider_name}
                     for s in item.also]}
