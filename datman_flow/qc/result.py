"""What every QC function returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from datman_flow.qc.kinds import QCKind


@dataclass(frozen=True)
class QCResult:
    kind: QCKind
    metrics: dict[str, float]  # MRIQC's metric names -> value (floats; counts as floats too)
    extras: dict[str, object] = field(default_factory=dict)  # JSON-able: motion parameters, FD series, shells...
    seconds: float = 0.0  # wall time of the computation
    convention: str = ""  # the MRIQC release whose definitions the metrics follow (qc/settings.py)
    engine: str = ""  # T1w: what drew the bias field and tissue classes (builtin | ants); else ''
