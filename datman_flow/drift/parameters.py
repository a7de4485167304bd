"""The scanner parameters of one converted series, normalised for comparison.

Sources, in order of precedence: the dcm2niix JSON sidecar, then the kept DICOM file (for
what the sidecar lacks), the NIfTI header (voxel size, slices, volumes) and the .bval/.bvec
files (b-values, directions). Only an allow-list of scanner parameters is extracted: the
converter's own keys (ConversionSoftwareVersion, BidsGuess, PartialFourier written by one
dcm2niix version and not the next, ...) are never read, so they can never count as drift.

Normalisation (the same for a fresh series and a gold standard):
- numbers -> float; lists -> lists of floats (or of strings); strings stripped;
- a missing value stays missing (never None): absent keys, None, "" and NaN are dropped;
- keys that dcm2niix versions name differently are mapped to one name (`ALIASES`);
- acceleration factors equal to 1 mean "not accelerated" and are dropped: dcm2niix
  v1.0.20241127 and v1.0.20260416 omit ParallelReductionFactorInPlane/OutOfPlane for
  unaccelerated series (GE and Siemens E11 EPI, XA30 DWI/ASL/BOLD/field maps, Philips T1 and
  field maps), v1.0.20260724 writes 1 for the same files;
- times are in seconds (the sidecar's unit; DICOM milliseconds are converted);
- ImagingFrequency is in MHz: a value above 1000 is in Hz (some vendors write Hz and dcm2niix
  copies the DICOM value) and is divided by 10^6. The rule is safe because the two ranges are
  far apart: protons resonate at 42.58 MHz/T, so 1000 MHz would take a 23.5 T magnet (human
  MRI stops near 11.7 T, 500 MHz), while a frequency in Hz exceeds 10^6 above 0.03 T;
- BValues: the sorted distinct b-values rounded to the nearest 10 s/mm², halves up (the
  Philips DTIphase series writes b=2 for its b=0 volumes: 0; 995 -> 1000, 1005 -> 1010);
- NumberOfDirections: distinct unit vectors (within ~1 degree; v and -v count as two) of the
  volumes with b > B0_THRESHOLD; zero vectors (Philips trace images) are not directions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

DEFAULT_FIELDS: tuple[str, ...] = (
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "MagneticFieldStrength",
    "ImagingFrequency", "EchoTime", "RepetitionTime", "InversionTime", "FlipAngle", "SliceThickness",
    "SpacingBetweenSlices", "AcquisitionMatrix", "VoxelSize", "NumberOfSlices", "NumberOfVolumes",
    "PhaseEncodingDirection", "ParallelReductionFactorInPlane", "MultibandAccelerationFactor",
    "PixelBandwidth", "EchoTrainLength", "SliceTiming", "ReceiveCoilName", "BValues", "NumberOfDirections",
)
# Further scanner parameters of the sidecar that a study may add with `fields: {add: [...]}`.
OPTIONAL_FIELDS: tuple[str, ...] = (
    "SequenceName", "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType",
    "PercentPhaseFOV", "PercentSampling", "AcquisitionMatrixPE", "ReconMatrixPE", "BaseResolution",
    "EffectiveEchoSpacing", "TotalReadoutTime", "BandwidthPerPixelPhaseEncode",
    "ParallelReductionFactorOutOfPlane", "ParallelAcquisitionTechnique", "NonlinearGradientCorrection",
    "InPlanePhaseEncodingDirectionDICOM",
)
KNOWN_FIELDS: tuple[str, ...] = DEFAULT_FIELDS + OPTIONAL_FIELDS

# parameter -> sidecar keys, first found wins (dcm2niix renamed these between versions/vendors;
# CoilString is what dcm2niix writes for the DICOM ReceiveCoilName of GE and Philips files).
ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ManufacturerModelName": ("ManufacturerModelName", "ManufacturersModelName"),
    "SequenceName": ("SequenceName", "PulseSequenceName"),
    "ReceiveCoilName": ("ReceiveCoilName", "CoilString"),
})
ACCELERATION_FIELDS = frozenset({"ParallelReductionFactorInPlane", "ParallelReductionFactorOutOfPlane",
                                 "MultibandAccelerationFactor"})
# Derived from the NIfTI header, the DICOM file or the .bval/.bvec files, never the sidecar.
NOT_FROM_SIDECAR = frozenset({"AcquisitionMatrix", "VoxelSize", "NumberOfSlices", "NumberOfVolumes",
                              "BValues", "NumberOfDirections"})
HZ_ABOVE = 1000.0  # an ImagingFrequency above this is in Hz, not MHz (see the module docstring)
B0_THRESHOLD = 50.0  # s/mm²: volumes at or below are b=0 images
BVALUE_STEP = 10.0
VOXEL_DECIMALS = 4  # mm; float32 pixdim noise is ~1e-7 mm


def normalise_value(value: object) -> object | None:
    """A value as compared: float, stripped str, list of floats or of strings; None = missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        number = float(value)
        return None if math.isnan(number) else number
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, (bytes, bytearray)):
        return None  # binary DICOM values are not parameters
    if _is_list(value):
        items = [normalise_value(item) for item in value]  # type: ignore[union-attr]
        items = [item for item in items if item is not None]
        if not items:
            return None
        if all(isinstance(item, float) for item in items):
            return items
        return [item if isinstance(item, str) else _number_text(item) for item in items]
    return normalise_value(str(value))  # pydicom DSfloat/IS subclass float/int: caught above


