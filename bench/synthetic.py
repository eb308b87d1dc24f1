"""Synthetic news corpus in the seed format, with known ground truth.

Structure mirrors the real corpus: stories come in clusters (one event: syndicated copies
across providers, follow-ups over weeks), each cluster has its own vocabulary over a shared
Zipfian background, providers have their own domains, dates span years, and every article
file's curated list is drawn mostly from its own cluster (nearest in time first) plus some
stories that are merely near in time. A few percent of files are broken, one way each.

Used by bench/import.py, bench/serve.py, bench/scale.py and the tests; deterministic for a
given seed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recommender.frontmatter import Article, Item  # noqa: E402
from recommender.urls import canonical_url  # noqa: E402

SYLLABLES = [a + b for a in "bcdfghklmnprstvz" for b in ("a", "e", "i", "o", "u", "ar", "en", "io")]
BROKEN_KINDS = ("no_front_matter", "bad_yaml", "no_title", "related_not_list", "not_utf8",
                "python_tag")
EPOCH = np.datetime64("2018-01-01T00:00:00", "s")


def _words(rng: np.random.Generator, n: int) -> list[str]:
    out, seen = [], set()
    while len(out) < n:
        k = int(rng.integers(2, 4))
        w = "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), k))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


@dataclass
class Corpus:
    """Stories as arrays; `related[i]` is the curated list of story i (empty: no file)."""

    titles: list[str]
    excerpts: list[str]
    dates: np.ndarray  # datetime64[s]
    providers: np.ndarray  # provider index
    provider_names: list[str]
    cluster: np.ndarray
    has_file: np.ndarray
    related: list[np.ndarray]

    def url(self, i: int) -> str:
        domain = self.provider_domain(int(self.providers[i]))
        day = str(self.dates[i].astype("datetime64[D]")).replace("-", "/")
        return f"https://www.{domain}/{day}/story-{i}"

    def provider_domain(self, p: int) -> str:
        return self.provider_names[p].lower().replace(" ", "") + ".example"


def generate(n_stories: int, *, seed: int = 0, file_fraction: float = 0.75,
             list_size: int = 20, cluster_size: int = 12, years: float = 3.0) -> Corpus:
    """A corpus of `n_stories` stories; about `file_fraction` of them have files with lists."""
    rng = np.random.default_rng(seed)
    vocab = _words(rng, 6000)
    background = np.array(vocab[:3000])
    zipf = 1.0 / np.arange(1, len(background) + 1)
    zipf /= zipf.sum()
    n_clusters = max(1, n_stories // cluster_size)
    cluster_vocab = np.array(vocab[3000:])
    provider_names = [f"{w.capitalize()} News" for w in _words(rng, 300)]
    # Clusters: an event with a date, a handful of own words; stories scatter around it.
    centers = rng.uniform(0, years * 365 * 86400, n_clusters)
    words_of = rng.integers(0, len(cluster_vocab), (n_clusters, 8))
    cluster = np.sort(rng.integers(0, n_clusters, n_stories))
    rng.shuffle(cluster)
    offsets = rng.exponential(4 * 86400, n_stories) * rng.choice([-0.3, 1.0], n_stories)
    seconds = (centers[cluster] + offsets).astype(np.int64)
    dates = EPOCH + seconds.astype("timedelta64[s]")
    providers = rng.integers(0, len(provider_names), n_stories)
    titles, excerpts = [], []
    for i in range(n_stories):
        own = cluster_vocab[words_of[cluster[i]][rng.permutation(8)[:4]]]
        bg = background[rng.choice(len(background), 12, p=zipf)]
        title = " ".join([*own[:3], *bg[:4]]).capitalize()
        excerpt = " ".join([*bg[4:], *own, *background[rng.choice(len(background), 14, p=zipf)]])
        titles.append(title)
        excerpts.append(excerpt.capitalize() + ".")
    # Syndicated copies: a tenth of stories repeat an earlier cluster-mate's title.
    by_cluster: dict[int, list[int]] = {}
    for i in range(n_stories):
        mates = by_cluster.setdefault(int(cluster[i]), [])
        if mates and rng.random() < 0.1:
            titles[i] = titles[mates[0]]
        mates.append(i)
    has_file = rng.random(n_stories) < file_fraction
    order = np.argsort(seconds, kind="stable")
    rank_of = np.empty(n_stories, dtype=np.int64)
    rank_of[order] = np.arange(n_stories)
    related: list[np.ndarray] = []
    for i in range(n_stories):
        if not has_file[i]:
            related.append(np.empty(0, dtype=np.int64))
            continue
        mates = np.array([j for j in by_cluster[int(cluster[i])] if j != i], dtype=np.int64)
        mates = mates[np.argsort(np.abs(seconds[mates] - seconds[i]), kind="stable")]
        k = int(rng.integers(list_size // 2, list_size * 3 // 2 + 1))
        from_cluster = mates[: int(k * 0.8)]
        lo, hi = max(0, rank_of[i] - 40), min(n_stories, rank_of[i] + 40)
        near = order[lo:hi]
        near = near[(near != i) & (cluster[near] != cluster[i])]
        noise = rng.choice(near, min(len(near), k - len(from_cluster)), replace=False)
        related.append(np.concatenate([from_cluster, noise]).astype(np.int64))
    return Corpus(titles, excerpts, dates, providers, provider_names, cluster, has_file, related)


def _variant(corpus: Corpus, j: int, rng: np.random.Generator) -> dict[str, str]:
    """URL fields for a related item, in one of the forms real lists carry."""
    url = corpus.url(j)
    pick = rng.random()
    fields = {"webUrl": url}
    if pick < 0.25:
        fields["webUrl"] = url + "?utm_source=feed&utm_medium=rss"
    elif pick < 0.5:
        fields["ampWebUrl"] = url + "/amp"
        host = url.split("/")[2]
        fields["cdnAmpWebUrl"] = (f"https://{host.replace('.', '-')}.cdn.ampproject.org/c/s/"
                                  f"{url.split('://', 1)[1]}/amp")
    elif pick < 0.6:
        fields["webUrl"] = url.replace("https://www.", "http://") + "/"
    return fields


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _date(corpus: Corpus, i: int) -> str:
    return str(corpus.dates[i]) + "Z"


def article_text(corpus: Corpus, i: int, rng: np.random.Generator) -> str:
    """Story i's file, in the seed format."""
    p = int(corpus.providers[i])
    lines = [
        "---", "category: news", f"title: {_q(corpus.titles[i])}",
        f"excerpt: {_q(corpus.excerpts[i])}", f"publishedDateTime: {_date(corpus, i)}",
        f"webUrl: {_q(corpus.url(i))}", "type: article", f"quality: {int(rng.integers(1, 100))}",
        "heat: -1", "published: false", "", "provider:",
        f"  name: {_q(corpus.provider_names[p])}", f"  domain: {corpus.provider_domain(p)}",
        "", "topics:", f"  - Topic{int(corpus.cluster[i]) % 50}", "", "images:",
        f"  - url: \"https://img.{corpus.provider_domain(p)}/{i}.jpg\"", "    width: 640",
        "    height: 360", "",
    ]
    if len(corpus.related[i]):
        lines.append("related:")
        for j in corpus.related[i]:
            j = int(j)
            q = int(corpus.providers[j])
            lines += [f"  - title: {_q(corpus.titles[j])}",
                      f"    excerpt: {_q(corpus.excerpts[j])}",
                      f"    publishedDateTime: {_date(corpus, j)}"]
            lines += [f"    {k}: {_q(v)}" for k, v in _variant(corpus, j, rng).items()]
            lines += ["    type: article", "    provider:",
                      f"      name: {_q(corpus.provider_names[q])}",
                      f"      domain: {corpus.provider_domain(q)}", "    quality: 50"]
        lines.append("")
    lines += ['secured: "c2VjcmV0;c2FsdA=="', "---", ""]
    return "\n".join(lines)


