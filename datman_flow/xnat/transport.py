"""HTTP sessions whose connections can be cut when a deadline passes.

requests' timeouts bound each socket operation, not a request: a server that sends one byte
every few seconds (in its headers, a chunk-size line or the body) keeps a request alive for
ever. Each `requests.Session` made here remembers the sockets it opens; a `Watchdog` armed for
a request shuts them down when its deadline passes, which wakes a read blocked anywhere inside
requests, urllib3 or http.client. A client (and so its session) is used by one thread at a
time, so the sockets cut are those of the request that ran out of time (an idle pooled one is
reconnected by urllib3 on its next use).

`Reply` is an answer with its armed watchdog; `read_all` reads a listing's body, bounded.
"""
from __future__ import annotations

import socket
import threading
import weakref
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .deadline import Deadline
from .errors import XnatOversize

CHUNK = 1 << 20
MAX_LISTING_BYTES = 256 << 20  # a listing of 50,000 files is ~15 MB


class Sockets:
    """The sockets one session has opened (held weakly: closed ones drop out), readable from a
    watchdog's thread while the session adds to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._held.add(sock)

    def snapshot(self) -> list[socket.socket]:
        with self._lock:
            return list(self._held)


def watched_session(sockets: Sockets) -> requests.Session:
    """A requests session that adds every socket it connects to `sockets`."""

    class Connection(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    class SecureConnection(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}

    session = requests.Session()
    adapter = Adapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Watchdog:
    """Shuts down every socket in `sockets` after `seconds`, unless cancelled first.

    `fired` tells afterwards whether it did: an error (or an early end of a body) seen by the
    request is then the deadline's doing. Once `cancel()` returns the watchdog can no longer fire.
    """

    def __init__(self, sockets: Sockets, seconds: float) -> None:
        self._sockets = sockets
        self._lock = threading.Lock()
        self._cancelled = False
        self.fired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self.fired = True
            for sock in self._sockets.snapshot():
                try:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the fd itself, even under TLS
                except OSError:
                    pass  # already closed

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
        self._timer.cancel()


@dataclass
class Reply:
    """One answer: the response (its body read into `body` unless streamed) and the watchdog
    of its deadline `limit`, armed until `close()`."""

    response: requests.Response
    watch: Watchdog
    limit: Deadline
    body: bytes = b""

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def close(self) -> None:
        self.watch.cancel()
        self.response.close()


def read_all(response: requests.Response, limit: int) -> bytes:
    """The whole body, refused (XnatOversize) beyond `limit` bytes."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise XnatOversize(f"{response.url} announces {length} bytes, more than the {limit} a listing may have")
    parts, size = [], 0
    for chunk in response.iter_content(CHUNK):
        size += len(chunk)
        if size > limit:
            raise XnatOversize(f"{response.url} sent more than the {limit} bytes a listing may have: cut off")
        parts.append(chunk)
    return b"".join(parts)
