"""The BIDS side of the configuration: a tag's place in a BIDS dataset (tags.yml) and a study's
release settings (its `bids:` block). The export (export/bids_*.py) reads only these models.

In the tag registry::

    T1:   {qc: anat, bids: {datatype: anat, suffix: T1w}}
    RST:  {qc: fmri, bids: {datatype: func, suffix: bold, task: rest}}
    DTI:  {qc: dwi,  bids: {datatype: dwi, suffix: dwi, acq: 60dir}}
    FMAP: {qc: ignore, bids: {datatype: fmap, suffix: phasediff}}     # IntendedFor: the session's func + dwi
    SEAP: {qc: ignore, bids: {datatype: fmap, suffix: epi, dir: AP, intended_for: [func]}}
    ASL:  {qc: ignore, bids: {datatype: extra, suffix: pcasl}}        # kept, outside BIDS (.bidsignore)

A tag without `bids:` is not exported (the export's report says so, series by series).

In a study file::

    bids:
      scan_dates: remove        # remove (default) | shift | keep: acq_time in sessions.tsv / scans.tsv
      date_shift_days: -73000   # with `shift`: days added to every date (the same for the whole study)
      require_sign_off: true    # only sessions a reviewer signed off (false: every session not failed)
      exclude_drift_errors: false   # true: leave out sessions whose header drift check failed at error
      name: Social Processes Initiative   # dataset_description.json Name (default: the study's name)
      license: CC0
      authors: [A. Person]
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BidsDatatype = Literal["anat", "func", "dwi", "fmap", "perf", "extra"]
ScanDates = Literal["remove", "shift", "keep"]
_LABEL = re.compile(r"[A-Za-z0-9]+")
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

# The raw-data suffixes BIDS (1.10) defines per datatype; `extra` takes any letters and digits and
# lands outside BIDS, listed in .bidsignore.
SUFFIXES: dict[str, frozenset[str]] = {
    "anat": frozenset({"T1w", "T2w", "PDw", "T2starw", "FLAIR", "inplaneT1", "inplaneT2", "PDT2", "angio",
                       "T1map", "T2map", "T2starmap", "R1map", "R2map", "R2starmap", "PDmap", "MTRmap",
                       "MTsat", "UNIT1", "T1rho", "MWFmap", "MTVmap", "Chimap", "S0map", "M0map"}),
    "func": frozenset({"bold", "cbv", "sbref", "phase"}),
    "dwi": frozenset({"dwi", "sbref"}),
    "fmap": frozenset({"phasediff", "phase1", "phase2", "magnitude1", "magnitude2", "magnitude", "fieldmap",
                       "epi"}),
    "perf": frozenset({"asl", "m0scan"}),
}
INTENDED_FOR_DEFAULT: tuple[str, ...] = ("func", "dwi")


def _label_problem(name: str, value: str | None) -> str | None:
    if value is not None and not _LABEL.fullmatch(value):
        return f"{name} {value!r} must be letters and digits only (a BIDS label)"
    return None


class BidsMapping(BaseModel):
    """Where a tag's series go in a BIDS dataset: `<datatype>/sub-.._ses-..[_task-][_acq-][_ce-]
    [_rec-][_dir-][_run-]_<suffix>.nii.gz` (run- only where a session has several of one name)."""

    model_config = _STRICT
    datatype: BidsDatatype
    suffix: str
    task: str | None = None
    acq: str | None = None
    ce: str | None = None
    rec: str | None = None
    dir: str | None = None
    intended_for: list[Literal["func", "dwi", "perf", "anat"]] | None = None  # fmap only

    @model_validator(mode="after")
    def _consistent(self) -> BidsMapping:
        for name in ("task", "acq", "ce", "rec", "dir"):
            problem = _label_problem(name, getattr(self, name))
            if problem:
                raise ValueError(problem)
        allowed = SUFFIXES.get(self.datatype)
        if allowed is None:
            if not _LABEL.fullmatch(self.suffix):
                raise ValueError(f"suffix {self.suffix!r} must be letters and digits only")
        elif self.suffix not in allowed:
            raise ValueError(f"suffix {self.suffix!r} is not a BIDS {self.datatype} suffix; one of: "
                             f"{', '.join(sorted(allowed))} (or datatype: extra for data BIDS does not cover)")
        if self.datatype == "func" and self.suffix in ("bold", "cbv", "phase") and not self.task:
            raise ValueError(f"a func {self.suffix} needs task: (e.g. task: rest), BIDS requires it")
        if self.task and self.datatype != "func":
            raise ValueError("task: belongs to func series only")
        if self.intended_for is not None and self.datatype != "fmap":
            raise ValueError("intended_for: belongs to fmap series only")
        return self

    @property
    def targets(self) -> tuple[str, ...]:
        """The datatypes a field map is intended for (fmap only)."""
        if self.datatype != "fmap":
            return ()
        return tuple(self.intended_for) if self.intended_for is not None else INTENDED_FOR_DEFAULT


class BidsStudy(BaseModel):
    """A study's `bids:` block: how its release is made."""

    model_config = _STRICT
    scan_dates: ScanDates = "remove"
    date_shift_days: int | None = None
    require_sign_off: bool = True
    exclude_drift_errors: bool = False
    name: str | None = Field(None, min_length=1)
    license: str | None = Field(None, min_length=1)
    authors: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shift_given(self) -> BidsStudy:
        if self.scan_dates == "shift" and not self.date_shift_days:
            raise ValueError("scan_dates: shift needs date_shift_days: a non-zero whole number of days "
                             "(e.g. -73000, about 200 years back, as BIDS suggests)")
        if self.scan_dates != "shift" and self.date_shift_days is not None:
            raise ValueError(f"date_shift_days is used only with scan_dates: shift (here {self.scan_dates})")
        return self
