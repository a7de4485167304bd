"""The T1w bias field and tissue classes by ANTs (``qc: {anat_engine: ants}``): N4 and Atropos
with the settings of MRIQC 24.0.2, inside the built-in engine's brain mask.

* brain and head: the built-in engine's (``segment.segment_t1w``), so that both engines
  measure the same brain, air and artefact masks;
* bias: N4 as MRIQC's ``post_n4`` (``mriqc/workflows/shared.py``) runs it: on the
  intensity-clipped image (``anat.intensity_clip``), over the whole field of view, weighted by
  the brain mask; shrink 4, 4 levels of 50 iterations, threshold 0, a 1x1x1 initial cubic
  B-spline mesh (ANTs' defaults, which MRIQC leaves in place). The field is divided by its
  geometric mean over the brain (N4's own scale is arbitrary) and faded to 1 over 20 mm
  outside the brain (``bias_field.extend_field``), as the built-in field is;
* tissues: Atropos as MRIQC's ``init_brain_tissue_segmentation``
  (``mriqc/workflows/anatomical/base.py``) runs it: 3 classes, Gaussian likelihood, MRF
  smoothing 0.01 on a 1x1x1 neighbourhood, ANTs' default convergence (5 iterations, 0.001),
  in the brain mask, on the N4-corrected image with the voxels above its 99.98th percentile
  clipped to it (MRIQC's ``_enhance`` replaces them by random draws from the white matter).
  MRIQC starts Atropos from template priors (weight 0.1) registered to the subject; there is
  no registration here, so it starts from k-means; the classes come out ordered by intensity
  (CSF < GM < WM). Atropos's constant seed instead of MRIQC's random one makes runs repeatable.

antspyx is the optional ``datman-flow[ants]`` extra: it is imported inside the functions only,
and its absence is a RuntimeError that the QC step records as the series' failure. Everything
runs in memory except Atropos's posterior images, which it can only write to files: they go to
a temporary directory removed afterwards. ITK takes its thread count from the environment
variable ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` (default: every core); results are identical
run to run for a given count.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from datman_flow.qc.anat import intensity_clip
from datman_flow.qc.bias_field import extend_field
from datman_flow.qc.segment import Segmentation, segment_t1w

log = logging.getLogger(__name__)
MISSING_ANTS = "qc: {anat_engine: ants} needs ANTs: pip install 'datman-flow[ants]' (antspyx)"
MISSING_SYN = "qc: {normalisation: syn} needs ANTs: pip install 'datman-flow[ants]' (antspyx)"
FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS (ITK's physical space)
N4_SHRINK = 4
N4_ITERATIONS = (50, 50, 50, 50)
N4_THRESHOLD = 0.0
N4_MESH = (1, 1, 1)  # initial B-spline mesh, doubled at each of the 4 levels
ATROPOS_CLASSES = 3
ATROPOS_MRF = "[0.01,1x1x1]"  # smoothing factor, neighbourhood radius (voxels)
ATROPOS_CONVERGENCE = "[5,0.001]"  # iterations, threshold: Atropos' default, left in place by MRIQC
ENHANCE_PERCENTILE = 99.98  # MRIQC's _enhance: voxels above it are not tissue signal
BOX_MARGIN = 2  # voxels around the brain kept for Atropos (its MRF reaches 1 voxel)


def import_ants(missing: str = MISSING_ANTS) -> ModuleType:
    """antspyx, or the RuntimeError (``missing``) that says how to install it."""
    try:
        import ants
    except ImportError as err:
        raise RuntimeError(missing) from err
    return ants


def _image(ants: ModuleType, array: np.ndarray, zooms, dtype=np.float32):
    return ants.from_numpy(np.ascontiguousarray(array, dtype=dtype), spacing=tuple(float(z) for z in zooms))


def n4_field(clipped: np.ndarray, brain: np.ndarray, zooms) -> np.ndarray:
    """N4's multiplicative field (clipped = corrected * field) over the whole image, fitted to
    the brain's voxels (weight image, no mask, as MRIQC's ``post_n4``), at N4's own scale."""
    ants = import_ants()
    field = ants.n4_bias_field_correction(
        _image(ants, clipped, zooms), mask=None, weight_mask=_image(ants, brain, zooms),
        shrink_factor=N4_SHRINK, convergence={"iters": list(N4_ITERATIONS), "tol": N4_THRESHOLD},
        spline_param=list(N4_MESH), rescale_intensities=False, return_bias_field=True,
    )
    out = field.numpy().astype(np.float32, copy=False)
    if not np.all(np.isfinite(out[brain])) or np.any(out[brain] <= 0):
        raise ValueError("N4 gave a non-positive or non-finite bias field in the brain")
    return out


