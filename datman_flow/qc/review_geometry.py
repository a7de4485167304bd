"""Where a picture to rate lies in its NIfTI: which voxel axis each orientation slices across, how
the slice is turned to be shown, and which voxel a reviewer's click is on.

The volume is never resampled: a slice is taken across one of the NIfTI's own voxel axes, the
one closest to the world axis of the orientation (nibabel's `io_orientation`, the axis order
of the closest canonical RAS+ image), then transposed and flipped so that

- X (sagittal): anterior to the right, superior up;
- Y (coronal): the patient's right on the right, superior up;
- Z (axial): the patient's right on the right, anterior up;

that is, in every picture the world coordinate grows to the right and upward (neurological
convention). Each pixel is scaled by the voxel size along its axis (aspect corrected) and the
picture upscaled with nearest neighbour so that its long side is `LONG_SIDE` pixels.

From a click to a voxel (`voxel_of_click`): a click (x, y) is in the PNG's pixel space from its
top-left corner (x to the right, y down), on pixel (px, py) = (floor(x), floor(y)). With the
picture's width W and height H and the slice's in-plane voxel counts n_h (across) and n_v (down),
that pixel shows column c = floor((px + 0.5) * n_h / W) and row r = floor((py + 0.5) * n_v / H)
of the turned slice (the voxel under the pixel's centre; clicks outside are clipped to the edge);
the voxel index along the horizontal voxel axis is c, or n_h - 1 - c when that axis runs to the
patient's left (or posterior); along the vertical axis it is n_v - 1 - r, or r when that axis
runs downward; along the sliced axis it is the picture's slice index (RatingImageRow.slice).
The voxel's world position is then the NIfTI's affine applied to (i, j, k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

LONG_SIDE = 512  # pixels: the long side of every picture to rate
DISPLAYS = (0, 1, 2)  # X sagittal, Y coronal, Z axial: review.scales.Display's codes (also world axes R, A, S)

# display -> (world axis shown across, world axis shown upward), RAS indices
_IN_PLANE = {0: (1, 2), 1: (0, 2), 2: (0, 1)}


@dataclass(frozen=True)
class SliceAxes:
    """How one orientation's picture is cut from a volume, in the NIfTI's own voxel axes."""

    display: int  # 0 X (sagittal), 1 Y (coronal), 2 Z (axial)
    axis: int  # the voxel axis the slice is taken across (its index is the picture's slice index)
    h_axis: int  # the voxel axis shown across the picture
    h_right: bool  # its voxel index grows to the right (else to the left)
    v_axis: int  # the voxel axis shown up and down
    v_up: bool  # its voxel index grows upward (else downward)


def orientation(affine: np.ndarray) -> np.ndarray:
    """For each voxel axis: (world axis R/A/S = 0/1/2, +1 or -1), the closest canonical match;
    an affine without a usable orientation (zeros, NaN) is read as RAS+ voxel order."""
    try:
        ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64))
    except (ValueError, np.linalg.LinAlgError):
        ornt = np.full((3, 2), np.nan)
    if ornt.shape != (3, 2) or not np.isfinite(ornt).all() or sorted(ornt[:, 0].astype(int)) != [0, 1, 2]:
        return np.array([[0, 1], [1, 1], [2, 1]], dtype=np.float64)
    return ornt


def slice_axes(affine: np.ndarray, display: int) -> SliceAxes:
    """The voxel axes of `display`'s picture of a volume with this affine."""
    if display not in _IN_PLANE:
        raise ValueError(f"display {display!r} is not 0 (X), 1 (Y) or 2 (Z)")
    ornt = orientation(affine)
    voxel_axis = {int(ornt[a, 0]): a for a in range(3)}  # world axis -> voxel axis
    across, upward = _IN_PLANE[display]
    h_axis, v_axis = voxel_axis[across], voxel_axis[upward]
    return SliceAxes(int(display), voxel_axis[int(display)], h_axis, bool(ornt[h_axis, 1] > 0),
                     v_axis, bool(ornt[v_axis, 1] > 0))


def oriented_plane(volume: np.ndarray, axes: SliceAxes, index: int) -> np.ndarray:
    """The slice `index` across `axes.axis`, as shown: rows top to bottom, columns left to right."""
    plane = np.take(volume, index, axis=axes.axis)
    if axes.h_axis < axes.v_axis:  # np.take keeps the other two axes in order: make rows = v_axis
        plane = plane.T
    if not axes.h_right:
        plane = plane[:, ::-1]
    if axes.v_up:
        plane = plane[::-1, :]
    return plane


def picture_size(n_h: int, n_v: int, h_mm: float, v_mm: float, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """(width, height) in pixels of a slice of n_h x n_v voxels of h_mm x v_mm, aspect corrected,
    its long side `long_side`."""
    width_mm, height_mm = n_h * h_mm, n_v * v_mm
    scale = long_side / max(width_mm, height_mm)
    return max(1, round(width_mm * scale)), max(1, round(height_mm * scale))


def upscale(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """`plane` resized to height x width by nearest neighbour: pixel (px, py) shows the voxel under
    its centre, column floor((px + 0.5) * n_h / W), row floor((py + 0.5) * n_v / H)."""
    n_v, n_h = plane.shape
    rows = np.minimum(((np.arange(height) + 0.5) * n_v / height).astype(np.intp), n_v - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * n_h / width).astype(np.intp), n_h - 1)
    return plane[np.ix_(rows, cols)]


def voxel_of_click(axes: SliceAxes, shape: tuple[int, ...], slice_index: int, width: int, height: int,
                   x: float, y: float) -> tuple[int, int, int]:
    """The voxel (i, j, k), in the NIfTI's own axes, that the picture of `width` x `height` pixels
    shows where it was clicked at (x, y) (exactly the voxel `upscale` drew in that pixel)."""
    if width <= 0 or height <= 0 or not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"no voxel for a click at ({x}, {y}) on a {width}x{height} picture")
    n_h, n_v = int(shape[axes.h_axis]), int(shape[axes.v_axis])
    px, py = min(max(math.floor(x), 0), width - 1), min(max(math.floor(y), 0), height - 1)
    column = min(int((px + 0.5) * n_h / width), n_h - 1)
    row = min(int((py + 0.5) * n_v / height), n_v - 1)
    voxel = [0, 0, 0]
    voxel[axes.axis] = int(slice_index)
    voxel[axes.h_axis] = column if axes.h_right else n_h - 1 - column
    voxel[axes.v_axis] = n_v - 1 - row if axes.v_up else row
    return voxel[0], voxel[1], voxel[2]


def click_to_voxel(nifti: Path, display: int, slice_index: int, width: int, height: int,
                   x: float, y: float) -> tuple[int, int, int]:
    """`voxel_of_click` for a picture of `nifti` (only its header is read): what a stored
    RatingCoordinateRow (x, y) of a RatingImageRow (display, slice, width, height) points at."""
    image = nib.load(nifti)
    axes = slice_axes(image.affine, display)
    return voxel_of_click(axes, image.shape[:3], slice_index, width, height, x, y)
