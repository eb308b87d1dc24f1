"""The editors' loop in a real browser (Debian's Chromium, JavaScript off: plain forms):
sign in, pin, block, accept, reject, undo, retract, each visible at once on the page and in
GET /v1/related; forms without their CSRF token, and actions signed out, are refused.

Screenshots go to the test's temporary folder; with SCREENSHOTS=docs/screenshots they are
also written there (the copies the README shows).
"""

from __future__ import annotations

import re
import shutil
import urllib.parse

import pytest
from conftest import run_cli
from test_browser import browser, shoot  # noqa: F401 - the browser fixture, shared
from test_live import fetch, start_server, stop_server
from test_service import FOX, SEED

PASSWORD = "correct horse battery"


@pytest.fixture
def service(seeds_catalog, seeds_models, tmp_path):
    catalog = tmp_path / "catalog.sqlite3"
    shutil.copy(seeds_catalog, catalog)
    added = run_cli("user", "add", "ada", "--password-stdin", catalog=catalog,
                    input=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    base, proc = start_server({"RECOMMENDER_CATALOG": str(catalog),
                               "RECOMMENDER_MODELS": str(seeds_models),
                               "RECOMMENDER_INSTANCE": str(tmp_path / "instance")},
                              tmp_path / "serve.log", workers=2)
    yield base
    stop_server(proc)


def _api(base: str, url: str = FOX) -> list[dict]:
    status, body = fetch(base, "/v1/related?k=10&url=" + urllib.parse.quote(url, safe=""))
    assert status == 200, body
    return body["related"]


def _titles(page) -> list[str]:
    return page.locator("#results > li > div > a").all_inner_texts()


def _act(page, title: str, action: str, position: int | None = None) -> None:
    form = page.get_by_role("form", name=f"Judge {title}")
    if position is not None:
        form.get_by_label("Pin at position").fill(str(position))
    form.get_by_role("button", name=action, exact=True).click()


def test_sign_in_pin_block_accept_reject_undo_retract(service, browser, tmp_path):  # noqa: F811
    base = service
    context = browser.new_context(viewport={"width": 1200, "height": 1600},
                                  java_script_enabled=False)
    page = context.new_page()
    preview = f"{base}/?k=10&url=" + urllib.parse.quote(FOX, safe="")

    page.goto(preview)
    assert page.get_by_role("button", name="Pin").count() == 0  # reading needs no account
    page.get_by_role("link", name="Sign in").first.click()
    page.get_by_label("Editor name").fill("ada")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert "wrong password" in page.get_by_role("alert").inner_text()
    page.get_by_label("Editor name").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.url == preview and "Signed in as ada" in page.inner_text("header")

    before = _titles(page)
    assert before == [r["title"] for r in _api(base)] and len(before) >= 6

    # Pin the sixth story first: at once on the page and in the API.
    _act(page, before[5], "Pin", position=1)
    assert _titles(page)[0] == before[5]
    assert "pinned" in page.locator("#results > li").first.inner_text()
    served = _api(base)
    assert served[0]["title"] == before[5] and served[0]["pinned"]
    assert served[0]["reasons"][0] == "pinned by an editor"

    # Block the (now) second story: gone from the list, shown struck through.
    blocked = _titles(page)[1]
    _act(page, blocked, "Block")
    assert blocked not in _titles(page)
    assert blocked in page.locator("#hidden del").all_inner_texts()
    assert blocked not in [r["title"] for r in _api(base)]

    # Accept one (it stays), reject another (it goes).
    accepted, rejected = _titles(page)[2], _titles(page)[3]
    _act(page, accepted, "Accept")
    _act(page, rejected, "Reject")
    assert accepted in _titles(page) and rejected not in _titles(page)
    assert rejected not in [r["title"] for r in _api(base)]
    history = page.locator("#history tbody tr").all_inner_texts()
    assert [row.split("\t")[0].strip() for row in history][:4] == [
        "reject", "accept", "block", "pin at 1"]
    assert all("ada" in row for row in history)

    # Undo the block: the story comes back, the history says who undid it.
    page.get_by_role("button", name=f"Undo block of {blocked}").click()
    assert blocked in _titles(page)
    assert blocked in [r["title"] for r in _api(base)]
    assert "undone by ada" in page.locator("#history").inner_text()

    # Retract a story: gone from this article's list and from every other.
    others = [r["title"] for r in _api(base, SEED)]
    victim = next(t for t in _titles(page) if t in others and t != before[5])
    _act(page, victim, "Retract everywhere")
    assert victim not in _titles(page)
    assert victim not in [r["title"] for r in _api(base)]
    assert victim not in [r["title"] for r in _api(base, SEED)]
    shoot(page, tmp_path, "editing")
    page.locator("#judged-heading").scroll_into_view_if_needed()
    shoot(page, tmp_path, "editing-history")

    # A form posted without its CSRF token is refused, signed in or not.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    form = {"article": page.locator("input[name=article]").first.get_attribute("value"),
            "story": page.locator("input[name=story]").nth(1).get_attribute("value"),
            "action": "block"}
    refused = page.request.post(f"{base}/judge", form=form, max_redirects=0)
    assert refused.status == 400 and "CSRF" in refused.json()["message"]
    titles = _titles(page)
    page.reload()
    assert _titles(page) == titles

    # Signed out: no actions on the page, and a post (token and all) is refused.
    page.get_by_role("button", name="Sign out").click()
    page.goto(preview)
    assert page.get_by_role("button", name="Pin").count() == 0
    page.goto(f"{base}/login")  # a signed-out session's token, from the sign-in form
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    signed_out = page.request.post(f"{base}/judge", form={**form, "csrf_token": token},
                                   max_redirects=0)
    assert signed_out.status == 401 and "sign in" in signed_out.json()["message"]
    assert [r["title"] for r in _api(base)] == titles
    context.close()


