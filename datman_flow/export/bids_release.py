"""One BIDS dataset brought up to date with a set of planned visits: each visit folder written
when its content changed (or removed when nothing of it may be released any more), then the
dataset-level files rebuilt from the ledger: dataset_description.json, README, participants.tsv,
each participant's sessions.tsv, each visit's scans.tsv, .bidsignore, and the derivatives
dataset (`derivatives/datman-flow`: its description, the dseg lookup table, morphometry.tsv).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datman_flow.atomic import write_text_atomic
from datman_flow.config.bids_block import BidsStudy
from datman_flow.export.bids_derivatives import (
    DSEG_TSV,
    FOLDER,
    MORPHOMETRY_COLUMNS,
    Derived,
    derived_files,
    description,
)
from datman_flow.export.bids_plan import LeftOut, PlacedImage, PlannedFile, VisitPlan
from datman_flow.export.bids_write import Ledger, clear_builds, fingerprint, remove_folder, write_folder

BIDS_VERSION = "1.10.0"
# what BIDS has no place for: `extra` datatypes (config/bids_block.py), the derivatives' group table
BIDSIGNORE = "**/extra\n"  # the deno validator matches a folder by this form only
DERIVATIVES_BIDSIGNORE = "morphometry.tsv\n"


@dataclass
class ReleaseReport:
    dataset: Path
    written: list[str] = field(default_factory=list)  # visit folders (re)written
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    derivatives: int = 0  # T1w images with their derivatives in this release's visits
    derivative_problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"dataset": str(self.dataset), "written": self.written, "unchanged": self.unchanged,
                "removed": self.removed, "derivatives": self.derivatives,
                "derivative_problems": self.derivative_problems,
                "left_out": [vars(item) for item in self.left_out]}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    settings: BidsStudy
    version: str  # datman-flow's
    phantoms: bool = False


def _tsv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return "n/a" if value is None or value == "" else str(value).replace("\t", " ").replace("\n", " ")
    return "\t".join(header) + "\n" + "".join("\t".join(cell(v) for v in row) + "\n" for row in rows)


def _scans_file(plan: VisitPlan) -> PlannedFile:
    header = ["filename", "acq_time"] if any(t for _, t in plan.scans) else ["filename"]
    rows = [[name, when][: len(header)] for name, when in plan.scans]
    return PlannedFile(f"{plan.visit.folder}/{plan.visit.prefix}_scans.tsv", text=_tsv(header, rows))


def _derivatives(plan: VisitPlan, folder_of: Callable[[PlacedImage], Path]) -> tuple[list[PlannedFile], list[dict],
                                                                                       list[str]]:
    files, rows, problems = [], [], []
    for image in plan.images:
        if image.datatype != "anat" or image.suffix != "T1w":
            continue
        derived: Derived = derived_files(image, folder_of(image))
        if derived.problem:
            problems.append(f"{image.session} series {image.series}: {derived.problem}")
            continue
        files += derived.files
        rows.append({"participant_id": f"sub-{plan.visit.subject}", "session_id": f"ses-{plan.visit.session}"}
                    | derived.morphometry)
    return files, rows, problems


def release(dataset: Path, plans: Sequence[VisitPlan], info: DatasetInfo, *,
            derivatives_of: Callable[[PlacedImage], Path], scope: Collection[str] | None = None,
            session_left_out: Sequence[LeftOut] = ()) -> ReleaseReport:
    """Bring `dataset` up to date with `plans`: a visit of the ledger without a plan here is removed
    when it is in this export's `scope` (None: every visit; a `--since` export leaves older ones)."""
    report = ReleaseReport(dataset, left_out=list(session_left_out))
    dataset.mkdir(parents=True, exist_ok=True)
    clear_builds(dataset)
    clear_builds(dataset / FOLDER)
    ledger = Ledger.read(dataset)
    planned = {plan.visit.folder: plan for plan in plans}

    def remove_visit(folder: str) -> None:  # its raw and derivative folders, and its ledger entry
        remove_folder(dataset, folder)
        remove_folder(dataset / FOLDER, folder)
        del ledger.visits[folder]
        report.removed.append(folder)

    for folder in sorted(set(ledger.visits) - set(planned)):
        if scope is None or folder in scope:
            remove_visit(folder)
    for folder, plan in sorted(planned.items()):
        report.left_out += plan.left_out
        if not plan.files:
            if folder in ledger.visits:
                remove_visit(folder)
            continue
        raw = list(plan.files) + [_scans_file(plan)]
        derived, morphometry, problems = _derivatives(plan, derivatives_of)
        report.derivative_problems += problems
        report.derivatives += len(morphometry)
        stamp = fingerprint(raw) + fingerprint(derived)
        before = ledger.visits.get(folder, {})
        if before.get("fingerprint") == stamp and (dataset / folder).is_dir():
            report.unchanged.append(folder)
        else:
            write_folder(dataset, folder, raw)
            if derived:
                write_folder(dataset / FOLDER, folder, [PlannedFile(f.path[len(FOLDER) + 1:], f.source, f.text)
                                                        for f in derived])
            else:
                remove_folder(dataset / FOLDER, folder)
            report.written.append(folder)
        ledger.visits[folder] = {"fingerprint": stamp, "sessions": list(plan.sessions), "acq_time": plan.acq_time,
                                 "subject": plan.visit.subject, "session": plan.visit.session,
                                 "morphometry": morphometry}
    ledger.save()
    _dataset_files(dataset, ledger, info)
    return report


