"""URL identity: every address a story can be reached by maps to one canonical key.

Pages ask for related stories with whatever URL they carry (AMP, the AMP cache, a link with
campaign tags), and curated lists cite stories the same way. Two URLs name the same story
exactly when their canonical keys are equal, so the catalog stores stories by this key.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

# Query parameters that track a visit rather than select a page (matched case-insensitively).
TRACKING_PARAMS = frozenset(
    p.lower()
    for p in (
        "fbclid", "gclid", "ocid", "cmpid", "mod", "partnerref", "feedref", "refsec", "ref",
        "source", "admgarea", "tc", "taid", "topicPageSponsorship", "useSponsorshipSuggestions",
    )
)
TRACKING_PREFIXES = ("utm_", "itm_")

_AMP_CACHE = re.compile(r"^[a-z0-9-]+\.cdn\.ampproject\.org$")
_AMP_SUFFIX = re.compile(r"(?:/amp|\.amp)$", re.IGNORECASE)


class InvalidURL(ValueError):
    """Raised for text that cannot name a web page (no host)."""


def _is_tracking(name: str) -> bool:
    low = name.lower()
    return low in TRACKING_PARAMS or low.startswith(TRACKING_PREFIXES)


def _unwrap_amp_cache(host: str, path: str, query: str) -> tuple[str, str, str] | None:
    """`<dashed-host>.cdn.ampproject.org/c/s/<host>/<path>` → (host, path, query) of the origin."""
    if not _AMP_CACHE.match(host):
        return None
    m = re.match(r"^/[a-z](?:/s)?/([^/?#]+)(/[^?#]*)?$", path, re.IGNORECASE)
    if not m:
        return None
    return m.group(1).lower(), m.group(2) or "", query


@lru_cache(maxsize=1 << 16)  # related lists cite the same URLs again and again
def canonical_url(url: str) -> str:
    """The identity key of `url`: host (lower case, no `www.`) + path + sorted non-tracking query.

    Scheme, fragment, port 80/443, a trailing `/`, and a trailing `/amp` or `.amp` are dropped.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"URL must be a string, got {type(url).__name__}")
    text = url.strip()
    if not text:
        raise InvalidURL("empty URL")
    if "://" not in text:
        text = "http://" + text.lstrip("/")
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"not a URL: {url!r} ({exc})") from None
    if not host or "." not in host and host != "localhost":
        raise InvalidURL(f"not a URL (no host): {url!r}")
    path, query = parts.path, parts.query
    unwrapped = _unwrap_amp_cache(host, path, query)
    if unwrapped:
        host, path, query = unwrapped
        if ":" in host:
            host, _, _ = host.partition(":")
        port = None
    if host.startswith("www."):
        host = host[4:]
    path = unquote(path)
    # Strip in a loop: `/story/amp/` → `/story/amp` → `/story`.
    while True:
        stripped = _AMP_SUFFIX.sub("", path.rstrip("/"))
        if stripped == path:
            break
        path = stripped
    params = sorted(
        (k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not _is_tracking(k)
    )
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    key = netloc + path
    if params:
        key += "?" + urlencode(params)
    return key
