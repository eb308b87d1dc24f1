"""Catalog storage: stories (one per canonical URL), their URL aliases and curated links.

A SQLite file (WAL mode) or a PostgreSQL database shared by several replicas; the same SQL
runs on both (recommender.database holds the differences). Every write happens in a
transaction that holds whole files only, so a process killed at any moment leaves a catalog
that opens, passes `check`, and never holds an article without its links; the `files` table
records each imported file's content hash in the same transaction, which is what lets a
rerun skip finished work and finish the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import database
from .database import Database
from .frontmatter import URL_FIELDS, Article, Item
from .urls import InvalidURL, canonical_url

SCHEMA_VERSION = 1
# What an editor's judgement of an (article, story) pair says (recommender.judgements; a
# retraction names no article): the story belongs in the article's list, or it does not.
BELONGING = ("pin", "accept")
HIDING = ("block", "reject")
# `{id}` and `{int}` become each engine's integer types (recommender.database).
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS stories (
    id {id},
    key TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    urls TEXT NOT NULL DEFAULT '{}',
    title TEXT NOT NULL,
    excerpt TEXT NOT NULL DEFAULT '',
    published TEXT,
    provider_name TEXT,
    provider_domain TEXT,
    topics TEXT NOT NULL DEFAULT '[]',
    image TEXT,
    quality {int},
    heat {int},
    type TEXT,
    has_file INTEGER NOT NULL DEFAULT 0,
    file_rank TEXT,
    changed_seq {int} NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS aliases (
    key TEXT PRIMARY KEY,
    story_id {int} NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS aliases_story ON aliases(story_id)",
    # The provider filter (`ids_of_provider`): a lookup, not a scan of every story.
    "CREATE INDEX IF NOT EXISTS stories_provider_name ON stories(lower(provider_name))",
    "CREATE INDEX IF NOT EXISTS stories_provider_domain ON stories(lower(provider_domain))",
    """CREATE TABLE IF NOT EXISTS links (
    source_id {int} NOT NULL,
    target_id {int} NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (source_id, target_id)
) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS links_target ON links(target_id)",
    """CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    story_id {int},
    seq {int} NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
    # URL keys of removed stories: a file or list naming one again does not bring it back.
    """CREATE TABLE IF NOT EXISTS removed (
    key TEXT PRIMARY KEY,
    removed_at TEXT NOT NULL
)""",
    # Editors' judgements (recommender.judgements): the audit trail is the table itself.
    """CREATE TABLE IF NOT EXISTS judgements (
    id {id},
    article_id {int},
    story_id {int} NOT NULL,
    action TEXT NOT NULL,
    position INTEGER,
    editor TEXT NOT NULL,
    created TEXT NOT NULL,
    undone TEXT,
    undone_by TEXT
)""",
    "CREATE INDEX IF NOT EXISTS judgements_article ON judgements(article_id, story_id)",
    # Editors who may sign in to the pages: only password hashes are kept.
    """CREATE TABLE IF NOT EXISTS editors (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created TEXT NOT NULL
)""",
    # Keys of the JSON API (recommender.api_keys): only their digests are kept.
    """CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    revoked TEXT
)""",
]

# Full-text search over titles and excerpts, whole words (`search`): per engine. SQLite: an
# FTS5 index kept in step with `stories` by triggers; PostgreSQL: a GIN index on the same
# tsvector expression the query uses ('simple': lower-cased words, no stemming).
SEARCH_SCHEMA = {
    "sqlite": [
        "CREATE VIRTUAL TABLE IF NOT EXISTS stories_fts USING fts5(title, excerpt, "
        "content='stories', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
        """CREATE TRIGGER IF NOT EXISTS stories_fts_insert AFTER INSERT ON stories BEGIN
    INSERT INTO stories_fts (rowid, title, excerpt) VALUES (new.id, new.title, new.excerpt);
END""",
        """CREATE TRIGGER IF NOT EXISTS stories_fts_delete AFTER DELETE ON stories BEGIN
    INSERT INTO stories_fts (stories_fts, rowid, title, excerpt)
    VALUES ('delete', old.id, old.title, old.excerpt);
END""",
        """CREATE TRIGGER IF NOT EXISTS stories_fts_update AFTER UPDATE OF title, excerpt
ON stories WHEN old.title IS NOT new.title OR old.excerpt IS NOT new.excerpt BEGIN
    INSERT INTO stories_fts (stories_fts, rowid, title, excerpt)
    VALUES ('delete', old.id, old.title, old.excerpt);
    INSERT INTO stories_fts (rowid, title, excerpt) VALUES (new.id, new.title, new.excerpt);
