"""Editors sign in and out of the pages (a signed session cookie; the accounts are
recommender.editors'). Reading the pages needs no account; judging stories does."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for

from recommender import editors

from .core import recommender

bp = Blueprint("accounts", __name__)


def current_editor() -> str | None:
    """The signed-in editor, while the account exists."""
    name = session.get("editor")
    if name and editors.exists(recommender().catalog, name):
        return name
    return None


def local_target(target: str | None, default: str) -> str:
    """Where to go back to: a path on this site only (never another site's URL)."""
    if target and target.startswith("/") and not target.startswith("//") \
            and not urlsplit(target).netloc and "\\" not in target:
        return target
    return default


@bp.route("/login", methods=["GET", "POST"])
def login():
    target = local_target(request.values.get("next"), url_for("pages.preview"))
    error = None
    if request.method == "POST":
        name, password = request.form.get("name", ""), request.form.get("password", "")
        if editors.signs_in(recommender().catalog, name, password):
            session.clear()
            session["editor"] = name
            return redirect(target)
        error = "unknown editor or wrong password"
    status = 401 if error else 200
    return render_template("login.html", error=error, target=target), status


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("pages.preview"))
