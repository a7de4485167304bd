"""Which file a picture request may be answered with: only a `<label>_..._qc.png` QC picture or a
`<label>_..._review-x.png` (-y, -z) picture to rate, in the session's own NIfTI folder
(DataLayout.nii), never a path from outside the folder."""

from __future__ import annotations

from pathlib import Path

from datman_flow.layout import DataLayout
from datman_flow.naming import InvalidLabel, parse_session_label
from datman_flow.safe_paths import UnsafePath, inside, is_safe_component

PICTURE_SUFFIX = "_qc.png"
PICTURE_SUFFIXES = (PICTURE_SUFFIX, "_review-x.png", "_review-y.png", "_review-z.png")


def picture_file(data_dir: Path, session: str, name: str) -> Path | None:
    """The real path of the picture `name` of `session`, or None when the request is refused:
    a label that is not a session label, a name that is not a plain `<label>_*_qc.png` (or
    `_review-[xyz].png`) file name, a file that does not exist, or a symlink leading out of the session's folder."""
    try:
        scan_id = parse_session_label(session)
    except InvalidLabel:
        return None
    if not is_safe_component(name) or not name.startswith(f"{scan_id.label}_") or not name.endswith(PICTURE_SUFFIXES):
        return None
    folder = DataLayout(data_dir).nii(scan_id)
    try:
        real = inside(folder / name, folder)
    except (UnsafePath, OSError):
        return None
    if not real.name.endswith(PICTURE_SUFFIXES) or not real.is_file():
        return None
    return real
