"""Finding sessions inserted on XNAT since the last look (the sensor and `ingest --new`).

The cursor keeps, per XNAT project, the newest insert_date seen and the labels seen within an
overlap window before it: XNAT's timestamps are the server's local time and a session may be
committed with an insert_date earlier than one already seen, so each poll looks back over the
window and skips labels it has already handled. Work per poll beyond the listing itself grows
with the number of new sessions only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from datman_flow.config import LabConfig
from datman_flow.pipeline.resolve import SessionRejected, SessionTarget, resolve_session
from datman_flow.xnat import Experiment, XnatClient, XnatError

DEFAULT_OVERLAP = timedelta(hours=1)
XNAT_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


def parse_insert_date(text: str) -> datetime | None:
    for fmt in XNAT_TIME_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


@dataclass
class ProjectCursor:
    since: str = ""  # newest insert_date seen, as XNAT wrote it
    recent: dict[str, str] = field(default_factory=dict)  # label -> insert_date, within the window


@dataclass
class PollCursor:
    projects: dict[str, ProjectCursor] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({p: {"since": c.since, "recent": c.recent} for p, c in sorted(self.projects.items())},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> PollCursor:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
            return cls({p: ProjectCursor(str(v.get("since", "")), dict(v.get("recent", {}))) for p, v in raw.items()})
        except (ValueError, AttributeError, TypeError):
            return cls()  # an unreadable cursor means: look at everything again (run keys prevent re-runs)


@dataclass(frozen=True)
class NewSession:
    target: SessionTarget
    experiment: Experiment


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


def poll_project(config: LabConfig, experiments: list[Experiment], project: str, cursor: ProjectCursor,
                 overlap: timedelta, result: PollResult) -> ProjectCursor:
    since = parse_insert_date(cursor.since) if cursor.since else None
    horizon = since - overlap if since else None
    newest = since
    recent: dict[str, str] = {}
    for exp in experiments:
        inserted = parse_insert_date(exp.insert_date)
        if horizon and inserted and inserted < horizon:
            continue
        if inserted and (newest is None or inserted > newest):
            newest = inserted
        recent[exp.label] = exp.insert_date
        if exp.label in cursor.recent:
            continue
        try:
            result.new.append(NewSession(resolve_session(config, exp.label, project), exp))
        except SessionRejected as exc:
            result.rejected.append(RejectedSession(exp, str(exc)))
    keep_from = newest - overlap if newest else None
    kept = {label: when for label, when in recent.items()
            if keep_from is None or (parse_insert_date(when) or keep_from) >= keep_from}
    since_text = newest.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if newest else cursor.since
    return ProjectCursor(since=since_text, recent=kept)


def poll_new_sessions(config: LabConfig, cursor: PollCursor, client_for: Callable[[str], XnatClient],
                      overlap: timedelta = DEFAULT_OVERLAP) -> PollResult:
    """One look at every configured XNAT project. A project that cannot be listed is reported in
    `errors` and keeps its cursor; when no project can be listed the first error propagates."""
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
        result.cursor.projects[key] = poll_project(config, experiments, project, previous, overlap, result)
    if failures and len(failures) == len(urls_projects):
        raise failures[0]
    return result
