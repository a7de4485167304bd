"""The `qc:` block of a study file: how the study's QC is measured (qc/settings.py).

    qc:
      convention: mriqc24   # or mriqc22
      anat_engine: builtin  # or ants
      normalisation: affine # or syn (ANTs SyN for the T1w's MNI152 derivatives; the same extra)

Study level only: a study's T1w metrics must be comparable between its sites.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from datman_flow.qc.settings import AnatEngine, Convention, Normalisation, QcSettings


class QcYaml(BaseModel):
    """One `qc:` block as written (strict: unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    convention: Convention = "mriqc24"
    anat_engine: AnatEngine = "builtin"
    normalisation: Normalisation = "affine"

    def settings(self) -> QcSettings:
        return QcSettings(convention=self.convention, anat_engine=self.anat_engine, normalisation=self.normalisation)
