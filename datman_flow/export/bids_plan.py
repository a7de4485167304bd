"""What one BIDS session folder (a visit: every repeat of one subject's timepoint) holds: its
files, named and with their sidecars, and every series left out with the reason.

The planning reads the converted series' sidecars but writes nothing (bids_write.py does). A
series goes in when its tag has a `bids:` mapping (config/bids_block.py), its conversion
succeeded and no reviewer left it out (the caller's `left_out`); each of its dcm2niix image sets
is placed by its post-fix (dicom/outputs.py): the plain set is the series; `_e<N>` echoes become
`echo-<N>`; in a GRE field map (`suffix: phasediff`), magnitudes become magnitude1/2 and the phase
difference (one phase set) phasediff, two phase sets phase1/phase2. Any other set (a Philips
`_ADC`, a localizer's `_i00001` planes, ...) has no place, and is listed as left out.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from datman_flow.config.bids_block import BidsMapping, BidsStudy
from datman_flow.dicom.outputs import base_name
from datman_flow.export.bids_names import Visit, bids_uri, file_name

NIFTI = ".nii.gz"
GRE_FIELDMAP = frozenset({"phasediff", "phase1", "phase2", "magnitude1", "magnitude2", "magnitude"})
_ECHO = re.compile(r"_e(\d+)")


@dataclass(frozen=True)
class SeriesSource:
    """One converted series of an XNAT session, as the store recorded it."""

    series_number: str
    tag: str
    mapping: BidsMapping | None
    folder: Path  # the session's NIfTI folder (checked by the caller)
    stem: str  # dcm2niix's file stem for it (naming.output_stem)
    outputs: tuple[str, ...]  # every file dcm2niix wrote for it (names)
    left_out: str = ""  # why it is not exported ('' when it may be)


@dataclass(frozen=True)
class SessionSource:
    """One XNAT session (a repeat of the visit) to export."""

    label: str
    repeat: str
    scan_date: str  # YYYYMMDD or YYYY-MM-DD ('' when unknown)
    series: tuple[SeriesSource, ...]


@dataclass(frozen=True)
class PlannedFile:
    """A file of the visit: hard-linked from `source`, or written from `text`."""

    path: str  # relative to the dataset
    source: Path | None = None
    text: str | None = None


@dataclass(frozen=True)
class LeftOut:
    session: str
    series: str
    tag: str
    reason: str


@dataclass
class _ImageSet:
    session: SessionSource
    series: SeriesSource
    base: str  # the set's base name (no extension)
    datatype: str
    entities: dict[str, str]
    suffix: str
    sidecar: dict = field(default_factory=dict)
    name: str = ""  # the BIDS file name without extension, once runs are numbered

    @property
    def order(self) -> tuple:
        number = self.series.series_number
        return (self.session.repeat, int(number) if number.isdigit() else 1 << 62, number, self.base)


@dataclass(frozen=True)
class PlacedImage:
    session: str
    series: str
    datatype: str
    suffix: str
    source: Path  # the converted NIfTI
    path: str  # in the dataset, without the extension: sub-A/ses-B/anat/sub-A_ses-B_run-1_T1w


@dataclass(frozen=True)
class VisitPlan:
    visit: Visit
    files: tuple[PlannedFile, ...]
    scans: tuple[tuple[str, str], ...]  # (path relative to the visit folder, acq_time or '')
    acq_time: str  # the visit's first session's date, as the study's scan_dates setting says ('' when removed)
    left_out: tuple[LeftOut, ...]
    sessions: tuple[str, ...]  # the XNAT sessions exported into it
    images: tuple[PlacedImage, ...] = ()  # where each exported image set went, for its derivatives


def parse_scan_date(text: str) -> date | None:
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def shown_date(day: date | None, settings: BidsStudy) -> date | None:
    """The scan date as the release shows it: removed (None), shifted or kept."""
    if day is None or settings.scan_dates == "remove":
        return None
    return day + timedelta(days=settings.date_shift_days or 0) if settings.scan_dates == "shift" else day


def acq_time(day: date | None, clock: object, settings: BidsStudy) -> str:
    """`YYYY-MM-DDThh:mm:ss` for scans.tsv / sessions.tsv, or '' when dates are removed or unknown."""
    shown = shown_date(day, settings)
    if shown is None:
        return ""
    match = re.match(r"(\d{2}):?(\d{2}):?(\d{2})", str(clock or ""))
    hms = ":".join(match.groups()) if match else "00:00:00"
    return f"{shown.isoformat()}T{hms}"


def clean_sidecar(sidecar: dict, day: date | None, settings: BidsStudy) -> dict:
    """dcm2niix's sidecar (already anonymised with -ba y) without any date unless the study keeps
    them; shifted by the study's offset under `shift`."""
    out = {}
    for key, value in sidecar.items():
        if "Date" not in key or settings.scan_dates == "keep":
            out[key] = value
        elif settings.scan_dates == "shift" and key == "AcquisitionDateTime" and isinstance(value, str):
            try:
                when = datetime.fromisoformat(value) + timedelta(days=settings.date_shift_days or 0)
                out[key] = when.isoformat()
            except ValueError:
                continue
    return out


