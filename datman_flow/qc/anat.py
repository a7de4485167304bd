"""MRIQC's anatomical image-quality metrics of a T1w NIfTI (numpy/scipy/nibabel only).

The pipeline mirrors MRIQC's (``mriqc/workflows/anatomical`` + ``StructuralQC``): reorient to
the closest canonical (RAS) orientation; rotation mask; head mask; brain mask, bias field and
CSF/GM/WM maps (``segment.py``); bias-corrected image scaled so that the WM median is 1000
(MRIQC's ``Harmonize``); the "hat" air mask above the nasion-cerebellum plane and Mortamet's
artifact mask in it (:func:`anat_inputs`); then the measures (:func:`iqms`), by the definitions
of the MRIQC release the study's convention names (MRIQC 24.0.2 by default, or 22.x).
``docs/metrics_anat.md`` lists each formula, the release and file it follows, and every
deviation from MRIQC.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from datman_flow.qc import common, noise_fit, weighted_stats
from datman_flow.qc.mni_register import Registration, register_affine
from datman_flow.qc.mni_template import Template, load_template
from datman_flow.qc.result import QCResult
from datman_flow.qc.segment import CLASSES, Segmentation, segment_t1w
from datman_flow.qc.settings import DEFAULT_QC, Convention, QcSettings

log = logging.getLogger(__name__)
PV_THRESHOLD = 0.85  # MRIQC's summary_stats: pvm > 0.85, then eroded
ARTIFACT_Z = 10.0  # Mortamet's z-score for artifactual air voxels (MRIQC's artifact_mask)


@dataclass(frozen=True, eq=False)
class AnatAnalysis:
    """Metrics plus what they came from (closest-canonical orientation), for the picture and the
    structural derivatives (qc/derivatives.py): the masks and maps, the harmonised image, the
    canonical affine, and the affine registration to the MNI152 template (None when it failed:
    ``result.extras["normalisation_error"]`` says why)."""

    result: QCResult
    segmentation: Segmentation
    zooms: tuple[float, float, float]
    corrected: np.ndarray | None = None
    affine: np.ndarray | None = None
    registration: Registration | None = None
    template: Template | None = None


def canonical_image(nifti: Path | nib.spatialimages.SpatialImage) -> nib.spatialimages.SpatialImage:
    img = nib.load(str(nifti)) if isinstance(nifti, (str, Path)) else nifti
    return nib.as_closest_canonical(img)


def load_t1w(nifti: Path | nib.spatialimages.SpatialImage) -> tuple[np.ndarray, tuple[float, float, float]]:
    """float32 data in the closest canonical orientation, NaN -> 0, and the voxel size (mm)."""
    img = canonical_image(nifti)
    data = img.get_fdata(dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D T1w image, got shape {data.shape}")
    np.nan_to_num(data, copy=False)
    return data, tuple(float(z) for z in img.header.get_zooms()[:3])


def rotation_mask(data: np.ndarray) -> np.ndarray:
    """MRIQC's RotationMask: the empty (<= 0) voxels, padded by one empty voxel all round,
    opened (18-connectivity), the two largest components kept; nothing under 500 voxels."""
    empty = np.pad(data <= 0, 1, constant_values=True)
    empty = ndi.binary_opening(empty, structure=ndi.generate_binary_structure(3, 2))
    labels, count = ndi.label(empty)
    if count > 2:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        empty = np.isin(labels, np.argsort(sizes)[-2:])
    empty = empty[1:-1, 1:-1, 1:-1]
    return empty if empty.sum() >= 500 else np.zeros(data.shape, dtype=bool)


def hat_mask(head: np.ndarray, brain: np.ndarray, rot: np.ndarray | None) -> np.ndarray:
    """Air above the nasion-to-cerebellum plane, outside the head and (unless ``rot`` is None)
    the rotation mask. MRIQC 22.x left the rotation mask out of its hat; 24.0.2's ``ArtifactMask``
    keeps it in (its hat is everything outside the head above the plane), so its air statistics
    and qi_2 count the padding's zeros as air.

    MRIQC maps that plane from the MNI template; without registration it is approximated by
    the plane (tilted along y only) through the lowest brain voxel in the posterior quarter
    (the cerebellum) and the lowest in the anterior quarter (the orbital frontal lobe)."""
    ys = np.nonzero(brain.any(axis=(0, 2)))[0]
    y0, y1 = int(ys[0]), int(ys[-1])
    quarter = max((y1 - y0) // 4, 1)
    lowest = np.where(brain.any(axis=0), np.arange(brain.shape[2])[None, :], brain.shape[2]).min(axis=1)
    z_post = float(lowest[y0 : y0 + quarter].min())
    z_ant = float(lowest[y1 - quarter + 1 : y1 + 1].min())
    y = np.arange(brain.shape[1], dtype=np.float32)
    plane = z_post + (z_ant - z_post) * (y - y0) / max(y1 - y0, 1)  # z of the plane at each y
    above = np.arange(brain.shape[2])[None, :] >= plane[:, None]
    air = ~head & above[None, :, :]
    return air if rot is None else air & ~rot


def artifact_mask(raw: np.ndarray, hat: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Mortamet's artifacts as MRIQC finds them (on the raw image): hat voxels more than 10
    robust z-scores (median, scaled MAD of the positive hat values) above the air, at least
    10 % of the largest hat-to-head distance away from the head, opened (6-connectivity)."""
    values = raw[hat]
    values = values[values > 0]
    if values.size < 100:
        return np.zeros(raw.shape, dtype=bool)
    spread = common.mad(values)
    if spread <= 0:
        return np.zeros(raw.shape, dtype=bool)
    zscore = (raw - np.median(values)) / spread
    # Distance to the head on a 2x coarser grid (a full-resolution EDT costs seconds).
    coarse = ndi.distance_transform_edt(~head[::2, ::2, ::2])
    dist = np.repeat(np.repeat(np.repeat(coarse, 2, 0), 2, 1), 2, 2)[: raw.shape[0], : raw.shape[1], : raw.shape[2]]
    far = dist >= 0.10 * max(float(dist[hat].max()), 1e-6)  # MRIQC: max over the air above the plane
    art = hat & (raw > 0) & (zscore > ARTIFACT_Z) & far
    art = ndi.binary_opening(art, structure=ndi.generate_binary_structure(3, 1))
    return art & hat


