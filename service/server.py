"""`recommender serve`: the Flask app under gunicorn, configured in code."""

from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication

from . import balance
from .worker import DroppedClientFilter


class _Server(BaseApplication):
    def __init__(self, options: dict) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        # With preload_app this runs once, in the master, before the workers fork: the
        # libraries' code and data (numpy, scipy, scikit-learn, Flask) are then shared by
        # every worker instead of loaded by each. The model itself is loaded per worker,
        # memory-mapped, so its arrays are shared through the page cache.
        import recommender.model  # noqa: F401 - imported for its side effect: shared pages

        from . import create_app

        return create_app()


def serve(host: str, port: int, workers: int, threads: int = 4) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    logging.getLogger("gunicorn.error").addFilter(DroppedClientFilter())
    _Server({
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        # gthread (keep-alive, SQLite reads overlap) that holds against stalled clients
        "worker_class": "service.worker.GuardedThreadWorker",
        "keepalive": 30,
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": None,  # the app logs one line per request itself
        "errorlog": "-",
        "control_socket_disable": True,  # a fixed path would collide between replicas
        "preload_app": True,
        **balance.hooks(),
    }).run()
