"""The images of the structural derivatives: back on the original NIfTI's grid (the QC works in
the closest-canonical orientation), or resampled onto the template's grid; written atomically
as NIfTI with the process's umask (datman_flow/atomic.py)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations
from scipy import ndimage as ndi

from datman_flow.atomic import atomic_path

RAS = orientations.axcodes2ornt(("R", "A", "S"))


def to_original(canonical: np.ndarray, original_affine: np.ndarray) -> np.ndarray:
    """An array of the closest-canonical (RAS) image put back in the original voxel order (the
    inverse of nibabel's ``as_closest_canonical``)."""
    back = orientations.ornt_transform(RAS, orientations.io_orientation(original_affine))
    return np.ascontiguousarray(orientations.apply_orientation(canonical, back))


def canonical_affine(original_affine: np.ndarray, shape) -> np.ndarray:
    """The affine ``as_closest_canonical`` gives an image of this affine and (3-D) shape."""
    ornt = orientations.io_orientation(original_affine)
    return original_affine @ orientations.inv_ornt_aff(ornt, tuple(shape[:3]))


def resample(volume: np.ndarray, voxel_map: np.ndarray, shape, order: int = 1) -> np.ndarray:
    """``volume`` sampled at ``voxel_map`` (4x4: output voxel -> input voxel), 0 outside."""
    return ndi.affine_transform(np.asarray(volume, dtype=np.float32), voxel_map[:3, :3], voxel_map[:3, 3],
                                output_shape=tuple(shape), order=order, mode="constant", cval=0.0, prefilter=False)


def like(reference: nib.Nifti1Image | None, data: np.ndarray, affine: np.ndarray, dtype) -> nib.Nifti1Image:
    """A NIfTI of ``data`` stored as ``dtype`` (float data into int16 is scaled by nibabel); the
    reference's sform/qform codes kept when given (the original series), else both 'mni' (4)."""
    image = nib.Nifti1Image(data, affine)
    image.set_data_dtype(dtype)
    if reference is not None:
        image.set_sform(affine, code=int(reference.header["sform_code"]) or 1)
        image.set_qform(affine, code=int(reference.header["qform_code"]) or 1)
    else:
        image.set_sform(affine, code=4)
        image.set_qform(affine, code=4)
    image.header.set_xyzt_units("mm", "sec")
    return image


def save_nifti(image: nib.Nifti1Image, target: Path) -> Path:
    """Written to a temporary name in the target's folder, then renamed (gzip when .nii.gz)."""
    with atomic_path(target, suffix=".nii.gz" if target.name.endswith(".nii.gz") else ".nii") as tmp:
        nib.save(image, str(tmp))
    return target
