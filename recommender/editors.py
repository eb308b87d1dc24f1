"""Editors who may sign in to the pages and judge related stories.

Accounts live in the catalog (every replica knows them); a password is kept only as a salted
scrypt hash made by Werkzeug's `generate_password_hash`, and checked by its
`check_password_hash` in constant time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from .catalog import Catalog, utc_now
from .judgements import JudgementError, valid_editor

MIN_PASSWORD = 10


class EditorError(ValueError):
    """An account command that cannot be done; the message says why."""


@dataclass(frozen=True)
class Editor:
    name: str
    created: str


def add(catalog: Catalog, name: str, password: str) -> None:
    try:
        valid_editor(name)
    except JudgementError as exc:
        raise EditorError(str(exc)) from None
    if len(password) < MIN_PASSWORD:
        raise EditorError(f"a password has at least {MIN_PASSWORD} characters")
    with catalog.transaction():
        if catalog.db.execute("SELECT 1 FROM editors WHERE name = ?", (name,)).fetchone():
            raise EditorError(f"an editor named {name} exists already")
        catalog.db.execute("INSERT INTO editors VALUES (?, ?, ?)",
                           (name, generate_password_hash(password), utc_now()))


def remove(catalog: Catalog, name: str) -> None:
    """The account goes; the editor's judgements stay, with the name, in the audit trail."""
    with catalog.transaction():
        if not catalog.db.execute("SELECT 1 FROM editors WHERE name = ?", (name,)).fetchone():
            raise EditorError(f"no editor named {name[:80]}")
        catalog.db.execute("DELETE FROM editors WHERE name = ?", (name,))


def listed(catalog: Catalog) -> list[Editor]:
    if not catalog.db.has_table("editors"):
        return []
    return [Editor(*r) for r in catalog.db.execute(
        "SELECT name, created FROM editors ORDER BY name")]


def exists(catalog: Catalog, name: str) -> bool:
    """Whether `name` still has an account (a session outlives a removal otherwise)."""
    return catalog.db.has_table("editors") and catalog.db.execute(
        "SELECT 1 FROM editors WHERE name = ?", (name,)).fetchone() is not None


def signs_in(catalog: Catalog, name: str, password: str) -> bool:
    row = (catalog.db.execute("SELECT password_hash FROM editors WHERE name = ?",
                              (name,)).fetchone()
           if catalog.db.has_table("editors") else None)
    if row is None:
        check_password_hash(_dummy(), password)  # the same time whether the name exists or not
        return False
    return check_password_hash(row[0], password)


@functools.cache
def _dummy() -> str:
    return generate_password_hash("not a password of anyone's")
