"""The pictures reviewers rate: for one measured series, three grey-scale PNGs beside its NIfTI,
`<nifti stem>_review-x.png`, `-y`, `-z`, one slice each in sagittal, coronal and axial
orientation through the centre of the head.

- What is shown: a 3-D series as it is; a 4-D series (BOLD) as the mean of its first
  min(10, T) volumes, read alone from the file (nibabel's array proxy); a diffusion series as
  its first b=0 volume when the .bval beside it says which (b <= 50 s/mm^2, MRIQC's b0
  threshold), else like a BOLD.
- Where: the middle of the intensity mask's extent along each voxel axis (Otsu's threshold on
  the volume, planes holding under 2 % of the largest plane's count of mask voxels left out, so
  that a speck of noise does not stretch the extent); along the inferior-superior axis at most
  65 mm below the top of the head, so that a T1 whose field of view takes in the neck is not
  cut through the cerebellum (the axial picture then passes near the lateral ventricles).
- How: windowed from 0 (or the 1st percentile when the image has negative values) to the 99th
  percentile of the mask's intensities, the same window for the three pictures; turned, aspect
  corrected and upscaled as `review_geometry` describes (the long side `LONG_SIDE` pixels, the
  way from a click back to a voxel is there too).

Each `ReviewPicture` gives the slice index along the NIfTI's own voxel axis that the picture
cuts across (`review_geometry.slice_axes(affine, display).axis`), not along an axis of the
reoriented image. The PNGs are written atomically: a reader sees the old picture or the new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from datman_flow.atomic import atomic_path
from datman_flow.qc.dwi import B0_THRESHOLD
from datman_flow.qc.measure import companion
from datman_flow.qc.review_geometry import orientation, oriented_plane, picture_size, slice_axes, upscale

log = logging.getLogger(__name__)

MEAN_VOLUMES = 10  # a 4-D series is shown as the mean of its first this many volumes
PICTURE_SUFFIXES = {0: "_review-x.png", 1: "_review-y.png", 2: "_review-z.png"}  # display -> file name end
MAX_BVAL_BYTES = 1 << 20  # a .bval larger than this is no dcm2niix output: not read
MIN_PLANE_SHARE = 0.02  # planes with fewer mask voxels than this share of the fullest plane's are ignored
MAX_DEPTH_MM = 65.0  # the axial slice is at most this far below the top of the head (not in the neck)
SAMPLE_VOXELS = 2_000_000  # thresholds and windows are estimated on a regular subsample of about this size


class ReviewPictureError(ValueError):
    """A NIfTI that cannot be shown as pictures to rate (the message names the file and why)."""


@dataclass(frozen=True)
class ReviewPicture:
    path: Path
    display: int  # 0 X (sagittal), 1 Y (coronal), 2 Z (axial)
    slice: int  # index along the NIfTI's own voxel axis the picture cuts across
    width: int  # pixels: a click's x is in [0, width)
    height: int


def picture_paths(nifti: Path) -> dict[int, Path]:
    """display -> the picture's path beside `nifti` (`<stem>_review-x.png` ...)."""
    return {display: companion(nifti, suffix) for display, suffix in PICTURE_SUFFIXES.items()}


def first_b0(bval: Path, n_volumes: int) -> int | None:
    """The index of the first b=0 volume by the .bval file, or None when the file is absent,
    unreadable or does not have one value per volume (the picture is then the volumes' mean)."""
    try:
        if not bval.is_file() or bval.stat().st_size > MAX_BVAL_BYTES:
            return None
        values = np.array([float(v) for v in bval.read_text(encoding="ascii", errors="strict").split()])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.warning("%s: not used to find the b=0 volume (%s)", bval, exc)
        return None
    if values.size != n_volumes or not np.isfinite(values).all():
        return None
    found = np.flatnonzero(values <= B0_THRESHOLD)
    return int(found[0]) if found.size else None


def shown_volume(image: nib.Nifti1Image, nifti: Path, kind: str) -> np.ndarray:
    """The 3-D volume the pictures show (a 3-D image in its stored type, a mean as float32),
    reading only the volumes it needs; NaN and infinities read as 0."""
    shape = tuple(int(n) for n in image.shape)
    if len(shape) < 3 or min(shape) < 1 or any(n != 1 for n in shape[4:]):
        raise ReviewPictureError(f"{nifti.name}: a {'x'.join(map(str, shape))} image is not a 3-D or 4-D volume")
    proxy, extra = image.dataobj, (0,) * (len(shape) - 4)
    if len(shape) == 3:  # kept in its stored type (int16 mostly): only the shown planes become float
        volume = np.asanyarray(proxy)
    else:
        b0 = first_b0(companion(nifti, ".bval"), shape[3]) if kind == "dwi" else None
        if b0 is not None:
            volume = np.asarray(proxy[(Ellipsis, b0, *extra)], dtype=np.float32)
        else:
            first = np.asarray(proxy[(Ellipsis, slice(0, min(MEAN_VOLUMES, shape[3])), *extra)], dtype=np.float32)
            volume = first.reshape(*shape[:3], -1).mean(axis=3, dtype=np.float32)
    if volume.dtype.kind not in "iuf":
        raise ReviewPictureError(f"{nifti.name}: {volume.dtype} voxels are not grey values")
    if volume.dtype.kind == "f":
        volume = np.nan_to_num(volume, nan=0.0, posinf=0.0, neginf=0.0, copy=not volume.flags.writeable)
    return volume


