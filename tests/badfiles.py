"""One file of each bad kind the importer must name and skip (shared by several tests)."""

from __future__ import annotations

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
}


def write_bad_files(folder: Path) -> dict[str, str]:
    """Write every bad kind into `folder`; returns path → expected reason words."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (data, words) in BAD.items():
        (folder / name).write_bytes(data)
        expected[str(folder / name)] = words
    return expected
