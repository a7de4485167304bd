"""Bad input at the DICOM -> NIfTI boundary: a truncated header."""

from __future__ import annotations

from pathlib import Path

import pytest

from datman_flow.config import TagRule
from datman_flow.dicom.convert import find_dcm2niix
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