def test_a_judgement_changes_the_answers_tag(seeds_catalog, seeds_models, tmp_path):
    """An editor's action is a new catalog state: the answer's ETag changes, so a CDN or
    browser holding the old answer gets the new one on its next revalidation."""
    from recommender import judgements
    from recommender.catalog import Catalog
    from service import create_app

    catalog = tmp_path / "catalog.sqlite3"
    shutil.copy(seeds_catalog, catalog)
    client = create_app({"CATALOG": str(catalog), "MODELS": str(seeds_models),
                         "INSTANCE": str(tmp_path / "instance"),
                         "TESTING": True}).test_client()
    url = "/v1/related?k=3&url=" + FOX
    first = client.get(url)
    tag, top = first.headers["ETag"], first.get_json()["related"][0]
    with Catalog(catalog) as cat:
        judgement = judgements.record(cat, "block", cat.story_id_for(top["url"]), "ada",
                                      article=cat.story_id_for(FOX))
    blocked = client.get(url, headers={"If-None-Match": tag})
    assert blocked.status_code == 200 and blocked.headers["ETag"] != tag
    assert top["url"] not in [r["url"] for r in blocked.get_json()["related"]]
    with Catalog(catalog) as cat:
        judgements.undo(cat, judgement, "ada")
    undone = client.get(url, headers={"If-None-Match": blocked.headers["ETag"]})
    assert undone.status_code == 200 and undone.get_json()["related"][0] == top


def test_editor_accounts_from_the_command_line(seeds_catalog, tmp_path):
    catalog = tmp_path / "catalog.sqlite3"
    shutil.copy(seeds_catalog, catalog)
    short = run_cli("user", "add", "bo", "--password-stdin", catalog=catalog, input="short\n")
    assert short.returncode == 1 and short.stderr == \
        "error: a password has at least 10 characters\n"
    assert run_cli("user", "add", "bo", "--password-stdin", catalog=catalog,
                   input=PASSWORD + "\n").returncode == 0
    assert PASSWORD not in catalog.read_bytes().decode("latin-1")
    assert re.match(r"bo\tsince \d{4}-", run_cli("user", "list", catalog=catalog).stdout)
    again = run_cli("user", "add", "bo", "--password-stdin", catalog=catalog,
                    input=PASSWORD + "\n")
    assert again.returncode == 1 and "exists" in again.stderr
    assert run_cli("user", "remove", "bo", catalog=catalog).returncode == 0
    assert run_cli("user", "list", catalog=catalog).stdout == ""


