"""How the header check compares: fields, tolerances, ignore list, severity; and the layering
defaults < study < site < tag of the `header_check:` blocks study leads write in YAML.

One layer, as written in YAML (every key optional):

    header_check:
      tolerance: {RepetitionTime: 0.002, SliceTiming: 0.01}   # absolute, in the sidecar's units
      ignore: [ReceiveCoilName]                              # never compared
      severity: error                                        # warn (default) | error
      fields: {add: [SequenceName], remove: [InversionTime]}

`merge(defaults_layer?, study, site, tag)`: tolerance maps merge key by key (the later layer
wins), ignore lists are united, severity is replaced, and each layer's `fields.add` then
`fields.remove` are applied in layer order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from datman_flow.drift.parameters import DEFAULT_FIELDS, KNOWN_FIELDS
from datman_flow.suggest import did_you_mean

# Absolute tolerances, in the sidecar's units. Each is above the noise seen between series of
# one protocol (float rounding of DICOM decimal strings, dcm2niix's 6 significant digits,
# per-session re-measurement) and below the smallest real protocol edit. Fields not listed
# (counts, matrix, acceleration factors, b-values after rounding to 10) must match exactly.
DEFAULT_TOLERANCES: Mapping[str, float] = MappingProxyType({
    "MagneticFieldStrength": 0.01,  # T
    # MHz. The centre frequency is re-measured every session and follows the magnet's drift
    # (4 Hz between the series of one Skyra session in the test data); 10 kHz (~80 ppm at 3 T)
    # ignores that and still catches another field strength or magnet.
    "ImagingFrequency": 0.01,
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
    tolerance: Mapping[str, float] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_TOLERANCES)))
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


def _tolerance(value: float) -> float:
    if value < 0:
        raise PydanticCustomError("config", "{reason}", {
            "reason": f"a tolerance is an absolute difference, 0 or more; got {value:g}"})
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


_LAYER = ConfigDict(extra="forbid", strict=True, frozen=True)
FieldName = Annotated[str, AfterValidator(_field_name)]
FieldNames = Annotated[list[FieldName], BeforeValidator(_one_or_many)]
Tolerance = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_tolerance)]


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
    tolerance: dict[FieldName, Tolerance] | None = None
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
