"""Write synthetic series as classic single-frame MR DICOM files, as a scanner exports them.

One file per slice (per slice per volume for 4D series), MR Image Storage, Explicit VR Little
Endian with a preamble and file meta; the headers come from ``dicom_headers``, so writing the
same session twice gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import UID

from .dicom_headers import SeriesHeader, SessionHeader, clock, decimal_strings, mr_base
from .phantom import Grid


def slice_times(n_slices: int, tr_s: float) -> np.ndarray:
    """Seconds after the volume start at which each slice is acquired: interleaved ascending
    as Siemens does it (odd slice counts start with slice 1, even ones with slice 2)."""
    first = 0 if n_slices % 2 else 1
    order = list(range(first, n_slices, 2)) + list(range(1 - first, n_slices, 2))
    times = np.empty(n_slices)
    times[order] = np.arange(n_slices) * (tr_s / n_slices)
    return times


def series_folder_name(number: int, description: str) -> str:
    """``<number>-<description>`` with anything but letters, digits, '-', '_' replaced."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in description)
    return f"{number}-{safe}"


def write_series(
    out_dir: Path,
    session: SessionHeader,
    series: SeriesHeader,
    stacks: Sequence[tuple[Grid, np.ndarray]],
    *,
    bvals: Sequence[float] | None = None,
    bvecs: Sequence[Sequence[float]] | None = None,
) -> list[Path]:
    """Write one series, one file per slice, and return the paths in instance order.

    ``stacks`` are slice stacks with their images (uint16, ``[i, j, k]`` or ``[i, j, k, t]``);
    a localizer has three 3D stacks, a volume one, a time series one 4D stack whose volumes are
    acquisitions ``1..t`` one TR apart. ``bvals``/``bvecs`` (one per volume, patient
    coordinates) add the standard diffusion attributes to every file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    n_volumes = stacks[0][1].shape[3] if stacks[0][1].ndim == 4 else 1
    rows, cols = stacks[0][1].shape[1], stacks[0][1].shape[0]
    ds = mr_base(session, series, rows, cols)
    sample = np.concatenate([np.ravel(s[1])[::5] for s in stacks])
    low, high = np.percentile(sample, [1.0, 99.5])
    ds.WindowCenter = decimal_strings([(low + high) / 2])[0]
    ds.WindowWidth = decimal_strings([max(high - low, 1.0)])[0]
    if n_volumes > 1:
        ds.NumberOfTemporalPositions = n_volumes
    writer = _SliceWriter(ds)
    tr_s = series.acquisition.repetition_time / 1000.0
    is_2d = series.acquisition.acquisition_type == "2D"
    start = session.start_seconds + series.start_offset_s
    paths: list[Path] = []
    instance = 0
    for t in range(n_volumes):
        volume_values: dict[str, object] = {
            "AcquisitionNumber": t + 1,
            "ContentTime": clock(start + t * tr_s),
        }
        if n_volumes > 1:
            volume_values["TemporalPositionIdentifier"] = t + 1
        if bvals is not None and bvecs is not None:
            b = float(bvals[t])
            volume_values["DiffusionBValue"] = b
            volume_values["DiffusionDirectionality"] = "DIRECTIONAL" if b > 0 else "NONE"
            volume_values["DiffusionGradientOrientation"] = [float(v) for v in bvecs[t]] if b > 0 else [0.0] * 3
        for grid, data in stacks:
            stack_values = {
                "ImageOrientationPatient": decimal_strings(list(grid.row_cosines) + list(grid.col_cosines)),
                "PixelSpacing": decimal_strings([grid.spacing[1], grid.spacing[0]]),
                "SliceThickness": decimal_strings([grid.spacing[2]])[0],
                "SpacingBetweenSlices": decimal_strings([grid.spacing[2]])[0],
            }
            origin, normal = grid.origin(), grid.normal
            step = normal * grid.spacing[2]
            volume = data[..., t] if data.ndim == 4 else data
            offsets = slice_times(volume.shape[2], tr_s) if n_volumes > 1 and is_2d else np.zeros(volume.shape[2])
            for k in range(volume.shape[2]):
                instance += 1
                position = origin + step * k
                path = out_dir / f"IM-{series.number:04d}-{instance:05d}.dcm"
                writer.write(
                    path,
                    session.uid("image", series.number, instance),
                    {
                        **volume_values,
                        **stack_values,
                        "AcquisitionTime": clock(start + t * tr_s + offsets[k]),
                        "InstanceNumber": instance,
                        "ImagePositionPatient": decimal_strings(position),
                        "SliceLocation": decimal_strings([float(position @ normal)])[0],
                        "PixelData": np.ascontiguousarray(volume[:, :, k].T, dtype="<u2").tobytes(),
                    },
                )
                paths.append(path)
    return paths


class _SliceWriter:
    """Writes the files of one series quickly and exactly as ``save_as`` would.

    pydicom encodes a data element the same way wherever it sits, and a file is its preamble,
    the file meta group and the elements in tag order. So the elements that are the same in
    every file are encoded once, a value that recurs (a slice position in every volume) is
    encoded the first time it is seen, and only what is new is set on the dataset and encoded
    (``test_samples`` checks the bytes against ``save_as``).
    """

    UNIQUE = frozenset({"PixelData", "InstanceNumber"})  # never repeat within a series

    def __init__(self, ds: FileDataset) -> None:
        self.ds = ds
        self.meta: dict[int, bytes] = {}
        self.encoded: dict[int, bytes] = {}
        self.order: list[int] = []
        self.seen: dict[tuple[str, object], bytes] = {}

    def write(self, path: Path, sop_instance_uid: UID, values: dict[str, object]) -> None:
        ds, meta = self.ds, self.ds.file_meta
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = sop_instance_uid
        if not self.meta:  # let pydicom complete the file meta group once
            write_file_meta_info(DicomBytesIO(), meta, enforce_standard=True)
            self.meta = {int(tag): _encode(meta, tag) for tag in meta.keys()}
        self.meta[0x00020003] = _encode(meta, 0x00020003)
        meta.FileMetaInformationGroupLength = sum(len(v) for k, v in self.meta.items() if k != 0x00020000)
        self.meta[0x00020000] = _encode(meta, 0x00020000)
        self.encoded[0x00080018] = _encode(ds, 0x00080018)
        for keyword, value in values.items():
            tag = int(Tag(keyword))
            key = (keyword, tuple(value) if isinstance(value, list) else value)
            if keyword in self.UNIQUE or key not in self.seen:
                setattr(ds, keyword, value)
                if keyword == "PixelData":
                    ds["PixelData"].VR = "OW"
                self.encoded[tag] = _encode(ds, tag)
                if keyword not in self.UNIQUE:
                    self.seen[key] = self.encoded[tag]
            else:
                self.encoded[tag] = self.seen[key]
        if len(self.order) != len(ds):
            self.order = sorted(int(tag) for tag in ds.keys())
            for tag in self.order:
                if tag not in self.encoded:
                    self.encoded[tag] = _encode(ds, tag)
        parts = [ds.preamble, b"DICM"]
        parts += [self.meta[tag] for tag in sorted(self.meta)]
        parts += [self.encoded[tag] for tag in self.order]
        path.write_bytes(b"".join(parts))


def _encode(ds: Dataset, tag: int) -> bytes:
    """One data element as Explicit VR Little Endian bytes."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_data_element(fp, ds[tag], encodings=["iso8859"])
    return fp.getvalue()
