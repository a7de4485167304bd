"""The XNAT emulator's HTTP side: the threading server and the request handler.

The handler checks auth (HTTP Basic or the JSESSIONID cookie), applies injected faults, asks
routes.py what the URL names and sends it: JSON listings, single files with a
Content-Length, zips chunked (zipstream.py).
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from .faults import Drip
from .routes import NotFound, Route, data_segments, resolve
from .zipstream import ChunkedWriter, StreamCut, write_zip

if TYPE_CHECKING:
    from .server import XnatEmulator

log = logging.getLogger(__name__)

GARBAGE = (b"<!DOCTYPE html>\n<html><head><title>XNAT - Login</title></head>\n"
           b"<body><form action=\"/login\" method=\"post\">Please log in</form></body></html>\n")
STARTING = (b"<!doctype html><html lang=\"en\"><head><title>HTTP Status 503 - Service Unavailable</title>"
            b"</head><body><h1>HTTP Status 503 - Service Unavailable</h1><p>The requested service is not "
            b"currently available.</p><hr/><h3>Apache Tomcat</h3></body></html>")


class EmulatorServer(ThreadingHTTPServer):
    """One thread per connection; remembers open connections so `stop()` can cut them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: XnatEmulator) -> None:
        self.emulator = emulator
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, EmulatorHandler)

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "XNAT-emulator/1.0"
    timeout = 300
    # headers and body go out in separate writes: with Nagle on, the body waited for the
    # client's delayed ACK (~40 ms on every request on Linux)
    disable_nagle_algorithm = True
    server: EmulatorServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        emu = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        emu.request_log.append((method, self.path))
        if emu.faults.unavailable():  # Tomcat up, the XNAT webapp still starting: even logins
            return self._body(503, STARTING, "text/html;charset=utf-8")
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        segments = data_segments(split.path)
        if segments == ["JSESSION"]:
            return self._jsession(method)
        status = emu.faults.take_failure()
        if status is not None:
            return self._text(status, f"{status} (fault injected by the XNAT emulator)\n")
        if not self._authorized():
            return self._unauthorized()
        if method != "GET":
            return self._text(405, f"{method} is not supported by the XNAT emulator\n")
        try:
            route = resolve(emu.index, segments, query, emu.faults)
        except NotFound as exc:
            return self._text(404, f"Not found: {exc}\n")
        try:
            self._send_route(route)
        except OSError as exc:
            if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                self.close_connection = True
                return
            self._text(500, f"Internal error: {exc}\n")

    def _send_route(self, route: Route) -> None:
        drip = self.server.emulator.faults.take_drip(route.kind)
        if drip is None:
            return self._send_content(route)
        wfile = self.wfile
        self.wfile = _DripWriter(wfile, drip)  # type: ignore[assignment]
        try:
            self._send_content(route)
        finally:
            self.wfile = wfile

    def _send_content(self, route: Route) -> None:
        emu = self.server.emulator
        if route.kind == "json":
            if emu.faults.take_garbage():
                return self._body(200, GARBAGE, "text/html;charset=UTF-8")
            shown = route.rows[:len(route.rows) - emu.faults.take_short_listing()]
            envelope = {"ResultSet": {"Result": shown, "totalRecords": str(len(route.rows)),
                                      "title": route.title}}
            return self._body(200, json.dumps(envelope).encode(), "application/json")
        if route.kind == "file":
            assert route.file is not None
            return self._send_file(route.file.path)
        self._send_zip(route)

    def _send_file(self, path: Path) -> None:
        with open(path, "rb") as fh:
            left = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(left))
            self.end_headers()
            while left > 0:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:  # the file shrank: the client must see a short body
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                left -= len(chunk)

    def _send_zip(self, route: Route) -> None:
        with self.server.emulator.downloads.streaming(route.session):  # headers to last byte
            self._stream_zip(route)

    def _stream_zip(self, route: Route) -> None:
        faults = self.server.emulator.faults
        cut, corrupt = faults.take_zip_faults()
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Disposition", f'attachment; filename="{route.zip_name}"')
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        writer = ChunkedWriter(self.wfile, cut)
        try:
            write_zip(writer, route.members, corrupt_first=corrupt, oversize=faults.take_oversize())
            writer.finish()
        except (StreamCut, ValueError, OSError):  # cut, client gone, or a file vanished:
            self.close_connection = True         # end the stream unterminated, as a drop would
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _jsession(self, method: str) -> None:
        emu = self.server.emulator
        auth = self.headers.get("Authorization", "")
        sid = self._cookie_session()
        if method == "DELETE":
            emu.drop_session(sid)
            return self._text(200, "")
        if auth.startswith("Basic "):
            if not emu.check_basic(auth[6:]):
                return self._unauthorized()
            sid = emu.new_session()
        elif not emu.session_valid(sid):
            return self._unauthorized()
        assert sid is not None
        self._body(200, sid.encode(), "text/plain",
                   [("Set-Cookie", f"JSESSIONID={sid}; Path=/; HttpOnly")])

    def _cookie_session(self) -> str | None:
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get("JSESSIONID")
        except CookieError:
            return None
        return morsel.value if morsel is not None else None

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            return self.server.emulator.check_basic(auth[6:])
        return self.server.emulator.session_valid(self._cookie_session())

    def _unauthorized(self) -> None:
        self._body(401, b"<html><body><h1>HTTP Status 401 - Unauthorized</h1></body></html>",
                   "text/html", [("WWW-Authenticate", 'Basic realm="XNAT"')])

    def _text(self, status: int, text: str) -> None:
        self._body(status, text.encode(), "text/plain;charset=UTF-8")

    def _body(self, status: int, body: bytes, ctype: str,
              extra: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra or []:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class _DripWriter:
    """Sends what is written one byte every `interval` seconds (after `after_bytes` sent at full
    speed, for `seconds`, then at once), as a server (or a proxy) that trickles its answer does."""

    def __init__(self, out, drip: Drip) -> None:  # type: ignore[no-untyped-def]
        self._out, self._drip = out, drip
        self._fast = drip.after_bytes  # bytes still to send at full speed before dripping
        self._until: float | None = None

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        if self._fast:
            head, view = view[:self._fast], view[self._fast:]
            self._out.write(head)
            self._fast -= len(head)
        if view and self._until is None and self._drip.seconds is not None:
            self._until = time.monotonic() + self._drip.seconds
        for i in range(len(view)):
            if self._until is not None and time.monotonic() >= self._until:
                self._out.write(view[i:])
                break
            self._out.write(view[i:i + 1])
            time.sleep(self._drip.interval)
        return len(data)

    def flush(self) -> None:
        self._out.flush()
