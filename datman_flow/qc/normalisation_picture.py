"""The pictures reviewers rate under the A2CPS step SPATIAL_NORMALIZATION: the T1w normalised to
MNI152NLin2009aSym (its ``space-MNI152NLin2009aSym_desc-preproc_T1w``) in grey, with the template's
edges over it: the outline of its brain mask in yellow and its GM/WM boundary (WM probability 0.5)
in cyan. Three PNGs, sagittal, coronal and axial, through fixed template planes (x = 0, through
the basal ganglia and the lateral ventricles), cut, turned and sized as the other review
pictures (qc/review_geometry.py), so that a click maps back to a voxel of the MNI-space T1.
Written beside the series' NIfTI as ``<stem>_mni_review-x.png`` (-y, -z: the review app serves
``<label>_*_review-[xyz].png`` files of the session's NIfTI folder), atomically."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from datman_flow.atomic import atomic_path
from datman_flow.qc.measure import companion
from datman_flow.qc.mni_template import Template, load_template
from datman_flow.qc.review_geometry import oriented_plane, picture_size, slice_axes, upscale
from datman_flow.qc.review_pictures import ReviewPicture, ReviewPictureError

SUFFIXES = {0: "_mni_review-x.png", 1: "_mni_review-y.png", 2: "_mni_review-z.png"}  # served as `*_review-[xyz].png`
PLANES_MM = (0.0, -4.0, 8.0)  # template x, y, z (mm) of the sagittal, coronal and axial pictures
BRAIN_EDGE = (255, 220, 0)
WM_EDGE = (0, 230, 255)


def normalisation_paths(nifti: Path) -> dict[int, Path]:
    """display -> the picture's path beside the series' (original) NIfTI."""
    return {display: companion(nifti, suffix) for display, suffix in SUFFIXES.items()}


def edges(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask)


def render_normalisation_pictures(mni_t1: Path, nifti: Path, template: Template | None = None) -> list[ReviewPicture]:
    """Draw the three pictures of ``mni_t1`` (on the template's grid) beside ``nifti``."""
    template = load_template() if template is None else template
    try:
        image = nib.load(mni_t1)
        volume = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for a file that is no NIfTI
        raise ReviewPictureError(f"{mni_t1}: not readable as NIfTI ({type(exc).__name__}: {exc})") from exc
    if volume.shape != template.brain.shape:
        raise ReviewPictureError(f"{mni_t1.name}: {volume.shape} is not the template's grid {template.brain.shape}")
    inside = volume[template.brain]
    white = float(np.percentile(inside, 99)) if inside.size else 1.0
    grey = np.clip(volume * (255.0 / max(white, 1e-6)), 0, 255).astype(np.uint8)
    centre = np.linalg.inv(template.affine) @ np.array([*PLANES_MM, 1.0])
    zooms = template.zooms
    out = []
    for display, target in normalisation_paths(nifti).items():
        axes = slice_axes(template.affine, display)
        index = int(round(centre[axes.axis]))
        width, height = picture_size(volume.shape[axes.h_axis], volume.shape[axes.v_axis], zooms[axes.h_axis],
                                     zooms[axes.v_axis])
        pixels = np.repeat(upscale(oriented_plane(grey, axes, index), width, height)[..., None], 3, axis=2)
        for mask, colour in ((template.tpms[2] > 0.5, WM_EDGE), (template.brain, BRAIN_EDGE)):
            big = upscale(oriented_plane(mask.astype(np.uint8), axes, index), width, height).astype(bool)
            pixels[edges(big)] = colour
        with atomic_path(target, suffix=".png") as tmp:
            Image.fromarray(pixels, mode="RGB").save(tmp, format="PNG", compress_level=4)
        out.append(ReviewPicture(target, display, index, width, height))
    return out
