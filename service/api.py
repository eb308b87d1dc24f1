"""The JSON API: related stories by URL (GET) or for a new article (POST), and the model."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from flask import Blueprint, Response, abort, current_app, jsonify, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from recommender.frontmatter import BadFile, iso_utc
from recommender.recommend import MAX_TOPICS, Answer, Filters, NotFound

from .core import recommender

bp = Blueprint("api", __name__, url_prefix="/v1")
KNOWN_QUERY = {"url", "k", "offset", "since", "until", "exclude", "provider", "dedupe",
               "curated"}


@bp.after_request
def _not_stored(response: Response) -> Response:
    """Only a GET answer by URL may be kept (it carries its tag and max-age); a new
    article's answer and every error are for this request alone."""
    if response.status_code not in (200, 304) or request.method != "GET":
        response.cache_control.no_store = True
    return response


def _bad(message: str, close: bool = False) -> NoReturn:
    response = jsonify(error="bad_request", message=message)
    response.status_code = 400
    if close:  # the stream's framing is lost: nothing more is read from this connection
        response.headers["Connection"] = "close"
    abort(response)


def _filters(args: MultiDict) -> Filters:
    unknown = sorted(set(args) - KNOWN_QUERY)
    if unknown:
        _bad(f"unknown parameter: {unknown[0][:80]}")
    try:
        return Filters.parse(args.get, args.getlist)
    except (ValueError, BadFile) as exc:
        _bad(str(exc))


def _answer(answer: Answer):
    return jsonify(answer.payload())


@bp.get("/related")
def related_by_url():
    url = request.args.get("url")
    if url is None or not url.strip():
        _bad("missing parameter: url")
    filters = _filters(request.args)
    held = _held_tags()
    try:
        tag, body = recommender().by_url_tagged(url, filters,
                                                lambda t: t in held or "*" in held)
    except NotFound as exc:
        return jsonify(error="not_found", message=str(exc)), 404
    except ValueError as exc:
        _bad(str(exc))
    # A CDN or browser may keep the answer max-age seconds, then revalidate: the tag names
    # the model version, the catalog's state and the request, so a 304 is never stale.
    response = Response(body, status=200 if body is not None else 304,
                        mimetype="application/json")
    response.set_etag(held.get(tag, tag) if body is None else tag)
    response.cache_control.public = True
    response.cache_control.max_age = current_app.config["CACHE_MAX_AGE"]
    return response


def _held_tags() -> dict[str, str]:
    """The answer tags the client holds (If-None-Match, weak or strong), each mapped to the
    form it was sent in. The compression extension sends a compressed answer's tag with the
    encoding appended ("tag:gzip"), so that suffix is set aside: one answer, one tag, however
    it travelled; a 304 names the tag as the client holds it."""
    held: dict[str, str] = {}
    for sent in request.if_none_match.as_set(include_weak=True):
        if sent:  # a malformed header parses to empty tags
            held[sent.split(":", 1)[0]] = sent
    if request.if_none_match.star_tag:
        held["*"] = "*"
    return held


def _text_field(body: dict, name: str, required: bool = False) -> str | None:
    value: Any = body.get(name)
    if value is None:
        if required:
            _bad(f"missing field: {name}")
        return None
    if not isinstance(value, str):
        _bad(f"field {name} must be a string")
    if required and not value.strip():
        _bad(f"field {name} must not be empty")
    return value


def _body() -> bytes:
    """The request body, at most MAX_CONTENT_LENGTH bytes. A declared length past it is
    refused before reading (by Werkzeug); a chunked body shows its size only as it is read,
    and Werkzeug's capped stream then ends at the limit without a word, so one byte more is
    read here to tell an oversized body (413) from a truncated one (a bad JSON 400)."""
    try:
        if request.content_length is not None:
            return request.get_data(cache=True)
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        data = request.environ["wsgi.input"].read(limit + 1)
    except RequestEntityTooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - the server's framing errors have no common base
        _bad(f"the request body could not be read ({type(exc).__name__}: {str(exc)[:120]})",
             close=True)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


@bp.post("/related")
def related_for_article():
    if not request.is_json:
        response = jsonify(error="unsupported_media_type",
                           message="send the article as JSON (Content-Type: application/json)")
        response.status_code = 415
        return response
    data = _body()
    try:  # the parser's own depth limit is a RecursionError, not a ValueError
        body = json.loads(data)
    except RecursionError:
        _bad("JSON nested too deeply")
    except (ValueError, UnicodeDecodeError):
        _bad("body is not valid JSON: send a JSON object with at least a title")
    if not isinstance(body, dict):
        _bad("body must be a JSON object with at least a title")
    title = _text_field(body, "title", required=True)
    excerpt = _text_field(body, "excerpt") or ""
    published = _text_field(body, "publishedDateTime")
    url = _text_field(body, "url")
    provider = _text_field(body, "provider")
    topics = body.get("topics", [])
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        _bad("field topics must be a list of strings")
    if len(topics) > MAX_TOPICS:
        _bad(f"field topics holds at most {MAX_TOPICS} topics")
    if published:
        try:
            iso_utc(published)
        except BadFile as exc:
            _bad(str(exc))
    filters = _filters(request.args)
    try:
        return _answer(recommender().for_article(title, excerpt, published, url, filters,
                                                 provider=provider, topics=topics))
    except ValueError as exc:  # past the served model's depth
        _bad(str(exc))


@bp.get("/model")
def model():
    return jsonify(recommender().artifact.manifest)
