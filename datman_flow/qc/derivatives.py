"""The structural derivatives of a measured T1w, from the arrays its QC computed (no second
segmentation), as BIDS-Derivatives files in ``DataLayout.derivatives(scan_id)``, named
``<stem>_<suffix>`` (stem: the series' NIfTI name without ``.nii.gz``), listed by the manifest
``<stem>_derivatives.json`` written last (the contract with the BIDS export).

Native space (the original NIfTI's grid and affine): ``desc-brain_mask`` (uint8 0/1),
``desc-preproc_T1w`` (the QC's harmonised image: clipped, bias-corrected, WM median 1000; int16
scaled by nibabel), ``label-{CSF,GM,WM}_probseg`` (float32 0-1), ``dseg`` (uint8: 0 background, 1
CSF, 2 GM, 3 WM). Template space (``space-MNI152NLin2009aSym``, the template's 1 mm grid
197x233x189): the preprocessed T1, the brain mask (and, with SyN, the three probsegs), and the transform
``from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.txt`` (ITK affine text) or ``.h5`` (ANTs'
composite affine + SyN warp). docs/derivatives.md has the details and the figures.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from datman_flow.atomic import atomic_path, write_text_atomic
from datman_flow.qc.derivative_images import canonical_affine, like, resample, save_nifti, to_original
from datman_flow.qc.measure import stem_of
from datman_flow.qc.mni_register import Registration
from datman_flow.qc.mni_template import TEMPLATE_NAME, Template
from datman_flow.qc.segment import Segmentation
from datman_flow.qc.transform_files import itk_affine_text

log = logging.getLogger(__name__)
DICE_THRESHOLD = 0.80  # brain overlap with the template under this: the normalisation failed (docs/derivatives.md)
SPACE = f"space-{TEMPLATE_NAME}"
XFM = f"from-T1w_to-{TEMPLATE_NAME}_mode-image_xfm"
MANIFEST = "_derivatives.json"
LABELS = ("CSF", "GM", "WM")
PIPELINE = "datman-flow"


@dataclass(frozen=True, eq=False)
class InTemplate:
    """The subject in template space: the T1, the brain mask, the CSF/GM/WM maps on the template's
    grid; the transform's file ending and content; the registration's seconds."""

    method: str
    t1: np.ndarray
    brain: np.ndarray
    tpms: np.ndarray | None  # None: not written in template space
    transform_ending: str  # ".txt" | ".h5"
    transform: bytes
    seconds: float


@dataclass(frozen=True)
class Morphometry:
    tiv_ml: float
    gm_ml: float
    wm_ml: float
    csf_ml: float
    brain_ml: float


@dataclass(frozen=True)
class Derivatives:
    """What was written for one series: the manifest, the files, the normalisation's verdict."""

    manifest: Path
    files: tuple[Path, ...]
    morphometry: Morphometry
    method: str
    brain_dice: float
    threshold: float
    seconds: float  # the normalisation's
    write_seconds: float
    mni_t1: Path | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.brain_dice >= self.threshold


def morphometry(seg: Segmentation, zooms) -> Morphometry:
    """Volumes (ml, 0.1 ml): each partial-volume map's sum times the voxel volume (as the QC's
    ``tissue_ml``), TIV = CSF + GM + WM, and the brain mask's volume."""
    voxel_ml = float(np.prod(zooms)) / 1000.0
    csf, gm, wm = (round(float(v) * voxel_ml, 1) for v in seg.pvms.sum(axis=(1, 2, 3), dtype=np.float64))
    return Morphometry(round(csf + gm + wm, 1), gm, wm, csf, round(float(seg.brain.sum()) * voxel_ml, 1))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float(2.0 * np.logical_and(a, b).sum() / total) if total else 0.0


