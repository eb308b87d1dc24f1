"""Import into a real catalog, SQLite and PostgreSQL alike: identity, merge rules,
idempotence, bad input, crashes."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synthetic
from badfiles import GOOD, write_bad_files
from conftest import ROOT, SEEDS, run_cli

from recommender.catalog import Catalog, CatalogError
from recommender.frontmatter import parse_file
from recommender.importer import import_paths


def _import(location: str, *paths, workers: int = 1):
    errors: list[tuple[str, str]] = []
    with Catalog(location) as catalog:
        counts = import_paths(catalog, list(paths), on_error=lambda p, r: errors.append((p, r)),
                              workers=workers)
        return counts, errors, catalog.stats()


def _article(path: Path, title: str, url: str, published: str, related=(), **extra) -> Path:
    lines = ["---", f'title: "{title}"', f"publishedDateTime: {published}", f'webUrl: "{url}"']
    lines += [f"{k}: {v}" for k, v in extra.items()]
    if related:
        lines.append("related:")
        for r_title, r_url in related:
            lines += [f'  - title: "{r_title}"', f'    webUrl: "{r_url}"',
                      "    excerpt: seen in a list", "    provider:", "      name: Lister"]
    lines.append("---\n")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _dump(location: str) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order: equal dumps mean equal catalogs (but
    for the identity each catalog is created with)."""
    order = {"stories": "id", "aliases": "key", "links": "source_id, target_id",
             "files": "sha256", "meta": "name"}
    with Catalog(location, readonly=True) as catalog:
        return {t: [tuple(r) for r in catalog.db.execute(f"SELECT * FROM {t} ORDER BY {o}")
                    if tuple(r)[0] != "catalog_id"]
                for t, o in order.items()}


def test_seeds_give_one_story_per_article_and_distinct_related_item(catalog_location):
    result = run_cli("import", str(SEEDS), catalog=catalog_location)
    assert result.returncode == 0, result.stderr
    assert "imported 5, updated 0, unchanged 0, skipped 0" in result.stdout
    stats = json.loads(run_cli("stats", "--json", catalog=catalog_location).stdout)
    articles = [parse_file(p) for p in sorted(SEEDS.iterdir())]
    own = {a.item.key for a in articles}
    related = {r.key for a in articles for r in a.related} - own
    assert stats["stories_with_file"] == 5
    assert stats["curated_lists"] == 5
    assert stats["stories"] == 5 + len(related)
    assert stats["links"] == sum(len({r.key for r in a.related}) for a in articles)


def test_every_url_variant_of_a_seed_resolves_to_its_story(catalog_location):
    _import(catalog_location, SEEDS)
    article = parse_file(next(SEEDS.glob("000_*.txt")))
    fox = article.related[0]
    with Catalog(catalog_location) as catalog:
        ids = {catalog.story_id_for(u) for u in fox.urls.values()}
        ids.add(catalog.story_id_for(fox.urls["webUrl"] + "?utm_source=x&fbclid=y"))
        ids.add(catalog.story_id_for(fox.urls["webUrl"].replace("https://www.foxnews.com",
                                                                "HTTP://WWW.FOXNEWS.COM")))
        assert len(ids) == 1 and None not in ids
        assert catalog.story_id_for("https://nowhere.example/none") is None


def test_own_file_wins_over_related_list_fields(tmp_path, catalog_location, new_catalog):
    _article(tmp_path / "a.md", "Lister story", "https://x.example/a", "2021-01-01T00:00:00Z",
             related=[("Title as a list saw it", "https://x.example/b?utm_source=feed")])
    _article(tmp_path / "b.md", "Title from its own file", "https://www.x.example/b/",
             "2021-01-02T00:00:00Z", excerpt="own excerpt")
    _import(catalog_location, tmp_path / "a.md", tmp_path / "b.md")
    reverse = new_catalog()
    _import(reverse, tmp_path / "b.md", tmp_path / "a.md")
    for path in (catalog_location, reverse):
        with Catalog(path) as catalog:
            b = catalog.story(catalog.story_id_for("https://x.example/b"))
            assert b.title == "Title from its own file" and b.excerpt == "own excerpt"
            assert b.has_file
            a = catalog.story_id_for("https://x.example/a")
            assert catalog.curated(a) == [b.id]
            assert catalog.stats()["stories"] == 2


