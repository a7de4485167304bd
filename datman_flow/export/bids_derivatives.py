"""The structural derivatives of an exported T1w, as BIDS-Derivatives files of the
`derivatives/datman-flow` dataset: what the QC step wrote beside the series (qc/derivatives.py:
brain mask, bias-corrected T1w, tissue maps, MNI152 space, the transform), listed by its
manifest `<stem>_derivatives.json`, renamed from the lab's name to the BIDS one and hard-linked;
each sidecar gets `Sources` (the raw T1w, a BIDS URI into the raw dataset).

A manifest comes from a file, so it is checked like any input: every listed file must be a
plain name in the manifest's folder and exist, and every suffix a BIDS-like file-name part.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from datman_flow.export.bids_plan import NIFTI, PlacedImage, PlannedFile
from datman_flow.qc.derivatives import MANIFEST, PIPELINE
from datman_flow.qc.measure import stem_of
from datman_flow.safe_paths import is_safe_component

FOLDER = f"derivatives/{PIPELINE}"
_SUFFIX = re.compile(r"(?:[a-zA-Z0-9]+-[a-zA-Z0-9]+_)*[a-zA-Z0-9]+(?:\.nii\.gz|\.txt|\.h5|\.mat|\.json|\.tsv)")
MORPHOMETRY_COLUMNS = ("tiv_ml", "gm_ml", "wm_ml", "csf_ml")


@dataclass(frozen=True)
class Derived:
    """One T1w's derivative files in the derivatives dataset, and its morphometry row."""

    files: tuple[PlannedFile, ...]
    morphometry: dict[str, object]
    problem: str = ""  # why its derivatives are not exported ('' when they are)


def manifest_path(folder: Path, source: Path) -> Path:
    return folder / f"{stem_of(source)}{MANIFEST}"


def read_manifest(path: Path, source: Path) -> dict:
    """The manifest of `source`'s derivatives, checked; ValueError says what is wrong."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError("no derivatives recorded (the QC step writes them for each measured T1w)") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path.name} unreadable: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise ValueError(f"{path.name}: not a derivatives manifest")
    if data.get("source") != source.name:
        raise ValueError(f"{path.name} describes {data.get('source')!r}, not {source.name}: the series was converted "
                         "again since; its QC will write them anew")
    for entry in data["files"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("suffix"), str) or \
                not _SUFFIX.fullmatch(entry["suffix"]) or not is_safe_component(entry.get("path")):
            raise ValueError(f"{path.name}: bad file entry {str(entry)[:120]!r}")
        if not (path.parent / entry["path"]).is_file():
            raise ValueError(f"{path.name}: {entry['path']} is missing")
    return data


def derived_files(image: PlacedImage, folder: Path) -> Derived:
    """The derivatives of one exported T1w (`folder`: where the QC step wrote them)."""
    try:
        manifest = read_manifest(manifest_path(folder, image.source), image.source)
    except ValueError as exc:
        return Derived((), {}, str(exc))
    raw_name = image.path.rsplit("/", 1)[-1]
    prefix = raw_name[: -len(image.suffix) - 1] if raw_name.endswith(f"_{image.suffix}") else raw_name
    where = f"{FOLDER}/{image.path.rsplit('/', 1)[0]}"
    source_uri = f"bids:raw:{image.path}{NIFTI}"
    files = []
    for entry in manifest["files"]:
        target = f"{where}/{prefix}_{entry['suffix']}"
        files.append(PlannedFile(target, source=folder / entry["path"]))
        sidecar = entry.get("sidecar")
        if isinstance(sidecar, dict) and entry["suffix"].endswith(NIFTI):
            text = json.dumps(sidecar | {"Sources": [source_uri]}, indent=2, sort_keys=True) + "\n"
            files.append(PlannedFile(target[: -len(NIFTI)] + ".json", text=text))
    morph = manifest.get("morphometry") if isinstance(manifest.get("morphometry"), dict) else {}
    normalisation = manifest.get("normalisation") if isinstance(manifest.get("normalisation"), dict) else {}
    row: dict[str, object] = {"source": f"{image.path}{NIFTI}"}
    row.update({k: _number(morph.get(k)) for k in MORPHOMETRY_COLUMNS})
    row.update(template=str(manifest.get("template", "")), normalisation=str(normalisation.get("method", "")),
               brain_dice=_number(normalisation.get("brain_dice")),
               normalisation_passed=normalisation.get("passed") if isinstance(normalisation.get("passed"), bool)
               else None)
    return Derived(tuple(files), row)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def description(version: str, study_name: str) -> dict[str, object]:
    """dataset_description.json of the derivatives dataset."""
    return {"Name": f"{study_name}: datman-flow structural derivatives", "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": PIPELINE, "Version": version,
                             "Description": "T1w brain mask, bias correction and tissue classes from the QC step "
                                            "(numpy/scipy, or ANTs N4 + Atropos); MNI152NLin2009aSym normalisation"}],
            "SourceDatasets": [{"URL": "bids:raw:"}], "DatasetLinks": {"raw": "../../"}}


DSEG_TSV = "index\tname\tabbreviation\n1\tCerebrospinal fluid\tCSF\n2\tGray matter\tGM\n3\tWhite matter\tWM\n"
