"""The `recommender` command: a thin argparse shell over the library's functions.

Each subcommand parses its flags, calls one library function, and prints; exit status 0 on
success, 1 when the job ran but found problems (skipped files, a failed check), 2 for usage
errors (argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from . import __version__, settings
from .catalog import Catalog, CatalogError

Handler = Callable[[argparse.Namespace], int]


def _catalog_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", metavar="PATH",
                   help="catalog file (env RECOMMENDER_CATALOG; default instance/catalog.sqlite3)")


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_import(args: argparse.Namespace) -> int:
    from .importer import import_paths

    progress = not args.quiet and sys.stderr.isatty()
    with Catalog(settings.catalog_location(args.catalog)) as catalog:
        try:
            counts = import_paths(catalog, args.paths, on_error=lambda p, r: _err(f"{p}: {r}"),
                                  progress=progress)
        except FileNotFoundError as exc:
            _err(str(exc))
            return 2
    print(f"imported {counts.imported}, updated {counts.updated}, "
          f"unchanged {counts.unchanged}, skipped {counts.skipped}")
    return 1 if counts.skipped else 0


def cmd_stats(args: argparse.Namespace) -> int:
    with Catalog(settings.catalog_location(args.catalog), readonly=True) as catalog:
        stats = catalog.stats()
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        width = max(map(len, stats))
        for name, value in stats.items():
            print(f"{name.replace('_', ' '):<{width}}  {value}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    with Catalog(settings.catalog_location(args.catalog), readonly=True) as catalog:
        problems = catalog.check()
    for problem in problems:
        _err(f"{catalog.path}: {problem}")
    if not problems:
        print(f"{catalog.path}: ok")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recommender",
        description="Related-story recommender: import article files, train on curated "
                    "related lists, evaluate, and serve related stories.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("import", help="import article files or folders into the catalog",
                       description="Import article files (*.md, *.markdown, *.txt; folders "
                       "recursively). Bad files are named on stderr with their reason and "
                       "skipped; exit status 1 when any was skipped.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="article file or folder")
    _catalog_flag(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("stats", help="counts of stories, lists, links, providers, dates",
                       description="Print catalog statistics.")
    _catalog_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("check", help="verify the catalog's integrity",
                       description="Check the catalog: SQLite integrity, links whose ends "
                       "exist, URL aliases that resolve. Exit 1 with the reasons when not sound.")
    _catalog_flag(p)
    p.set_defaults(handler=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except CatalogError as exc:
        _err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
