"""One entry point for every kind of series: which metrics, which picture, the MRIQC-format JSON."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from datman_flow.atomic import write_text_atomic
from datman_flow.qc.result import QCKind, QCResult

KEY_METRICS: dict[str, tuple[str, ...]] = {
    "anat": ("snr_total", "cnr", "cjv", "efc", "fber", "wm2max", "fwhm_avg", "icvs_csf", "icvs_gm", "icvs_wm"),
    "fmri": ("tsnr", "fd_mean", "fd_perc", "dvars_std", "gsr_x", "gsr_y", "aor", "aqi", "dummy_trs"),
    "dwi": ("snr_b0", "n_b0", "n_directions", "dropout_slices", "spikes", "fd_mean"),
}


def software_version() -> str:
    try:
        return f"datman-flow {version('datman-flow')}"
    except PackageNotFoundError:
        return "datman-flow (not installed)"


def companion(nifti: Path, suffix: str) -> Path:
    """`x.nii.gz` -> `x<suffix>` (e.g. '.bval', '_qc.json')."""
    name = nifti.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0]
    return nifti.with_name(stem + suffix)


@dataclass(frozen=True, eq=False)
class Measured:
    """One series' metrics plus what its picture reuses instead of recomputing: for BOLD the
    :class:`~datman_flow.qc.fmri.FmriAnalysis` (maps, brain mask and brain series, no 4D
    array), for a T1w the brain mask, otherwise None. Drop it once the picture is drawn."""

    result: QCResult
    reuse: object | None = None


def analyse(kind: QCKind, nifti: Path) -> Measured:
    """The metrics of one series (``seconds``: their wall time) and what :func:`picture` reuses."""
    started = time.perf_counter()
    reuse = None
    if kind == "anat":
        from datman_flow.qc.anat import anat_analysis

        analysis = anat_analysis(nifti)
        result, reuse = analysis.result, analysis.segmentation.brain
    elif kind == "fmri":
        from datman_flow.qc.fmri import fmri_analysis

        reuse = fmri_analysis(nifti)
        result = reuse.result
    elif kind == "dwi":
        from datman_flow.qc.dwi import dwi_metrics

        bval, bvec = companion(nifti, ".bval"), companion(nifti, ".bvec")
        if not bval.exists() or not bvec.exists():
            raise FileNotFoundError(f"diffusion series without {bval.name} / {bvec.name}")
        result = dwi_metrics(nifti, bval, bvec)
    else:
        raise ValueError(f"unknown QC type {kind!r}: anat, fmri or dwi")
    seconds = time.perf_counter() - started
    return Measured(QCResult(result.kind, result.metrics, result.extras, seconds=seconds), reuse)


def picture(kind: QCKind, nifti: Path, measured: Measured | QCResult, out_png: Path) -> Path:
    """The QC picture; from a bare QCResult, a BOLD picture redoes the resampling (not the
    realignment) and a T1w picture finds a quick brain mask of its own."""
    result = measured.result if isinstance(measured, Measured) else measured
    reuse = measured.reuse if isinstance(measured, Measured) else None
    if kind == "anat":
        from datman_flow.qc.anat_picture import anat_picture

        return anat_picture(nifti, reuse if isinstance(reuse, np.ndarray) else None, out_png, result.metrics)
    if kind == "fmri":
        from datman_flow.qc.fmri import FmriAnalysis, reanalyse
        from datman_flow.qc.fmri_picture import fmri_picture

        analysis = reuse if isinstance(reuse, FmriAnalysis) else reanalyse(nifti, result)
        return fmri_picture(analysis, out_png, name=companion(nifti, "").name)
    from datman_flow.qc.dwi_picture import dwi_picture

    return dwi_picture(nifti, result, out_png)


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mriqc_record(result: QCResult, nifti: Path) -> dict[str, object]:
    """MRIQC's IQM JSON: the metrics at the top level, `bids_meta` from the sidecar, `provenance`."""
    sidecar = companion(nifti, ".json")
    bids_meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    record: dict[str, object] = dict(result.metrics)
    record["bids_meta"] = bids_meta | {"modality": {"anat": "T1w", "fmri": "bold", "dwi": "dwi"}[result.kind]}
    record["provenance"] = {"md5sum": md5sum(nifti), "version": software_version(), "software": "datman-flow",
                            "settings": {"implementation": "numpy/scipy/nibabel (no FSL, ANTs or AFNI)"}}
    return record


def write_json_atomic(path: Path, data: object) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")
