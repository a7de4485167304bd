"""XNAT access: the REST client and verified scan downloads.

The XNAT emulator (an XNAT-compatible server for tests and the demo, a test double) lives in
`datman_flow.xnat.emulator`; nothing here imports it, so importing the client never loads it.
"""
from .client import XnatClient
from .deadline import Deadline
from .download import SCAN_TIMEOUT, ScanDownload, download_scan
from .errors import (
    XnatAuthError,
    XnatBadResponse,
    XnatDeadline,
    XnatError,
    XnatNotFound,
    XnatOversize,
    XnatTruncated,
    XnatUnavailable,
)
from .fetch import fetch_session
from .models import Experiment, RemoteFile, Scan
from .verify import Verification

__all__ = [
    "SCAN_TIMEOUT", "Deadline", "Experiment", "RemoteFile", "Scan", "ScanDownload", "Verification",
    "XnatAuthError", "XnatBadResponse", "XnatClient", "XnatDeadline", "XnatError", "XnatNotFound",
    "XnatOversize", "XnatTruncated", "XnatUnavailable",
    "download_scan", "fetch_session",
]
