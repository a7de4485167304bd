"""XNAT REST client: session login, retries with backoff, strict parsing of ResultSet JSON."""
from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping
from typing import Any, BinaryIO
from urllib.parse import quote

import requests

from .errors import XnatAuthError, XnatBadResponse, XnatError, XnatTruncated, XnatUnavailable
from .models import Experiment, RemoteFile, Scan

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({500, 502, 503, 504})
MAX_DELAY = 30.0
CHUNK = 1 << 20
EXPERIMENT_COLUMNS = "ID,label,project,date,xsiType,insert_date,last_modified,URI"


def _q(segment: str) -> str:
    return quote(str(segment), safe="")


def _snippet(text: str, limit: int = 200) -> str:
    return text[:limit].replace("\n", " ").strip()


class XnatClient:
    """Talks to one XNAT server; logs in lazily and keeps the JSESSIONID cookie."""

    def __init__(self, url: str, user: str, password: str, *,
                 timeout: tuple[float, float] = (5, 60), retries: int = 4,
                 backoff: float = 0.5) -> None:
        if "@" in url:  # user:password@host would reach logs and error messages: refused, never echoed
            scheme, sep, _ = url.partition("://")
            shown = f"{scheme + sep if sep and '@' not in scheme else ''}***@{url.rpartition('@')[2]}"
            raise ValueError(f"XNAT URL {shown} holds credentials; pass them as user and password "
                             "(from XNAT_USER / XNAT_PASS), never in the URL")
        self.url = url.rstrip("/")
        self.user = user
        self._password = password
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._session = requests.Session()
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
    def list_experiments(self, project: str) -> list[Experiment]:
        path = f"/data/projects/{_q(project)}/experiments"
        rows, url = self._results(path, {"format": "json", "columns": EXPERIMENT_COLUMNS})
        return [Experiment(
            id=_field(row, "ID", url), label=_field(row, "label", url),
            project=_field(row, "project", url, project), date=_field(row, "date", url, ""),
            xsi_type=_field(row, "xsiType", url, ""), insert_date=_field(row, "insert_date", url, ""),
            uri=_field(row, "URI", url, f"/data/experiments/{row.get('ID', '')}"),
            last_modified=_field(row, "last_modified", url, ""),
        ) for row in rows]

    def list_scans(self, experiment_id: str) -> list[Scan]:
        rows, url = self._results(f"/data/experiments/{_q(experiment_id)}/scans", {"format": "json"})
        return [Scan(
            id=_field(row, "ID", url), type=_field(row, "type", url, ""),
            series_description=_field(row, "series_description", url, ""),
            quality=_field(row, "quality", url, ""), xsi_type=_field(row, "xsiType", url, ""),
        ) for row in rows]

    def list_files(self, experiment_id: str, scan_id: str, resource: str = "DICOM") -> list[RemoteFile]:
        rows, url = self._results(self._files_path(experiment_id, scan_id, resource), {"format": "json"})
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
                           resource: str = "DICOM") -> int:
        """Stream the resource's files as a zip into `out`; returns the bytes written.

        Raises XnatTruncated when the stream breaks off; the zip itself is not checked here.
        """
        path = self._files_path(experiment_id, scan_id, resource)
        response = self._request("GET", path, params={"format": "zip"}, stream=True)
        written = 0
        with response:
            try:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
            except requests.RequestException as exc:
                raise XnatTruncated(f"zip stream from {response.url} ended early after {written} "
                                    f"bytes ({type(exc).__name__}: {_snippet(str(exc), 300)})") from exc
        return written

    def close(self) -> None:
        if self._logged_in:
            try:
                self._session.delete(self.url + "/data/JSESSION", timeout=self.timeout)
            except requests.RequestException:
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

    def _results(self, path: str, params: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
        response = self._request("GET", path, params=params)
        url = response.url
        text = response.text
        try:
            data = response.json()
        except ValueError:
            raise XnatBadResponse(
                f"{url} answered with something that is not JSON (Content-Type "
                f"{response.headers.get('Content-Type', '?')!r}): {_snippet(text)!r}") from None
        result_set = data.get("ResultSet") if isinstance(data, dict) else None
        rows = result_set.get("Result") if isinstance(result_set, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise XnatBadResponse(f"{url} answered JSON without a ResultSet.Result list of rows: "
                                  f"{_snippet(text)!r}")
        return rows, url

    def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                 stream: bool = False) -> requests.Response:
        url = self.url + path
        if not self._logged_in:
            self._login()
        response = self._send(method, url, params=params, stream=stream)
        if response.status_code == 401:
            response.close()
            log.info("XNAT session expired; logging in again as %s", self.user)
            self._login()
            response = self._send(method, url, params=params, stream=stream)
            if response.status_code == 401:
                response.close()
                raise XnatAuthError(f"XNAT at {self.url} refused the credentials of user "
                                    f"{self.user} (401 for {url} right after logging in)")
        if response.status_code != 200:
            body = "" if stream else _snippet(response.text)
            response.close()
            raise XnatError(f"{method} {response.url} failed: HTTP {response.status_code} {body!r}")
        return response

    def _login(self) -> None:
        url = self.url + "/data/JSESSION"
        self._session.cookies.clear()
        response = self._send("POST", url, auth=(self.user, self._password))
        if response.status_code in (401, 403):
            raise XnatAuthError(f"XNAT at {self.url} refused the credentials of user {self.user}")
        if response.status_code != 200:
            raise XnatError(f"login at {url} failed: HTTP {response.status_code} "
                            f"{_snippet(response.text)!r}")
        session_id = response.text.strip()
        if "JSESSIONID" not in self._session.cookies and session_id and "<" not in session_id:
            self._session.cookies.set("JSESSIONID", session_id)
        if "JSESSIONID" not in self._session.cookies:
            raise XnatBadResponse(f"login at {url} returned no JSESSIONID: {_snippet(response.text)!r}")
        self._logged_in = True

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request with retries on connection errors, timeouts and 500/502/503/504."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), MAX_DELAY)
                time.sleep(delay + random.uniform(0, delay / 10))
            try:
                response = self._session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                last = f"{type(exc).__name__}: {_snippet(str(exc), 300)}"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                last = f"HTTP {response.status_code}"
                response.close()
            log.warning("XNAT request %s %s failed (%s); attempt %d of %d",
                        method, url, last, attempt + 1, self.retries + 1)
        raise XnatUnavailable(f"XNAT at {url} is unavailable after {self.retries + 1} attempts; "
                              f"last error: {last}")


def _field(row: dict[str, Any], key: str, url: str, default: str | None = None) -> str:
    value = row.get(key)
    if value is None:
        if default is None:
            raise XnatBadResponse(f"{url} returned a row without {key!r}: {_snippet(repr(row))}")
        return default
    return str(value)