def intensity_clip(raw: np.ndarray) -> np.ndarray:
    """MRIQC's pre-N4 ``IntensityClip(p_min=10, p_max=99.9)``: clip to the 10th and 99.9th
    percentiles of the positive values of a median-filtered copy, then shift to start at 0.
    (The median filter runs on a 2x subsampled grid with a 3-voxel cube instead of a radius-3
    ball at full resolution: the same job, removing spikes, in 0.4 s instead of 15 s; MRIQC's
    rescaling to 0-255 integers is left out, the later WM-median scaling makes it moot.)"""
    denoised = ndi.median_filter(raw[::2, ::2, ::2], size=3)
    positive = denoised[denoised > 0]
    if positive.size == 0:
        return raw.copy()
    lo, hi = np.percentile(positive, [10.0, 99.9])
    lo = max(float(lo), 0.0)
    out = np.clip(raw, lo, max(float(hi), lo))
    out -= np.float32(lo)
    return out


def _erode_if(mask: np.ndarray, erode: bool) -> np.ndarray:
    if not erode:
        return mask
    return ndi.binary_erosion(mask, structure=ndi.generate_binary_structure(3, 2))


def rpve(pvm: np.ndarray) -> float:
    """Residual partial-volume error of one map, as MRIQC's docstring defines it: over the
    voxels with 0 < p, p within [P2, P98] of the non-zero values, sum p where p > 0.5 and 1 - p
    where p <= 0.5, divided by the count of non-zero voxels. (MRIQC's code also adds 1 for
    every zero voxel of the whole field of view; see docs/metrics_anat.md.)"""
    p = np.clip(pvm[pvm > 0], 0.0, 1.0)
    if p.size == 0:
        return 0.0
    lo, hi = np.percentile(p, [2.0, 98.0])
    kept = p[(p >= lo) & (p <= hi)]
    return float((kept[kept > 0.5].sum() + (1.0 - kept[kept <= 0.5]).sum()) / p.size)


