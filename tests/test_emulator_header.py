"""The emulator's header reader: its fast path for ordinary files, the fall-back to pydicom for
unusual ones, and agreement with pydicom on the real sessions."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from datman_flow.xnat.emulator import dicom_header as emulator_header
from datman_flow.xnat.emulator.dicom_header import Header, read_header, read_header_pydicom

from xnat_helpers import SEQUENCE_END, explicit, implicit, item, part10, write_series


def explicit_dataset(description: bytes = b"rest BOLD", number: bytes | None = b"5",
                     charset: bytes = b"ISO_IR 192") -> bytes:
    nested = explicit(0x00081199, "SQ", item(explicit(0x00081150, "UI", b"1.2.840.10008.5.1.4.1.1.4"),
                                                undefined=False) + SEQUENCE_END, undefined=True)
    codes = explicit(0x00081032, "SQ", item(explicit(0x00080100, "SH", b"X") + nested)
                     + item(explicit(0x00080104, "LO", b"y"), undefined=False) + SEQUENCE_END, undefined=True)
    private = explicit(0x00091001, "UN", item(implicit(0x00091002, b"abcd")) + SEQUENCE_END, undefined=True)
    return (explicit(0x00080005, "CS", charset) + explicit(0x00080020, "DA", b"20240102") + codes
            + explicit(0x0008103E, "LO", description) + explicit(0x00090010, "LO", b"ACME")
            + private + explicit(0x00180050, "DS", b"2.5") + explicit(0x0020000E, "UI", b"1.2.3.5")
            + (explicit(0x00200011, "IS", number) if number is not None else b"")
            + explicit(0x00200013, "IS", b"1") + explicit(0x7FE00010, "OW", bytes(32)))


def implicit_dataset() -> bytes:
    codes = implicit(0x00081032, item(implicit(0x00080100, b"X") + implicit(
        0x00081199, item(implicit(0x00081150, b"1.2.3", pad=b"\0")) + SEQUENCE_END, undefined=True))
        + SEQUENCE_END, undefined=True)
    return (implicit(0x00080020, b"20240102") + codes + implicit(0x0008103E, b"T1w MPRAGE ")
            + implicit(0x0020000E, b"1.2.3.2", pad=b"\0") + implicit(0x00200011, b" 2 ")
            + implicit(0x7FE00010, bytes(32)))


def implicit_item_in_explicit_dataset() -> bytes:
    codes = explicit(0x00081032, "SQ", item(implicit(0x00080100, b"X")) + SEQUENCE_END, undefined=True)
    return (explicit(0x00080020, "DA", b"20240103") + codes + explicit(0x0008103E, "LO", b"fmap")
            + explicit(0x0020000E, "UI", b"1.2.3.6") + explicit(0x00200011, "IS", b"6"))


FAST = {
    "explicit, nested undefined-length sequences, private UN": (
        part10(explicit_dataset()), Header("1.2.3.5", "5", "rest BOLD", "20240102")),
    "implicit VR, padded values": (
        part10(implicit_dataset(), "1.2.840.10008.1.2"), Header("1.2.3.2", "2", "T1w MPRAGE", "20240102")),
    "implicit item inside an explicit dataset": (
        part10(implicit_item_in_explicit_dataset()), Header("1.2.3.6", "6", "fmap", "20240103")),
    "no SeriesNumber": (part10(explicit_dataset(number=None)), Header("1.2.3.5", "0", "rest BOLD", "20240102")),
    "empty SeriesNumber": (part10(explicit_dataset(number=b"")), Header("1.2.3.5", "0", "rest BOLD", "20240102")),
    "ends after SeriesNumber": (part10(implicit_dataset()[:-40], "1.2.840.10008.1.2"),
                                Header("1.2.3.2", "2", "T1w MPRAGE", "20240102")),
    "no preamble": (explicit_dataset(), None),
    "not DICOM": (b"just some text\n" * 20, None),
}
SLOW = {  # unusual files the fast path hands to pydicom
    "latin-1 description": part10(explicit_dataset(b"Kopf \xe4", charset=b"ISO_IR 100")),
    "multi-valued description": part10(explicit_dataset(b"A\\B")),
    "SeriesNumber not an integer string": part10(explicit_dataset(number=b"5.0")),
    "dataset implicit but syntax says explicit": part10(implicit_dataset()),
    "cut inside a sequence": part10(explicit_dataset())[:400],
}


@pytest.fixture()
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the files the fast path hands to pydicom."""
    calls: list[str] = []
    pydicom_header = emulator_header._pydicom_header

    def counting(fh):  # type: ignore[no-untyped-def]
        calls.append(fh.name)
        return pydicom_header(fh)

    monkeypatch.setattr(emulator_header, "_pydicom_header", counting)
    return calls


@pytest.mark.parametrize("case", sorted(FAST))
def test_header_fast_path(case: str, tmp_path: Path, fallbacks: list[str]) -> None:
    content, header = FAST[case]
    path = tmp_path / "f.dcm"
    path.write_bytes(content)
    assert read_header(path) == header
    assert fallbacks == []
    assert read_header_pydicom(path) == header


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about these files
@pytest.mark.parametrize("case", sorted(SLOW))
def test_header_unusual_files_go_to_pydicom(case: str, tmp_path: Path, fallbacks: list[str]) -> None:
    path = tmp_path / "f.dcm"
    path.write_bytes(SLOW[case])
    expected = read_header_pydicom(path)
    fallbacks.clear()
    assert read_header(path) == expected
    assert len(fallbacks) == 1


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_header_big_endian_and_deflated_go_to_pydicom(syntax: str, tmp_path: Path, fallbacks: list[str]) -> None:
    (path,) = write_series(tmp_path, series_uid="1.2.3.9", series_number=9, description="dwi",
                           n_files=1, transfer_syntax=syntax)
    assert read_header(path) == Header("1.2.3.9", "9", "dwi", "20240102")
    assert len(fallbacks) == 1
    assert read_header_pydicom(path) == read_header(path)


@pytest.mark.parametrize(("name", "step"), [("siemens_xa30", 1), ("ge_siemens_nih", 1),
                                            ("siemens_mosaic", 1), ("philips_ingenia", 10)])
def test_header_fast_path_matches_pydicom_on_real_files(real_dicom, name: str, step: int,
                                                        fallbacks: list[str]) -> None:
    files = sorted(p for p in (real_dicom(name) / "In").rglob("*") if p.is_file())[::step]
    assert files
    expected = [read_header_pydicom(p) for p in files]
    fallbacks.clear()
    assert [read_header(p) for p in files] == expected
    assert fallbacks == []


# the index: a session is re-read only where its files changed ----------------------------
