"""A tiny Basic Text SR (no pixels): it stands in for the non-image objects (reports, protocol
documents) that scanners add to a session and that the pipeline must skip."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

from .dicom_headers import SessionHeader, clock, file_dataset

BASIC_TEXT_SR = UID("1.2.840.10008.5.1.4.1.1.88.11")


def write_text_sr(
    out_dir: Path, session: SessionHeader, number: int, description: str, text: str, *, start_offset_s: float
) -> Path:
    """A one-item Basic Text SR: a non-image object the pipeline must skip."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = file_dataset(session, BASIC_TEXT_SR, number)
    ds.SeriesTime = ds.ContentTime = clock(session.start_seconds + start_offset_s)
    ds.Modality = "SR"
    ds.SeriesDescription = description
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    ds.InstanceNumber = 1
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = session.uid("sr", number)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence([_code("18748-4", "LN", "Diagnostic imaging report")])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = DicomSequence([])
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = DicomSequence([_code("121071", "DCM", "Finding")])
    item.TextValue = text
    ds.ContentSequence = DicomSequence([item])
    path = out_dir / f"SR-{number:04d}-00001.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning
    return code