def _box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = np.nonzero(mask)
    return tuple(slice(max(int(i.min()) - margin, 0), min(int(i.max()) + margin + 1, n))
                 for i, n in zip(idx, mask.shape))


def atropos_posteriors(image: np.ndarray, mask: np.ndarray, zooms) -> np.ndarray:
    """Atropos' CSF, GM, WM posteriors (3, ...) of ``image`` in ``mask`` (k-means start, MRIQC's
    MRF and convergence, constant seed), ordered by mean intensity, 0 outside the mask."""
    ants = import_ants()
    from ants.internal import get_lib_fn, get_pointer_string

    intensity, label_mask = _image(ants, image, zooms), _image(ants, mask, zooms, np.uint32)
    classified = intensity.clone("unsigned int")
    with tempfile.TemporaryDirectory(prefix="datman-atropos-") as tmp:
        pattern = str(Path(tmp) / "posterior%02d.nii")
        args = ["-d", "3", "-a", get_pointer_string(intensity), "-x", get_pointer_string(label_mask),
                "-i", f"KMeans[{ATROPOS_CLASSES}]", "-k", "Gaussian", "-m", ATROPOS_MRF, "-c", ATROPOS_CONVERGENCE,
                "-r", "0", "-o", f"[{get_pointer_string(classified)},{pattern}]"]
        status = get_lib_fn("Atropos")(args)
        if status != 0:
            raise RuntimeError(f"Atropos exited with status {status}")
        post = np.stack([ants.image_read(pattern % (k + 1)).numpy() for k in range(ATROPOS_CLASSES)])
    post = post.astype(np.float32, copy=False)
    post *= mask
    weights = post.reshape(ATROPOS_CLASSES, -1).sum(axis=1)
    means = (post.reshape(ATROPOS_CLASSES, -1) @ image.reshape(-1).astype(np.float64)) / np.maximum(weights, 1e-12)
    return post[np.argsort(means)]


