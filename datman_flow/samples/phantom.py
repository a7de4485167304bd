"""Synthetic head phantoms for the demo sessions (numpy only, deterministic from a seed).

The head is analytic: nested ellipsoids (scalp, skull, CSF, grey matter, white matter with a
folded surface, two ventricles) evaluated in patient coordinates (DICOM LPS, mm). Any slice
grid can therefore be sampled -- an axial T1 volume, a low-resolution EPI slab, or the three
planes of a localizer -- and the tissues line up between series as they would in one session.
Boundaries are soft (a logistic edge about a third of a voxel wide) which stands in for
partial volume. Images are returned as uint16 arrays indexed ``[i, j, k(, t)]`` where ``i``
runs along a row (the DICOM column index), ``j`` down the columns (the row index) and ``k``
across slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tissue order used throughout: scalp, skull, CSF, grey matter, white matter.
TISSUES = ("scalp", "skull", "csf", "gm", "wm")
T1W = np.array([0.90, 0.08, 0.22, 0.55, 0.85])  # WM > GM > CSF, bright fat in the scalp
EPI = np.array([0.25, 0.05, 1.00, 0.78, 0.62])  # T2*-weighted: CSF brightest
B0 = np.array([0.15, 0.03, 1.00, 0.70, 0.55])  # T2-weighted b=0
ADC = np.array([1.0e-3, 0.5e-3, 3.0e-3, 0.8e-3, 0.0])  # mm^2/s; WM is anisotropic, below
WM_EIGEN = (1.6e-3, 0.35e-3)  # axial and radial diffusivity of white matter
MAX_VALUE = 4095  # 12 bits stored, as on the scanner


@dataclass(frozen=True)
class Grid:
    """A stack of slices in patient space: ``shape`` = (columns, rows, slices)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]  # mm along i (in a row), j (down a column), k
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    row_cosines: tuple[float, float, float] = (1.0, 0.0, 0.0)  # direction of increasing i
    col_cosines: tuple[float, float, float] = (0.0, 1.0, 0.0)  # direction of increasing j

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cosines, self.col_cosines)

    def axes(self) -> np.ndarray:
        """3x3 matrix whose columns are the i, j, k unit vectors."""
        return np.stack([np.asarray(self.row_cosines), np.asarray(self.col_cosines), self.normal], axis=1)

    def origin(self) -> np.ndarray:
        """Patient position (mm) of voxel (0, 0, 0)."""
        half = (np.asarray(self.shape) - 1) / 2.0 * np.asarray(self.spacing)
        return np.asarray(self.center, dtype=float) - self.axes() @ half

    def slice_position(self, k: int) -> np.ndarray:
        return self.origin() + self.normal * self.spacing[2] * k

    def points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y, z (mm) of every voxel, each of ``shape``."""
        idx = [np.arange(n, dtype=np.float32) * d for n, d in zip(self.shape, self.spacing)]
        ii, jj, kk = idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :]
        ax, o = self.axes().astype(np.float32), self.origin().astype(np.float32)
        return tuple(o[r] + ax[r, 0] * ii + ax[r, 1] * jj + ax[r, 2] * kk for r in range(3))


@dataclass(frozen=True)
class HeadModel:
    """Shape of one participant's head; small variations come from the seed."""

    semi_axes: tuple[float, float, float]  # mm, left-right, anterior-posterior, inferior-superior
    center: tuple[float, float, float]
    fold_phase: tuple[float, float]
    bias: tuple[float, ...]  # coefficients of a smooth multiplicative field

    @classmethod
    def from_seed(cls, seed: int) -> HeadModel:
        rng = np.random.default_rng([seed, 11])
        scale = 1.0 + rng.uniform(-0.04, 0.04, 3)
        return cls(
            semi_axes=tuple(float(v) for v in np.array([64.0, 78.0, 66.0]) * scale),
            center=tuple(float(v) for v in rng.uniform(-3.0, 3.0, 3)),
            fold_phase=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 2)),
            bias=tuple(float(v) for v in rng.uniform(-0.12, 0.12, 5)),
        )


