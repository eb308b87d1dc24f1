"""Hostile and broken files: each is named and skipped, the rest is imported, nothing that is
not an http(s) URL reaches the catalog, and the catalog does not depend on file order.

Run on SQLite and PostgreSQL (`new_catalog`), in-process and through the parser pool."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import synthetic
from badfiles import PARTLY_BAD, PARTLY_BAD_WARNINGS, write_bad_files
from conftest import run_cli

from recommender.catalog import Catalog
from recommender.frontmatter import parse_file
from recommender.importer import POOL_MIN_FILES, import_paths, iter_files
from recommender.urls import is_web_url


def _import(location: str, paths: list, workers: int):
    errors: dict[str, str] = {}
    warnings: list[tuple[str, str]] = []
    with Catalog(location) as catalog:
        counts = import_paths(catalog, paths, workers=workers,
                              on_error=lambda p, r: errors.__setitem__(p, r),
                              on_warning=lambda p, w: warnings.append((p, w)))
        return counts, errors, warnings, catalog.stats()


def _content(location: str) -> dict[str, list]:
    """Every table by content (story keys for ids, no import sequence numbers): equal for
    catalogs that hold the same, whatever order their files were imported in."""
    with Catalog(location, readonly=True) as catalog:
        q = catalog.db.execute
        key = dict(q("SELECT id, key FROM stories").fetchall())
        columns = ("key, url, urls, title, excerpt, published, provider_name, provider_domain,"
                   " topics, image, quality, heat, type, has_file, file_rank")
        return {
            "stories": sorted(tuple(r) for r in q(f"SELECT {columns} FROM stories")),
            "links": sorted((key[s], key[t], p) for s, t, p in q("SELECT * FROM links")),
            "aliases": sorted((a, key[s]) for a, s in q("SELECT * FROM aliases")),
            "files": sorted((h, p, key[s]) for h, p, s, _ in q("SELECT * FROM files")),
        }


@pytest.mark.parametrize("workers", [1, 2])
def test_every_bad_kind_is_named_and_skipped_among_good_files(tmp_path, new_catalog, workers):
    """A bad value (impossible date, a tag on the wrong text, a number past 64 bits, a
    duplicate key, a javascript: URL), a FIFO and a link to /dev/zero: each one file's
    problem. Enough good files around them that workers=2 runs the parser pool."""
    corpus = synthetic.generate(POOL_MIN_FILES * 2, seed=11)  # 3 in 4 have a file
    synthetic.write_files(corpus, tmp_path / "tree", broken_fraction=0, seed=11)
    good = sorted(p for p in (tmp_path / "tree").rglob("*.md"))
    expected = write_bad_files(tmp_path / "tree", prefix="0000300_")  # sorted into the middle
    location = new_catalog()
    counts, errors, _, stats = _import(location, [tmp_path / "tree"], workers)
    assert set(errors) == set(expected)
    for path, words in expected.items():
        assert words in errors[path], (path, errors[path])
    assert counts.skipped == len(expected)
    assert stats["stories_with_file"] == len({parse_file(p).item.key for p in good})
    with Catalog(location, readonly=True) as catalog:
        assert catalog.check() == []
    again, errors_again, _, stats_again = _import(location, [tmp_path / "tree"], workers)
    assert (again.imported, again.updated) == (0, 0) and stats_again == stats
    assert set(errors_again) == set(expected)


def test_urls_that_are_not_http_never_enter_the_catalog(tmp_path, new_catalog):
    (tmp_path / "partly.md").write_text(PARTLY_BAD)
    location = new_catalog()
    counts, errors, warnings, _ = _import(location, [tmp_path / "partly.md"], 1)
    assert errors == {} and counts.imported == 1
    assert len(warnings) == len(PARTLY_BAD_WARNINGS) == counts.warnings
    for words in PARTLY_BAD_WARNINGS:
        assert any(words in w for _, w in warnings), words
    with Catalog(location, readonly=True) as catalog:
        rows = catalog.db.execute("SELECT url, urls, image FROM stories").fetchall()
        assert len(rows) == 2  # the article and its one good related story
        for url, urls, image in rows:
            assert is_web_url(url) and image is None
            assert all(is_web_url(u) for u in json.loads(urls).values())
            assert "javascript" not in (url + urls).lower() and "data:" not in url + urls


def test_one_host_in_unicode_and_punycode_is_one_story(tmp_path, new_catalog):
    (tmp_path / "a.md").write_text(
        '---\ntitle: "Bücher"\nwebUrl: "https://bücher.example/neu"\nrelated:\n'
        '  - title: "Same, punycode"\n    webUrl: "https://xn--bcher-kva.example/neu/"\n---\n')
    location = new_catalog()
    _import(location, [tmp_path / "a.md"], 1)
    with Catalog(location, readonly=True) as catalog:
        assert catalog.stats()["stories"] == 1  # the related item is the article itself
        assert catalog.story_id_for("https://XN--BCHER-KVA.example/neu") is not None


def test_the_catalog_does_not_depend_on_file_order(corpus, tmp_path):
    """The real corpus holds one article twice with one timestamp (179 related items in the
    azure copy, none in the powerapps one), and stories named only in lists with differing
    fields: three orders of the same files give the same tables. (The same rules on
    PostgreSQL: the two tests below.)"""
    files = list(iter_files([corpus / "ai", corpus / "powerapps"]))
    files += [f for f in iter_files([corpus / "azure"])
              if "power-apps" in (text := f.read_text().lower()) or "powerapps" in text]
    contents = []
    for seed in (0, 1, 2):
        order = files if seed == 0 else random.Random(seed).sample(files, len(files))
        location = str(tmp_path / f"order{seed}.sqlite3")
        _import(location, order, 1)
        contents.append(_content(location))
    assert contents[0] == contents[1] == contents[2]
    twin = [s for s in contents[0]["stories"] if s[0].endswith("power-apps-azure.aspx")]
    assert twin and sum(1 for link in contents[0]["links"] if link[0] == twin[0][0]) > 100


def test_list_only_stories_take_the_same_fields_in_any_order(tmp_path, new_catalog):
    def lister(name: str, excerpt: str, published: str, provider: str) -> Path:
        path = tmp_path / f"{name}.md"
        path.write_text(
            f'---\ntitle: "{name}"\nwebUrl: "https://lists.example/{name}"\nrelated:\n'
            f'  - title: "Shared story"\n    webUrl: "https://shared.example/s"\n'
            f'    excerpt: "{excerpt}"\n    publishedDateTime: {published}\n'
            f'    provider:\n      name: {provider}\n---\n')
        return path

    a = lister("a", "A long excerpt from the first list", "2021-01-02T00:00:00Z", "Zeta")
    b = lister("b", "Short", "2021-01-01T00:00:00Z", "Alpha")
    seen = []
    for order in ([a, b], [b, a]):
        location = new_catalog()
        _import(location, order, 1)
        with Catalog(location, readonly=True) as catalog:
            story = catalog.story(catalog.story_id_for("https://shared.example/s"))
            seen.append((story.excerpt, story.published, story.provider_name))
    assert seen[0] == seen[1] == ("A long excerpt from the first list", "2021-01-01T00:00:00Z",
                                  "Alpha")


def test_cli_names_each_dropped_part_and_still_imports(tmp_path, catalog_location):
    (tmp_path / "partly.md").write_text(PARTLY_BAD)
    result = run_cli("import", str(tmp_path / "partly.md"), catalog=catalog_location)
    assert result.returncode == 0, result.stderr
    assert "imported 1," in result.stdout and "3 items or images dropped" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(": warning: " in line for line in lines)
    assert "Traceback" not in result.stderr


def test_a_damaged_catalog_is_reported_in_one_line(corpus, tmp_path):
    """`check` exists to report damage: a page overwritten in place is its problem, exit 1,
    and every other command says so in one line, never a traceback."""
    location = tmp_path / "catalog.sqlite3"
    assert run_cli("import", str(corpus / "ai"), catalog=location).returncode == 0
    import sqlite3

    with sqlite3.connect(location) as db:  # a page every command reads: the stories' root
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'stories'"
                          ).fetchone()[0]
    db.close()
    with open(location, "r+b") as f:
        f.seek(page_size * (root - 1))
        f.write(b"\xde\xad" * (page_size // 2))
    check = run_cli("check", catalog=location)
    assert check.returncode == 1 and "the database is damaged" in check.stderr
    stats = run_cli("stats", catalog=location)
    assert stats.returncode == 1 and "catalog database failed" in stats.stderr
    for result in (check, stats):
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_corrected_file_replaces_its_earlier_version(tmp_path, new_catalog):
    """The same path imported again with an earlier date: a correction, not an older copy."""
    path = tmp_path / "a.md"
    path.write_text('---\ntitle: "Wrong date"\npublishedDateTime: 2021-05-01T00:00:00Z\n'
                    'webUrl: "https://x.example/a"\n---\n')
    location = new_catalog()
    _import(location, [path], 1)
    path.write_text('---\ntitle: "Right date"\npublishedDateTime: 2021-04-01T00:00:00Z\n'
                    'webUrl: "https://x.example/a"\n---\n')
    counts, *_ = _import(location, [path], 1)
    assert counts.updated == 1
    with Catalog(location, readonly=True) as catalog:
        story = catalog.story(catalog.story_id_for("https://x.example/a"))
        assert (story.title, story.published) == ("Right date", "2021-04-01T00:00:00Z")
        assert catalog.check() == []


def test_removed_stories_leave_and_stay_out(tmp_path, new_catalog):
    from conftest import SEEDS

    location = new_catalog()
    _import(location, [SEEDS], 1)
    fox = ("https://www-foxnews-com.cdn.ampproject.org/c/s/www.foxnews.com/us/new-facial-"
           "recognition-app-promises-to-solve-crimes-critics-say-its-the-end-of-privacy.amp")
    with Catalog(location, readonly=True) as catalog:
        before = catalog.stats()
        fox_id = catalog.story_id_for(fox)
        assert fox_id is not None
        cited = catalog.db.execute("SELECT COUNT(*) FROM links WHERE source_id = ? OR"
                                   " target_id = ?", (fox_id, fox_id)).fetchone()[0]
        seq = catalog.max_seq()
    result = run_cli("remove", fox, "https://nowhere.example/x", catalog=location)
    assert result.returncode == 1 and "removed" in result.stdout
    assert "no story" in result.stderr and "Traceback" not in result.stderr
    with Catalog(location, readonly=True) as catalog:
        after = catalog.stats()
        assert catalog.story_id_for(fox) is None and catalog.story(fox_id) is None
        assert after["stories"] == before["stories"] - 1
        assert after["links"] == before["links"] - cited
        assert catalog.max_seq() > seq  # serving caches start afresh
        assert catalog.check() == []
    counts, *_ = _import(location, [SEEDS], 1)  # the nightly re-import of the same tree
    (tmp_path / "again.md").write_text(  # and a new file that lists it
        '---\ntitle: "Lists the removed story"\nwebUrl: "https://x.example/lister"\n'
        f'related:\n  - title: "Removed"\n    webUrl: "{fox}"\n---\n')
    _import(location, [tmp_path / "again.md"], 1)
    with Catalog(location, readonly=True) as catalog:
        assert catalog.story_id_for(fox) is None
        lister = catalog.story_id_for("https://x.example/lister")
        assert catalog.curated(lister) == [] and catalog.check() == []


def test_a_value_the_database_refuses_is_a_named_skip_alone_or_in_a_batch(tmp_path,
                                                                            new_catalog):
    """PostgreSQL refuses a NUL in text (SQLite stores it): on either engine the file is
    imported or named, never the end of the import, whether it is written alone or in a
    batch with good files."""
    bad = tmp_path / "nul.md"
    bad.write_text('---\ntitle: "A title with a NUL\\0 in it"\n'
                   'webUrl: "https://nul.example/a"\n---\n')
    good = tmp_path / "good.md"
    good.write_text('---\ntitle: "Good"\nwebUrl: "https://good.example/ok"\n---\n')
    for paths in ([bad], [bad, good]):
        location = new_catalog()
        counts, errors, _, stats = _import(location, paths, 1)
        assert counts.imported + counts.skipped == len(paths)
        if errors:
            assert list(errors) == [str(bad)] and "cannot be stored" in errors[str(bad)]
        assert stats["stories_with_file"] == len(paths) - len(errors)
        with Catalog(location, readonly=True) as catalog:
            assert catalog.check() == []


def test_bad_files_spread_through_3000_corpus_files(corpus, tmp_path):
    """Issue 13's acceptance, as a user runs it: 3,000 real files (linked in place, not
    copied) with one file of every bad kind spread through the tree, imported by the CLI
    (the parser pool): every good file in, every bad one named with its reason, exit 1, the
    catalog checks sound, and a rerun changes nothing."""
    good = sorted(iter_files([corpus / "azure"]))[:3000]
    tree = tmp_path / "tree"
    for i, path in enumerate(good):
        link = tree / f"part{i % 3}" / f"{i:05d}_{path.name}"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    expected = {}
    for part, prefix in (("part0", "00100_"), ("part1", "00999_"), ("part2", "02500_")):
        expected.update(write_bad_files(tree / part, prefix=f"{prefix}bad_"))
    location = str(tmp_path / "catalog.sqlite3")
    first = run_cli("import", "-q", str(tree), catalog=location)
    assert first.returncode == 1
    named = dict(line.split(": ", 1) for line in first.stderr.splitlines() if ": " in line)
    for path, words in expected.items():
        assert words in named.get(path, ""), (path, named.get(path))
    assert f"skipped {len(expected)}" in first.stdout
    stats = json.loads(run_cli("stats", "--json", catalog=location).stdout)
    clean = str(tmp_path / "clean.sqlite3")  # the same good files, without the bad ones
    assert run_cli("import", "-q", *map(str, good), catalog=clean).returncode == 0
    assert json.loads(run_cli("stats", "--json", catalog=clean).stdout) == stats
    assert run_cli("check", catalog=location).returncode == 0
    again = run_cli("import", "-q", str(tree), catalog=location)
    assert again.returncode == 1 and "imported 0, updated 0" in again.stdout
    assert json.loads(run_cli("stats", "--json", catalog=location).stdout) == stats
