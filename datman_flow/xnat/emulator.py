"""An XNAT-compatible HTTP server over a folder of DICOM sessions, for demos and tests.

Serves `DATA/<project>/<session label>/**` (see emulator_index for how folders become
experiments, scans and files, including the `N-2` naming of colliding series numbers).
GET routes, each also under `/REST` and `/data/archive` instead of `/data`:
  /data/projects, /data/projects/P/experiments, /data/experiments?project=P,
  /data/experiments/E/scans (or /data/projects/P/experiments/E-or-label/scans),
  .../scans/S/resources, .../scans/S/resources/DICOM/files (JSON, or ?format=zip),
  .../scans/S/resources/DICOM/files/NAME, .../scans/ALL/files?format=zip.
Listings are `{"ResultSet": {"Result": [...], "totalRecords": "N", "title": ...}}` with string
values. Zips are stored (uncompressed), streamed chunked without Content-Length, members named
`label/scans/S-description/resources/DICOM/files/NAME` as XNAT does. Auth works like XNAT:
HTTP Basic, or the JSESSIONID cookie from `/data/JSESSION` (DELETE ends it). Faults can be
injected for tests: failing statuses, cut zip streams, expired sessions, HTML garbage,
corrupted zip members.
"""
from __future__ import annotations

import base64
import io
import re
import time
import zipfile
import hmac
import json
import logging
import secrets
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .emulator_index import EmulatorIndex, FileEntry, ScanEntry, SessionEntry

log = logging.getLogger(__name__)

_GARBAGE = (b"<!DOCTYPE html>\n<html><head><title>XNAT - Login</title></head>\n"
            b"<body><form action=\"/login\" method=\"post\">Please log in</form></body></html>\n")


