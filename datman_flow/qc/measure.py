"""One entry point for every kind of series: its metrics, its picture and the MRIQC-format JSON,
dispatched through the QC-kind table of :mod:`datman_flow.qc.kinds`."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from datman_flow.atomic import write_text_atomic
from datman_flow.qc.kinds import QCKind, qc_kind, range_flags
from datman_flow.qc.result import QCResult
from datman_flow.qc.settings import DEFAULT_QC, QcSettings

# kind -> key metric names, derived from the registry; kept for datman_flow.defs.qc_assets.


def package_version() -> str | None:
    """datman-flow's installed version, None when it is not installed."""
    try:
        return version("datman-flow")
    except PackageNotFoundError:
        return None


def software_version() -> str:
    found = package_version()
    return f"datman-flow {found}" if found else "datman-flow (not installed)"


def stem_of(nifti: Path) -> str:
    """`x.nii.gz` (or `x.nii`) -> `x`."""
    name = nifti.name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0]


def companion(nifti: Path, suffix: str) -> Path:
    """`x.nii.gz` -> `x<suffix>` (e.g. '.bval', '_qc.json')."""
    return nifti.with_name(stem_of(nifti) + suffix)


@dataclass(frozen=True, eq=False)
class Measured:
    """One series' metrics plus what its picture reuses instead of recomputing: for BOLD the
    :class:`~datman_flow.qc.fmri.FmriAnalysis` (maps, brain mask and brain series, no 4D
    array), for a T1w the brain mask, otherwise None. Drop it once the picture is drawn."""

    result: QCResult
    reuse: object | None = None


def analyse(kind: QCKind, nifti: Path, settings: QcSettings = DEFAULT_QC) -> Measured:
    """The metrics of one series (``seconds``: their wall time, ``convention``: the MRIQC release
    whose definitions they follow) and what :func:`picture` reuses."""
    spec = qc_kind(kind)
    started = time.perf_counter()
    result, reuse = spec.analyse(nifti, settings)
    seconds = time.perf_counter() - started
    return Measured(QCResult(result.kind, result.metrics, result.extras, seconds=seconds,
                             convention=result.convention or settings.convention, engine=result.engine), reuse)


def picture(kind: QCKind, nifti: Path, measured: Measured | QCResult, out_png: Path) -> Path:
    """The QC picture; from a bare QCResult, a BOLD picture redoes the resampling (not the
    realignment) and a T1w picture finds a quick brain mask of its own."""
    result = measured.result if isinstance(measured, Measured) else measured
    reuse = measured.reuse if isinstance(measured, Measured) else None
    return qc_kind(kind).picture(nifti, result, reuse, out_png)


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mriqc_record(result: QCResult, nifti: Path) -> dict[str, object]:
    """MRIQC's IQM JSON: the metrics at the top level, `bids_meta` from the sidecar, `provenance`, and
    `datman_flags`: the metrics outside their typical range (what the picture draws in red)."""
    sidecar = companion(nifti, ".json")
    bids_meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    record: dict[str, object] = dict(result.metrics)
    record["bids_meta"] = bids_meta | {"modality": qc_kind(result.kind).modality}
    engine = "ANTs N4 + Atropos (antspyx)" if result.engine == "ants" else "numpy/scipy/nibabel (no FSL, ANTs or AFNI)"
    settings: dict[str, object] = {"implementation": engine, "convention": result.convention}
    if result.engine:
        settings["anat_engine"] = result.engine
    record["provenance"] = {"md5sum": md5sum(nifti), "version": software_version(), "software": "datman-flow",
                            "settings": settings}
    record["datman_flags"] = [f.as_json() for f in range_flags(result.kind, result.metrics, result.convention or None)]
    return record


def write_json_atomic(path: Path, data: object) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")
