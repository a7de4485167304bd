"""XNAT access: the REST client, verified scan downloads, and the XNAT emulator (datman_flow.xnat.emulator)."""
from .client import XnatClient
from .download import ScanDownload, download_scan
from .emulator import XnatEmulator, run_emulator, serve
from .errors import XnatAuthError, XnatBadResponse, XnatError, XnatTruncated, XnatUnavailable
from .fetch import fetch_session
from .models import Experiment, RemoteFile, Scan

__all__ = [
    "Experiment", "RemoteFile", "Scan", "ScanDownload", "XnatAuthError", "XnatBadResponse",
    "XnatClient", "XnatEmulator", "XnatError", "XnatTruncated", "XnatUnavailable",
    "download_scan", "fetch_session", "run_emulator", "serve",
]
