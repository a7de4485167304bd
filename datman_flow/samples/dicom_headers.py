"""DICOM headers of the synthetic sessions: the session, acquisition and series descriptions and
the datasets they make (file meta, patient, study, series and MR acquisition attributes).

Every UID is derived from the session label, series number and instance number, and every date
and time from the session's start, so writing the same session twice gives identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")


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

    def derived(self, number: int, kind: str) -> SeriesHeader:
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


def clock(seconds: float) -> str:
    seconds = round(seconds, 3)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def decimal_strings(values: Sequence[float]) -> list[str]:
    """Decimal strings within the 16-character limit of DS."""
    return [format(round(float(v), 6), ".10g")[:16] for v in values]


def file_dataset(session: SessionHeader, sop_class: UID, number: int) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = session.date
    ds.StudyTime = clock(session.start_seconds)
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


def mr_base(session: SessionHeader, series: SeriesHeader, rows: int, cols: int) -> FileDataset:
    acq = series.acquisition
    ds = file_dataset(session, MR_IMAGE_STORAGE, series.number)
    ds.ImageType = list(series.image_type)
    ds.SeriesTime = clock(session.start_seconds + series.start_offset_s)
    ds.Modality = "MR"
    ds.SeriesDescription = series.description
    ds.BodyPartExamined = session.body_part
    ds.ScanningSequence = list(acq.scanning_sequence)
    ds.SequenceVariant = list(acq.sequence_variant)
    ds.ScanOptions = list(acq.scan_options) or ""
    ds.MRAcquisitionType = acq.acquisition_type
    ds.SequenceName = acq.sequence_name
    ds.AngioFlag = "N"
    ds.RepetitionTime = decimal_strings([acq.repetition_time])[0]
    ds.EchoTime = decimal_strings([acq.echo_time])[0]
    if acq.inversion_time is not None:
        ds.InversionTime = decimal_strings([acq.inversion_time])[0]
    ds.NumberOfAverages = decimal_strings([acq.number_of_averages])[0]
    ds.ImagingFrequency = "123.25"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = 1
    ds.MagneticFieldStrength = "3"
    ds.NumberOfPhaseEncodingSteps = rows
    ds.EchoTrainLength = acq.echo_train_length
    ds.PercentSampling = decimal_strings([acq.percent_sampling])[0]
    ds.PercentPhaseFieldOfView = decimal_strings([acq.percent_phase_fov])[0]
    ds.PixelBandwidth = decimal_strings([acq.pixel_bandwidth])[0]
    ds.ProtocolName = series.protocol or series.description
    ds.ReceiveCoilName = "HeadNeck_20"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [cols, 0, 0, rows]  # frequency along rows, phase along columns
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.FlipAngle = decimal_strings([acq.flip_angle])[0]
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
