"""Scan IDs and output file names (pure functions, no I/O).

A session label is `STUDY_SITE_SUBJECT_TIMEPOINT_REPEAT` (e.g. SPN01_CMH_0001_01_01), or for a
phantom `STUDY_SITE_PHA_<TYPE><NUMBER>` (e.g. SPN01_CMH_PHA_FBN0005, no timepoint or repeat).
STUDY, SITE, SUBJECT and TIMEPOINT are letters and digits; REPEAT is exactly two digits.
Labels are case-sensitive and kept as written; `PHA` must be in capitals, and SUBJECT may not
be `PHA` (in any case) outside the phantom form.

A converted series is named `<label>_<TAG>_<SERIES>_<DESCRIPTION>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PHANTOM = "PHA"
_CODE = re.compile(r"[A-Za-z0-9]+")
_REPEAT = re.compile(r"[0-9]{2}")
_PHANTOM_ID = re.compile(r"[A-Za-z]+[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_NOT_KEPT = re.compile(r"[^A-Za-z0-9.+]+")
_FORMS = ("STUDY_SITE_SUBJECT_TIMEPOINT_REPEAT (e.g. SPN01_CMH_0001_01_01) "
          "or STUDY_SITE_PHA_<TYPE><NUMBER>")


class InvalidLabel(ValueError):
    """A session label (or scan ID part) that does not follow the naming convention."""


def is_code(value: str) -> bool:
    """Letters and digits only, at least one (study, site, tag codes)."""
    return isinstance(value, str) and _CODE.fullmatch(value) is not None


@dataclass(frozen=True)
class ScanId:
    """A parsed session label. For a phantom, `subject` is 'PHA_<TYPE><NUMBER>' and
    timepoint and repeat are None. Constructing one with invalid parts raises InvalidLabel."""

    study: str
    site: str
    subject: str
    timepoint: str | None
    repeat: str | None

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise InvalidLabel(problem)

    @property
    def is_phantom(self) -> bool:
        return self.subject.startswith(PHANTOM + "_")

    @property
    def label(self) -> str:
        if self.is_phantom:
            return f"{self.study}_{self.site}_{self.subject}"
        return f"{self.study}_{self.site}_{self.subject}_{self.timepoint}_{self.repeat}"

    @property
    def subject_dir(self) -> str:
        """Folder name under <data>/nii/: STUDY_SITE_SUBJECT_TIMEPOINT (phantom: the label)."""
        if self.is_phantom:
            return self.label
        return f"{self.study}_{self.site}_{self.subject}_{self.timepoint}"

    def __str__(self) -> str:
        return self.label


def _code_problem(name: str, value: object) -> str | None:
    if not isinstance(value, str):
        return f"{name} must be text, got {type(value).__name__}"
    if not value:
        return f"{name} is empty"
    if not is_code(value):
        return f"{name} {value!r} must be letters and digits only"
    return None


def _problem(scan: ScanId) -> str | None:
    for name in ("study", "site"):
        problem = _code_problem(name, getattr(scan, name))
        if problem:
            return problem
    if isinstance(scan.subject, str) and scan.subject.startswith(PHANTOM + "_"):
        ident = scan.subject[len(PHANTOM) + 1:]
        if not _PHANTOM_ID.fullmatch(ident):
            return f"phantom ID {ident!r} must be letters then digits (<TYPE><NUMBER>, e.g. FBN0005)"
        if scan.timepoint is not None or scan.repeat is not None:
            return "a phantom has no timepoint or repeat"
        return None
    problem = _code_problem("subject", scan.subject) or _code_problem("timepoint", scan.timepoint)
    if problem:
        return problem
    if scan.subject.upper() == PHANTOM:
        return f"subject {scan.subject!r} is reserved for phantoms (STUDY_SITE_PHA_<TYPE><NUMBER>)"
    if not isinstance(scan.repeat, str) or not _REPEAT.fullmatch(scan.repeat):
        return f"repeat {scan.repeat if scan.repeat is not None else ''!r} must be two digits"
    return None


def parse_session_label(label: str) -> ScanId:
    """'SPN01_CMH_0001_01_01' -> ScanId; raises InvalidLabel saying what is wrong."""
    if not isinstance(label, str):
        raise InvalidLabel(f"a session label must be text, got {type(label).__name__}")
    if not label:
        raise InvalidLabel(f"empty session label; expected {_FORMS}")
    parts = label.split("_")
    if len(parts) == 4 and parts[2].upper() == PHANTOM:
        if parts[2] != PHANTOM:
            raise InvalidLabel(f"{label!r}: phantom labels spell '{PHANTOM}' in capitals")
        fields = (parts[0], parts[1], f"{PHANTOM}_{parts[3]}", None, None)
    elif len(parts) == 5:
        fields = tuple(parts)
    else:
        count = f"{len(parts)} part" + ("" if len(parts) == 1 else "s")
        raise InvalidLabel(f"{label!r} has {count}; expected {_FORMS}")
    try:
        return ScanId(*fields)
    except InvalidLabel as exc:
        raise InvalidLabel(f"{label!r}: {exc}") from None


def sanitize_description(description: str) -> str:
    """Make a series description safe inside an underscore-separated file name.

    Every run of characters other than A-Z, a-z, 0-9, '.' and '+' becomes a single '-'
    (so '_' and '/' never survive); runs at the start or end become a leading or trailing
    '-' too (not stripped): ' T1 ' -> '-T1-'. An empty description gives 'none'.
    """
    if not description:
        return "none"
    return _NOT_KEPT.sub("-", description)


def series_part(series: str | int) -> str:
    """The SERIES part of a file name: a number zero-padded to two digits (5 -> '05',
    '005' -> '05', 1301 -> '1301'); a non-numeric XNAT scan ID ('4-2') sanitized as is."""
    if isinstance(series, bool):
        raise TypeError("series must be a number or text, not a yes/no value")
    if isinstance(series, int):
        if series < 0:
            raise ValueError(f"series number must not be negative, got {series}")
        return f"{series:02d}"
    text = str(series).strip()
    if not text:
        raise ValueError("series is empty")
    if _DIGITS.fullmatch(text):
        return f"{int(text):02d}"
    return sanitize_description(text)


def output_stem(scan_id: ScanId, tag: str, series: str | int, description: str) -> str:
    """'<label>_<TAG>_<SERIES>_<DESCRIPTION>', e.g. SPN01_CMH_0001_01_01_T1_05_Sag-T1-BRAVO."""
    if not is_code(tag):
        raise ValueError(f"tag {tag!r} must be letters and digits only")
    return f"{scan_id.label}_{tag}_{series_part(series)}_{sanitize_description(description)}"
