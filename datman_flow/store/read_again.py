"""Whether a read of the store that failed should simply run again.

Two failures are not the query's fault:
- an unreadable Parquet file (quarantine.py moves it aside; the table reads without it);
- a session's file that another process removed while DuckDB read the table. DuckDB lists a
  table's files when the query starts and opens each one as it reads; a file removed in between
  (a session whose rows in a table became none, a re-ingest, a quarantine) fails the whole query
  with `Cannot open file "...": No such file or directory` (or, for a file named in a list,
  `No files found that match the pattern "..."`). The store's writes are atomic renames
  and removals, so the next read sees the table after that change. A session run's checks and
  the study views' refresh read the store while other sessions' runs write it: before this, one
  removal at the wrong moment failed the reader's run.

A removal met more than VANISHED_READS times by one read (a folder emptied under it) is raised.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from datman_flow.store.quarantine import quarantine_after
from datman_flow.store.schema import TABLES

VANISHED_READS = 20
# DuckDB's words for a file gone between listing and opening (a glob's file; a file named in a list)
_VANISHED = re.compile(r"""(?:Cannot open file ["']([^"'\n]+\.parquet)["']: No such file or directory"""
                       r"""|No files found that match the pattern ["']([^"'*?\n]+\.parquet)["'])""")


def vanished_store_file(store_dir: Path, error: BaseException) -> Path | None:
    """The file of one of the store's tables that `error` says was not there when DuckDB opened it
    (None when the error is about anything else). It may be back by now, written again."""
    first_line = str(error).split("\n", 1)[0]
    for named in _VANISHED.findall(first_line):
        path = Path(named[0] or named[1])
        try:
            in_store = path.parent.parent.resolve() == store_dir.resolve() and path.parent.name in TABLES
        except OSError:
            continue
        if in_store:
            return path
    return None


class ReadAgain:
    """One read's judge of its failures: `again(error)` is True when the read should run again.
    A store file vanished under it (up to VANISHED_READS times for this read, with a short pause),
    or an unreadable file was moved to the quarantine (each such round moves one file out, so it ends)."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.vanished = 0

    def __call__(self, error: BaseException) -> bool:
        if vanished_store_file(self.store_dir, error) is not None:
            self.vanished += 1
            if self.vanished > VANISHED_READS:
                return False
            time.sleep(min(0.01 * self.vanished, 0.1))
            return True
        return bool(quarantine_after(self.store_dir, error))