def _dataset_files(dataset: Path, ledger: Ledger, info: DatasetInfo) -> None:
    kind = "phantom scans" if info.phantoms else "participants"
    desc: dict[str, object] = {"Name": info.settings.name or info.name, "BIDSVersion": BIDS_VERSION,
                               "DatasetType": "raw",
                               "GeneratedBy": [{"Name": "datman-flow", "Version": info.version}]}
    if info.settings.license:
        desc["License"] = info.settings.license
    if info.settings.authors:
        desc["Authors"] = list(info.settings.authors)
    write_text_atomic(dataset / "dataset_description.json", json.dumps(desc, indent=2) + "\n")
    write_text_atomic(dataset / "README", f"# {desc['Name']}\n\nThe {kind} of this study that passed review, "
                      "exported by datman-flow from its converted series (dcm2niix) with the tag registry's "
                      "BIDS mapping.\ncode/datman-flow/export.json records what was exported; "
                      "derivatives/datman-flow holds the structural derivatives.\n")
    write_text_atomic(dataset / ".bidsignore", BIDSIGNORE)
    visits = sorted(ledger.visits.values(), key=lambda v: (v.get("subject", ""), v.get("session", "")))
    subjects = sorted({str(v.get("subject")) for v in visits})
    write_text_atomic(dataset / "participants.tsv", _tsv(["participant_id"], [[f"sub-{s}"] for s in subjects]))
    write_text_atomic(dataset / "participants.json", json.dumps(
        {"participant_id": {"Description": "sub-<SITE><SUBJECT> (phantoms: sub-<SITE><TYPE>) of the lab's scan ID"}},
        indent=2) + "\n")
    dated = any(v.get("acq_time") for v in visits)
    for subject in subjects:
        rows = [[f"ses-{v['session']}", v.get("acq_time", "")][: 2 if dated else 1]
                for v in visits if v.get("subject") == subject]
        header = ["session_id", "acq_time"] if dated else ["session_id"]
        write_text_atomic(dataset / f"sub-{subject}" / f"sub-{subject}_sessions.tsv", _tsv(header, rows))
    morph = [row for v in visits for row in v.get("morphometry", [])]
    derivatives = dataset / FOLDER
    if morph or derivatives.is_dir():
        derivatives.mkdir(parents=True, exist_ok=True)
        write_text_atomic(derivatives / "dataset_description.json",
                          json.dumps(description(info.version, str(desc["Name"])), indent=2) + "\n")
        write_text_atomic(derivatives / "dseg.tsv", DSEG_TSV)
        write_text_atomic(derivatives / ".bidsignore", DERIVATIVES_BIDSIGNORE)
        header = ["participant_id", "session_id", "source", *MORPHOMETRY_COLUMNS, "template", "normalisation",
                  "brain_dice", "normalisation_passed"]
        write_text_atomic(derivatives / "morphometry.tsv", _tsv(header, [[r.get(h) for h in header] for r in morph]))