def _class_stats(values: np.ndarray, post: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Posterior-weighted means and SDs of ``values`` (N,) under ``post`` (3, N)."""
    values = values.astype(np.float64)
    weights = np.maximum(post.sum(axis=1, dtype=np.float64), 1e-12)
    means = (post @ values) / weights
    sds = np.sqrt(np.maximum((post @ values**2) / weights - means**2, 0.0))
    return tuple(float(m) for m in means), tuple(float(s) for s in sds)


def segment_t1w_ants(data: np.ndarray, zooms, head: np.ndarray | None = None) -> Segmentation:
    """Head and brain of the built-in engine, N4's bias field and Atropos' CSF/GM/WM posteriors
    of a T1w volume (closest canonical orientation, nothing negative), as a Segmentation."""
    import_ants()  # fail before the built-in segmentation's seconds
    zooms = tuple(float(z) for z in zooms[:3])
    started = time.perf_counter()
    builtin = segment_t1w(data, zooms, head=head)
    head, brain = builtin.head, builtin.brain
    del builtin
    clipped = intensity_clip(np.asarray(data, dtype=np.float32))
    masked = time.perf_counter()
    field = n4_field(clipped, brain, zooms)
    n4_done = time.perf_counter()
    np.log(field, out=field)
    field -= np.float32(field[brain].mean())  # geometric mean 1 over the brain
    corrected = clipped / np.exp(field)  # MRIQC's out_corrected: N4's field over the whole image
    del clipped
    top = float(np.percentile(corrected[corrected > 0], ENHANCE_PERCENTILE))
    box = _box(brain, BOX_MARGIN)
    post = atropos_posteriors(np.minimum(corrected[box], np.float32(top)), brain[box], zooms)
    del corrected
    log.info("ANTs engine: brain mask %.1f s, N4 %.1f s, Atropos %.1f s", masked - started, n4_done - masked,
             time.perf_counter() - n4_done)
    bias = extend_field(field, tuple(slice(0, n) for n in brain.shape), brain, zooms)
    del field
    pvms = np.zeros((ATROPOS_CLASSES,) + brain.shape, dtype=np.float32)
    pvms[(slice(None),) + box] = post
    inside = brain[box]
    labels = np.zeros(brain.shape, dtype=np.uint8)
    labels[box][inside] = (np.argmax(post[:, inside], axis=0) + 1).astype(np.uint8)
    means, sigmas = _class_stats(np.asarray(data, dtype=np.float32)[box][inside] / bias[box][inside], post[:, inside])
    return Segmentation(head=head, brain=brain, pvms=pvms, labels=labels, bias=bias, means=means, sigmas=sigmas)


def _world_image(ants: ModuleType, array: np.ndarray, affine: np.ndarray):
    """An ANTs image of ``array`` placed by its NIfTI ``affine`` (RAS) in ITK's LPS space."""
    lps = FLIP @ np.asarray(affine, dtype=np.float64)
    zooms = np.linalg.norm(lps[:3, :3], axis=0)
    return ants.from_numpy(np.ascontiguousarray(array, dtype=np.float32), origin=tuple(float(v) for v in lps[:3, 3]),
                           spacing=tuple(float(z) for z in zooms), direction=lps[:3, :3] / zooms)


def syn_in_template(corrected: np.ndarray, seg: Segmentation, affine: np.ndarray, template):
    """The bias-corrected brain normalised to the template's brain by ANTs (``SyN``: ANTs' own
    rigid + affine + SyN stages, antspyx's defaults, Mattes mutual information), the T1, brain
    mask and CSF/GM/WM maps resampled through it (linear), and its composite transform (.h5:
    the affine and the warp, mapping template points to T1w points)."""
    ants = import_ants(MISSING_SYN)
    from datman_flow.qc.derivatives import InTemplate

    started = time.perf_counter()
    fixed = _world_image(ants, template.t1 * template.brain, template.affine)
    moving = _world_image(ants, np.where(seg.brain, corrected, 0.0), affine)
    with tempfile.TemporaryDirectory(prefix="datman-syn-") as tmp:
        found = ants.registration(fixed, moving, type_of_transform="SyN", write_composite_transform=True,
                                  outprefix=str(Path(tmp) / "t1w_to_template_"))
        composite = str(found["fwdtransforms"])
        if isinstance(found["fwdtransforms"], list):
            raise RuntimeError(f"ANTs wrote no composite transform: {found['fwdtransforms']}")

        def pull(array: np.ndarray) -> np.ndarray:
            return ants.apply_transforms(fixed, _world_image(ants, array, affine), [composite],
                                         interpolator="linear").numpy().astype(np.float32)

        t1 = pull(corrected)
        brain = pull(seg.brain.astype(np.float32)) > 0.5
        tpms = np.stack([np.clip(pull(seg.pvms[k]), 0.0, 1.0) for k in range(3)])
        transform = Path(composite).read_bytes()
    seconds = time.perf_counter() - started
    log.info("ANTs SyN to the template in %.1f s", seconds)
    return InTemplate("syn", t1, brain, tpms, ".h5", transform, seconds)
