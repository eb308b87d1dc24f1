"""Editors' judgements on related stories: what they pin, block, accept, reject or retract.

Each judgement is a row with its editor and time, never deleted: an undo marks it undone (by
whom, when), so the table is the audit trail. For one (article, story) pair the newest live
judgement holds; a retraction (article NULL) holds for every article. Serving applies them
at once (every write starts a new catalog generation, so cached answers and answer tags
change): pinned stories first, in the order of their positions; blocked, rejected and
retracted stories never. Accepted ones stay where the ranking puts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .catalog import HIDING, Catalog, checked_name, utc_now

ACTIONS = ("pin", "block", "accept", "reject", "retract")
MAX_POSITION = 100  # a pin's position, 1 = first


class JudgementError(ValueError):
    """A judgement that cannot be recorded; the message says why."""


@dataclass(frozen=True)
class Judgement:
    id: int
    article_id: int | None  # None: a retraction, for every article
    story_id: int
    action: str
    position: int | None
    editor: str
    created: str
    undone: str | None
    undone_by: str | None


@dataclass
class Applied:
    """What serving does with an article's live judgements."""

    pinned: list[int] = field(default_factory=list)  # story ids, in their positions' order
    positions: dict[int, int] = field(default_factory=dict)  # story id → 1-based position
    hidden: set[int] = field(default_factory=set)  # blocked, rejected, retracted
    accepted: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.pinned or self.hidden or self.accepted)

    def arrange(self, curated: list[int]) -> list[int]:
        """The article's editorial list: its curated stories in the editor's order with the
        pins at their positions, less what is hidden. It is what the service puts before the
        model's picks (`curated=first`) when no filter drops any of it, and what `export`
        hands back to the CMS."""
        rest = [s for s in curated if s not in self.hidden and s not in self.positions]
        pins = list(self.pinned)
        out: list[int] = []
        while pins or rest:
            if pins and (self.positions[pins[0]] <= len(out) + 1 or not rest):
                out.append(pins.pop(0))
            else:
                out.append(rest.pop(0))
        return out


def valid_editor(name: str) -> str:
    try:
        return checked_name(name, "editor name")
    except ValueError as exc:
        raise JudgementError(str(exc)) from None


def record(catalog: Catalog, action: str, story: int, editor: str,
           article: int | None = None, position: int | None = None) -> int:
    """Record a judgement on story id `story` (for article id `article`; a retraction names
    none) and return its id. The catalog's generation changes with it."""
    if action not in ACTIONS:
        raise JudgementError(f"action must be one of {', '.join(ACTIONS)}")
    valid_editor(editor)
    if (action == "retract") != (article is None):
        raise JudgementError("a retraction names a story only; every other action names the "
                             "article and the story")
    if article is not None and article == story:
        raise JudgementError("a story is not related to itself")
    if action == "pin":
        position = 1 if position is None else position
        if not 1 <= position <= MAX_POSITION:
            raise JudgementError(f"position must be from 1 to {MAX_POSITION}")
    else:
        position = None
    with catalog.transaction():
        known = {r[0] for r in catalog.db.execute(
            "SELECT id FROM stories WHERE id IN (?, ?)", (story, article or story))}
        if story not in known or (article is not None and article not in known):
            raise JudgementError("no such story in the catalog")
        cur = catalog.db.execute(
            "INSERT INTO judgements (article_id, story_id, action, position, editor, created)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (article, story, action, position, editor, utc_now()))
        judgement_id = int(cur.fetchone()[0])
        catalog.changed()
    return judgement_id


def undo(catalog: Catalog, judgement_id: int, editor: str) -> Judgement:
    valid_editor(editor)
    with catalog.transaction():
        found = _rows(catalog, "WHERE id = ?", (judgement_id,))
        if not found:
            raise JudgementError(f"no judgement {judgement_id}")
        if found[0].undone:
            raise JudgementError(f"judgement {judgement_id} was undone already")
        catalog.db.execute("UPDATE judgements SET undone = ?, undone_by = ? WHERE id = ?",
                           (utc_now(), editor, judgement_id))
        catalog.changed()
    return found[0]


def applied(catalog: Catalog, article: int | None) -> Applied:
    """The live judgements that shape `article`'s answer (None: a new article, which only
    retractions touch). The newest live judgement of each (article, story) pair holds."""
    out = Applied()
    try:
        live = _rows(catalog, "WHERE undone IS NULL AND (article_id = ? OR article_id IS NULL)"
                     " ORDER BY id", (-1 if article is None else article,))
    except catalog.db.errors:
        if catalog.db.has_table("judgements"):
            raise
        return out  # a catalog written before judgements existed, read by a reader
    latest: dict[int, Judgement] = {}
    for j in live:
        if j.action == "retract":
            out.hidden.add(j.story_id)
        else:
            latest[j.story_id] = j
    for j in latest.values():
        if j.action in HIDING:
            out.hidden.add(j.story_id)
        elif j.action == "accept":
            out.accepted.add(j.story_id)
    pins = sorted((j for j in latest.values()
                   if j.action == "pin" and j.story_id not in out.hidden),
                  key=lambda j: (j.position, -j.id))  # one position: the newest pin first
    out.pinned = [j.story_id for j in pins]
    out.positions = {j.story_id: j.position for j in pins}
    return out


def audit(catalog: Catalog, article: int | None = None, editor: str | None = None,
          limit: int = 200) -> list[Judgement]:
    """Judgements newest first, undone ones included: on one article, by one editor (made
    or undone), or all."""
    where: list[str] = []
    params: list[object] = []
    if article is not None:
        where.append("article_id = ?")
        params.append(article)
    if editor is not None:
        where.append("(editor = ? OR undone_by = ?)")
        params += [editor, editor]
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return _rows(catalog, f"{clause} ORDER BY id DESC LIMIT ?", (*params, limit))


def retractions(catalog: Catalog) -> list[Judgement]:
    """The live retractions, newest first: stories kept out of every list."""
    return _rows(catalog, "WHERE action = 'retract' AND undone IS NULL ORDER BY id DESC", ())


def _rows(catalog: Catalog, clause: str, params: tuple) -> list[Judgement]:
    return [Judgement(*r) for r in catalog.db.execute(
        "SELECT id, article_id, story_id, action, position, editor, created, undone, "
        f"undone_by FROM judgements {clause}", params)]
