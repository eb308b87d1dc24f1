"""Editors' actions on an article's related stories: pin, block, accept, reject, retract, and
undo (recommender.judgements). Plain forms, each with its CSRF token, posted by a signed-in
editor; the answer changes at once, and the page goes back to where it was."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, request, url_for

from recommender import judgements
from recommender.catalog import Catalog

from .accounts import current_editor, local_target
from .errors import fail

bp = Blueprint("editing", __name__)


def _editor() -> str:
    name = current_editor()
    if name is None:
        fail(401, "sign in as an editor first")
    return name


def _number(name: str, required: bool = True) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw and not required:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        fail(400, f"{name} must be a whole number")
    return int(raw)


@bp.post("/judge")
def judge():
    editor = _editor()
    action = request.form.get("action", "")
    article = None if action == "retract" else _number("article")
    try:
        with Catalog(current_app.config["CATALOG"]) as catalog:
            story = _number("story", required=not request.form.get("story_url"))
            if story is None:  # a story named by its URL (pinning one the list lacks)
                story = catalog.story_id_for(request.form["story_url"].strip())
                if story is None:
                    fail(400, "no story in the catalog for that URL")
            judgements.record(catalog, action, story, editor, article=article,
                              position=_number("position", False))
    except judgements.JudgementError as exc:
        fail(400, str(exc))
    return redirect(local_target(request.form.get("next"), url_for("pages.preview")))


@bp.post("/undo")
def undo():
    editor = _editor()
    try:
        with Catalog(current_app.config["CATALOG"]) as catalog:
            judgements.undo(catalog, _number("judgement"), editor)
    except judgements.JudgementError as exc:
        fail(400, str(exc))
    return redirect(local_target(request.form.get("next"), url_for("pages.preview")))
