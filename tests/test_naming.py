"""Scan-ID parsing and output names: the part of DATMAN that most needs thorough tests."""

import pytest

from datman_flow.naming import (
    InvalidLabel,
    ScanId,
    is_code,
    output_stem,
    parse_session_label,
    sanitize_description,
    series_part,
)


def test_parse_regular_label():
    scan = parse_session_label("SPN01_CMH_0001_01_01")
    assert scan == ScanId("SPN01", "CMH", "0001", "01", "01")
    assert not scan.is_phantom
    assert scan.label == "SPN01_CMH_0001_01_01"
    assert scan.subject_dir == "SPN01_CMH_0001_01"
    assert str(scan) == "SPN01_CMH_0001_01_01"


def test_parse_phantom_label():
    scan = parse_session_label("SPN01_CMH_PHA_FBN0005")
    assert scan == ScanId("SPN01", "CMH", "PHA_FBN0005", None, None)
    assert scan.is_phantom
    assert scan.timepoint is None and scan.repeat is None
    assert scan.label == "SPN01_CMH_PHA_FBN0005"
    assert scan.subject_dir == "SPN01_CMH_PHA_FBN0005"


@pytest.mark.parametrize("label", [
    "SPN01_CMH_0001_01_01",
    "spn01_cmh_0001_01_01",       # lowercase is kept as written
    "SPN01_CMH_P0001_T2_99",
    "A_B_C_D_00",
    "SPN01_CMH_PHA_FBN0005",
    "SPN01_CMH_PHA_adn1",
    "Spn01_Zhh_sub1_baseline_02",
])
def test_round_trip(label):
    scan = parse_session_label(label)
    assert scan.label == label
    assert parse_session_label(scan.label) == scan


@pytest.mark.parametrize("label, message", [
    ("SPN01_CMH_0001_01",
     "'SPN01_CMH_0001_01' has 4 parts; expected STUDY_SITE_SUBJECT_TIMEPOINT_REPEAT "
     "(e.g. SPN01_CMH_0001_01_01) or STUDY_SITE_PHA_<TYPE><NUMBER>"),
    ("SPN01_CMH_0001_01_1", "'SPN01_CMH_0001_01_1': repeat '1' must be two digits"),
    ("SPN01_CMH_0001_01_001", "repeat '001' must be two digits"),
    ("SPN01_CMH_0001_01_0a", "repeat '0a' must be two digits"),
    ("SPN01_CMH_0001_01_01_02", "has 6 parts"),
    ("SPN01", "'SPN01' has 1 part;"),
    ("", "empty session label"),
    ("SPN01__0001_01_01", "site is empty"),
    ("_CMH_0001_01_01", "study is empty"),
    ("SPN01_CMH__01_01", "subject is empty"),
    ("SPN01_CMH_0001__01", "timepoint is empty"),
    ("SPN01_CMH_0001_01_", "repeat '' must be two digits"),
    ("SPN-01_CMH_0001_01_01", "study 'SPN-01' must be letters and digits only"),
    ("SPN01_CMH_00 1_01_01", "subject '00 1' must be letters and digits only"),
    ("SPN01_CMH_0001_0.1_01", "timepoint '0.1' must be letters and digits only"),
    ("SPN01_CMH_PHA_01_01", "subject 'PHA' is reserved for phantoms"),
    ("SPN01_CMH_pha_01_01", "subject 'pha' is reserved for phantoms"),
    ("SPN01_CMH_PHA_FBN", "phantom ID 'FBN' must be letters then digits"),
    ("SPN01_CMH_PHA_0005", "phantom ID '0005' must be letters then digits"),
    ("SPN01_CMH_PHA_FBN0005X", "phantom ID 'FBN0005X'"),
    ("SPN01_CMH_pha_FBN0005", "phantom labels spell 'PHA' in capitals"),
    ("SPN01_CMH_0001_01_01\n", "repeat '01\\n' must be two digits"),
    ("SPN01_CMH_0001_01_\u0661\u0662", "must be two digits"),  # Arabic-Indic digits are not [0-9]
])
def test_invalid_labels(label, message):
    with pytest.raises(InvalidLabel) as caught:
        parse_session_label(label)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_non_text_label():
    with pytest.raises(InvalidLabel, match="must be text"):
        parse_session_label(1234)  # type: ignore[arg-type]