# Fractions of the mean head radius where each boundary sits, outermost first.
_BOUNDARIES = (1.00, 0.94, 0.88, 0.82, 0.70)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def tissue_fractions(model: HeadModel, grid: Grid) -> np.ndarray:
    """Fractions of each tissue in each voxel, shape ``(5,) + grid.shape``."""
    x, y, z = (p - c for p, c in zip(grid.points(), model.center))
    a, b, c = model.semi_axes
    mean_r = (a + b + c) / 3.0
    r = np.sqrt((x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2) * mean_r  # ~mm from the centre
    width = 0.3 * float(np.mean(grid.spacing))
    theta = np.arctan2(y, x)
    phi = np.arccos(np.clip(z / np.maximum(r, 1e-6) * mean_r / c, -1.0, 1.0))
    folds = 0.08 * np.sin(9 * theta + model.fold_phase[0]) * np.sin(6 * phi + model.fold_phase[1])
    inside = []
    for n, f in enumerate(_BOUNDARIES):
        radius = f * mean_r * (1.0 + folds) if n == len(_BOUNDARIES) - 1 else f * mean_r
        inside.append(_sigmoid((radius - r) / width))
    frac = np.stack([inside[n] - inside[n + 1] for n in range(4)] + [inside[4]]).astype(np.float32)
    ventricles = np.zeros_like(r)
    for side in (-1.0, 1.0):
        v = np.sqrt(((x - side * 9.0) / 5.0) ** 2 + ((y + 4.0) / 20.0) ** 2 + ((z - 8.0) / 9.0) ** 2)
        ventricles = np.maximum(ventricles, _sigmoid((1.0 - v) * 6.0 / width))
    moved = frac[4] * ventricles
    frac[4] -= moved
    frac[2] += moved
    return frac


def bias_field(model: HeadModel, grid: Grid) -> np.ndarray:
    x, y, z = (p / 100.0 for p in grid.points())
    c = model.bias
    return np.exp(c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * (z**2 - 0.3))


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    real = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.hypot(real, imag)


def _to_uint16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, MAX_VALUE).astype(np.uint16)


ORBIT_FAT = 1.5  # T1w signal of the fat around the eyes: the brightest tissue, as on a real T1w
TEXTURE = 0.08  # relative strength of the tissue texture (a smooth random field, about a voxel wide)


def orbits(model: HeadModel, grid: Grid) -> np.ndarray:
    """Fraction of orbital fat in each voxel: two ellipsoids in front of the brain, below it."""
    x, y, z = (p - c for p, c in zip(grid.points(), model.center))
    fat = np.zeros(grid.shape, dtype=np.float32)
    for side in (-1.0, 1.0):
        v = np.sqrt(((x - side * 30.0) / 12.0) ** 2 + ((y + 62.0) / 12.0) ** 2 + ((z + 18.0) / 10.0) ** 2)
        fat = np.maximum(fat, _sigmoid((1.0 - v) * 8.0))
    return fat


def texture(grid: Grid, seed: int) -> np.ndarray:
    """1 + a smooth random field of standard deviation TEXTURE: tissue is not uniform, and without
    it a synthetic image is smoother (MRIQC's FWHM) than any real one."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(np.random.default_rng([seed, 2]).standard_normal(grid.shape).astype(np.float32),
                                    0.5)
    return 1.0 + TEXTURE * field / max(float(field.std()), 1e-6)


def t1w_volume(grid: Grid, seed: int, *, scale: float = 1200.0, noise: float = 6.0) -> np.ndarray:
    """T1-weighted head: WM > GM > CSF, bright orbital fat, tissue texture, bias field, Rician
    noise; its MRIQC metrics fall inside the usual ranges of qc/kinds.py (SNR, CNR, CJV, WM2MAX,
    FWHM), so the demo's sessions are not flagged for being synthetic."""
    model = HeadModel.from_seed(seed)
    frac = tissue_fractions(model, grid)
    fat = orbits(model, grid)
    tissue = np.tensordot(T1W, frac, axes=1) * (1.0 - fat) + ORBIT_FAT * fat
    signal = tissue * texture(grid, seed) * bias_field(model, grid) * scale
    return _to_uint16(_rician(signal, noise, np.random.default_rng([seed, 1])))


def sphere_phantom_volume(grid: Grid, seed: int, *, radius: float = 65.0) -> np.ndarray:
    """A gel sphere in a thin plastic shell (an fBIRN-style phantom), T1-weighted."""
    model = HeadModel.from_seed(seed)
    x, y, z = grid.points()
    r = np.sqrt(x**2 + y**2 + z**2)
    width = 0.3 * float(np.mean(grid.spacing))
    gel = _sigmoid((radius - r) / width)
    shell = _sigmoid((radius + 3.0 - r) / width) - gel
    signal = (0.62 * gel + 0.05 * shell) * bias_field(model, grid) * 1200.0
    return _to_uint16(_rician(signal, 12.0, np.random.default_rng([seed, 2])))