def _read_sidecar(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"sidecar {path.name} unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"sidecar {path.name} is not a JSON object")
    return data


def _placed_sets(session: SessionSource, series: SeriesSource) -> tuple[list[_ImageSet], list[str]]:
    """The series' image sets with their BIDS place, and the names of those without one."""
    mapping = series.mapping
    assert mapping is not None
    bases = sorted({base_name(n) for n in series.outputs if n.endswith(NIFTI)})
    stem = series.stem
    base_entities = {key: value for key in ("task", "acq", "ce", "rec", "dir")
                     if (value := getattr(mapping, key))}
    placed: list[_ImageSet] = []
    nowhere: list[str] = []
    magnitudes, phases = [], []
    echoes = []
    for base in bases:
        postfix = base[len(stem):] if stem and base.startswith(stem) else None
        if postfix is None:
            nowhere.append(base)
        elif postfix == "":
            placed.append(_ImageSet(session, series, base, mapping.datatype, dict(base_entities), mapping.suffix))
        elif mapping.suffix in GRE_FIELDMAP and re.fullmatch(r"(?:_e\d+)?_ph", postfix):
            phases.append(base)
        elif mapping.suffix in GRE_FIELDMAP and _ECHO.fullmatch(postfix):
            magnitudes.append(base)
        elif _ECHO.fullmatch(postfix):
            echoes.append((int(_ECHO.fullmatch(postfix).group(1)), base))  # type: ignore[union-attr]
        else:
            nowhere.append(base)
    if mapping.suffix in GRE_FIELDMAP:
        for k, base in enumerate(sorted(magnitudes, key=_echo_number), start=1):
            suffix = f"magnitude{k}" if k <= 2 else ""
            if suffix:
                placed.append(_ImageSet(session, series, base, "fmap", dict(base_entities), suffix))
            else:
                nowhere.append(base)
        phase_names = ["phasediff"] if len(phases) == 1 else ["phase1", "phase2"] if len(phases) == 2 else []
        for name, base in zip(phase_names, sorted(phases, key=_echo_number)):
            placed.append(_ImageSet(session, series, base, "fmap", dict(base_entities), name))
        if not phase_names:
            nowhere.extend(phases)
    if len(echoes) == 1 and not placed:
        placed.append(_ImageSet(session, series, echoes[0][1], mapping.datatype, dict(base_entities), mapping.suffix))
    elif echoes:
        for number, base in sorted(echoes):
            placed.append(_ImageSet(session, series, base, mapping.datatype, base_entities | {"echo": str(number)},
                                    mapping.suffix))
    return placed, nowhere


def _echo_number(base: str) -> int:
    found = _ECHO.search(base)
    return int(found.group(1)) if found else 0


def _number_runs(sets: list[_ImageSet], visit: Visit) -> None:
    """Give each set its file name; sets of one name in the visit (several series of one tag, or
    one tag in two repeats) get run-1, run-2 ... in the order repeat, series number."""
    groups: dict[tuple, list[_ImageSet]] = defaultdict(list)
    for item in sets:
        key = (item.datatype, item.suffix, tuple(sorted(item.entities.items())))
        groups[key].append(item)
    for members in groups.values():
        series_order = sorted({(m.order[:3]) for m in members})
        for item in members:
            entities = {"sub": visit.subject, "ses": visit.session} | item.entities
            if len(series_order) > 1:
                entities["run"] = str(series_order.index(item.order[:3]) + 1)
            item.name = file_name(entities, item.suffix, "")


def _fill_sidecar(item: _ImageSet, day: date | None, settings: BidsStudy) -> None:
    sidecar = _read_sidecar(item.series.folder / f"{item.base}.json")
    sidecar = clean_sidecar(sidecar, day, settings)
    if item.datatype == "func" and item.series.mapping and item.series.mapping.task:
        sidecar["TaskName"] = item.series.mapping.task
    item.sidecar = sidecar


def _phasediff_echo_times(sets: list[_ImageSet]) -> None:
    """A phasediff needs EchoTime1 and EchoTime2: dcm2niix gives them for Siemens; otherwise they
    are taken from the magnitudes of the same session's field map (their EchoTime)."""
    for item in sets:
        if item.suffix != "phasediff" or ("EchoTime1" in item.sidecar and "EchoTime2" in item.sidecar):
            continue
        times = sorted({m.sidecar["EchoTime"] for m in sets if m.suffix.startswith("magnitude")
                        and m.session is item.session and m.series.tag == item.series.tag
                        and isinstance(m.sidecar.get("EchoTime"), (int, float))})
        if len(times) == 2:
            item.sidecar["EchoTime1"], item.sidecar["EchoTime2"] = times


def _intended_for(sets: list[_ImageSet], visit: Visit) -> None:
    """Each field map's IntendedFor: the images of its datatypes' targets in the same XNAT
    session (a repeat's field map is not meant for another repeat's BOLD)."""
    for item in sets:
        mapping = item.series.mapping
        if item.datatype != "fmap" or mapping is None:
            continue
        targets = sorted(f"{visit.folder}/{t.datatype}/{t.name}{NIFTI}" for t in sets
                         if t.session is item.session and t.datatype in mapping.targets)
        if targets:
            item.sidecar["IntendedFor"] = [bids_uri(t) for t in targets]


def plan_visit(visit: Visit, sessions: list[SessionSource], settings: BidsStudy) -> VisitPlan:
    """Every file of one BIDS session folder and every series left out, with the reason."""
    left_out: list[LeftOut] = []
    sets: list[_ImageSet] = []
    for session in sorted(sessions, key=lambda s: s.repeat):
        for series in session.series:
            if series.left_out or series.mapping is None:
                reason = series.left_out or f"tag {series.tag} has no bids: mapping in tags.yml"
                left_out.append(LeftOut(session.label, series.series_number, series.tag, reason))
                continue
            placed, nowhere = _placed_sets(session, series)
            for base in nowhere:
                left_out.append(LeftOut(session.label, series.series_number, series.tag,
                                        f"dcm2niix output {base} has no place in BIDS {series.mapping.datatype}/"
                                        f"{series.mapping.suffix}"))
            good = []
            for item in placed:
                try:
                    _fill_sidecar(item, parse_scan_date(session.scan_date), settings)
                    good.append(item)
                except ValueError as exc:
                    left_out.append(LeftOut(session.label, series.series_number, series.tag, str(exc)))
            sets += good
    _number_runs(sets, visit)
    _phasediff_echo_times(sets)
    _intended_for(sets, visit)
    files: list[PlannedFile] = []
    scans: list[tuple[str, str]] = []
    images = []
    for item in sorted(sets, key=lambda s: (s.datatype, s.name)):
        where = f"{visit.folder}/{item.datatype}/{item.name}"
        files.append(PlannedFile(where + NIFTI, source=item.series.folder / f"{item.base}{NIFTI}"))
        files.append(PlannedFile(where + ".json", text=json.dumps(item.sidecar, indent=2, sort_keys=True) + "\n"))
        for extension in (".bval", ".bvec"):
            if item.datatype == "dwi" and f"{item.base}{extension}" in item.series.outputs:
                files.append(PlannedFile(where + extension, source=item.series.folder / f"{item.base}{extension}"))
        day = parse_scan_date(item.session.scan_date)
        scans.append((f"{item.datatype}/{item.name}{NIFTI}", acq_time(day, item.sidecar.get("AcquisitionTime"),
                                                                      settings)))
        images.append(PlacedImage(item.session.label, item.series.series_number, item.datatype, item.suffix,
                                  item.series.folder / f"{item.base}{NIFTI}", where))
    first = min(sessions, key=lambda s: s.repeat) if sessions else None
    visit_time = acq_time(parse_scan_date(first.scan_date), None, settings) if first else ""
    exported = tuple(sorted({i.session.label for i in sets}))
    return VisitPlan(visit, tuple(files), tuple(scans), visit_time, tuple(left_out), exported, tuple(images))
