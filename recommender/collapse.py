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

from .candidates import Index, csr_row

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


def _cos(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    _, ia, ib = np.intersect1d(a[0], b[0], assume_unique=True, return_indices=True)
    return float(np.dot(a[1][ia], b[1][ib])) if len(ia) else 0.0


def same_announcement(index: Index, a: int, b: int, days: float = DAYS,
                      title_cos: float = TITLE_COS, text_cos: float = TEXT_COS) -> bool:
    """Whether catalog rows `a` and `b` report one announcement (the module's rule)."""
    gap = abs(index.times[a] - index.times[b])
    if not gap <= days:  # an undated story (NaN) is never collapsed by this rule
        return False
    return (_cos(csr_row(index.title, a), csr_row(index.title, b)) >= title_cos
            or _cos(csr_row(index.full, a), csr_row(index.full, b)) >= text_cos)


def collapse(index: Index, rows: Sequence[int], **rule: float) -> list[tuple[int, list[int]]]:
    """Rows in rank order → (kept row, the rows collapsed into it), greedily: each row joins
    the first earlier entry it is the same announcement as, else opens an entry."""
    entries: list[tuple[int, list[int]]] = []
    for row in rows:
        for head, also in entries:
            if same_announcement(index, head, row, **rule):
                also.append(row)
                break
        else:
            entries.append((row, []))
    return entries
