"""Header drift, on synthetic parameters: finding kinds, tolerances (absolute and ppm), settings
layers and converter-only keys (files, gold standards, the provisional reference:
test_drift_files.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datman_flow.config.errors import issues_from_validation
from datman_flow.config.yaml_lines import parse_yaml
from datman_flow.drift import (
    DEFAULT_FIELDS,
    DEFAULT_TOLERANCES,
    Finding,
    HeaderCheckSettings,
    HeaderCheckYaml,
    Relative,
    compare_parameters,
    merge,
    sidecar_parameters,
)

BASE = {
    "Manufacturer": "Siemens", "ManufacturerModelName": "Prisma", "SoftwareVersions": "syngo MR XA30",
    "MagneticFieldStrength": 3.0, "EchoTime": 0.03, "RepetitionTime": 2.0, "FlipAngle": 90.0,
    "PhaseEncodingDirection": "j-", "SliceTiming": [0.0, 0.5, 1.0, 1.5], "VoxelSize": [2.0, 2.0, 2.0],
}
SETTINGS = HeaderCheckSettings()


def changed(**values) -> dict:
    return {**BASE, **values}


def kinds(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.field, f.kind) for f in findings]


# ---- compare ------------------------------------------------------------------------------------

def test_identical_parameters_give_no_findings():
    assert compare_parameters(dict(BASE), dict(BASE), SETTINGS) == []


def test_each_finding_kind_and_order():
    actual = changed(SoftwareVersions="syngo MR XA50", FlipAngle=80, InversionTime=0.9)
    del actual["PhaseEncodingDirection"]
    findings = compare_parameters(actual, BASE, SETTINGS)
    assert findings == [
        Finding("SoftwareVersions", "syngo MR XA30", "syngo MR XA50", None, "software_upgrade"),
        Finding("InversionTime", None, 0.9, None, "unexpected"),
        Finding("FlipAngle", 90.0, 80.0, 0.01, "changed"),
        Finding("PhaseEncodingDirection", "j-", None, None, "missing"),
    ]
    assert all(not f.provisional for f in findings)
    assert all(f.provisional for f in compare_parameters(actual, BASE, SETTINGS, provisional=True))


@pytest.mark.parametrize("echo_time, drifts", [
    (0.03 + 0.9e-5, False),  # just inside (tolerance 1e-5 s)
    (0.03 + 1e-5, False),  # exactly at the tolerance: inside
    (0.03 - 1e-5, False),
    (0.03 + 1.1e-5, True),  # just outside
    (0.03 - 1.1e-5, True),
])
def test_echo_time_tolerance_edges(echo_time, drifts):
    assert DEFAULT_TOLERANCES["EchoTime"] == 1e-5
    findings = compare_parameters(changed(EchoTime=echo_time), BASE, SETTINGS)
    assert kinds(findings) == ([("EchoTime", "changed")] if drifts else [])
    if drifts:
        assert findings[0].expected == 0.03 and findings[0].actual == echo_time and findings[0].tolerance == 1e-5


@pytest.mark.parametrize("third_slice, drifts", [(1.0049, False), (1.005, False), (0.995, False), (1.0051, True)])
def test_slice_timing_tolerance_element_wise(third_slice, drifts):
    assert DEFAULT_TOLERANCES["SliceTiming"] == 0.005
    actual = changed(SliceTiming=[0.0, 0.5, third_slice, 1.5])
    assert kinds(compare_parameters(actual, BASE, SETTINGS)) == ([("SliceTiming", "changed")] if drifts else [])


# ImagingFrequency: Siemens 3 T (2.89 T) magnets resonate near 123.25 MHz; some vendors write Hz.
SIEMENS_3T_MHZ, SIEMENS_3T_HZ, GE_1_5T_MHZ = 123.252, 123_252_000.0, 63.86


@pytest.mark.parametrize("actual, expected", [
    (SIEMENS_3T_HZ, SIEMENS_3T_MHZ),  # the same magnet, one sidecar in Hz
    (SIEMENS_3T_MHZ, SIEMENS_3T_HZ),
    (SIEMENS_3T_HZ * (1 + 2e-6), SIEMENS_3T_MHZ),  # and re-tuned by 2 ppm
    (SIEMENS_3T_MHZ * (1 + 2e-6), SIEMENS_3T_MHZ),  # the ordinary 2 ppm re-tuning between sessions
    (297.2 * (1 + 40e-6), 297.2),  # 7 T: 40 ppm is 0.0119 MHz, beyond the old absolute 0.01 MHz
    (SIEMENS_3T_MHZ * (1 + 99e-6), SIEMENS_3T_MHZ),
])
def test_imaging_frequency_in_hz_or_mhz_re_tuned_is_no_drift(actual, expected):
    assert compare_parameters(changed(ImagingFrequency=actual), changed(ImagingFrequency=expected), SETTINGS) == []


@pytest.mark.parametrize("actual, expected", [
    (GE_1_5T_MHZ, SIEMENS_3T_MHZ),  # another field strength
    (GE_1_5T_MHZ * 1e6, SIEMENS_3T_MHZ),  # in Hz as well
    (127.74, SIEMENS_3T_MHZ),  # another 3 T magnet (3.0 T rather than 2.89 T)
    (SIEMENS_3T_MHZ * (1 + 150e-6), SIEMENS_3T_MHZ),  # 150 ppm: beyond the default 100 ppm
])
def test_imaging_frequency_of_another_magnet_drifts(actual, expected):
    findings = compare_parameters(changed(ImagingFrequency=actual), changed(ImagingFrequency=expected), SETTINGS)
    assert kinds(findings) == [("ImagingFrequency", "changed")]
    assert findings[0].expected == pytest.approx(SIEMENS_3T_MHZ) and findings[0].actual < 1000  # in MHz
    assert findings[0].tolerance == pytest.approx(SIEMENS_3T_MHZ * 100e-6)  # 100 ppm of the reference, in MHz


def test_imaging_frequency_in_hz_is_read_as_mhz():
    assert sidecar_parameters({"ImagingFrequency": 123252000})["ImagingFrequency"] == pytest.approx(123.252)
    assert sidecar_parameters({"ImagingFrequency": 123.252})["ImagingFrequency"] == 123.252


def test_tolerance_in_ppm_or_absolute_from_yaml():
    assert str(DEFAULT_TOLERANCES["ImagingFrequency"]) == "100 ppm"
    relative = merge({"tolerance": {"ImagingFrequency": "5 ppm"}})
    assert str(relative.tolerance["ImagingFrequency"]) == "5 ppm"
    shifted = changed(ImagingFrequency=SIEMENS_3T_MHZ * (1 + 10e-6))
    assert kinds(compare_parameters(shifted, changed(ImagingFrequency=SIEMENS_3T_MHZ), relative)) == [
        ("ImagingFrequency", "changed")]
    absolute = merge({"tolerance": {"ImagingFrequency": 0.01}})  # a number stays absolute, in MHz
    assert absolute.tolerance["ImagingFrequency"] == 0.01
    far = changed(ImagingFrequency=SIEMENS_3T_MHZ + 0.011)
    assert kinds(compare_parameters(far, changed(ImagingFrequency=SIEMENS_3T_MHZ), absolute)) == [
        ("ImagingFrequency", "changed")]
    assert compare_parameters(shifted, changed(ImagingFrequency=SIEMENS_3T_MHZ), absolute) == []
    # any numeric field may take a relative tolerance
    assert compare_parameters(changed(RepetitionTime=2.0001), BASE, merge({"tolerance": {"RepetitionTime": "100ppm"}})) == []
    for bad in ("5 %", "ppm", "-5 ppm", "nan ppm"):
        with pytest.raises(ValidationError, match="ppm"):
            merge({"tolerance": {"ImagingFrequency": bad}})
    doc, _ = parse_yaml("tolerance:\n  EchoTime: 0.001\n  ImagingFrequency: 5 %\n", "studies/SPINS.yml")
    with pytest.raises(ValidationError) as caught:
        HeaderCheckYaml.model_validate(doc.data)
    assert [str(i) for i in issues_from_validation(caught.value, doc, HeaderCheckYaml)] == [
        "studies/SPINS.yml:3: tolerance.ImagingFrequency: a tolerance is a number (an absolute difference, in the "
        "sidecar's units) or 'N ppm' (relative to the reference); got '5 %'"]
    assert HeaderCheckYaml.model_validate(parse_yaml("tolerance: {ImagingFrequency: 50 ppm}\n", "x.yml")[0].data
                                          ).tolerance == {"ImagingFrequency": Relative(50.0)}


def test_lists_of_different_length_change_whatever_the_tolerance():
    settings = merge({"tolerance": {"SliceTiming": 100.0}})
    findings = compare_parameters(changed(SliceTiming=[0.0, 0.5, 1.0]), BASE, settings)
    assert findings == [Finding("SliceTiming", [0.0, 0.5, 1.0, 1.5], [0.0, 0.5, 1.0], 100.0, "changed")]


def test_exact_fields_strings_and_types():
    base = {**BASE, "AcquisitionMatrix": [64, 0, 0, 64], "NumberOfVolumes": 200, "ReceiveCoilName": "Head_32"}
    same = {**base, "AcquisitionMatrix": [64.0, 0.0, 0.0, 64.0], "NumberOfVolumes": 200.0,
            "ReceiveCoilName": "  Head_32 "}  # ints vs floats, surrounding spaces: the same
    assert compare_parameters(same, base, SETTINGS) == []
    other = {**base, "AcquisitionMatrix": [0, 64, 64, 0], "NumberOfVolumes": 199, "ReceiveCoilName": "head_32"}
    assert kinds(compare_parameters(other, base, SETTINGS)) == [
        ("AcquisitionMatrix", "changed"), ("NumberOfVolumes", "changed"), ("ReceiveCoilName", "changed")]
    assert kinds(compare_parameters(changed(EchoTime="0.03"), BASE, SETTINGS)) == [("EchoTime", "changed")]


def test_missing_values_stay_missing():
    actual = {**BASE, "InversionTime": None, "ReceiveCoilName": "", "EchoTrainLength": float("nan")}
    assert compare_parameters(actual, BASE, SETTINGS) == []  # absent in both: nothing
    assert kinds(compare_parameters(BASE, actual | {"InversionTime": 1.0}, SETTINGS)) == [
        ("InversionTime", "missing")]


def test_ignore_list_and_fields_outside_the_allow_list():
    actual = changed(FlipAngle=10, SoftwareVersions="XA50", TxRefAmp=300.0, ShimSetting=[1, 2])
    settings = merge({"ignore": ["FlipAngle", "SoftwareVersions"]})
    assert compare_parameters(actual, BASE, settings) == []  # TxRefAmp, ShimSetting: not compared at all
    assert settings.compared == tuple(f for f in DEFAULT_FIELDS if f not in ("FlipAngle", "SoftwareVersions"))


def test_findings_table_for_people():
    from datman_flow.pipeline.summary import drift_table

    actual = changed(SliceTiming=[i * 0.05 for i in range(60)], SoftwareVersions="XA|50")
    findings = [("7", "RST", f) for f in compare_parameters(actual, BASE, SETTINGS, provisional=True)]
    lines = drift_table(findings).splitlines()
    assert lines[0] == "| series | tag | field | expected | actual | tolerance | kind |"
    assert lines[2] == "| 7 | RST | SoftwareVersions | syngo MR XA30 | XA\\|50 |  | software_upgrade (provisional reference) |"
    assert lines[3] == ("| 7 | RST | SliceTiming | [0, 0.5, 1, 1.5] | [0, 0.05, 0.1, 0.15, …, 2.9, 2.95] (60 values) "
                        "| 0.005 | changed (provisional reference) |")
    assert drift_table([]).startswith("no drift")


# ---- settings -----------------------------------------------------------------------------------

def test_defaults():
    settings = merge()
    assert settings == HeaderCheckSettings()
    assert settings.fields == DEFAULT_FIELDS and settings.severity == "warn" and settings.ignore == frozenset()
    assert dict(settings.tolerance) == dict(DEFAULT_TOLERANCES)
    with pytest.raises(TypeError):
        settings.tolerance["EchoTime"] = 1.0  # read-only: no shared mutable defaults


def test_override_order_defaults_study_site_tag():
    study = {"tolerance": {"EchoTime": 0.001, "RepetitionTime": 0.01}, "ignore": ["ReceiveCoilName"],
             "severity": "error", "fields": {"add": ["SequenceName", "TotalReadoutTime"]}}
    site = {"tolerance": {"EchoTime": 0.002}, "ignore": ["SoftwareVersions"], "severity": "warn",
            "fields": {"remove": ["InversionTime", "TotalReadoutTime"]}}
    tag = {"tolerance": {"SliceTiming": 0.02}, "severity": "error", "fields": {"add": ["TotalReadoutTime"]}}
    settings = merge(study, site, tag)
    assert settings.tolerance["EchoTime"] == 0.002  # site over study
    assert settings.tolerance["RepetitionTime"] == 0.01  # study over default, key by key
    assert settings.tolerance["SliceTiming"] == 0.02 and settings.tolerance["FlipAngle"] == 0.01
    assert settings.ignore == {"ReceiveCoilName", "SoftwareVersions"}  # united
    assert settings.severity == "error"  # the tag's
    assert merge(study, site).severity == "warn" and merge(study).severity == "error"
    assert "InversionTime" not in settings.fields
    assert settings.fields[-2:] == ("SequenceName", "TotalReadoutTime")  # removed by site, added again by tag
    assert "TotalReadoutTime" not in merge(study, site).fields
    assert merge(None, {}, tag).tolerance["EchoTime"] == DEFAULT_TOLERANCES["EchoTime"]
    # the merged settings are what compare uses
    actual = changed(EchoTime=0.0315, SoftwareVersions="XA50")
    assert compare_parameters(actual, BASE, settings) == []
    assert kinds(compare_parameters(actual, BASE, merge(study))) == [
        ("SoftwareVersions", "software_upgrade"), ("EchoTime", "changed")]


def test_fields_add_remove_change_what_is_compared():
    actual = changed(SequenceName="epfid2d1_64", FlipAngle=45)
    expected = {**BASE, "SequenceName": "epfid2d1_72"}
    assert kinds(compare_parameters(actual, expected, SETTINGS)) == [("FlipAngle", "changed")]
    settings = merge({"fields": {"add": "SequenceName", "remove": ["FlipAngle"]}})  # one name or a list
    assert kinds(compare_parameters(actual, expected, settings)) == [("SequenceName", "changed")]


def test_header_check_yaml_refuses_mistakes_with_file_and_line():
    text = ("tolerance:\n  EchoTim: 0.001\n  RepetitionTime: -1\n"
            "ignore: [FlipAngle]\nseverity: fatal\nfields: {add: [Foo], remove: []}\ncolour: red\n")
    doc, problems = parse_yaml(text, "studies/SPINS.yml")
    assert problems == []
    with pytest.raises(ValidationError) as caught:
        HeaderCheckYaml.model_validate(doc.data)
    issues = sorted(str(i) for i in issues_from_validation(caught.value, doc, HeaderCheckYaml))
    assert issues == sorted([
        "studies/SPINS.yml:2: tolerance: 'EchoTim' is not a scanner parameter the header check knows "
        "(did you mean 'EchoTime'?)",
        "studies/SPINS.yml:3: tolerance.RepetitionTime: a tolerance is an absolute difference, 0 or more; got -1",
        "studies/SPINS.yml:5: severity: got 'fatal'; expected 'warn' or 'error'",
        "studies/SPINS.yml:6: fields.add[0]: 'Foo' is not a scanner parameter the header check knows",
        "studies/SPINS.yml:7: unknown key 'colour'",
    ])
    with pytest.raises(ValidationError, match="both added and removed"):
        HeaderCheckYaml.model_validate({"fields": {"add": ["EchoTime"], "remove": ["EchoTime"]}})
    with pytest.raises(ValidationError):
        merge({"tolerance": {"EchoTime": "0.1"}})  # strict: a quoted number is refused
    with pytest.raises(ValidationError):
        merge({"ignore": ["ConversionSoftwareVersion"]})  # converter keys are not parameters


# ---- converter-only keys ------------------------------------------------------------------------

OLD_SIDECAR = {
    "Manufacturer": "Siemens", "ManufacturersModelName": "MAGNETOM Prisma Fit", "SoftwareVersions": "syngo MR XA30",
    "EchoTime": 0.00241, "RepetitionTime": 1.8, "PulseSequenceName": "*tfl3d1_16ns", "PartialFourier": 1,
    "ConversionSoftware": "dcm2niix", "ConversionSoftwareVersion": "v1.0.20260416",
    "BidsGuess": ["anat", "_acq-tfl3p2_run-5_T1w"], "CoilString": "HeadNeck_64", "SeriesNumber": 5,
    "AcquisitionTime": "12:09:5.225000",
}
NEW_SIDECAR = {
    "Manufacturer": "Siemens", "ManufacturerModelName": "MAGNETOM Prisma Fit", "SoftwareVersions": "syngo MR XA30",
    "EchoTime": 0.00241, "RepetitionTime": 1.8, "SequenceName": "*tfl3d1_16ns", "ParallelReductionFactorInPlane": 1,
    "ConversionSoftware": "dcm2niix", "ConversionSoftwareVersion": "v1.0.20260724", "PulseSequenceType": "MPRAGE",
    "BidsGuess": ["discard", "_run-6_T1w"], "ReceiveCoilName": "HeadNeck_64", "SeriesNumber": 6,
    "AcquisitionTime": "12:09:05.225000", "AcquisitionDuration": 169.862, "SpoilingState": False,
}


def test_converter_only_keys_never_drift():
    old, new = sidecar_parameters(OLD_SIDECAR), sidecar_parameters(NEW_SIDECAR)
    assert old == new == {
        "Manufacturer": "Siemens", "ManufacturerModelName": "MAGNETOM Prisma Fit",
        "SoftwareVersions": "syngo MR XA30", "EchoTime": 0.00241, "RepetitionTime": 1.8,
        "ReceiveCoilName": "HeadNeck_64", "SequenceName": "*tfl3d1_16ns"}
    everything = merge({"fields": {"add": ["SequenceName"]}})
    assert compare_parameters(new, old, everything) == []
    assert compare_parameters(old, new, everything) == []


def test_acceleration_factor_one_is_not_accelerated():
    assert "ParallelReductionFactorInPlane" not in sidecar_parameters({"ParallelReductionFactorInPlane": 1})
    accelerated = sidecar_parameters({"ParallelReductionFactorInPlane": 2, "MultibandAccelerationFactor": 3})
    assert accelerated == {"ParallelReductionFactorInPlane": 2.0, "MultibandAccelerationFactor": 3.0}
    assert kinds(compare_parameters({}, accelerated, SETTINGS)) == [
        ("ParallelReductionFactorInPlane", "missing"), ("MultibandAccelerationFactor", "missing")]
    assert compare_parameters({"ParallelReductionFactorInPlane": 1}, {}, SETTINGS) == []  # raw values too
