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
import json
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from . import database
from .artifact import TOP_K, Artifact, ArtifactError
from .candidates import DAY, Queries, csr_row
from .catalog import Catalog, CatalogError, Story
from .collapse import same_announcement, title_key
from .frontmatter import iso_utc
from .holder import REVERIFY_SECONDS, ModelHolder
from .settings import SETTINGS
from .urls import InvalidURL, canonical_url, is_web_url

log = logging.getLogger(__name__)
MAX_K = TOP_K  # k and offset + k: an answer is never deeper than the precomputed ranking
MAX_TOPICS = 100  # topics a new article may name
T = TypeVar("T")


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


class AnswerCache:
    """A small LRU of serialized answers (JSON bytes, ~8 KB each) for one generation: the
    model version and the catalog's import counter. A retrain or an import starts a new
    generation and drops the old one whole, so answers are never stale and memory does not
    grow with the number of retrains a worker lives through."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._generation: tuple | None = None
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, generation: tuple, key: tuple) -> bytes | None:
        with self._lock:
            if generation != self._generation:
                return None
            answer = self._items.get(key)
            if answer is not None:
                self._items.move_to_end(key)
            return answer

    def put(self, generation: tuple, key: tuple, answer: bytes) -> None:
        with self._lock:
            if generation != self._generation:
                self._items.clear()
                self._generation = generation
            self._items[key] = answer
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


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
                 reverify_seconds: float = REVERIFY_SECONDS) -> None:
        self.catalog_location = catalog_location
        self.models_dir = Path(models_dir)
        self.holder = ModelHolder(self.models_dir, reverify_seconds)
        self._local = threading.local()
        self.cache = AnswerCache(cache_size)
        self.holder.follow_now()  # a worker loads its model before its first request

    # -- state ----------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """One read-only connection per thread (sqlite3 connections are not thread-safe),
        opened again when the catalog's file was replaced (moved away, rebuilt)."""
        cat = getattr(self._local, "catalog", None)
        if cat is not None and cat.replaced():
            cat.close()
            cat = self._local.catalog = None
        if cat is None:
            cat = self._local.catalog = Catalog(self.catalog_location, readonly=True)
        return cat

    @property
    def artifact(self) -> Artifact:
        """The served model version, checked against the catalog it answers from."""
        return self._matched()[0]

    def _matched(self) -> tuple[Artifact, int]:
        """(served version, import counter), refusing to pair a model with a catalog other
        than the one it was trained on: story ids of one catalog mean nothing in another."""
        catalog_id, seq = self.catalog.identity()
        art = self.holder.get()
        if _catalog_id(art) != catalog_id:
            self.holder.follow_now()  # a retrain on the new catalog may be published already
            art = self.holder.get()
            if _catalog_id(art) != catalog_id:
                raise ArtifactError(
                    f"model {art.version} was trained on another catalog than "
                    f"{self.catalog.path} (catalog {catalog_id or 'without an id'}, the "
                    f"model's {_catalog_id(art) or 'none'}): run `recommender train`")
        return art, seq

    def _guarded(self, answer: Callable[[Artifact], T], art: Artifact) -> T:
        """`answer(art)`; on an unexpected error the version's files are verified again, and
        if they fail the request is answered once more from the version served now."""
        try:
            return answer(art)
        except (NotFound, ArtifactError, CatalogError):
            raise
        except Exception as exc:
            if database.is_database_error(exc) or not self.holder.recheck(art):
                raise
            log.warning("answered again after %s from a damaged model", type(exc).__name__)
            return answer(self._matched()[0])

    # -- answers --------------------------------------------------------------------------

    def by_url_json(self, url: str, filters: Filters) -> bytes:
        """`by_url` as JSON bytes, from the cache when this model and catalog state answered
        the same request before (pages ask for the same articles again and again)."""
        key = _checked_key(url)
        art, seq = self._matched()  # once: the cache key and the answer name the same model
        generation = (art.version, _catalog_id(art), seq)
        cache_key = (key, filters)
        body = self.cache.get(generation, cache_key)
        if body is None:
            body = json.dumps(self._guarded(lambda a: self._by_url(a, url, filters),
                                            art).payload()).encode()
            self.cache.put(generation, cache_key, body)
        return body

    def by_url(self, url: str, filters: Filters) -> Answer:
        _checked_key(url)
        return self._guarded(lambda a: self._by_url(a, url, filters), self.artifact)

    def _by_url(self, art: Artifact, url: str, filters: Filters) -> Answer:
        story_id = self.catalog.story_id_for(url)
        if story_id is None:
            raise NotFound(f"no story in the catalog for {url}")
        story = self.catalog.story(story_id)
        row = art.row_of(story_id)
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
        curated = self.catalog.curated(story_id)
        return self._answer(art, query, ranking, filters, story, curated, skip={story_id},
                            article=story_view(story))

    def for_article(self, title: str, excerpt: str, published: str | None, url: str | None,
                    filters: Filters, provider: str | None = None,
                    topics: Sequence[str] = ()) -> Answer:
        published_iso = iso_utc(published) if published else None
        article = {"url": url, "title": title, "excerpt": excerpt, "provider": provider,
                   "publishedDateTime": published_iso, "image": None}

        def answer(art: Artifact) -> Answer:
            query = Query.new(art.model.new_query(title, excerpt, _days(published_iso),
                                                  provider, topics))
            known = self.catalog.story_id_for(url) if url else None
            pseudo = Story(id=-1, key="", url=url or "", urls={}, title=title, excerpt=excerpt,
                           published=published_iso, provider_name=provider,
                           provider_domain=None, topics=list(topics), image=None,
                           quality=None, heat=None, type=None, has_file=False,
                           file_rank=None, changed_seq=0)
            return self._answer(art, query, None, filters, pseudo, [],
                                skip={known} - {None}, article=article)

        return self._guarded(answer, self.artifact)

    def _answer(self, art: Artifact, query: Query, ranking: tuple | None, f: Filters,
                story: Story, curated: list[int], skip: set[int], article: dict) -> Answer:
        """The page of related stories: the editor's curated picks first (when asked), then
        the model's ranking; filtered, de-duplicated, paged. When the filters leave the
        ranking short of the page, the model ranks again among the stories they admit."""
        model = art.model
        if ranking is None:
            ranked = model.rank_queries(query.queries(), k=MAX_K)
            ranking = (ranked.rows[0], ranked.scores[0])
        excluded = {self.catalog.story_id_for(u) for u in f.exclude} - {None}
        skip = skip | excluded
        # The model's own dates and providers thin the ranking before any story is fetched.
        allowed = self._allowed(art, f, skip) if f.narrowing else None
        page, more = self._pick(art, ranking, f, curated, skip, allowed)
        if allowed is not None and not more and len(page) < f.k:
            ranked = model.rank_queries(query.queries(), k=MAX_K, allowed=allowed)
            ranking = (ranked.rows[0], ranked.scores[0])
            page, more = self._pick(art, ranking, f, curated, skip, allowed)
        return Answer(article=article, related=self._related(art, ranking, f, story, query,
                                                             page),
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
            allowed &= np.isin(art.model.ids_, self.catalog.ids_of_provider(f.provider))
        allowed[[r for r in map(art.row_of, skip) if r is not None]] = False
        return allowed

    def _pick(self, art: Artifact, ranking: tuple, f: Filters, curated: list[int],
              skip: set[int], allowed: np.ndarray | None
              ) -> tuple[list[tuple[Story, bool, list[Story]]], bool]:
        """Stories `offset` to `offset + k` of the answer (each with whether the editor
        listed it, and the copies collapsed into it), and whether more follow."""
        rows = ranking[0]
        valid = rows >= 0
        if allowed is not None:
            valid &= allowed[np.maximum(rows, 0)]
        ids = art.model.ids_[rows[valid]].tolist()  # one gather, not one per row
        listed = set(curated)
        first = curated if f.curated == "first" else []
        picks = set(first)
        order = first + [i for i in ids if i not in picks]
        picked: list[tuple[Story, bool, list[Story]]] = []
        chunk = f.offset + f.k + 6  # fetch only as far down the ranking as the filters need
        stories: dict[int, Story] = {}
        for pos, sid in enumerate(order):
            if pos % chunk == 0:
                stories = self.catalog.stories(order[pos:pos + chunk])
            found = stories.get(sid)
            if found is None or sid in skip or not f.admits(found):
                continue
            if f.dedupe and sid not in listed:  # an editor's picks are kept as picked
                head = next((e for e in picked if self._same(art, e[0], found)), None)
                if head is not None:
                    head[2].append(found)
                    continue
            picked.append((found, sid in listed, []))
            if len(picked) > f.offset + f.k:
                break
        return picked[f.offset:f.offset + f.k], len(picked) > f.offset + f.k

    def _related(self, art: Artifact, ranking: tuple, f: Filters, story: Story, query: Query,
                 page: list[tuple[Story, bool, list[Story]]]) -> list[Related]:
        """The page's stories as answered: score, reasons, days apart, collapsed copies."""
        rows, scores = ranking
        valid = rows >= 0
        score_of = dict(zip(art.model.ids_[rows[valid]].tolist(), scores[valid].tolist(),
                            strict=True))
        listers = self._listers(art, query, [s.id for s, _, _ in page])
        out = []
        for s, is_curated, also in page:
            gap = _days_apart(story, s)
            reasons = explain(art, query, story, s, is_curated and f.curated == "first",
                              listers.get(s.id), also, gap)
            out.append(Related(s, score_of.get(s.id), reasons, gap, is_curated, also))
        return out

    @staticmethod
    def _same(art: Artifact, a: Story, b: Story) -> bool:
        """The collapsing rule (recommender.collapse); by title alone for a story the model
        has no row for (imported since the last train)."""
        ra, rb = art.row_of(a.id), art.row_of(b.id)
        if ra is None or rb is None:
            return title_key(a.title) == title_key(b.title)
        return same_announcement(art.model.index_, ra, rb)

    def _listers(self, art: Artifact, query: Query, ids: list[int]) -> dict[int, Story]:
        """Per story, the story most like the query whose curated list holds it."""
        found = art.model.listed_beside(query.vec, query.row, [art.row_of(i) for i in ids])
        stories = self.catalog.stories(int(art.model.ids_[r]) for r in found.values())
        return {ids[i]: stories[int(art.model.ids_[r])] for i, r in found.items()
                if int(art.model.ids_[r]) in stories}


def explain(art: Artifact, query: Query, article: Story, story: Story, curated: bool,
            lister: Story | None, also: Sequence[Story], gap: float | None) -> list[str]:
    """Why `story` is related to `article`, in the terms of the evidence the ranker reads:
    shared terms, the editors' lists, topics, provider, closeness in time. Never empty.
    `curated`: the story stands in the answer as the editor's pick; `gap`: its days apart."""
    reasons = []
    if curated:
        reasons.append("in the editors' curated list for this story")
    row = art.row_of(story.id)
    if row is not None:
        terms = art.model.text_.shared_terms(query.vec, csr_row(art.model.index_.full, row))
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
            "also": [{"url": story_view(s)["url"], "provider": s.provider_name}
                     for s in item.also]}
