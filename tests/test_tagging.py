"""Tagging rules on synthetic headers and on the real XA30 session (derived maps, an SR report)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datman_flow.config import TagRule
from datman_flow.dicom.headers import SeriesHeader, read_series_header
from datman_flow.dicom.tagging import tag_series

MR = "1.2.840.10008.5.1.4.1.1.4"


def header(description: str, image_type: str = "ORIGINAL\\PRIMARY\\M\\ND", modality: str = "MR",
           sop: str = MR, rows: str = "256") -> SeriesHeader:
    fields = {"SeriesDescription": description, "ImageType": image_type, "Modality": modality,
              "SOPClassUID": sop, "Rows": rows}
    return SeriesHeader(fields=fields, number_of_frames=1)


def rules(**patterns) -> dict[str, TagRule]:
    return {tag: TagRule(tag=tag, match=match) for tag, match in patterns.items()}


def test_single_matching_rule_tags():
    decision = tag_series(header("Sag T1 BRAVO"), rules(T1={"SeriesDescription": ("Sag.?T1.BRAVO",)}))
    assert (decision.tag, decision.reason) == ("T1", None)


def test_no_rule_matched():
    decision = tag_series(header("Localizer"), rules(T1={"SeriesDescription": ("T1",)}))
    assert decision.tag is None and decision.reason == "no rule matched"


def test_several_rules_leave_untagged_and_name_them():
    decision = tag_series(header("T1 rest"), rules(T1={"SeriesDescription": ("T1",)},
                                                   RST={"SeriesDescription": ("rest",)}))
    assert decision.tag is None and decision.reason == "matched several rules: RST, T1"


def test_derived_series_is_not_tagged_by_a_plain_rule():
    decision = tag_series(header("DTI 60 dir_FA", image_type="DERIVED\\PRIMARY\\FA"),
                          rules(DTI60={"SeriesDescription": ("DTI.?60",)}))
    assert decision.tag is None and decision.reason.startswith("derived series (ImageType DERIVED")


def test_derived_series_is_tagged_when_the_rule_names_image_type():
    decision = tag_series(header("DTI 60 dir_FA", image_type="DERIVED\\PRIMARY\\FA"),
                          rules(FA={"SeriesDescription": ("FA",), "ImageType": ("DERIVED",)}))
    assert decision.tag == "FA"


def test_a_derived_series_is_not_counted_as_an_ambiguous_match():
    # the raw DTI rule and an FA rule both match the FA map by description; only FA may tag it
    decision = tag_series(header("DTI 60 dir_FA", image_type="DERIVED\\PRIMARY\\FA"),
                          rules(DTI60={"SeriesDescription": ("DTI",)},
                                FA={"SeriesDescription": ("FA",), "ImageType": ("DERIVED",)}))
    assert decision.tag == "FA"


def test_structured_report_is_never_tagged_by_description():
    report = header("PhoenixZIPReport", modality="SR", sop="1.2.840.10008.5.1.4.1.1.88.22", rows="")
    decision = tag_series(report, rules(RPT={"SeriesDescription": ("Phoenix",)}))
    assert decision.tag is None and decision.reason.startswith("not an image (Modality SR")


def test_image_type_rule_on_original_series():
    dti = rules(DTI60={"SeriesDescription": ("DTI.60", "ep2d_diff"), "ImageType": ("ORIGINAL",)})
    assert tag_series(header("ep2d_diff_60"), dti).tag == "DTI60"
    assert tag_series(header("ep2d_diff_60", image_type="DERIVED\\SECONDARY"), dti).tag is None


def series_dir(root: Path, prefix: str) -> Path:
    return next(p for p in (root / "In").iterdir() if p.name.startswith(prefix))


@pytest.mark.parametrize("folder,expected", [
    ("5_anat", "T1"), ("7_func", "BOLD"), ("12_DWI", None), ("99_Phoenix", None), ("10_DWI", "DWI")])
def test_real_xa30_headers(real_dicom, folder, expected):
    root = real_dicom("siemens_xa30")
    first = sorted(series_dir(root, folder).iterdir())[0]
    head = read_series_header(first)
    decision = tag_series(head, rules(T1={"SeriesDescription": ("T1w",)}, BOLD={"SeriesDescription": ("bold",)},
                                      DWI={"SeriesDescription": ("^DWI_dir80_(PA|AP)",)},
                                      RPT={"SeriesDescription": ("Phoenix",)}))
    assert decision.tag == expected, decision.reason
    if folder == "12_DWI":  # the scanner's TRACEW map: derived, not raw diffusion
        assert head.is_derived and "derived" in decision.reason
    if folder == "99_Phoenix":
        assert not head.is_image and "not an image" in decision.reason
