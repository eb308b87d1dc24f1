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
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from . import database
from .artifact import Artifact, ArtifactError
from .candidates import DAY
from .catalog import Catalog, CatalogError, Story
from .frontmatter import iso_utc
from .holder import ModelHolder
from .urls import InvalidURL, canonical_url, is_web_url

log = logging.getLogger(__name__)
MAX_K = 100
T = TypeVar("T")


class NotFound(LookupError):
    """The catalog holds no story for the URL."""


_K = re.compile(r"[0-9]{1,3}")  # ASCII digits only: '²'.isdigit() is true, int('²') fails
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}


@dataclass
class Filters:
    k: int = 10
    since: str | None = None  # ISO date or datetime, inclusive
    until: str | None = None
    exclude: tuple[str, ...] = ()  # URLs (any variant)
    provider: str | None = None  # provider name or domain, case-insensitive
    dedupe: bool = True

    @classmethod
    def parse(cls, get, getlist=lambda name: [], dedupe_default: str = "true") -> Filters:
        """Filters from text parameters (a query string, a form, command-line flags): the one
        place they are checked, for the API, the pages and the CLI; ValueError names the
        parameter."""
        raw_k = (get("k") or "10").strip()
        if not _K.fullmatch(raw_k) or not 1 <= int(raw_k) <= MAX_K:
            raise ValueError(f"k must be an integer from 1 to {MAX_K}")
        dates = {}
        for name in ("since", "until"):
            value = (get(name) or "").strip()
            dates[name] = iso_utc(value, name) if value else None
        if dates["since"] and dates["until"] and dates["since"] > dates["until"]:
            raise ValueError("since must not be later than until")
        dedupe = (get("dedupe") or dedupe_default).lower()
        if dedupe not in _BOOLEAN:
            raise ValueError("dedupe must be true or false")
        return cls(k=int(raw_k), since=(get("since") or "").strip() or None,
                   until=(get("until") or "").strip() or None,
                   exclude=tuple(getlist("exclude")), provider=get("provider") or None,
                   dedupe=_BOOLEAN[dedupe])


@dataclass
class Related:
    story: Story
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class Answer:
    article: dict
    related: list[Related]
    model: str

    def payload(self) -> dict:
        """The JSON body of the answer."""
        return {"article": self.article, "related": [related_view(r) for r in self.related],
                "model": self.model}


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


