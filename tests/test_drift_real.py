"""Header drift on real scanner data (../shared/dicom), converted with the project's dcm2niix wrapper.

(a) the four Siemens EPI series of ge_siemens_nih differ in phase-encoding direction;
(b) the two XA30 T1 series 5 and 6 are one acquisition;
(c) every Ref/ sidecar (written by older dcm2niix versions) against a fresh conversion of the
    same DICOM: no drift at all.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest
from pydicom.misc import is_dicom

from datman_flow.dicom.convert import convert_series, find_dcm2niix
from datman_flow.drift import Finding, HeaderCheckSettings, compare_parameters, extract_parameters, merge
from datman_flow.drift.parameters import (
    ALIASES,
    KNOWN_FIELDS,
    OPTIONAL_FIELDS,
    diffusion_parameters,
    nifti_parameters,
    sidecar_parameters,
)

ARCHIVES = ("siemens_xa30", "ge_siemens_nih", "siemens_mosaic", "philips_ingenia")
SUFFIX = re.compile(r"(_e\d+)?(_ph)?$")  # dcm2niix's echo / phase suffixes
EVERY_FIELD = merge({"fields": {"add": list(OPTIONAL_FIELDS)}})
EXACT = merge({"tolerance": {name: 0.0 for name in KNOWN_FIELDS}})


class Converter:
    """Converts one series folder at a time (DICOM files only, as symlinks), once per test module."""

    def __init__(self, work: Path):
        self.tool = find_dcm2niix()
        self.work = work
        self.done: dict[Path, tuple[Path, list[Path]]] = {}
        self.folders: dict[Path, dict[str, list[Path]]] = {}

    def series_folders(self, archive_dir: Path) -> dict[str, list[Path]]:
        """Series name -> its DICOM files. Philips' flat folder is grouped by the NNNN_ prefix
        (the series number); elsewhere a folder is a series. README txt, .nii, .json and .mat
        files beside the DICOM are left out."""
        if archive_dir not in self.folders:
            inbox = archive_dir / "In"
            groups: dict[str, list[Path]] = defaultdict(list)
            for path in sorted(inbox.rglob("*")):
                if path.is_file() and is_dicom(path):
                    folder = path.parent.relative_to(inbox).as_posix()
                    name = path.name.split("_")[0] if folder == "." else folder
                    groups[name].append(path)
            self.folders[archive_dir] = dict(groups)
        return self.folders[archive_dir]

    def convert(self, archive_dir: Path, name: str, files: list[Path]) -> tuple[Path, list[Path]]:
        """(the series' DICOM folder of symlinks, the sidecars written)."""
        key = archive_dir / name
        if key not in self.done:
            stem = f"{archive_dir.name}_{name}".replace("/", "_")
            links = self.work / "dicom" / stem
            links.mkdir(parents=True)
            for path in files:
                (links / path.name).symlink_to(path)
            outcome = convert_series(self.tool, links, self.work / "nii" / stem, stem, expected_files=len(files))
            assert outcome.status == "converted", f"{name}: {outcome.message}"
            sidecars = sorted(Path(p) for p in outcome.outputs if p.endswith(".json"))
            self.done[key] = (links, sidecars)
        return self.done[key]


@pytest.fixture(scope="module")
def converter(tmp_path_factory) -> Converter:
    return Converter(tmp_path_factory.mktemp("drift_real"))


def first_dicom(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


def series_number(path: Path) -> int:
    return int(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesNumber"]).SeriesNumber)


def converted_parameters(converter: Converter, archive_dir: Path, name: str) -> dict[str, object]:
    files = converter.series_folders(archive_dir)[name]
    links, sidecars = converter.convert(archive_dir, name, files)
    assert len(sidecars) == 1
    return extract_parameters(sidecars[0].with_suffix(".nii.gz"), dicom=first_dicom(links))


# ---- (a) phase-encoding direction -------------------------------------------------------------

def test_siemens_epi_phase_encoding_directions(real_dicom, converter):
    archive = real_dicom("ge_siemens_nih")
    series = {pe: converted_parameters(converter, archive, f"20180918Si/mr_000{n}")
              for n, pe in ((3, "AP"), (4, "PA"), (5, "RL"), (6, "LR"))}
    gold = series["AP"]
    assert gold["PhaseEncodingDirection"] == "j-" and gold["AcquisitionMatrix"] == [72.0, 0.0, 0.0, 72.0]
    settings = HeaderCheckSettings()
    # With the phase encoded along rows, the DICOM AcquisitionMatrix (frequency rows, frequency
    # columns, phase rows, phase columns) is laid out the other way: a real difference.
    column_to_row = Finding("AcquisitionMatrix", [72.0, 0.0, 0.0, 72.0], [0.0, 72.0, 72.0, 0.0], 0.0, "changed")
    assert compare_parameters(series["PA"], gold, settings) == [
        Finding("PhaseEncodingDirection", "j-", "j", None, "changed")]
    assert compare_parameters(series["RL"], gold, settings) == [
        column_to_row, Finding("PhaseEncodingDirection", "j-", "i", None, "changed")]
    assert compare_parameters(series["LR"], gold, settings) == [
        column_to_row, Finding("PhaseEncodingDirection", "j-", "i-", None, "changed")]
    # What the default tolerances absorb: the centre frequency, re-measured for every series
    # (123.203897 MHz for AP, ...893 PA, ...896 RL, ...894 LR), and Siemens' 2.5 ms slice-time
    # quantisation (slice 2 at 1.45 s for AP, 1.4475 s for PA and LR; slice 5 at 0.9675 / 0.965 s).
    exact = {pe: [(f.field, f.expected, f.actual) for f in compare_parameters(series[pe], gold, EXACT)
                  if f.field not in ("PhaseEncodingDirection", "AcquisitionMatrix")] for pe in ("PA", "RL", "LR")}
    timing = ("SliceTiming", [0.0, 1.45, 0.4825, 1.9325, 0.9675], [0.0, 1.4475, 0.4825, 1.9325, 0.965])
    assert exact == {
        "PA": [("ImagingFrequency", 123.203897, 123.203893), timing],
        "RL": [("ImagingFrequency", 123.203897, 123.203896)],
        "LR": [("ImagingFrequency", 123.203897, 123.203894), timing],
    }
    # The optional fields (not compared by default) also see the physics of a row-wise phase
    # encoding: the echo spacing and the readout get longer.
    extra = [f.field for f in compare_parameters(series["RL"], gold, EVERY_FIELD)]
    assert extra == ["AcquisitionMatrix", "PhaseEncodingDirection", "EffectiveEchoSpacing", "TotalReadoutTime",
                     "BandwidthPerPixelPhaseEncode", "InPlanePhaseEncodingDirectionDICOM"]


# ---- (b) the repeated XA30 T1 -----------------------------------------------------------------

def test_xa30_t1_series_5_and_6_do_not_drift(real_dicom, converter):
    archive = real_dicom("siemens_xa30")
    t1_5 = converted_parameters(converter, archive, "5_anat-T1w_acq-tfl")
    t1_6 = converted_parameters(converter, archive, "6_anat-T1w_acq-tfl")
    # Series 6 is the scanner's second reconstruction of the same acquisition (prescan-normalised:
    # ImageTypeText gains NORM; same AcquisitionTime 12:05:17.0425). Their sidecars differ only in
    # SeriesNumber, ImageTypeText and BidsGuess, none a scanner parameter; their headers only in
    # UIDs, times of creation and the largest pixel value. So nothing drifts, even with zero
    # tolerance and every optional field compared.
    assert t1_5["ManufacturerModelName"] == "MAGNETOM Prisma Fit" and t1_5["SoftwareVersions"] == "syngo MR XA30"
    assert t1_5["AcquisitionMatrix"] == [0.0, 128.0, 128.0, 0.0]  # from the enhanced file's MRFOVGeometrySequence
    assert t1_5["EchoTrainLength"] == 1.0 and t1_5["ParallelReductionFactorInPlane"] == 2.0
    assert compare_parameters(t1_6, t1_5, HeaderCheckSettings()) == []
    assert compare_parameters(t1_6, t1_5, EXACT) == []
    assert compare_parameters(t1_6, t1_5, merge({"fields": {"add": list(OPTIONAL_FIELDS)}},
                                                {"tolerance": {n: 0.0 for n in KNOWN_FIELDS}})) == []


# ---- (c) older dcm2niix versions against a fresh conversion ------------------------------------

def match_key(sidecar_path: Path) -> tuple[str, int, str]:
    """Manufacturer (ge_siemens_nih holds a GE and a Siemens study whose series numbers collide),
    series number and dcm2niix's echo / phase suffix."""
    sidecar = json.loads(sidecar_path.read_text())
    return sidecar["Manufacturer"], int(sidecar["SeriesNumber"]), SUFFIX.search(sidecar_path.stem).group(0)


def comparable(sidecar_path: Path, *, nifti: bool, diffusion: bool) -> dict[str, object]:
    """The parameters of the sidecar, plus those of the NIfTI and bval/bvec files beside it when
    asked (the Ref folder keeps the NIfTI of some series only)."""
    params = sidecar_parameters(json.loads(sidecar_path.read_text()))
    stem = sidecar_path.with_suffix("")
    if nifti:
        image = next(p for p in (stem.with_suffix(".nii"), stem.with_suffix(".nii.gz")) if p.exists())
        params.update(nifti_parameters(image))
    if diffusion:
        params.update(diffusion_parameters(stem.with_suffix(".bval"), stem.with_suffix(".bvec")))
    return params


def raw_scanner_keys(sidecar: dict) -> dict[str, object]:
    keys = {key for name in KNOWN_FIELDS for key in ALIASES.get(name, (name,))}
    return {key: value for key, value in sidecar.items() if key in keys}


# What (c) found: the only differences between the reference sidecars and v1.0.20260724 in
# scanner-parameter keys. Older versions omit ParallelReductionFactorInPlane/OutOfPlane where
# there is no acceleration (the new one writes 1: normalised to absent) and call SequenceName
# PulseSequenceName (an alias). Besides these, the raw sidecars differ in keys that are not
# scanner parameters: ConversionSoftwareVersion, BidsGuess, PartialFourier (dropped by the new
# version), PulseSequenceType, AcquisitionDuration, SpoilingState, NumberOfKSpaceTrajectories,
# InstitutionalDepartmentName, AcquisitionTime's zero padding (12:09:5.225 -> 12:09:05.225).
# Values themselves (SliceTiming included) are identical: no tolerance was needed.
RAW_DIFFERENCES = {
    "siemens_xa30": {"ParallelReductionFactorInPlane", "ParallelReductionFactorOutOfPlane", "PulseSequenceName",
                     "SequenceName"},
    "ge_siemens_nih": {"ParallelReductionFactorInPlane", "ParallelReductionFactorOutOfPlane", "PulseSequenceName",
                       "SequenceName"},
    "siemens_mosaic": set(),
    "philips_ingenia": {"ParallelReductionFactorInPlane", "ParallelReductionFactorOutOfPlane", "PulseSequenceName",
                        "SequenceName"},
}


@pytest.mark.parametrize("archive", ARCHIVES)
def test_reference_sidecars_of_older_dcm2niix_show_no_drift(real_dicom, converter, archive):
    archive_dir = real_dicom(archive)
    refs = sorted((archive_dir / "Ref").glob("*.json"))
    wanted = {int(json.loads(p.read_text())["SeriesNumber"]) for p in refs}
    fresh: dict[tuple[str, int, str], Path] = {}
    for name, files in converter.series_folders(archive_dir).items():
        if series_number(files[0]) not in wanted:
            continue  # e.g. XA30's PhoenixZIPReport (a structured report, no Ref output)
        for sidecar in converter.convert(archive_dir, name, files)[1]:
            assert match_key(sidecar) not in fresh, f"two fresh outputs for {match_key(sidecar)}"
            fresh[match_key(sidecar)] = sidecar
    raw_differences: set[str] = set()
    compared = 0
    for ref in refs:
        ours = fresh.get(match_key(ref))
        assert ours is not None, f"no fresh output matches {ref.name} {match_key(ref)}"
        stem = ref.with_suffix("")
        has_nifti = stem.with_suffix(".nii").exists() or stem.with_suffix(".nii.gz").exists()
        has_bval = stem.with_suffix(".bval").exists()
        assert has_bval == ours.with_suffix(".bval").exists(), ref.name
        expected = comparable(ref, nifti=has_nifti, diffusion=has_bval)
        actual = comparable(ours, nifti=has_nifti, diffusion=has_bval)
        assert compare_parameters(actual, expected, EVERY_FIELD) == [], ref.name
        assert compare_parameters(actual, expected, EXACT) == [], ref.name  # not even within tolerance
        compared += len(expected)
        old, new = json.loads(ref.read_text()), json.loads(ours.read_text())
        assert old["ConversionSoftwareVersion"] != new["ConversionSoftwareVersion"]
        old_raw, new_raw = raw_scanner_keys(old), raw_scanner_keys(new)
        raw_differences |= {key for key in old_raw.keys() | new_raw.keys() if old_raw.get(key) != new_raw.get(key)}
    assert raw_differences == RAW_DIFFERENCES[archive]
    assert compared >= 20 * len(refs)  # the check is not vacuous: ~20-30 parameters per series
    assert len(fresh) >= len(refs)
