"""The `qc_outliers:` block of a study file (study level, optionally overridden per site): how
a series' key QC metrics are compared with the site's own history (pipeline/outliers.py).

    qc_outliers:
      min_history: 8   # earlier sessions needed before comparing with the site's own history
      z: 3.5           # robust z beyond which a metric is an outlier

A key left out keeps the value of the level above (built-in defaults < study < site).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from datman_flow.config.models import QcOutliers


class QcOutliersYaml(BaseModel):
    """One `qc_outliers:` block as written (strict: unknown keys and quoted numbers refused)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    min_history: int | None = Field(None, ge=1)
    z: float | None = Field(None, gt=0, allow_inf_nan=False)


def effective_outliers(*layers: QcOutliersYaml | None) -> QcOutliers:
    """The built-in defaults with each layer's given keys applied, least specific first."""
    settings = QcOutliers()
    for layer in layers:
        if layer is not None:
            settings = settings.overlaid(layer.model_dump())
    return settings