def brain_box(brain: np.ndarray, voxel_map: np.ndarray, shape) -> tuple[slice, ...]:
    """The box of the template's grid that the subject's brain maps into (with a voxel to spare for
    the trilinear interpolation), clipped to the grid."""
    spans = [np.nonzero(brain.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in range(3)]
    corners = np.array(np.meshgrid(*[(int(i[0]) - 1, int(i[-1]) + 1) for i in spans], indexing="ij")).reshape(3, -1)
    back = np.linalg.inv(voxel_map)  # subject voxel -> template voxel
    mapped = back[:3, :3] @ corners + back[:3, 3:4]
    return tuple(slice(max(0, int(np.floor(mapped[a].min())) - 1), min(int(n), int(np.ceil(mapped[a].max())) + 2))
                 for a, n in enumerate(shape))


def affine_in_template(corrected: np.ndarray, seg: Segmentation, affine: np.ndarray, registration: Registration,
                       template: Template, with_maps: bool = False) -> InTemplate:
    """The subject resampled onto the template's grid by the affine (trilinear): the T1 and the
    brain mask, and with ``with_maps`` the CSF/GM/WM maps (left out by default: 1.1 s of resampling
    and writing that the 10 s budget of the derivatives cannot spare; SyN writes them)."""
    started = time.perf_counter()
    vmap = registration.voxel_map(affine, template.affine)
    shape = template.brain.shape
    t1 = resample(corrected, vmap, shape)
    box = brain_box(seg.brain, vmap, shape)  # the mask and maps are 0 outside the brain: resampled in its box
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    sub_map, sub_shape = vmap @ shift, tuple(s.stop - s.start for s in box)
    brain = np.zeros(shape, dtype=bool)
    brain[box] = resample(seg.brain, sub_map, sub_shape) > 0.5
    tpms = None
    if with_maps:
        tpms = np.zeros((3,) + tuple(shape), dtype=np.float32)
        for k in range(3):
            tpms[k][box] = np.clip(resample(seg.pvms[k], sub_map, sub_shape), 0.0, 1.0)
    seconds = registration.seconds + time.perf_counter() - started
    return InTemplate("affine", t1, brain, tpms, ".txt", itk_affine_text(registration.matrix).encode(), seconds)


def sidecars(source: str, method: str) -> dict[str, dict[str, object]]:
    """suffix -> its BIDS-Derivatives sidecar (the export adds ``Sources``)."""
    space = {"SpatialReference": f"{TEMPLATE_NAME} as nilearn ships it (mni_icbm152_*_tal_nlin_sym_09a, 1 mm, "
                                 "197x233x189)"}
    how = "affine (12 parameters, datman-flow)" if method == "affine" else "ANTs SyN (affine + nonlinear)"
    preproc = {"SkullStripped": False, "Description": "bias-corrected (datman-flow's QC field), intensities "
               "clipped as MRIQC's pre-N4 step and scaled so that the white-matter median is 1000"}
    out: dict[str, dict[str, object]] = {
        "desc-brain_mask.nii.gz": {"Type": "Brain", "Description": "brain with the CSF up to the skull, as the QC "
                                   "draws it"},
        "desc-preproc_T1w.nii.gz": preproc,
        "dseg.nii.gz": {"Description": "hard tissue labels: 0 background, 1 CSF, 2 GM, 3 WM",
                        "Labels": {"0": "background", "1": "CSF", "2": "GM", "3": "WM"}},
        f"{SPACE}_desc-preproc_T1w.nii.gz": preproc | space | {"Description": preproc["Description"] +
                                                                  f"; normalised to {TEMPLATE_NAME}, {how}"},
        f"{SPACE}_desc-brain_mask.nii.gz": {"Type": "Brain", "Description": f"the brain mask normalised, {how}"}
        | space,
    }
    for label in LABELS:
        out[f"label-{label}_probseg.nii.gz"] = {"Description": f"{label} partial-volume fraction (0-1)"}
        out[f"{SPACE}_label-{label}_probseg.nii.gz"] = {"Description": f"{label} fraction normalised, {how}"} | space
    return out


def previous_files(manifest: Path) -> list[Path]:
    """The files an earlier manifest listed (in its folder, named for its series), to remove what a
    re-run no longer writes; nothing when it is unreadable."""
    try:
        listed = json.loads(manifest.read_text())["files"]
        return [manifest.parent / Path(str(f["path"])).name for f in listed]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_derivatives(nifti: Path, folder: Path, seg: Segmentation, corrected: np.ndarray, in_template: InTemplate,
                      template: Template, version: str, source_md5: str) -> Derivatives:
    """Write the derivatives of ``nifti`` (module docstring) into ``folder``: first the stale
    manifest removed, then each file atomically, then files an earlier run listed that this one
    does not write, then the manifest. ``seg`` and ``corrected`` are the QC's, in the closest
    canonical orientation of ``nifti``."""
    started = time.perf_counter()
    original = nib.load(str(nifti))
    affine = original.affine
    stem = stem_of(nifti)
    manifest = folder / f"{stem}{MANIFEST}"
    stale = previous_files(manifest)
    if manifest.exists():
        manifest.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    zooms = tuple(float(z) for z in np.linalg.norm(canonical_affine(affine, seg.brain.shape)[:3, :3], axis=0))

    def native(array: np.ndarray, dtype) -> nib.Nifti1Image:
        return like(original, to_original(array, affine), affine, dtype)

    def mni(array: np.ndarray, dtype) -> nib.Nifti1Image:
        return like(None, array, template.affine, dtype)

    images: dict[str, nib.Nifti1Image] = {
        "desc-brain_mask.nii.gz": native(seg.brain.astype(np.uint8), np.uint8),
        "desc-preproc_T1w.nii.gz": native(corrected, np.int16),
        **{f"label-{lab}_probseg.nii.gz": native(seg.pvms[k], np.float32) for k, lab in enumerate(LABELS)},
        "dseg.nii.gz": native(seg.labels, np.uint8),
        f"{SPACE}_desc-preproc_T1w.nii.gz": mni(in_template.t1, np.int16),
        f"{SPACE}_desc-brain_mask.nii.gz": mni(in_template.brain.astype(np.uint8), np.uint8),
    }
    if in_template.tpms is not None:
        images.update({f"{SPACE}_label-{lab}_probseg.nii.gz": mni(in_template.tpms[k], np.float32)
                       for k, lab in enumerate(LABELS)})
    notes = sidecars(nifti.name, in_template.method)
    entries, written = [], []
    for suffix, image in images.items():
        target = save_nifti(image, folder / f"{stem}_{suffix}")
        written.append(target)
        entries.append({"suffix": suffix, "path": target.name, "sidecar": notes[suffix]})
    xfm_suffix = XFM + in_template.transform_ending
    with atomic_path(folder / f"{stem}_{xfm_suffix}", suffix=in_template.transform_ending) as tmp:
        tmp.write_bytes(in_template.transform)
    written.append(folder / f"{stem}_{xfm_suffix}")
    entries.append({"suffix": xfm_suffix, "path": f"{stem}_{xfm_suffix}", "sidecar": {
        "Description": f"maps {TEMPLATE_NAME} points to T1w points (ITK/ANTs convention, LPS mm): with "
                       f"antsApplyTransforms it brings the T1w into {TEMPLATE_NAME}",
        "FromSpace": "T1w", "ToSpace": TEMPLATE_NAME}})
    for old in stale:
        if old not in written and old.is_file() and old.name.startswith(f"{stem}_"):
            os.unlink(old)
    volumes = morphometry(seg, zooms)
    brain_dice = dice(in_template.brain, template.brain)
    record = {
        "pipeline": PIPELINE, "version": version, "source": nifti.name, "source_md5": source_md5,
        "template": TEMPLATE_NAME,
        "normalisation": {"method": in_template.method, "brain_dice": round(brain_dice, 4),
                          "threshold": DICE_THRESHOLD, "passed": brain_dice >= DICE_THRESHOLD,
                          "seconds": round(in_template.seconds, 2)},
        "morphometry": {"tiv_ml": volumes.tiv_ml, "gm_ml": volumes.gm_ml, "wm_ml": volumes.wm_ml,
                        "csf_ml": volumes.csf_ml},
        "files": entries,
    }
    write_text_atomic(manifest, json.dumps(record, indent=2) + "\n")
    seconds = time.perf_counter() - started
    log.info("derivatives of %s written in %.1f s (brain overlap with %s %.3f)", nifti.name, seconds, TEMPLATE_NAME,
             brain_dice)
    return Derivatives(manifest, tuple(written), volumes, in_template.method, brain_dice, DICE_THRESHOLD,
                       in_template.seconds, seconds, folder / f"{stem}_{SPACE}_desc-preproc_T1w.nii.gz")


def derive(nifti: Path, analysis, folder: Path, method: str, version: str, source_md5: str) -> Derivatives:
    """The derivatives of one measured T1w (``analysis``: its AnatAnalysis) by ``method``
    (affine: the QC's own registration; syn: ANTs, qc/ants_engine.py, RuntimeError naming the
    extra when antspyx is missing). ValueError when the QC has no registration to reuse."""
    if analysis.corrected is None or analysis.affine is None or analysis.template is None:
        raise ValueError("the QC kept no bias-corrected image or template to derive from")
    if method == "syn":
        from datman_flow.qc.ants_engine import syn_in_template  # the optional extra, imported on use

        in_template = syn_in_template(analysis.corrected, analysis.segmentation, analysis.affine, analysis.template)
    elif analysis.registration is None:
        why = analysis.result.extras.get("normalisation_error", "no registration")
        raise ValueError(f"no registration to {TEMPLATE_NAME}: {why}")
    else:
        in_template = affine_in_template(analysis.corrected, analysis.segmentation, analysis.affine,
                                         analysis.registration, analysis.template)
    return write_derivatives(nifti, folder, analysis.segmentation, analysis.corrected, in_template,
                             analysis.template, version, source_md5)
