"""Bad input and bad runs at the DICOM -> NIfTI boundary: a truncated header, several series under
one series number, dcm2niix failing."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from datman_flow.config import TagRule
from datman_flow.dicom.convert import Dcm2niix, convert_series, find_dcm2niix
from datman_flow.dicom.index import index_scan
from datman_flow.dicom.session_convert import convert_session
from datman_flow.layout import DataLayout
from datman_flow.naming import parse_session_label
from datman_flow.records import PulledScan

from xnat_helpers import write_series

T1_RULES = {"T1": TagRule(tag="T1", match={"SeriesDescription": ("T1w",)})}
LABEL = "SPN01_CMH_0001_01_01"
SCAN_ID = parse_session_label(LABEL)
TOOL = find_dcm2niix()


def pulled(folder: Path) -> PulledScan:
    return PulledScan(scan_id="2", description="T1w MPRAGE", status="complete", message="", directory=str(folder))


# ---- 1. a bad first file must not hide the good ones ------------------------------------------

@pytest.mark.parametrize("keep_bytes", [140, 300, 420])  # in the meta group, in group 0008, in group 0020
def test_truncated_first_file_does_not_hide_the_series(tmp_path, keep_bytes):
    files = write_series(tmp_path / "2", series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE",
                         n_files=15)
    first = sorted(files)[0]
    first.write_bytes(first.read_bytes()[:keep_bytes])
    record = index_scan("S1", pulled(tmp_path / "2"), T1_RULES)
    assert record.tag == "T1", record.untagged_reason
    assert record.series_uid == "1.2.3.2" and record.series_number == "2"
    assert record.bad_files == (first.name,) and record.n_files == 15 and record.n_frames == 14


def test_every_header_truncated_lists_every_file(tmp_path):
    files = write_series(tmp_path / "2", series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE",
                         n_files=3)
    for path in files:
        path.write_bytes(path.read_bytes()[:300])
    record = index_scan("S1", pulled(tmp_path / "2"), T1_RULES)
    assert record.tag is None and "no readable DICOM header" in record.untagged_reason
    assert record.bad_files == tuple(sorted(p.name for p in files))
    assert record.conversion_status == "skipped"


def test_complete_series_has_no_bad_files(tmp_path):
    write_series(tmp_path / "2", series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE", n_files=4)
    record = index_scan("S1", pulled(tmp_path / "2"), T1_RULES)
    assert record.tag == "T1" and record.bad_files == () and record.n_frames == 4


def test_index_then_convert_names_the_truncated_first_file(tmp_path):
    files = write_series(tmp_path / "raw" / "2", series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE",
                         n_files=15)
    first = sorted(files)[0]
    first.write_bytes(first.read_bytes()[:300])
    record = index_scan(LABEL, pulled(tmp_path / "raw" / "2"), T1_RULES)
    [converted] = convert_session([record], SCAN_ID, DataLayout(tmp_path / "data"), TOOL)
    assert converted.conversion_status == "failed"
    assert f"1 of 15 files are not readable DICOM ({first.name})" in converted.conversion_message


# ---- 2. one scan, several series: never "converted" -------------------------------------------

def two_series_one_number(folder: Path) -> None:
    write_series(folder, series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE", n_files=3, prefix="a")
    write_series(folder, series_uid="1.2.3.22", series_number=2, description="T1w MPRAGE", n_files=3, prefix="b")


def test_two_series_instance_uids_under_one_series_number_fail(tmp_path):
    two_series_one_number(tmp_path / "raw" / "2")
    record = index_scan(LABEL, pulled(tmp_path / "raw" / "2"), T1_RULES)
    assert record.tag == "T1" and record.n_files == 6  # the index reads one header: it cannot tell
    layout = DataLayout(tmp_path / "data")
    [converted] = convert_session([record], SCAN_ID, layout, TOOL)
    assert converted.conversion_status == "failed" and converted.nifti_path is None
    stem = f"{LABEL}_T1_02_T1w-MPRAGE"
    assert f"unexpected: {stem}a" in converted.conversion_message
    assert "two SeriesInstanceUIDs under one series number" in converted.conversion_message
    assert not list(layout.nii(SCAN_ID).iterdir())  # nothing placed, no work folder left


def fake_dcm2niix(folder: Path, outputs: list[str], *, exit_code: int = 0) -> Dcm2niix:
    """A stand-in dcm2niix that writes the named files (given relative to the -f stem) into the
    -o folder, prints dcm2niix's counting lines, then exits with `exit_code`."""
    script = folder / "fake_dcm2niix"
    script.write_text(f"""#!{sys.executable}
import sys
from pathlib import Path
args = sys.argv[1:]
stem, out, series = args[args.index("-f") + 1], Path(args[args.index("-o") + 1]), Path(args[-1])
n = len([p for p in series.iterdir() if p.is_file()])
print(f"Found {{n}} DICOM file(s)")
for name in {outputs!r}:
    (out / (stem + name)).write_bytes(b"fake")
print(f"Convert {{n}} DICOM as {{out / stem}}", flush=True)
sys.exit({exit_code})
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return Dcm2niix(path=str(script), version="fake")


def convert_with(tool: Dcm2niix, tmp_path: Path):
    series = tmp_path / "series"
    write_series(series, series_uid="1.2.3.2", series_number=2, description="T1w", n_files=3)
    out = tmp_path / "nii"
    return convert_series(tool, series, out, "S", expected_files=3), out


def test_non_zero_exit_fails_even_with_images_written(tmp_path):
    tool = fake_dcm2niix(tmp_path, [".nii.gz", ".json"], exit_code=8)
    outcome, out = convert_with(tool, tmp_path)
    assert outcome.status == "failed" and outcome.nifti_path is None
    assert outcome.message.startswith("dcm2niix exit 8 (some files converted, some failed)")
    assert "S.nii.gz (not kept)" in outcome.message
    assert not list(out.iterdir())


def test_an_image_set_without_its_sidecar_fails(tmp_path):
    tool = fake_dcm2niix(tmp_path, [".nii.gz", ".json", "_e2.nii.gz"])
    outcome, out = convert_with(tool, tmp_path)
    assert outcome.status == "failed" and "no JSON sidecar for S_e2" in outcome.message
    assert not list(out.iterdir())


def test_echoes_and_phase_of_one_series_convert(tmp_path):
    names = [".nii.gz", ".json", "_e2.nii.gz", "_e2.json", "_e2_ph.nii.gz", "_e2_ph.json"]
    outcome, out = convert_with(fake_dcm2niix(tmp_path, names), tmp_path)
    assert outcome.status == "converted", outcome.message
    assert sorted(p.name for p in out.iterdir()) == sorted(f"S{n}" for n in names)
    assert outcome.nifti_path == str(out / "S.nii.gz")


@pytest.mark.parametrize("names, unexpected", [
    ([".nii.gz", ".json", "a.nii.gz", "a.json"], "Sa"),  # a second series, renamed by dcm2niix
    (["_e1.nii.gz", "_e1.json", "_e1a.nii.gz", "_e1a.json"], "S_e1a"),
    ([".nii.gz", ".json", "_Raw.nii.gz", "_Raw.json"], "S_Raw"),  # Philips raw data: not this series' images
])
def test_outputs_one_series_does_not_give_fail(tmp_path, names, unexpected):
    outcome, _ = convert_with(fake_dcm2niix(tmp_path, names), tmp_path)
    assert outcome.status == "failed" and f"unexpected: {unexpected}" in outcome.message