def test_newest_file_replaces_the_curated_list(tmp_path, new_catalog):
    old = _article(tmp_path / "old.md", "Story v1", "https://x.example/s", "2021-01-01T00:00:00Z",
                   related=[("One", "https://x.example/1"), ("Two", "https://x.example/2")])
    new = _article(tmp_path / "new.md", "Story v2", "https://x.example/s", "2021-01-05T00:00:00Z",
                   related=[("Three", "https://x.example/3"), ("One", "https://x.example/1")])
    for order in ([old, new], [new, old]):
        path = new_catalog()
        counts, _, _ = _import(path, *order)
        with Catalog(path) as catalog:
            story = catalog.story(catalog.story_id_for("https://x.example/s"))
            assert story.title == "Story v2"
            keys = [catalog.story(t).key for t in catalog.curated(story.id)]
            assert keys == ["x.example/3", "x.example/1"]  # the editor's order is kept
            assert catalog.stats()["stories"] == 4  # x.example/2 stays known as a story
            assert catalog.check() == []


def test_same_date_the_longer_list_wins_in_either_order(tmp_path, new_catalog):
    listed = _article(tmp_path / "a.md", "Listed", "https://x.example/s",
                      "2021-01-01T00:00:00Z", related=[("R", "https://x.example/r")])
    bare = _article(tmp_path / "b.md", "Bare", "https://x.example/s", "2021-01-01T00:00:00Z")
    for order in ([listed, bare], [bare, listed]):
        location = new_catalog()
        _import(location, *order)
        with Catalog(location) as catalog:
            story = catalog.story_id_for("https://x.example/s")
            assert catalog.story(story).title == "Listed"
            assert len(catalog.curated(story)) == 1


def test_urls_of_one_article_merge_stories_seen_apart(tmp_path, catalog_location):
    _article(tmp_path / "a.md", "A", "https://x.example/a", "2021-01-01T00:00:00Z",
             related=[("Known by its original URL", "https://orig.example/b")])
    _article(tmp_path / "b.md", "B", "https://x.example/b", "2021-01-02T00:00:00Z",
             originalUrl='"https://orig.example/b"')
    _import(catalog_location, tmp_path / "a.md", tmp_path / "b.md")
    with Catalog(catalog_location) as catalog:
        b = catalog.story_id_for("https://x.example/b")
        assert catalog.story_id_for("https://orig.example/b") == b
        assert catalog.curated(catalog.story_id_for("https://x.example/a")) == [b]
        assert catalog.stats()["stories"] == 2
        assert catalog.check() == []


def test_importing_twice_changes_nothing(tmp_path, catalog_location):
    corpus = synthetic.generate(400, seed=3)
    synthetic.write_files(corpus, tmp_path / "files", seed=3)
    first, _, stats1 = _import(catalog_location, tmp_path / "files", workers=2)
    dump1 = _dump(catalog_location)
    second, _, stats2 = _import(catalog_location, tmp_path / "files", workers=2)
    dump2 = _dump(catalog_location)
    assert stats1 == stats2 and dump1 == dump2
    assert second.unchanged == first.imported + first.updated + first.unchanged
    assert second.imported == second.updated == 0


def test_pool_and_in_process_imports_agree(tmp_path, new_catalog):
    corpus = synthetic.generate(900, seed=5)
    synthetic.write_files(corpus, tmp_path / "files", seed=5)
    locations = {workers: new_catalog() for workers in (1, 2)}
    results = [_import(loc, tmp_path / "files", workers=w) for w, loc in locations.items()]
    assert results[0][2] == results[1][2]
    assert _dump(locations[1]) == _dump(locations[2])
    assert results[0][1] == results[1][1]  # same bad files, same reasons, same order


