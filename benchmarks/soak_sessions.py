"""The soak test's sessions: small synthetic SPINS sessions of the CMH site, each with the three
series the site's protocol expects (a T1 with `qc: anat`, so the `qc` pool is exercised, a short
resting BOLD and a short diffusion series), small enough that a session's run takes seconds.

Each session is written under a hidden staging folder of the emulator's project and moved into
place with one rename when its burst arrives, as a session appears on XNAT once archived.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from datman_flow.samples import phantom
from datman_flow.samples.dicom_headers import SeriesHeader, SessionHeader
from datman_flow.samples.dicom_writer import series_folder_name, write_series
from datman_flow.samples.sessions import BOLD, DWI, MPRAGE, dwi_scheme

PROJECT = "SPINS_CMH"  # configs/studies/SPINS.yml: site CMH
OTHER_PROJECT = "SPINS_ZHH"  # its other site
T1_GRID = phantom.Grid((48, 56, 36), (4.0, 4.0, 4.0), center=(1.0, -3.0, 0.0))
EPI_GRID = phantom.Grid((32, 32, 12), (6.0, 6.0, 8.0), center=(1.0, -3.0, 12.0))
BOLD_VOLUMES = 12


@dataclass(frozen=True)
class SoakSession:
    label: str
    seed: int


def soak_label(n: int) -> str:
    """Distinct subjects of study SPN01 at site CMH: SPN01_CMH_1001_01_01, ..."""
    return f"SPN01_CMH_{1000 + n:04d}_01_01"


def soak_sessions(count: int) -> list[SoakSession]:
    return [SoakSession(soak_label(n), 5000 + n) for n in range(1, count + 1)]


def write_session(session: SoakSession, folder: Path) -> None:
    """The session's three series (T1, RST, DTI60 by the CMH rules) under `folder`."""
    header = SessionHeader(session.label, "20261101", 9.0 * 3600 + 60.0 * (session.seed % 480))
    seed = session.seed
    t1 = SeriesHeader(2, "Sag T1 BRAVO", MPRAGE, 120.0)
    write_series(folder / series_folder_name(t1.number, t1.description), header, t1,
                 [(T1_GRID, phantom.t1w_volume(T1_GRID, seed))])
    rest = SeriesHeader(3, "Resting State fMRI (rest)", BOLD, 480.0)
    write_series(folder / series_folder_name(rest.number, rest.description), header, rest,
                 [(EPI_GRID, phantom.bold_series(EPI_GRID, seed, n_volumes=BOLD_VOLUMES, motion_mm=0.2))])
    dti = SeriesHeader(4, "DTI 60 dir", DWI, 840.0)
    bvals, bvecs = dwi_scheme()
    write_series(folder / series_folder_name(dti.number, dti.description), header, dti,
                 [(EPI_GRID, phantom.dwi_series(EPI_GRID, seed, bvals, bvecs))], bvals=bvals, bvecs=bvecs)


def staging_dir(xnat_dir: Path) -> Path:
    """Where sessions wait, unseen by the emulator (a hidden folder of the project)."""
    return xnat_dir / PROJECT / ".soak-staging"


def stage(sessions: list[SoakSession], xnat_dir: Path) -> None:
    """Write every session into the staging folder (the emulator ignores hidden folders)."""
    root = staging_dir(xnat_dir)
    root.mkdir(parents=True, exist_ok=True)
    (xnat_dir / OTHER_PROJECT).mkdir(exist_ok=True)  # the study's other site, empty: listed, nothing in it
    for session in sessions:
        if not (root / session.label).exists():
            partial = root / f"{session.label}.partial"
            write_session(session, partial)
            os.rename(partial, root / session.label)


def arrive(session: SoakSession, xnat_dir: Path) -> None:
    """The session appears on XNAT: one rename out of the staging folder."""
    os.rename(staging_dir(xnat_dir) / session.label, xnat_dir / PROJECT / session.label)
