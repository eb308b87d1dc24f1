"""Read-only catalog connections lent to requests and given back when they end.

A server answers each request on one of a few threads, and a request reads the catalog a
few times. Opening a connection per request costs more than the reads (a PostgreSQL
connection most of all); holding one per thread for the thread's life leaves connections
open past the requests that needed them, with no one to close them. So a request takes an
idle connection (or opens one), and the end of the request gives it back (the Flask app
does so in `teardown_appcontext`, as flaskr closes its database). At most `idle` are kept;
one whose file was replaced under it (a rebuilt SQLite catalog) is closed, never lent.
"""

from __future__ import annotations

import threading

from .catalog import Catalog


class CatalogPool:
    def __init__(self, location: str, idle: int = 4) -> None:
        self.location = location
        self.idle = idle
        self._free: list[Catalog] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> Catalog:
        while True:
            with self._lock:
                catalog = self._free.pop() if self._free else None
            if catalog is None:
                return Catalog(self.location, readonly=True)
            if not catalog.replaced():
                return catalog
            catalog.close()

    def give(self, catalog: Catalog) -> None:
        with self._lock:
            if not self._closed and len(self._free) < self.idle:
                self._free.append(catalog)
                return
        catalog.close()

    def close(self) -> None:
        """Close the idle connections; connections lent out are closed when given back."""
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        for catalog in free:
            catalog.close()

    def __len__(self) -> int:
        return len(self._free)