def segment(raw: np.ndarray, zooms, head: np.ndarray, engine: str) -> Segmentation:
    """Head, brain, bias field and tissue maps by the study's engine: the built-in one, or ANTs'
    N4 + Atropos (qc/ants_engine.py, the optional `datman-flow[ants]` extra) in the same masks."""
    if engine == "ants":
        from datman_flow.qc.ants_engine import segment_t1w_ants  # the optional extra, imported on use

        return segment_t1w_ants(raw, zooms, head=head)
    return segment_t1w(raw, zooms, head=head)


def harmonised(raw: np.ndarray, seg: Segmentation) -> np.ndarray:
    """The image every intensity metric reads: clipped (MRIQC's pre-N4 ``IntensityClip``),
    divided by the bias field, scaled so that the median of the eroded WM (pvm >= 0.9) is 1000
    (MRIQC's ``Harmonize``, the same in 22.x and 24.0.2)."""
    corrected = intensity_clip(raw)
    corrected /= seg.bias  # MRIQC's N4 runs on the clipped image
    wm_core = _erode_if(seg.pvms[2] >= 0.9, True)
    if wm_core.sum() < 10:
        wm_core = seg.pvms[2] >= 0.9
    corrected *= np.float32(1000.0 / max(float(np.median(corrected[wm_core])), 1e-6))
    return corrected


@dataclass(frozen=True, eq=False)
class AnatInputs:
    """What the metrics are computed from (closest-canonical orientation): the raw image, its
    voxel size, the rotation and head masks, the segmentation, the hat (the air above the
    nasion-cerebellum plane, as the convention draws it) and Mortamet's artifacts in it."""

    raw: np.ndarray
    zooms: tuple[float, float, float]
    rot: np.ndarray
    head: np.ndarray
    seg: Segmentation
    hat: np.ndarray
    art: np.ndarray


def anat_inputs(nifti: Path | nib.spatialimages.SpatialImage, settings: QcSettings = DEFAULT_QC) -> AnatInputs:
    """Load a T1w image and draw every mask and map its metrics need."""
    raw, zooms = load_t1w(nifti)
    np.clip(raw, 0.0, None, out=raw)
    if not np.any(raw > 1e-5):
        raise ValueError("the T1w image is empty")
    rot = rotation_mask(raw)
    head = common.head_mask(raw, zooms) & ~rot
    if head.sum() < 100:
        raise ValueError("fewer than 100 voxels in the head mask")
    seg = segment(raw, zooms, head, settings.anat_engine)
    air = hat_mask(head, seg.brain, None)
    art = artifact_mask(raw, air & ~rot, head)  # Mortamet's, in 22.x's hat, under both conventions (docs)
    hat = air if settings.convention == "mriqc24" else air & ~rot  # 24.0.2's hat keeps the rotation mask's voxels
    return AnatInputs(raw, zooms, rot, head, seg, hat, art)


def _summary(corrected: np.ndarray, seg: Segmentation, air: np.ndarray, zooms, convention: Convention):
    """MRIQC 24: statistics weighted by the partial-volume maps, the air a binary mask, nothing
    eroded (weighted_stats.py). MRIQC 22.x: the maps thresholded at 0.85, every mask eroded
    (18-connectivity) when all voxels are under 1.9 mm."""
    if convention == "mriqc24":
        maps = {"bg": air} | {c: seg.pvms[k] for k, c in enumerate(CLASSES)}
        return weighted_stats.summary_stats(corrected, maps)
    erode = all(z < 1.9 for z in zooms)
    masks = {"bg": _erode_if(air, erode)}
    masks.update({c: _erode_if(seg.pvms[k] > PV_THRESHOLD, erode) for k, c in enumerate(CLASSES)})
    return common.summary_stats(corrected, masks)