def test_import_leaves_the_garbage_collector_as_it_found_it(tmp_path, new_catalog):
    """The importer pauses the cyclic collector (and freezes the heap) for speed; a program
    that imports, a long-running one above all, gets it back as it was, on error too."""
    write_bad_files(tmp_path / "mixed")

    def stop(path: str, reason: str) -> None:
        raise RuntimeError(f"{path}: {reason}")

    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            _import(new_catalog(), SEEDS)
            assert gc.isenabled() is enabled and gc.get_freeze_count() == 0
            with Catalog(new_catalog()) as catalog, pytest.raises(RuntimeError):
                import_paths(catalog, [tmp_path / "mixed"], on_error=stop)
            assert gc.isenabled() is enabled and gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_bad_files_are_named_and_the_rest_imported(tmp_path, catalog_location):
    folder = tmp_path / "mixed"
    expected = write_bad_files(folder)
    for seed in SEEDS.iterdir():
        (folder / seed.name).write_bytes(seed.read_bytes())
    started = time.monotonic()
    result = run_cli("import", str(folder), catalog=catalog_location)
    assert time.monotonic() - started < 60
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(expected)
    for path, words in expected.items():
        assert any(line.startswith(f"{path}: ") and words in line for line in lines), path
    assert f"imported 5, updated 0, unchanged 0, skipped {len(expected)}" in result.stdout
    assert "Traceback" not in result.stderr
    stats = json.loads(run_cli("stats", "--json", catalog=catalog_location).stdout)
    assert stats["curated_lists"] == 5


def test_cli_exit_codes(tmp_path, catalog_location, new_catalog):
    good = tmp_path / "good.md"
    good.write_text(GOOD)
    assert run_cli("import", str(good), catalog=catalog_location).returncode == 0
    missing = run_cli("import", str(tmp_path / "nope"), catalog=catalog_location)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    assert run_cli("import", catalog=catalog_location).returncode == 2  # no PATH: usage error
    assert run_cli("check", catalog=catalog_location).returncode == 0
    absent = run_cli("stats", catalog=new_catalog())  # nothing imported there yet
    assert absent.returncode == 1 and "no catalog at" in absent.stderr
    for command in ("import", "stats", "check"):
        assert run_cli(command, "--help").returncode == 0


def test_check_reports_a_broken_catalog(tmp_path, catalog_location):
    _import(catalog_location, SEEDS)
    with Catalog(catalog_location) as catalog:
        catalog.db.execute("INSERT INTO links VALUES (1, 999999, 0)")
    result = run_cli("check", catalog=catalog_location)
    assert result.returncode == 1
    assert "1 links whose target story does not exist" in result.stderr


