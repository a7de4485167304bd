"""Header drift from files: parameters extracted from sidecar, NIfTI, bval/bvec and DICOM;
gold-standard files; the provisional reference from earlier sessions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from test_drift import BASE, NEW_SIDECAR, SETTINGS, changed  # the parameters the comparison tests use too

from datman_flow.drift import (
    DEFAULT_FIELDS,
    Finding,
    GoldStandard,
    GoldStandardError,
    compare_parameters,
    extract_parameters,
    find_gold,
    gold_path,
    list_gold,
    load_gold,
    promote,
    provisional_reference,
    write_gold,
)
from datman_flow.drift.parameters import count_directions, round_bvalue

# ---- extraction from files ----------------------------------------------------------------------

def write_series(folder: Path, stem: str, sidecar: dict, shape=(4, 4, 3, 5), zooms=(2.0, 2.0, 2.4000001, 2.0),
                 bvals: list[float] | None = None, bvecs: list[list[float]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = nibabel.Nifti1Image(np.zeros(shape, dtype=np.int16), np.eye(4))
    image.header.set_zooms(zooms[: len(shape)])
    nifti = folder / f"{stem}.nii.gz"
    nibabel.save(image, nifti)
    (folder / f"{stem}.json").write_text(json.dumps(sidecar))
    if bvals is not None:
        (folder / f"{stem}.bval").write_text(" ".join(str(b) for b in bvals) + "\n")
        (folder / f"{stem}.bvec").write_text("\n".join(" ".join(str(v) for v in row) for row in bvecs) + "\n")
    return nifti


def write_dicom(path: Path, enhanced: bool = False) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1" if enhanced else "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Manufacturer, ds.SoftwareVersions = "SIEMENS", ["syngo MR", "E11"]
    if enhanced:
        geometry = Dataset()
        geometry.InPlanePhaseEncodingDirection = "ROW"
        geometry.MRAcquisitionFrequencyEncodingSteps = 128
        geometry.MRAcquisitionPhaseEncodingStepsInPlane = 120
        modifier, timing, coil = Dataset(), Dataset(), Dataset()
        modifier.PixelBandwidth = "150"
        timing.EchoTrainLength, timing.RepetitionTime = 1, "1800"
        coil.ReceiveCoilName = "HeadNeck_64"
        shared = Dataset()
        shared.MRFOVGeometrySequence = [geometry]
        shared.MRImagingModifierSequence = [modifier]
        shared.MRTimingAndRelatedParametersSequence = [timing]
        shared.MRReceiveCoilSequence = [coil]
        ds.SharedFunctionalGroupsSequence = [shared]
    else:
        ds.EchoTime, ds.InversionTime, ds.PixelBandwidth = "30", "900", "2315"
        ds.EchoTrainLength, ds.AcquisitionMatrix, ds.ReceiveCoilName = 72, [72, 0, 0, 72], "Head_32"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_extract_parameters_from_sidecar_nifti_and_diffusion_files(tmp_path):
    bvals = [0, 5, 995, 1000, 1004, 1000, 2000, 2000]
    bvecs = [[0, 0, 1, 0, 0, 1, 1, -1], [0, 0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0]]
    nifti = write_series(tmp_path, "dwi", {**NEW_SIDECAR, "SliceTiming": [0, 0.5, 1]}, bvals=bvals, bvecs=bvecs)
    params = extract_parameters(nifti)
    assert params["VoxelSize"] == [2.0, 2.0, 2.4]  # float32 2.4000001 rounded to 4 decimals
    assert params["NumberOfSlices"] == 3.0 and params["NumberOfVolumes"] == 5.0
    assert params["BValues"] == [0.0, 10.0, 1000.0, 2000.0]  # rounded to the nearest 10, halves up
    # b > 50: x at 1000 and 2000 counts once, -x is another direction; y, z
    assert params["NumberOfDirections"] == 4.0
    assert params["SliceTiming"] == [0.0, 0.5, 1.0] and params["EchoTime"] == 0.00241
    assert "ConversionSoftwareVersion" not in params and "PartialFourier" not in params
    assert list(params) == [f for f in (*DEFAULT_FIELDS, "SequenceName") if f in params]  # allow-list order
    single = write_series(tmp_path / "t1", "t1", {"EchoTime": 0.002}, shape=(4, 4, 3), zooms=(1, 1, 1))
    assert extract_parameters(single, sidecar={"EchoTime": 0.003})["EchoTime"] == 0.003  # given sidecar wins
    assert extract_parameters(single)["NumberOfVolumes"] == 1.0
    (tmp_path / "t1" / "t1.json").unlink()
    with pytest.raises(FileNotFoundError, match="t1.json: JSON sidecar not found"):
        extract_parameters(single)
    with pytest.raises(FileNotFoundError, match="NIfTI not found"):
        extract_parameters(tmp_path / "none.nii.gz", sidecar={})


def test_round_bvalue_and_count_directions():
    assert [round_bvalue(b) for b in (0, 4.9, 5, 994.9, 995, 1004.9, 1005)] == [0, 0, 10, 990, 1000, 1000, 1010]
    assert count_directions([(1, 0, 0), (0.99999, 0.003, 0), (0, 0, 0), (2, 0, 0), (0, 1, 0)]) == 2


def test_dicom_fills_only_what_the_sidecar_lacks(tmp_path):
    nifti = write_series(tmp_path, "epi", {"EchoTime": 0.05, "Manufacturer": "Siemens"})
    params = extract_parameters(nifti, dicom=write_dicom(tmp_path / "classic.dcm"))
    assert params["EchoTime"] == 0.05 and params["Manufacturer"] == "Siemens"  # the sidecar's
    assert params["InversionTime"] == pytest.approx(0.9)  # DICOM ms -> s
    assert params["SoftwareVersions"] == "syngo MR\\E11"  # multi-value joined like the sidecar's
    assert params["PixelBandwidth"] == 2315.0 and params["EchoTrainLength"] == 72.0
    assert params["AcquisitionMatrix"] == [72.0, 0.0, 0.0, 72.0] and params["ReceiveCoilName"] == "Head_32"
    enhanced = extract_parameters(nifti, dicom=write_dicom(tmp_path / "enhanced.dcm", enhanced=True))
    assert enhanced["AcquisitionMatrix"] == [0.0, 128.0, 120.0, 0.0]  # phase along ROW
    assert enhanced["PixelBandwidth"] == 150.0 and enhanced["EchoTrainLength"] == 1.0
    assert enhanced["RepetitionTime"] == 1.8 and enhanced["ReceiveCoilName"] == "HeadNeck_64"


# ---- gold standards -----------------------------------------------------------------------------

def gold(parameters=None) -> GoldStandard:
    source = {"session": "SPN01_CMH_0001_01_01", "series": "05", "promoted_at": "2026-01-02T03:04:05+00:00",
              "dcm2niix_version": "v1.0.20260724"}
    return GoldStandard("SPN01", "CMH", "T1", dict(parameters or BASE), source)


def test_write_gold_round_trips_and_reviews_well(tmp_path):
    path = write_gold(tmp_path, gold())
    assert path == gold_path(tmp_path, "SPN01", "CMH", "T1") == tmp_path / "gold" / "SPN01" / "CMH" / "T1.json"
    text = path.read_text()
    assert text.endswith("}\n") and text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert load_gold(path) == gold() and find_gold(tmp_path, "SPN01", "CMH", "T1") == gold()
    assert find_gold(tmp_path, "SPN01", "CMH", "RST") is None
    assert [p.name for p in path.parent.iterdir()] == ["T1.json"]  # no temporary file left


def test_write_gold_is_atomic(tmp_path, monkeypatch):
    path = write_gold(tmp_path, gold())
    before = path.read_text()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_gold(tmp_path, gold(changed(EchoTime=0.04)))
    assert path.read_text() == before  # the reviewed file is untouched
    assert [p.name for p in path.parent.iterdir()] == ["T1.json"]  # and the temporary file removed


@pytest.mark.parametrize("text, message", [
    ('{"study": "SPN01",\n  "site": "CMH" "tag": "T1"}', r"T1\.json:2:17: invalid JSON: Expecting ','"),
    ('{"study": "SPN01", "site": "CMH", "tag": "T1", "parameters": {}}', r"T1\.json: missing key 'source'"),
    ('[1, 2]', r"T1\.json: expected a JSON object"),
])
def test_malformed_gold_file_names_the_file(tmp_path, text, message):
    path = gold_path(tmp_path, "SPN01", "CMH", "T1")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(GoldStandardError, match=message) as caught:
        load_gold(path)
    assert caught.value.path == path and str(path) in str(caught.value)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["parameters"].update(EchoTim=0.03), "unknown parameter 'parameters.EchoTim' "
                                                     r"\(did you mean 'EchoTime'\?\)"),
    (lambda d: d["parameters"].update(EchoTime=True), "'parameters.EchoTime' must be a number"),
    (lambda d: d["parameters"].update(SliceTiming={"a": 1}), "'parameters.SliceTiming' must be a number"),
    (lambda d: d["source"].pop("dcm2niix_version"), "missing key 'source.dcm2niix_version'"),
    (lambda d: d["source"].update(series=5), "'source.series' must be a string, got 5"),
    (lambda d: d.update(tag=3), "'tag' must be a non-empty string"),
    (lambda d: d.update(site="ZHH"), "says SPN01/ZHH/T1 but lies at SPN01/CMH/T1.json"),
    (lambda d: d.update(reviewer="me"), "unknown key 'reviewer'"),
])
def test_gold_file_with_wrong_content(tmp_path, edit, message):
    path = write_gold(tmp_path, gold())
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(GoldStandardError, match=message):
        load_gold(path)


def test_list_gold_reports_bad_files_alongside_good_ones(tmp_path):
    write_gold(tmp_path, gold())
    other = GoldStandard("SPN01", "ZHH", "RST", {"EchoTime": 0.03}, dict(gold().source))
    write_gold(tmp_path, other)
    broken = gold_path(tmp_path, "SPN01", "ZHH", "DTI60")
    broken.write_text("{")
    (tmp_path / "gold" / "SPN01" / "stray.json").write_text("{}")
    golds, errors = list_gold(tmp_path)
    assert golds == [gold(), other]
    assert sorted(e.path.name for e in errors) == ["DTI60.json", "stray.json"]
    assert list_gold(tmp_path / "nowhere") == ([], [])


def test_promote_writes_the_series_parameters(tmp_path):
    nifti = write_series(tmp_path / "nii", "t1", NEW_SIDECAR, shape=(4, 4, 3))
    path = promote(tmp_path / "configs", "SPN01", "CMH", "T1", nifti, None, "SPN01_CMH_0001_01_01", "05",
                   "v1.0.20260724", promoted_at="2026-01-02T03:04:05+00:00")
    loaded = load_gold(path)
    assert loaded.parameters == extract_parameters(nifti)
    assert loaded.source == {"session": "SPN01_CMH_0001_01_01", "series": "05", "dcm2niix_version": "v1.0.20260724",
                             "promoted_at": "2026-01-02T03:04:05+00:00"}
    assert compare_parameters(extract_parameters(nifti), loaded.parameters, SETTINGS) == []


# ---- provisional reference ----------------------------------------------------------------------

def test_provisional_reference_needs_enough_sessions():
    history = [BASE, changed(EchoTime=0.031)]
    assert provisional_reference(history) is None
    assert provisional_reference(history, min_sessions=2) is not None
    assert provisional_reference([]) is None and provisional_reference([], min_sessions=0) is None


def test_provisional_reference_most_common_value_and_ties():
    history = [changed(EchoTime=0.031, InversionTime=1.0), changed(FlipAngle=80),
               changed(FlipAngle=70), changed(EchoTime=0.031)]
    reference = provisional_reference(history)
    assert reference["EchoTime"] == 0.031  # 2 of 4 against 0.03 twice: the later occurrence wins the tie
    assert reference["FlipAngle"] == 90.0  # 2 of 4 (90, 80, 70, 90)
    assert "InversionTime" not in reference  # absent from most sessions: absent from the reference
    assert reference["SliceTiming"] == [0.0, 0.5, 1.0, 1.5]
    tie = provisional_reference([changed(FlipAngle=80), changed(FlipAngle=70), changed(FlipAngle=60)])
    assert tie["FlipAngle"] == 60.0  # all once: the most recent
    findings = compare_parameters(changed(FlipAngle=50), tie, SETTINGS, provisional=True)
    assert findings == [Finding("FlipAngle", 60.0, 50.0, 0.01, "changed", provisional=True)]
