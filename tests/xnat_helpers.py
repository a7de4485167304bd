"""Tiny synthetic DICOM sessions for the XNAT emulator and client tests (the fixtures the client
tests share, one session served by the emulator, are in conftest.py)."""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from datman_flow.xnat.emulator import XnatEmulator


def write_series(folder: Path, *, series_uid: str, series_number: int | None, description: str,
                 n_files: int = 3, study_date: str = "20240102", prefix: str = "img",
                 study_uid: str = "1.2.826.0.1.3680043.8.498.1",
                 transfer_syntax: str = ExplicitVRLittleEndian) -> list[Path]:
    """Write n small (4x4) MR DICOM files of one series into folder; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, n_files + 1):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = transfer_syntax
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "MR"
        ds.StudyDate = study_date
        ds.PatientID = "SYNTH01"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        if series_number is not None:
            ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        ds.InstanceNumber = i
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = (np.arange(16, dtype=np.uint16) * i).tobytes()
        path = folder / f"{prefix}{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


ONE_SITE_STUDY = """
study: SPN01
xnat: {url: URL, project: SPINS}
sites:
  CMH:
    xnat_project: SPINS_CMH
    tags:
      T1: {match: {SeriesDescription: 'T1'}COUNT}
"""


def one_site_study(url: str, count: int | None = None) -> str:
    """A study file with one site (SPINS_CMH on the XNAT at `url`) and one T1 rule."""
    return ONE_SITE_STUDY.replace("URL", url).replace("COUNT", f", count: {count}" if count is not None else "")


def make_session(root: Path, project: str, label: str,
                 series: list[tuple[str, int | None, str, int]] | None = None,
                 study_date: str = "20240102") -> Path:
    """A session folder `root/project/label` with one subfolder per series.

    `series` rows are (SeriesInstanceUID, SeriesNumber, SeriesDescription, n_files); the
    default is a T1 (series 2, 3 files) and a resting BOLD (series 5, 4 files).
    """
    series = series or [("1.2.3.2", 2, "T1w MPRAGE", 3), ("1.2.3.5", 5, "rest BOLD", 4)]
    folder = root / project / label
    for uid, number, description, n in series:
        write_series(folder / f"s{uid.replace('.', '_')}", series_uid=uid, series_number=number,
                     description=description, n_files=n, study_date=study_date)
    return folder


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# one session on the emulator and a client of it, for the client and fetch tests ----------
LABEL = "STUDYA_CMH_0001_01"


def requests_to(emu: XnatEmulator, fragment: str) -> int:
    return sum(fragment in path for _, path in emu.request_log)


# hand-built DICOM bytes, for the header reader's edge cases --------------------------------
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
UNDEFINED = 0xFFFFFFFF


def _even(value: bytes, pad: bytes) -> bytes:
    return value + pad if len(value) % 2 else value


def explicit(tag: int, vr: str, value: bytes = b"", *, undefined: bool = False) -> bytes:
    """One explicit-VR little-endian element (text padded with a space, UIDs with a NUL)."""
    value = _even(value, b"\0" if vr == "UI" else b" ")
    length = UNDEFINED if undefined else len(value)
    if vr in _LONG_VRS:
        return struct.pack("<HH2s2xL", tag >> 16, tag & 0xFFFF, vr.encode(), length) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length) + value


def implicit(tag: int, value: bytes = b"", *, undefined: bool = False, pad: bytes = b" ") -> bytes:
    """One implicit-VR little-endian element."""
    value = _even(value, pad)
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, UNDEFINED if undefined else len(value)) + value


def item(content: bytes, *, undefined: bool = True) -> bytes:
    """A sequence item, of undefined length (closed by an item delimiter) unless told otherwise."""
    if not undefined:
        return struct.pack("<HHL", 0xFFFE, 0xE000, len(content)) + content
    return struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED) + content + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)


SEQUENCE_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


def part10(dataset: bytes, syntax: str = "1.2.840.10008.1.2.1") -> bytes:
    """Preamble, `DICM`, a file meta group naming `syntax`, then the dataset bytes."""
    meta = explicit(0x00020010, "UI", syntax.encode())
    return bytes(128) + b"DICM" + explicit(0x00020000, "UL", struct.pack("<L", len(meta))) + meta + dataset