END""",
    ],
    "postgresql": [
        "CREATE INDEX IF NOT EXISTS stories_search ON stories USING gin "
        "(to_tsvector('simple', title || ' ' || excerpt))",
    ],
}
_WORD = re.compile(r"\w+")
SEARCH_WORDS = 8  # words of a query that count

STORY_COLUMNS = (
    "id, key, url, urls, title, excerpt, published, provider_name, provider_domain, topics, "
    "image, quality, heat, type, has_file, file_rank, changed_seq"
)


class CatalogError(RuntimeError):
    """The catalog cannot be opened or used (wrong file, newer schema, corruption)."""


@dataclass(frozen=True, slots=True)
class Story:
    """A story as the catalog holds it; what the service returns and the trainer reads."""

    id: int
    key: str
    url: str
    urls_json: str  # the URL variants as stored; parsed only by the few that read them
    title: str
    excerpt: str
    published: str | None
    provider_name: str | None
    provider_domain: str | None
    topics: list[str]
    image: str | None
    quality: int | None
    heat: int | None
    type: str | None
    has_file: bool
    file_rank: str | None
    changed_seq: int

    @property
    def urls(self) -> dict[str, str]:
        """The story's URL variants by field name (webUrl, ampWebUrl, ...)."""
        return json.loads(self.urls_json) if self.urls_json != "{}" else {}

    @classmethod
    def from_row(cls, row: tuple) -> Story:
        (id_, key, url, urls, title, excerpt, published, pname, pdomain, topics, image,
         quality, heat, type_, has_file, file_rank, changed_seq) = row
        return cls(id_, key, url, urls, title, excerpt,
                   published, pname, pdomain, json.loads(topics) if topics != "[]" else [],
                   image, quality, heat, type_, bool(has_file), file_rank, changed_seq)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole catalog as parallel arrays, in story-id order: what training consumes."""

    ids: np.ndarray  # int64, sorted
    keys: list[str]
    titles: list[str]
    excerpts: list[str]
    published: np.ndarray  # float64 epoch seconds, NaN when unknown
    published_text: list[str | None]
    providers: list[str | None]
    topics: list[list[str]]
    has_file: np.ndarray  # bool
    quality: np.ndarray  # float64, NaN when unknown
    heat: np.ndarray  # float64, NaN when unknown
    link_src: np.ndarray  # int64 row indices (not ids) into the arrays above
    link_dst: np.ndarray
    link_pos: np.ndarray
    max_seq: int
    catalog_id: str | None = None  # the catalog's identity (Catalog.identity)
    # Editors' live judgements on pairs (recommender.judgements), as rows like the links:
    # the article, the story, and whether it belongs (pinned, accepted) or not (blocked,
    # rejected); the newest judgement of a pair holds.
    judged_src: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    judged_dst: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    judged_belongs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self, story_id: int) -> int:
        i = int(np.searchsorted(self.ids, story_id))
        if i >= len(self.ids) or self.ids[i] != story_id:
            raise KeyError(story_id)
        return i


@dataclass(slots=True)
class ImportCounts:
    imported: int = 0  # files whose article was new to the catalog as an article
    updated: int = 0  # files that replaced an older version of their article
    # files already imported, older than the version the catalog holds, or saying just what
    # it holds and serves (an export coming back)
    unchanged: int = 0
    skipped: int = 0  # bad files
    warnings: int = 0  # items or images dropped from imported files


def _rank(article: Article, digest: str) -> str:
    """Sort key for 'which file of an article wins': the newest publishedDateTime, then the
    longer curated list, then the content hash. Never import order, so a catalog holds the
    same whatever order its files came in (two copies of one article with one timestamp,
    one with 179 related items and one with none, keep the list)."""
    return f"{article.item.published or ''}|{len(article.related):06d}|{digest}"


class Catalog:
    """A catalog: a SQLite file or a `postgresql://` URL. Use as a context manager."""

    def __init__(self, location: str | Path, *, readonly: bool = False) -> None:
        self.location = str(location)
        self.path = database.display(self.location)  # what messages name
        self._merges = 0
        self._next_id = 1  # set from the catalog at the start of each write
        try:
            self.db = database.connect(self.location, readonly=readonly)
        except database.DatabaseError as exc:
            raise CatalogError(str(exc)) from None
        try:
            if not readonly:
                self.db.create_schema(SCHEMA)
                self._create_search_index()
                self._check_schema_version()
            elif not self.db.has_schema():
                raise CatalogError(f"no catalog at {self.path} (run `recommender import` first)")
        except self.db.errors as exc:
            self.db.close()
            raise CatalogError(f"{self.path}: not a usable catalog ({exc})") from None

    def _create_search_index(self) -> None:
        """The full-text index; a catalog made before it gets it filled once, here."""
        new = self.db.dialect == "sqlite" and not self.db.has_table("stories_fts")
        self.db.create_schema(SEARCH_SCHEMA[self.db.dialect])
        if new:
            self.db.execute("INSERT INTO stories_fts (stories_fts) VALUES ('rebuild')")

    def _check_schema_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT DO NOTHING",
                            (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise CatalogError(f"{self.path}: schema {row[0]} is newer than this program's")
        # Created with the catalog (or the first time a catalog older than the rule is
        # written to) and never changed: what a model records, so that a catalog rebuilt
        # under the same name is never read with the story ids of the one it replaced.
        self.db.execute("INSERT INTO meta VALUES ('catalog_id', ?) ON CONFLICT DO NOTHING",
                        (uuid.uuid4().hex,))

    def identity(self) -> tuple[str | None, int]:
        """(catalog id, import counter) in one statement: what a server checks per request."""
        found = dict(self.db.execute(
            "SELECT name, value FROM meta WHERE name IN ('catalog_id', 'seq')").fetchall())
        return found.get("catalog_id"), int(found.get("seq", 0))

    def replaced(self) -> bool:
        """Whether the catalog's file is no longer the one this connection reads (moved
        away, rebuilt under the same name). A PostgreSQL database shows it in its identity."""
        return self.db.replaced()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Catalog]:
        """One writer at a time; rolled back on any exception, so writes are all-or-none."""
        self.db.begin_write()
        try:
            yield self
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    # -- import ---------------------------------------------------------------------------

    def known_hashes(self, hashes: Iterable[str]) -> set[str]:
        return {r[0] for r in _rows_in(self.db, "SELECT sha256 FROM files WHERE sha256 IN"
                                       " ({marks})", list(hashes))}

    def add_files(self, batch: list[tuple[Article, str]], counts: ImportCounts) -> None:
        """Import parsed files (article, content sha256) in one transaction."""
        db = self.db
        with self.transaction(), db.pipeline():
            row = db.execute("SELECT value FROM meta WHERE name = 'seq'").fetchone()
            seq = int(row[0]) if row else 0
            self._next_id = _next_id(db)
            for article, digest in batch:
                if db.execute("SELECT 1 FROM files WHERE sha256 = ?", (digest,)).fetchone():
                    counts.unchanged += 1
                    continue
                seq += 1
                story_id, outcome = self._add_article(db, article, digest, seq)
                setattr(counts, outcome, getattr(counts, outcome) + 1)
                db.execute("INSERT INTO files VALUES (?, ?, ?, ?)",
                           (digest, article.path, story_id, seq))
            _set_seq(db, seq)
            _set_meta(db, "next_id", self._next_id)

    def _add_article(self, db: Database, article: Article, digest: str,
                     seq: int) -> tuple[int | None, str]:
        item = article.item
        gone = self._removed_keys(db, [k for i in (item, *article.related) for k in i.aliases])
        if gone & set(item.aliases):
            return None, "unchanged"  # a removed story stays removed
        related = [r for r in article.related if not gone & set(r.aliases)]
        rank = _rank(article, digest)
        merges = self._merges
        known = _Resolving(db, [k for i in (item, *related) for k in i.aliases])
        story_id = self._resolve(db, item, seq, item.key, known)
        targets = [self._resolve(db, rel, seq, rel.key, known) for rel in related]
        known.flush()
        if self._merges != merges:
            # A related item merged stories (it was named by two stories' URLs), so ids
            # returned before the merge may be gone: look them up again, now all are in place.
            story_id = self._id_of(db, item.key)
            targets = [self._id_of(db, rel.key) for rel in related]
        has_file, file_rank = db.execute(
            "SELECT has_file, file_rank FROM stories WHERE id = ?", (story_id,)).fetchone()
        if has_file and file_rank >= rank and not self._same_path(db, file_rank, article.path):
            # An older version of an article we hold newer: its related items are stories
            # all the same (so the story set does not depend on import order), its list is not.
            return story_id, "unchanged"
        # Own-file fields win over anything seen in related lists; the newest file wins overall.
        clash = db.execute("SELECT id FROM stories WHERE key = ? AND id != ?",
                           (item.key, story_id)).fetchone()
        key = item.key if clash is None else None
        db.execute(
            "UPDATE stories SET key = COALESCE(?, key), url = ?, urls = ?, title = ?, "
            "excerpt = ?, published = ?, provider_name = ?, provider_domain = ?, topics = ?, "
            "image = ?, quality = ?, heat = ?, type = ?, has_file = 1, file_rank = ?, "
            "changed_seq = ? WHERE id = ?",
            (key, _display_url(item), json.dumps(item.urls, sort_keys=True), item.title,
             item.excerpt, item.published, item.provider_name, item.provider_domain,
             json.dumps(item.topics), item.image, item.quality, item.heat, item.type, rank,
             seq, story_id))
        db.execute("DELETE FROM links WHERE source_id = ?", (story_id,))
        rows = []
        seen = {story_id}
        for position, target in enumerate(targets):
            if target not in seen:  # first mention keeps its position; no self-links
                seen.add(target)
                rows.append((story_id, target, position))
        db.executemany("INSERT INTO links VALUES (?, ?, ?)", rows)
        return story_id, ("updated" if has_file else "imported")

    @staticmethod
    def _removed_keys(db: Database, keys: list[str]) -> set[str]:
        return {r[0] for r in _rows_in(db, "SELECT key FROM removed WHERE key IN ({marks})",
                                       sorted(set(keys)))}

    @staticmethod
    def _same_path(db: Database, file_rank: str, path: str) -> bool:
        """Whether the version the catalog holds came from the file at `path`: a new content
        of the same file is a correction, and replaces it even with an earlier date."""
        digest = file_rank.rsplit("|", 1)[-1]
        row = db.execute("SELECT path FROM files WHERE sha256 = ?", (digest,)).fetchone()
        return row is not None and row[0] == path

    def remove(self, urls: Iterable[str]) -> dict[str, str]:
        """Remove stories (unpublished, retracted) with their aliases and every link from or
        to them, in one transaction; their URLs are remembered so that no later import
        brings them back. Returns url → 'removed' or why not."""
        out: dict[str, str] = {}
        with self.transaction():
            db = self.db
            # Ids are never used twice: a model trained before this removal must not find
            # its rows for the removed stories naming stories imported after it.
            _set_meta(db, "next_id", _next_id(db))
            now = utc_now()
            for url in urls:
                story_id = self.story_id_for(url)
                if story_id is None:
                    out[url] = "no story in the catalog for this URL"
                    continue
                keys = [r[0] for r in db.execute(
                    "SELECT key FROM aliases WHERE story_id = ?", (story_id,))]
                db.executemany("INSERT INTO removed VALUES (?, ?) ON CONFLICT DO NOTHING",
                               [(k, now) for k in keys])
                db.execute("DELETE FROM links WHERE source_id = ? OR target_id = ?",
                           (story_id, story_id))
                db.execute("DELETE FROM aliases WHERE story_id = ?", (story_id,))
                db.execute("UPDATE files SET story_id = NULL WHERE story_id = ?", (story_id,))
                db.execute("DELETE FROM stories WHERE id = ?", (story_id,))
                out[url] = "removed"
            self.changed()
        return out

    def changed(self) -> None:
        """Answers change without an import (a removal, an editor's judgement): a new import
        counter, so every serving worker's caches and every answer tag start afresh."""
        _set_seq(self.db, self.max_seq() + 1)

    def _resolve(self, db: Database, item: Item, seq: int, prefer: str,
                 known: _Resolving) -> int:
        """The story for `item` (by any of its URLs), created or gap-filled as needed.
        `known`: the article's items being resolved, kept current here."""
        keys = list(dict.fromkeys(item.aliases))
        # Most items name a story the catalog holds under all its keys, often with its own
        # file: then neither the gap-filling update nor the alias inserts can change a row,
        # and skipping them halves the statements an import runs.
        rows = known.rows(keys)
        if not rows:
            story_id, self._next_id = self._next_id, self._next_id + 1
            db.execute(
                "INSERT INTO stories (id, key, url, urls, title, excerpt, published,"
                " provider_name, provider_domain, topics, image, quality, heat, type,"
                " changed_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (story_id, prefer, _display_url(item), json.dumps(item.urls, sort_keys=True),
                 item.title, item.excerpt, item.published, item.provider_name,
                 item.provider_domain, json.dumps(item.topics), item.image, item.quality,
                 item.heat, item.type, seq))
        else:
            found = sorted({r[1] for r in rows})
            story_id = found[0]
            if len(found) > 1:
                known.flush()  # a merge reads the stories as their mentions left them
            for other in found[1:]:
                story_id = self._merge(db, story_id, other, seq)
            if len(found) > 1:
                known.read()  # the merged stories' aliases name the kept one now
            if len(found) > 1 or not rows[0][2]:
                known.fill(story_id, _mention(item))
            if len(rows) == len(keys):
                return story_id  # every key already names it (a merge repoints, not drops)
        db.executemany("INSERT INTO aliases VALUES (?, ?) ON CONFLICT DO NOTHING",
                       [(k, story_id) for k in keys])
        # A key found names the kept story now, whose own file it tells; a new story has none.
        known.named(keys, story_id, known.names[rows[0][0]][1] if rows else 0)
        return story_id

    @staticmethod
    def _id_of(db: Database, key: str) -> int:
        return db.execute("SELECT story_id FROM aliases WHERE key = ?", (key,)).fetchone()[0]

    def _merge(self, db: Database, a: int, b: int, seq: int) -> int:
        """Two stories turned out to be one (an article's URLs named both): keep one."""
        ranks = {sid: db.execute("SELECT has_file, COALESCE(file_rank, '') FROM stories"
                                 " WHERE id = ?", (sid,)).fetchone() for sid in (a, b)}
        keep, drop = (a, b) if ranks[a] >= ranks[b] else (b, a)
        self._merges += 1
        dropped = db.execute(f"SELECT {', '.join(_MENTION)} FROM stories WHERE id = ?",
                             (drop,)).fetchone()
        _fill(db, keep, dict(zip(_MENTION, dropped, strict=True)))
        db.execute("UPDATE aliases SET story_id = ? WHERE story_id = ?", (keep, drop))
        db.execute("UPDATE files SET story_id = ? WHERE story_id = ?", (keep, drop))
        # Lists that named the dropped story now name the kept one, unless they already do.
        db.execute("INSERT INTO links SELECT source_id, ?, position FROM links"
                   " WHERE target_id = ? ON CONFLICT DO NOTHING", (keep, drop))
        db.execute("DELETE FROM links WHERE target_id = ? OR source_id = ?", (drop, drop))
        db.execute("DELETE FROM links WHERE source_id = target_id")
        db.execute("DELETE FROM stories WHERE id = ?", (drop,))
        db.execute("UPDATE stories SET changed_seq = ? WHERE id = ?", (seq, keep))
        return keep

    # -- reads ----------------------------------------------------------------------------

    def story_id_for(self, url: str) -> int | None:
        """The story any URL variant names, or None when the catalog does not know it."""
        try:
            key = canonical_url(url)
        except InvalidURL:
            return None
        row = self.db.execute("SELECT story_id FROM aliases WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def stories(self, ids: Iterable[int]) -> dict[int, Story]:
        return {row[0]: Story.from_row(row) for row in _rows_in(
            self.db, f"SELECT {STORY_COLUMNS} FROM stories WHERE id IN ({{marks}})", list(ids))}

    def story(self, story_id: int) -> Story | None:
        return self.stories([story_id]).get(story_id)

    def search(self, query: str, limit: int = 50, offset: int = 0) -> tuple[int, list[Story]]:
        """(how many match, the page of them, newest first): the story a URL names (any
        variant), or the stories whose title or excerpt hold every word of the query, whole
        words ("sphere" does not match "WebSphere"), any case and accent."""
        query = query.strip()
        by_url = self.story_id_for(query) if "/" in query or "." in query else None
        if by_url is not None:
            return 1, [self.stories([by_url])[by_url]] if offset == 0 else []
        words = _WORD.findall(query.lower())[:SEARCH_WORDS]
        if not words:
            return 0, []
        if self.db.dialect == "postgresql":
            where = ("to_tsvector('simple', title || ' ' || excerpt) @@ "
                     "plainto_tsquery('simple', ?)")
            param: str = " ".join(words)
        elif self.db.has_table("stories_fts"):
            where = "id IN (SELECT rowid FROM stories_fts WHERE stories_fts MATCH ?)"
            param = " ".join(f'"{w}"' for w in words)  # each a quoted word: no operators
        else:  # a catalog not written since search was added, read by a reader
            raise CatalogError(f"{self.path} has no search index yet: the next "
                               "`recommender import` makes it")
        total = self.db.execute(f"SELECT COUNT(*) FROM stories WHERE {where}",
                                (param,)).fetchone()[0]
        rows = self.db.execute(
            f"SELECT {STORY_COLUMNS} FROM stories WHERE {where}"
            " ORDER BY published DESC NULLS LAST, id LIMIT ? OFFSET ?", (param, limit, offset))
        return int(total), [Story.from_row(r) for r in rows]

    def to_do(self, limit: int = 50) -> dict[str, list[Story]]:
        """An editor's to-do list: the latest imports, and the stories with a file of their
        own but no curated list yet."""
        latest = self.db.execute(
            f"SELECT {STORY_COLUMNS} FROM stories WHERE has_file = 1"
            " ORDER BY changed_seq DESC, id DESC LIMIT ?", (limit,))
        unlisted = self.db.execute(
            f"SELECT {STORY_COLUMNS} FROM stories s WHERE has_file = 1 AND NOT EXISTS"
            " (SELECT 1 FROM links l WHERE l.source_id = s.id)"
            " ORDER BY published DESC NULLS LAST, id LIMIT ?", (limit,))
        return {"latest": [Story.from_row(r) for r in latest],
                "unlisted": [Story.from_row(r) for r in unlisted]}

    def ids_of_provider(self, provider: str) -> list[int]:
        """Stories whose provider name or domain is `provider` (case-insensitive)."""
        provider = provider.lower()
        return [r[0] for r in self.db.execute(
            "SELECT id FROM stories WHERE lower(provider_name) = ? OR lower(provider_domain) = ?"
            " ORDER BY id", (provider, provider))]

    def curated(self, story_id: int) -> list[int]:
        """The story's curated related list, in the editor's order."""
        return [r[0] for r in self.db.execute(
            "SELECT target_id FROM links WHERE source_id = ? ORDER BY position", (story_id,))]

    def max_seq(self) -> int:
        return self.identity()[1]

    def snapshot(self) -> Snapshot:
        """Everything training needs, read in one consistent transaction."""
        self.db.begin_read()
        try:
            rows = self.db.execute(
                "SELECT id, key, title, excerpt, published, provider_name, topics, has_file,"
                " quality, heat FROM stories ORDER BY id").fetchall()
            links = self.db.execute(
                "SELECT source_id, target_id, position FROM links ORDER BY source_id, position"
            ).fetchall()
            catalog_id, max_seq = self.identity()
            judged = self._judged_pairs()
        finally:
            self.db.commit()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        published_text = [r[4] for r in rows]
        published = np.array(
            [np.datetime64(p[:-1], "s").astype(np.int64) if p else np.nan
             for p in published_text], dtype=np.float64)
        link_arr = np.array(links, dtype=np.int64).reshape(-1, 3)
        return Snapshot(
            ids=ids,
            keys=[r[1] for r in rows],
            titles=[r[2] for r in rows],
            excerpts=[r[3] for r in rows],
            published=published,
            published_text=published_text,
            providers=[r[5] for r in rows],
            topics=[json.loads(r[6]) for r in rows],
            has_file=np.array([bool(r[7]) for r in rows], dtype=bool),
            quality=np.array([np.nan if r[8] is None else r[8] for r in rows], dtype=float),
            heat=np.array([np.nan if r[9] is None else r[9] for r in rows], dtype=float),
            link_src=np.searchsorted(ids, link_arr[:, 0]),
            link_dst=np.searchsorted(ids, link_arr[:, 1]),
            link_pos=link_arr[:, 2],
            max_seq=max_seq,
            catalog_id=catalog_id,
            **_judged_rows(ids, judged),
        )

    def _judged_pairs(self) -> list[tuple[int, int, str]]:
        """(article id, story id, action) of the newest live judgement of each pair."""
        if not self.db.has_table("judgements"):
            return []
        newest: dict[tuple[int, int], str] = {}
        for article, story, action in self.db.execute(
                "SELECT article_id, story_id, action FROM judgements WHERE undone IS NULL"
                " AND article_id IS NOT NULL ORDER BY id"):
            newest[(article, story)] = action
        return [(a, b, action) for (a, b), action in sorted(newest.items())]

    def stats(self) -> dict:
        q = self.db.execute
        lo, hi = q("SELECT MIN(published), MAX(published) FROM stories").fetchone()
        return {
            "stories": q("SELECT COUNT(*) FROM stories").fetchone()[0],
            "stories_with_file": q("SELECT COUNT(*) FROM stories WHERE has_file = 1").fetchone()[0],
            "curated_lists": q("SELECT COUNT(DISTINCT source_id) FROM links").fetchone()[0],
            "links": q("SELECT COUNT(*) FROM links").fetchone()[0],
            "providers": q("SELECT COUNT(DISTINCT provider_name) FROM stories").fetchone()[0],
            "aliases": q("SELECT COUNT(*) FROM aliases").fetchone()[0],
            "files": q("SELECT COUNT(*) FROM files").fetchone()[0],
            "published_from": lo,
            "published_to": hi,
        }

    def check(self) -> list[str]:
        """Integrity problems, one sentence each; empty when the catalog is sound."""
        q = self.db.execute
        try:
            problems = self.db.integrity()
        except self.db.errors as exc:  # so damaged that the check itself cannot run
            return [f"the database is damaged: {str(exc).splitlines()[0]}"]
        if problems:
            return problems
        checks = [
            ("SELECT COUNT(*) FROM links l LEFT JOIN stories s ON s.id = l.source_id"
             " WHERE s.id IS NULL", "links whose source story does not exist"),
            ("SELECT COUNT(*) FROM links l LEFT JOIN stories s ON s.id = l.target_id"
             " WHERE s.id IS NULL", "links whose target story does not exist"),
            ("SELECT COUNT(*) FROM aliases a LEFT JOIN stories s ON s.id = a.story_id"
             " WHERE s.id IS NULL", "URL aliases pointing at no story"),
            ("SELECT COUNT(*) FROM stories s LEFT JOIN aliases a ON a.key = s.key"
             " WHERE a.story_id IS NULL OR a.story_id != s.id",
             "stories whose own URL does not resolve to them"),
            ("SELECT COUNT(*) FROM links s LEFT JOIN stories t ON t.id = s.source_id"
             " WHERE t.has_file = 0", "curated lists on stories without their own file"),
            ("SELECT COUNT(*) FROM files f LEFT JOIN stories s ON s.id = f.story_id"
             " WHERE f.story_id IS NOT NULL AND s.id IS NULL",
             "imported files whose story does not exist"),
        ]
        for sql, what in checks:
            try:
                n = q(sql).fetchone()[0]
            except self.db.errors as exc:
                return [*problems, f"the database is damaged: {str(exc).splitlines()[0]}"]
            if n:
                problems.append(f"{n} {what}")
        return problems


# A story known only from related lists takes each field from all its mentions by a rule
# that does not depend on which came first: the longest title and excerpt (then the smaller
# text), the earliest date, the smallest provider (name and domain together), URL (and its
# variants), image and type, the highest quality. A story's own file overrides all of it.
# field → (rule, the field whose rule it follows, SQL type)
_MENTION_RULES = {
    "title": ("longest", "title", "TEXT"),
    "excerpt": ("longest", "excerpt", "TEXT"),
    "published": ("least", "published", "TEXT"),
    "provider_name": ("least", "provider_name", "TEXT"),
    "provider_domain": ("least", "provider_name", "TEXT"),
    "url": ("least", "url", "TEXT"),
    "urls": ("least", "url", "TEXT"),
    "image": ("least", "image", "TEXT"),
    "quality": ("greatest", "quality", "BIGINT"),
    "type": ("least", "type", "TEXT"),
}
_MENTION = tuple(_MENTION_RULES)


def _fill_statement() -> str:
    """The UPDATE that folds one mention into a list-only story (SET reads the old row)."""
    def param(name: str) -> str:  # typed, so PostgreSQL can compare an untyped NULL
        return f"CAST(:{name} AS {_MENTION_RULES[name][2]})"

    sets = []
    for column, (rule, lead, _) in _MENTION_RULES.items():
        new, old = param(lead), lead
        if rule == "longest":
            better = (f"length({new}) > length({old}) OR"
                      f" (length({new}) = length({old}) AND {new} < {old})")
        else:
            op = "<" if rule == "least" else ">"
            better = f"{new} IS NOT NULL AND ({old} IS NULL OR {new} {op} {old})"
        sets.append(f"{column} = CASE WHEN {better} THEN {param(column)} ELSE {column} END")
    return f"UPDATE stories SET {', '.join(sets)} WHERE id = :id AND has_file = 0"


_FILL = _fill_statement()


def _next_id(db: Database) -> int:
    """The next story id: past every id the catalog ever gave (a removed or merged story's
    id is not given again; SQLite alone would reuse the highest after a delete)."""
    row = db.execute("SELECT COALESCE(MAX(id), 0) + 1,"
                     " (SELECT value FROM meta WHERE name = 'next_id') FROM stories").fetchone()
    return max(int(row[0]), int(row[1] or 0))


def _judged_rows(ids: np.ndarray, judged: list[tuple[int, int, str]]) -> dict:
    """The judged pairs as rows of the snapshot (pairs naming a story no longer held are
    left out)."""
    pairs = [(a, b, action in BELONGING) for a, b, action in judged
             if action in BELONGING + HIDING]
    arr = np.array([(a, b) for a, b, _ in pairs], dtype=np.int64).reshape(-1, 2)
    belongs = np.array([x for _, _, x in pairs], dtype=bool)
    src = np.minimum(np.searchsorted(ids, arr[:, 0]), max(len(ids) - 1, 0))
    dst = np.minimum(np.searchsorted(ids, arr[:, 1]), max(len(ids) - 1, 0))
    held = (ids[src] == arr[:, 0]) & (ids[dst] == arr[:, 1]) if len(ids) else \
        np.zeros(len(arr), dtype=bool)
    return {"judged_src": src[held], "judged_dst": dst[held], "judged_belongs": belongs[held]}


def utc_now() -> str:
    """The time stamp the catalog writes (a removal, a judgement, an account, a key)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def checked_name(name: object, what: str) -> str:
    """A name the catalog keeps for a person or a holder (an editor, an API key); ValueError
    says what a good one is."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{what} {str(name)[:80]!r}: use 1 to 64 letters, digits, . _ @ -, "
                         "starting with a letter or digit")
    return name


