"""Shared fixtures: the real DICOM archives of ../shared/dicom, unpacked once per test session;
one small session served by the XNAT emulator, and a client for it (the client tests); one
session's series measured by the QC step, with real pictures (the picture tests)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from datman_flow.xnat import XnatClient
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import LABEL, make_session

REPO = Path(__file__).resolve().parents[1]
SHARED_DICOM = REPO.parent / "shared" / "dicom"
ARCHIVES = ("siemens_xa30", "ge_siemens_nih", "siemens_mosaic", "philips_ingenia")
QC_LABEL = "SPN01_CMH_0001_01_01"  # the session of the `qc_session` fixture


@pytest.fixture(scope="session")
def repo_configs() -> Path:
    return REPO / "configs"


@pytest.fixture(scope="session")
def real_dicom(tmp_path_factory: pytest.TempPathFactory):
    """A function name -> unpacked archive folder (with In/ and Ref/), unpacking on first use."""
    if not SHARED_DICOM.is_dir():
        pytest.skip(f"real DICOM archives not found at {SHARED_DICOM} (../shared/dicom beside the repository)")
    root = tmp_path_factory.mktemp("real_dicom")
    unpacked: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in unpacked:
            archive = SHARED_DICOM / f"{name}.tar.gz"
            if not archive.exists():
                pytest.skip(f"{archive} is absent")
            with tarfile.open(archive) as tar:
                tar.extractall(root, filter="data")
            unpacked[name] = root / name
        return unpacked[name]

    return get


@pytest.fixture(scope="session")
def philips_mprage(real_dicom, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Philips MPRAGE (series 1301, 170 files, 256x256x170) converted once per session."""
    from datman_flow.dicom.convert import Dcm2niixMissing, convert_series, find_dcm2niix

    series = tmp_path_factory.mktemp("mprage_dicom")
    for path in sorted((real_dicom("philips_ingenia") / "In").glob("1301_*.dcm")):
        (series / path.name).symlink_to(path)
    assert len(list(series.iterdir())) == 170
    try:
        tool = find_dcm2niix()
    except Dcm2niixMissing as err:
        pytest.skip(f"dcm2niix not available: {err}")
    outcome = convert_series(tool, series, tmp_path_factory.mktemp("mprage_nifti"), "t1", expected_files=170)
    assert outcome.status == "converted", outcome.message
    return Path(str(outcome.nifti_path))


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "xnat"
    make_session(root, "STUDYA", LABEL, series=[
        ("1.2.3.2", 2, "T1w MPRAGE", 3), ("1.2.3.5", 5, "rest BOLD", 40), ("1.2.3.6", 6, "fmap", 2)])
    return root


@pytest.fixture()
def emu(data: Path):
    with XnatEmulator(data) as server:
        yield server


@pytest.fixture()
def client(emu: XnatEmulator):
    with XnatClient(emu.url, "admin", "admin", timeout=(2, 10), retry_budget=2, backoff=0.01) as c:
        yield c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that reads the real scanner archives is `slow` (`make test-quick` leaves them out)."""
    for item in items:
        if "real_dicom" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def qc_session(tmp_path_factory: pytest.TempPathFactory):
    """A data folder with one session's converted T1, RST and DTI60 series (small phantoms) in
    their NIfTI folder, with real QC pictures: (data folder, [SeriesQC]). The RST and DTI60
    series go through the QC step; the T1's picture is drawn from given metrics (the T1
    analysis alone takes seconds)."""
    import nibabel as nib
    import numpy as np

    from datman_flow.layout import DataLayout
    from datman_flow.naming import parse_session_label
    from datman_flow.pipeline.qc import SeriesQC, measure_series
    from datman_flow.qc.measure import companion, picture
    from datman_flow.qc.result import QCResult
    from datman_flow.records import SeriesRecord
    from datman_flow.samples import phantom
    from datman_flow.samples.sessions import BOLD_GRID, DWI_GRID, SMALL_T1_GRID, dwi_scheme

    data = tmp_path_factory.mktemp("qc_session") / "data"
    folder = DataLayout(data).nii(parse_session_label(QC_LABEL))
    folder.mkdir(parents=True)
    bvals, bvecs = dwi_scheme()
    series = [("2", "T1", "anat", SMALL_T1_GRID, phantom.t1w_volume(SMALL_T1_GRID, 3)),
              ("3", "RST", "fmri", BOLD_GRID, phantom.bold_series(BOLD_GRID, 7, n_volumes=12, motion_mm=0.1)),
              ("4", "DTI60", "dwi", DWI_GRID, phantom.dwi_series(DWI_GRID, 7, bvals, bvecs))]
    measured = []
    for number, tag, kind, grid, volume in series:
        nifti = folder / f"{QC_LABEL}_{tag}_0{number}_{tag.lower()}.nii.gz"
        nib.save(nib.Nifti1Image(volume.astype(np.float32), np.diag([*grid.spacing, 1.0])), nifti)
        if kind == "dwi":
            np.savetxt(companion(nifti, ".bval"), bvals[None], fmt="%g")
            np.savetxt(companion(nifti, ".bvec"), bvecs.T, fmt="%.6f")
        record = SeriesRecord(session=QC_LABEL, scan_id=number, series_number=number, description=tag.lower(),
                              download_status="complete", tag=tag, nifti_path=str(nifti),
                              conversion_status="converted")
        if kind == "anat":
            result = QCResult("anat", {"snr_total": 11.0, "cnr": 3.2, "cjv": 0.45, "efc": 0.52, "fber": 4000.0})
            png = picture("anat", nifti, result, companion(nifti, "_qc.png"))
            measured.append(SeriesQC(record, kind, "measured", result=result, picture_path=str(png)))
        else:
            measured.append(measure_series(record, kind))
    assert all(q.picture_path for q in measured), [q.message for q in measured]
    return data, measured


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The review app over review_helpers.review_data's sessions (tests/test_review_app.py,
    test_review_auth.py): (server, data folder, LABEL's pictures by tag, RATED's pictures)."""
    from datman_flow.review.server import ReviewServer

    from review_helpers import review_data

    data = tmp_path_factory.mktemp("review_app") / "data"
    images, rated = review_data(data)
    with ReviewServer(data) as server:
        yield server, data, images, rated


@pytest.fixture()
def alice(app):
    """A browser logged in to `app` as alice."""
    from review_helpers import Browser

    server = app[0]
    browser = Browser(server.host, server.port)
    assert browser.login("alice").status == 303
    return browser
