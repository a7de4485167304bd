"""The four DICOM tags the emulator needs from each file, read fast.

A session of thousands of files is indexed once per emulator start, and pydicom builds every
element of every sequence before (0020,0011) (Philips files carry dozens of undefined-length
ones), so reading all of them took seconds. `read_header` instead walks the top-level elements
of the header prefix straight from the bytes, skipping sequences without building them, and
keeps only StudyDate, SeriesDescription, SeriesInstanceUID and SeriesNumber.

The fast path handles only the common, unambiguous case: a `DICM` preamble, file meta in
explicit VR little endian, a little-endian (implicit or explicit VR) dataset, ASCII values
with a single value each. Anything else (big endian, deflated, a VR that disagrees with the
transfer syntax, non-ASCII or multi-valued text, an unknown VR, a truncated header) is
answered by pydicom's `read_partial`, which defines the expected results. Both agree on every
file of the four real test sessions (8,226 files, none of them needing the fallback) and on
the hand-built edge cases in tests/test_xnat_emulator.py.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom.filereader import read_partial
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    PrivateTransferSyntaxes,
)

STUDY_DATE, DESCRIPTION, SERIES_UID, SERIES_NUMBER = 0x00080020, 0x0008103E, 0x0020000E, 0x00200011
_LAST_TAG = SERIES_NUMBER
_TAGS = [Tag(STUDY_DATE), Tag(DESCRIPTION), Tag(SERIES_UID), Tag(SERIES_NUMBER)]
_VRS = {STUDY_DATE: b"DA", DESCRIPTION: b"LO", SERIES_UID: b"UI", SERIES_NUMBER: b"IS"}
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
_ITEM, _SEQ_END = 0xFFFEE000, 0xFFFEE0DD
_ITEM_END = struct.pack("<HH", 0xFFFE, 0xE00D)  # as it appears in the bytes
_UNDEFINED = 0xFFFFFFFF
_FIRST_READ = 16384
_MAX_PREFIX = 8 << 20  # a header prefix longer than this (a huge private element?) goes to pydicom
_NOT_PLAIN = re.compile(rb"[\x80-\xff\x1b\\]")  # non-ASCII, ISO 2022 escapes, multi-values
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_TAG_LENGTH = struct.Struct("<HHL")
_TAG_VR_SHORT = struct.Struct("<HH2sH")
_LONG = struct.Struct("<L")


@dataclass(frozen=True)
class Header:
    series_uid: str
    series_number: str
    description: str
    study_date: str


def read_header(path: Path) -> Header | None:
    """The four tags the emulator needs, or None when the file is not usable DICOM."""
    try:
        with open(path, "rb") as fh:
            prefix = _Prefix(fh)
            if prefix.buf[128:132] != b"DICM":
                return None  # what pydicom's read_preamble(force=False) refuses
            try:
                return _fast_header(prefix)
            except (_Unusual, struct.error, IndexError):
                fh.seek(0)
                return _pydicom_header(fh)
    except OSError:
        return None


def read_header_pydicom(path: Path) -> Header | None:
    """The same answer through pydicom only (the reference the fast path is tested against)."""
    try:
        with open(path, "rb") as fh:
            return _pydicom_header(fh)
    except OSError:
        return None


def _pydicom_header(fh) -> Header | None:  # type: ignore[no-untyped-def]
    try:
        ds = read_partial(fh, stop_when=lambda tag, vr, length: tag > _LAST_TAG, specific_tags=_TAGS)
        uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    except Exception:  # noqa: BLE001 - any unreadable file is "not DICOM", as XNAT treats it
        return None
    if not uid:
        return None
    number = ds.get("SeriesNumber", None)
    return Header(
        series_uid=uid,
        series_number=str(int(number)) if number not in (None, "") else "0",
        description=str(ds.get("SeriesDescription", "") or ""),
        study_date=str(ds.get("StudyDate", "") or ""),
    )


class _Unusual(Exception):
    """The fast path cannot decide this file; pydicom must."""


class _Prefix:
    """The first bytes of a file, extended on demand (doubling) as parsing goes further."""

    def __init__(self, fh) -> None:  # type: ignore[no-untyped-def]
        self._fh = fh
        self.buf = fh.read(_FIRST_READ)

    def has(self, end: int) -> bool:
        """Whether the file is at least `end` bytes long (reading on as needed)."""
        if end > len(self.buf):
            if end > _MAX_PREFIX:
                raise _Unusual("the header prefix is too long for the fast path")
            self.buf += self._fh.read(max(end - len(self.buf), len(self.buf)))
        return end <= len(self.buf)

    def need(self, end: int) -> bytes:
        if not self.has(end):
            raise _Unusual("the header ends early")
        return self.buf


def _fast_header(prefix: _Prefix) -> Header | None:
    pos, syntax = _file_meta(prefix)
    if syntax == ImplicitVRLittleEndian:
        implicit = True
    elif syntax in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian) \
            or syntax in PrivateTransferSyntaxes:
        raise _Unusual(f"transfer syntax {syntax}")
    else:  # explicit VR little endian, or any encapsulated syntax (which is that too)
        implicit = False
    buf = prefix.need(pos + 8)
    if _looks_explicit(buf, pos) == implicit:  # pydicom warns and guesses: leave it to pydicom
        raise _Unusual("the dataset's VR encoding disagrees with the transfer syntax")
    found: dict[int, bytes] = {}
    while prefix.has(pos + 8):  # as in pydicom, a file may end after any element
        tag, vr, length, start = _element(prefix, pos, implicit)
        if tag > _LAST_TAG:
            break
        if length == _UNDEFINED:
            if tag in _VRS:
                raise _Unusual("a wanted element of undefined length")
            pos = _skip_sequence(prefix, start, implicit, vr)
            continue
        end = start + length
        if tag in _VRS:
            if vr is not None and vr != _VRS[tag]:
                raise _Unusual(f"element {tag:08X} has VR {vr!r}")
            found[tag] = prefix.need(end)[start:end]
        pos = end
    return _header(found)


def _file_meta(prefix: _Prefix) -> tuple[int, str]:
    """Walk the (0002,xxxx) group; returns where the dataset starts and the transfer syntax."""
    pos, syntax = 132, None
    while True:
        buf = prefix.need(pos + 8)
        group = buf[pos] | buf[pos + 1] << 8
        if group != 2:
            break
        tag, vr, length, start = _element(prefix, pos, False)
        if length == _UNDEFINED:
            raise _Unusual("file meta element of undefined length")
        if tag == 0x00020010:
            raw = prefix.need(start + length)[start:start + length]
            if _NOT_PLAIN.search(raw):
                raise _Unusual("odd transfer syntax UID")
            syntax = raw.decode("ascii").rstrip("\0 ")
        pos = start + length
    if group == 0 or syntax is None:
        raise _Unusual("no transfer syntax, or a command group")
    return pos, syntax


def _looks_explicit(buf: bytes, pos: int) -> bool:
    """pydicom's test: the first element's bytes 4-5 are two upper-case letters."""
    return 0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B


def _element(prefix: _Prefix, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, VR or None, value length, value offset) of the element header at pos."""
    buf = prefix.buf if pos + 12 <= len(prefix.buf) else prefix.need(pos + 8)
    if implicit:
        group, elem, length = _TAG_LENGTH.unpack_from(buf, pos)
        return group << 16 | elem, None, length, pos + 8
    group, elem, vr, length = _TAG_VR_SHORT.unpack_from(buf, pos)
    if vr in _SHORT_VRS:
        return group << 16 | elem, vr, length, pos + 8
    if vr in _LONG_VRS:
        return group << 16 | elem, vr, _LONG.unpack_from(prefix.need(pos + 12), pos + 8)[0], pos + 12
    raise _Unusual(f"unknown VR {vr!r}")


