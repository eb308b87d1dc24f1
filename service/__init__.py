"""The HTTP service: a Flask application factory over the same core as the CLI.

Configuration: every setting of `recommender.settings` under its upper-case key, from the
mapping given to `create_app` (as in Flask's tutorial), else the environment, else the
default.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, g, request
from flask_compress import Compress
from flask_cors import CORS
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from recommender import settings
from recommender.recommend import GenerationCache
from recommender.urls import is_web_url

from .errors import fail

CORS_PREFLIGHT_SECONDS = 600  # how long a browser may reuse a preflight's answer

# Every response: no content sniffing. Pages (HTML) also: no script at all, images from the
# stories' own sites (http or https only), no framing, no full URL leaked as a referrer.
NOSNIFF = ("X-Content-Type-Options", "nosniff")
PAGE_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; img-src 'self' http: https:; "
     "style-src 'self' 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
     "frame-ancestors 'none'"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    config = dict(config or {})
    app = Flask(__name__, instance_path=str(settings.instance_dir(config).resolve()))
    app.config.from_mapping({s.key: settings.get(s.name, config=config)
                             for s in settings.SETTINGS.values()})
    app.config.from_mapping(config)
    app.config.update(CATALOG=settings.catalog_location(config=config),
                      MODELS=str(settings.models_dir(config=config)),
                      MAX_CONTENT_LENGTH=app.config["MAX_BODY"])
    app.json.sort_keys = False

    from . import accounts, api, core, editing, errors, health, openapi, pages, rate_limits, widget
    # First, so that its after_request runs last (Flask runs them in reverse): the line
    # logged is the response as sent (a preflight's 204, a 304, a 429).
    _install_request_log(app)
    core.init_app(app)
    if app.config["TRUSTED_PROXIES"]:  # the client address is the one they forwarded
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"])
    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(widget.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(editing.bp)
    _install_sessions(app, exempt=api.bp)
    _install_pages_port(app, pages={pages.bp.name, accounts.bp.name, editing.bp.name})
    errors.init_app(app)
    rate_limits.init_app(app)
    _install_cors(app)
    _install_compression(app)
    _install_security(app)
    return app


def _install_sessions(app: Flask, exempt: Blueprint) -> None:
    """Editors' sessions (signed cookies, HttpOnly, SameSite=Lax) and Flask-WTF's CSRF check
    on every form that changes state. The JSON API (`exempt`) takes no cookies: a page on
    another site cannot act through a browser's session there."""
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _kept_secret(Path(app.instance_path) / "secret_key")
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # as long as the session lasts
    csrf = CSRFProtect(app)
    csrf.exempt(exempt)

    @app.context_processor
    def signed_in() -> dict:
        from .accounts import current_editor

        return {"editor": current_editor()}


def _install_pages_port(app: Flask, pages: set[str]) -> None:
    """With `pages_port` set, the editors' pages (and their sign-in and actions) answer on
    that port only, which a deployment keeps off the public network, and the API's port
    answers the API alone; /healthz answers on both. gunicorn names the port a request
    came in on (SERVER_PORT: the listener's, whatever the Host header says)."""
    port = app.config["PAGES_PORT"]
    if not port:
        return

    @app.before_request
    def on_its_port():
        on_pages_port = request.environ.get("SERVER_PORT") == str(port)
        if request.endpoint == "health.healthz":
            return None
        if (request.blueprint in pages) != on_pages_port:
            fail(404, f"no such endpoint: {request.path}")
        return None


def _kept_secret(path: Path) -> str:
    """A random key made once per instance folder and kept there (mode 0600), so that every
    worker and every restart signs alike; made in a temporary file and linked into place,
    so that two processes starting together agree on one."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.close(fd)
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


class CompressedAnswers:
    """flask-compress's cache: a GET answer compressed once per encoding, kept under its
    answer tag (which names the model version, the catalog's state and the request, so a
    kept copy is never stale; old ones age out). Other responses (no tag) are not kept."""

    def __init__(self, size: int) -> None:
        self._lru: GenerationCache[str, bytes] = GenerationCache(size)

    def get(self, key: str) -> bytes | None:
        return None if key.endswith(";") else self._lru.get((), key)

    def set(self, key: str, value: bytes) -> None:
        if not key.endswith(";"):
            self._lru.put((), key, value)


def _install_compression(app: Flask) -> None:
    """JSON answers compressed for clients that accept it (zstd, br, gzip), by flask-compress
    (sizes measured in the README, "Caches and browsers"). Conditional requests are the
    API's own business (a 304 before anything is computed), not the extension's."""
    app.config.setdefault("COMPRESS_MIMETYPES", ["application/json"])
    app.config.setdefault("COMPRESS_EVALUATE_CONDITIONAL_REQUEST", False)
    size = app.config["ANSWER_CACHE"]
    app.config.setdefault("COMPRESS_CACHE_BACKEND", lambda: CompressedAnswers(size))
    app.config.setdefault("COMPRESS_CACHE_KEY", lambda request: g.get("answer_tag", ""))
    Compress(app)


def _install_security(app: Flask) -> None:
    """Links and images on the pages come from imported files: the import refuses every
    non-http(s) URL, the templates test each one again (`is web_url`, for catalogs written
    before that rule), and the headers forbid script should anything slip through."""
    app.jinja_env.tests["web_url"] = is_web_url

    @app.after_request
    def security_headers(response):
        # Appended, not set: nothing else writes these, and a set scans every header.
        response.headers.add(*NOSNIFF)
        if response.mimetype == "text/html":
            for name, value in PAGE_HEADERS:
                response.headers.add(name, value)
        return response


def _install_cors(app: Flask) -> None:
    """Pages on other origins (a news site's article pages, through the widget or their own
    script) may call the JSON API: flask-cors answers preflights and adds the
    Access-Control-* headers to every API response, errors included. The API is public and
    sends no cookies, so no credentials are allowed."""
    from .api import KEY_HEADER

    origins = [o.strip() for o in app.config["CORS_ORIGINS"].split(",") if o.strip()]
    if not origins:
        return
    CORS(app, resources={r"/v1/*": {"origins": origins}}, methods=["GET", "POST"],
         allow_headers=["Content-Type", "If-None-Match", KEY_HEADER],
         expose_headers=["ETag", "Retry-After"],
         max_age=CORS_PREFLIGHT_SECONDS)

    @app.after_request
    def preflight_no_content(response):
        """A preflight answered is a 204 without a body, not Flask's 200 with one."""
        if (request.method == "OPTIONS" and response.status_code == 200
                and "Access-Control-Request-Method" in request.headers):
            response.status_code = 204
            response.set_data(b"")
            response.headers.pop("Content-Type", None)
        return response


def _install_request_log(app: Flask) -> None:
    log = logging.getLogger("service.requests")

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response):
        ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info('%s "%s %s" %s %.1fms', request.remote_addr, request.method,
                 request.full_path.rstrip("?"), response.status_code, ms)
        return response
