"""Every setting, written down once: its name, default, meaning, environment variable,
`create_app` key and command-line flag (Datasette's `Setting(name, default, help)`).

Precedence: a command-line flag, then the mapping given to `create_app`, then the
environment (`RECOMMENDER_<NAME>`), then the default. The CLI, the web app and the server
read settings through `get` only, so the shells always agree; the README's settings table
lists every one (a test fails when one is missing).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SettingError(ValueError):
    """A setting's value that cannot be used; the message names the variable."""


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    flag: str | None = None  # the command-line flag, where one fits

    @property
    def env(self) -> str:
        return "RECOMMENDER_" + self.name.upper()

    @property
    def key(self) -> str:
        """The `create_app(config)` key (Flask's upper-case config names)."""
        return self.name.upper()

    def parse(self, text: str, source: str) -> Any:
        kind = type(self.default)
        if kind is str or self.default is None:
            return text
        if kind is bool:
            if text.lower() not in _BOOLEANS:
                raise SettingError(f"{source}={text!r}: {self.name} must be true or false")
            return _BOOLEANS[text.lower()]
        try:
            value = kind(text)
        except ValueError:
            raise SettingError(f"{source}={text!r}: {self.name} must be a "
                               f"{'whole number' if kind is int else 'number'}") from None
        if value < 0:
            raise SettingError(f"{source}={text!r}: {self.name} must not be negative")
        return value


SETTINGS: dict[str, Setting] = {s.name: s for s in [
    Setting("instance", "instance", "per-deployment state: the default catalog, the latest "
            "evaluation report"),
    Setting("catalog", "", "SQLite catalog file or postgresql:// URL (empty: "
            "INSTANCE/catalog.sqlite3)", flag="--catalog"),
    Setting("models", "models", "the models directory (versions and `current`)",
            flag="--models"),
    Setting("cluster", "", "address of a Dask scheduler (tcp://HOST:8786) whose workers rank "
            "the stories in `train` (empty: this machine's cores)", flag="--cluster"),
    Setting("incremental_max_changed", 0.05, "share of the stories that may be new or changed "
            "since the current version for `train` to grow it (re-rank only the stories the "
            "import reaches) instead of training anew"),
    Setting("incremental_max_new_terms", 0.2, "how much larger a share of the new or changed "
            "stories' words than of the fitted stories' words may be missing from the current "
            "version's vocabulary for `train` to grow it"),
    Setting("full_train_days", 7.0, "days after which `train` trains anew even when the "
            "catalog changed little (the kept features, statistics and ranker catch up with "
            "the catalog, and editors' judgements are learned)"),
    Setting("host", "127.0.0.1", "address `serve` binds", flag="--host"),
    Setting("port", 8000, "port `serve` binds", flag="--port"),
    Setting("pages_port", 0, "port of the editors' pages, sign-in and actions, apart from the "
            "API (0: on the API's port); the API's port then answers the API alone",
            flag="--pages-port"),
    Setting("workers", 2, "gunicorn worker processes", flag="--workers"),
    Setting("threads", 4, "request threads a worker (requests are read in its poller, so "
            "slow clients hold none)", flag="--threads"),
    Setting("timeout", 60, "seconds a busy worker may go silent before gunicorn restarts it"),
    Setting("keepalive", 30, "seconds an idle connection (or one that sent nothing yet) is "
            "kept"),
    Setting("graceful_timeout", 10, "seconds a stopping worker finishes its requests"),
    Setting("access_log", "", "gunicorn's access log: a path, or - for stderr (empty: none; "
            "the app logs one line a request)"),
    Setting("request_seconds", 10.0, "seconds from a request's first byte to its last before "
            "the connection is dropped"),
    Setting("read_timeout", 3.0, "seconds a request thread waits for a byte past what the "
            "poller gathered"),
    Setting("max_body", 64 * 1024, "largest POST body, in bytes (413 past it)"),
    Setting("answer_cache", 8192, "answers a worker caches per model version and catalog "
            "state"),
    Setting("answer_cache_dir", "", "directory of the answer cache a server's workers share "
            "(empty: `serve` makes a temporary one; each answer is then computed once per "
            "server, not once per worker)"),
    Setting("answer_cache_mb", 256, "size of the shared answer cache, in MB (the least "
            "recently stored answers go first)"),
    Setting("cors_origins", "*", "origins whose pages may call the JSON API from a browser "
            "(comma-separated, * for any; empty: none)"),
    Setting("cache_max_age", 300, "seconds a browser or CDN may reuse a GET answer "
            "(Cache-Control max-age; ETag revalidation after that)"),
    Setting("api_keys", False, "require a key (X-API-Key header) on the JSON API's /v1 "
            "endpoints; keys are made with `recommender apikey add`"),
    Setting("rate_limit", "", "requests a client may make to /v1, e.g. 600/minute;20/second "
            "(per API key, else per client address; a batch counts its items; empty: no "
            "limit)"),
    Setting("rate_limit_storage", "", "where rate-limit counters live: empty for the catalog's "
            "PostgreSQL database (shared by replicas) or, for a SQLite catalog, "
            "INSTANCE/rate_limits.sqlite3; or a storage URI of the limits library "
            "(redis://..., memory://)"),
    Setting("trusted_proxies", 0, "reverse proxies in front of the service whose "
            "X-Forwarded-For is believed (the client address that rate limits count by)"),
    Setting("secret_key", "", "signs the editors' session cookies and CSRF tokens (empty: a "
            "random key made once and kept in INSTANCE/secret_key)"),
    Setting("story_cache", 20000, "stories a worker keeps read per catalog state (a "
            "ranking's stories recur from one answer to the next)"),
    Setting("reverify_seconds", 300.0, "seconds between background re-hashes of the served "
            "model's files"),
]}


def get(name: str, flag: Any = None, config: Mapping[str, Any] | None = None) -> Any:
    """The value of setting `name`: the flag, else the config mapping, else the
    environment, else the default."""
    setting = SETTINGS[name]
    if flag is not None:
        return flag
    if config is not None and setting.key in config:
        return config[setting.key]
    text = os.environ.get(setting.env)
    if text:
        return setting.parse(text, setting.env)
    return setting.default


def instance_dir(config: Mapping[str, Any] | None = None) -> Path:
    """Per-deployment state (catalog, evaluation reports), like Flask's instance folder."""
    return Path(get("instance", config=config))


def catalog_location(flag: str | None = None, config: Mapping[str, Any] | None = None) -> str:
    return get("catalog", flag, config) or str(instance_dir(config) / "catalog.sqlite3")


def models_dir(flag: str | None = None, config: Mapping[str, Any] | None = None) -> Path:
    return Path(get("models", flag, config))
