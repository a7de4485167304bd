"""An XNAT-compatible HTTP server over a folder of DICOM sessions, for demos and tests.

Serves `DATA/<project>/<session label>/**` (see index.py for how folders become
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
corrupted zip members, hostile scan IDs, listings without digests or cut short (totalRecords
disagreeing), scans vanishing between two calls, members larger than listed or endless,
answers dripped a byte at a time, and restarts (connections refused, then 503, for a while).

This module holds the server object (lifecycle, credentials and sessions, the fault API) and
`run_emulator`; the pieces live beside it in this package: handler.py (HTTP server and request
handler), routes.py (URLs and rows), zipstream.py (zip streaming), faults.py (injected faults),
index.py (the data folder as projects, sessions, scans, files) and dicom_header.py (the four
DICOM tags read from each file).
"""
from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from collections import deque
from pathlib import Path

from .faults import Drip, FaultState
from .gauge import DownloadGauge
from .handler import EmulatorServer
from .index import EmulatorIndex


class XnatEmulator:
    """The emulator server; `start()` runs it in a background thread (port 0 = any free port)."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = 0,
                 user: str = "admin", password: str = "admin") -> None:
        self.index = EmulatorIndex(Path(data_dir))
        self.host, self.port = host, port
        self._user, self._password = user, password
        self._lock = threading.Lock()
        self._sessions: set[str] = set()
        self.faults = FaultState()
        self.downloads = DownloadGauge()  # zip streams in flight, and their peaks (benchmarks/soak.py)
        self.request_log: deque[tuple[str, str]] = deque(maxlen=10_000)
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None
        self._comeback: threading.Timer | None = None
        self._lifecycle = threading.Lock()

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> XnatEmulator:
        self._server = EmulatorServer(self._address or (self.host, self.port), self)
        self._address = self._server.server_address[:2]  # a restart comes back on the same port
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="xnat-emulator", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._address is None:
            raise RuntimeError("XnatEmulator is not started")
        host, port = self._address
        return f"http://{host}:{port}"

    def stop(self) -> None:
        with self._lifecycle:
            if self._comeback is not None:
                self._comeback.cancel()
                self._comeback = None
            self._halt()

    def restart(self, seconds: float, refused: float | None = None) -> None:
        """Imitate a Tomcat restart lasting `seconds` from now: open connections are cut and
        every session is lost; connections are refused for the first `refused` seconds (all of
        them by default), then every request, logins included, answers 503 until the end."""
        refused = seconds if refused is None else min(refused, seconds)
        self.expire_sessions()
        self.faults.unavailable_for(seconds)
        if refused <= 0:
            return
        with self._lifecycle:
            self._halt()
            self._comeback = threading.Timer(refused, self._come_back)
            self._comeback.daemon = True
            self._comeback.start()

    def _come_back(self) -> None:
        with self._lifecycle:
            if self._comeback is None:  # stopped meanwhile
                return
            self._comeback = None
            self.start()

    def _halt(self) -> None:
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

    # fault injection (see FaultState) --------------------------------------------------
    def fail_next(self, n: int, status: int = 503) -> None:
        """The next n requests (except /data/JSESSION) answer `status`."""
        self.faults.fail_next(n, status)

    def cut_next_zip(self, after_bytes: int, times: int = 1) -> None:
        """The next `times` zip downloads break off (unterminated) after `after_bytes` bytes,
        or just before the terminating chunk when the zip is smaller than that."""
        self.faults.cut_next_zip(after_bytes, times)

    def garbage_next(self, n: int) -> None:
        """The next n listing (JSON) requests answer 200 with an HTML page."""
        self.faults.garbage_next(n)

    def corrupt_next_file(self, n: int = 1) -> None:
        """In each of the next n zips, one member's bytes are flipped (its MD5 changes)."""
        self.faults.corrupt_next_file(n)

    def hostile_scan_ids(self, ids: dict[str, str]) -> None:
        """XNAT scan IDs are free text: list (and serve) scan `k` as `ids[k]`, e.g. '..',
        '../../nii', '/abs/path' or 'a/b'."""
        self.faults.scan_ids = dict(ids)

    def disable_checksums(self) -> None:
        """List every file's `digest` empty, as a site with checksums turned off does."""
        self.faults.digests_off = True

    def oversize_next_member(self, extra_bytes: int, times: int = 1) -> None:
        """The first member of each of the next `times` zips is `extra_bytes` longer than listed."""
        self.faults.oversize_next_member(extra_bytes, times)

    def endless_next_zip(self, times: int = 1) -> None:
        """The next `times` zips never end: the first member streams filler until the client leaves."""
        self.faults.oversize_next_member(None, times)

    def drip_next(self, interval: float = 2.0, *, seconds: float | None = None, after_bytes: int = 0,
                  kind: str | None = None, times: int = 1) -> None:
        """The next `times` answers (of `kind` "json" or "zip", or any) are sent one byte every
        `interval` seconds from their first byte on, status line and headers included, or after
        `after_bytes` sent at full speed; for `seconds` (then at once) or to the end."""
        self.faults.drip_next(Drip(interval, seconds, after_bytes), kind, times)

    def shorten_next_listing(self, drop: int = 1, times: int = 1) -> None:
        """The next `times` JSON listings lose their last `drop` rows; totalRecords still counts them."""
        self.faults.shorten_next_listing(drop, times)

    def vanish_scan(self, scan_id: str, after_listings: int = 1, how: str = "404") -> None:
        """Scan `scan_id` is listed `after_listings` more times, then deleted: gone from listings,
        its files 404 (`how="404"`) or listed empty (`how="empty"`)."""
        self.faults.vanish_scan(scan_id, after_listings, how)

    def clear_faults(self) -> None:
        """Drop every pending fault: the server is well again."""
        self.faults.clear()

    def expire_sessions(self) -> None:
        """Every JSESSIONID handed out so far becomes invalid."""
        with self._lock:
            self._sessions.clear()

    def take_failure(self) -> int | None:
        return self.faults.take_failure()

    def take_garbage(self) -> bool:
        return self.faults.take_garbage()

    def take_zip_faults(self) -> tuple[int | None, bool]:
        return self.faults.take_zip_faults()

    # auth ------------------------------------------------------------------------------
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


def run_emulator(data_dir: Path, host: str = "127.0.0.1", port: int = 8080,
                 user: str = "admin", password: str = "admin") -> None:
    """Serve `data_dir` as an XNAT server until Ctrl-C (blocking; used by the CLI)."""
    emulator = XnatEmulator(data_dir, host=host, port=port, user=user, password=password)
    emulator.start()
    print(f"XNAT emulator serving {Path(data_dir).resolve()} at {emulator.url} "  # noqa: T201 - `datman-flow xnat-emulator`
          f"(user {user!r}); Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("XNAT emulator stopped", flush=True)  # noqa: T201
    finally:
        emulator.stop()


serve = run_emulator