def iqms(inputs: AnatInputs, convention: Convention, corrected: np.ndarray | None = None) -> dict[str, float]:
    """Every anatomical metric of ``inputs`` under an MRIQC convention (docs/metrics_anat.md) but
    the template overlaps (:func:`tpm_overlaps`); ``corrected``: :func:`harmonised`, when known."""
    raw, seg, zooms, hat, art = inputs.raw, inputs.seg, inputs.zooms, inputs.hat, inputs.art
    corrected = harmonised(raw, seg) if corrected is None else corrected
    s = _summary(corrected, seg, hat & ~art, zooms, convention)
    m: dict[str, float] = {}
    for c in CLASSES:
        m[f"snr_{c}"] = common.snr(s[f"summary_{c}_median"], s[f"summary_{c}_stdv"], s[f"summary_{c}_n"])
        m[f"snrd_{c}"] = common.snr_dietrich(s[f"summary_{c}_median"], s["summary_bg_mad"], s["summary_bg_stdv"])
    m["snr_total"] = float(np.mean([m[f"snr_{c}"] for c in CLASSES]))
    m["snrd_total"] = float(np.mean([m[f"snrd_{c}"] for c in CLASSES]))
    contrast = abs(s["summary_wm_median"] - s["summary_gm_median"])
    noise = np.sqrt(s["summary_bg_stdv"] ** 2 + s["summary_wm_stdv"] ** 2 + s["summary_gm_stdv"] ** 2)
    m["cnr"] = float(contrast / noise) if noise > 0 else float("nan")
    m["cjv"] = float((s["summary_wm_mad"] + s["summary_gm_mad"]) / contrast) if contrast > 0 else float("nan")
    m["efc"] = common.as_reported(common.efc(corrected, inputs.rot), convention)
    m["fber"] = common.as_reported(common.fber(corrected, seg.head, inputs.rot), convention)
    m["wm2max"] = float(s["summary_wm_median"] / np.percentile(corrected, 99.95))
    m["qi_1"] = float(art.sum() / hat.sum()) if hat.any() else -1.0
    m["qi_2"] = noise_fit.qi2(raw, hat, convention)
    fx, fy, fz, _ = common.fwhm(raw, seg.brain, zooms)
    vox = [f / z if f > 0 else -1.0 for f, z in zip((fx, fy, fz), zooms)]  # MRIQC: voxel units
    m.update(fwhm_x=vox[0], fwhm_y=vox[1], fwhm_z=vox[2], fwhm_avg=float(np.mean([v for v in vox if v > 0] or [-1.0])))
    totals = seg.pvms.sum(axis=(1, 2, 3), dtype=np.float64)
    for k, c in enumerate(CLASSES):
        m[f"icvs_{c}"] = float(totals[k] / totals.sum())
        m[f"rpve_{c}"] = rpve(seg.pvms[k])
    bias = seg.bias[seg.labels > 0]
    p5, p50, p95 = np.percentile(bias, [5.0, 50.0, 95.0])
    m.update(inu_range=float(abs(p95 - p5)), inu_med=float(p50))
    m.update(s)
    m.update({f"size_{a}": float(n) for a, n in zip("xyz", raw.shape)})
    m.update({f"spacing_{a}": z for a, z in zip("xyz", zooms)})
    return m


def fuzzy_jaccard(maps: np.ndarray, references: np.ndarray) -> list[float]:
    """MRIQC's ``fuzzy_jaccard``: per map, sum(min) / sum(max) of the two probability maps."""
    out = []
    for tpm, ref in zip(maps, references):
        num = np.minimum(tpm, ref).sum(dtype=np.float64)
        den = np.maximum(tpm, ref).sum(dtype=np.float64)
        out.append(float(num / den) if den > 0 else 0.0)
    return out


