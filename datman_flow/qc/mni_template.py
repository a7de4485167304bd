"""The MNI152 template the structural derivatives are normalised to: the ICBM 2009a nonlinear
symmetric T1 and GM/WM probability maps that nilearn ships inside its package (no download).

TemplateFlow calls this template ``MNI152NLin2009aSym``: every ``space-``/``to-`` entity uses that
name. The files are read with nibabel from nilearn's data folder, located without importing
nilearn (which would pull scikit-learn and pandas): ``importlib.util.find_spec("nilearn")``.

nilearn ships no CSF map and no brain mask; both are derived here (an approximation, documented
in docs/derivatives.md):

* brain: GM + WM smoothed (Gaussian, sigma 2 mm) above 0.2, holes filled: the brain with its
  ventricles and the CSF of the sulci and the outer rim that the smoothing reaches (1.97 l);
* CSF: inside that brain, 1 - GM - WM, clipped to 0-1.

:func:`load_template` reads and derives everything (about 1-2 s, 150 MB). It is an
``lru_cache(maxsize=1)`` on a function of no argument that reads files of an installed package:
the QC step measures each T1w through the QC-kind table, which has no way to pass a template from
one series to the next, and reading it again for every T1w of a session would cost a second or
two each. Its arrays are read-only, so nothing can change what the next caller gets.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

TEMPLATE_NAME = "MNI152NLin2009aSym"
FILE_PATTERN = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
BRAIN_SIGMA_MM = 2.0
BRAIN_THRESHOLD = 0.2


class TemplateMissing(RuntimeError):
    """nilearn (and with it the template files) is not installed."""


def template_folder() -> Path:
    """nilearn's data folder, found without importing nilearn."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise TemplateMissing(f"the {TEMPLATE_NAME} template comes with nilearn, which is not installed: "
                              "pip install nilearn")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    if not (folder / FILE_PATTERN.format("t1")).is_file():
        raise TemplateMissing(f"nilearn's data folder {folder} has no {FILE_PATTERN.format('t1')}")
    return folder


@dataclass(frozen=True, eq=False)
class Template:
    """The template on its 1 mm grid (197x233x189, RAS, ``affine`` voxel -> mm): the T1 (0-1),
    the brain mask and the CSF/GM/WM probabilities (3, X, Y, Z) float32."""

    t1: np.ndarray
    brain: np.ndarray
    tpms: np.ndarray
    affine: np.ndarray
    name: str = TEMPLATE_NAME

    @property
    def zooms(self) -> tuple[float, float, float]:
        return tuple(float(z) for z in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]


def template_brain(gm: np.ndarray, wm: np.ndarray, zooms) -> np.ndarray:
    """The derived brain mask (module docstring): GM + WM smoothed above a threshold, holes
    (the ventricles) filled, the largest component."""
    tissue = ndi.gaussian_filter(gm + wm, sigma=[BRAIN_SIGMA_MM / z for z in zooms])
    brain = ndi.binary_fill_holes(tissue > BRAIN_THRESHOLD)
    labels, count = ndi.label(brain)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        brain = labels == int(np.argmax(sizes))
    return brain


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """Read the template's T1, GM and WM and derive its brain mask and CSF map (read once per
    process; module docstring)."""
    folder = template_folder()
    images = {n: nib.load(folder / FILE_PATTERN.format(n)) for n in ("t1", "gm", "wm")}
    affine = images["t1"].affine.copy()
    data = {n: np.asarray(img.dataobj, dtype=np.float32) / np.float32(255.0) for n, img in images.items()}
    zooms = tuple(float(z) for z in images["t1"].header.get_zooms()[:3])
    brain = template_brain(data["gm"], data["wm"], zooms)
    csf = np.clip(1.0 - data["gm"] - data["wm"], 0.0, 1.0) * brain
    tpms = np.stack([csf.astype(np.float32), data["gm"], data["wm"]])
    for array in (data["t1"], brain, tpms, affine):
        array.setflags(write=False)
    return Template(t1=data["t1"], brain=brain, tpms=tpms, affine=affine)