def test_scan_id_validates_on_construction():
    with pytest.raises(InvalidLabel, match="repeat '1' must be two digits"):
        ScanId("SPN01", "CMH", "0001", "01", "1")
    with pytest.raises(InvalidLabel, match="no timepoint or repeat"):
        ScanId("SPN01", "CMH", "PHA_FBN0005", "01", None)
    with pytest.raises(InvalidLabel, match="timepoint must be text"):
        ScanId("SPN01", "CMH", "0001", None, None)


@pytest.mark.parametrize("description, expected", [
    ("Sag T1 BRAVO", "Sag-T1-BRAVO"),
    ("ep2d_diff_60dir", "ep2d-diff-60dir"),
    ("T1/MPRAGE", "T1-MPRAGE"),
    ("Resting   state  -- fMRI", "Resting-state-fMRI"),
    ("DTI 2.5mm iso", "DTI-2.5mm-iso"),
    ("T1+gad", "T1+gad"),
    (" T1 ", "-T1-"),  # runs at the ends become '-' like any other run
    ("a_/\\ :b", "a-b"),
    ("Séquence", "S-quence"),
    ("", "none"),
    ("ABC123", "ABC123"),
])
def test_sanitize_description(description, expected):
    assert sanitize_description(description) == expected


@pytest.mark.parametrize("series, expected", [
    (5, "05"), ("5", "05"), ("05", "05"), ("005", "05"), (0, "00"),
    (12, "12"), (1301, "1301"), ("1301", "1301"),
    ("4-2", "4-2"), ("4_2", "4-2"), (" 7 ", "07"), ("MR 3", "MR-3"),
])
def test_series_part(series, expected):
    assert series_part(series) == expected


@pytest.mark.parametrize("bad", [-1, "", "  "])
def test_series_part_refuses(bad):
    with pytest.raises(ValueError):
        series_part(bad)


def test_output_stem():
    scan = parse_session_label("SPN01_CMH_0001_01_01")
    assert output_stem(scan, "T1", 5, "Sag T1 BRAVO") == "SPN01_CMH_0001_01_01_T1_05_Sag-T1-BRAVO"
    assert output_stem(scan, "DTI60", "4-2", "ep2d_diff") == "SPN01_CMH_0001_01_01_DTI60_4-2_ep2d-diff"
    assert output_stem(scan, "RST", "11", "") == "SPN01_CMH_0001_01_01_RST_11_none"
    phantom = parse_session_label("SPN01_CMH_PHA_FBN0005")
    assert output_stem(phantom, "T1", 3, "fBIRN") == "SPN01_CMH_PHA_FBN0005_T1_03_fBIRN"


def test_output_stem_has_exactly_the_expected_parts():
    scan = parse_session_label("SPN01_CMH_0001_01_01")
    stem = output_stem(scan, "T1", 5, "a_b c_d")
    assert stem.split("_") == ["SPN01", "CMH", "0001", "01", "01", "T1", "05", "a-b-c-d"]


@pytest.mark.parametrize("tag", ["", "T_1", "T 1"])
def test_output_stem_refuses_bad_tag(tag):
    scan = parse_session_label("SPN01_CMH_0001_01_01")
    with pytest.raises(ValueError, match="tag"):
        output_stem(scan, tag, 5, "x")


@pytest.mark.parametrize("value, expected", [
    ("SPN01", True), ("cmh", True), ("0", True), ("", False), ("A_B", False),
    ("A-B", False), ("A B", False), ("AB\n", False), ("\u00c9T", False), (5, False),
])
def test_is_code(value, expected):
    assert is_code(value) is expected
