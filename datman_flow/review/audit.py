"""The review app's audit trail: `<data>/state/review_audit.log`, one JSON object per line for
every change a person makes (a rating and its clicks, a sign-off, a series decision) and every
login, failed login and logout, with who, what, which session, series or picture, when (UTC) and
from which client address. Lines are only ever appended (O_APPEND, under an exclusive lock, so
two writers never interleave), never rewritten; the file is not readable by others. Each line
is also logged with `logging` (logger `datman_flow.review.audit`)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from datman_flow.atomic import private_mode

AUDIT_FILE = "review_audit.log"
logger = logging.getLogger(__name__)


def audit_path(data_dir: Path) -> Path:
    return Path(data_dir) / "state" / AUDIT_FILE


class AuditLog:
    """`AuditLog(data_dir).record("rating", "alice", client="10.0.0.5", session=label, image=7, rating=2)`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = audit_path(data_dir)

    def record(self, what: str, who: str, *, client: str = "", session: str = "", series: str = "",
               image: int | None = None, **details: object) -> dict[str, object]:
        """Append one line (JSON, ASCII: a newline in a note cannot start a line of its own)."""
        entry: dict[str, object] = {"when": datetime.now(UTC).isoformat(timespec="milliseconds"), "who": who,
                                    "what": what, "session": session, "series": series, "image": image,
                                    "client": client, **details}
        line = (json.dumps(entry, ensure_ascii=True, default=str) + "\n").encode("ascii")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, private_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                os.write(fd, line)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        logger.info("review %s by %s%s%s%s from %s", what, who or "?", f" session {session}" if session else "",
                    f" series {series}" if series else "", f" picture {image}" if image is not None else "",
                    client or "?")
        return entry

    def entries(self) -> list[dict[str, object]]:
        """Every line so far (for tests and a curious data manager)."""
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