def _set_meta(db: Database, name: str, value: object) -> None:
    db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (name)"
               " DO UPDATE SET value = excluded.value", (name, str(value)))


def _set_seq(db: Database, seq: int) -> None:
    """The import counter: what serving caches and `fingerprint` key on."""
    _set_meta(db, "seq", seq)


def _mention(item: Item) -> dict:
    return {"title": item.title, "excerpt": item.excerpt, "published": item.published,
            "provider_name": item.provider_name, "provider_domain": item.provider_domain,
            "url": _display_url(item), "urls": json.dumps(item.urls, sort_keys=True),
            "image": item.image, "quality": item.quality, "type": item.type}


class _Resolving:
    """One article's items being resolved to stories. Which story each of its keys names
    (and whether that story has its own file) is read in one statement, and the mentions
    folded into list-only stories are written together, not a statement per related item
    (each a round trip to a PostgreSQL catalog). Folding does not depend on order
    (_MENTION_RULES), so only a merge, which reads the stories, needs them written first."""

    def __init__(self, db: Database, keys: Iterable[str]) -> None:
        self.db, self.keys = db, sorted(set(keys))
        self.fills: list[dict] = []
        self.read()

    def read(self) -> None:
        self.names: dict[str, tuple[int, int]] = {
            key: (story_id, has_file) for key, story_id, has_file in _rows_in(
                self.db, "SELECT a.key, a.story_id, s.has_file FROM aliases a JOIN stories s"
                " ON s.id = a.story_id WHERE a.key IN ({marks})", self.keys)}

    def rows(self, keys: list[str]) -> list[tuple[str, int, int]]:
        """(key, story id, has file) of those of `keys` that name a story."""
        return [(k, *self.names[k]) for k in keys if k in self.names]

    def named(self, keys: list[str], story_id: int, has_file: int) -> None:
        """`keys` were inserted for `story_id` (a key naming a story already kept it)."""
        for k in keys:
            self.names.setdefault(k, (story_id, has_file))

    def fill(self, story_id: int, mention: dict) -> None:
        """Fold `mention` into the story (if it has no file of its own) at the next flush."""
        self.fills.append({**mention, "id": story_id})

    def flush(self) -> None:
        if self.fills:
            self.db.executemany(_FILL, self.fills)
            self.fills = []


IN_CHUNK = 500  # values bound in one IN (...) list, well under SQLite's variable limit


def _rows_in(db: Database, sql: str, values: list) -> Iterator[tuple]:
    """The rows of `sql`, whose `{marks}` is an IN list, for all of `values`: bound
    IN_CHUNK at a time, since a statement takes only so many parameters."""
    for i in range(0, len(values), IN_CHUNK):
        chunk = values[i:i + IN_CHUNK]
        yield from db.execute(sql.replace("{marks}", ",".join("?" * len(chunk))), chunk)


def _fill(db: Database, story_id: int, mention: dict) -> None:
    """Fold one more mention of a story into it, the same whatever the order (_MENTION_RULES)."""
    db.execute(_FILL, {**mention, "id": story_id})


def _display_url(item: Item) -> str:
    for name in URL_FIELDS:
        if name in item.urls:
            return item.urls[name]
    return "https://" + item.key
