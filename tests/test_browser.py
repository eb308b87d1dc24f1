"""The editor pages in a real browser: headless Chromium (Debian's) driven by Playwright.

Screenshots of each page go to the test's temporary folder; with SCREENSHOTS=docs/screenshots
they are also written there (the copies the README shows).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from badfiles import PARTLY_BAD
from conftest import ROOT, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EVIL = "<script>alert('pwned')</script> Evil headline about zebras"
LEGACY_URL = "javascript:alert(document.domain)//https://legacy.example/zebras"


@pytest.fixture(scope="module")
def site(synthetic_catalog, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run must install it")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from recommender.catalog import Catalog
    from recommender.evaluation import evaluate
    from recommender.importer import import_paths
    from recommender.report import write_report
    from recommender.training import train

    tmp = tmp_path_factory.mktemp("site")
    catalog = tmp / "catalog.sqlite3"
    shutil.copy(synthetic_catalog, catalog)
    evil = tmp / "evil.md"
    evil.write_text(f'---\ntitle: "{EVIL}"\nexcerpt: "zebras <b>bold</b>"\n'
                    'webUrl: "https://evil.example/zebras"\n---\n')
    # Every URL trick in an imported file (the importer drops them), and a story whose URL
    # and image reached the catalog before that rule (written here past the importer).
    (tmp / "tricks.md").write_text(PARTLY_BAD.replace("Good, with bad parts",
                                                      "Zebras with bad parts"))
    (tmp / "legacy.md").write_text('---\ntitle: "Zebras of old"\nexcerpt: "zebras stripes"\n'
                                   'webUrl: "https://legacy.example/zebras"\n---\n')
    with Catalog(catalog) as cat:
        import_paths(cat, [evil, tmp / "tricks.md", tmp / "legacy.md"],
                     on_error=lambda p, r: pytest.fail(r))
        with cat.transaction():
            cat.db.execute("UPDATE stories SET url = ?, image = ?, urls = ? WHERE key = ?",
                           (LEGACY_URL, "data:image/svg+xml,<svg onload=alert(1)>",
                            '{"webUrl": "JaVaScRiPt:alert(2)"}', "legacy.example/zebras"))
        snapshot = cat.snapshot()
    small = {"ranker__n_estimators": 60}
    with Catalog(catalog, readonly=True) as cat:
        train(cat, tmp / "models", params=small)
    write_report(evaluate(snapshot, 0.2, params=small), tmp / "instance" / "evaluation")
    port = free_port()
    env = {**os.environ, "RECOMMENDER_CATALOG": str(catalog),
           "RECOMMENDER_MODELS": str(tmp / "models"), "RECOMMENDER_INSTANCE": str(tmp / "instance")}
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - a pipe nobody reads would fill
    proc = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--port", str(port),
                             "--workers", "1"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(base + "/readyz", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.1)
    yield base, snapshot
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # The pages must work without JavaScript, so the browser runs with it off.
    context = browser.new_context(viewport={"width": 1200, "height": 900},
                                  java_script_enabled=False)
    pg = context.new_page()
    yield pg
    context.close()


def shoot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.read_bytes()[:4] == b"\x89PNG"
    target = os.environ.get("SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / f"{name}.png")


def test_preview_by_url(site, page, tmp_path):
    base, snapshot = site
    row = int(snapshot.has_file.nonzero()[0][3])
    url = "https://" + snapshot.keys[row] + "/amp"
    page.goto(base + "/")
    page.get_by_label("Article URL (any variant)").fill(url)
    page.get_by_label("How many").fill("5")
    page.get_by_role("button", name="Show related stories").click()
    assert snapshot.titles[row] in page.inner_text("h2")
    items = page.locator("#results > li")
    assert items.count() == 5
    assert "score" in items.first.inner_text()
    shoot(page, tmp_path, "preview")


def test_preview_by_pasted_text(site, page):
    base, snapshot = site
    page.goto(base + "/")
    page.get_by_label("…or paste a title").fill(snapshot.titles[10])
    page.get_by_label("and an excerpt").fill(snapshot.excerpts[10])
    page.get_by_role("button", name="Show related stories").click()
    assert page.locator("#results > li").count() == 10
    assert "Related to: " + snapshot.titles[10] in page.inner_text("h2")


def test_unknown_url_is_a_readable_error(site, page):
    base, _ = site
    page.goto(base + "/")
    page.get_by_label("Article URL (any variant)").fill("https://nowhere.example/x")
    page.get_by_role("button", name="Show related stories").click()
    assert "no story in the catalog" in page.get_by_role("alert").inner_text()


def test_evaluation_page_marks_hits_and_lists_misses(site, page, tmp_path):
    base, _ = site
    page.goto(base + "/evaluation")
    assert "recall@10" in page.inner_text("#metrics")
    assert page.locator("img.plot").evaluate("img => img.naturalWidth") > 0
    page.get_by_label("Sort by").select_option("recall_desc")
    page.get_by_role("button", name="Apply").click()
    first = page.locator("section.query").first
    assert first.locator("li.hit").count() >= 1
    assert page.locator("li.miss").count() >= 1
    shoot(page, tmp_path, "evaluation")
    first.scroll_into_view_if_needed()
    shoot(page, tmp_path, "evaluation-queries")


def test_story_search_opens_preview(site, page, tmp_path):
    base, snapshot = site
    words = " ".join(snapshot.titles[20].split()[:2])
    page.goto(base + "/stories")
    page.get_by_label("Title words or URL").fill(words)
    page.get_by_role("button", name="Search").click()
    links = page.locator("#stories a")
    assert links.count() >= 1
    shoot(page, tmp_path, "stories")
    links.first.click()
    assert page.locator("#results > li").count() >= 1


def test_script_in_a_title_renders_as_text(site, browser):
    base, _ = site
    context = browser.new_context(java_script_enabled=True)  # so a script *could* run
    pg = context.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(base + "/stories?q=zebras")
    assert EVIL in pg.inner_text("#stories")
    pg.locator("#stories a").first.click()
    assert EVIL in pg.inner_text("h2")
    assert dialogs == []
    context.close()


def test_phone_width_needs_no_sideways_scrolling(site, browser):
    base, _ = site
    context = browser.new_context(viewport={"width": 375, "height": 800})
    pg = context.new_page()
    pg.goto(base + "/?title=zebras")
    assert pg.evaluate("document.documentElement.scrollWidth") <= 375
    context.close()


def test_no_link_or_image_but_http_and_a_csp(site, browser):
    """Pages built from a catalog holding every URL trick emit only http(s) (or same-site)
    links and image sources, run no script, and say so in their CSP header."""
    base, _ = site
    context = browser.new_context(java_script_enabled=True)  # so a script *could* run
    pg = context.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path in ("/?url=https://evil.example/zebras&k=20", "/?title=zebras%20stripes&k=20",
                 "/stories?q=zebras"):
        response = pg.goto(base + path)
        assert "script-src" not in response.headers["content-security-policy"]
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "Zebras of old" in pg.content()  # the legacy story is shown, as text
        targets = pg.eval_on_selector_all(
            "[href], [src], [action], [formaction]",
            "els => els.flatMap(e => ['href', 'src', 'action', 'formaction']"
            ".map(a => e.getAttribute(a)).filter(v => v !== null))")
        assert targets
        for target in targets:
            assert target.startswith(("http://", "https://", "/", "?")), (path, target)
    assert dialogs == []
    context.close()


def test_the_widget_shows_markup_in_a_title_as_text(site, browser):
    """The embeddable widget (tests/test_widget.py has the rest) on this catalog of tricks:
    a title holding a script tag is text, and links and images are http(s) only."""
    base, _ = site
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.set_content('<!doctype html><html><body><p>An article.</p><script src="'
                     f'{base}/widget.js" data-url="https://legacy.example/zebras"></script>'
                     "</body></html>")
    page.locator(".rs-item").first.wait_for(timeout=20000)
    assert EVIL in page.locator(".rs-widget").inner_text()
    assert page.locator(".rs-widget script").count() == 0
    links = page.locator(".rs-widget a, .rs-widget img").evaluate_all(
        "nodes => nodes.map(n => n.href || n.src)")
    assert links and all(u.startswith(("http://", "https://")) for u in links)
    assert dialogs == []
    context.close()
