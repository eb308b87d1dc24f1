"""Front-matter parsing: one article file → one `Article`, or a `BadFile` naming the reason.

Files come from outside (feeds, editors' tools), so nothing here trusts them: YAML goes
through the C safe loader (no object-building tags), anchors are checked for alias bombs
before anything walks the document, and every field is type-checked so that a wrong type
fails loudly here rather than deep inside training.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .urls import InvalidURL, canonical_url, web_url

try:  # The C loader is ~10x faster; both are safe loaders.
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class SafeLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a mapping that repeats a key: YAML would keep the last
    silently, and an editor who wrote two `title:` lines meant one of them."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
                if key in seen and key != "<<":
                    line = key_node.start_mark.line + 1
                    raise BadFile(f"duplicate key '{key[:60]}' at line {line}")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


MAX_FILE_BYTES = 1 << 20
INT_RANGE = (-(1 << 63), (1 << 63) - 1)  # what both catalog engines store in an integer column
# Nodes a walk may visit, counting shared (aliased) nodes each time they are reached.
# Real articles have a few thousand; a billion-laughs document has billions.
MAX_EXPANDED_NODES = 200_000
# An anchor ('&name') starts where YAML allows one: at a value's start (after whitespace or
# one of these), not inside a URL's query or a headline's "Q&A".
_ANCHOR_AFTER = ",[{:-"
_ANCHOR_NAME_STOP = ",[]{}"
URL_FIELDS = ("webUrl", "originalUrl", "ampWebUrl", "cdnAmpWebUrl")


class BadFile(Exception):
    """A file that cannot be imported; `str()` is the reason shown to the user."""


class BadURL(BadFile):
    """An item whose own URL cannot be linked to: the file is bad when the item is its
    article, and the item is dropped (with a warning) when it is a related story."""


@dataclass(slots=True)
class Item:
    """A story as one source describes it: an article's own file, or an entry of a related list."""

    key: str  # canonical URL
    title: str
    excerpt: str = ""
    published: str | None = None  # ISO 8601 UTC, 'YYYY-MM-DDTHH:MM:SSZ'
    urls: dict[str, str] = field(default_factory=dict)  # field name → URL as written
    provider_name: str | None = None
    provider_domain: str | None = None
    topics: list[str] = field(default_factory=list)
    image: str | None = None
    quality: int | None = None
    heat: int | None = None
    type: str | None = None
    # Canonical keys of every URL the item was published under (sorted, `key` among them;
    # a broken alternate URL costs its alias, not the story). Derived on construction, so
    # an import computes them in the parser pool, not in the process that writes.
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.aliases:  # `urls` holds checked web URLs only (see `_item`)
            self.aliases = tuple(sorted({self.key, *map(canonical_url, self.urls.values())}))

    def __reduce__(self) -> tuple:
        # Items cross the parser pool's pipe by the tens of thousands; a slots dataclass's
        # default pickling restores each field by a Python-level setattr loop, which doubled
        # the unpickling time of an import in the writing process.
        return Item, (self.key, self.title, self.excerpt, self.published, self.urls,
                      self.provider_name, self.provider_domain, self.topics, self.image,
                      self.quality, self.heat, self.type, self.aliases)


@dataclass(slots=True)
class Article:
    """One parsed file: the article itself and its curated related list, in order."""

    item: Item
    related: list[Item]
    path: str
    # What was dropped from the file (a related item or an image whose URL cannot be
    # linked to), one sentence each: the file is imported without it, and the user told.
    warnings: list[str] = field(default_factory=list)

    def __reduce__(self) -> tuple:
        return Article, (self.item, self.related, self.path, self.warnings)


