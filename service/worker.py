"""The gunicorn worker: gthread, made to hold against slow and idle clients by itself.

Stock gthread gives each connection a pool thread while its request arrives: a new
connection may hold one for 5 s before any byte comes, and a partial request holds one
until the client finishes it, however long that takes. So a few connections that open and
stall (idle ones, or `GET / HTTP/1.1\\r\\nHost: x\\r\\n` and nothing more) took the whole
service down. This worker changes exactly two things:
- a new connection with no data yet goes straight back to the poller (`FIRST_BYTE_WAIT`),
  where waiting costs no thread, instead of holding one for seconds;
- each connection's socket gets a kernel receive timeout (`SO_RCVTIMEO`, which Python's
  blocking mode leaves alone): a request whose bytes stop coming for `read_timeout` seconds
  is dropped and its thread freed, so a partial request holds a thread for a bounded time.
Idle connections then cost no thread at all, whatever their number; a stalled request costs
one for at most READ_TIMEOUT, so what a burst of them does depends on the threads
(`recommender serve --threads`); README, "Slow and idle clients", says what was measured.
"""

from __future__ import annotations

import logging
import socket
import struct

from gunicorn.workers import gthread

FIRST_BYTE_WAIT = 0.05  # seconds a pool thread waits for a new connection's first bytes
READ_TIMEOUT = 3.0  # seconds a request may go without a byte before it is dropped


class GuardedThreadWorker(gthread.ThreadWorker):
    """gthread with a first-byte wait of FIRST_BYTE_WAIT and a per-read timeout."""

    read_timeout = READ_TIMEOUT

    def enqueue_req(self, conn) -> None:
        seconds = int(self.read_timeout)
        micros = int((self.read_timeout - seconds) * 1_000_000)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             struct.pack("ll", seconds, micros))
        super().enqueue_req(conn)

    def handle(self, conn):
        if not conn.initialized and not conn.data_ready:
            if not conn.wait_for_data(FIRST_BYTE_WAIT):
                return gthread._DEFER  # the poller waits for it, holding no thread
            conn.data_ready = True  # so gthread's own wait (5 s) is skipped
        return super().handle(conn)


class DroppedClientFilter(logging.Filter):
    """gunicorn logs a read that timed out as a socket error with a traceback; under a
    slow-client attack that would be a traceback per connection. One line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BlockingIOError | TimeoutError):
            record.msg, record.args, record.exc_info = (
                "dropped a client whose request stalled for %ss", (READ_TIMEOUT,), None)
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
