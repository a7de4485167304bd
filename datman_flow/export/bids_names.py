"""Scan IDs as BIDS entities, and BIDS file names (pure functions).

A participant session `STUDY_SITE_SUBJECT_TIMEPOINT_REPEAT` becomes `sub-<SITE><SUBJECT>` /
`ses-<TIMEPOINT>`: the study is the dataset, the site stays in the participant label (two sites
may both have a subject 0001), and the repeats of one visit (REPEAT 01, 02: the participant left
the scanner and came back) share the visit's folder; their series of one name are numbered `run-`.
A phantom `STUDY_SITE_PHA_<TYPE><NUMBER>` goes to the study's phantom dataset as
`sub-<SITE><TYPE>` / `ses-<NUMBER>`: one participant per phantom and site, one session per scan.
Every part of a scan ID is letters and digits (naming.py), so the labels are BIDS labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datman_flow.naming import PHANTOM, ScanId

# the BIDS order of the entities datman-flow writes (BIDS appendix "Entity table")
ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "part")
_PHANTOM_ID = re.compile(r"([A-Za-z]+)([0-9]+)")


@dataclass(frozen=True, order=True)
class Visit:
    """One BIDS session folder: sub-<subject>/ses-<session>."""

    subject: str
    session: str

    @property
    def folder(self) -> str:
        return f"sub-{self.subject}/ses-{self.session}"

    @property
    def prefix(self) -> str:
        return f"sub-{self.subject}_ses-{self.session}"


def visit_of(scan_id: ScanId) -> Visit:
    """The BIDS subject and session of a scan ID (see the module's docstring)."""
    if scan_id.is_phantom:
        kind, number = _PHANTOM_ID.fullmatch(scan_id.subject[len(PHANTOM) + 1:]).groups()  # type: ignore[union-attr]
        return Visit(f"{scan_id.site}{kind}", number)
    return Visit(f"{scan_id.site}{scan_id.subject}", str(scan_id.timepoint))


def file_name(entities: dict[str, str], suffix: str, extension: str) -> str:
    """`sub-A_ses-B_task-rest_run-1_bold.nii.gz` from {'sub': 'A', ...}, in BIDS' entity order;
    entities without a value are left out."""
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"entities {sorted(unknown)} are not written by datman-flow")
    parts = [f"{key}-{entities[key]}" for key in ENTITY_ORDER if entities.get(key)]
    return "_".join(parts + [suffix]) + extension


def bids_uri(relative: str) -> str:
    """A file of the same dataset as a BIDS URI (IntendedFor, Sources): `bids::sub-A/...`."""
    return f"bids::{relative}"
