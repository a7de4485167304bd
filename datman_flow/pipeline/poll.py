"""Finding sessions inserted on XNAT since the last look (the sensor and `ingest --new`).

The cursor keeps, per XNAT project, the newest insert_date seen and the labels seen within an
overlap window before it: XNAT's timestamps are the server's local time and a session may be
committed with an insert_date earlier than one already seen, so each poll looks back over the
window and skips labels it has already handled. Work per poll beyond the listing itself grows
with the number of new sessions only.

Sessions still arriving: XNAT may still be receiving or archiving scans when a session first
appears. A new session is *pending* until its change mark (XNAT's `last_modified`, else its
`insert_date`) has stayed the same for the settle window, measured on this machine's clock
from the look that first saw the mark (so the XNAT server's time zone does not matter). A
session released earlier whose change mark moves again (scans added or removed on XNAT) is
pending again and then released as *changed*, to be run again. Released sessions are
remembered for `REMEMBER` so such late changes are noticed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from datman_flow.config import LabConfig
from datman_flow.pipeline.resolve import SessionRejected, SessionTarget, resolve_session
from datman_flow.xnat import Experiment, XnatClient, XnatError

DEFAULT_OVERLAP = timedelta(hours=1)
DEFAULT_SETTLE = timedelta(minutes=10)  # XNAT's auto-archive waits about 5 minutes of quiet
REMEMBER = timedelta(days=14)
NEW, CHANGED = "new", "changed"
XNAT_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


SETTLE_VAR = "DATMAN_SETTLE_MINUTES"


def settle_from_env(env: Mapping[str, str] | None = None) -> timedelta:
    """The settle window from DATMAN_SETTLE_MINUTES, else the default (10 minutes)."""
    text = (os.environ if env is None else env).get(SETTLE_VAR, "").strip()
    if not text:
        return DEFAULT_SETTLE
    try:
        minutes = float(text)
    except ValueError:
        raise ValueError(f"{SETTLE_VAR}={text!r}: minutes as a number, e.g. 10") from None
    return timedelta(minutes=max(minutes, 0.0))


def parse_insert_date(text: str) -> datetime | None:
    """XNAT's timestamp (local time, no zone) or None. Called twice per listed session on every
    tick: the ISO parser first (20 times faster than strptime), strptime for what it refuses."""
    stripped = text.strip()
    if len(stripped) == 10 or (19 <= len(stripped) <= 26 and stripped[10] == " " and stripped[19:20] in ("", ".")):
        try:
            parsed = datetime.fromisoformat(stripped)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            return parsed
    for fmt in XNAT_TIME_FORMATS:
        try:
            return datetime.strptime(stripped, fmt)
        except ValueError:
            continue
    return None


@dataclass
class ProjectCursor:
    since: str = ""  # newest insert_date seen, as XNAT wrote it
    recent: dict[str, str] = field(default_factory=dict)  # label -> insert_date, within the window
    # label -> (change mark, quiet since (ISO, this machine's clock), NEW or CHANGED)
    pending: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    released: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (change mark, released at)

    def as_dict(self) -> dict[str, object]:
        return {"since": self.since, "recent": self.recent,
                "pending": {k: list(v) for k, v in sorted(self.pending.items())},
                "released": {k: list(v) for k, v in sorted(self.released.items())}}

    @classmethod
    def from_dict(cls, raw: dict) -> ProjectCursor:
        pending = {str(k): (str(v[0]), str(v[1]), str(v[2])) for k, v in dict(raw.get("pending") or {}).items()}
        released = {str(k): (str(v[0]), str(v[1])) for k, v in dict(raw.get("released") or {}).items()}
        return cls(str(raw.get("since", "")), dict(raw.get("recent", {})), pending, released)


@dataclass
class PollCursor:
    projects: dict[str, ProjectCursor] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({p: c.as_dict() for p, c in sorted(self.projects.items())}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> PollCursor:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
            return cls({p: ProjectCursor.from_dict(v) for p, v in raw.items()})
        except (ValueError, AttributeError, TypeError, IndexError, KeyError):
            return cls()  # an unreadable cursor means: look at everything again (run keys prevent re-runs)


@dataclass(frozen=True)
class NewSession:
    target: SessionTarget
    experiment: Experiment
    changed: bool = False  # ingested before; its scans changed on XNAT since

    @property
    def run_key(self) -> str:
        """One run per session, and one more per change of it on XNAT."""
        label = self.target.label
        return f"{label}#changed@{change_mark(self.experiment)}" if self.changed else label


@dataclass(frozen=True)
class RejectedSession:
    experiment: Experiment
    reason: str


@dataclass
class PollResult:
    new: list[NewSession]
    rejected: list[RejectedSession]
    cursor: PollCursor
    listed: int = 0
    errors: list[str] = field(default_factory=list)  # projects that could not be listed, and why
    pending: list[str] = field(default_factory=list)  # labels waiting for their settle window


def change_mark(exp: Experiment) -> str:
    """What moves when a session changes on XNAT: its last_modified, else its insert_date."""
    return exp.last_modified or exp.insert_date


def poll_project(config: LabConfig, experiments: list[Experiment], project: str, cursor: ProjectCursor,
                 overlap: timedelta, result: PollResult, now: datetime, settle: timedelta) -> ProjectCursor:
    since = parse_insert_date(cursor.since) if cursor.since else None
    horizon = since - overlap if since else None
    newest = since
    recent: dict[str, str] = {}
    out = ProjectCursor(pending=dict(cursor.pending), released={
        label: entry for label, entry in cursor.released.items()
        if now - datetime.fromisoformat(entry[1]) < REMEMBER})
    for exp in experiments:
        mark = change_mark(exp)
        inserted = parse_insert_date(exp.insert_date)
        within = not (horizon and inserted and inserted < horizon)
        if within:
            if inserted and (newest is None or inserted > newest):
                newest = inserted
            recent[exp.label] = exp.insert_date
        if exp.label in out.pending or exp.label in out.released:
            watch_settled(config, exp, project, mark, out, result, now, settle)
            continue
        if not within or exp.label in cursor.recent:
            continue
        try:
            target = resolve_session(config, exp.label, project)
        except SessionRejected as exc:
            result.rejected.append(RejectedSession(exp, str(exc)))
            continue
        out.pending[exp.label] = (mark, now.isoformat(), NEW)
        release_if_quiet(target, exp, out, result, now, settle)
    keep_from = newest - overlap if newest else None
    out.recent = {label: when for label, when in recent.items()
                  if keep_from is None or (parse_insert_date(when) or keep_from) >= keep_from}
    out.since = newest.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if newest else cursor.since
    return out


def watch_settled(config: LabConfig, exp: Experiment, project: str, mark: str, out: ProjectCursor,
                  result: PollResult, now: datetime, settle: timedelta) -> None:
    """A session seen before: pending (released once quiet; the quiet starts again when its
    change mark moves), or released (pending again, as changed, when its change mark moves)."""
    if exp.label in out.released:
        if out.released[exp.label][0] == mark:
            return
        del out.released[exp.label]
        out.pending[exp.label] = (mark, now.isoformat(), CHANGED)
    elif out.pending[exp.label][0] != mark:
        out.pending[exp.label] = (mark, now.isoformat(), out.pending[exp.label][2])
    try:
        target = resolve_session(config, exp.label, project)
    except SessionRejected as exc:  # its configuration changed meanwhile
        del out.pending[exp.label]
        result.rejected.append(RejectedSession(exp, str(exc)))
        return
    release_if_quiet(target, exp, out, result, now, settle)


def release_if_quiet(target: SessionTarget, exp: Experiment, out: ProjectCursor, result: PollResult,
                     now: datetime, settle: timedelta) -> None:
    mark, quiet_since, kind = out.pending[exp.label]
    if now - datetime.fromisoformat(quiet_since) < settle:
        result.pending.append(exp.label)
        return
    del out.pending[exp.label]
    out.released[exp.label] = (mark, now.isoformat())
    result.new.append(NewSession(target, exp, changed=kind == CHANGED))


def poll_new_sessions(config: LabConfig, cursor: PollCursor, client_for: Callable[[str], XnatClient],
                      now: datetime, settle: timedelta = DEFAULT_SETTLE,
                      overlap: timedelta = DEFAULT_OVERLAP) -> PollResult:
    """One look at every configured XNAT project (`now`: this machine's time, timezone-aware).
    A project that cannot be listed is reported in `errors` and keeps its cursor; when no
    project can be listed the first error propagates."""
    result = PollResult(new=[], rejected=[], cursor=PollCursor(dict(cursor.projects)))
    urls_projects = dict.fromkeys((study.xnat.url, project) for study, project in config.xnat_projects())
    failures: list[XnatError] = []
    for url, project in urls_projects:
        try:
            with client_for(url) as client:
                experiments = client.list_experiments(project)
        except XnatError as exc:  # one project's trouble (say a 404) must not hide the others' sessions
            failures.append(exc)
            result.errors.append(f"XNAT project {project!r} at {url}: {exc}")
            continue
        result.listed += len(experiments)
        key = f"{url} {project}"
        previous = cursor.projects.get(key, ProjectCursor())
        result.cursor.projects[key] = poll_project(config, experiments, project, previous, overlap, result, now,
                                                     settle)
    if failures and len(failures) == len(urls_projects):
        raise failures[0]
    return result
