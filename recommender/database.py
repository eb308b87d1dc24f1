"""SQLite and PostgreSQL behind the handful of calls the catalog makes.

The catalog's SQL is written once, in the dialect both engines share (`?` placeholders,
`ON CONFLICT`, `RETURNING`, `NULLS LAST`); what differs — connecting, the schema's column
types, how a writer takes the catalog for itself, and the engine's own integrity check —
lives here. A location that starts with `postgresql://` or `postgres://` is a PostgreSQL
database (libpq URI: `postgresql://user@/dbname?host=/run/postgresql` for a unix socket);
anything else is a SQLite file.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

# Any number unique to this program: the transaction-scoped advisory lock that makes
# PostgreSQL writers take turns, as BEGIN IMMEDIATE does in SQLite.
WRITER_LOCK = 0x52454C41  # "RELA"
WRITER_CACHE_KB = 64 * 1024  # page cache of a connection that writes (docs/scaling.md)


class DatabaseError(RuntimeError):
    """The database cannot be reached or is not a usable catalog."""


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Any: ...


def is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def display(location: str) -> str:
    """The location as messages show it: a PostgreSQL password is never printed."""
    if not is_postgres(location):
        return location
    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_unavailable(exc: BaseException) -> bool:
    """The database failed to answer (down, restarted, locked too long): worth a 503 and a
    retry, unlike a bug."""
    if isinstance(exc, (sqlite3.OperationalError, DatabaseError)):
        return True  # DatabaseError here: a reconnect after a dropped connection failed
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


def is_database_error(exc: BaseException) -> bool:
    """Any error either engine raises (a damaged file, a refused statement, a lost server)."""
    if isinstance(exc, (sqlite3.Error, DatabaseError)):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


def connect(location: str, *, readonly: bool) -> SQLiteDatabase | PostgresDatabase:
    if is_postgres(location):
        return PostgresDatabase(location, readonly=readonly)
    return SQLiteDatabase(location, readonly=readonly)


class SQLiteDatabase:
    """A catalog file in WAL mode: readers never wait for the writer."""

    dialect = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    # What one file's values can make a write fail with (the rest of the import goes on).
    data_errors: tuple[type[BaseException], ...] = (
        sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
        OverflowError, ValueError, TypeError)

    def __init__(self, path: str, *, readonly: bool) -> None:
        if not readonly:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        elif not Path(path).exists():
            raise DatabaseError(f"no catalog at {path} (run `recommender import` first)")
        self._path = Path(path).resolve()
        uri = f"file:{self._path}{'?mode=ro' if readonly else ''}"
        try:
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=60,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout = 60000")
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
                # An import looks up every related item's URLs in an index that outgrows
                # SQLite's default 2 MB page cache past some tens of thousands of stories.
                self.conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KB}")
            self._file = _file_identity(self._path)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{path}: not a usable catalog ({exc})") from None
        except FileNotFoundError:
            raise DatabaseError(f"no catalog at {path} (run `recommender import` first)") from None

    def replaced(self) -> bool:
        """The path names another file than the one opened (or none): a stat, no I/O."""
        try:
            return _file_identity(self._path) != self._file
        except FileNotFoundError:
            return True

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def create_schema(self, statements: list[str]) -> None:
        self.conn.executescript(";\n".join(_sqlite_types(s) for s in statements) + ";")

    def has_schema(self) -> bool:
        return self.has_table("stories")

    def has_table(self, name: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None

    def pipeline(self) -> AbstractContextManager[object]:
        return nullcontext()  # in-process: nothing to save

    def begin_write(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def begin_read(self) -> None:
        self.conn.execute("BEGIN")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def integrity(self) -> list[str]:
        return [f"sqlite: {r[0]}" for r in self.conn.execute("PRAGMA integrity_check")
                if r[0] != "ok"]

    def close(self) -> None:
        self.conn.close()


class PostgresDatabase:
    """One PostgreSQL connection; several importers and replicas may share the database."""

    dialect = "postgresql"

    def __init__(self, url: str, *, readonly: bool) -> None:
        import psycopg  # only deployments on PostgreSQL pay for the driver's import

        self.errors = (psycopg.Error,)
        self.data_errors = (psycopg.DataError, psycopg.IntegrityError, OverflowError,
                            ValueError, TypeError)
        self._url = url
        self._options = "-c default_transaction_read_only=on" if readonly else None
        self._in_transaction = False
        self.conn = self._connect()

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self._url, autocommit=True, options=self._options,
                                   connect_timeout=10)
        except psycopg.Error as exc:
            text = str(exc).strip()
            reason = text.splitlines()[-1] if text else type(exc).__name__
            raise DatabaseError(f"{display(self._url)}: cannot connect ({reason})") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            return self.conn.execute(_pg(sql), params)
        except self.errors:
            # The server dropped the connection (a restart, a failover). A statement on its
            # own is safe to send again on a new one; inside a transaction the caller decides.
            if not self.conn.broken or self._in_transaction:
                raise
            self.conn = self._connect()
            return self.conn.execute(_pg(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(_pg(sql), rows)

    def create_schema(self, statements: list[str]) -> None:
        # Replicas may start together: the lock makes one of them create the tables.
        self.begin_write()
        try:
            for statement in statements:
                self.conn.execute(_postgres_types(statement))
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def has_schema(self) -> bool:
        return self.has_table("stories")

    def has_table(self, name: str) -> bool:
        return self.execute("SELECT to_regclass(?)", (name,)).fetchone()[0] is not None

    def pipeline(self) -> AbstractContextManager[object]:
        """Statements whose results nobody reads go out without waiting for the server;
        the next read waits for them all. Saves most round trips of an import."""
        return self.conn.pipeline()

    def begin_write(self) -> None:
        self.execute("BEGIN")
        self._in_transaction = True
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))

    def begin_read(self) -> None:
        # One snapshot for every statement of the read, as SQLite's read transaction gives.
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        self._in_transaction = True

    def commit(self) -> None:
        self._in_transaction = False
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self._in_transaction = False
        if not self.conn.broken:
            self.conn.execute("ROLLBACK")

    def integrity(self) -> list[str]:
        return []  # PostgreSQL checks its own pages; the catalog's own checks still run

    def replaced(self) -> bool:
        return False  # a database rebuilt under the same name shows a new catalog id

    def close(self) -> None:
        self.conn.close()


Database = SQLiteDatabase | PostgresDatabase


def _file_identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino)


@lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """SQLite's placeholders (`?`, `:name`) in psycopg's form (`%s`, `%(name)s`)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("?", "%s"))


_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)\b")


def _sqlite_types(statement: str) -> str:
    return statement.replace("{id}", "INTEGER PRIMARY KEY").replace("{int}", "INTEGER")


def _postgres_types(statement: str) -> str:
    return (statement.replace("{id}", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            .replace("{int}", "BIGINT").replace(" WITHOUT ROWID", ""))
