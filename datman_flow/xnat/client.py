"""XNAT REST client: session login, retries while XNAT is unavailable (retry.py), a deadline on
every request (transport.py), strict parsing of ResultSet JSON (rows counted against totalRecords)."""
from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any, BinaryIO, ClassVar
from urllib.parse import quote, urlencode

import requests

from .deadline import Deadline, sooner
from .errors import (
    XnatAuthError,
    XnatBadResponse,
    XnatDeadline,
    XnatError,
    XnatNotFound,
    XnatOversize,
    XnatTruncated,
)
from .models import Experiment, RemoteFile, Scan
from .retry import RETRY_STATUSES, Outage, RetryPolicy
from .transport import MAX_LISTING_BYTES, Reply, Sockets, Watchdog, read_all, watched_session

log = logging.getLogger(__name__)

CHUNK = 1 << 20
LOGOUT_SECONDS = 30.0
EXPERIMENT_COLUMNS = "ID,label,project,date,xsiType,insert_date,last_modified,URI"
NO_RETRY = RetryPolicy(budget=0)


def _q(segment: str) -> str:
    return quote(str(segment), safe="")


def _snippet(text: str, limit: int = 200) -> str:
    return text[:limit].replace("\n", " ").strip()


class XnatClient:
    """Talks to one XNAT server; logs in lazily and keeps the JSESSIONID cookie. One thread at
    a time (fetch_session gives each worker its own client).

    `timeout`: (connect, read) seconds for each socket operation; `request_timeout`: wall-clock
    limit of one request, its body included; `retry_budget`: seconds an unavailable XNAT
    (connection errors, 500/502/503/504) is retried for, by default `default_retry_budget`;
    `backoff`: the first delay between retries, doubling up to 30 s. Every method also takes a
    `deadline` of the work it is part of (say, a scan's): no request outlives it.
    """

    default_retry_budget: ClassVar[float] = 300.0

    def __init__(self, url: str, user: str, password: str, *,
                 timeout: tuple[float, float] = (5, 60), request_timeout: float = 600.0,
                 retry_budget: float | None = None, backoff: float = 0.5) -> None:
        if "@" in url:  # user:password@host would reach logs and error messages: refused, never echoed
            scheme, sep, _ = url.partition("://")
            shown = f"{scheme + sep if sep and '@' not in scheme else ''}***@{url.rpartition('@')[2]}"
            raise ValueError(f"XNAT URL {shown} holds credentials; pass them as user and password "
                             "(from XNAT_USER / XNAT_PASS), never in the URL")
        if not request_timeout > 0:
            raise ValueError(f"request_timeout must be a positive number of seconds, not {request_timeout!r}")
        self.url = url.rstrip("/")
        self.user = user
        self._password = password
        self.timeout = timeout
        self.request_timeout = float(request_timeout)
        self.retry = RetryPolicy(self.default_retry_budget if retry_budget is None else retry_budget, backoff)
        self._sockets: Sockets = Sockets()
        self._session = watched_session(self._sockets)
        self._session.headers["User-Agent"] = "datman-flow"
        self._logged_in = False

    @classmethod
    def from_env(cls, url: str, env: Mapping[str, str] | None = None, **kwargs: Any) -> XnatClient:
        """Credentials from XNAT_USER / XNAT_PASS (os.environ at call time unless env is given)."""
        env = os.environ if env is None else env
        missing = [name for name in ("XNAT_USER", "XNAT_PASS") if not env.get(name)]
        if missing:
            raise XnatAuthError(f"no credentials for XNAT at {url}: set the environment "
                                f"variables XNAT_USER and XNAT_PASS (missing: {', '.join(missing)})")
        return cls(url, env["XNAT_USER"], env["XNAT_PASS"], **kwargs)

    # public API ------------------------------------------------------------------------
    def list_experiments(self, project: str, *, deadline: Deadline | None = None) -> list[Experiment]:
        path = f"/data/projects/{_q(project)}/experiments"
        rows, url = self._results(path, {"format": "json", "columns": EXPERIMENT_COLUMNS}, deadline)
        return [Experiment(
            id=_field(row, "ID", url), label=_field(row, "label", url),
            project=_field(row, "project", url, project), date=_field(row, "date", url, ""),
            xsi_type=_field(row, "xsiType", url, ""), insert_date=_field(row, "insert_date", url, ""),
            uri=_field(row, "URI", url, f"/data/experiments/{row.get('ID', '')}"),
            last_modified=_field(row, "last_modified", url, ""),
        ) for row in rows]

    def list_scans(self, experiment_id: str, *, deadline: Deadline | None = None) -> list[Scan]:
        rows, url = self._results(f"/data/experiments/{_q(experiment_id)}/scans", {"format": "json"}, deadline)
        return [Scan(
            id=_field(row, "ID", url), type=_field(row, "type", url, ""),
            series_description=_field(row, "series_description", url, ""),
            quality=_field(row, "quality", url, ""), xsi_type=_field(row, "xsiType", url, ""),
        ) for row in rows]

    def list_files(self, experiment_id: str, scan_id: str, resource: str = "DICOM", *,
                   deadline: Deadline | None = None) -> list[RemoteFile]:
        path = self._files_path(experiment_id, scan_id, resource)
        rows, url = self._results(path, {"format": "json"}, deadline)
        files = []
        for row in rows:
            size = _field(row, "Size", url)
            if not size.isdigit():
                raise XnatBadResponse(f"{url} listed file {row.get('Name')!r} with Size {size!r}, "
                                      "not a whole number")
            files.append(RemoteFile(name=_field(row, "Name", url), size=int(size),
                                    uri=_field(row, "URI", url),
                                    digest=_field(row, "digest", url, "").lower() or None))
        return files

    def download_files_zip(self, experiment_id: str, scan_id: str, out: BinaryIO,
                           resource: str = "DICOM", *, max_bytes: int | None = None,
                           deadline: Deadline | None = None) -> int:
        """Stream the resource's files as a zip into `out`; returns the bytes written.

        Raises XnatTruncated when the stream breaks off, XnatOversize (having written at most
        `max_bytes`) when it goes on longer, XnatDeadline when it outlives its deadline. The zip
        itself is not checked here.
        """
        path = self._files_path(experiment_id, scan_id, resource)
        reply = self._request("GET", path, params={"format": "zip"}, stream=True, deadline=deadline)
        url, written = reply.response.url, 0
        try:
            for chunk in reply.response.iter_content(CHUNK):
                if max_bytes is not None and written + len(chunk) > max_bytes:
                    raise XnatOversize(f"zip stream from {url} exceeds {max_bytes} bytes (the listed files' "
                                       f"sizes plus zip overhead): cut off after {written} bytes")
                out.write(chunk)
                written += len(chunk)
        except requests.RequestException as exc:
            if reply.watch.fired:
                raise XnatDeadline(f"zip stream from {url} cut off at {reply.limit} after {written} bytes") from None
            raise XnatTruncated(f"zip stream from {url} ended early after {written} "
                                f"bytes ({type(exc).__name__}: {_snippet(str(exc), 300)})") from exc
        finally:
            reply.close()
        if reply.watch.fired:  # a body without length or chunks simply ends when cut
            raise XnatDeadline(f"zip stream from {url} cut off at {reply.limit} after {written} bytes")
        return written

    def close(self) -> None:
        if self._logged_in:
            logout = Deadline(min(LOGOUT_SECONDS, self.request_timeout), "the logout's deadline")
            try:
                self._send("DELETE", self.url + "/data/JSESSION", deadline=logout, retry=False).close()
            except XnatError:
                pass
        self._session.close()
        self._logged_in = False

    def __enter__(self) -> XnatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # internals -------------------------------------------------------------------------
    @staticmethod
    def _files_path(experiment_id: str, scan_id: str, resource: str) -> str:
        return (f"/data/experiments/{_q(experiment_id)}/scans/{_q(scan_id)}"
                f"/resources/{_q(resource)}/files")

    def _results(self, path: str, params: dict[str, str],
                 deadline: Deadline | None) -> tuple[list[dict[str, Any]], str]:
        reply = self._request("GET", path, params=params, deadline=deadline)
        url = reply.response.url
        try:
            data = json.loads(reply.body)
        except ValueError:
            raise XnatBadResponse(
                f"{url} answered with something that is not JSON (Content-Type "
                f"{reply.response.headers.get('Content-Type', '?')!r}): {_snippet(reply.text)!r}") from None
        result_set = data.get("ResultSet") if isinstance(data, dict) else None
        rows = result_set.get("Result") if isinstance(result_set, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise XnatBadResponse(f"{url} answered JSON without a ResultSet.Result list of rows: "
                                  f"{_snippet(reply.text)!r}")
        total = result_set.get("totalRecords")  # type: ignore[union-attr]
        if total is not None and (not str(total).strip().isdigit() or int(str(total)) != len(rows)):
            raise XnatBadResponse(f"{url} lists {len(rows)} rows but says totalRecords {total}: "
                                  "an incomplete answer, refused")
        return rows, url

    def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                 stream: bool = False, deadline: Deadline | None = None) -> Reply:
        url = self.url + path
        if not self._logged_in:
            self._login(deadline)
        reply = self._send(method, url, params=params, stream=stream, deadline=deadline)
        if reply.status == 401:
            reply.close()
            log.info("XNAT session expired; logging in again as %s", self.user)
            self._login(deadline)
            reply = self._send(method, url, params=params, stream=stream, deadline=deadline)
            if reply.status == 401:
                reply.close()
                raise XnatAuthError(f"XNAT at {self.url} refused the credentials of user "
                                    f"{self.user} (401 for {url} right after logging in)")
        if reply.status != 200:
            reply.close()
            error = XnatNotFound if reply.status == 404 else XnatError
            raise error(f"{method} {reply.response.url} failed: HTTP {reply.status} {_snippet(reply.text)!r}")
        return reply

    def _login(self, deadline: Deadline | None) -> None:
        url = self.url + "/data/JSESSION"
        self._session.cookies.clear()
        reply = self._send("POST", url, auth=(self.user, self._password), deadline=deadline)
        if reply.status in (401, 403):
            raise XnatAuthError(f"XNAT at {self.url} refused the credentials of user {self.user}")
        if reply.status != 200:
            raise XnatError(f"login at {url} failed: HTTP {reply.status} {_snippet(reply.text)!r}")
        session_id = reply.text.strip()
        if "JSESSIONID" not in self._session.cookies and session_id and "<" not in session_id:
            self._session.cookies.set("JSESSIONID", session_id)
        if "JSESSIONID" not in self._session.cookies:
            raise XnatBadResponse(f"login at {url} returned no JSESSIONID: {_snippet(reply.text)!r}")
        self._logged_in = True

    def _send(self, method: str, url: str, *, deadline: Deadline | None, stream: bool = False,
              retry: bool = True, **kwargs: Any) -> Reply:
        """One request within its deadline (the request's or the caller's, the sooner), retried
        while XNAT is unavailable (connection errors, 500/502/503/504) for the retry budget.
        Unless `stream`, the body is read (at most MAX_LISTING_BYTES) and the reply closed."""
        outage: Outage | None = None
        if kwargs.get("params"):
            url = f"{url}?{urlencode(kwargs['params'])}"
            kwargs = {k: v for k, v in kwargs.items() if k != "params"}
        while True:
            limit = sooner(Deadline(self.request_timeout, "the request deadline", "request_timeout"), deadline)
            if limit.expired():
                raise XnatDeadline(f"{method} {url} not sent: {limit} has passed")
            watch = Watchdog(self._sockets, limit.remaining())
            response: requests.Response | None = None
            try:
                response = self._session.request(method, url, timeout=self.timeout, stream=True, **kwargs)
                reply = Reply(response, watch, limit)
                if response.status_code not in RETRY_STATUSES:
                    if not stream:
                        reply.body = read_all(response, MAX_LISTING_BYTES)
                        reply.close()
                        if watch.fired:
                            raise XnatDeadline(f"{method} {url} cut off at {limit}")
                    return reply
                failure = f"HTTP {response.status_code}"
                reply.close()
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                _abandon(watch, response)
                if watch.fired:
                    raise XnatDeadline(f"{method} {url} cut off at {limit}") from None
                failure = _why(exc)
            except BaseException:
                _abandon(watch, response)
                raise
            outage = outage or Outage(self.retry if retry else NO_RETRY, self.url, f"{method} {url}", deadline)
            delay = outage.failed(failure)
            if delay is None:
                raise outage.error()
            time.sleep(delay)


def _abandon(watch: Watchdog, response: requests.Response | None) -> None:
    watch.cancel()
    if response is not None:
        response.close()


def _why(exc: Exception) -> str:
    """A network error in a few words: '[Errno 111] Connection refused' rather than urllib3's
    three nested reprs."""
    errno = re.search(r"\[Errno -?\d+\] [^'\")\]]+", str(exc))
    return f"{type(exc).__name__}: {errno.group(0) if errno else _snippet(str(exc), 300)}"


def _field(row: dict[str, Any], key: str, url: str, default: str | None = None) -> str:
    value = row.get(key)
    if value is None:
        if default is None:
            raise XnatBadResponse(f"{url} returned a row without {key!r}: {_snippet(repr(row))}")
        return default
    return str(value)
