"""The BIDS release of a study: which sessions and series may go out (the store's records and
people's decisions), planned per visit (export/bids_plan.py) and written into the study's
participant dataset and its phantom dataset (export/bids_release.py).

A session is left out, with the reason, when its ingestion did not finish, when its review failed
and nobody signed it off since, when the study requires a sign-off (`bids: {require_sign_off:
true}`, the default) and it has none, and (with `exclude_drift_errors: true`) when a series'
header drift failed at severity error. A series is left out when it is untagged, its tag has no
`bids:` mapping, its conversion failed, it is blacklisted, or a picture of it is rated FAIL.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from datman_flow.config import LabConfig, StudyConfig
from datman_flow.export.bids_names import Visit, visit_of
from datman_flow.export.bids_plan import LeftOut, PlacedImage, SeriesSource, SessionSource, parse_scan_date, plan_visit
from datman_flow.export.bids_release import DatasetInfo, ReleaseReport, release
from datman_flow.export.bids_write import LEDGER
from datman_flow.layout import DataLayout
from datman_flow.naming import InvalidLabel, ScanId, output_stem, parse_session_label
from datman_flow.pipeline.locks import session_lock
from datman_flow.pipeline.review_state import BLACKLISTED, ReviewState, latest, review_state
from datman_flow.pipeline.summary import Markdown, markdown_table
from datman_flow.qc.measure import package_version
from datman_flow.review.scales import Rating
from datman_flow.safe_paths import UnsafePath, inside, is_safe_component
from datman_flow.store import CheckRow, SeriesRow, SessionRow
from datman_flow.store.export_queries import study_sessions
from datman_flow.store.review_rows import RatingImageRow, RatingRow, SeriesDecisionRow, SignOffRow

log = logging.getLogger(__name__)
FINISHED = ("ingested", "partial")
EXPORT_LOCK_WAIT = 10 * 60.0


class UnknownStudy(ValueError):
    """The study code is not in the configuration."""


@dataclass(frozen=True)
class BidsExport:
    participants: ReleaseReport
    phantoms: ReleaseReport

    @property
    def reports(self) -> tuple[ReleaseReport, ReleaseReport]:
        return self.participants, self.phantoms


def _failed_series(images: Sequence[RatingImageRow], ratings: Sequence[RatingRow]) -> dict[str, str]:
    """Series number -> why a picture of it counts as FAIL (its latest rating)."""
    series_of = {image.id: image.series_number for image in images}
    out = {}
    for rating in latest(ratings, lambda r: r.img_id).values():
        number = series_of.get(rating.img_id)
        if rating.rating == Rating.FAIL and number is not None:
            notes = f": {rating.notes}" if rating.notes else ""
            out[number] = f"a picture rated FAIL by {rating.user or '?'}{notes}"
    return out


def _session_reason(row: SessionRow, state: ReviewState, study: StudyConfig, checks: Sequence[CheckRow]) -> str:
    settings = study.bids
    if row.status not in FINISHED:
        return f"ingestion {row.status or 'not finished'}" + (f": {row.reason}" if row.reason else "")
    if state.state == "failed" and not state.settled:
        return f"review failed, not signed off since: {state.line}"
    if settings.require_sign_off and state.signoff is None:
        return "not signed off by a reviewer (bids: require_sign_off)"
    if settings.exclude_drift_errors and row.site in study.sites:
        failing = sorted({str(c.tag) for c in checks if c.check_name == "header_drift" and c.passed is False
                          and c.tag and study.header_settings(row.site, c.tag).severity == "error"})
        if failing:
            return f"header drift failed at severity error ({', '.join(failing)}; bids: exclude_drift_errors)"
    return ""


def _series_source(record: SeriesRow, scan_id: ScanId, folder: Path, config: LabConfig, state: ReviewState,
                   failed: dict[str, str]) -> SeriesSource:
    tag = record.tag or ""
    info = config.tags.get(tag)
    mapping = info.bids if info else None
    reason = ""
    outputs: list[str] = []
    stem = ""
    if not tag:
        reason = f"untagged: {record.untagged_reason or 'no rule matched'}"
    elif mapping is None:
        reason = f"tag {tag} has no bids: mapping in tags.yml"
    elif record.conversion_status != "converted":
        reason = f"conversion {record.conversion_status or 'not done'}" + \
            (f": {record.conversion_message}" if record.conversion_message else "")
    elif (decision := state.decisions.get(record.series_number)) and decision.decision == BLACKLISTED:
        reason = f"blacklisted by {decision.user}: {decision.reason}"
    elif record.series_number in failed:
        reason = failed[record.series_number]
    else:
        try:
            stem = output_stem(scan_id, tag, record.series_number, record.description)
            for output in record.outputs:
                path = inside(Path(output), folder)
                if not is_safe_component(path.name):
                    raise UnsafePath(f"output name {path.name!r} refused")
                outputs.append(path.name)
        except (UnsafePath, ValueError) as exc:
            reason = f"its recorded outputs cannot be used: {exc}"
    return SeriesSource(record.series_number, tag, mapping, folder, stem, tuple(outputs), reason)


def session_source(layout: DataLayout, config: LabConfig, study: StudyConfig,
                   row: SessionRow) -> tuple[SessionSource | None, LeftOut | None]:
    """One session's series to export, or why the whole session is left out."""
    store = layout.metric_store
    label = row.session
    scan_id = parse_session_label(label)
    images, ratings = store.read(RatingImageRow, label), store.read(RatingRow, label)
    state = review_state(label, images, ratings, store.read(SignOffRow, label), store.read(SeriesDecisionRow, label))
    reason = _session_reason(row, state, study, store.read(CheckRow, label) if study.bids.exclude_drift_errors else [])
    if reason:
        return None, LeftOut(label, "", "", reason)
    failed = _failed_series(images, ratings)
    folder = layout.nii(scan_id)
    series = tuple(_series_source(record, scan_id, folder, config, state, failed)
                   for record in store.read(SeriesRow, label))
    return SessionSource(label, scan_id.repeat or "", row.scan_date, series), None