def bold_series(
    grid: Grid,
    seed: int,
    *,
    n_volumes: int = 40,
    drift: float = 0.01,
    motion_mm: float = 0.0,
    scale: float = 900.0,
) -> np.ndarray:
    """EPI-contrast head over time: thermal and physiological noise, a slow linear drift, and
    (with ``motion_mm``) a tiny smooth sub-voxel translation. Shape ``grid.shape + (n,)``."""
    model = HeadModel.from_seed(seed)
    frac = tissue_fractions(model, grid)
    static = np.tensordot(EPI, frac, axes=1) * bias_field(model, grid) * scale
    rng = np.random.default_rng([seed, 3])
    t = np.arange(n_volumes) / max(n_volumes - 1, 1)
    out = np.empty(grid.shape + (n_volumes,))
    grads = np.gradient(static, *grid.spacing) if motion_mm else None
    axes = grid.axes()
    for n in range(n_volumes):
        image = static * (1.0 + drift * t[n] + rng.normal(0.0, 0.003))
        if grads is not None:
            shift = motion_mm * np.array([np.sin(2.1 * np.pi * t[n]), 0.6 * np.sin(3.3 * np.pi * t[n] + 1), 0.4 * t[n]])
            local = axes.T @ shift  # the displacement along i, j, k
            image = image - sum(g * s for g, s in zip(grads, local))
        out[..., n] = _rician(image, 0.012 * scale, rng)
    return _to_uint16(out)


def gradient_directions(n: int) -> np.ndarray:
    """``n`` unit vectors spread over a hemisphere (a Fibonacci spiral), shape (n, 3)."""
    k = np.arange(n) + 0.5
    z = 1.0 - k / n  # upper hemisphere
    theta = np.pi * (1.0 + 5.0**0.5) * k
    s = np.sqrt(1.0 - z**2)
    return np.stack([s * np.cos(theta), s * np.sin(theta), z], axis=1)


def _fibre_direction(model: HeadModel, grid: Grid) -> np.ndarray:
    """A commissural band (left-right) around the centre, projection fibres (up-down) above
    and below, and anterior-posterior association fibres towards the front and back."""
    x, y, z = (p - c for p, c in zip(grid.points(), model.center))
    callosal = _sigmoid((12.0 - np.abs(z)) / 3.0) * _sigmoid((35.0 - np.abs(x)) / 3.0)
    ap = _sigmoid((np.abs(y) - 35.0) / 4.0)
    f = np.stack([callosal, (1 - callosal) * ap, (1 - callosal) * (1 - ap)])
    return f / np.linalg.norm(f, axis=0)


def dwi_series(grid: Grid, seed: int, bvals: np.ndarray, bvecs: np.ndarray, *, scale: float = 1400.0) -> np.ndarray:
    """Diffusion-weighted volumes: b=0 bright, others attenuated by tissue ADC, and in white
    matter by the angle between the gradient and the local fibre direction."""
    model = HeadModel.from_seed(seed)
    frac = tissue_fractions(model, grid)
    s0 = frac * (B0 * scale)[:, None, None, None] * bias_field(model, grid)
    fibre = _fibre_direction(model, grid)
    rng = np.random.default_rng([seed, 4])
    out = np.empty(grid.shape + (len(bvals),))
    for n, (b, g) in enumerate(zip(bvals, bvecs)):
        cos2 = np.tensordot(np.asarray(g, dtype=float), fibre, axes=1) ** 2
        adc_wm = WM_EIGEN[1] + (WM_EIGEN[0] - WM_EIGEN[1]) * cos2
        atten = np.exp(-b * ADC)[:, None, None, None] * np.ones_like(s0)
        atten[4] = np.exp(-b * adc_wm)
        out[..., n] = _rician((s0 * atten).sum(axis=0), 0.015 * scale, rng)
    return _to_uint16(out)


def fa_map(grid: Grid, seed: int) -> np.ndarray:
    """Fractional anisotropy scaled 0..1000, as a scanner's derived FA series stores it."""
    model = HeadModel.from_seed(seed)
    frac = tissue_fractions(model, grid)
    l1, l2 = WM_EIGEN
    fa = np.array([0.10, 0.20, 0.05, 0.15, (l1 - l2) / np.sqrt(l1**2 + 2 * l2**2)])
    signal = np.tensordot(fa, frac, axes=1) * 1000.0
    rng = np.random.default_rng([seed, 5])
    return _to_uint16(np.abs(signal + rng.normal(0.0, 20.0, signal.shape)))