def csr_row(m, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Row i of a CSR matrix as (column indices, values), without building a matrix."""
    lo, hi = m.indptr[i], m.indptr[i + 1]
    return m.indices[lo:hi], m.data[lo:hi]


def _checked_key(url: str) -> str:
    try:
        return canonical_url(url)
    except InvalidURL as exc:
        raise ValueError(f"url: {exc}") from None


def _catalog_id(art: Artifact) -> str | None:
    """The identity of the catalog a version was trained on (None before catalogs had one)."""
    return art.manifest.get("catalog", {}).get("id")


def _title_key(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


class Recommender:
    """Answers requests from one catalog and one models directory; safe to share by threads."""

    def __init__(self, catalog_location: str, models_dir: Path) -> None:
        self.catalog_location = catalog_location
        self.models_dir = Path(models_dir)
        self.holder = ModelHolder(self.models_dir)
        self._local = threading.local()
        self.cache = AnswerCache()
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
        cache_key = (key, filters.k, filters.since, filters.until,
                     tuple(sorted(filters.exclude)), (filters.provider or "").lower(),
                     filters.dedupe)
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
            rows = np.asarray(art.top_rows[row])
            scores = np.asarray(art.top_scores[row])
            query_vec = csr_row(model.index_.full, row)
        else:  # imported after the last train: score it as a new article
            query = model.new_query(story.title, story.excerpt, _days(story.published),
                                    story.provider_name, story.topics)
            ranking = model.rank_queries(query, k=MAX_K)
            rows, scores = ranking.rows[0], ranking.scores[0]
            query_vec = csr_row(query.full, 0)
        curated = set(self.catalog.curated(story_id))
        related = self._select(art, rows, scores, filters, query_vec, story, curated,
                               skip={story_id})
        return Answer(article=story_view(story), related=related, model=art.version)

    def for_article(self, title: str, excerpt: str, published: str | None, url: str | None,
                    filters: Filters) -> Answer:
        published_iso = iso_utc(published) if published else None
        return self._guarded(lambda a: self._for_article(a, title, excerpt, published_iso, url,
                                                         filters), self.artifact)

    def _for_article(self, art: Artifact, title: str, excerpt: str, published_iso: str | None,
                     url: str | None, filters: Filters) -> Answer:
        model = art.model
        query = model.new_query(title, excerpt, _days(published_iso))
        ranking = model.rank_queries(query, k=MAX_K)
        skip = set()
        if url:
            known = self.catalog.story_id_for(url)
            if known is not None:
                skip.add(known)
        query_vec = csr_row(query.full, 0)
        related = self._select(art, ranking.rows[0], ranking.scores[0], filters, query_vec,
                               None, set(), skip=skip)
        article = {"url": url, "title": title, "excerpt": excerpt, "provider": None,
                   "publishedDateTime": published_iso, "image": None}
        return Answer(article=article, related=related, model=art.version)

    def _select(self, art: Artifact, rows: np.ndarray, scores: np.ndarray, f: Filters,
                query_vec, query: Story | None, curated: set[int],
                skip: set[int]) -> list[Related]:
        valid = rows >= 0
        rows, scores = rows[valid], scores[valid]
        ids = art.model.ids_[rows].tolist()  # one gather, not one per row
        excluded = {self.catalog.story_id_for(u) for u in f.exclude} - {None}
        since = iso_utc(f.since, "since") if f.since else None
        until = iso_utc(f.until, "until") if f.until else None
        if until and len(f.until or "") <= 10:  # a bare date means the whole day
            until = until[:10] + "T23:59:59Z"
        provider = (f.provider or "").lower()
        seen_titles: set[str] = set()
        out: list[Related] = []
        stories: dict[int, Story] = {}
        chunk = f.k + 5  # fetch only as far down the ranking as the filters need
        for pos, (row, sid, score) in enumerate(zip(rows, ids, scores, strict=True)):
            if pos % chunk == 0:
                stories = self.catalog.stories(ids[pos:pos + chunk])
            story = stories.get(sid)
            if story is None or sid in skip or sid in excluded:
                continue
            if since and (not story.published or story.published < since):
                continue
            if until and (not story.published or story.published > until):
                continue
            if provider and provider not in ((story.provider_name or "").lower(),
                                             (story.provider_domain or "").lower()):
                continue
            if f.dedupe:
                key = _title_key(story.title)
                if key in seen_titles:
                    continue
                seen_titles.add(key)
            out.append(Related(story, float(score),
                               self._reasons(art, query_vec, int(row), query, story, curated)))
            if len(out) >= f.k:
                break
        return out

    @staticmethod
    def _reasons(art: Artifact, query_vec, row: int, query: Story | None, story: Story,
                 curated: set[int]) -> list[str]:
        reasons = []
        terms = art.model.text_.shared_terms(query_vec, csr_row(art.model.index_.full, row))
        if terms:
            reasons.append("shared terms: " + ", ".join(terms))
        if story.id in curated:
            reasons.append("in the editors' curated list")
        if query is not None:
            a, b = _days(query.published), _days(story.published)
            if a is not None and b is not None:
                gap = round(abs(a - b))
                reasons.append("published the same day" if gap == 0 else
                               f"published {gap} day{'s' if gap != 1 else ''} apart")
            if query.topics and set(query.topics) & set(story.topics):
                reasons.append("same topic: " + ", ".join(sorted(set(query.topics)
                                                                 & set(story.topics))))
        return reasons


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
    return {**story_view(item.story), "score": round(item.score, 6), "reasons": item.reasons}
