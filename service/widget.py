"""The embeddable widget: /widget.js, one script tag on a news page (service/static)."""

from __future__ import annotations

from flask import Blueprint, current_app

bp = Blueprint("widget", __name__)
WIDGET_MAX_AGE = 3600  # a page's browsers and CDN may keep the script an hour


@bp.get("/widget.js")
def widget():
    response = current_app.send_static_file("widget.js")
    response.mimetype = "text/javascript"
    response.cache_control.public = True
    response.cache_control.max_age = WIDGET_MAX_AGE
    return response