def test_judgements_are_kept_with_editor_and_time_on_both_engines(catalog_location):
    from conftest import SEEDS

    from recommender import judgements
    from recommender.catalog import Catalog
    from recommender.importer import import_paths

    with Catalog(catalog_location) as cat:
        import_paths(cat, [SEEDS], on_error=lambda p, r: pytest.fail(r))
        article, seed = cat.story_id_for(FOX), cat.story_id_for(SEED)
        others = [i for i in range(1, 12) if i not in (article, seed)][:3]
        seq = cat.identity()[1]
        pin = judgements.record(cat, "pin", others[0], "ada", article=article, position=2)
        judgements.record(cat, "block", others[1], "bo", article=article)
        judgements.record(cat, "retract", others[2], "ada")
        assert cat.identity()[1] == seq + 3  # each one a new catalog state
        with pytest.raises(judgements.JudgementError, match="itself"):
            judgements.record(cat, "pin", article, "ada", article=article)
        with pytest.raises(judgements.JudgementError, match="no such story"):
            judgements.record(cat, "block", 10**9, "ada", article=article)
    with Catalog(catalog_location, readonly=True) as cat:  # what a server reads
        applied = judgements.applied(cat, article)
        assert applied.pinned == [others[0]] and applied.positions == {others[0]: 2}
        assert applied.hidden == {others[1], others[2]}
        assert judgements.applied(cat, seed).hidden == {others[2]}  # retracted everywhere
        assert judgements.applied(cat, None).hidden == {others[2]}  # new articles too
        assert [j.editor for j in judgements.audit(cat, article=article)] == ["bo", "ada"]
        assert [j.action for j in judgements.audit(cat, editor="ada")] == ["retract", "pin"]
    with Catalog(catalog_location) as cat:
        judgements.undo(cat, pin, "bo")
        with pytest.raises(judgements.JudgementError, match="undone already"):
            judgements.undo(cat, pin, "bo")
        assert judgements.applied(cat, article).pinned == []
        undone = judgements.audit(cat, editor="bo")
        assert undone[-1].id == pin and undone[-1].undone_by == "bo"


KILLED_WRITER = """
import itertools, sys
from recommender import judgements
from recommender.catalog import Catalog
with Catalog(sys.argv[1]) as cat:
    ids = [r[0] for r in cat.db.execute("SELECT id FROM stories ORDER BY id")]
    article, made = ids[0], []
    for n in itertools.count():
        story = ids[1 + n % (len(ids) - 1)]
        if n % 7 == 6 and made:
            judgements.undo(cat, made.pop(0), "ada")
        else:
            made.append(judgements.record(cat, ("pin", "block", "accept", "reject")[n % 4],
                                          story, "ada", article=article, position=1 + n % 5))
        if n == 20:
            print("writing", flush=True)
"""


