"""The gunicorn worker: gthread, made to hold against slow and idle clients by itself.

Stock gthread hands a connection to a pool thread as soon as it is accepted (or turns
readable), and the thread then blocks reading the request. A few connections that open and
stall (idle ones, `GET / HTTP/1.1\\r\\nHost: x\\r\\n` and nothing more, a body that never
comes) each hold a thread, and with a handful of threads the service stops answering.

This worker reads each request in the poller instead, without blocking: the bytes a
connection sends are gathered there until the request is whole (its head, and a body of the
length it declares, a chunked body's last chunk, or a head asking `Expect: 100-continue`),
and only then does a thread take it, with every byte already in the parser's buffer. Waiting
costs no thread at all, whatever the number of connections that wait. A connection that
sends nothing is closed after the keep-alive timeout; one whose request has not arrived
whole `request_seconds` after its first byte is closed (one log line). In the thread, a
kernel receive timeout (`SO_RCVTIMEO`) still bounds any read the parser makes past what was
gathered.

Errors gunicorn answers itself, before the application sees a request (a request line or
header past the limits, bad framing), are JSON like every other error of the service.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import re
import selectors
import socket
import struct
import time
from functools import partial

from gunicorn import util
from gunicorn.workers import gthread

from recommender.settings import SETTINGS

HEAD_LIMIT = 72 * 1024  # past this, the parser gets what came and names the error

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*([0-9]{1,12})[ \t]*\r?$", re.I | re.M)
_CHUNKED = re.compile(rb"^transfer-encoding[ \t]*:.*chunked", re.I | re.M)
_CONTINUE = re.compile(rb"^expect[ \t]*:[ \t]*100-continue", re.I | re.M)
_LAST_CHUNK = re.compile(rb"(?:^|\r\n)0+(?:;[^\r\n]*)?\r\n(?:.*\r\n)?\r\n\Z", re.S)


def request_is_whole(data: bytes, body_limit: int) -> bool:
    """Whether `data` holds a whole request for the parser, or as much of one as the
    service will ever wait for (past the limits the parser and the app name the error: a
    body declared longer than `body_limit` is the application's 413 to give)."""
    end = _HEAD_END.search(data)
    if end is None:
        return len(data) >= HEAD_LIMIT
    head, body = data[:end.start()], data[end.end():]
    if _CONTINUE.search(head):
        return True  # the client waits for "100 Continue", which the parser sends
    if _CHUNKED.search(head):
        return len(body) > body_limit or _LAST_CHUNK.search(body) is not None
    length = _LENGTH.search(head)
    if length is None:
        return True
    return len(body) >= min(int(length.group(1)), body_limit + 1)


class GuardedThreadWorker(gthread.ThreadWorker):
    """gthread whose threads take only requests that have arrived whole."""

    # Class attributes: `service.server` sets them from the settings in the master, before
    # the workers fork.
    read_timeout: float = SETTINGS["read_timeout"].default
    request_seconds: float = SETTINGS["request_seconds"].default
    body_limit: int = SETTINGS["max_body"].default

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._gathering: dict[gthread.TConn, float] = {}  # connection → its deadline

    # -- gathering requests in the poller -------------------------------------------------

    def accept(self, listener) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = gthread.TConn(self.cfg, sock, addr, listener.getsockname())  # non-blocking
        self._gather(conn, time.monotonic() + self.cfg.keepalive)

    def on_client_socket_readable(self, conn, client) -> None:
        """A kept-alive connection sends its next request: gathered like a new one."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._gather(conn, time.monotonic() + self.request_seconds)
        self._on_bytes(conn, client)

    def _gather(self, conn, deadline: float) -> None:
        conn.sock.setblocking(False)
        conn.gathered = bytearray()
        self._gathering[conn] = deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_bytes, conn))

    def _on_bytes(self, conn, _sock) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed (or reset) before its request was whole
            self._drop(conn)
            return
        if not conn.gathered:  # the first byte starts the request's clock
            self._gathering[conn] = min(self._gathering[conn],
                                        time.monotonic() + self.request_seconds)
        conn.gathered += data
        if not request_is_whole(bytes(conn.gathered), self.body_limit):
            return
        self.poller.unregister(conn.sock)
        del self._gathering[conn]
        conn.init()  # the parser (blocking socket from here on)
        conn.parser.unreader.unread(bytes(conn.gathered))
        conn.gathered = bytearray()
        conn.data_ready = True  # gthread's own wait for a first byte is skipped
        self.enqueue_req(conn)

    def _drop(self, conn) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self._gathering.pop(conn, None)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        # A stopping worker does not wait for requests that have not begun to arrive.
        late = [conn for conn, deadline in self._gathering.items()
                if deadline <= now or not (self.alive or conn.gathered)]
        for conn in late:
            if conn.gathered:
                self.log.info("dropped a client whose request did not arrive whole in %ss",
                              self.request_seconds)
            self._drop(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        if force:  # the worker stops: connections still gathering a request go too
            for conn in list(self._gathering):
                self._drop(conn)

    def enqueue_req(self, conn) -> None:
        seconds = int(self.read_timeout)
        micros = int((self.read_timeout - seconds) * 1_000_000)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             struct.pack("ll", seconds, micros))
        super().enqueue_req(conn)

    # -- gunicorn's own error answers, as JSON --------------------------------------------

    def handle_error(self, req, client, addr, exc) -> None:
        """gunicorn's status and logging for errors found before the application runs, with
        the service's JSON body (`{"error", "message"}`) in place of gunicorn's HTML page."""
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        status, _, reason = captured.status_line().partition(" ")
        if not status.isdigit():
            return
        code = int(status)
        message = (f"{reason}: {str(exc)[:200]}" if code < 500
                   else "internal error; see the server log")
        body = json.dumps({"error": reason.lower().replace(" ", "_"),
                           "message": message}).encode()
        head = (f"HTTP/1.1 {code} {reason}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "X-Content-Type-Options: nosniff\r\n\r\n").encode("latin-1")
        try:
            util.write_nonblock(client, head + body)
        except OSError:
            self.log.debug("Failed to send error message.")


class _Captured:
    """Stands in for the client socket while gunicorn writes its error page: the status
    line is kept, the HTML is not sent."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.data += data

    def status_line(self) -> str:
        first = self.data.split(b"\r\n", 1)[0].decode("latin-1")
        return first.partition(" ")[2]  # "414 URI Too Long"


class DroppedClientFilter(logging.Filter):
    """gunicorn logs a read that timed out as a socket error with a traceback; under a
    slow-client attack that would be a traceback per connection. One line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BlockingIOError | TimeoutError):
            record.msg, record.args, record.exc_info = (
                "dropped a client whose request stalled for %ss",
                (GuardedThreadWorker.read_timeout,), None)
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