def _lock_name(dataset: Path) -> str:
    return "bids-" + hashlib.sha1(str(dataset.resolve()).encode()).hexdigest()[:16]


def export_study(config: LabConfig, layout: DataLayout, study_code: str, *, out: Path | None = None,
                 since: date | None = None, labels: Sequence[str] | None = None) -> BidsExport:
    """Bring the study's BIDS datasets up to date: `out` (default <data>/bids/<STUDY>) for its
    participants, `<out>_phantoms` for its phantoms. `since`: only the visits with a session
    scanned on or after that date are looked at (the others stay as they are); `labels`: only the
    visits of those sessions (a session's own asset run). A visit is always planned with every
    repeat it has."""
    study = config.study(study_code)
    if study is None:
        raise UnknownStudy(f"study {study_code!r} is not configured (known: {', '.join(sorted(config.studies))})")
    dataset = (out or layout.bids(study.code)).resolve()
    phantom_dataset = dataset.with_name(dataset.name + "_phantoms")
    rows = []
    for row in study_sessions(layout.metric_store, study.code):
        try:
            rows.append((parse_session_label(row.session), row))
        except InvalidLabel as exc:
            log.warning("session %r left out of the BIDS export: %s", row.session, exc)
    # a visit is written whole: every repeat of a visit that a --since date or a label names
    if since is not None:
        wanted = {visit_of(s) for s, r in rows if (day := parse_scan_date(r.scan_date)) is not None and day >= since}
        rows = [(s, r) for s, r in rows if visit_of(s) in wanted]
    if labels is not None:
        wanted = {visit_of(parse_session_label(label)) for label in labels}
        rows = [(s, r) for s, r in rows if visit_of(s) in wanted]
    reports = []
    everything = since is None and labels is None
    for phantoms, target in ((False, dataset), (True, phantom_dataset)):
        chosen = [(s, r) for s, r in rows if s.is_phantom == phantoms]
        visits: dict[Visit, list[SessionSource]] = {}
        left_out: list[LeftOut] = []
        for scan_id, row in chosen:
            source, reason = session_source(layout, config, study, row)
            visits.setdefault(visit_of(scan_id), [])
            if source is not None:
                visits[visit_of(scan_id)].append(source)
            if reason is not None:
                left_out.append(reason)
        plans = [plan_visit(visit, sessions, study.bids) for visit, sessions in sorted(visits.items())]
        scope = {visit.folder for visit in visits}
        info = DatasetInfo(study.name if not phantoms else f"{study.name} (phantoms)", study.bids,
                           package_version() or "unknown", phantoms)
        if not any(plan.files for plan in plans) and not (target / LEDGER).exists():  # nothing to start one with
            reports.append(ReleaseReport(target, left_out=left_out))
            continue
        with session_lock(layout, _lock_name(target), "the BIDS export", wait_seconds=EXPORT_LOCK_WAIT):
            reports.append(release(target, plans, info, derivatives_of=_derivatives_folder(layout),
                                   scope=None if everything else scope,
                                   session_left_out=left_out))
    return BidsExport(*reports)


def _derivatives_folder(layout: DataLayout):
    def folder_of(image: PlacedImage) -> Path:
        return layout.derivatives(parse_session_label(image.session))
    return folder_of


def export_metadata(done: BidsExport, label: str) -> dict[str, object]:
    """What the session's bids_export asset shows: where its visit went and what was left out."""
    report = done.participants if not parse_session_label(label).is_phantom else done.phantoms
    rows = [[item.session, item.series or "(session)", item.tag or "", item.reason] for item in report.left_out]
    state = "written" if report.written else "unchanged" if report.unchanged else \
        "removed" if report.removed else "not exported"
    return {"dataset": report.dataset, "visit": state,
            "visit_folder": ", ".join(report.written + report.unchanged + report.removed) or "none",
            "left_out": len(report.left_out), "t1w_with_derivatives": report.derivatives,
            "left_out_table": markdown_table(["session", "series", "tag", "why"], rows) if rows
            else Markdown("nothing"),
            "derivative_problems": "; ".join(report.derivative_problems) or "none"}
