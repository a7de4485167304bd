"""The metric store's tables: every column, its DuckDB type and meaning (README mirrors this)."""

from __future__ import annotations

# table -> ordered (column, type) pairs. Adding a column is safe: the views read the
# per-session Parquet files with union_by_name, so older files show NULL for it.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "sessions": (
        ("session", "VARCHAR"),
        ("study", "VARCHAR"),
        ("site", "VARCHAR"),
        ("subject", "VARCHAR"),
        ("timepoint", "VARCHAR"),
        ("repeat", "VARCHAR"),
        ("is_phantom", "BOOLEAN"),
        ("xnat_project", "VARCHAR"),
        ("xnat_id", "VARCHAR"),
        ("insert_date", "VARCHAR"),
        ("scan_date", "VARCHAR"),
        ("ingested_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("reason", "VARCHAR"),
    ),
    "series": (
        ("session", "VARCHAR"),
        ("scan_id", "VARCHAR"),
        ("series_number", "VARCHAR"),
        ("description", "VARCHAR"),
        ("tag", "VARCHAR"),
        ("untagged_reason", "VARCHAR"),
        ("n_files", "INTEGER"),
        ("n_frames", "INTEGER"),
        ("image_type", "VARCHAR"),
        ("series_uid", "VARCHAR"),
        ("sop_class_uid", "VARCHAR"),
        ("modality", "VARCHAR"),
        ("download_status", "VARCHAR"),
        ("download_message", "VARCHAR"),
        ("bad_files", "VARCHAR[]"),
        ("nifti_path", "VARCHAR"),
        ("outputs", "VARCHAR[]"),
        ("dicom_kept", "VARCHAR"),
        ("conversion_status", "VARCHAR"),
        ("conversion_message", "VARCHAR"),
        ("dcm2niix_version", "VARCHAR"),
    ),
    "check_results": (
        ("session", "VARCHAR"),
        ("check_name", "VARCHAR"),
        ("tag", "VARCHAR"),
        ("passed", "BOOLEAN"),
        ("expected", "INTEGER"),
        ("found", "INTEGER"),
        ("detail", "VARCHAR"),
        ("series", "VARCHAR[]"),
    ),
    "header_parameters": (  # the scanner parameters of each converted series (the drift history)
        ("session", "VARCHAR"),
        ("study", "VARCHAR"),
        ("site", "VARCHAR"),
        ("tag", "VARCHAR"),
        ("series_number", "VARCHAR"),
        ("parameters", "VARCHAR"),  # JSON object: parameter -> value
    ),
    "header_diffs": (
        ("session", "VARCHAR"),
        ("series_number", "VARCHAR"),
        ("tag", "VARCHAR"),
        ("field", "VARCHAR"),
        ("expected", "VARCHAR"),  # JSON value
        ("actual", "VARCHAR"),  # JSON value
        ("tolerance", "DOUBLE"),
        ("kind", "VARCHAR"),  # software_upgrade | changed | missing | unexpected
        ("gold_source", "VARCHAR"),  # the gold-standard file, or 'provisional: N sessions'
        ("provisional", "BOOLEAN"),
        ("severity", "VARCHAR"),  # warn | error, as configured
    ),
    "qc_metrics": (  # long form: one row per series and metric (MRIQC's names)
        ("session", "VARCHAR"),
        ("series_number", "VARCHAR"),
        ("tag", "VARCHAR"),
        ("metric", "VARCHAR"),
        ("value", "DOUBLE"),
        ("software_version", "VARCHAR"),
        ("computed_at", "TIMESTAMP"),
    ),
    "qc_series": (  # one row per series the QC step looked at: measured, or failed with the reason
        ("session", "VARCHAR"),
        ("series_number", "VARCHAR"),
        ("tag", "VARCHAR"),
        ("qc_type", "VARCHAR"),  # anat | fmri | dwi
        ("status", "VARCHAR"),  # measured | failed
        ("message", "VARCHAR"),
        ("json_path", "VARCHAR"),  # MRIQC-format record
        ("picture_path", "VARCHAR"),
        ("seconds", "DOUBLE"),
    ),
}


def columns(table: str) -> list[str]:
    return [name for name, _ in TABLES[table]]


def create_table_sql(table: str, name: str | None = None) -> str:
    cols = ", ".join(f'"{col}" {kind}' for col, kind in TABLES[table])
    return f'CREATE TABLE "{name or table}" ({cols})'