def _check_expansion(doc: Any) -> None:
    """Refuse documents whose aliases expand past MAX_EXPANDED_NODES (billion laughs)."""
    budget = MAX_EXPANDED_NODES
    stack = [doc]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            raise BadFile(
                f"YAML aliases expand to more than {MAX_EXPANDED_NODES:,} nodes (alias bomb?)"
            )
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _may_have_anchor(text: str) -> bool:
    """Whether `text` holds something shaped like a YAML anchor. Most files hold '&' only
    in URLs and prose, so this looks at each '&' (str.find) instead of running a regex
    over the whole text: 150 µs a file that way, a fifth of a typical file's YAML load."""
    i = text.find("&")
    while i >= 0:
        before = text[i - 1] if i else " "
        after = text[i + 1:i + 2]
        if ((before.isspace() or before in _ANCHOR_AFTER) and after
                and not after.isspace() and after not in _ANCHOR_NAME_STOP):
            return True
        i = text.find("&", i + 1)
    return False


def _split_front_matter(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        raise BadFile("no YAML front matter (the file must start with a '---' line)")
    for i in range(1, len(lines)):
        if lines[i].rstrip() in ("---", "..."):
            return "".join(lines[1:i])
    raise BadFile("front matter is not closed (no second '---' line)")


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - SafeLoader/CSafeLoader only
    except yaml.constructor.ConstructorError as exc:
        tag = getattr(exc, "problem", "") or str(exc)
        raise BadFile(f"YAML tag not allowed: {tag.strip()}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadFile(f"YAML does not parse{where}: {problem}") from None
    except RecursionError:
        raise BadFile("YAML is nested too deeply") from None
    except BadFile:
        raise
    except (ValueError, OverflowError, TypeError, ArithmeticError) as exc:
        # A value the YAML constructors cannot build: an impossible date (2020-02-30,
        # T25:00), `!!int "high"`, a float tag on text...
        raise BadFile(f"YAML value cannot be read: {str(exc)[:120] or type(exc).__name__}"
                      ) from None


def _label(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _expect(value: Any, types: type | tuple[type, ...], where: str, name: str) -> Any:
    # Field labels are built only for the error message: an import checks ~15 fields of
    # ~20 items per file, and formatting every label up front cost more than the checks.
    if value is not None and not isinstance(value, types):
        options = (types,) if isinstance(types, type) else types
        names = " or ".join(t.__name__ for t in options)
        raise BadFile(f"field '{_label(where, name)}' must be {names}, "
                      f"got {type(value).__name__}")
    return value


def _text(value: Any, where: str, name: str) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        raise BadFile(f"field '{_label(where, name)}' must be str, got bool")
    if isinstance(value, int | float):
        return str(value)
    return _expect(value, str, where, name)


def _int(value: Any, where: str, name: str) -> int | None:
    if isinstance(value, bool):
        raise BadFile(f"field '{_label(where, name)}' must be int, got bool")
    value = _expect(value, int, where, name)
    if value is not None and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise BadFile(f"field '{_label(where, name)}' is out of range (a 64-bit integer)")
    return value


def iso_utc(value: Any, name: str = "publishedDateTime") -> str | None:
    """Normalise a YAML timestamp or ISO string to 'YYYY-MM-DDTHH:MM:SSZ' (UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadFile(f"field '{name}' is not an ISO 8601 date: {value[:40]!r}") from None
    else:
        raise BadFile(f"field '{name}' must be a date, got {type(value).__name__}")
    if stamp.tzinfo is not None:
        try:
            stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise BadFile(f"field '{name}' is out of range: {value!s:.40}") from None
    # isoformat, not strftime: '%Y' does not zero-pad years before 1000 on glibc.
    return stamp.replace(microsecond=0).isoformat() + "Z"


def _item(raw: Any, where: str, warnings: list[str]) -> Item:
    """Build an Item from a mapping; `where` prefixes field names in error messages.

    Every URL is checked by `urls.web_url`: the first of URL_FIELDS names the story (BadURL
    when it cannot be linked to); a bad alternate URL or image is dropped, with a warning."""
    if not isinstance(raw, dict):
        raise BadFile(f"{where or 'front matter'} must be a mapping, got {type(raw).__name__}")
    get = raw.get
    title = _text(get("title"), where, "title")
    if not title or not title.strip():
        raise BadFile(f"{where or 'article'} has no title")
    urls: dict[str, str] = {}
    key = None
    for name in URL_FIELDS:
        value = _expect(get(name), str, where, name)
        if not value or not value.strip():
            continue
        try:
            url = web_url(value)
            url_key = canonical_url(url)
        except InvalidURL as exc:
            if key is None:
                raise BadURL(f"field '{_label(where, name)}': {exc}") from None
            warnings.append(f"{_label(where, name)} dropped: {exc}")
            continue
        key = key or url_key
        urls[name] = url
    if key is None:
        raise BadFile(f"{where or 'article'} has no URL (webUrl or originalUrl)")
    provider = _expect(get("provider"), dict, where, "provider") or {}
    topics = _expect(get("topics"), list, where, "topics") or []
    for i, t in enumerate(topics):
        _expect(t, str, where, f"topics[{i}]")
    images = _expect(get("images"), list, where, "images") or []
    image = None
    if images:
        first = _expect(images[0], dict, where, "images[0]") or {}
        image = _expect(first.get("url"), str, where, "images[0].url")
        if image is not None:
            try:
                image = web_url(image)
            except InvalidURL as exc:
                warnings.append(f"{_label(where, 'images[0].url')} dropped: {exc}")
                image = None
    published = get("publishedDateTime")
    if published is not None:
        published = iso_utc(published, _label(where, "publishedDateTime"))
    return Item(
        key=key,
        title=" ".join(title.split()),
        excerpt=" ".join((_text(get("excerpt"), where, "excerpt") or "").split()),
        published=published,
        urls=urls,
        provider_name=_text(provider.get("name"), where, "provider.name"),
        provider_domain=_text(provider.get("domain"), where, "provider.domain"),
        topics=[t for t in topics if t],
        image=image,
        quality=_int(get("quality"), where, "quality"),
        heat=_int(get("heat"), where, "heat"),
        type=_text(get("type"), where, "type"),
    )


def parse_text(text: str, path: str = "<text>") -> Article:
    """Parse the text of one article file."""
    source = _split_front_matter(text)
    # The safe loader builds aliases as shared references, so loading a bomb is cheap;
    # it is walking the result that explodes. Aliases need anchors, so only then check.
    doc = _load_yaml(source)
    if doc is None:
        raise BadFile("front matter is empty")
    if not isinstance(doc, dict):
        raise BadFile(f"front matter must be a mapping, got {type(doc).__name__}")
    if _may_have_anchor(source):
        _check_expansion(doc)
    warnings: list[str] = []
    item = _item(doc, "", warnings)
    related_raw = _expect(doc.get("related"), list, "", "related") or []
    related = []
    for i, raw in enumerate(related_raw):
        try:
            related.append(_item(raw, f"related[{i}]", warnings))
        except BadURL as exc:
            warnings.append(f"related[{i}] dropped: {exc}")
    return Article(item=item, related=related, path=path, warnings=warnings)


def read_bytes(path: Path) -> bytes:
    """A regular file's bytes, never more than MAX_FILE_BYTES of them.

    Opened without blocking (a FIFO would otherwise wait forever for a writer) and checked
    after opening (what a path names can change between a stat and an open); the read is
    bounded whatever `st_size` says, since /dev/zero or a growing file report 0 or less."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise BadFile(f"cannot read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb", buffering=0) as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise BadFile("not a regular file (a FIFO, device or socket is not read)")
        chunks, total = [], 0
        while total <= MAX_FILE_BYTES:
            chunk = f.read(MAX_FILE_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if total > MAX_FILE_BYTES:
        raise BadFile(f"file too large (over {MAX_FILE_BYTES:,} bytes, the limit)")
    return b"".join(chunks)


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadFile(
            f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def parse_file(path: Path) -> Article:
    """Parse one article file; raises BadFile with the reason when it cannot be imported."""
    return parse_text(decode(read_bytes(path)), str(path))
