"""One announcement, one entry: syndicated copies and rewrites of a story collapse in a list.

News about an announcement arrives as the press release, its syndicated copies on other
sites (same title, or a headline edited a little: "next evolution of" / "next generation
of" / "next-gen") and rewrites of it, all within a day or two. In a related list they take
the slots of stories that say something else. Two stories are taken for the same
announcement when they were published within `days` of each other and their titles, as
TF-IDF vectors, have a cosine of at least `title_cos`, or their titles and excerpts together
of at least `text_cos`. The thresholds were chosen on the shared corpus with
`bench/collapse.py`, which measures the slots freed and the recall with collapsing on and off
(README, "Evaluation").

Titles are compared as TF-IDF vectors of Unicode words, so a title in any script has a key
of its own; stories the model has no row for fall back to `title_key`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from . import sparse_rows
from .candidates import Index

DAYS = 2.0
TITLE_COS = 0.6
TEXT_COS = 0.6


def title_key(title: str) -> str:
    """A title as exact de-duplication compares it: case, accents, punctuation and spacing
    folded, letters of every script kept (a title in Cyrillic or Chinese is not an empty
    key)."""
    folded = unicodedata.normalize("NFKD", title).casefold()
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(re.findall(r"\w+", folded))


def same_pairs(index: Index, rows: Sequence[int], days: float = DAYS,
               title_cos: float = TITLE_COS, text_cos: float = TEXT_COS) -> np.ndarray:
    """Whether each two of catalog `rows` report one announcement (the module's rule), as a
    len(rows)² bool array; the diagonal is True."""
    rows = np.asarray(rows, dtype=np.int64)
    times = index.times[rows]
    with np.errstate(invalid="ignore"):  # an undated story (NaN) is never collapsed by this rule
        near = np.abs(times[:, None] - times[None, :]) <= days
    return near & ((sparse_rows.gram(index.title, rows) >= title_cos)
                   | (sparse_rows.gram(index.full, rows) >= text_cos))


def collapse(index: Index, rows: Sequence[int], **rule: float) -> list[tuple[int, list[int]]]:
    """Rows in rank order → (kept row, the rows collapsed into it), greedily: each row joins
    the first earlier entry it is the same announcement as, else opens an entry."""
    same = same_pairs(index, rows, **rule)
    entries: list[tuple[int, list[int]]] = []
    heads: list[int] = []  # positions in `rows` of the entries' kept rows
    for pos, row in enumerate(rows):
        head = next((e for e, h in enumerate(heads) if same[h, pos]), None)
        if head is None:
            heads.append(pos)
            entries.append((row, []))
        else:
            entries[head][1].append(row)
    return entries
