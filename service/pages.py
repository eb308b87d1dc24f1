"""Pages for editors: preview related stories, compare with the curated lists, find stories.

Server-rendered (Jinja escapes every catalog string), plain forms that work without
JavaScript, over the same Recommender as the JSON API.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, current_app, render_template, request, send_file

from recommender import judgements
from recommender.artifact import ArtifactError
from recommender.catalog import Catalog, CatalogError
from recommender.frontmatter import BadFile
from recommender.recommend import MAX_TOPICS, Filters, NotFound

from .core import recommender

bp = Blueprint("pages", __name__)


def _report_dir() -> Path:
    return Path(current_app.config["INSTANCE"]) / "evaluation"


@bp.get("/")
def preview():
    args = request.args
    form = {name: args.get(name, "") for name in
            ("url", "title", "excerpt", "published", "article_provider", "topics", "since",
             "until", "provider", "curated")}
    form["k"] = args.get("k", "10")
    form["dedupe"] = args.get("dedupe", "true" if not args else "false") == "true"
    answer, error, status, judged = None, None, 200, None
    if form["url"].strip() or form["title"].strip():
        try:
            filters = Filters.parse(
                {**form, "dedupe": "true" if form["dedupe"] else "false"}.get)
            rec = recommender()
            if form["url"].strip():
                answer = rec.by_url(form["url"].strip(), filters)
                judged = _judged(rec.catalog, form["url"].strip())
            else:
                topics = [t.strip() for t in form["topics"].split(",") if t.strip()]
                answer = rec.for_article(form["title"], form["excerpt"],
                                         form["published"].strip() or None, None, filters,
                                         provider=form["article_provider"].strip() or None,
                                         topics=topics[:MAX_TOPICS])
        except NotFound as exc:
            error, status = str(exc), 404
        except (ValueError, BadFile) as exc:
            error, status = str(exc), 400
        except (ArtifactError, CatalogError) as exc:
            error, status = str(exc), 503
    return render_template("preview.html", form=form, answer=answer, error=error,
                           judged=judged, here=request.full_path), status


def _judged(catalog: Catalog, url: str) -> dict | None:
    """The article's judgements for the editors' view: its id (the forms name it), what was
    judged and by whom (undone ones too), and the stories kept out of its list."""
    article = catalog.story_id_for(url)
    if article is None:
        return None
    history = sorted(judgements.audit(catalog, article=article)
                     + judgements.retractions(catalog), key=lambda j: -j.id)
    hidden = judgements.applied(catalog, article).hidden
    stories = catalog.stories(sorted({j.story_id for j in history} | hidden))
    return {"article": article, "history": history, "stories": stories,
            "hidden": [stories[i] for i in sorted(hidden) if i in stories]}


@bp.get("/stories")
def stories():
    """Search (whole words of titles and excerpts, or a URL), paged with the true count; an
    empty query shows the to-do list: the latest imports, the stories without a list."""
    q = request.args.get("q", "")
    page = request.args.get("page", "1")
    page = int(page) if page.isascii() and page.isdigit() and 0 < int(page) <= 1000 else 1
    found, total, todo, error = [], 0, None, None
    try:
        catalog = recommender().catalog
        if q.strip():
            total, found = catalog.search(q, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        else:
            todo = catalog.to_do()
    except (ArtifactError, CatalogError) as exc:
        error = str(exc)
    return render_template("stories.html", q=q, stories=found, total=total, page=page,
                           pages=-(-total // PAGE_SIZE), todo=todo, error=error)


PAGE_SIZE = 50  # stories per page of search results


@bp.get("/evaluation")
def evaluation():
    path = _report_dir() / "report.json"
    if not path.exists():
        return render_template("evaluation.html", report=None), 404
    report = json.loads(path.read_text())
    q = request.args.get("q", "").strip().lower()
    sort = request.args.get("sort", "recall_asc")
    ids = {i for row in report["queries"] for i in [row["id"], *row["curated"], *row["ours"]]}
    try:
        stories = recommender().catalog.stories(sorted(ids))
    except CatalogError as exc:
        return render_template("evaluation.html", report=None, error=str(exc)), 503
    rows = []
    for row in report["queries"]:
        query = stories.get(row["id"])
        if query is None or (q and q not in query.title.lower()):
            continue
        curated = set(row["curated"])
        rows.append({
            "query": query, "recall": row["recall@10"],
            "ours": [(stories.get(i), i in curated) for i in row["ours"]],
            "misses": [stories.get(i) for i in row["curated"] if i not in set(row["ours"])],
            "n_curated": len(curated),
        })
    rows.sort(key=lambda r: (r["recall"], r["query"].published or ""),
              reverse=(sort == "recall_desc"))
    return render_template("evaluation.html", report=report, rows=rows[:100],
                           total=len(rows), q=request.args.get("q", ""), sort=sort)


@bp.get("/evaluation/recall.png")
def recall_plot():
    path = _report_dir() / "recall.png"
    if not path.exists():
        return {"error": "not_found", "message": "no evaluation plot yet"}, 404
    return send_file(path.resolve(), mimetype="image/png")
