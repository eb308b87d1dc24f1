"""`recommender serve`: the Flask app under gunicorn, configured in code."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from gunicorn.app.base import BaseApplication

from recommender import settings

from . import balance, rate_limits
from .worker import DroppedClientFilter, GuardedThreadWorker


class _Server(BaseApplication):
    def __init__(self, options: dict) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        # What an operator is used to setting for any gunicorn app (`--workers 1`, ...).
        env_args = self.cfg.parser().parse_args(self.cfg.get_cmd_args_from_env())
        for key, value in vars(env_args).items():
            if value is not None and key != "args" and key in self.cfg.settings:
                self.cfg.set(key.lower(), value)

    def load(self):
        # With preload_app this runs once, in the master, before the workers fork: the
        # libraries' code and data (numpy, scipy, scikit-learn, Flask) are then shared by
        # every worker instead of loaded by each. The model itself is loaded per worker,
        # memory-mapped, so its arrays are shared through the page cache.
        import recommender.model  # noqa: F401 - imported for its side effect: shared pages

        from . import create_app

        return create_app()


def serve(flags: dict | None = None) -> None:
    """Run the service; `flags` are the command line's (None: not given), every other
    setting comes from the environment or its default (recommender.settings). gunicorn's
    own GUNICORN_CMD_ARGS applies last, as with the `gunicorn` command."""
    flags = flags or {}

    def value(name: str):
        return settings.get(name, flags.get(name))

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    logging.getLogger("gunicorn.error").addFilter(DroppedClientFilter())
    rate_limits.checked(value("rate_limit"))  # one line now, not a failed worker later
    GuardedThreadWorker.read_timeout = value("read_timeout")
    GuardedThreadWorker.request_seconds = value("request_seconds")
    GuardedThreadWorker.body_limit = value("max_body")
    cache_dir = value("answer_cache_dir")
    own_cache = not cache_dir
    if own_cache:  # the workers' shared answers, for the life of this server
        cache_dir = tempfile.mkdtemp(prefix="recommender-answers-")
    os.environ[settings.SETTINGS["answer_cache_dir"].env] = cache_dir  # read by create_app
    try:
        _run(value)
    finally:
        if own_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)


def _run(value) -> None:
    _Server({
        "bind": [f"{value('host')}:{value('port')}"]
        + ([f"{value('host')}:{value('pages_port')}"] if value("pages_port") else []),
        "workers": value("workers"),
        "threads": value("threads"),
        # gthread (keep-alive, SQLite reads overlap) that holds against stalled clients
        "worker_class": "service.worker.GuardedThreadWorker",
        "keepalive": value("keepalive"),
        "timeout": value("timeout"),
        "graceful_timeout": value("graceful_timeout"),
        "accesslog": value("access_log") or None,  # by default the app logs each request
        "errorlog": "-",
        "control_socket_disable": True,  # a fixed path would collide between replicas
        "preload_app": True,
        **balance.hooks(),
    }).run()
