"""Keys of the JSON API, kept in the catalog so that every replica reads the same ones.

A key is 32 random bytes (URL-safe text, shown once when it is made); the catalog keeps only
its SHA-256 digest. A slow password hash buys nothing for a key this random (no dictionary
to try), and a request checks its key by one indexed lookup of the digest. A revoked key
stays listed, with when it was revoked, and is refused from the next request on.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from .catalog import Catalog, checked_name, utc_now

PREFIX = "rk_"  # tells a leaked key for what it is (secret scanners, logs)


class ApiKeyError(ValueError):
    """A key command that cannot be done; the message says why."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    created: str
    revoked: str | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def add(catalog: Catalog, name: str) -> str:
    """A new key named `name` (who holds it: a site, a partner); returns the key itself,
    which is not kept and cannot be shown again."""
    try:
        checked_name(name, "key name")
    except ValueError as exc:
        raise ApiKeyError(str(exc)) from None
    key = PREFIX + secrets.token_urlsafe(32)
    with catalog.transaction():
        if catalog.db.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
            raise ApiKeyError(f"a key named {name} exists already (revoked keys stay listed): "
                              "pick another name")
        catalog.db.execute("INSERT INTO api_keys (name, digest, created) VALUES (?, ?, ?)",
                           (name, digest(key), utc_now()))
    return key


def revoke(catalog: Catalog, name: str) -> None:
    with catalog.transaction():
        row = catalog.db.execute("SELECT revoked FROM api_keys WHERE name = ?",
                                 (name,)).fetchone()
        if row is None:
            raise ApiKeyError(f"no key named {name[:80]}")
        if row[0] is None:
            catalog.db.execute("UPDATE api_keys SET revoked = ? WHERE name = ?", (utc_now(), name))


def listed(catalog: Catalog) -> list[ApiKey]:
    if not catalog.db.has_table("api_keys"):
        return []  # a catalog no key was ever made for, read by a reader
    return [ApiKey(*row) for row in catalog.db.execute(
        "SELECT name, created, revoked FROM api_keys ORDER BY name")]


def holder(catalog: Catalog, key: str) -> str | None:
    """The name of the live key `key`, or None (unknown, revoked, or a catalog written
    before keys existed: its read-only readers see no table)."""
    try:
        row = catalog.db.execute("SELECT name FROM api_keys WHERE digest = ? AND revoked IS "
                                 "NULL", (digest(key),)).fetchone()
    except catalog.db.errors:
        if catalog.db.has_table("api_keys"):
            raise
        return None
    return row[0] if row else None