def tpm_overlaps(seg: Segmentation, affine: np.ndarray, registration: Registration, template: Template) -> dict:
    """MRIQC's ``tpm_overlap_{csf,gm,wm}``: the template's CSF/GM/WM maps brought into the subject's
    grid (the inverse of the affine, trilinear) against the subject's partial-volume maps, by
    :func:`fuzzy_jaccard`. Computed in the box holding both (outside it both are 0)."""
    to_template = registration.inverse_voxel_map(affine, template.affine)
    spans = [np.nonzero(template.tpms.any(axis=0).any(axis=tuple(a for a in range(3) if a != axis)))[0]
             for axis in range(3)]  # the template's maps are 0 outside this box
    corners = np.array(np.meshgrid(*[(int(i[0]) - 1, int(i[-1]) + 1) for i in spans], indexing="ij")).reshape(3, -1)
    back = np.linalg.inv(to_template)
    mapped = back[:3, :3] @ corners + back[:3, 3:4]  # that box's corners in subject voxels
    brain_idx = [np.nonzero(seg.brain.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in range(3)]
    lo = [max(0, min(int(np.floor(mapped[a].min())), int(i[0]))) for a, i in enumerate(brain_idx)]
    hi = [min(n, max(int(np.ceil(mapped[a].max())) + 1, int(i[-1]) + 1)) for a, (i, n) in
          enumerate(zip(brain_idx, seg.brain.shape))]
    shift = np.eye(4)
    shift[:3, 3] = lo
    vmap = to_template @ shift
    shape = tuple(h - low for low, h in zip(lo, hi))
    box = tuple(slice(low, h) for low, h in zip(lo, hi))
    ref = np.stack([ndi.affine_transform(template.tpms[k], vmap[:3, :3], vmap[:3, 3], output_shape=shape, order=1,
                                         mode="constant", cval=0.0, prefilter=False) for k in range(3)])
    overlaps = fuzzy_jaccard(seg.pvms[(slice(None),) + box], ref)
    return {f"tpm_overlap_{c}": v for c, v in zip(CLASSES, overlaps)}


def normalise(seg: Segmentation, corrected: np.ndarray, affine: np.ndarray, template: Template | None):
    """The affine registration to the MNI152 template and the template overlaps, or the reason
    they could not be had (the other metrics stand)."""
    try:
        template = load_template() if template is None else template
        registration = register_affine(corrected, seg.brain, affine, template)
        return registration, template, tpm_overlaps(seg, affine, registration, template), ""
    except Exception as exc:  # noqa: BLE001 - the metrics stand without the template's; the reason is kept
        log.warning("no registration to the MNI152 template: %s: %s", type(exc).__name__, exc)
        return None, template, {}, f"{type(exc).__name__}: {exc}"


def anat_analysis(nifti: Path | nib.spatialimages.SpatialImage, settings: QcSettings = DEFAULT_QC,
                  template: Template | None = None) -> AnatAnalysis:
    """All the anatomical metrics of a T1w image under ``settings`` (MRIQC convention, engine),
    with the masks they were computed in and the affine registration to the MNI152 template
    (``template``: already loaded, else read here)."""
    started = time.perf_counter()
    inputs = anat_inputs(nifti, settings)
    zooms, seg = inputs.zooms, inputs.seg
    corrected = harmonised(inputs.raw, seg)
    metrics = iqms(inputs, settings.convention, corrected)
    affine = canonical_image(nifti).affine
    registration, template, overlaps, why = normalise(seg, corrected, affine, template)
    metrics.update(overlaps)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    tissue = seg.pvms.sum(axis=(1, 2, 3), dtype=np.float64) * voxel_ml
    extras = {
        "brain_ml": round(float(seg.brain.sum()) * voxel_ml, 1),
        "tissue_ml": {c: round(float(v), 1) for c, v in zip(CLASSES, tissue)},
        "mixture_means": [round(v, 1) for v in seg.means],
        "air_voxels": int(inputs.hat.sum()),
        "rotation_mask_voxels": int(inputs.rot.sum()),
    }
    if registration is not None:
        extras["mni_affine"] = [[round(float(v), 6) for v in row] for row in registration.matrix]
        extras["mni_registration_seconds"] = round(registration.seconds, 2)
    if why:
        extras["normalisation_error"] = why
    seconds = time.perf_counter() - started
    log.info("anatomical metrics in %.1f s", seconds)
    result = QCResult("anat", metrics, extras, seconds, convention=settings.convention, engine=settings.anat_engine)
    return AnatAnalysis(result, seg, zooms, corrected, affine, registration, template)


def anat_metrics(nifti: Path | nib.spatialimages.SpatialImage, settings: QcSettings = DEFAULT_QC) -> QCResult:
    """MRIQC's anatomical IQMs of a T1w NIfTI (path or nibabel image) as a QCResult."""
    return anat_analysis(nifti, settings).result
