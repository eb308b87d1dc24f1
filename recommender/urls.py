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
    """Raised for text that cannot name a web page (no host, or a scheme other than http(s))."""


WEB_SCHEMES = ("http", "https")
MAX_URL_CHARS = 8192  # longer is no page address anyone publishes; it bounds every cache too
CACHED_URL_CHARS = 512  # the identity cache holds short URLs only: its memory is bounded by bytes
# What a browser drops before it parses a URL (WHATWG URL: leading/trailing C0 controls and
# spaces, and ASCII tab or newline anywhere), so "java\tscript:" is read as "javascript:".
_BROWSER_DROPS = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$", re.DOTALL)
_PORT_AFTER_HOST = re.compile(r"^\d+(?:[/?#]|$)")  # "example.com:8080/x" is a host, no scheme
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # one regex search, not a Python loop per character


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


def web_url(url: str) -> str:
    """`url` as an absolute http(s) address a page may link to, or InvalidURL.

    The one rule for every URL that enters the catalog or leaves it (an article's, a related
    item's, an image's): a scheme other than http or https (javascript:, data:, file:, ...),
    a control character, or no host is refused, judged the way a browser would read the
    text. A bare `host/path` gets `http://`."""
    if not isinstance(url, str):
        raise InvalidURL(f"URL must be a string, got {type(url).__name__}")
    if len(url) > MAX_URL_CHARS:
        raise InvalidURL(f"URL longer than {MAX_URL_CHARS:,} characters")
    text = _BROWSER_DROPS.sub("", url).strip(_C0_AND_SPACE)
    if not text:
        raise InvalidURL("empty URL")
    if _CONTROL.search(text):
        raise InvalidURL(f"control character in URL: {url[:80]!r}")
    scheme = _SCHEME.match(text)
    name = scheme.group(1).lower() if scheme else ""
    if name in WEB_SCHEMES:
        if not scheme.group(2).startswith("//"):  # type: ignore[union-attr]
            raise InvalidURL(f"not a URL (no host): {url[:80]!r}")
    elif scheme and not (("." in name or name == "localhost")
                         and _PORT_AFTER_HOST.match(scheme.group(2))):
        raise InvalidURL(f"only http(s) URLs are accepted, not {name}: {url[:80]!r}")
    else:  # a bare host[:port]/path, or a scheme-relative //host/path
        text = "http://" + text.lstrip("/")
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidURL(f"not a URL: {url[:80]!r} ({exc})") from None
    if not host or "." not in host and host != "localhost":
        raise InvalidURL(f"not a URL (no host): {url[:80]!r}")
    return text


# The common shape of a stored URL, which `web_url` accepts (a scheme, a dotted host, a path
# without spaces or control characters): answers emit a score of these per request.
_PLAIN_WEB_URL = re.compile(r"https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?:/[^\x00-\x20\x7f]*)?",
                            re.IGNORECASE)


def is_web_url(url: object) -> bool:
    """Whether `url` may be emitted as a link or an image source (see `web_url`)."""
    if isinstance(url, str) and len(url) <= MAX_URL_CHARS and _PLAIN_WEB_URL.fullmatch(url):
        return True
    try:
        web_url(url)  # type: ignore[arg-type]
    except InvalidURL:
        return False
    return True


def _ascii_host(host: str) -> str:
    """The host in its ASCII (punycode) form, so `bücher.example` and
    `xn--bcher-kva.example` name one story."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def canonical_url(url: str) -> str:
    """The identity key of `url`: host (lower case, ASCII, no `www.`) + path + sorted
    non-tracking query.

    Scheme, fragment, port 80/443, a trailing `/`, and a trailing `/amp` or `.amp` are dropped.
    """
    if isinstance(url, str) and len(url) <= CACHED_URL_CHARS:
        return _canonical_cached(url)
    return _canonical(url)


@lru_cache(maxsize=1 << 14)  # related lists cite the same URLs again and again
def _canonical_cached(url: str) -> str:
    return _canonical(url)


def _canonical(url: str) -> str:
    text = web_url(url)
    parts = urlsplit(text)
    host = _ascii_host((parts.hostname or "").lower())
    port = parts.port
    path, query = parts.path, parts.query
    unwrapped = _unwrap_amp_cache(host, path, query)
    if unwrapped:
        host, path, query = unwrapped
        if ":" in host:
            host, _, _ = host.partition(":")
        host = _ascii_host(host)
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
