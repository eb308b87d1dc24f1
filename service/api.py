"""The JSON API: related stories by URL (GET) or for a new article (POST), and the model."""

from __future__ import annotations

import functools
import json
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.http import quote_etag

from recommender import api_keys
from recommender.frontmatter import BadFile, iso_utc
from recommender.recommend import MAX_TOPICS, Answer, Filters, NotFound

from . import errors
from .core import recommender
from .errors import fail

bp = Blueprint("api", __name__, url_prefix="/v1")
KEY_HEADER = "X-API-Key"
BATCH_MAX = 100  # items in one batch request
KNOWN_QUERY = {"url", "k", "offset", "since", "until", "exclude", "provider", "dedupe",
               "curated"}


@bp.before_request
def _key_required() -> None:
    """With the api_keys setting on, every API request but a CORS preflight names a live
    key. Refusals are 401s that say which of the two it was: no key, or one not live."""
    if not current_app.config["API_KEYS"] or request.method == "OPTIONS":
        return
    if not request.headers.get(KEY_HEADER):
        fail(401, f"send an API key in the {KEY_HEADER} header")
    if key_holder() is None:
        fail(401, "unknown or revoked API key")


def key_holder() -> str | None:
    """The name of the live key this request sent (looked up once per request), or None."""
    if "key_holder" not in g:
        sent = request.headers.get(KEY_HEADER)
        g.key_holder = (api_keys.holder(recommender().catalog, sent)
                        if sent and current_app.config["API_KEYS"] else None)
    return g.key_holder


@bp.after_request
def _not_stored(response: Response) -> Response:
    """Only a GET answer by URL may be kept (it carries its tag and max-age); a new
    article's answer and every error are for this request alone."""
    if response.status_code not in (200, 304) or request.method != "GET":
        response.cache_control.no_store = True
    return response


def _bad(message: str, close: bool = False) -> NoReturn:
    fail(400, message, close)


def _query() -> tuple[str | None, Filters]:
    """The request's `url` parameter and filters; a query string seen lately is not parsed
    again (pages ask for the same articles with the same parameters over and over)."""
    query = request.query_string
    parsed = _parsed(query) if len(query) <= PARSED_QUERY_MAX else _parsed.__wrapped__(query)
    if isinstance(parsed, str):
        _bad(parsed)
    return parsed


PARSED_QUERY_MAX = 2048  # longer query strings are parsed every time, never kept


@functools.lru_cache(maxsize=4096)
def _parsed(query: bytes) -> tuple[str | None, Filters] | str:  # noqa: ARG001 - the key
    """`request.args` read, or what is wrong with them; cached by the query string they
    were parsed from (one string, one parse)."""
    args = request.args
    unknown = sorted(set(args) - KNOWN_QUERY)
    if unknown:
        return f"unknown parameter: {unknown[0][:80]}"
    try:
        return args.get("url"), Filters.parse(args.get, args.getlist)
    except (ValueError, BadFile) as exc:
        return str(exc)


def _answer(answer: Answer):
    return jsonify(answer.payload())


def request_cost() -> int:
    """What this request costs against a rate limit: a batch its items, others 1."""
    if request.endpoint != "api.related_batch":
        return 1
    try:
        items = json.loads(_body()).get("items")
    except Exception:  # noqa: BLE001 - a body the view refuses costs 1; the view says why
        return 1
    return min(len(items), BATCH_MAX) if isinstance(items, list) and items else 1


@bp.get("/related")
def related_by_url():
    url, filters = _query()
    if url is None or not url.strip():
        _bad("missing parameter: url")
    held = _held_tags()
    try:
        tag, body = recommender().by_url_tagged(url, filters,
                                                lambda t: t in held or "*" in held)
    except NotFound as exc:
        fail(404, str(exc))
    except ValueError as exc:
        _bad(str(exc))
    # A CDN or browser may keep the answer max-age seconds, then revalidate: the tag names
    # the model version, the catalog's state and the request, so a 304 is never stale.
    g.answer_tag = tag  # what a compressed copy of the answer is kept under
    return Response(body, status=200 if body is not None else 304, mimetype="application/json",
                    headers={"ETag": quote_etag(held.get(tag, tag) if body is None else tag),
                             "Cache-Control": f"public, max-age="
                             f"{current_app.config['CACHE_MAX_AGE']:d}"})


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
            raise ValueError(f"missing field: {name}")
        return None
    if not isinstance(value, str):
        raise ValueError(f"field {name} must be a string")
    if required and not value.strip():
        raise ValueError(f"field {name} must not be empty")
    return value


