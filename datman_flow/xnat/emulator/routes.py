"""The XNAT emulator's URLs: which path answers what, and the row shapes XNAT lists.

`data_segments` strips the `/data`, `/REST` or `/data/archive` prefix; `resolve` maps the rest
to a `Route`: JSON rows (`{"ResultSet": ...}` with string values, built by the handler), one
file, or a zip of members named `label/scans/S-description/resources/DICOM/files/NAME`. The
fault settings that change what XNAT lists (scan IDs, digests, vanished scans) apply here.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from .faults import FaultState
from .index import EmulatorIndex, FileEntry, ScanEntry, SessionEntry


class NotFound(Exception):
    """The URL names a project, experiment, scan, resource or file that does not exist."""


@dataclass
class Route:
    kind: str  # "json", "file" or "zip"
    rows: list[dict[str, str]] = field(default_factory=list)
    title: str = ""
    file: FileEntry | None = None
    members: list[tuple[str, FileEntry]] = field(default_factory=list)
    zip_name: str = ""
    session: str = ""  # the session's label (zips)


def data_segments(path: str) -> list[str] | None:
    """Path segments after `/data`, `/REST` or `/data/archive`; None for other paths."""
    segments = [unquote(s) for s in path.split("/") if s]
    if segments[:2] == ["data", "archive"]:
        return segments[2:]
    if segments[:1] in (["data"], ["REST"]):
        return segments[1:]
    return None


def resolve(index: EmulatorIndex, segs: list[str] | None, query: dict[str, str],
            faults: FaultState | None = None) -> Route:
    """Map the path segments after /data to what to answer."""
    faults = faults or FaultState()
    if not segs:
        raise NotFound("unknown URL")
    if segs[0] == "projects":
        if len(segs) == 1:
            return Route("json", [_project_row(p) for p in index.projects()], "Projects")
        project = segs[1]
        if project not in index.projects():
            raise NotFound(f"project {project}")
        if len(segs) == 2:
            return Route("json", [_project_row(project)], "Projects")
        if segs[2] != "experiments":
            raise NotFound("/".join(segs))
        if len(segs) == 3:
            return _experiments(index, project)
        session = index.experiment(segs[3], project)
        if session is None:
            raise NotFound(f"experiment {segs[3]} in project {project}")
        return _session_route(index, session, segs[4:], query, faults)
    if segs[0] == "experiments":
        if len(segs) == 1:
            return _experiments(index, query.get("project"))
        session = index.experiment(segs[1])
        if session is None:
            raise NotFound(f"experiment {segs[1]}")
        return _session_route(index, session, segs[2:], query, faults)
    raise NotFound("/".join(segs))


def _experiments(index: EmulatorIndex, project: str | None) -> Route:
    rows = [{"ID": s.id, "label": s.label, "project": s.project, "date": index.session_date(s),
             "xsiType": "xnat:mrSessionData", "insert_date": s.insert_date,
             "last_modified": index.last_modified(s), "URI": f"/data/experiments/{s.id}"}
            for s in index.experiments(project)]
    return Route("json", rows, "Matching experiments")


def _session_route(index: EmulatorIndex, session: SessionEntry, rest: list[str],
                   query: dict[str, str], faults: FaultState) -> Route:
    if not rest:
        return _experiments_row(index, session)
    if rest[0] != "scans":
        raise NotFound("/".join(rest))
    scans = [dataclasses.replace(s, id=faults.scan_ids[s.id]) if s.id in faults.scan_ids else s
             for s in index.scans(session)]  # XNAT scan IDs are free text
    if len(rest) == 1:
        rows = [_scan_row(session, s) for s in scans if faults.scan_listed(s.id)]
        return Route("json", rows, "Scans")
    wanted = [s for s in scans if (rest[1] == "ALL" or s.id in rest[1].split(","))
              and faults.vanished(s.id) != "404"]
    if not wanted:
        raise NotFound(f"scan {rest[1]} of {session.id}")
    if [s.id for s in wanted if faults.vanished(s.id) == "empty"] == [rest[1]]:  # files gone
        wanted = [dataclasses.replace(wanted[0], files=())]
    tail = rest[2:]
    want_zip = query.get("format") == "zip"
    if tail == ["files"] and want_zip:
        return _zip_route(session, wanted)
    if len(wanted) != 1:
        raise NotFound("/".join(rest))
    scan = wanted[0]
    if not tail:
        return Route("json", [_scan_row(session, scan)], "Scans")
    res_id = str(index.resource_id(session, scan.id))
    if tail == ["resources"]:
        row = {"xnat_abstractresource_id": res_id, "label": "DICOM", "format": "DICOM",
               "content": "", "element_name": "xnat:resourceCatalog", "category": "scans",
               "cat_id": scan.id, "file_count": str(len(scan.files)),
               "file_size": str(scan.total_size)}
        return Route("json", [row], "Resources")
    if len(tail) < 3 or tail[0] != "resources" or tail[1] not in ("DICOM", res_id) \
            or tail[2] != "files":
        raise NotFound("/".join(rest))
    if len(tail) == 3:
        if want_zip:
            return _zip_route(session, [scan])
        base = f"/data/experiments/{session.id}/scans/{scan.id}/resources/DICOM/files"
        rows = [{"Name": f.name, "Size": str(f.size), "URI": f"{base}/{f.name}",
                 "collection": "DICOM", "file_tags": "", "file_format": "DICOM",
                 "file_content": "", "cat_ID": "",
                 "digest": "" if faults.digests_off else index.digest(f)} for f in scan.files]
        return Route("json", rows, "Files")
    name = "/".join(tail[3:])
    match = next((f for f in scan.files if f.name == name), None)
    if match is None:
        raise NotFound(f"file {name} of scan {scan.id}")
    return Route("file", file=match)


def _project_row(project: str) -> dict[str, str]:
    return {"ID": project, "secondary_ID": project, "name": project, "description": "",
            "URI": f"/data/projects/{project}"}


def _experiments_row(index: EmulatorIndex, session: SessionEntry) -> Route:
    route = _experiments(index, session.project)
    route.rows = [r for r in route.rows if r["ID"] == session.id]
    return route


def _scan_row(session: SessionEntry, scan: ScanEntry) -> dict[str, str]:
    return {"ID": scan.id, "type": scan.description, "series_description": scan.description,
            "quality": "usable", "xsiType": "xnat:mrScanData", "note": "",
            "URI": f"/data/experiments/{session.id}/scans/{scan.id}"}


def _zip_route(session: SessionEntry, scans: list[ScanEntry]) -> Route:
    members = []
    for scan in scans:
        folder = (f"{session.label}/scans/{scan.id}-{re.sub(r'[^A-Za-z0-9]', '_', scan.description)}"
                  "/resources/DICOM/files")
        members.extend((f"{folder}/{f.name}", f) for f in scan.files)
    return Route("zip", members=members, zip_name=f"{session.label}.zip", session=session.label)
