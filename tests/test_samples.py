"""The demo's synthetic sample sessions: layout, headers, geometry, determinism, dcm2niix."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from datman_flow.samples import phantom, sessions
from datman_flow.samples.dicom_writer import series_folder_name
from datman_flow.samples.sessions import sample_session_labels, sample_sessions, write_sample_sessions

FULL = "SPN01_CMH_0001_01_01"
FILES_PER_SERIES = {  # series description -> files written (one per slice per volume)
    "Sag T1 BRAVO": 72, "T1w MPRAGE": 72, "Resting State fMRI (rest)": 960, "DTI 60 dir": 336,
    "ep2d_diff_mddw_60": 336, "DTI 60 dir_FA": 24, "PhoenixZIPReport": 1, "Localizer 3-plane": 9,
}


@pytest.fixture(scope="module")
def xnat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("xnat")
    write_sample_sessions(root)
    return root


def session_dir(root: Path, label: str) -> Path:
    sample = next(s for s in sample_sessions() if s.label == label)
    return root / sample.project / label


def series_dir(root: Path, label: str, number: int) -> Path:
    sample = next(s for s in sample_sessions() if s.label == label)
    return session_dir(root, label) / series_folder_name(number, dict(sample.series)[number])


def read_series(folder: Path, pixels: bool = False) -> list[pydicom.Dataset]:
    datasets = [pydicom.dcmread(p, stop_before_pixels=not pixels) for p in folder.glob("*.dcm")]
    return sorted(datasets, key=lambda d: int(d.InstanceNumber))


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.dcm"))}


def dcm2niix_path() -> str:
    found = shutil.which("dcm2niix")
    if found:
        return found
    import dcm2niix

    return dcm2niix.bin


def test_catalogue() -> None:
    samples = sample_sessions()
    assert [s.label for s in samples] == sample_session_labels()
    assert sample_session_labels() == [
        "SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01", "SPN01_ZHH_0003_01_01",
        "SPN01_CMH_PHA_FBN0001", "SPN01_CMH_0004_01_01", "SPN01_CMH_0005_01_01", "badlabel_session",
    ]
    by_label = {s.label: s for s in samples}
    assert by_label["SPN01_ZHH_0003_01_01"].project == "SPINS_ZHH"
    assert {s.project for s in samples if "ZHH" not in s.label} == {"SPINS_CMH"}
    assert by_label[FULL].series == [
        (2, "Sag T1 BRAVO"), (3, "Resting State fMRI (rest)"), (4, "DTI 60 dir"),
        (5, "DTI 60 dir_FA"), (99, "PhoenixZIPReport"),
    ]
    assert [d for _, d in by_label["SPN01_CMH_0002_01_01"].series] == ["Sag T1 BRAVO", "Resting State fMRI (rest)"]
    assert (6, "Localizer 3-plane") in by_label["SPN01_ZHH_0003_01_01"].series
    assert all(s.note for s in samples)
    with pytest.raises(ValueError, match="unknown sample session"):
        write_sample_sessions(Path("/nonexistent"), only=["SPN01_CMH_9999_01_01"])


def test_layout_and_file_counts(xnat: Path) -> None:
    assert sorted(p.name for p in xnat.iterdir()) == ["SPINS_CMH", "SPINS_ZHH"]
    for sample in sample_sessions():
        folder = session_dir(xnat, sample.label)
        assert sorted(p.name for p in folder.iterdir()) == sorted(series_folder_name(n, d) for n, d in sample.series)
        for number, description in sample.series:
            expected = 36 if sample.label == "badlabel_session" else FILES_PER_SERIES[description]
            assert len(list(series_dir(xnat, sample.label, number).glob("*.dcm"))) == expected
    assert not [p for p in xnat.rglob(".*")], "no partial folders left behind"


def test_headers(xnat: Path) -> None:
    t1 = read_series(series_dir(xnat, FULL, 2))
    bold = read_series(series_dir(xnat, FULL, 3))
    first = t1[0]
    assert first.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    raw = (series_dir(xnat, FULL, 2) / "IM-0002-00001.dcm").read_bytes()
    assert raw[:128] == b"\0" * 128 and raw[128:132] == b"DICM"
    assert str(first.PatientName) == first.PatientID == FULL
    assert (first.Modality, first.Manufacturer, first.ManufacturerModelName) == ("MR", "SIEMENS", "Prisma")
    assert first.SoftwareVersions == "syngo MR E11" and float(first.MagneticFieldStrength) == 3.0
    assert float(first.ImagingFrequency) == 123.25 and first.ReceiveCoilName == "HeadNeck_20"
    assert (first.SeriesNumber, first.SeriesDescription, first.ProtocolName) == (2, "Sag T1 BRAVO", "Sag T1 BRAVO")
    assert list(first.ImageType)[:2] == ["ORIGINAL", "PRIMARY"]
    assert first.MRAcquisitionType == "3D" and float(first.InversionTime) == 900.0
    assert (first.BitsAllocated, first.BitsStored, first.Rows, first.Columns) == (16, 12, 112, 96)
    assert first.InPlanePhaseEncodingDirection == "COL" and first.StudyDate == "20240312"
    assert bold[0].MRAcquisitionType == "2D" and float(bold[0].RepetitionTime) == 2000.0
    assert "InversionTime" not in bold[0]
    # UIDs: one study per session, one series UID per series, one SOP instance per file
    assert {d.StudyInstanceUID for d in t1 + bold} == {first.StudyInstanceUID}
    assert {d.SeriesInstanceUID for d in t1} != {d.SeriesInstanceUID for d in bold}
    assert len({d.SOPInstanceUID for d in t1 + bold}) == len(t1) + len(bold)
    other = read_series(series_dir(xnat, "SPN01_CMH_0004_01_01", 2))[0]
    assert other.StudyInstanceUID != first.StudyInstanceUID
    zhh = read_series(series_dir(xnat, "SPN01_ZHH_0003_01_01", 2))[0]
    assert zhh.InstitutionName == "Zucker Hillside Hospital" and float(zhh.RepetitionTime) == 2400.0


def test_derived_and_non_image_objects(xnat: Path) -> None:
    fa = read_series(series_dir(xnat, FULL, 5))
    assert {tuple(d.ImageType) for d in fa} == {("DERIVED", "PRIMARY", "FA", "ND", "NORM")}
    assert fa[0].SeriesDescription == "DTI 60 dir_FA"
    (sr_file,) = series_dir(xnat, FULL, 99).glob("*.dcm")
    sr = pydicom.dcmread(sr_file)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.11" and sr.Modality == "SR"
    assert "PixelData" not in sr and sr.SeriesDescription == "PhoenixZIPReport"
    assert sr.ContentSequence[0].ValueType == "TEXT"


def test_geometry(xnat: Path) -> None:
    t1 = read_series(series_dir(xnat, FULL, 2))
    positions = np.array([[float(v) for v in d.ImagePositionPatient] for d in t1])
    assert np.allclose(np.diff(positions, axis=0), [0.0, 0.0, 2.0])  # axial, stacked along +z
    assert {tuple(float(v) for v in d.ImageOrientationPatient) for d in t1} == {(1, 0, 0, 0, 1, 0)}
    assert np.allclose([float(d.SliceLocation) for d in t1], positions[:, 2])
    assert np.allclose(positions[0], sessions.T1_GRID.origin())
    assert [float(v) for v in t1[0].PixelSpacing] == [2.0, 2.0] and float(t1[0].SliceThickness) == 2.0
    # Centre of the stack is the grid centre.
    centre = positions.mean(axis=0) + np.array([95 * 2.0, 111 * 2.0, 0.0]) / 2
    assert np.allclose(centre, sessions.T1_GRID.center)

    bold = read_series(series_dir(xnat, FULL, 3))
    assert [int(d.AcquisitionNumber) for d in bold] == [t + 1 for t in range(40) for _ in range(24)]
    assert {int(d.NumberOfTemporalPositions) for d in bold} == {40}
    vol_pos = [[tuple(d.ImagePositionPatient) for d in bold[t * 24:(t + 1) * 24]] for t in range(40)]
    assert all(v == vol_pos[0] for v in vol_pos)

    def seconds(tm: str) -> float:
        return int(tm[:2]) * 3600 + int(tm[2:4]) * 60 + float(tm[4:])

    starts = [min(seconds(d.AcquisitionTime) for d in bold[t * 24:(t + 1) * 24]) for t in range(40)]
    assert np.allclose(np.diff(starts), 2.0, atol=1e-3)  # one TR apart

    localizer = read_series(series_dir(xnat, "SPN01_ZHH_0003_01_01", 6))
    assert len({tuple(d.ImageOrientationPatient) for d in localizer}) == 3


def test_pixels_are_the_phantom(xnat: Path) -> None:
    t1 = read_series(series_dir(xnat, FULL, 2), pixels=True)
    volume = np.stack([d.pixel_array.T for d in t1], axis=2)  # back to [i, j, k]
    assert np.array_equal(volume, phantom.t1w_volume(sessions.T1_GRID, 101))
    frac = phantom.tissue_fractions(phantom.HeadModel.from_seed(101), sessions.T1_GRID)
    means = {name: volume[frac[n] > 0.9].mean() for n, name in enumerate(phantom.TISSUES)}
    assert means["wm"] > means["gm"] > means["csf"] > 0
    assert volume[frac.sum(axis=0) < 0.01].mean() < 0.1 * means["gm"]  # dark background


def test_dwi_headers(xnat: Path) -> None:
    dwi = read_series(series_dir(xnat, FULL, 4))
    bvals, bvecs = sessions.dwi_scheme()
    per_volume = dwi[::24]
    assert [float(d.DiffusionBValue) for d in per_volume] == list(bvals)
    for d, b, g in zip(per_volume, bvals, bvecs):
        assert d.DiffusionDirectionality == ("DIRECTIONAL" if b else "NONE")
        assert np.allclose([float(v) for v in d.DiffusionGradientOrientation], g)
    assert np.allclose(np.linalg.norm(bvecs[bvals > 0], axis=1), 1.0)


def test_bytes_match_pydicom_save_as(xnat: Path) -> None:
    for number, name in [(2, "IM-0002-00040.dcm"), (3, "IM-0003-00517.dcm"), (4, "IM-0004-00200.dcm"),
                         (5, "IM-0005-00003.dcm")]:
        raw = (series_dir(xnat, FULL, number) / name).read_bytes()
        buffer = io.BytesIO()
        pydicom.dcmread(io.BytesIO(raw)).save_as(buffer, enforce_file_format=True)
        assert buffer.getvalue() == raw


def test_deterministic_and_idempotent(xnat: Path, tmp_path: Path) -> None:
    again = write_sample_sessions(tmp_path, only=[FULL])
    assert [s.label for s in again] == [FULL]
    assert [p.name for p in tmp_path.iterdir()] == ["SPINS_CMH"]
    assert all_files(session_dir(tmp_path, FULL)) == all_files(session_dir(xnat, FULL))

    before = {p: p.stat().st_mtime_ns for p in xnat.rglob("*")}
    returned = write_sample_sessions(xnat)
    assert [s.label for s in returned] == sample_session_labels()
    assert {p: p.stat().st_mtime_ns for p in xnat.rglob("*")} == before


def test_failed_session_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(sessions, "_rest", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_sample_sessions(tmp_path, only=["SPN01_CMH_0002_01_01"])
    assert list((tmp_path / "SPINS_CMH").iterdir()) == []


def run_dcm2niix(series: Path, out: Path) -> tuple[Path, dict]:
    out.mkdir()
    result = subprocess.run([dcm2niix_path(), "-z", "y", "-o", str(out), str(series)],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (nifti,) = out.glob("*.nii.gz")
    sidecar = nifti.with_name(nifti.name[: -len(".nii.gz")] + ".json")
    return nifti, json.loads(sidecar.read_text())


def test_dcm2niix_t1(xnat: Path, tmp_path: Path) -> None:
    nifti, meta = run_dcm2niix(series_dir(xnat, FULL, 2), tmp_path / "t1")
    image = nib.load(nifti)
    assert image.shape == (96, 112, 72)
    assert np.allclose(image.header.get_zooms(), (2.0, 2.0, 2.0))
    assert meta["SeriesDescription"] == "Sag T1 BRAVO" and meta["InversionTime"] == pytest.approx(0.9)
    assert meta["MRAcquisitionType"] == "3D" and meta["Manufacturer"] == "Siemens"


def test_dcm2niix_bold(xnat: Path, tmp_path: Path) -> None:
    nifti, meta = run_dcm2niix(series_dir(xnat, FULL, 3), tmp_path / "bold")
    image = nib.load(nifti)
    assert image.shape == (48, 48, 24, 40)
    assert meta["RepetitionTime"] == pytest.approx(2.0)
    assert meta["EchoTime"] == pytest.approx(0.03) and meta["PhaseEncodingAxis"] == "j"
    assert "MultibandAccelerationFactor" not in meta  # per-slice times: no bogus multiband guess


def test_dcm2niix_dwi(xnat: Path, tmp_path: Path) -> None:
    nifti, meta = run_dcm2niix(series_dir(xnat, FULL, 4), tmp_path / "dwi")
    assert nib.load(nifti).shape == (48, 48, 24, 14)
    stem = nifti.name[: -len(".nii.gz")]
    bval = np.loadtxt(nifti.with_name(stem + ".bval"))
    bvec = np.loadtxt(nifti.with_name(stem + ".bvec"))
    expected_b, expected_g = sessions.dwi_scheme()
    assert np.array_equal(bval, expected_b)
    assert bvec.shape == (3, 14)
    assert np.allclose(np.linalg.norm(bvec[:, bval > 0], axis=0), 1.0, atol=1e-4)
    assert np.allclose(np.abs(bvec.T), np.abs(expected_g), atol=1e-4)  # same axes, up to sign
