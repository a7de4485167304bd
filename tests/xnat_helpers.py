"""Tiny synthetic DICOM sessions for the XNAT emulator and client tests."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


def write_series(folder: Path, *, series_uid: str, series_number: int | None, description: str,
                 n_files: int = 3, study_date: str = "20240102", prefix: str = "img",
                 study_uid: str = "1.2.826.0.1.3680043.8.498.1") -> list[Path]:
    """Write n small (4x4) MR DICOM files of one series into folder; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, n_files + 1):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
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