def _new_article(body: Any) -> dict[str, Any]:
    """A new article's fields, checked (ValueError names the field): the one reading of an
    article for POST /v1/related and each article of a batch."""
    if not isinstance(body, dict):
        raise ValueError("an article must be a JSON object with at least a title")
    article = {"title": _text_field(body, "title", required=True),
               "excerpt": _text_field(body, "excerpt") or "",
               "published": _text_field(body, "publishedDateTime"),
               "url": _text_field(body, "url"), "provider": _text_field(body, "provider")}
    topics = body.get("topics", [])
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise ValueError("field topics must be a list of strings")
    if len(topics) > MAX_TOPICS:
        raise ValueError(f"field topics holds at most {MAX_TOPICS} topics")
    if article["published"]:
        try:
            iso_utc(article["published"])
        except BadFile as exc:
            raise ValueError(str(exc)) from None
    return {**article, "topics": topics}


def _body() -> bytes:
    """The request body, read once (a rate limit's cost reads a batch before its view does):
    a failure to read it is kept and raised again."""
    if "body" not in g:
        try:
            g.body = _read_body()
        except HTTPException as exc:
            g.body = exc
    if isinstance(g.body, HTTPException):
        raise g.body
    return g.body


def _read_body() -> bytes:
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


def _json_body() -> Any:
    """The request's JSON body (415 when it is not JSON, 400 when it does not parse)."""
    if not request.is_json:
        fail(415, "send JSON (Content-Type: application/json)")
    data = _body()
    try:  # the parser's own depth limit is a RecursionError, not a ValueError
        return json.loads(data)
    except RecursionError:
        _bad("JSON nested too deeply")
    except (ValueError, UnicodeDecodeError):
        _bad("body is not valid JSON: send a JSON object")


@bp.post("/related")
def related_for_article():
    body = _json_body()
    try:
        article = _new_article(body)
    except ValueError as exc:
        _bad(str(exc))
    filters = _query()[1]
    try:
        return _answer(recommender().for_article(filters=filters, **article))
    except ValueError as exc:  # past the served model's depth
        _bad(str(exc))


@bp.post("/related/batch")
def related_batch():
    """Many articles in one request (a page of teasers): each item is answered or fails on
    its own, in the order sent. The query string's filters apply to every item. Answers by
    URL come from the same caches as GET's, embedded as they are stored."""
    body = _json_body()
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= BATCH_MAX:
        _bad(f"send {{\"items\": [...]}} with 1 to {BATCH_MAX} items, each "
             "{\"url\": ...} or a new article {\"title\": ..., \"excerpt\": ...}")
    filters = _query()[1]
    rec = recommender()
    parts = []
    for item in items:
        try:
            if isinstance(item, dict) and "url" in item and "title" not in item:
                url = _text_field(item, "url", required=True)
                answer = rec.by_url_tagged(url, filters)[1]
            else:
                answer = json.dumps(rec.for_article(filters=filters, **_new_article(item))
                                    .payload()).encode()
            parts.append(b'{"status":200,"answer":' + answer + b"}")
        except NotFound as exc:
            parts.append(_item_error(404, str(exc)))
        except ValueError as exc:
            parts.append(_item_error(400, str(exc)))
    return Response(b'{"results":[' + b",".join(parts) + b"]}", mimetype="application/json")


def _item_error(status: int, message: str) -> bytes:
    return json.dumps({"status": status, **errors.body(status, message)}).encode()


@bp.get("/model")
def model():
    return jsonify(recommender().artifact.manifest)
