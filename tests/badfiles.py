"""One file of each bad kind the importer must name and skip (shared by several tests)."""

from __future__ import annotations

import os
from pathlib import Path

GOOD = """---
title: "A good article"
excerpt: "Fine."
publishedDateTime: 2021-03-01T10:00:00Z
webUrl: "https://good.example/a"
related:
  - title: "Its neighbour"
    webUrl: "https://good.example/b"
---
"""

# Billion laughs: ten levels of nine aliases each, 9**10 leaves once expanded.
BOMB = "---\ntitle: bomb\nwebUrl: https://x.example/bomb\na: &a [x, x, x, x, x, x, x, x, x]\n"
for _i in range(9):
    _prev, _name = chr(97 + _i), chr(98 + _i)
    BOMB += f"{_name}: &{_name} [" + ", ".join([f"*{_prev}"] * 9) + "]\n"
BOMB += "---\n"

# name → (bytes, words the reason must contain)
BAD: dict[str, tuple[bytes, str]] = {
    "not_utf8.md": (GOOD.replace("Fine.", "Fine \udcff.").encode("utf-8", "surrogateescape"),
                    "not UTF-8"),
    "no_front_matter.md": (b"# Just markdown\n\nNo front matter here.\n", "no YAML front matter"),
    "bad_yaml.md": (b'---\ntitle: "unclosed\nwebUrl: [\n---\n', "YAML does not parse"),
    "no_title.md": (GOOD.replace('title: "A good article"\n', "").encode(), "no title"),
    "no_url.md": (GOOD.replace('webUrl: "https://good.example/a"\n', "").encode(), "no URL"),
    "related_not_list.md": (
        b'---\ntitle: t\nwebUrl: "https://good.example/c"\nrelated: "none"\n---\n',
        "field 'related' must be list"),
    "python_tag.md": (
        b"---\ntitle: !!python/object/apply:os.system ['touch /tmp/pwned']\n"
        b"webUrl: https://good.example/d\n---\n", "YAML tag not allowed"),
    "alias_bomb.md": (BOMB.encode(), "alias bomb"),
    "too_large.md": (b"---\ntitle: big\nwebUrl: https://good.example/e\n---\n"
                     + b"x" * (1 << 20), "file too large"),
    # Values the YAML constructors cannot build: each once aborted the whole import.
    "impossible_day.md": (GOOD.replace("2021-03-01T10", "2020-02-30T10").encode(),
                          "day is out of range"),
    "hour_25.md": (GOOD.replace("2021-03-01T10", "2021-03-01T25").encode(), "hour must be"),
    "int_tag_on_text.md": (GOOD.replace('excerpt: "Fine."', 'quality: !!int "high"').encode(),
                           "invalid literal for int()"),
    "int_beyond_64_bits.md": (GOOD.replace('excerpt: "Fine."', "quality: " + "9" * 30).encode(),
                              "out of range"),
    "float_tag_on_text.md": (GOOD.replace('excerpt: "Fine."', 'heat: !!float "hot"').encode(),
                             "YAML value cannot be read"),
    "duplicate_key.md": (GOOD.replace('excerpt: "Fine."', 'title: "Another title"').encode(),
                         "duplicate key 'title'"),
    # An article whose own URL cannot be linked to is not imported (never reaches a page).
    "javascript_url.md": (GOOD.replace("https://good.example/a",
                                       "javascript://example.com/%0aalert(document.domain)")
                          .encode(), "only http(s) URLs"),
    "data_url.md": (GOOD.replace("https://good.example/a", "data:text/html,<script>x</script>")
                    .encode(), "only http(s) URLs"),
    "tab_in_scheme.md": (GOOD.replace('"https://good.example/a"', '"java\\tscript:alert(1)"')
                         .encode(), "only http(s) URLs"),
}

# A good article whose bad parts are dropped, each with a warning: → words of each warning.
PARTLY_BAD = """---
title: "Good, with bad parts"
webUrl: "https://good.example/partly"
ampWebUrl: "data:text/html,x"
images:
  - url: "javascript:alert('img')"
related:
  - title: "Evil"
    webUrl: "JaVaScRiPt://evil.example/%0aalert(1)"
  - title: "Fine"
    webUrl: "https://good.example/fine"
---
"""
PARTLY_BAD_WARNINGS = ("ampWebUrl dropped", "images[0].url dropped", "related[0] dropped")


def write_bad_files(folder: Path, prefix: str = "") -> dict[str, str]:
    """Write every bad kind into `folder` (names after `prefix`), special files included (a
    FIFO, which once hung the import, and a link to /dev/zero, which exhausted memory);
    returns path → expected reason words."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (data, words) in BAD.items():
        (folder / f"{prefix}{name}").write_bytes(data)
        expected[str(folder / f"{prefix}{name}")] = words
    os.mkfifo(folder / f"{prefix}fifo.md")
    expected[str(folder / f"{prefix}fifo.md")] = "not a regular file"
    (folder / f"{prefix}zero.md").symlink_to("/dev/zero")
    expected[str(folder / f"{prefix}zero.md")] = "not a regular file"
    return expected
