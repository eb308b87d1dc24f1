"""The `recommender` command: a thin argparse shell over the library's functions.

Each subcommand parses its flags, calls one library function, and prints; exit status 0 on
success, 1 when the job ran but found problems (skipped files, a failed check), 2 for usage
errors (argparse's convention).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__, database, settings
from .artifact import TOP_K, ArtifactError
from .catalog import Catalog, CatalogError
from .cluster import ClusterError, connect
from .export import FORMATS as export_formats
from .frontmatter import BadFile

Handler = Callable[[argparse.Namespace], int]


def _catalog_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", metavar="PATH|URL",
                   help="SQLite catalog file or postgresql:// URL (env RECOMMENDER_CATALOG; "
                   "default instance/catalog.sqlite3)")


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_import(args: argparse.Namespace) -> int:
    from .importer import import_paths

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:  # before the catalog is opened, so that a typo creates no empty catalog
        _err(f"error: no such file or folder: {missing[0]}")
        return 2
    progress = not args.quiet and sys.stderr.isatty()
    with Catalog(settings.catalog_location(args.catalog)) as catalog:
        try:
            counts = import_paths(catalog, args.paths, on_error=lambda p, r: _err(f"{p}: {r}"),
                                  on_warning=lambda p, w: _err(f"{p}: warning: {w}"),
                                  progress=progress)
        except FileNotFoundError as exc:
            _err(str(exc))
            return 2
    print(f"imported {counts.imported}, updated {counts.updated}, "
          f"unchanged {counts.unchanged}, skipped {counts.skipped}"
          + (f" ({counts.warnings} items or images dropped)" if counts.warnings else ""))
    return 1 if counts.skipped else 0


def cmd_remove(args: argparse.Namespace) -> int:
    with Catalog(settings.catalog_location(args.catalog)) as catalog:
        results = catalog.remove(args.urls)
    for url, result in results.items():
        if result == "removed":
            print(f"{url}: removed")
        else:
            _err(f"{url}: {result}")
    return 0 if all(r == "removed" for r in results.values()) else 1


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


def _param(text: str) -> tuple[str, object]:
    """NAME=VALUE, the value read as JSON when it parses (numbers, true, lists, which become
    tuples as the model's parameters are), else text."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return name, value
    return name, tuple(parsed) if isinstance(parsed, list) else parsed


def _params_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="set a model parameter, nested ones too (ranker__n_estimators=100); "
                   "repeatable; the manifest records every parameter")


def _models_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", metavar="DIR",
                   help="models directory (env RECOMMENDER_MODELS; default models)")


def cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    progress = not args.quiet and sys.stderr.isatty()
    params = dict(args.param)
    cluster = params.setdefault("cluster", settings.get("cluster", args.cluster) or None)
    try:
        if cluster:
            connect(cluster).close()  # a wrong address is told now, not after the fit
        with Catalog(settings.catalog_location(args.catalog), readonly=True) as catalog:
            manifest = train(catalog, settings.models_dir(args.models), params=params,
                             progress=progress, full=args.full)
    except ClusterError as exc:
        _err(f"error: {exc}")
        return 1
    counts, training, how = manifest["counts"], manifest["training"], manifest["train"]
    grown = (f"grown from {how['grew_from']}, {how['ranked']} stories ranked again"
             if how["kind"] == "incremental" else "full train")
    print(f"model {manifest['version']}: {counts['stories']} stories, "
          f"{counts['curated_lists']} curated lists, {counts['links']} links; "
          f"{grown} ({how['reason']}); "
          f"fit {training['fit_seconds']} s, precompute {training['precompute_seconds']} s; "
          f"now current in {settings.models_dir(args.models)}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from .recommend import Filters, NotFound, Recommender

    if bool(args.url) == bool(args.title):
        _err("error: give a URL, or --title (and --excerpt) for a new article")
        return 2
    text = {"k": str(args.k), "offset": str(args.offset), "since": args.since,
            "until": args.until, "provider": args.provider, "curated": args.curated,
            "dedupe": "false" if args.no_dedupe else "true"}
    try:
        filters = Filters.parse(text.get, lambda name: args.exclude if name == "exclude" else [])
        rec = Recommender(settings.catalog_location(args.catalog),
                          settings.models_dir(args.models))
        try:
            if args.url:
                answer = rec.by_url(args.url, filters)
            else:
                answer = rec.for_article(args.title, args.excerpt or "", args.published,
                                         None, filters, provider=args.article_provider,
                                         topics=args.topic)
        finally:
            rec.close()
    except (NotFound, ValueError, BadFile) as exc:
        _err(f"error: {exc}")
        return 1
    if args.json:
        print(json.dumps(answer.payload(), indent=2))
        return 0
    print(f"{answer.article['title']}  ({answer.article['url'] or 'new article'})")
    for i, r in enumerate(answer.related, answer.offset + 1):
        s = r.story
        score = "pick " if r.score is None else f"{r.score:.3f}"
        print(f"{i:>3}. {score}  {(s.published or '')[:10]:<10}  "
              f"{(s.provider_name or '-')[:24]:<24}  {s.title}\n"
              f"     {s.url}\n     {'; '.join(r.reasons)}")
    if answer.next_offset is not None:
        print(f"more: --offset {answer.next_offset}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import artifact

    models = settings.models_dir(args.models)
    current = artifact.current_version(models)
    rows = []
    for version in reversed(artifact.versions(models)):
        try:
            m = artifact.read_manifest(models, version)
        except ArtifactError as exc:
            rows.append({"version": version, "current": version == current, "error": str(exc)})
            continue
        rows.append({"version": version, "current": version == current,
                     "created": m.get("created"), "stories": m.get("counts", {}).get("stories"),
                     "curated_lists": m.get("counts", {}).get("curated_lists"),
                     "candidate_recall": m.get("training", {}).get("candidate_recall"),
                     "train": m.get("train", {}).get("kind", "full"),
                     "grew_from": m.get("train", {}).get("grew_from")})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no versions in {models} (run `recommender train`)")
    for row in rows:
        mark = "*" if row["current"] else " "
        detail = row.get("error") or (
            f"created {row['created']}, {row['stories']} stories, {row['curated_lists']} "
            f"curated lists, candidate recall {row['candidate_recall']}, "
            + (f"grown from {row['grew_from']}" if row["grew_from"] else "full train"))
        print(f"{mark} {row['version']}  {detail}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from . import artifact

    models = settings.models_dir(args.models)
    before = artifact.current_version(models)
    now = artifact.rollback(models, args.version)
    print(f"current: {now} (was {before}) in {models}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate
    from .report import plot_recall, summary_table, write_report

    progress = not args.quiet and sys.stderr.isatty()
    with Catalog(settings.catalog_location(args.catalog), readonly=True) as catalog:
        report = evaluate(catalog.snapshot(), args.test_fraction, params=dict(args.param),
                          progress=progress, folds=args.folds)
    print(summary_table(report))
    write_report(report, settings.instance_dir() / "evaluation")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.plot:
        plot_recall(report, args.plot)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    # Workers already run side by side on the cores: per-request OpenMP threads in the
    # ranker only add fork/join overhead. Must be set before scikit-learn is first imported.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from service.server import serve

    for name in ("catalog", "models"):  # the app reads them as any deployment would
        if getattr(args, name):
            os.environ[settings.SETTINGS[name].env] = getattr(args, name)
    if args.pages_port:  # the app reads it too: which port answers what
        os.environ[settings.SETTINGS["pages_port"].env] = str(args.pages_port)
    serve({name: getattr(args, name)
           for name in ("host", "port", "pages_port", "workers", "threads")})
    return 0


def cmd_apikey(args: argparse.Namespace) -> int:
    from . import api_keys

    location = settings.catalog_location(args.catalog)
    with Catalog(location, readonly=args.action == "list") as catalog:
        try:
            if args.action == "add":
                key = api_keys.add(catalog, args.name)
                _err(f"key {args.name} added; send it as X-API-Key (shown once: it is not "
                     "kept)")
                print(key)
            elif args.action == "revoke":
                api_keys.revoke(catalog, args.name)
                print(f"key {args.name} revoked")
            else:
                keys = api_keys.listed(catalog)
                if args.json:
                    print(json.dumps([vars(k) for k in keys], indent=2))
                for k in keys if not args.json else []:
                    print(f"{k.name}\tcreated {k.created}\t"
                          + (f"revoked {k.revoked}" if k.revoked else "live"))
        except api_keys.ApiKeyError as exc:
            _err(f"error: {exc}")
            return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportError, export

    with Catalog(settings.catalog_location(args.catalog), readonly=True) as catalog:
        try:
            written = export(catalog, args.path, since=args.since, fmt=args.format)
        except (ExportError, BadFile) as exc:
            _err(f"error: {exc}")
            return 2
    print(f"exported {len(written)} article{'' if len(written) == 1 else 's'} to {args.path}")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from . import editors

    with Catalog(settings.catalog_location(args.catalog),
                 readonly=args.action == "list") as catalog:
        try:
            if args.action == "add":
                if args.password_stdin or not sys.stdin.isatty():
                    password = sys.stdin.readline().rstrip("\r\n")
                else:
                    import getpass

                    password = getpass.getpass(f"password for {args.name}: ")
                editors.add(catalog, args.name, password)
                print(f"editor {args.name} added")
            elif args.action == "remove":
                editors.remove(catalog, args.name)
                print(f"editor {args.name} removed (their judgements stay in the audit trail)")
            else:
                for editor in editors.listed(catalog):
                    print(f"{editor.name}\tsince {editor.created}")
        except editors.EditorError as exc:
            _err(f"error: {exc}")
            return 1
    return 0


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

    p = sub.add_parser("remove", help="remove stories (unpublished, retracted) at once",
                       description="Remove the stories these URLs name (any variant), their "
                       "URL aliases and every curated link from or to them. The service stops "
                       "returning them at once, from precomputed lists too; no later import "
                       "brings them back (their files and mentions in lists are skipped). "
                       "Exit 1 when a URL names no story.")
    p.add_argument("urls", nargs="+", metavar="URL", help="a URL of the story (any variant)")
    _catalog_flag(p)
    p.set_defaults(handler=cmd_remove)

    p = sub.add_parser("stats", help="counts of stories, lists, links, providers, dates",
                       description="Print catalog statistics.")
    _catalog_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("check", help="verify the catalog's integrity",
                       description="Check the catalog: the engine's integrity check, links "
                       "whose ends exist, URL aliases that resolve. Exit 1 with the reasons "
                       "when not sound.")
    _catalog_flag(p)
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("train", help="train a model on the catalog and make it current",
                       description="Fit TF-IDF features and the link ranker on the catalog, "
                       "precompute the top 100 related stories of every story, and publish the "
                       "result as a new version under the models directory (switched "
                       "atomically; the last 3 versions are kept). When the catalog changed "
                       "little since the current version, grow that version instead: keep its "
                       "fitted parts and rank again only the stories the import reaches (the "
                       "same answers a full rank with those parts gives); settings "
                       "incremental_max_changed, incremental_max_new_terms and "
                       "full_train_days say when not.")
    _catalog_flag(p)
    _models_flag(p)
    _params_flag(p)
    setting = settings.SETTINGS["cluster"]
    p.add_argument(setting.flag, metavar="ADDRESS",
                   help=f"{setting.help} (env {setting.env}); the arrays are the same as a "
                   "local run's")
    p.add_argument("--full", action="store_true",
                   help="train anew even when the current version could be grown")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("recommend", help="related stories for a URL or a new article",
                       description="Print the ranked related stories for any URL variant of a "
                       "catalog story (web, original, AMP, AMP cache, with tracking tags), or "
                       "for a new article given by --title and --excerpt; with each story its "
                       "URL and the reasons it was chosen. The filters are the API's.")
    p.add_argument("url", metavar="URL", nargs="?", help="a catalog story's URL")
    p.add_argument("--title", help="a new article's title (instead of a URL)")
    p.add_argument("--excerpt", help="the new article's excerpt")
    p.add_argument("--published", metavar="DATE", help="the new article's ISO date")
    p.add_argument("--article-provider", metavar="NAME", help="the new article's provider")
    p.add_argument("--topic", action="append", default=[], help="a topic of the new article "
                   "(repeatable)")
    p.add_argument("-k", type=int, default=10, help="how many (default 10; k plus --offset "
                   f"at most {TOP_K}, the depth of a ranking)")
    p.add_argument("--offset", type=int, default=0, help="skip this many (paging)")
    p.add_argument("--since", metavar="DATE", help="only stories published on or after DATE")
    p.add_argument("--until", metavar="DATE", help="only stories published on or before DATE")
    p.add_argument("--provider", help="only stories from this provider (name or domain)")
    p.add_argument("--exclude", action="append", default=[], metavar="URL",
                   help="leave this story out (repeatable)")
    p.add_argument("--curated", choices=("first", "model"), default="first",
                   help="first: the story's curated list first (default); model: the model's "
                   "ranking alone")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-dedupe", action="store_true",
                   help="keep syndicated copies (same title from several providers)")
    _catalog_flag(p)
    _models_flag(p)
    p.set_defaults(handler=cmd_recommend)

    p = sub.add_parser("models", help="list the model versions",
                       description="List the model versions, newest first, the current one "
                       "marked with *: when each was created, on how many stories and lists.")
    p.add_argument("--json", action="store_true", help="print JSON")
    _models_flag(p)
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("rollback", help="make an earlier model version current",
                       description="Switch `current` atomically to VERSION (default: the "
                       "newest version older than the current one), once it verifies. Serving "
                       "workers switch on their next request.")
    p.add_argument("version", nargs="?", metavar="VERSION")
    _models_flag(p)
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("evaluate", help="recall against the curated lists, vs a TF-IDF baseline",
                       description="Hold out the newest curated lists as cold test queries, "
                       "train from scratch without them (and without any link to them), and "
                       "report recall@5/10/20, MRR and nDCG@10 for the model and a plain TF-IDF "
                       "baseline. Never touches models/current.")
    p.add_argument("--test-fraction", type=float, default=0.2, metavar="F",
                   help="share of queries held out, newest first (default 0.2)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full report as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="plot recall@k, k = 1..50")
    p.add_argument("--folds", type=int, default=1, metavar="N",
                   help="N rolling folds over the newest F of the queries, each trained on "
                   "what precedes it; reports the mean and spread (default 1: one split)")
    _params_flag(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _catalog_flag(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("apikey", help="add, revoke or list the JSON API's keys",
                       description="Keys for the JSON API, kept (as SHA-256 digests) in the "
                       "catalog, so every replica reads the same ones. Clients send a key in "
                       "the X-API-Key header; keys are required when the api_keys setting is "
                       "on. `add` prints the new key once, on stdout.")
    p.add_argument("action", choices=("add", "revoke", "list"))
    p.add_argument("name", nargs="?", help="the key's name (who holds it); for add and revoke")
    p.add_argument("--json", action="store_true", help="list as JSON")
    _catalog_flag(p)
    p.set_defaults(handler=cmd_apikey)

    p = sub.add_parser("export", help="write the lists editors changed, for the CMS",
                       description="Write one file per article whose list editors changed "
                       "(a judgement made or undone, a retraction of a story on its list): its "
                       "fields and its list as served before the model's picks (curated, "
                       "pinned, less blocked, rejected and retracted), as seed-format front "
                       "matter (md) or JSON. Importing the files back changes nothing.")
    p.add_argument("path", metavar="PATH", help="folder to write into (created if missing)")
    p.add_argument("--since", metavar="DATE", help="only lists changed at or after DATE "
                   "(ISO 8601, UTC unless it says otherwise)")
    p.add_argument("--format", choices=export_formats, default="md",
                   help="md: front matter like the imported files (default); json")
    _catalog_flag(p)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("user", help="add, remove or list the editors who may sign in",
                       description="Editors' accounts for the pages (pin, block, accept, "
                       "reject, retract), kept in the catalog with their passwords as salted "
                       "scrypt hashes. `add` asks for the password (or reads one line from "
                       "stdin with --password-stdin); at least 10 characters.")
    p.add_argument("action", choices=("add", "remove", "list"))
    p.add_argument("name", nargs="?", help="the editor's name; for add and remove")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")
    _catalog_flag(p)
    p.set_defaults(handler=cmd_user)

    p = sub.add_parser("serve", help="run the HTTP service (gunicorn)",
                       description="Serve the JSON API (/v1/related, /v1/model, /healthz, "
                       "/readyz, /openapi.json) under gunicorn. Workers pick up a new "
                       "`recommender train` without a restart.")
    for name in ("host", "port", "pages_port", "workers", "threads"):
        setting = settings.SETTINGS[name]
        p.add_argument(setting.flag, type=type(setting.default), metavar=name.upper(),
                       help=f"{setting.help} (env {setting.env}; default {setting.default})")
    _catalog_flag(p)
    _models_flag(p)
    p.set_defaults(handler=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("apikey", "user") and (args.action == "list") == bool(args.name):
        parser.error(f"{args.command} {args.action} takes "
                     + ("no NAME" if args.action == "list" else "a NAME"))
    handler: Handler = args.handler
    try:
        return handler(args)
    except (CatalogError, ArtifactError, settings.SettingError) as exc:
        _err(f"error: {exc}")
        return 1
    except BrokenPipeError:  # `recommender stats | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ValueError as exc:  # what a model or the protocol refuses: a parameter, a fraction
        if args.command not in ("train", "evaluate"):
            raise
        _err(f"error: {exc}")
        return 1
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            _err("error: no space left on the device"
                 f"{f' for {exc.filename}' if exc.filename else ''} (nothing was published or"
                 " committed past the last whole batch; free space and run again)")
            return 1
        if not database.is_database_error(exc):
            raise
        _err(f"error: the catalog database failed: {str(exc).splitlines()[0]} "
             "(`recommender check` tells whether it is damaged)")
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
