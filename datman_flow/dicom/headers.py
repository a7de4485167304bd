"""Reading the DICOM headers the series index needs, cheaply.

XNAT has already grouped files by series (one folder per scan), so the index reads the
full header of one file per series and only checks that the others are DICOM at all
(preamble + 'DICM' magic, 132 bytes each). Multi-frame (enhanced) series also have each
file's NumberOfFrames read, because there a file is a volume, not a slice.

A header counts as read only when it is complete (`read_complete`): pydicom returns whatever
it parsed before the end of a truncated file without complaint, and a header cut inside group
0008 would make an MR image look like "not an image". Reading stops at the first element past
the tags the index needs, so a file that ends before such an element is truncated, except a
non-image object (its SOP class says so) whose last element ends exactly at the end of the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial

# SOP classes whose objects hold no image to convert (structured reports, key objects,
# presentation states, encapsulated documents, raw data, spectroscopy) and secondary
# captures (screenshots, not acquisitions).
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF / CDA
    "1.2.840.10008.5.1.4.1.1.66",  # raw data
    "1.2.840.10008.5.1.4.1.1.7",  # secondary capture (all variants)
    "1.2.840.10008.5.1.4.1.1.4.2",  # MR spectroscopy
)
NON_IMAGE_MODALITIES = {"SR", "KO", "PR", "DOC", "OT", "REG", "SEG", "RWV"}
MAX_FIELD_CHARS = 1024
# Everything the index needs lies in groups 0008-0028. Reading stops there: an enhanced
# multi-frame file's per-frame functional groups (group 5200) cost 100x the rest to parse.
INDEX_LAST_TAG = 0x0028FFFF
UNDEFINED_LENGTH = 0xFFFFFFFF


class TruncatedHeader(InvalidDicomError):
    """The file ends before the header elements the index needs."""


@dataclass(frozen=True)
class SeriesHeader:
    """What one representative file says about its series."""

    fields: dict[str, str]  # DICOM keyword -> value as text (multi-values joined by '\\')
    number_of_frames: int

    def get(self, keyword: str) -> str:
        return self.fields.get(keyword, "")

    @property
    def image_type(self) -> str:
        return self.get("ImageType")

    @property
    def is_derived(self) -> bool:
        return "DERIVED" in self.image_type.upper().split("\\")

    @property
    def is_image(self) -> bool:
        if not is_image_sop_class(self.get("SOPClassUID")):
            return False
        if self.get("Modality").upper() in NON_IMAGE_MODALITIES:
            return False
        return bool(self.get("Rows"))


def element_text(value: object) -> str:
    """A DICOM value as the text a tagging rule is matched against."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return ""
    return str(value)


def read_until(path: Path, last_tag: int) -> pydicom.Dataset:
    with open(path, "rb") as handle:
        return read_partial(handle, stop_when=lambda tag, vr, length: tag > last_tag)


def read_complete(path: Path, last_tag: int) -> pydicom.Dataset:
    """`read_until`, refusing a header the file's end cut short (TruncatedHeader)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        ds = read_partial(handle, stop_when=lambda tag, vr, length: tag > last_tag)
        stopped_before_the_end = handle.tell() < size
    if stopped_before_the_end:
        return ds
    sop = str(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID") or "")
    if sop and not is_image_sop_class(sop) and _ends_with_last_element(ds, size):
        return ds
    raise TruncatedHeader(f"{path.name}: the file ends inside its header ({size} bytes)")


def _ends_with_last_element(ds: pydicom.Dataset, size: int) -> bool:
    tags = list(ds.keys())
    if not tags:
        return False
    last = ds.get_item(max(tags))
    return (isinstance(last, RawDataElement) and last.length != UNDEFINED_LENGTH
            and last.value_tell + last.length == size)


def is_image_sop_class(sop: str) -> bool:
    return not any(sop.startswith(prefix) for prefix in NON_IMAGE_SOP_PREFIXES)


def last_tag_for(keywords: Iterable[str]) -> int:
    tags = [tag_for_keyword(k) for k in keywords]
    return max([INDEX_LAST_TAG, *(t for t in tags if t is not None)])


def read_series_header(path: Path, keywords: Iterable[str] = ()) -> SeriesHeader:
    """Read one file's header up to the last tag the index or the rules' `keywords` need;
    raise InvalidDicomError if it is not DICOM (TruncatedHeader if the file ends inside the header)."""
    ds = read_complete(path, last_tag_for(keywords))
    fields: dict[str, str] = {}
    for elem in ds:  # top level only: rules name top-level keywords
        if elem.VR == "SQ" or not elem.keyword:
            continue
        text = element_text(elem.value)
        if len(text) <= MAX_FIELD_CHARS:
            fields[elem.keyword] = text
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return SeriesHeader(fields=fields, number_of_frames=frames)


def has_dicom_magic(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def is_readable_dicom(path: Path) -> bool:
    """Cheap test first (magic); files without a preamble get a real parse."""
    if has_dicom_magic(path):
        return True
    try:
        pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False
    return True


def count_frames(paths: Iterable[Path]) -> tuple[int, list[Path]]:
    """Sum NumberOfFrames over multi-frame files (1 for a file that does not say), and the
    files whose header could not be read (truncated, or not DICOM after all)."""
    total, unreadable = 0, []
    for path in paths:
        try:
            ds = read_complete(path, INDEX_LAST_TAG)
            total += int(ds.get("NumberOfFrames", 1) or 1)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            unreadable.append(path)
    return total, unreadable
