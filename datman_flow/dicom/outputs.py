"""What dcm2niix may write for one series, and what it writes only when a scan is not one series.

dcm2niix is called with `-f <stem>`. For one series it writes `<stem>.nii.gz` and `<stem>.json`
(and `.bval`/`.bvec` for diffusion), or several image sets whose names add documented
post-fixes to the stem (dcm2niix's FILENAMING.md, "File Name Post-fixes"), each with its own
JSON sidecar:

    _e1, _e2 ...      echoes (multi-echo, field maps: 2001_..._e1, _e2 in the Philips test data)
    _ph, _phMag       phase (field maps: _e2_ph in the XA30 and Philips test data)
    _real, _imaginary components of a complex image
    _i00001 ...       non-parallel slices (a localizer's three planes)
    _c<coil>          uncombined coil images
    _t<ms>            cardiac trigger times
    _ADC              Philips DWI with its derived volume removed (the file beside it has it)
    _fieldmaphz       Philips B0 map
    _Eq, _Tilt        slices resampled to equal spacing, gantry tilt removed
    _MoCo             Siemens motion-corrected series
    _ROI<n>           overlays

Anything else is not one series: when a second image set gets a name already taken, dcm2niix
appends a letter (`<stem>a.nii.gz`, `<stem>_e1a.nii.gz`), which is what two SeriesInstanceUIDs
under one series number produce; `_Raw` and `_PS` are Philips raw data and presentation states,
objects that are not the series' images. An image set without its JSON sidecar means dcm2niix
stopped part-way (or failed on some files) and cannot be checked for drift.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

POSTFIX = (r"_(?:e\d+|ph|phMag|real|imaginary|i\d+|c[A-Za-z0-9]+|t-?\d+(?:\.\d+)?|ADC|fieldmaphz|Eq|Tilt"
           r"|MoCo|ROI\d+)")
IMAGE_SUFFIXES = (".nii.gz", ".nii")
SIDE_SUFFIXES = (".json", ".bval", ".bvec")


def base_name(name: str) -> str:
    for suffix in IMAGE_SUFFIXES + SIDE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name.rsplit(".", 1)[0]


def image_sets(names: Iterable[str]) -> list[str]:
    """The base names of the NIfTI files among `names`, sorted."""
    return sorted({base_name(n) for n in names if n.endswith(IMAGE_SUFFIXES)})


def output_problems(stem: str, names: Iterable[str]) -> list[str]:
    """Why the files dcm2niix wrote for `stem` are not the outputs of one complete series
    (empty when they are)."""
    names = sorted(names)
    allowed = re.compile(re.escape(stem) + f"(?:{POSTFIX})*")
    foreign = sorted({base_name(n) for n in names if not allowed.fullmatch(base_name(n))})
    problems = []
    if foreign:
        problems.append(f"{len(image_sets(names))} image sets ({', '.join(image_sets(names))}) where one series "
                        f"gives one (or echoes/phase/... of one); unexpected: {', '.join(foreign)}; "
                        "the scan holds several series (two SeriesInstanceUIDs under one series number?)")
    without_sidecar = [base for base in image_sets(names) if f"{base}.json" not in names]
    if without_sidecar:
        problems.append(f"no JSON sidecar for {', '.join(without_sidecar)}")
    return problems
