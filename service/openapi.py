"""The OpenAPI 3.1 description of every endpoint, parameter, response and error."""

from __future__ import annotations

from flask import Blueprint, jsonify

from recommender import __version__
from recommender.recommend import MAX_K, MAX_TOPICS
from recommender.settings import SETTINGS

from .api import BATCH_MAX, KEY_HEADER

MAX_BODY_DEFAULT = SETTINGS["max_body"].default

bp = Blueprint("openapi", __name__)


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _query(name: str, description: str, schema: dict, required: bool = False,
           explode: bool | None = None) -> dict:
    p = {"name": name, "in": "query", "required": required, "description": description,
         "schema": schema}
    if explode is not None:
        p["style"], p["explode"] = "form", explode
    return p


FILTERS = [
    _query("k", f"How many related stories (default 10; offset + k at most {MAX_K}).",
           {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10}),
    _query("offset", "Skip this many (paging: the answer's next_offset, while not null).",
           {"type": "integer", "minimum": 0, "maximum": MAX_K - 1, "default": 0}),
    _query("since", "Only stories published on or after this ISO 8601 date or time.",
           {"type": "string", "format": "date-time"}),
    _query("until", "Only stories published on or before this ISO 8601 date or time "
           "(a bare date includes the whole day).", {"type": "string", "format": "date-time"}),
    _query("exclude", "A URL (any variant) to leave out; repeat for several.",
           {"type": "array", "items": {"type": "string"}}, explode=True),
    _query("provider", "Only stories from this provider (name or domain, any case).",
           {"type": "string"}),
    _query("dedupe", "Collapse syndicated copies and rewrites of one announcement into one "
           "entry (the others under also).",
           {"type": "boolean", "default": True}),
    _query("curated", "first: a catalog story's curated list first, in the editor's order, "
           "then the model's ranking; model: the model's ranking alone.",
           {"type": "string", "enum": ["first", "model"], "default": "first"}),
]

CACHE_HEADERS = {
    "ETag": {"description": "Names the model version, the catalog's state and the request: "
             "it changes whenever the answer may.", "schema": {"type": "string"}},
    "Cache-Control": {"description": "public, max-age=N (the cache_max_age setting).",
                      "schema": {"type": "string"}},
}

