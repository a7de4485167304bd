"""How a study's QC is measured: which MRIQC release's metric definitions, and which engine
draws the T1w's bias field and tissue classes (a study file's `qc:` block, config/qc_block.py).

    qc:
      convention: mriqc24   # default; mriqc22 for continuity with data measured the old way
      anat_engine: builtin  # default; ants: N4 + Atropos (needs the `datman-flow[ants]` extra)
      normalisation: affine # default; syn: the T1w's MNI152 derivatives by ANTs SyN (the same extra)

The convention is recorded in every `_qc.json`'s `provenance` and in the store's
`metric_convention` column; a site's outlier check compares T1w metrics only with history
measured under the same convention (docs/metrics_anat.md lists what differs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Convention = Literal["mriqc24", "mriqc22"]
AnatEngine = Literal["builtin", "ants"]
Normalisation = Literal["affine", "syn"]
CONVENTIONS: tuple[str, ...] = get_args(Convention)
ANAT_ENGINES: tuple[str, ...] = get_args(AnatEngine)
NORMALISATIONS: tuple[str, ...] = get_args(Normalisation)
LEGACY_CONVENTION: Convention = "mriqc22"  # what store rows without a metric_convention were measured with


@dataclass(frozen=True)
class QcSettings:
    convention: Convention = "mriqc24"
    anat_engine: AnatEngine = "builtin"
    normalisation: Normalisation = "affine"  # the T1w's MNI152 derivatives: affine (built-in) or syn (ANTs)

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(f"unknown QC convention {self.convention!r} (one of {', '.join(CONVENTIONS)})")
        if self.anat_engine not in ANAT_ENGINES:
            raise ValueError(f"unknown anatomical QC engine {self.anat_engine!r} (one of {', '.join(ANAT_ENGINES)})")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {self.normalisation!r} (one of {', '.join(NORMALISATIONS)})")

    def provenance(self) -> dict[str, str]:
        return {"convention": self.convention, "anat_engine": self.anat_engine}


DEFAULT_QC = QcSettings()