class XnatEmulator:
    """The emulator server; `start()` runs it in a background thread (port 0 = any free port)."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = 0,
                 user: str = "admin", password: str = "admin") -> None:
        self.index = EmulatorIndex(Path(data_dir))
        self.host, self.port = host, port
        self._user, self._password = user, password
        self._lock = threading.Lock()
        self._sessions: set[str] = set()
        self._fail: list[int] = []
        self._cuts: list[int] = []
        self._garbage = 0
        self._corrupt = 0
        self.request_log: deque[tuple[str, str]] = deque(maxlen=10_000)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> XnatEmulator:
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="xnat-emulator", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("XnatEmulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_open_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> XnatEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # fault injection -------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503) -> None:
        """The next n requests (except /data/JSESSION) answer `status`."""
        with self._lock:
            self._fail.extend([status] * n)

    def cut_next_zip(self, after_bytes: int, times: int = 1) -> None:
        """The next `times` zip downloads break off (unterminated) after `after_bytes` bytes,
        or just before the terminating chunk when the zip is smaller than that."""
        with self._lock:
            self._cuts.extend([after_bytes] * times)

    def expire_sessions(self) -> None:
        """Every JSESSIONID handed out so far becomes invalid."""
        with self._lock:
            self._sessions.clear()

    def garbage_next(self, n: int) -> None:
        """The next n listing (JSON) requests answer 200 with an HTML page."""
        with self._lock:
            self._garbage += n

    def corrupt_next_file(self, n: int = 1) -> None:
        """In each of the next n zips, one member's bytes are flipped (its MD5 changes)."""
        with self._lock:
            self._corrupt += n

    # used by the handler ---------------------------------------------------------------
    def take_failure(self) -> int | None:
        with self._lock:
            return self._fail.pop(0) if self._fail else None

    def take_garbage(self) -> bool:
        with self._lock:
            if self._garbage:
                self._garbage -= 1
                return True
            return False

    def take_zip_faults(self) -> tuple[int | None, bool]:
        with self._lock:
            cut = self._cuts.pop(0) if self._cuts else None
            corrupt = self._corrupt > 0
            self._corrupt -= int(corrupt)
            return cut, corrupt

    def check_basic(self, encoded: str) -> bool:
        try:
            user, _, password = base64.b64decode(encoded.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (hmac.compare_digest(user, self._user)
                and hmac.compare_digest(password, self._password))

    def new_session(self) -> str:
        sid = secrets.token_hex(16).upper()
        with self._lock:
            self._sessions.add(sid)
        return sid

    def session_valid(self, sid: str | None) -> bool:
        with self._lock:
            return sid is not None and sid in self._sessions

    def drop_session(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.discard(sid or "")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: XnatEmulator) -> None:
        self.emulator = emulator
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "XNAT-emulator/1.0"
    timeout = 300
    server: _Server

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
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        segments = _data_segments(split.path)
        if segments == ["JSESSION"]:
            return self._jsession(method)
        status = emu.take_failure()
        if status is not None:
            return self._text(status, f"{status} (fault injected by the XNAT emulator)\n")
        if not self._authorized():
            return self._unauthorized()
        if method != "GET":
            return self._text(405, f"{method} is not supported by the XNAT emulator\n")
        try:
            route = resolve(emu.index, segments, query)
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
        emu = self.server.emulator
        if route.kind == "json":
            if emu.take_garbage():
                return self._body(200, _GARBAGE, "text/html;charset=UTF-8")
            envelope = {"ResultSet": {"Result": route.rows, "totalRecords": str(len(route.rows)),
                                      "title": route.title}}
            return self._body(200, json.dumps(envelope).encode(), "application/json")
        if route.kind == "file":
            f = route.file
            assert f is not None
            with open(f.path, "rb") as fh:
                left = Path(f.path).stat().st_size
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
            return
        self._send_zip(route)

    def _send_zip(self, route: Route) -> None:
        cut, corrupt = self.server.emulator.take_zip_faults()
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Disposition", f'attachment; filename="{route.zip_name}"')
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        writer = ChunkedWriter(self.wfile, cut)
        try:
            write_zip(writer, route.members, corrupt_first=corrupt)
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


def _data_segments(path: str) -> list[str] | None:
    """Path segments after `/data`, `/REST` or `/data/archive`; None for other paths."""
    segments = [unquote(s) for s in path.split("/") if s]
    if segments[:2] == ["data", "archive"]:
        return segments[2:]
    if segments[:1] in (["data"], ["REST"]):
        return segments[1:]
    return None


# routes ----------------------------------------------------------------------------------
class NotFound(Exception):
    """The URL names a project, experiment, scan, resource or file that does not exist."""


@dataclass
class Route:
    kind: str  # "json", "file" or "zip"
    rows: list[dict[str, str]] = field(default_factory=list)
    title: str = ""
    file: FileEntry | None = None
    members: list[tuple[str, FileEntry]] = field(default_factory=list)
    zip_name: str = ""


def resolve(index: EmulatorIndex, segs: list[str] | None, query: dict[str, str]) -> Route:
    """Map the path segments after /data to what to answer."""
    if not segs:
        raise NotFound("unknown URL")
    if segs[0] == "projects":
        if len(segs) == 1:
            return Route("json", [_project_row(p) for p in index.projects()], "Projects")
        project = segs[1]
        if project not in index.projects():
            raise NotFound(f"project {project}")
        if len(segs) == 2:
            return Route("json", [_project_row(project)], "Projects")
        if segs[2] != "experiments":
            raise NotFound("/".join(segs))
        if len(segs) == 3:
            return _experiments(index, project)
        session = index.experiment(segs[3], project)
        if session is None:
            raise NotFound(f"experiment {segs[3]} in project {project}")
        return _session_route(index, session, segs[4:], query)
    if segs[0] == "experiments":
        if len(segs) == 1:
            return _experiments(index, query.get("project"))
        session = index.experiment(segs[1])
        if session is None:
            raise NotFound(f"experiment {segs[1]}")
        return _session_route(index, session, segs[2:], query)
    raise NotFound("/".join(segs))


def _experiments(index: EmulatorIndex, project: str | None) -> Route:
    rows = [{"ID": s.id, "label": s.label, "project": s.project, "date": index.session_date(s),
             "xsiType": "xnat:mrSessionData", "insert_date": s.insert_date,
             "URI": f"/data/experiments/{s.id}"} for s in index.experiments(project)]
    return Route("json", rows, "Matching experiments")


def _session_route(index: EmulatorIndex, session: SessionEntry, rest: list[str],
                   query: dict[str, str]) -> Route:
    if not rest:
        return _experiments_row(index, session)
    if rest[0] != "scans":
        raise NotFound("/".join(rest))
    scans = index.scans(session)
    if len(rest) == 1:
        rows = [_scan_row(session, s) for s in scans]
        return Route("json", rows, "Scans")
    wanted = [s for s in scans if rest[1] == "ALL" or s.id in rest[1].split(",")]
    if not wanted:
        raise NotFound(f"scan {rest[1]} of {session.id}")
    tail = rest[2:]
    want_zip = query.get("format") == "zip"
    if tail == ["files"] and want_zip:
        return _zip_route(session, wanted)
    if len(wanted) != 1:
        raise NotFound("/".join(rest))
    scan = wanted[0]
    if not tail:
        return Route("json", [_scan_row(session, scan)], "Scans")
    res_id = str(index.resource_id(session, scan.id))
    if tail == ["resources"]:
        row = {"xnat_abstractresource_id": res_id, "label": "DICOM", "format": "DICOM",
               "content": "", "element_name": "xnat:resourceCatalog", "category": "scans",
               "cat_id": scan.id, "file_count": str(len(scan.files)),
               "file_size": str(scan.total_size)}
        return Route("json", [row], "Resources")
    if len(tail) < 3 or tail[0] != "resources" or tail[1] not in ("DICOM", res_id) \
            or tail[2] != "files":
        raise NotFound("/".join(rest))
    if len(tail) == 3:
        if want_zip:
            return _zip_route(session, [scan])
        base = f"/data/experiments/{session.id}/scans/{scan.id}/resources/DICOM/files"
        rows = [{"Name": f.name, "Size": str(f.size), "URI": f"{base}/{f.name}",
                 "collection": "DICOM", "file_tags": "", "file_format": "DICOM",
                 "file_content": "", "cat_ID": "", "digest": index.digest(f)} for f in scan.files]
        return Route("json", rows, "Files")
    name = "/".join(tail[3:])
    match = next((f for f in scan.files if f.name == name), None)
    if match is None:
        raise NotFound(f"file {name} of scan {scan.id}")
    return Route("file", file=match)


def _project_row(project: str) -> dict[str, str]:
    return {"ID": project, "secondary_ID": project, "name": project, "description": "",
            "URI": f"/data/projects/{project}"}


def _experiments_row(index: EmulatorIndex, session: SessionEntry) -> Route:
    route = _experiments(index, session.project)
    route.rows = [r for r in route.rows if r["ID"] == session.id]
    return route


def _scan_row(session: SessionEntry, scan: ScanEntry) -> dict[str, str]:
    return {"ID": scan.id, "type": scan.description, "series_description": scan.description,
            "quality": "usable", "xsiType": "xnat:mrScanData", "note": "",
            "URI": f"/data/experiments/{session.id}/scans/{scan.id}"}


def _zip_route(session: SessionEntry, scans: list[ScanEntry]) -> Route:
    members = []
    for scan in scans:
        folder = (f"{session.label}/scans/{scan.id}-{re.sub(r'[^A-Za-z0-9]', '_', scan.description)}"
                  "/resources/DICOM/files")
        members.extend((f"{folder}/{f.name}", f) for f in scan.files)
    return Route("zip", members=members, zip_name=f"{session.label}.zip")


# zip streaming ---------------------------------------------------------------------------
class StreamCut(Exception):
    """Raised when an injected cut ends a zip stream."""


class ChunkedWriter(io.RawIOBase):
    """Unseekable sink writing HTTP/1.1 chunks of ~64 KiB; optionally breaks off after a limit."""

    def __init__(self, out: io.BufferedIOBase, limit: int | None) -> None:
        super().__init__()
        self._out, self._limit = out, limit
        self._buf = bytearray()
        self.sent = 0
        self._dead = False

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        if self._dead:
            raise StreamCut()
        self._buf += data
        if len(self._buf) >= 1 << 16:
            self._flush()
        return len(data)

    def _flush(self) -> None:
        data = bytes(self._buf)
        self._buf.clear()
        if not data:
            return
        if self._limit is not None and self.sent + len(data) > self._limit:
            self._dead = True  # announce the full chunk, send only part of it, then drop
            self._out.write(b"%X\r\n" % len(data) + data[: max(0, self._limit - self.sent)])
            raise StreamCut()
        self._out.write(b"%X\r\n" % len(data) + data + b"\r\n")
        self.sent += len(data)

    def finish(self) -> None:
        self._flush()
        if self._limit is not None:  # a cut beyond the end: drop before the terminating chunk
            self._dead = True
            raise StreamCut()
        self._out.write(b"0\r\n\r\n")


def write_zip(sink: ChunkedWriter, members: list[tuple[str, FileEntry]], corrupt_first: bool) -> None:
    """Write the members as a stored zip to an unseekable sink (sizes in data descriptors)."""
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for arcname, f in members:
            stamp = time.localtime(max(f.mtime_ns / 1e9, 315532800 + 86400))[:6]
            info = zipfile.ZipInfo(arcname, date_time=stamp)
            info.file_size = f.size
            with open(f.path, "rb") as src, zf.open(info, "w") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    if corrupt_first:
                        chunk, corrupt_first = bytes([chunk[0] ^ 0xFF]) + chunk[1:], False
                    dst.write(chunk)


def run_emulator(data_dir: Path, host: str = "127.0.0.1", port: int = 8080,
                 user: str = "admin", password: str = "admin") -> None:
    """Serve `data_dir` as an XNAT server until Ctrl-C (blocking; used by the CLI)."""
    emulator = XnatEmulator(data_dir, host=host, port=port, user=user, password=password)
    emulator.start()
    print(f"XNAT emulator serving {Path(data_dir).resolve()} at {emulator.url} "
          f"(user {user!r}); Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("XNAT emulator stopped", flush=True)
    finally:
        emulator.stop()


serve = run_emulator