def break_text(text: str, kind: str) -> bytes:
    """A broken version of a file, of the given kind (one of BROKEN_KINDS)."""
    if kind == "no_front_matter":
        return text.replace("---\n", "", 1).encode()
    if kind == "bad_yaml":
        return text.replace("title: ", "title: [unclosed ", 1).encode()
    if kind == "no_title":
        return "\n".join(ln for ln in text.split("\n") if not ln.startswith("title:")).encode()
    if kind == "related_not_list":
        head, _, _ = text.partition("related:")
        return (head + 'related: "none"\nsecured: "x"\n---\n').encode() if _ else \
            text.replace("category: news", "category: news\nrelated: 7", 1).encode()
    if kind == "not_utf8":
        return text.encode("utf-8").replace(b"category", b"cat\xff\xfegory", 1)
    if kind == "python_tag":
        return text.replace("type: article", "type: !!python/object/apply:os.system ['true']",
                            1).encode()
    raise ValueError(kind)


def write_files(corpus: Corpus, folder: Path, *, broken_fraction: float = 0.03,
                seed: int = 0) -> tuple[int, int]:
    """Write every story that has a file; returns (files written, of which broken)."""
    rng = np.random.default_rng(seed + 1)
    folder.mkdir(parents=True, exist_ok=True)
    written = broken = 0
    for i in np.flatnonzero(corpus.has_file):
        text = article_text(corpus, int(i), rng)
        name = folder / f"{int(i):07d}.md"
        if rng.random() < broken_fraction:
            name.write_bytes(break_text(text, BROKEN_KINDS[broken % len(BROKEN_KINDS)]))
            broken += 1
        else:
            name.write_text(text, encoding="utf-8")
        written += 1
    return written, broken


def _item(corpus: Corpus, i: int) -> Item:
    p = int(corpus.providers[i])
    url = corpus.url(i)
    return Item(key=canonical_url(url), title=corpus.titles[i], excerpt=corpus.excerpts[i],
                published=_date(corpus, i), urls={"webUrl": url},
                provider_name=corpus.provider_names[p], provider_domain=corpus.provider_domain(p),
                topics=[f"Topic{int(corpus.cluster[i]) % 50}"], type="article")


def bulk_load(corpus: Corpus, catalog_location: str | Path, skip: set[int] = frozenset()) -> int:
    """Every story with a file (but those in `skip`) straight into a catalog, through the
    importer's own write path (`Catalog.add_files`) without writing or parsing files: how
    the large sizes are built. Returns the number of articles loaded."""
    from recommender.catalog import Catalog, ImportCounts
    from recommender.importer import BATCH_FILES

    counts = ImportCounts()
    batch: list[tuple[Article, str]] = []
    # Each story's item built once: a story is named in some 20 lists, and building its item
    # again for each (its URL canonicalised) would be the generator's time, not the catalog's.
    item = functools.cache(functools.partial(_item, corpus))

    with Catalog(catalog_location) as catalog:
        for i in np.flatnonzero(corpus.has_file):
            i = int(i)
            if i in skip:
                continue
            article = Article(item(i), [item(int(j)) for j in corpus.related[i]],
                              path=f"synthetic/{i}.md")
            batch.append((article, hashlib.sha256(str(i).encode()).hexdigest()))
            if len(batch) == BATCH_FILES:
                catalog.add_files(batch, counts)
                batch = []
        if batch:
            catalog.add_files(batch, counts)
    return counts.imported