def otsu_threshold(values: np.ndarray) -> float:
    """The intensity that best splits `values` in two classes (Otsu 1979, 256 bins)."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    counts, edges = np.histogram(values, bins=256, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts, dtype=np.float64)
    above = below[-1] - below
    mass = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = below * above * (mass / below - (mass[-1] - mass) / above) ** 2
    between = np.nan_to_num(between, nan=-1.0)
    return float(edges[int(np.argmax(between)) + 1])


def subsample(volume: np.ndarray) -> np.ndarray:
    """A regular subsample of about SAMPLE_VOXELS voxels (the whole volume when smaller)."""
    step = max(1, int(np.ceil((volume.size / SAMPLE_VOXELS) ** (1 / 3))))
    return volume[::step, ::step, ::step].ravel()


def mask_extent(mask: np.ndarray, axis: int) -> tuple[int, int] | None:
    """The first and last plane across `axis` holding at least MIN_PLANE_SHARE of the fullest
    plane's mask voxels (None for an empty mask)."""
    counts = np.count_nonzero(mask, axis=tuple(a for a in range(3) if a != axis))
    kept = np.flatnonzero(counts >= max(1, MIN_PLANE_SHARE * counts.max()))
    return (int(kept[0]), int(kept[-1])) if kept.size else None


def head_centre(mask: np.ndarray, affine: np.ndarray, zooms: list[float]) -> tuple[int, int, int]:
    """The middle of the mask's extent along each voxel axis (the volume's middle when empty);
    along the axis closest to superior, never more than MAX_DEPTH_MM below the top of the head."""
    centre = [n // 2 for n in mask.shape[:3]]
    vertical = slice_axes(affine, 2)  # the axial picture's slice axis runs inferior-superior
    for axis in range(3):
        extent = mask_extent(mask, axis)
        if extent is None:
            continue
        first, last = extent
        middle = (first + last) // 2
        if axis == vertical.axis:
            depth = int(MAX_DEPTH_MM / zooms[axis])
            superior_up = bool(orientation(affine)[axis, 1] > 0)  # the voxel index grows upward
            middle = max(middle, last - depth) if superior_up else min(middle, first + depth)
        centre[axis] = middle
    return centre[0], centre[1], centre[2]


def window(sample: np.ndarray, threshold: float) -> tuple[float, float]:
    """(black, white): 0 (or the 1st percentile of an image with negative values) to the 99th
    percentile of the intensities above the mask threshold."""
    inside = sample[sample > threshold]
    white = float(np.percentile(inside if inside.size else sample, 99))
    black = 0.0 if float(sample.min()) >= 0 else float(np.percentile(sample, 1))
    return black, white if white > black else black + 1.0


def to_grey(plane: np.ndarray, black: float, white: float) -> np.ndarray:
    scaled = (plane.astype(np.float32) - black) * (255.0 / (white - black))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def save_png(pixels: np.ndarray, target: Path) -> None:
    with atomic_path(target, suffix=".png") as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG", compress_level=4)


def render_review_pictures(nifti: Path, kind: str = "anat") -> list[ReviewPicture]:
    """Draw the three pictures of `nifti` (kind: anat | fmri | dwi, the series' qc type) beside
    it, replacing any earlier ones; return them in display order X, Y, Z.
    ReviewPictureError when the file is not an image volume nibabel can read."""
    nifti = Path(nifti)
    try:
        image = nib.load(nifti)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for a file that is no NIfTI
        raise ReviewPictureError(f"{nifti}: not readable as NIfTI ({type(exc).__name__}: {exc})") from exc
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise ReviewPictureError(f"{nifti}: a {type(image).__name__}, not a NIfTI image")
    volume = shown_volume(image, nifti, kind)
    sample = subsample(volume)
    threshold = otsu_threshold(sample)
    zooms = [float(z) if np.isfinite(z) and z > 0 else 1.0 for z in image.header.get_zooms()[:3]]
    centre = head_centre(volume > threshold, image.affine, zooms)
    black, white = window(sample, threshold)
    out = []
    for display, target in picture_paths(nifti).items():
        axes = slice_axes(image.affine, display)
        index = centre[axes.axis]
        plane = oriented_plane(volume, axes, index)
        width, height = picture_size(plane.shape[1], plane.shape[0], zooms[axes.h_axis], zooms[axes.v_axis])
        save_png(upscale(to_grey(plane, black, white), width, height), target)
        out.append(ReviewPicture(target, display, index, width, height))
    return out

