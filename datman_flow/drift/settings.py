"""How the header check compares: fields, tolerances, ignore list, severity; and the layering
defaults < study < site < tag of the `header_check:` blocks study leads write in YAML.

One layer, as written in YAML (every key optional):

    header_check:
      tolerance: {RepetitionTime: 0.002, SliceTiming: 0.01, ImagingFrequency: 50 ppm}
      ignore: [ReceiveCoilName]                              # never compared
      severity: error                                        # warn (default) | error
      fields: {add: [SequenceName], remove: [InversionTime]}

A tolerance is a number, an absolute difference in the sidecar's units (seconds for times,
MHz for ImagingFrequency, which drift/parameters.py reads in MHz even when written in Hz), or
text `N ppm`, relative to the reference value (the gold standard's): |actual - reference| may be
up to N * 10^-6 * |reference|. Numbers keep meaning what they always meant; only the built-in
ImagingFrequency tolerance is relative (100 ppm), because the centre frequency scales with the
field strength and an absolute MHz figure is a different ppm on every magnet.

`merge(defaults_layer?, study, site, tag)`: tolerance maps merge key by key (the later layer
wins), ignore lists are united, severity is replaced, and each layer's `fields.add` then
`fields.remove` are applied in layer order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from datman_flow.drift.parameters import DEFAULT_FIELDS, KNOWN_FIELDS
from datman_flow.suggest import did_you_mean

PPM_RE = re.compile(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*ppm\s*")


@dataclass(frozen=True)
class Relative:
    """A tolerance relative to the reference value, in parts per million."""

    ppm: float

    def limit(self, reference: float) -> float:
        """The absolute difference allowed around `reference`."""
        return abs(reference) * self.ppm * 1e-6

    def __str__(self) -> str:
        return f"{self.ppm:g} ppm"


Tolerance = float | Relative

# Absolute tolerances in the sidecar's units, or relative ones. Each is above the noise seen
# between series of one protocol (float rounding of DICOM decimal strings, dcm2niix's 6
# significant digits, per-session re-measurement) and below the smallest real protocol edit.
# Fields not listed (counts, matrix, acceleration factors, b-values after rounding to 10) must
# match exactly.
DEFAULT_TOLERANCES: Mapping[str, Tolerance] = MappingProxyType({
    "MagneticFieldStrength": 0.01,  # T
    # The centre frequency is re-measured every session and follows the magnet's drift (4 Hz
    # between the series of one Skyra session in the test data, a few ppm between sessions);
    # 100 ppm (12 kHz at 3 T, 30 kHz at 7 T) ignores that at any field strength and still catches
    # another field strength or magnet (a 2.89 T and a 3.0 T magnet differ by 3.6%).
    "ImagingFrequency": Relative(100.0),
    "EchoTime": 1e-5,  # s (0.01 ms, the precision scanners display)
    "RepetitionTime": 1e-4,  # s (0.1 ms)
    "InversionTime": 1e-4,  # s
    "FlipAngle": 0.01,  # degrees
    "SliceThickness": 0.001,  # mm (DICOM DS such as 3.5999999570732 for 3.6)
    "SpacingBetweenSlices": 0.001,  # mm
    "VoxelSize": 0.001,  # mm, per axis
    "PixelBandwidth": 0.01,  # Hz/pixel
    # s, per slice. Siemens mosaic slice times are quantised to 2.5 ms and jitter by one step
    # between series of one protocol (1.45 vs 1.4475 s for the same slice of the EPI PE=AP and
    # PE=LR series of ge_siemens_nih); a changed slice order, TR or multiband factor moves
    # times by a slice interval (tens of ms).
    "SliceTiming": 0.005,
    "EffectiveEchoSpacing": 1e-6,  # s
    "TotalReadoutTime": 1e-5,  # s
})

Severity = Literal["warn", "error"]


@dataclass(frozen=True)
class HeaderCheckSettings:
    fields: tuple[str, ...] = DEFAULT_FIELDS
    tolerance: Mapping[str, Tolerance] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_TOLERANCES)))
    ignore: frozenset[str] = frozenset()
    severity: Severity = "warn"

    @property
    def compared(self) -> tuple[str, ...]:
        """The fields actually compared, in order."""
        return tuple(name for name in self.fields if name not in self.ignore)


# ---- one YAML layer -------------------------------------------------------------------------

def _field_name(value: str) -> str:
    if value not in KNOWN_FIELDS:
        hint = did_you_mean(value, KNOWN_FIELDS)
        raise PydanticCustomError("config", "{reason}", {
            "reason": f"'{value}' is not a scanner parameter the header check knows{hint}"})
    return value


def _tolerance(value: object) -> Tolerance:
    """A number (absolute, 0 or more), 'N ppm' (relative) or a Relative; strict otherwise: a
    quoted number is refused, as before ppm existed."""
    if isinstance(value, Relative):
        return _relative(value.ppm, str(value))
    if isinstance(value, str):
        match = PPM_RE.fullmatch(value)
        if match is None:
            _refuse(f"a tolerance is a number (an absolute difference, in the sidecar's units) or 'N ppm' "
                    f"(relative to the reference); got {value!r}")
        return _relative(float(match.group(1)), value.strip())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _refuse(f"a tolerance is a number or 'N ppm'; got {value!r}")
    if not math.isfinite(value):
        _refuse(f"a tolerance must be a finite number; got {value}")
    if value < 0:
        _refuse(f"a tolerance is an absolute difference, 0 or more; got {value:g}")
    return float(value)


def _relative(ppm: float, text: str) -> Relative:
    if not math.isfinite(ppm) or ppm < 0:
        _refuse(f"a relative tolerance is 0 ppm or more; got {text!r}")
    return Relative(ppm)


def _refuse(reason: str) -> None:
    raise PydanticCustomError("config", "{reason}", {"reason": reason})


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


_LAYER = ConfigDict(extra="forbid", strict=True, frozen=True)
FieldName = Annotated[str, AfterValidator(_field_name)]
FieldNames = Annotated[list[FieldName], BeforeValidator(_one_or_many)]
ToleranceYaml = Annotated[Tolerance, PlainValidator(_tolerance)]


class FieldChangesYaml(BaseModel):
    model_config = _LAYER
    add: FieldNames = []
    remove: FieldNames = []

    @model_validator(mode="after")
    def _not_both(self) -> FieldChangesYaml:
        both = sorted(set(self.add) & set(self.remove))
        if both:
            raise PydanticCustomError("config", "{reason}", {
                "reason": f"fields: {', '.join(both)} both added and removed"})
        return self


class HeaderCheckYaml(BaseModel):
    """One `header_check:` block (defaults, study, site or tag level)."""

    model_config = _LAYER
    tolerance: dict[FieldName, ToleranceYaml] | None = None
    ignore: FieldNames | None = None
    severity: Severity | None = None
    fields: FieldChangesYaml | None = None


Layer = Mapping[str, Any] | HeaderCheckYaml | None


def merge(*layers: Layer) -> HeaderCheckSettings:
    """Settings from the built-in defaults and the given layers, least specific first
    (defaults < study < site < tag). A mapping is validated (pydantic ValidationError)."""
    fields = list(DEFAULT_FIELDS)
    tolerance = dict(DEFAULT_TOLERANCES)
    ignore: set[str] = set()
    severity: Severity = "warn"
    for raw in layers:
        if raw is None:
            continue
        layer = raw if isinstance(raw, HeaderCheckYaml) else HeaderCheckYaml.model_validate(dict(raw))
        tolerance.update(layer.tolerance or {})
        ignore.update(layer.ignore or ())
        if layer.severity is not None:
            severity = layer.severity
        if layer.fields is not None:
            fields.extend(name for name in dict.fromkeys(layer.fields.add) if name not in fields)
            fields = [name for name in fields if name not in set(layer.fields.remove)]
    return HeaderCheckSettings(fields=tuple(fields), tolerance=MappingProxyType(tolerance),
                               ignore=frozenset(ignore), severity=severity)