RELATED_RESPONSES = {
    "200": {"description": "Ranked related stories, best first.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}}},
    "400": _error("A parameter or field is missing or malformed; the message names it."),
    "401": _error("API keys are required (the api_keys setting) and none, or no live one, "
                  "was sent in X-API-Key."),
    "429": {**_error("Over the rate limit (the rate_limit setting) of the key or the client "
                     "address; a batch counts its items."),
            "headers": {"Retry-After": {"description": "Seconds until the limit resets.",
                                        "schema": {"type": "integer"}}}},
    "503": _error("No verified model is loaded, or the catalog cannot be read."),
}
BODY_ERRORS = {"413": _error(f"The body is over the max_body setting ({MAX_BODY_DEFAULT // 1024} "
                             "KiB by default)."),
               "415": _error("The body is not JSON.")}

STORY = {
    "type": "object",
    "required": ["url", "title", "excerpt", "provider", "publishedDateTime", "image"],
    "properties": {
        "url": {"type": ["string", "null"]},
        "title": {"type": "string"},
        "excerpt": {"type": "string"},
        "provider": {"type": ["string", "null"]},
        "publishedDateTime": {"type": ["string", "null"]},
        "image": {"type": ["string", "null"]},
    },
}

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "Related stories", "version": __version__,
             "description": "Ranked related stories for any article: one in the catalog, asked "
                            "for by any of its URLs, or a new one sent as title and excerpt."},
    "paths": {
        "/v1/related": {
            "get": {
                "operationId": "relatedByUrl",
                "summary": "Related stories for a catalog story, by any URL variant.",
                "parameters": [_query("url", "The story's URL: web, original, AMP, AMP cache, "
                                      "tracking tags and all.", {"type": "string"},
                                      required=True), *FILTERS,
                               {"name": "If-None-Match", "in": "header", "required": False,
                                "description": "The ETag of an answer held: a 304 while it "
                                "is still the answer.", "schema": {"type": "string"}}],
                "responses": {**RELATED_RESPONSES,
                              "200": {**RELATED_RESPONSES["200"], "headers": CACHE_HEADERS},
                              "304": {"description": "The answer named by If-None-Match is "
                                      "still the answer.", "headers": CACHE_HEADERS},
                              "404": _error("The catalog holds no story for the URL.")},
            },
            "post": {
                "operationId": "relatedForArticle",
                "summary": "Related stories for an article the catalog does not hold.",
                "parameters": FILTERS,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/NewArticle"}}}},
                "responses": {**RELATED_RESPONSES, **BODY_ERRORS},
            },
        },
        "/v1/related/batch": {"post": {
            "operationId": "relatedBatch",
            "summary": f"Related stories for up to {BATCH_MAX} articles at once (a page of "
                       "teasers): catalog stories by URL and new articles, each answered or "
                       "failed on its own, in the order sent. The filters apply to every item.",
            "parameters": FILTERS,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Batch"}}}},
            "responses": {**RELATED_RESPONSES, **BODY_ERRORS, "200": {
                "description": "One result per item, in order: status 200 with its answer, "
                               "or 400/404 with the error.",
                "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/BatchResults"}}}}},
        }},
        "/v1/model": {"get": {
            "operationId": "model", "summary": "The manifest of the model being served.",
            "responses": {"200": {"description": "The manifest.", "content": {
                "application/json": {"schema": {"type": "object",
                                                "required": ["version", "created", "files"]}}}},
                "503": _error("No verified model is loaded.")}}},
        "/healthz": {"get": {
            "operationId": "healthz", "summary": "Alive.",
            "responses": {"200": {"description": "The process answers.", "content": {
                "application/json": {"schema": {"type": "object", "required": ["status"]}}}}}}},
        "/readyz": {"get": {
            "operationId": "readyz", "summary": "Ready: model and catalog loaded.",
            "responses": {"200": {"description": "Ready.", "content": {"application/json": {
                "schema": {"type": "object", "required": ["status", "model", "stories"],
                           "properties": {"answers": {
                               "type": "object", "description":
                               "This worker's answers by URL since it started: from its own "
                               "cache, from the cache its server's workers share, computed.",
                               "additionalProperties": {"type": "integer"}}}}}}},
                "503": _error("Not ready; the message says why.")}}},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document.",
            "responses": {"200": {"description": "OpenAPI 3.1.",
                                  "content": {"application/json": {
                                      "schema": {"type": "object"}}}}}}},
    },
    "security": [{}, {"apiKey": []}],
    "components": {"securitySchemes": {"apiKey": {
        "type": "apiKey", "in": "header", "name": KEY_HEADER,
        "description": "Required when the api_keys setting is on (`recommender apikey add`)."}},
        "schemas": {
        "Error": {"type": "object", "required": ["error", "message"],
                  "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
        "Story": STORY,
        "Related": {"allOf": [{"$ref": "#/components/schemas/Story"}, {
            "type": "object",
            "required": ["score", "reasons", "days_apart", "curated", "pinned", "also"],
            "properties": {
                "score": {"type": ["number", "null"], "description":
                          "The model's score; null for a curated story it did not rank."},
                "reasons": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "days_apart": {"type": ["number", "null"], "description":
                               "Days from the article's publication to this story's "
                               "(negative: published before it); null when a date is unknown."},
                "curated": {"type": "boolean",
                            "description": "In the editor's curated list for the article."},
                "pinned": {"type": "boolean", "description": "Pinned into the article's list "
                           "by an editor (at the position they chose)."},
                "also": {"type": "array", "description": "Syndicated copies and rewrites of "
                         "the same announcement, collapsed into this entry (dedupe=true).",
                         "items": {"type": "object", "required": ["url", "provider"],
                                   "properties": {"url": {"type": "string"},
                                                  "provider": {"type": ["string", "null"]}}}}}}]},
        "Answer": {"type": "object",
                   "required": ["article", "related", "model", "offset", "next_offset"],
                   "properties": {
                       "article": {"$ref": "#/components/schemas/Story"},
                       "related": {"type": "array",
                                   "items": {"$ref": "#/components/schemas/Related"}},
                       "model": {"type": "string"},
                       "offset": {"type": "integer"},
                       "next_offset": {"type": ["integer", "null"], "description":
                                       "The offset of the next page; null on the last."}}},
        "Batch": {"type": "object", "required": ["items"], "properties": {"items": {
            "type": "array", "minItems": 1, "maxItems": BATCH_MAX, "items": {"oneOf": [
                {"type": "object", "required": ["url"], "not": {"required": ["title"]},
                 "properties": {"url": {"type": "string", "description": "A catalog "
                                "story's URL, any variant."}}},
                {"$ref": "#/components/schemas/NewArticle"}]}}}},
        "BatchResults": {"type": "object", "required": ["results"], "properties": {
            "results": {"type": "array", "items": {
                "type": "object", "required": ["status"], "properties": {
                    "status": {"type": "integer", "enum": [200, 400, 404]},
                    "answer": {"$ref": "#/components/schemas/Answer"},
                    "error": {"type": "string"}, "message": {"type": "string"}}}}}},
        "NewArticle": {"type": "object", "required": ["title"], "properties": {
            "title": {"type": "string", "minLength": 1},
            "excerpt": {"type": "string"},
            "publishedDateTime": {"type": "string", "format": "date-time"},
            "url": {"type": "string"},
            "provider": {"type": "string"},
            "topics": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_TOPICS}}},
    }},
}


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
