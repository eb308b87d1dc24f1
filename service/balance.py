"""Keep-alive connections spread evenly over the workers, not as they happened to be
accepted.

A gunicorn worker keeps every connection it accepts for as long as the client keeps it
alive. With a few long-lived connections (a proxy's pool, a page renderer's client), one
worker can end up holding three of four busy connections while the other idles: measured
with bench/serve.py at 100,000 stories, POST p99 was 66-82 ms in such phases against
35-41 ms when the split was even (same code, same run). So each worker publishes how many
connections it holds in shared memory, and a worker holding `MARGIN` or more over the
least loaded one answers its next request with `Connection: close`. The client reconnects
and the worker with room, idle in accept, usually takes the connection. When the split is
even nothing is closed.
"""

from __future__ import annotations

import multiprocessing
import os

SLOTS = 64  # workers a server may run at once (gunicorn can add workers at run time)
MARGIN = 2  # connections over the least loaded worker before one is shed


class ConnectionBalance:
    """Open connections per worker slot, shared by the master's forked workers."""

    def __init__(self) -> None:
        self.pids = multiprocessing.RawArray("i", SLOTS)  # 0: free slot
        self.conns = multiprocessing.RawArray("i", SLOTS)
        self.used = multiprocessing.RawValue("i", 0)  # slots ever claimed (a high-water mark)
        self.lock = multiprocessing.Lock()
        self.slot = -1  # this process's slot, set after fork

    def claim(self) -> None:
        """In a new worker: take a free slot, or the slot of a worker that died."""
        with self.lock:
            for i in range(SLOTS):
                if self.pids[i] == 0 or not _alive(self.pids[i]):
                    self.pids[i], self.conns[i], self.slot = os.getpid(), 0, i
                    self.used.value = max(self.used.value, i + 1)
                    return

    def release(self, pid: int) -> None:
        with self.lock:
            for i in range(self.used.value):
                if self.pids[i] == pid:
                    self.pids[i], self.conns[i] = 0, 0

    def should_shed(self, held: int) -> bool:
        """Publish that this worker holds `held` connections; True when it holds MARGIN or
        more over the least loaded live worker (reads are racy by design: a stale count
        costs at most one needless reconnect or one request more on a busy worker)."""
        if self.slot < 0:
            return False
        self.conns[self.slot] = held
        n = self.used.value
        pids, conns = self.pids[:n], self.conns[:n]
        least = min((c for i, (p, c) in enumerate(zip(pids, conns, strict=True))
                     if p and i != self.slot), default=held)
        return held - least >= MARGIN


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hooks() -> dict:
    """gunicorn server hooks that run the balance (created in the master, before forking)."""
    balance = ConnectionBalance()

    def post_fork(server, worker) -> None:  # noqa: ARG001 - gunicorn's hook signature
        balance.claim()

    def child_exit(server, worker) -> None:  # noqa: ARG001
        balance.release(worker.pid)

    def pre_request(worker, req) -> None:
        held = getattr(worker, "nr_conns", None)  # gthread workers count their connections
        if held is not None and balance.should_shed(held):
            req.must_close = True  # this response says "Connection: close"

    return {"post_fork": post_fork, "child_exit": child_exit, "pre_request": pre_request}
