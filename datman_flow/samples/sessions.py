"""The demo's sample sessions: what each one holds and shows, and writing them to disk.

Sessions are written as ``<xnat_dir>/<XNAT project>/<session label>/<series folder>/*.dcm``.
Each session is first written to a hidden folder next to its final place
(``.<label>.partial-...``) and renamed when complete, so a process watching the project
folder never sees half a session; a session already present is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import phantom
from .dicom_headers import Acquisition, SeriesHeader, SessionHeader
from .dicom_report import write_text_sr
from .dicom_writer import series_folder_name, write_series

log = logging.getLogger(__name__)

MPRAGE = Acquisition(("GR", "IR"), ("SK", "SP", "MP"), ("IR",), "3D", "*tfl3d1_16ns",
                     echo_time=2.98, repetition_time=2300.0, inversion_time=900.0,
                     flip_angle=9.0, pixel_bandwidth=240.0)
MPRAGE_ZHH = Acquisition(("GR", "IR"), ("SK", "SP", "MP"), ("IR",), "3D", "*tfl3d1_16ns",
                         echo_time=2.22, repetition_time=2400.0, inversion_time=1000.0,
                         flip_angle=8.0, pixel_bandwidth=220.0)
BOLD = Acquisition(("EP",), ("SK",), ("FS",), "2D", "*epfid2d1_48", echo_time=30.0,
                   repetition_time=2000.0, flip_angle=77.0, pixel_bandwidth=2442.0,
                   echo_train_length=48)
DWI = Acquisition(("EP",), ("SK", "SP"), ("PFP", "FS"), "2D", "*ep_b1000", echo_time=89.0,
                  repetition_time=8800.0, flip_angle=90.0, pixel_bandwidth=1860.0,
                  echo_train_length=48, percent_sampling=75.0)
LOCALIZER = Acquisition(("GR",), ("SP",), (), "2D", "*fl2d1", echo_time=4.0,
                        repetition_time=8.6, flip_angle=20.0, pixel_bandwidth=320.0)

T1_GRID = phantom.Grid((96, 112, 72), (2.0, 2.0, 2.0), center=(1.0, -3.0, 0.0))
SMALL_T1_GRID = phantom.Grid((48, 56, 36), (4.0, 4.0, 4.0), center=(1.0, -3.0, 0.0))
BOLD_GRID = phantom.Grid((48, 48, 24), (3.5, 3.5, 3.5), center=(1.0, -3.0, 12.0))
DWI_GRID = phantom.Grid((48, 48, 24), (3.5, 3.5, 3.5), center=(1.0, -3.0, 8.0))
BOLD_VOLUMES = 40


def dwi_scheme() -> tuple[np.ndarray, np.ndarray]:
    """b-values and unit gradient directions: b=0 at volumes 1 and 8, twelve at b=1000."""
    bvals = np.array([0.0] + [1000.0] * 6 + [0.0] + [1000.0] * 6)
    bvecs = np.zeros((bvals.size, 3))
    bvecs[bvals > 0] = phantom.gradient_directions(12)
    return bvals, bvecs


def localizer_grids() -> list[phantom.Grid]:
    """Sagittal, coronal and axial stacks of three slices each."""
    size, pixel, gap = (64, 64, 3), (4.0, 4.0, 10.0), (0.0, -3.0, 0.0)
    return [
        phantom.Grid(size, pixel, gap, row_cosines=(0.0, 1.0, 0.0), col_cosines=(0.0, 0.0, -1.0)),
        phantom.Grid(size, pixel, gap, row_cosines=(1.0, 0.0, 0.0), col_cosines=(0.0, 0.0, -1.0)),
        phantom.Grid(size, pixel, gap),
    ]


@dataclass(frozen=True)
class SampleSession:
    label: str
    project: str
    series: list[tuple[int, str]]
    note: str  # what the session demonstrates


# A series builder writes one series into a folder: (folder, session, header, seed).
Builder = Callable[[Path, SessionHeader, SeriesHeader, int], None]


def _t1(out: Path, s: SessionHeader, h: SeriesHeader, seed: int) -> None:
    write_series(out, s, h, [(T1_GRID, phantom.t1w_volume(T1_GRID, seed))])


def _small_t1(out: Path, s: SessionHeader, h: SeriesHeader, seed: int) -> None:
    write_series(out, s, h, [(SMALL_T1_GRID, phantom.t1w_volume(SMALL_T1_GRID, seed))])


def _sphere(out: Path, s: SessionHeader, h: SeriesHeader, seed: int) -> None:
    write_series(out, s, h, [(T1_GRID, phantom.sphere_phantom_volume(T1_GRID, seed))])


def _rest(out: Path, s: SessionHeader, h: SeriesHeader, seed: int) -> None:
    data = phantom.bold_series(BOLD_GRID, seed, n_volumes=BOLD_VOLUMES, motion_mm=0.15 + 0.1 * (seed % 3))
    write_series(out, s, h, [(BOLD_GRID, data)])


def _dwi(out: Path, s: SessionHeader, h: SeriesHeader, seed: int) -> None:
    bvals, bvecs = dwi_scheme()
    data = phantom.dwi_series(DWI_GRID, seed, bvals, bvecs)
    write_series(out, s, h, [(DWI_GRID, data)], bvals=bvals, bvecs=bvecs)


def _fa(out: Path, s: SessionHeader, h: SeriesHeader, seed: int) -> None:
    write_series(out, s, h, [(DWI_GRID, phantom.fa_map(DWI_GRID, seed))])


def _localizer(out: Path, s: SessionHeader, h: SeriesHeader, seed: int) -> None:
    write_series(out, s, h, [(g, phantom.t1w_volume(g, seed, scale=900.0)) for g in localizer_grids()])


def _report(out: Path, s: SessionHeader, h: SeriesHeader, seed: int) -> None:
    text = f"Phoenix protocol report for {s.label} (synthetic demo object, no pixels)."
    write_text_sr(out, s, h.number, h.description, text, start_offset_s=h.start_offset_s)


@dataclass(frozen=True)
class _SeriesPlan:
    number: int
    description: str
    build: Builder
    acquisition: Acquisition
    derived_from: int | None = None  # number of the series an FA map is derived from


@dataclass(frozen=True)
class _SessionPlan:
    sample: SampleSession
    header: SessionHeader
    seed: int
    series: tuple[_SeriesPlan, ...]


def _cmh_complete() -> tuple[_SeriesPlan, ...]:
    return (
        _SeriesPlan(2, "Sag T1 BRAVO", _t1, MPRAGE),
        _SeriesPlan(3, "Resting State fMRI (rest)", _rest, BOLD),
        _SeriesPlan(4, "DTI 60 dir", _dwi, DWI),
        _SeriesPlan(5, "DTI 60 dir_FA", _fa, DWI, derived_from=4),
        _SeriesPlan(99, "PhoenixZIPReport", _report, BOLD),
    )


def _catalogue() -> list[_SessionPlan]:
    cmh = dict(institution="Centre for Addiction and Mental Health", station="MRC35123", device_serial="166012")
    zhh = dict(institution="Zucker Hillside Hospital", station="ZHHMR01", device_serial="175523")
    hour = 3600.0

    def plan(label, project, note, date, start, seed, series, **header):
        sample = SampleSession(label, project, [(p.number, p.description) for p in series], note)
        return _SessionPlan(sample, SessionHeader(label, date, start * hour, **header), seed, series)

    return [
        plan("SPN01_CMH_0001_01_01", "SPINS_CMH",
             "Complete session: T1, resting state and DTI are tagged; the scanner's derived FA map "
             "(ImageType DERIVED) stays untagged and the PhoenixZIPReport (an SR without pixels) is skipped.",
             "20240312", 9.5, 101, _cmh_complete(), patient_sex="F", patient_age="027Y", **cmh),
        plan("SPN01_CMH_0002_01_01", "SPINS_CMH",
             "DTI was not acquired: the expected-count check reports DTI60 missing (0 of 1).",
             "20240319", 14.0, 102, _cmh_complete()[:2], patient_sex="M", patient_age="034Y", **cmh),
        plan("SPN01_ZHH_0003_01_01", "SPINS_ZHH",
             "Second site with its own T1 rule ('T1w MPRAGE') and protocol, DTI named the Siemens "
             "way (ep2d_diff); the 3-plane localizer matches no rule and is listed as untagged.",
             "20240402", 10.25, 103,
             (_SeriesPlan(2, "T1w MPRAGE", _t1, MPRAGE_ZHH),
              _SeriesPlan(3, "Resting State fMRI (rest)", _rest, BOLD),
              _SeriesPlan(4, "ep2d_diff_mddw_60", _dwi, DWI),
              _SeriesPlan(6, "Localizer 3-plane", _localizer, LOCALIZER)),
             patient_sex="M", patient_age="041Y", **zhh),
        plan("SPN01_CMH_PHA_FBN0001", "SPINS_CMH",
             "Phantom session (FBIRN-style gel sphere): parsed as a phantom, one T1.",
             "20240312", 7.75, 104, (_SeriesPlan(2, "Sag T1 BRAVO", _sphere, MPRAGE),),
             patient_sex="O", patient_age="000Y", patient_weight=5.0, **cmh),
        plan("SPN01_CMH_0004_01_01", "SPINS_CMH",
             "Another complete session (different participant), so trends have several points.",
             "20240409", 11.0, 105, _cmh_complete(), patient_sex="F", patient_age="022Y", **cmh),
        plan("SPN01_CMH_0005_01_01", "SPINS_CMH",
             "After a scanner software upgrade (SoftwareVersions syngo MR E11 -> E11C) and a technician's "
             "edit of the T1's echo time: the header-drift check reports both, the upgrade first.",
             "20240416", 9.0, 107,
             (_SeriesPlan(2, "Sag T1 BRAVO", _t1, replace(MPRAGE, echo_time=MPRAGE.echo_time + 0.4)),
              *_cmh_complete()[1:3]),
             patient_sex="M", patient_age="029Y", software_versions="syngo MR E11C", **cmh),
        plan("badlabel_session", "SPINS_CMH",
             "A label that does not follow STUDY_SITE_SUBJECT_TIMEPOINT_REPEAT: the sensor records "
             "it as unparseable and skips it.",
             "20240410", 16.33, 106, (_SeriesPlan(2, "Sag T1 BRAVO", _small_t1, MPRAGE),),
             patient_sex="O", patient_age="030Y", **cmh),
    ]


def sample_sessions() -> list[SampleSession]:
    """The catalogue, in the order the demo writes it."""
    return [p.sample for p in _catalogue()]


def sample_session_labels() -> list[str]:
    return [p.sample.label for p in _catalogue()]


def _series_header(p: _SeriesPlan) -> SeriesHeader:
    def offset(number: int) -> float:  # series run a few minutes apart, reports at the end
        return 120.0 + 240.0 * min(number, 10)

    if p.derived_from is None:
        return SeriesHeader(p.number, p.description, p.acquisition, start_offset_s=offset(p.number))
    source_description, kind = p.description.rsplit("_", 1)
    source = SeriesHeader(p.derived_from, source_description, p.acquisition, offset(p.derived_from))
    return source.derived(p.number, kind)


def _write_session(plan: _SessionPlan, folder: Path) -> None:
    for p in plan.series:
        p.build(folder / series_folder_name(p.number, p.description), plan.header, _series_header(p), plan.seed)


def write_sample_sessions(xnat_dir: Path, *, only: list[str] | None = None) -> list[SampleSession]:
    """Write the sample sessions (all, or those labelled in ``only``) that are not yet under
    ``xnat_dir`` and return the requested sessions, all of which are then present."""
    plans = _catalogue()
    if only is not None:
        unknown = sorted(set(only) - {p.sample.label for p in plans})
        if unknown:
            raise ValueError(f"unknown sample session(s) {unknown}; known: {sample_session_labels()}")
        plans = [p for p in plans if p.sample.label in only]
    for plan in plans:
        project_dir = Path(xnat_dir) / plan.sample.project
        final = project_dir / plan.sample.label
        if final.exists():
            log.info("sample session %s already present, skipped", plan.sample.label)
            continue
        project_dir.mkdir(parents=True, exist_ok=True)
        partial = project_dir / f".{plan.sample.label}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        partial.mkdir()
        try:
            _write_session(plan, partial)
            os.rename(partial, final)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            if not final.exists():
                raise
            log.info("sample session %s was written concurrently, kept that copy", plan.sample.label)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        else:
            log.info("wrote sample session %s", plan.sample.label)
    return [p.sample for p in plans]
