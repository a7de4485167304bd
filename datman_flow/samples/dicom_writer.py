"""Write synthetic series as classic single-frame MR DICOM files, as a scanner exports them.

One file per slice (per slice per volume for 4D series), MR Image Storage, Explicit VR Little
Endian with a preamble and file meta. Every UID is derived from the session label, series
number and instance number, and every date and time from the session's start, so writing the
same session twice gives byte-identical files. A tiny Basic Text SR (no pixels) stands in for
the non-image objects scanners add to a session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, UID, generate_uid

from .phantom import Grid

MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
BASIC_TEXT_SR = UID("1.2.840.10008.5.1.4.1.1.88.11")


@dataclass(frozen=True)
class SessionHeader:
    """What is the same for every file of one scan session."""

    label: str
    date: str  # YYYYMMDD
    start_seconds: float  # time of day the session starts, seconds after midnight
    institution: str = "Centre for Addiction and Mental Health"
    station: str = "MRC35123"
    patient_sex: str = "O"
    patient_age: str = "030Y"
    patient_weight: float = 70.0
    body_part: str = "BRAIN"
    device_serial: str = "166012"
    software_versions: str = "syngo MR E11"

    def uid(self, *parts: object) -> UID:
        return generate_uid(entropy_srcs=[self.label, *(str(p) for p in parts)])


@dataclass(frozen=True)
class Acquisition:
    """MR protocol parameters (times in ms, angles in degrees)."""

    scanning_sequence: tuple[str, ...]
    sequence_variant: tuple[str, ...]
    scan_options: tuple[str, ...]
    acquisition_type: str  # '2D' or '3D'
    sequence_name: str
    echo_time: float
    repetition_time: float
    flip_angle: float
    pixel_bandwidth: float
    echo_train_length: int = 1
    inversion_time: float | None = None
    number_of_averages: float = 1.0
    percent_sampling: float = 100.0
    percent_phase_fov: float = 100.0


@dataclass(frozen=True)
class SeriesHeader:
    number: int
    description: str
    acquisition: Acquisition
    start_offset_s: float  # seconds after the session start
    protocol: str = ""  # ProtocolName; the description when empty
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND", "NORM")

    def derived(self, number: int, kind: str) -> "SeriesHeader":
        """A scanner-derived series computed from this one (e.g. ``kind`` 'FA': an FA map
        named '<description>_FA' with ImageType DERIVED\\PRIMARY\\FA\\ND\\NORM)."""
        return replace(
            self,
            number=number,
            description=f"{self.description}_{kind}",
            protocol=self.protocol or self.description,
            image_type=("DERIVED", "PRIMARY", kind, "ND", "NORM"),
            start_offset_s=self.start_offset_s + 5.0,
        )


def _clock(seconds: float) -> str:
    seconds = round(seconds, 3)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def _ds(values: Sequence[float]) -> list[str]:
    """Decimal strings within the 16-character limit of DS."""
    return [format(round(float(v), 6), ".10g")[:16] for v in values]


def _file_dataset(session: SessionHeader, sop_class: UID, number: int) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = session.date
    ds.StudyTime = _clock(session.start_seconds)
    ds.AccessionNumber = ""
    ds.Manufacturer = "SIEMENS"
    ds.InstitutionName = session.institution
    ds.ReferringPhysicianName = ""
    ds.StationName = session.station
    ds.StudyDescription = "Research^SPINS"
    ds.ManufacturerModelName = "Prisma"
    ds.PatientName = session.label
    ds.PatientID = session.label
    ds.PatientBirthDate = ""
    ds.PatientSex = session.patient_sex
    ds.PatientAge = session.patient_age
    ds.PatientWeight = str(session.patient_weight)
    ds.DeviceSerialNumber = session.device_serial
    ds.SoftwareVersions = session.software_versions
    ds.StudyInstanceUID = session.uid("study")
    ds.SeriesInstanceUID = session.uid("series", number)
    ds.StudyID = "1"
    ds.SeriesNumber = number
    return ds


def _mr_base(session: SessionHeader, series: SeriesHeader, rows: int, cols: int) -> FileDataset:
    acq = series.acquisition
    ds = _file_dataset(session, MR_IMAGE_STORAGE, series.number)
    ds.ImageType = list(series.image_type)
    ds.SeriesTime = _clock(session.start_seconds + series.start_offset_s)
    ds.Modality = "MR"
    ds.SeriesDescription = series.description
    ds.BodyPartExamined = session.body_part
    ds.ScanningSequence = list(acq.scanning_sequence)
    ds.SequenceVariant = list(acq.sequence_variant)
    ds.ScanOptions = list(acq.scan_options) or ""
    ds.MRAcquisitionType = acq.acquisition_type
    ds.SequenceName = acq.sequence_name
    ds.AngioFlag = "N"
    ds.RepetitionTime = _ds([acq.repetition_time])[0]
    ds.EchoTime = _ds([acq.echo_time])[0]
    if acq.inversion_time is not None:
        ds.InversionTime = _ds([acq.inversion_time])[0]
    ds.NumberOfAverages = _ds([acq.number_of_averages])[0]
    ds.ImagingFrequency = "123.25"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = 1
    ds.MagneticFieldStrength = "3"
    ds.NumberOfPhaseEncodingSteps = rows
    ds.EchoTrainLength = acq.echo_train_length
    ds.PercentSampling = _ds([acq.percent_sampling])[0]
    ds.PercentPhaseFieldOfView = _ds([acq.percent_phase_fov])[0]
    ds.PixelBandwidth = _ds([acq.pixel_bandwidth])[0]
    ds.ProtocolName = series.protocol or series.description
    ds.ReceiveCoilName = "HeadNeck_20"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [cols, 0, 0, rows]  # frequency along rows, phase along columns
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.FlipAngle = _ds([acq.flip_angle])[0]
    ds.VariableFlipAngleFlag = "N"
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = session.uid("frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    return ds


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
    ds = _mr_base(session, series, rows, cols)
    sample = np.concatenate([np.ravel(s[1])[::5] for s in stacks])
    low, high = np.percentile(sample, [1.0, 99.5])
    ds.WindowCenter = _ds([(low + high) / 2])[0]
    ds.WindowWidth = _ds([max(high - low, 1.0)])[0]
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
            "ContentTime": _clock(start + t * tr_s),
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
                "ImageOrientationPatient": _ds(list(grid.row_cosines) + list(grid.col_cosines)),
                "PixelSpacing": _ds([grid.spacing[1], grid.spacing[0]]),
                "SliceThickness": _ds([grid.spacing[2]])[0],
                "SpacingBetweenSlices": _ds([grid.spacing[2]])[0],
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
                        "AcquisitionTime": _clock(start + t * tr_s + offsets[k]),
                        "InstanceNumber": instance,
                        "ImagePositionPatient": _ds(position),
                        "SliceLocation": _ds([float(position @ normal)])[0],
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


def write_text_sr(
    out_dir: Path, session: SessionHeader, number: int, description: str, text: str, *, start_offset_s: float
) -> Path:
    """A one-item Basic Text SR: a non-image object the pipeline must skip."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = _file_dataset(session, BASIC_TEXT_SR, number)
    ds.SeriesTime = ds.ContentTime = _clock(session.start_seconds + start_offset_s)
    ds.Modality = "SR"
    ds.SeriesDescription = description
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    ds.InstanceNumber = 1
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = session.uid("sr", number)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence([_code("18748-4", "LN", "Diagnostic imaging report")])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = DicomSequence([])
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = DicomSequence([_code("121071", "DCM", "Finding")])
    item.TextValue = text
    ds.ContentSequence = DicomSequence([item])
    path = out_dir / f"SR-{number:04d}-00001.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning
    return code