def _is_list(value: object) -> bool:
    """A list, tuple or pydicom MultiValue (a MutableSequence), not text."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _number_text(item: object) -> str:
    return f"{item:g}" if isinstance(item, float) else str(item)


def normalise_parameters(values: Mapping[str, object]) -> dict[str, object]:
    """Normalise every value, dropping the missing ones and 'not accelerated' factors, and
    reading an ImagingFrequency in Hz as MHz."""
    out: dict[str, object] = {}
    for name, raw in values.items():
        value = normalise_value(raw)
        if value is None or (name in ACCELERATION_FIELDS and value == 1.0):
            continue
        if name == "ImagingFrequency" and isinstance(value, float) and value > HZ_ABOVE:
            value = value / 1e6
        out[name] = value
    return out


def sidecar_parameters(sidecar: Mapping[str, object]) -> dict[str, object]:
    """The scanner parameters a dcm2niix JSON sidecar holds, aliases resolved."""
    raw: dict[str, object] = {}
    for name in KNOWN_FIELDS:
        if name in NOT_FROM_SIDECAR:
            continue
        for key in ALIASES.get(name, (name,)):
            if normalise_value(sidecar.get(key)) is not None:
                raw[name] = sidecar[key]
                break
    return normalise_parameters(raw)


def nifti_parameters(nifti: Path) -> dict[str, object]:
    """VoxelSize (pixdim[1:4], mm, 4 decimals), NumberOfSlices (dim 3), NumberOfVolumes (dim 4 or 1)."""
    import nibabel

    header = nibabel.load(str(nifti)).header
    shape = header.get_data_shape()
    zooms = header.get_zooms()[:3]
    return {
        "VoxelSize": [round(float(z), VOXEL_DECIMALS) for z in zooms],
        "NumberOfSlices": float(shape[2]) if len(shape) > 2 else 1.0,
        "NumberOfVolumes": float(shape[3]) if len(shape) > 3 else 1.0,
    }


def round_bvalue(value: float) -> float:
    """Nearest multiple of BVALUE_STEP, halves rounded up (995 -> 1000, 2 -> 0)."""
    return float(math.floor(value / BVALUE_STEP + 0.5) * BVALUE_STEP)


def diffusion_parameters(bval: Path, bvec: Path | None = None) -> dict[str, object]:
    """BValues (sorted distinct, rounded to 10) and NumberOfDirections (from the .bvec)."""
    bvalues = [float(v) for v in bval.read_text().split()]
    if not bvalues:
        return {}
    out: dict[str, object] = {"BValues": sorted({round_bvalue(b) for b in bvalues})}
    if bvec is not None and bvec.exists():
        rows = [[float(v) for v in line.split()] for line in bvec.read_text().splitlines() if line.strip()]
        if len(rows) == 3 and all(len(row) == len(bvalues) for row in rows):
            vectors = [(rows[0][i], rows[1][i], rows[2][i]) for i, b in enumerate(bvalues) if b > B0_THRESHOLD]
            out["NumberOfDirections"] = float(count_directions(vectors))
    return out


def count_directions(vectors: Iterable[tuple[float, float, float]], cos_tolerance: float = 0.9998) -> int:
    """Distinct unit directions (within ~1 degree); zero vectors (trace images) are not directions."""
    distinct: list[tuple[float, float, float]] = []
    for x, y, z in vectors:
        norm = math.sqrt(x * x + y * y + z * z)
        if norm < 1e-6:
            continue
        unit = (x / norm, y / norm, z / norm)
        if not any(unit[0] * d[0] + unit[1] * d[1] + unit[2] * d[2] >= cos_tolerance for d in distinct):
            distinct.append(unit)
    return len(distinct)


def extract_parameters(nifti: Path, sidecar: dict | None = None, dicom: Path | None = None) -> dict[str, object]:
    """Scanner parameters of one converted series: its sidecar (`<stem>.json` read when not
    given), then the DICOM file for what the sidecar lacks, the NIfTI header and the
    `<stem>.bval`/`.bvec` files. A missing NIfTI or sidecar raises FileNotFoundError; for a
    sidecar alone use `sidecar_parameters`."""
    nifti = Path(nifti)
    stem = stem_of(nifti)
    if not nifti.exists():
        raise FileNotFoundError(f"{nifti}: NIfTI not found")
    if sidecar is None:
        sidecar_path = nifti.with_name(stem + ".json")
        if not sidecar_path.exists():
            raise FileNotFoundError(f"{sidecar_path}: JSON sidecar not found")
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    params = sidecar_parameters(sidecar)
    if dicom is not None:
        for name, value in dicom_parameters(Path(dicom)).items():
            params.setdefault(name, value)
    params.update(nifti_parameters(nifti))
    bval = nifti.with_name(stem + ".bval")
    if bval.exists():
        params.update(diffusion_parameters(bval, nifti.with_name(stem + ".bvec")))
    return {name: params[name] for name in KNOWN_FIELDS if name in params}


# DICOM keyword -> (parameter, scale): read only for what the sidecar lacks. Enhanced
# multi-frame files keep most of these in the functional groups (EffectiveEchoTime in
# MREchoSequence, TransmitterFrequency in MRImagingModifierSequence, ...).
DICOM_FALLBACK: Mapping[str, tuple[str, float | None]] = MappingProxyType({
    "Manufacturer": ("Manufacturer", None), "ManufacturerModelName": ("ManufacturerModelName", None),
    "SoftwareVersions": ("SoftwareVersions", None), "MagneticFieldStrength": ("MagneticFieldStrength", None),
    "ImagingFrequency": ("ImagingFrequency", None), "TransmitterFrequency": ("ImagingFrequency", None),
    "EchoTime": ("EchoTime", 0.001), "EffectiveEchoTime": ("EchoTime", 0.001),
    "RepetitionTime": ("RepetitionTime", 0.001), "InversionTime": ("InversionTime", 0.001),
    "FlipAngle": ("FlipAngle", None), "SliceThickness": ("SliceThickness", None),
    "SpacingBetweenSlices": ("SpacingBetweenSlices", None), "PixelBandwidth": ("PixelBandwidth", None),
    "EchoTrainLength": ("EchoTrainLength", None), "ReceiveCoilName": ("ReceiveCoilName", None),
})
FUNCTIONAL_GROUPS = ("SharedFunctionalGroupsSequence",)
# Reading stops before the per-frame functional groups (5200,9230): parsing them costs 45 ms
# for a 96-frame XA30 file against 2 ms for the rest, and what differs per frame (the echo
# time of each echo, positions) is what the sidecar already holds.
LAST_DICOM_TAG = 0x52009229


def dicom_parameters(path: Path) -> dict[str, object]:
    """Scanner parameters from one DICOM header (classic, or enhanced multi-frame with the
    values in the shared functional groups)."""
    from datman_flow.dicom.headers import read_until

    ds = read_until(Path(path), LAST_DICOM_TAG)
    raw: dict[str, object] = {}
    for keyword, (name, scale) in DICOM_FALLBACK.items():
        value = _dicom_value(ds, keyword)
        if value is None or name in raw:
            continue
        if _is_list(value) and all(isinstance(v, str) for v in value):
            value = "\\".join(value)  # joined by a backslash, as in the sidecar
        if scale is not None:
            try:
                value = float(value) * scale
            except (TypeError, ValueError):
                continue
        raw[name] = value
    matrix = _acquisition_matrix(ds)
    if matrix is not None:
        raw["AcquisitionMatrix"] = matrix
    return normalise_parameters(raw)


def _dicom_value(ds, keyword: str) -> object | None:
    """A keyword at the top level, else in the first item of a shared or first-frame group."""
    if keyword in ds and ds[keyword].value not in (None, ""):
        return ds[keyword].value
    for groups in FUNCTIONAL_GROUPS:
        if groups not in ds or not ds[groups].value:
            continue
        for element in ds[groups].value[0]:
            if element.VR == "SQ" and element.value and keyword in element.value[0]:
                value = element.value[0][keyword].value
                if value not in (None, ""):
                    return value
    return None


def _acquisition_matrix(ds) -> list[float] | None:
    """(0018,1310) frequency rows, frequency columns, phase rows, phase columns; for enhanced
    files built from MRFOVGeometrySequence in the same layout (phase along COLUMN: [F,0,0,P])."""
    value = ds.get("AcquisitionMatrix")
    if value and any(value):
        return [float(v) for v in value]
    freq = _dicom_value(ds, "MRAcquisitionFrequencyEncodingSteps")
    phase = _dicom_value(ds, "MRAcquisitionPhaseEncodingStepsInPlane")
    direction = _dicom_value(ds, "InPlanePhaseEncodingDirection")
    if freq is None or phase is None or direction not in ("COLUMN", "COL", "ROW"):
        return None
    f, p = float(freq), float(phase)
    return [0.0, f, p, 0.0] if direction == "ROW" else [f, 0.0, 0.0, p]


def stem_of(nifti: Path) -> str:
    name = nifti.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return nifti.stem
