"""A copy of conftest's `qc_session` data folder whose metric store records its measured series
(`qc_series` rows pointing at the copy's MRIQC-format JSON files), as the QC step leaves it; the
T1's JSON is written from the metrics the fixture gave it (the fixture skips its analysis)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from datman_flow.qc.measure import companion, mriqc_record, write_json_atomic
from datman_flow.store import MetricStore, QcSeriesRow, SessionRow

QC_LABEL = "SPN01_CMH_0001_01_01"  # conftest's qc_session


def measured_copy(qc_session, dest: Path) -> tuple[Path, list[QcSeriesRow]]:
    """(the copy's data folder, its qc_series rows: T1 anat, RST fmri, DTI60 dwi)."""
    source, measured = qc_session
    data = dest / "data"
    shutil.copytree(source, data, symlinks=True)
    rows = []
    for q in measured:
        nifti = data / Path(str(q.series.nifti_path)).relative_to(source)
        json_path = companion(nifti, "_qc.json")
        if not json_path.exists():
            assert q.result is not None
            write_json_atomic(json_path, mriqc_record(q.result, nifti))
        rows.append(QcSeriesRow(session=QC_LABEL, series_number=q.series.series_number, tag=str(q.series.tag),
                                qc_type=q.kind, status=q.status, json_path=str(json_path),
                                picture_path=str(data / Path(q.picture_path).relative_to(source)), seconds=1.0))
    store = MetricStore.under(data)
    store.replace(QcSeriesRow, QC_LABEL, rows)
    store.replace(SessionRow, QC_LABEL, [SessionRow(session=QC_LABEL, study="SPN01", site="CMH", subject="0001",
                                                    timepoint="01", repeat="01", status="ingested")])
    return data, rows


def md5_of(row: QcSeriesRow) -> str:
    return json.loads(Path(row.json_path).read_text())["provenance"]["md5sum"]
