"""The `normalisation` asset check of a session: fails (warn) when a T1w's normalisation to the
MNI152 template failed (brain overlap under the threshold) or its derivatives could not be written."""

from __future__ import annotations

from collections.abc import Sequence

from datman_flow.pipeline.normalisation import CHECK_NAME
from datman_flow.pipeline.qc import SeriesQC
from datman_flow.pipeline.summary import CheckOutcome, markdown_table


def normalisation_outcome(measured: Sequence[SeriesQC]) -> CheckOutcome:
    derived = [q.derived for q in measured if q.derived is not None]
    failing = [d for d in derived if not d.passed]
    if failing:
        named = "; ".join(f"series {d.series_number} {d.tag}: {d.detail()}" for d in failing[:3])
        description = f"{len(failing)} of {len(derived)} T1w not normalised: {named}"
    elif derived:
        description = f"{len(derived)} T1w normalised to the template"
    else:
        description = "no T1w measured"
    table = markdown_table(["series", "tag", "method", "brain overlap", "result", "detail"],
                           [(d.series_number, d.tag, d.derivatives.method if d.derivatives else "",
                             f"{d.derivatives.brain_dice:.3f}" if d.derivatives else "",
                             "PASS" if d.passed else "FAIL", d.detail()) for d in derived])
    return CheckOutcome(CHECK_NAME, not failing, "warn", description, {"series": table, "failed": len(failing)})
