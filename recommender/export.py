"""Export: the editors' lists back to the CMS, as seed-format front matter or JSON.

An article changed when an editor judged a story for it (or undid a judgement), or
retracted a story on its curated list. Its exported list is what the service serves before
the model's picks: curated, pinned, less blocked, rejected and retracted
(`judgements.Applied.arrange`). Every field is written as the catalog holds it, so that
importing an exported file finds nothing new (`served_already`): the round trip CMS →
catalog → CMS → catalog changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import yaml

from . import judgements
from .catalog import Catalog, Story
from .frontmatter import URL_FIELDS, Article, Item, iso_utc

FORMATS = ("md", "json")

try:  # the C dumper is the faster; both write plain YAML only
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]


class ExportError(ValueError):
    """An export that cannot run; the message says why."""


def changed_articles(catalog: Catalog, since: str | None = None) -> list[int]:
    """Ids of the articles whose lists editors changed at or after `since` (ISO; None: ever),
    in id order."""
    if not catalog.db.has_table("judgements"):
        return []  # a catalog older than judgements, opened read-only
    stamp = iso_utc(since, "since") if since else ""
    found = {r[0] for r in catalog.db.execute(
        "SELECT DISTINCT article_id FROM judgements WHERE article_id IS NOT NULL"
        " AND (created >= ? OR undone >= ?)", (stamp, stamp))}
    found.update(r[0] for r in catalog.db.execute(
        "SELECT DISTINCT l.source_id FROM links l JOIN judgements j ON j.story_id = l.target_id"
        " WHERE j.article_id IS NULL AND (j.created >= ? OR j.undone >= ?)", (stamp, stamp)))
    return sorted(catalog.stories(found))  # a removed article has nothing to export


def editorial_list(catalog: Catalog, article: int) -> list[int]:
    return judgements.applied(catalog, article).arrange(catalog.curated(article))


def document(catalog: Catalog, article: int) -> tuple[Story, dict]:
    """The article and its front matter: its own fields and its editorial list."""
    ids = editorial_list(catalog, article)
    stories = catalog.stories([article, *ids])
    story = stories[article]
    return story, {**_fields(story), "related": [_fields(stories[i]) for i in ids]}


def export(catalog: Catalog, folder: str | Path, since: str | None = None,
           fmt: str = "md") -> list[Path]:
    """Write one file per changed article into `folder` (created if missing), each replaced
    atomically, and return their paths. The name depends on the article's URL only, so a
    later export overwrites the file of an earlier one."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder} is not a folder")
    articles = changed_articles(catalog, since)
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for article in articles:
            story, doc = document(catalog, article)
            if fmt == "md":
                text = "---\n" + yaml.dump(doc, Dumper=_Dumper, allow_unicode=True,
                                           sort_keys=False, width=1 << 16) + "---\n"
            else:
                text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
            written.append(_write_atomically(folder / f"{_file_stem(story.key)}.{fmt}", text))
    except OSError as exc:
        done = f" ({len(written)} files written before it, each whole)" if written else ""
        raise ExportError(f"cannot write into {folder}: {exc.strerror or exc}{done}") from None
    return written


def _write_atomically(path: Path, text: str) -> Path:
    """`text` into `path` through a temporary file renamed into place: a reader (the CMS
    picking files up) never sees half a file, and a failed write leaves none behind."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    return path


def served_already(catalog: Catalog, article: Article) -> bool:
    """Whether a file says exactly what the catalog holds and serves for its article: the
    same story (every URL of it known), the same fields, and a related list naming, in order,
    the stories the editorial list holds. Such a file (an export coming back from the CMS) is
    unchanged: importing its list would turn the editors' pins into curated links."""
    story_id = _known_story(catalog, article.item)
    if story_id is None:
        return False
    story = catalog.story(story_id)
    if story is None or _fields(story) != _fields(article.item):
        return False
    listed: list[int] = []
    for item in article.related:
        target = _known_story(catalog, item)
        if target is None:
            return False
        if target != story_id and target not in listed:  # as the import keeps a list
            listed.append(target)
    return listed == editorial_list(catalog, story_id)


def _known_story(catalog: Catalog, item: Item) -> int | None:
    """The one story every URL of `item` names, or None (one is new, or they name two)."""
    marks = ",".join("?" * len(item.aliases))
    rows = catalog.db.execute(f"SELECT key, story_id FROM aliases WHERE key IN ({marks})",
                              item.aliases).fetchall()
    ids = {r[1] for r in rows}
    return ids.pop() if len(rows) == len(item.aliases) and len(ids) == 1 else None


def _fields(x: Story | Item) -> dict:
    """A story's fields under the names of the seed format (the parser's inverse), absent
    ones left out."""
    urls = x.urls
    doc = {"title": x.title, "excerpt": x.excerpt, "publishedDateTime": x.published}
    doc.update((name, urls[name]) for name in URL_FIELDS if name in urls)
    doc.update({"type": x.type, "quality": x.quality, "heat": x.heat})
    provider = {"name": x.provider_name, "domain": x.provider_domain}
    doc["provider"] = {k: v for k, v in provider.items() if v is not None} or None
    doc["topics"] = list(x.topics) or None
    doc["images"] = [{"url": x.image}] if x.image else None
    return {k: v for k, v in doc.items() if v is not None}


def _file_stem(key: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")[:80]
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
