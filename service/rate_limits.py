"""Rate limits on the JSON API, by Flask-Limiter, per API key or else per client address.

Counters must be shared by every process that answers for the service, or each worker and
replica would grant the limit again. The limits library stores them in Redis, Memcached or
MongoDB; a deployment of this service already has a database that all its replicas reach,
so by default the counters live there (`CounterTable`, a `limits` storage): in the
catalog's PostgreSQL database, or, for a SQLite catalog (one host), in a SQLite file of the
instance folder beside it, never in the catalog file itself (a request would then wait for
an import's writes). Any storage URI of the limits library may be set instead.

Fixed windows: one row per (limit, client), incremented by one upsert. A storage failure
never fails a request: Flask-Limiter lets it through and logs (swallow_errors).
"""

from __future__ import annotations

import threading
import time

import limits
from flask import Flask, request
from flask_limiter import Limiter
from limits.storage import Storage

from recommender import database, settings

SCHEME = "recommender+db"
SCHEMA = ["""CREATE TABLE IF NOT EXISTS rate_limits (
    key TEXT PRIMARY KEY,
    count {int} NOT NULL,
    expires DOUBLE PRECISION NOT NULL
)"""]
PURGE_EVERY = 1000  # increments between sweeps of expired counters (per process)


class CounterTable(Storage):
    """Fixed-window counters in a table of a SQLite or PostgreSQL database (location in
    the `location` storage option); one connection per thread."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 location: str = "", **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.location = location
        self._local = threading.local()
        self._increments = 0
        # On a connection of its own: this runs in the server's master process, and a
        # connection must not cross the fork into the workers.
        db = database.connect(location, readonly=False)
        try:
            db.create_schema(SCHEMA)
        finally:
            db.close()

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return (database.DatabaseError, *self._db().errors)

    def _db(self) -> database.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = database.connect(self.location, readonly=False)
        return db

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        self._increments += 1
        if self._increments % PURGE_EVERY == 0:
            self._db().execute("DELETE FROM rate_limits WHERE expires <= ?", (now,))
        # One statement: a counter whose window has ended starts again at `amount`.
        return self._db().execute(
            "INSERT INTO rate_limits (key, count, expires) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN rate_limits.expires <= ? THEN excluded.count "
            "ELSE rate_limits.count + excluded.count END, "
            "expires = CASE WHEN rate_limits.expires <= ? THEN excluded.expires "
            "ELSE rate_limits.expires END RETURNING count",
            (key, amount, now + expiry, now, now)).fetchone()[0]

    def get(self, key: str) -> int:
        row = self._db().execute("SELECT count FROM rate_limits WHERE key = ? AND expires > ?",
                                 (key, time.time())).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._db().execute("SELECT expires FROM rate_limits WHERE key = ?",
                                 (key,)).fetchone()
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        try:
            self._db().execute("SELECT 1").fetchone()
        except self.base_exceptions:
            return False
        return True

    def reset(self) -> int | None:
        return self._db().execute("DELETE FROM rate_limits").rowcount

    def clear(self, key: str) -> None:
        self._db().execute("DELETE FROM rate_limits WHERE key = ?", (key,))


def client() -> str:
    """Whom a request counts against: its API key's name when it sent a live one, else its
    address (behind `trusted_proxies` proxies, the address they forwarded)."""
    from .api import key_holder

    name = key_holder()
    return f"key:{name}" if name else f"address:{request.remote_addr}"


def _storage(config) -> tuple[str, dict]:
    uri = config["RATE_LIMIT_STORAGE"].strip()
    if uri:
        return uri, {}
    catalog = config["CATALOG"]
    if database.is_postgres(catalog):
        return f"{SCHEME}://", {"location": catalog}
    return f"{SCHEME}://", {"location": str(settings.instance_dir(config) / "rate_limits.sqlite3")}


def checked(limit: str) -> str:
    """The rate_limit setting, refused at start when the limits library cannot read it."""
    limit = limit.strip()
    try:
        if limit:
            limits.parse_many(limit)
    except ValueError:
        raise settings.SettingError(
            f"rate_limit={limit!r}: not a limit such as 600/minute;20/second") from None
    return limit


def init_app(app: Flask) -> None:
    """Limits on the api blueprint only: health checks and the editors' pages are never
    limited, nor are CORS preflights."""
    limit = checked(app.config["RATE_LIMIT"])
    if not limit:
        return
    from .api import request_cost

    uri, options = _storage(app.config)
    app.extensions["rate_limiter"] = Limiter(
        client, app=app, application_limits=[limit], application_limits_cost=request_cost,
        application_limits_exempt_when=lambda: (request.blueprint != "api"
                                                or request.method == "OPTIONS"),
        storage_uri=uri, storage_options=options, strategy="fixed-window",
        headers_enabled=True, swallow_errors=True)

