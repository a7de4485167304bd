"""Gold standards: the reviewed scanner parameters of one tag at one site, one JSON file each.

    configs/gold/<STUDY>/<SITE>/<TAG>.json
    {
      "parameters": {"EchoTime": 0.03, ...},
      "site": "CMH",
      "source": {"dcm2niix_version": "v1.0.20260724", "promoted_at": "2026-...",
                 "series": "05", "session": "SPN01_CMH_0001_01_01"},
      "study": "SPN01",
      "tag": "T1"
    }

Files are written atomically (temporary file in the same folder, then os.replace) as pretty
JSON with sorted keys and a final newline, so that a promotion reviews well as a diff.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from datman_flow.atomic import umask_mode
from datman_flow.drift.parameters import KNOWN_FIELDS, extract_parameters, normalise_parameters
from datman_flow.suggest import did_you_mean

GOLD_DIR = "gold"
TOP_KEYS = ("study", "site", "tag", "parameters", "source")
SOURCE_KEYS = ("session", "series", "promoted_at", "dcm2niix_version")


class GoldStandardError(Exception):
    """A gold-standard file that cannot be used; str() names the file (and line:column)."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, column: int | None = None):
        self.path = Path(path)
        self.message = message
        self.line = line
        self.column = column
        where = f"{self.path}:{line}:{column}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


@dataclass
class GoldStandard:
    study: str
    site: str
    tag: str
    parameters: dict[str, object]
    source: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {"study": self.study, "site": self.site, "tag": self.tag,
                "parameters": dict(self.parameters), "source": dict(self.source)}


def gold_path(config_dir: Path | str, study: str, site: str, tag: str) -> Path:
    return Path(config_dir) / GOLD_DIR / study / site / f"{tag}.json"


def load_gold(path: Path | str) -> GoldStandard:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoldStandardError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldStandardError(path, f"cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GoldStandardError(path, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    return _validate(path, data)


def _validate(path: Path, data: object) -> GoldStandard:
    def fail(message: str) -> GoldStandardError:
        return GoldStandardError(path, message)

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object with keys {', '.join(TOP_KEYS)}")
    missing = [key for key in TOP_KEYS if key not in data]
    if missing:
        raise fail(f"missing key{'s' if len(missing) > 1 else ''} {', '.join(repr(k) for k in missing)}")
    extra = sorted(set(data) - set(TOP_KEYS))
    if extra:
        raise fail(f"unknown key '{extra[0]}'{did_you_mean(extra[0], TOP_KEYS)}")
    for key in ("study", "site", "tag"):
        if not isinstance(data[key], str) or not data[key]:
            raise fail(f"'{key}' must be a non-empty string, got {json.dumps(data[key])}")
    where = (path.parent.parent.name, path.parent.name, path.stem)
    said = (data["study"], data["site"], data["tag"])
    if said != where:
        raise fail(f"says {'/'.join(said)} but lies at {'/'.join(where)}.json "
                   f"(a gold standard is configs/gold/<STUDY>/<SITE>/<TAG>.json)")
    source = data["source"]
    if not isinstance(source, dict):
        raise fail("'source' must be an object with keys " + ", ".join(SOURCE_KEYS))
    for key in SOURCE_KEYS:
        if key not in source:
            raise fail(f"missing key 'source.{key}'")
        if not isinstance(source[key], str):
            raise fail(f"'source.{key}' must be a string, got {json.dumps(source[key])}")
    parameters = data["parameters"]
    if not isinstance(parameters, dict):
        raise fail("'parameters' must be an object of scanner parameters")
    for name, value in parameters.items():
        if name not in KNOWN_FIELDS:
            raise fail(f"unknown parameter 'parameters.{name}'{did_you_mean(name, KNOWN_FIELDS)}")
        if not _valid_value(value):
            raise fail(f"'parameters.{name}' must be a number, a string or a list of them, "
                       f"got {json.dumps(value)}")
    return GoldStandard(study=data["study"], site=data["site"], tag=data["tag"],
                        parameters=normalise_parameters(parameters),
                        source={key: str(value) for key, value in source.items()})


def _valid_value(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float, str)):
        return True
    return (isinstance(value, list) and bool(value)
            and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value))


def find_gold(config_dir: Path | str, study: str, site: str, tag: str) -> GoldStandard | None:
    """The gold standard of a tag at a site; None when there is none (errors are raised)."""
    path = gold_path(config_dir, study, site, tag)
    return load_gold(path) if path.exists() else None


def write_gold(config_dir: Path | str, gold: GoldStandard) -> Path:
    path = gold_path(config_dir, gold.study, gold.site, gold.tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(gold.as_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), umask_mode())  # mkstemp's 0600 would hide the gold file from the lab
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def promote(config_dir: Path | str, study: str, site: str, tag: str, nifti: Path, dicom: Path | None,
            session: str, series: str, dcm2niix_version: str, *, promoted_at: str | None = None) -> Path:
    """Make one converted series the gold standard of its tag at its site."""
    parameters = extract_parameters(Path(nifti), dicom=None if dicom is None else Path(dicom))
    when = promoted_at or datetime.now(UTC).isoformat(timespec="seconds")
    source = {"session": session, "series": series, "promoted_at": when, "dcm2niix_version": dcm2niix_version}
    return write_gold(config_dir, GoldStandard(study, site, tag, parameters, source))


def list_gold(config_dir: Path | str) -> tuple[list[GoldStandard], list[GoldStandardError]]:
    """Every gold standard under configs/gold, and every file that could not be used."""
    root = Path(config_dir) / GOLD_DIR
    golds: list[GoldStandard] = []
    errors: list[GoldStandardError] = []
    if not root.is_dir():
        return golds, errors
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith("."):
            continue
        if len(path.relative_to(root).parts) != 3:
            errors.append(GoldStandardError(path, "not at gold/<STUDY>/<SITE>/<TAG>.json; ignored"))
            continue
        try:
            golds.append(load_gold(path))
        except GoldStandardError as exc:
            errors.append(exc)
    return golds, errors
