"""The embeddable widget in a real browser (Debian's Chromium): a news page on one origin
embeds /widget.js from the service on another, with an API key (so the browser sends a CORS
preflight first); and the same page with the service stopped.

Screenshots go to the test's temporary folder; with SCREENSHOTS=docs/screenshots they are
also written there (the copies the README shows).
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest
from conftest import free_port, run_cli
from test_browser import browser, shoot  # noqa: F401 - the browser fixture, shared
from test_live import start_server, stop_server
from test_service import SEED

PICTURE = ('<svg xmlns="http://www.w3.org/2000/svg" width="96" height="64">'
           '<rect width="96" height="64" fill="#7a9cc6"/></svg>')
WIDGET = Path(__file__).resolve().parent.parent / "service" / "static" / "widget.js"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A news article</title>
<link rel="canonical" href="{article}">
<style>body {{ font-family: sans-serif; max-width: 640px; margin: 2em auto; }}</style></head>
<body><h1>Privacy groups call for a day of action</h1>
<p id="before">The article's last paragraph.</p>
{tag}
<p id="after">The page goes on below the list.</p>
</body></html>
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def news_site(tmp_path):
    """A second local server, on another port (so another origin), serving the article page."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _page(root: Path, name: str, tag: str) -> str:
    (root / name).write_text(PAGE.format(article=SEED, tag=tag))
    return name


def test_a_page_on_another_origin_shows_the_related_stories(
        seeds_catalog, seeds_models, tmp_path, news_site, browser):  # noqa: F811
    root, origin = news_site
    catalog = tmp_path / "catalog.sqlite3"
    shutil.copy(seeds_catalog, catalog)
    key = run_cli("apikey", "add", "news-site", catalog=catalog).stdout.strip()
    log = tmp_path / "serve.log"
    service, proc = start_server({"RECOMMENDER_CATALOG": str(catalog),
                                  "RECOMMENDER_MODELS": str(seeds_models),
                                  "RECOMMENDER_API_KEYS": "true"}, log, workers=1)
    try:
        expected = json.loads(run_cli("recommend", SEED, "-k", "5", "--json", catalog=catalog,
                                      env={"RECOMMENDER_MODELS": str(seeds_models)}).stdout)
        page_name = _page(root, "article.html", f'<script src="{service}/widget.js" async '
                          f'data-k="5" data-api-key="{key}"></script>')
        context = browser.new_context(viewport={"width": 900, "height": 1000})
        page = context.new_page()
        # The widget's own messages and script errors.
        warnings: list[str] = []
        page.on("console", lambda m: warnings.append(m.text) if "related-stories" in m.text
                else None)
        page.on("pageerror", lambda e: warnings.append(str(e)))
        page.goto(f"{origin}/{page_name}")
        items = page.locator(".rs-widget .rs-item")
        items.nth(4).wait_for(timeout=20000)
        assert items.count() == 5
        titles = items.locator(".rs-link").all_inner_texts()
        assert titles == [r["title"] for r in expected["related"]]
        hrefs = items.locator(".rs-link").evaluate_all("links => links.map(a => a.href)")
        assert hrefs == [r["url"] for r in expected["related"]]
        assert all(h.startswith("https://") for h in hrefs)
        first = expected["related"][0]
        assert first["provider"] in items.first.locator(".rs-meta").inner_text()
        assert items.first.locator("time").get_attribute("datetime") == \
            first["publishedDateTime"]
        # Accessible: a labelled landmark, in the page's flow where the tag stands.
        widget = page.locator("aside.rs-widget")
        assert widget.get_attribute("aria-labelledby") == \
            page.locator(".rs-heading").get_attribute("id")
        assert page.get_by_role("complementary", name="Related stories").count() == 1
        assert page.evaluate("document.querySelector('script[data-k]').nextElementSibling"
                             ".className") == "rs-widget"
        assert warnings == []
        context.close()
        served = log.read_text()
        # The key's header made the browser ask first: the preflight, then the GET.
        preflights = [line for line in served.splitlines()
                      if '"OPTIONS /v1/related?k=5' in line]
        gets = [line for line in served.splitlines() if '"GET /v1/related?k=5' in line]
        assert len(preflights) == 1 and '" 204 ' in preflights[0], served
        assert len(gets) == 1 and '" 200 ' in gets[0], served

        # Thumbnails: the stories' images live on their sites, out of reach here, so any
        # request off this machine gets a stand-in picture. (With requests intercepted,
        # Playwright answers preflights itself: hence a second visit.)
        context = browser.new_context(viewport={"width": 900, "height": 1000})
        context.route(lambda url: not url.startswith("http://127.0.0.1"),
                      lambda route: route.fulfill(content_type="image/svg+xml", body=PICTURE))
        page = context.new_page()
        page.goto(f"{origin}/{page_name}")
        page.locator(".rs-widget .rs-item").nth(4).wait_for(timeout=20000)
        images = page.locator(".rs-image")
        images.last.evaluate("img => img.decode()")
        assert images.count() == sum(1 for r in expected["related"] if r["image"]) > 0
        assert images.evaluate_all("imgs => imgs.map(i => [i.getAttribute('alt'), "
                                   "i.naturalWidth > 0])") == [["", True]] * images.count()
        shoot(page, tmp_path, "widget")
        context.close()
    finally:
        stop_server(proc)


def test_with_the_service_stopped_the_page_shows_nothing_and_logs_one_line(
        news_site, browser):  # noqa: F811
    root, origin = news_site
    stopped = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    # The script from the stopped service, and a copy the site serves itself (as a CDN
    # would) whose API calls go to the stopped service.
    (root / "widget.js").write_text(WIDGET.read_text())
    pages = {"script unreachable": _page(root, "with.html",
                                         f'<script src="{stopped}/widget.js"></script>'),
             "API unreachable": _page(root, "copy.html", '<script src="widget.js" '
                                      f'data-service="{stopped}" data-k="5"></script>')}
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    plain = context.new_page()
    plain.goto(f"{origin}/{_page(root, 'without.html', '')}")
    height = plain.evaluate("document.body.scrollHeight")
    after = plain.locator("#after").bounding_box()
    for case, name in pages.items():
        page = context.new_page()
        messages: list[str] = []
        page.on("console", lambda m, out=messages: out.append(m.text))
        page.on("pageerror", lambda e, out=messages: out.append(f"page error: {e}"))
        page.goto(f"{origin}/{name}")
        page.wait_for_load_state("networkidle")
        assert page.locator(".rs-widget").count() == 0, case
        assert page.evaluate("document.body.scrollHeight") == height, case
        assert page.locator("#after").bounding_box() == after, case
        assert not [m for m in messages if m.startswith("page error")], case
        ours = [m for m in messages if "related-stories" in m]
        assert len(ours) == (1 if case == "API unreachable" else 0), (case, messages)
        if ours:
            assert f"no list for {SEED}" in ours[0]
    context.close()


def test_the_widget_script_is_cacheable_javascript(client):
    response = client.get("/widget.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert "public, max-age=3600" in response.headers["Cache-Control"]
    assert response.data == WIDGET.read_bytes()
    # Titles and URLs reach the page as text and checked links, never as markup.
    assert b"textContent" in response.data and b"innerHTML" not in response.data

