"""Study-wide protocol compliance: per site and tag, how many sessions comply, which parameter
drifted, when it first changed and in which session (the first session after a software upgrade
is the one a lab asks about). Computed from the metric store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from datman_flow.pipeline.summary import markdown_table
from datman_flow.store import query

KIND_ORDER = {"software_upgrade": 0, "changed": 1, "missing": 2, "unexpected": 3}


@dataclass(frozen=True)
class Drift:
    field: str
    kind: str
    sessions: int  # sessions with this finding
    first_session: str
    first_date: str  # the session's scan date (XNAT's date, else its insert_date)
    expected: object
    actual: object
    provisional: bool


@dataclass
class TagCompliance:
    site: str
    tag: str
    sessions: int = 0
    complying: int = 0
    drifts: list[Drift] = field(default_factory=list)


SESSIONS_SQL = """
SELECT p.site, p.tag || CASE WHEN s.is_phantom THEN ' (phantom)' ELSE '' END AS tag, p.session
FROM header_parameters p JOIN sessions s USING (session)
WHERE p.study = ? GROUP BY ALL"""

DIFFS_SQL = """
SELECT p.site, d.tag || CASE WHEN s.is_phantom THEN ' (phantom)' ELSE '' END AS tag, d.session, d.field, d.kind,
       d.expected, d.actual, d.provisional, coalesce(nullif(s.scan_date, ''), s.insert_date) AS first_date
FROM header_diffs d JOIN sessions s USING (session)
JOIN (SELECT DISTINCT session, site FROM header_parameters WHERE study = ?) p USING (session)
ORDER BY first_date, s.insert_date, d.session"""


def study_compliance(db_path: Path, store_dir: Path, study: str) -> list[TagCompliance]:
    by_key: dict[tuple[str, str], TagCompliance] = {}
    for row in query(db_path, store_dir, SESSIONS_SQL, [study]):
        entry = by_key.setdefault((row["site"], row["tag"]), TagCompliance(row["site"], row["tag"]))
        entry.sessions += 1
    drifted: dict[tuple[str, str], set[str]] = {}
    firsts: dict[tuple[str, str, str, str], dict] = {}
    counts: dict[tuple[str, str, str, str], set[str]] = {}
    for row in query(db_path, store_dir, DIFFS_SQL, [study]):
        key = (row["site"], row["tag"])
        drifted.setdefault(key, set()).add(row["session"])
        finding = (row["site"], row["tag"], row["field"], row["kind"])
        firsts.setdefault(finding, row)
        counts.setdefault(finding, set()).add(row["session"])
    for (site, tag, name, kind), row in firsts.items():
        entry = by_key.setdefault((site, tag), TagCompliance(site, tag))
        entry.drifts.append(Drift(name, kind, len(counts[(site, tag, name, kind)]), row["session"],
                                  row["first_date"] or "", json.loads(row["expected"]), json.loads(row["actual"]),
                                  bool(row["provisional"])))
    for key, entry in by_key.items():
        entry.complying = entry.sessions - len(drifted.get(key, set()))
        entry.drifts.sort(key=lambda d: (KIND_ORDER.get(d.kind, 9), d.first_date, d.field))
    return [by_key[key] for key in sorted(by_key)]


def short(value: object, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compliance_rows(report: list[TagCompliance]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for entry in report:
        if not entry.drifts:
            rows.append((entry.site, entry.tag, f"{entry.complying}/{entry.sessions}", "", "", "", "", ""))
        for d in entry.drifts:
            rows.append((entry.site, entry.tag, f"{entry.complying}/{entry.sessions}", d.field,
                         d.kind + (" (provisional)" if d.provisional else ""), f"{d.sessions}",
                         f"{d.first_session} ({d.first_date})", f"{short(d.expected)} -> {short(d.actual)}"))
    return rows


HEADERS = ["site", "tag", "complying", "drifted parameter", "kind", "sessions", "first changed in", "change"]


def compliance_markdown(report: list[TagCompliance]) -> str:
    return markdown_table(HEADERS, compliance_rows(report)) if report else "no converted series recorded yet"


def compliance_text(report: list[TagCompliance]) -> str:
    rows = [tuple(str(v) for v in row) for row in compliance_rows(report)]
    if not rows:
        return "no converted series recorded yet"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
