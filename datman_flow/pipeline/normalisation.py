"""The store rows of the T1w's structural derivatives (qc/derivatives.py): one `normalisation`
check row per measured T1w (passed when its brain overlaps the MNI152 template's brain mask by at
least the threshold; failed, with the reason, when no derivatives could be written) and one
`morphometry` row per series whose derivatives were written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from datman_flow.qc.derivatives import Derivatives
from datman_flow.qc.mni_template import TEMPLATE_NAME
from datman_flow.store import CheckRow, MorphometryRow

CHECK_NAME = "normalisation"


@dataclass(frozen=True)
class DerivedSeries:
    """One measured T1w: its derivatives, or why there are none."""

    series_number: str
    tag: str
    derivatives: Derivatives | None
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.derivatives is not None and self.derivatives.passed

    def detail(self) -> str:
        d = self.derivatives
        if d is None:
            return f"no derivatives: {self.error}"
        if d.passed:
            return f"brain overlap with {TEMPLATE_NAME} {d.brain_dice:.2f} >= {d.threshold:.2f} ({d.method})"
        return (f"brain overlap with {TEMPLATE_NAME} {d.brain_dice:.2f} < {d.threshold:.2f}: the normalisation "
                f"failed; see the picture ({d.method})")


def check_rows(session: str, derived: Sequence[DerivedSeries]) -> list[CheckRow]:
    return [CheckRow(session=session, check_name=CHECK_NAME, tag=d.tag, passed=d.passed, expected=None, found=None,
                     detail=d.detail(), series=(d.series_number,)) for d in derived]


def morphometry_rows(session: str, derived: Sequence[DerivedSeries], version: str) -> list[MorphometryRow]:
    when = datetime.now().replace(microsecond=0)
    return [MorphometryRow(session=session, series_number=d.series_number, tag=d.tag, tiv_ml=m.tiv_ml, gm_ml=m.gm_ml,
                           wm_ml=m.wm_ml, csf_ml=m.csf_ml, brain_ml=m.brain_ml, template=TEMPLATE_NAME,
                           normalisation=d.derivatives.method, brain_dice=round(d.derivatives.brain_dice, 4),
                           software_version=version, computed_at=when)
            for d in derived if d.derivatives is not None for m in [d.derivatives.morphometry]]