def test_judgements_survive_a_sigkill_mid_write_and_a_restart(catalog_location, tmp_path):
    """A process killed while it records and undoes judgements leaves a catalog that checks
    clean, with each judgement whole (recorded with its new catalog state, or not at all)."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT, SEEDS

    from recommender import judgements
    from recommender.catalog import Catalog
    from recommender.importer import import_paths

    with Catalog(catalog_location) as cat:
        import_paths(cat, [SEEDS], on_error=lambda p, r: pytest.fail(r))
        seq = cat.identity()[1]
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, catalog_location], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with Catalog(catalog_location) as cat:  # a restart: opened again, as a server would
        assert cat.check() == []
        rows = cat.db.execute("SELECT article_id, story_id, action, editor, created, undone,"
                              " undone_by FROM judgements").fetchall()
        assert len(rows) > 20
        assert all(r[0] is not None and r[1] and r[2] and r[3] == "ada" and r[4]
                   and (r[5] is None) == (r[6] is None) for r in rows)
        writes = len(rows) + sum(1 for r in rows if r[5] is not None)
        assert cat.identity()[1] == seq + writes  # each write, whole, with its own state
        article = rows[0][0]
        live = judgements.applied(cat, article)
        assert live  # and serving reads them as ever


def _lists(cat) -> dict[int, tuple[list[int], list[int]]]:
    """Every story's curated list and editorial list (as served before the model's picks)."""
    from recommender.export import editorial_list

    ids = [r[0] for r in cat.db.execute("SELECT id FROM stories ORDER BY id")]
    return {i: (cat.curated(i), editorial_list(cat, i)) for i in ids}


def test_export_round_trip_changes_nothing_and_judgements_survive_a_retrain(
        catalog_location, tmp_path):
    """Editors' lists go back to the CMS as seed-format files (or JSON); importing them
    back changes no count and no list, on both engines. A retrain keeps serving them."""
    import json

    import yaml
    from conftest import SEEDS

    from recommender import judgements
    from recommender.catalog import Catalog
    from recommender.frontmatter import parse_file
    from recommender.importer import import_paths
    from recommender.recommend import Filters, Recommender
    from recommender.training import train

    with Catalog(catalog_location) as cat:
        import_paths(cat, [SEEDS], on_error=lambda p, r: pytest.fail(r))
        article = cat.db.execute("SELECT source_id FROM links GROUP BY source_id"
                                 " ORDER BY COUNT(*) DESC, source_id LIMIT 1").fetchone()[0]
        curated, url = cat.curated(article), cat.story(article).url
        assert len(curated) >= 5
        outside = [r[0] for r in cat.db.execute(
            "SELECT id FROM stories WHERE has_file = 0 ORDER BY id")
            if r[0] not in curated][:3]
        judgements.record(cat, "pin", outside[0], "ada", article=article, position=2)
        judgements.record(cat, "block", curated[0], "ada", article=article)
        judgements.record(cat, "retract", curated[1], "bo")  # on other lists too, maybe
        undone = judgements.record(cat, "reject", curated[2], "bo", article=article)
        judgements.undo(cat, undone, "bo")
        # An article known only from lists, which an editor gave a list of its own.
        judgements.record(cat, "pin", outside[2], "ada", article=outside[1])
        expected = [curated[2], outside[0], *curated[3:]]
        assert _lists(cat)[article][1] == expected
        before, lists = cat.stats(), _lists(cat)

    out = tmp_path / "export"
    done = run_cli("export", str(out), catalog=catalog_location)
    assert done.returncode == 0, done.stderr
    files = sorted(out.iterdir())
    assert done.stdout == f"exported {len(files)} articles to {out}\n" and len(files) >= 2
    exported = {parse_file(f).item.key: parse_file(f) for f in files}
    with Catalog(catalog_location) as cat:
        mine = exported[cat.story(article).key]
        assert [cat.story_id_for(r.urls["webUrl"]) for r in mine.related] == expected
        assert [r.title for r in mine.related] == [cat.story(s).title for s in expected]
        assert cat.story(outside[1]).key in exported
    front = yaml.safe_load(files[0].read_text().split("---\n")[1])
    assert set(front) >= {"title", "webUrl", "publishedDateTime", "related"}

    again = run_cli("import", str(out), catalog=catalog_location)
    assert again.returncode == 0 and again.stdout.startswith(
        f"imported 0, updated 0, unchanged {len(files)},"), again.stdout
    with Catalog(catalog_location) as cat:
        assert cat.stats() == before and _lists(cat) == lists

    as_json = run_cli("export", str(tmp_path / "json"), "--format", "json",
                      catalog=catalog_location)
    assert as_json.returncode == 0
    doc = json.loads((tmp_path / "json" / files[0].with_suffix(".json").name).read_text())
    assert doc == front
    later = run_cli("export", str(tmp_path / "later"), "--since", "2999-01-01",
                    catalog=catalog_location)
    assert later.stdout == f"exported 0 articles to {tmp_path / 'later'}\n"
    bad = run_cli("export", str(tmp_path / "bad"), "--since", "yesterday",
                  catalog=catalog_location)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "since" in bad.stderr
    (tmp_path / "a-file").write_text("")
    nowhere = run_cli("export", str(tmp_path / "a-file" / "out"), catalog=catalog_location)
    assert nowhere.returncode == 2 and nowhere.stderr.startswith("error: cannot write into ")
    assert nowhere.stderr.count("\n") == 1

    # A retrain reads the judgements as training labels and leaves them in force.
    models = tmp_path / "models"
    with Catalog(catalog_location, readonly=True) as cat:
        train(cat, models)
    rec = Recommender(catalog_location, models)
    answer = rec.by_url(url, Filters.parse({"k": "20"}.get))
    rec.close()
    urls = [r.story.url for r in answer.related]
    with Catalog(catalog_location, readonly=True) as cat:
        assert [cat.story_id_for(u) for u in urls[:len(expected)]] == expected
        assert cat.story(curated[0]).url not in urls and cat.story(curated[1]).url not in urls


TRICKY_TITLES = ["yes", "null", "- item", "key: value # not a comment", "&a *b !tag %x @y",
                 "'single' \"double\" `back`", "日本語 — ünïcödé ✓", "2020-01-01", "123",
                 "---", "..."]


def test_exported_files_read_back_the_same_whatever_the_text(tmp_path):
    """What YAML would read as another type, a marker, or a fold comes back as written."""
    import json

    from recommender import judgements
    from recommender.catalog import Catalog
    from recommender.export import export
    from recommender.frontmatter import parse_file
    from recommender.importer import import_paths

    files = tmp_path / "files"
    files.mkdir()
    long_excerpt = " ".join(f"word{i}" for i in range(12_000))  # past any line width
    for i, title in enumerate(TRICKY_TITLES):
        (files / f"{i}.md").write_text(
            "---\n" + json.dumps({  # JSON is YAML: every value here is a string as written
                "title": title, "excerpt": long_excerpt if i == 0 else f"about {title}",
                "publishedDateTime": f"2021-03-{i + 1:02d}T08:00:00Z",
                "webUrl": f"https://news.example/{i}?a=1&b=2",
                "provider": {"name": title}, "topics": [title]}, ensure_ascii=False)
            + "\n---\n", encoding="utf-8")
    catalog = tmp_path / "catalog.sqlite3"
    with Catalog(catalog) as cat:
        counts = import_paths(cat, [files], on_error=lambda p, r: pytest.fail(f"{p}: {r}"))
        assert counts.imported == len(TRICKY_TITLES)
        ids = [cat.story_id_for(f"https://news.example/{i}?a=1&b=2")
               for i in range(len(TRICKY_TITLES))]
        for article in ids:
            for story in ids:
                if story != article:
                    judgements.record(cat, "pin", story, "ada", article=article)
        written = export(cat, tmp_path / "out")
        assert len(written) == len(TRICKY_TITLES)
        for path in written:
            exported = parse_file(path)
            story = cat.story(cat.story_id_for(exported.item.urls["webUrl"]))
            assert (exported.item.title, exported.item.excerpt, exported.item.topics,
                    exported.item.provider_name) == (story.title, story.excerpt, story.topics,
                                                     story.provider_name)
            assert len(exported.related) == len(TRICKY_TITLES) - 1
        before = cat.stats()
        again = import_paths(cat, [tmp_path / "out"], on_error=lambda p, r: pytest.fail(r))
        assert again.unchanged == len(TRICKY_TITLES) and cat.stats() == before