def test_sigkill_mid_import_leaves_whole_files_and_a_rerun_finishes(tmp_path, new_catalog):
    corpus = synthetic.generate(4000, seed=11)
    synthetic.write_files(corpus, tmp_path / "files", broken_fraction=0, seed=11)
    catalog_location, clean = new_catalog(), new_catalog()
    _, _, clean_stats = _import(clean, tmp_path / "files", workers=2)

    env = {**os.environ, "RECOMMENDER_CATALOG": str(catalog_location)}
    proc = subprocess.Popen([sys.executable, "-m", "recommender", "import", "-q",
                             str(tmp_path / "files")], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    committed = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with Catalog(catalog_location, readonly=True) as catalog:
                committed = catalog.stats()["files"]
        except CatalogError:
            pass  # the importer has not created the catalog yet
        if committed >= 500:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"

    check = run_cli("check", catalog=catalog_location)
    assert check.returncode == 0, check.stderr
    with Catalog(catalog_location) as partial, Catalog(clean) as full:
        n_files = partial.stats()["files"]
        assert 0 < n_files < clean_stats["files"]
        # Every article the partial catalog holds has exactly the links the full import gives.
        rows = partial.db.execute("SELECT key, id FROM stories WHERE has_file = 1").fetchall()
        for key, story_id in rows:
            got = [partial.story(t).key for t in partial.curated(story_id)]
            want = [full.story(t).key for t in full.curated(full.story_id_for("https://" + key))]
            assert got == want, key

    rerun = run_cli("import", "-q", str(tmp_path / "files"), catalog=catalog_location)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(run_cli("stats", "--json", catalog=catalog_location).stdout) == clean_stats


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def corpus_catalog(request, tmp_path_factory) -> str:
    """The whole shared corpus imported once per engine, through the CLI; tests only read
    it (or import it again, which must change nothing)."""
    corpus = request.getfixturevalue("corpus")
    if request.param == "sqlite":
        location = str(tmp_path_factory.mktemp("corpus") / "catalog.sqlite3")
    else:
        location = request.getfixturevalue("postgres").new_database()
    first = run_cli("import", "-q", str(corpus), catalog=location)
    assert first.returncode == 0, first.stderr[-2000:]
    return location


def test_shared_corpus_imports_cleanly_and_idempotently(corpus, corpus_catalog):
    stats1 = run_cli("stats", "--json", catalog=corpus_catalog).stdout
    second = run_cli("import", "-q", str(corpus), catalog=corpus_catalog)
    assert second.returncode == 0
    assert "imported 0, updated 0" in second.stdout
    assert run_cli("stats", "--json", catalog=corpus_catalog).stdout == stats1
    assert json.loads(stats1)["curated_lists"] >= 2488


def test_a_catalog_has_an_identity_and_never_gives_an_id_twice(new_catalog, tmp_path):
    """What a model records of its catalog: an identity made with the catalog (another
    catalog, even of the same files, has another), and ids that a removal does not free, so
    a model's rows never come to name a story imported after it was trained."""
    first, second = new_catalog(), new_catalog()
    for location in (first, second):
        assert run_cli("import", "-q", str(SEEDS), catalog=location).returncode == 0
    with Catalog(first, readonly=True) as a, Catalog(second, readonly=True) as b:
        (id_a, _), (id_b, _) = a.identity(), b.identity()
        newest = int(a.db.execute("SELECT MAX(id) FROM stories").fetchone()[0])
        newest_url = a.story(newest).url
    assert id_a and id_b and id_a != id_b
    assert run_cli("remove", newest_url, catalog=first).returncode == 0
    late = tmp_path / "late.md"
    late.write_text('---\ntitle: "A story imported after a removal"\n'
                    "publishedDateTime: 2021-01-01T00:00:00Z\n"
                    "webUrl: https://news.example/late\n---\n")
    assert run_cli("import", "-q", str(late), catalog=first).returncode == 0
    with Catalog(first, readonly=True) as a:
        assert a.identity()[0] == id_a  # kept through writes
        assert a.story_id_for("https://news.example/late") > newest


def test_catalog_search_matches_whole_words_with_the_true_count(corpus_catalog):
    """Full-text search (SQLite FTS5, PostgreSQL tsvector) on the shared corpus: every story
    whose title or excerpt holds each word, whole words only ("azure sphere" never matches
    WebSphere alone), the true count, and pages without repeats."""
    import re

    with Catalog(corpus_catalog, readonly=True) as catalog:
        rows = catalog.db.execute("SELECT id, title, excerpt FROM stories").fetchall()

        def words(text: str) -> set[str]:
            return set(re.findall(r"\w+", text.lower()))

        for query in ("azure sphere", "Kubernetes", "sql server 2019"):
            want = {i for i, title, excerpt in rows
                    if set(query.lower().split()) <= words(title) | words(excerpt)}
            total, first = catalog.search(query, limit=50)
            assert total == len(want) > 0, query
            pages, offset = list(first), 50
            while offset < total:
                pages += catalog.search(query, limit=50, offset=offset)[1]
                offset += 50
            ids = [s.id for s in pages]
            assert len(ids) == len(set(ids)) and set(ids) == want, query
        total, found = catalog.search("sphere")
        assert all("sphere" in words(s.title) | words(s.excerpt) for s in found)
        assert not any(s.id for s in found if "websphere" in s.title.lower()
                       and "sphere" not in words(s.title) | words(s.excerpt))
        todo = catalog.to_do(limit=10)
        assert len(todo["latest"]) == 10 and todo["unlisted"]
        assert all(not catalog.curated(s.id) for s in todo["unlisted"])
