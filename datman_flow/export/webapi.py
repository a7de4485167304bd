"""A measured series' MRIQC-format JSON (`<nifti>_qc.json`) as a record of MRIQC's Web-API, the
way MRIQC's `upload_qc_metrics` builds one: the IQMs at the top level, `bids_meta` cut to MRIQC's
whitelist with the subject and session SHA-256-hashed, `provenance` cut to its whitelist.

Nothing is made up: an IQM the Web-API requires that a record lacks (a T1w measured before
datman-flow computed `tpm_overlap_*` from its MNI registration) makes the record not sendable,
with the names; an IQM that is not a finite number likewise. Values
are given the schema's types where that loses nothing (64.0 -> 64 for an integer field); a
bids_meta field whose value the Web-API's type refuses (a 1.5 T `MagneticFieldStrength`, an
`ImagingFrequency` of 123.25, a numeric `PartialFourier`) is left out and named, never rounded.
IQMs the schema does not know (the server refuses unknown fields) and datman-flow's own keys
(`datman_flags`) are left out.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from datman_flow.export.webapi_schema import (
    BIDS_METAS,
    BOOLEAN,
    DICT,
    FLOAT,
    HASHED,
    INTEGER,
    IQMS,
    META_WHITELIST,
    PROV_WHITELIST,
    PROVENANCE,
    PROVENANCE_SETTINGS,
    STRING,
    Field,
)
from datman_flow.naming import ScanId

MODALITY_OF_QC_TYPE = {"anat": "T1w", "fmri": "bold"}


class NotTyped(ValueError):
    """A value the schema's type refuses."""


@dataclass(frozen=True)
class WebapiRecord:
    modality: str  # T1w | bold: the resource it is posted to
    payload: dict[str, object]
    md5sum: str  # the NIfTI's (provenance.md5sum)
    missing: tuple[str, ...] = ()  # required IQMs the MRIQC record lacks
    problems: tuple[str, ...] = ()  # other reasons the Web-API would refuse it
    left_out: tuple[str, ...] = ()  # fields not sent, with why

    @property
    def sendable(self) -> bool:
        return not self.missing and not self.problems

    @property
    def why_not(self) -> str:
        """'' when sendable; else 'missing required IQMs a, b, c' and the other problems."""
        parts = [f"missing required IQMs {', '.join(self.missing)}"] if self.missing else []
        return "; ".join([*parts, *self.problems])


def hashed(value: str) -> str:
    """As MRIQC hashes fields that may identify a person: the SHA-256 hex digest of the text."""
    return hashlib.sha256(value.encode()).hexdigest()


def typed(value: object, kind: str) -> object:
    """`value` as the schema's `kind` takes it (lossless conversions only), else NotTyped."""
    if kind == STRING and isinstance(value, str):
        return value
    if kind == BOOLEAN and isinstance(value, bool):
        return value
    if kind == DICT and isinstance(value, dict):
        return value
    if kind in (FLOAT, INTEGER) and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise NotTyped(f"{value} is not a finite number")
        if kind == FLOAT:
            return float(value)
        if float(value).is_integer():
            return int(value)
        raise NotTyped(f"{value!r} is not a whole number")
    article = "an" if kind == INTEGER else "a"
    raise NotTyped(f"{value!r} is not {article} {kind}")


def iqms_of(record: dict, schema: dict[str, Field]) -> tuple[dict[str, object], list[str], list[str], list[str]]:
    """(the IQMs to send, required ones missing, problems, keys left out)."""
    out: dict[str, object] = {}
    missing, problems = [], []
    for name, (kind, required) in schema.items():
        if record.get(name) is None:
            if required:
                missing.append(name)
            continue
        try:
            out[name] = typed(record[name], kind)
        except NotTyped as exc:
            problems.append(f"IQM {name}: {exc}")
    left_out = sorted(k for k in record if k not in schema and k not in ("bids_meta", "provenance"))
    return out, missing, problems, [f"{k} (not in the Web-API's schema)" for k in left_out]


def bids_meta_of(meta: dict, schema: dict[str, Field]) -> tuple[dict[str, object], list[str]]:
    """The whitelisted metadata, typed as the schema says; (kept, left out with why)."""
    kept: dict[str, object] = {}
    left_out = []
    for key in META_WHITELIST:
        if key not in meta or key in HASHED or key == "modality":
            continue
        kind = schema.get(key, (None, False))[0]
        try:
            kept[key] = meta[key] if kind is None else typed(meta[key], kind)
        except NotTyped as exc:
            left_out.append(f"bids_meta.{key} ({exc}, as the Web-API types it)")
    return kept, left_out


def provenance_of(prov: dict) -> tuple[dict[str, object], list[str], list[str]]:
    """(the provenance to send, problems, left out)."""
    out: dict[str, object] = {}
    problems, left_out = [], []
    for key in PROV_WHITELIST:
        kind, required = PROVENANCE[key]
        if prov.get(key) is None:
            if required:
                problems.append(f"provenance.{key} is missing")
            continue
        try:
            out[key] = typed(prov[key], kind)
        except NotTyped as exc:
            problems.append(f"provenance.{key}: {exc}")
    settings = out.pop("settings", None)
    if isinstance(settings, dict):
        known = {}
        for key, value in settings.items():
            try:
                known[key] = typed(value, PROVENANCE_SETTINGS[key][0])
            except (KeyError, NotTyped):
                left_out.append(f"provenance.settings.{key} (not in the Web-API's schema)")
        if known:
            out["settings"] = known
    return out, problems, left_out


def webapi_record(mriqc: dict, scan_id: ScanId, qc_type: str, tag: str) -> WebapiRecord:
    """The Web-API record of one series from its MRIQC-format JSON and its session's label.
    ValueError for a series of a kind the Web-API does not take (dwi) or a JSON without the
    MRIQC shape."""
    modality = MODALITY_OF_QC_TYPE.get(qc_type)
    if modality is None:
        raise ValueError(f"{qc_type} series: MRIQC's Web-API takes T1w and bold records only")
    meta, prov = mriqc.get("bids_meta"), mriqc.get("provenance")
    if not isinstance(meta, dict) or not isinstance(prov, dict):
        raise ValueError("not an MRIQC record (no bids_meta or provenance object)")
    iqms, missing, problems, left_out = iqms_of(mriqc, IQMS[modality])
    bids, dropped = bids_meta_of(meta, BIDS_METAS[modality])
    bids["modality"] = modality
    bids["subject_id"] = hashed(f"{scan_id.site}{scan_id.subject}")  # BIDS subject: SITE+SUBJECT (DATMAN's)
    if scan_id.timepoint:
        bids["session_id"] = hashed(scan_id.timepoint)
    if modality == "bold" and not isinstance(bids.get("TaskName"), str):
        bids["TaskName"] = tag.lower()
    provenance, prov_problems, prov_left_out = provenance_of(prov)
    payload = {**iqms, "bids_meta": bids, "provenance": provenance}
    return WebapiRecord(modality, payload, str(provenance.get("md5sum", "")), tuple(missing),
                        tuple(problems + prov_problems), tuple(left_out + dropped + prov_left_out))
