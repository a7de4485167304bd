"""`ingest --new`: one sensor-like poll, with its cursor kept in <data>/state/."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from datman_flow.atomic import write_text_atomic
from datman_flow.config import LabConfig
from datman_flow.layout import DataLayout
from datman_flow.pipeline import record
from datman_flow.pipeline.poll import PollCursor, poll_new_sessions
from datman_flow.xnat import XnatClient


def cursor_path(layout: DataLayout) -> Path:
    return layout.root / "state" / "ingest_new_cursor.json"


def poll_once(config: LabConfig, layout: DataLayout,
              record_rejected: bool = True) -> tuple[list[str], Callable[[list[str]], None]]:
    """Labels to ingest now (new ones and those that failed last time), and how to save the cursor."""
    path = cursor_path(layout)
    saved = json.loads(path.read_text()) if path.exists() else {}
    cursor = PollCursor.from_json(json.dumps(saved.get("cursor", {})))
    retry = list(saved.get("retry", []))
    result = poll_new_sessions(config, cursor, XnatClient.from_env)
    for error in result.errors:
        print(f"warning: {error}", file=sys.stderr)
    for rejected in result.rejected:
        exp = rejected.experiment
        print(f"{exp.label}: not ingested: {rejected.reason}", file=sys.stderr)
        if record_rejected:
                record.record_session(layout, record.rejected_record(exp.label, exp.project, exp.id,
                                                                 exp.insert_date, rejected.reason))
    labels = list(dict.fromkeys(retry + [new.target.label for new in result.new]))
    print(f"XNAT lists {result.listed} session(s): {len(result.new)} new, {len(result.rejected)} rejected, "
          f"{len(retry)} to retry")

    def save(failed: list[str]) -> None:
        write_text_atomic(path, json.dumps({"cursor": json.loads(result.cursor.to_json()), "retry": failed}, indent=1))

    return labels, save
