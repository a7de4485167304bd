"""The codes reviewers' decisions are stored with: django-qcapp-ratings' (the A2CPS derivative-QC
kit's) steps, ratings and display orientations, and the steps datman-flow adds for reviewing
raw series. Codes 0-4 are the kit's; datman-flow's start at 100 so that a later step of the kit
never collides with one of ours."""

from __future__ import annotations

from enum import IntEnum


class Step(IntEnum):
    """What kind of picture is rated (the kit's `step`)."""

    MASK = 0
    SPATIAL_NORMALIZATION = 1
    SURFACE_LOCALIZATION = 2
    FMAP_COREGISTRATION = 3
    DTIFIT = 4
    RAW_T1W = 100  # datman-flow: a raw anatomical series (qc: anat)
    RAW_BOLD = 101  # datman-flow: a raw functional series (qc: fmri)
    RAW_DWI = 102  # datman-flow: a raw diffusion series (qc: dwi)


class Rating(IntEnum):
    PASS = 0
    UNSURE = 1
    FAIL = 2


class Display(IntEnum):
    """Which orientation a picture's slice is in: X sagittal, Y coronal, Z axial."""

    X = 0
    Y = 1
    Z = 2


STEP_OF_QC_TYPE = {"anat": Step.RAW_T1W, "fmri": Step.RAW_BOLD, "dwi": Step.RAW_DWI}
DISPLAY_NAMES = {Display.X: "sagittal", Display.Y: "coronal", Display.Z: "axial"}