def _skip_sequence(prefix: _Prefix, pos: int, implicit: bool, vr: bytes | None) -> int:
    """Offset just after an undefined-length sequence whose items start at pos."""
    if vr is not None and vr not in (b"SQ", b"UN"):
        raise _Unusual(f"undefined length with VR {vr!r}")
    while True:
        group, elem, length = _TAG_LENGTH.unpack_from(prefix.need(pos + 8), pos)
        tag = group << 16 | elem
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Unusual(f"element {tag:08X} inside a sequence where an item belongs")
        if length != _UNDEFINED:
            pos += length
            continue
        item_implicit = implicit or not _looks_explicit(prefix.need(pos + 8), pos)
        pos = _skip_item(prefix, pos, item_implicit)


def _skip_item(prefix: _Prefix, pos: int, implicit: bool) -> int:
    """Offset just after the item delimiter of an undefined-length item starting at pos."""
    while True:
        buf = prefix.need(pos + 8)
        if buf[pos:pos + 4] == _ITEM_END:
            return pos + 8
        _, vr, length, start = _element(prefix, pos, implicit)
        pos = _skip_sequence(prefix, start, implicit, vr) if length == _UNDEFINED else start + length


def _header(found: dict[int, bytes]) -> Header | None:
    values: dict[int, str] = {}
    for tag, raw in found.items():
        if _NOT_PLAIN.search(raw):
            raise _Unusual(f"element {tag:08X} is not plain single-valued ASCII")
        values[tag] = raw.decode("ascii").rstrip("\0 ")
    uid = values.get(SERIES_UID, "").strip()
    if not uid:
        return None
    number = values.get(SERIES_NUMBER, "")
    if number.strip() == "":
        number = "0"
    elif _INTEGER.fullmatch(number):
        number = str(int(number))
    else:
        raise _Unusual(f"SeriesNumber {number!r}")
    return Header(series_uid=uid, series_number=number, description=values.get(DESCRIPTION, ""),
                  study_date=values.get(STUDY_DATE, ""))
