"""A first brain mask by a deformable surface, after FSL BET (Smith 2002), in numpy/scipy.

Why a surface and not thresholds: a head coil's shading (the centre of the brain darker than
the cortex, the scalp brighter than both) and 2 mm voxels break global intensity thresholds;
BET's surface stops where the intensity falls below a threshold taken *locally*, from the
maximum along the inward normal, and its smoothness keeps it out of narrow bridges to the
scalp and the neck.

The surface here is a tessellated sphere whose vertices move only along their own fixed
direction from the centre (a radius per direction): BET's tangential force, which keeps
vertices evenly spaced, is then not needed, and the mask is a lookup of radius by direction.
The brain's outer envelope, which is what BET finds too, is star-shaped from its centre.
Forces per iteration, as in BET: the curvature-dependent smoothing ``f2 * s_n`` (plus a light
constant pull, ``SMOOTHING * s_n``, which BET's tangential term provides in effect) and the
intensity term ``0.05 * f3 * l`` with ``f3 = 2 (I_min - t_l) / (I_max - t_2)`` and
``t_l = t_2 + b_t (I_max - t_2)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

SUBDIVISIONS = 4  # 2,562 vertices: about 4 mm apart on a 70 mm brain
ITERATIONS = 500
FRACTION = 0.5  # BET's -f: the local threshold between the robust minimum and the local max
R_MIN, R_MAX = 3.33, 10.0  # mm: BET's range of curvature radii for the smoothing term
SMOOTHING = 0.1  # added to f2: a light pull of every vertex towards its neighbours' mean
INWARD_MM = 20.0  # how far inwards the local minimum is looked for (the local max: half)
START_FRACTION = 0.5  # of the head's equivalent-sphere radius, as BET
TOP_TO_CENTRE_MM = 70.0  # from the top of the scalp to the middle of the brain, about
BRIGHT = 1.8  # intensities above BRIGHT x tm (the brain's median) are fat, not brain
FIT_VOXEL_MM = 2.0  # the surface is fitted on about 2 mm voxels
SHADING_MM = 30.0  # sigma of the local mean that flattens coil shading


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vertices (N, 3) and triangles (M, 3) of a subdivided icosahedron."""
    t = (1.0 + 5.0**0.5) / 2.0
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5),
             (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    v = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in verts]
    f = np.array(faces)
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def middle(a: int, b: int, cache: dict[tuple[int, int], int] = cache) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = v[a] + v[b]
                v.append(m / np.linalg.norm(m))
                cache[key] = len(v) - 1
            return cache[key]

        new = []
        for a, b, c in f:
            ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = np.array(new)
    return np.array(v), f


def _neighbours(faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour index table (N, 6) padded with the vertex itself, and the neighbour counts."""
    pairs = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    pairs = np.unique(np.sort(np.concatenate([pairs, pairs[:, ::-1]]), axis=1), axis=0)
    lists: list[list[int]] = [[] for _ in range(n)]
    for a, b in pairs:
        lists[a].append(b)
        lists[b].append(a)
    table = np.array([row + [i] * (6 - len(row)) for i, row in enumerate(lists)])
    return table, np.array([len(row) for row in lists])


def _normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Outward unit vertex normals: the area-weighted sum of the adjacent faces' normals."""
    a, b, c = points[faces[:, 0]], points[faces[:, 1]], points[faces[:, 2]]
    face_n = np.cross(b - a, c - a)
    normals = np.zeros_like(points)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def brain_centre(head: np.ndarray, zooms) -> np.ndarray:
    """A point near the middle of the brain (mm, voxel axes scaled): the head's centroid in a
    40 mm slab centred ``TOP_TO_CENTRE_MM`` below the top of the scalp (axis 2 superior), so
    that a neck or a face in the field of view does not pull it down or forward."""
    zs = np.nonzero(head.any(axis=(0, 1)))[0]
    top = float(zs[-1]) * zooms[2]
    z_mid = max(top - TOP_TO_CENTRE_MM, float(zs[0]) * zooms[2])
    lo = int(max(np.floor((z_mid - 20.0) / zooms[2]), zs[0]))
    hi = int(min(np.ceil((z_mid + 20.0) / zooms[2]), zs[-1])) + 1
    x, y, _ = np.nonzero(head[:, :, lo:hi])
    return np.array([x.mean() * zooms[0], y.mean() * zooms[1], z_mid])


class _Sampler:
    """Trilinear intensity at points in mm (0 outside the image)."""

    def __init__(self, image: np.ndarray, zooms) -> None:
        self.image, self.scale = image, 1.0 / np.asarray(zooms, dtype=np.float64)

    def __call__(self, points_mm: np.ndarray) -> np.ndarray:
        coords = (points_mm.reshape(-1, 3) * self.scale).T
        values = ndi.map_coordinates(self.image, coords, order=1, mode="constant", cval=0.0)
        return values.reshape(points_mm.shape[:-1])


@dataclass(frozen=True)
class Surface:
    """A fitted surface: radius (mm) along each of ``dirs`` from ``centre`` (mm from voxel 0)."""

    centre: np.ndarray
    radii: np.ndarray
    dirs: np.ndarray
    faces: np.ndarray

    def shifted(self, offset_mm) -> Surface:
        """The same surface in a grid whose voxel 0 lies ``offset_mm`` from this one's."""
        return replace(self, centre=self.centre - np.asarray(offset_mm, dtype=np.float64))

    def mask(self, shape, zooms) -> np.ndarray:
        """Voxels closer to the centre than the surface in their direction (radius interpolated
        from the three nearest vertex directions, on a 1-degree lookup table)."""
        zooms = np.asarray([float(z) for z in zooms[:3]])
        theta = np.radians(np.arange(0.5, 180.0, 1.0))
        phi = np.radians(np.arange(0.5, 360.0, 1.0))
        tt, pp = np.meshgrid(theta, phi, indexing="ij")
        grid = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], axis=-1).reshape(-1, 3)
        dist, nearest = cKDTree(self.dirs).query(grid, k=3)
        weight = 1.0 / np.maximum(dist, 1e-9)
        table = ((self.radii[nearest] * weight).sum(axis=1) / weight.sum(axis=1)).reshape(tt.shape)
        r_max = float(self.radii.max()) + 1.0
        lo = np.maximum(np.floor((self.centre - r_max) / zooms), 0).astype(int)
        hi = np.minimum(np.ceil((self.centre + r_max) / zooms) + 1, shape).astype(int)
        out = np.zeros(shape, dtype=bool)
        if np.any(hi <= lo):
            return out
        axes = [np.arange(a, b) * z - c for a, b, z, c in zip(lo, hi, zooms, self.centre)]
        x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
        r = np.sqrt(x * x + y * y + z * z)
        ti = np.clip(np.degrees(np.arccos(np.clip(z / np.maximum(r, 1e-9), -1.0, 1.0))).astype(int), 0, 179)
        pi = (np.degrees(np.arctan2(y, x)) % 360.0).astype(int) % 360
        out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = r <= table[ti, pi]
        return out


def _start(head: np.ndarray, zooms) -> Surface:
    """BET's start: a sphere of half the radius of the head's volume (here the head above the
    neck), centred in the brain."""
    dirs, faces = icosphere(SUBDIVISIONS)
    centre = brain_centre(head, zooms)
    upper = head[:, :, max(int((centre[2] - 70.0) / zooms[2]), 0):]
    head_radius = (3.0 * float(upper.sum()) * float(np.prod(zooms)) / (4.0 * np.pi)) ** (1.0 / 3.0)
    return Surface(centre, np.full(len(dirs), START_FRACTION * head_radius), dirs, faces)


def fit_surface(image: np.ndarray, zooms, head: np.ndarray, start: Surface | None = None,
                iterations: int = ITERATIONS) -> Surface:
    """BET's surface evolution (radial moves only) from ``start`` or from a sphere."""
    zooms = tuple(float(z) for z in zooms[:3])
    surface = start if start is not None else _start(head, zooms)
    centre, radii, dirs, faces = surface.centre, surface.radii.copy(), surface.dirs, surface.faces
    table, counts = _neighbours(faces, len(dirs))
    values = image[head]
    t2, t98 = np.percentile(image, [2.0, 98.0])
    t = t2 + 0.1 * (t98 - t2)
    # BET's tm: the median of the brain-ish voxels within the brain's radius around the centre.
    idx = np.array(np.nonzero(head)).T * np.asarray(zooms)
    inside = values[np.linalg.norm(idx - centre, axis=1) < 60.0]
    inside = inside[(inside > t) & (inside < t98)]
    tm = float(np.median(inside)) if inside.size else float(np.median(values))
    # Fat in the scalp and the marrow is brighter than any brain tissue in a T1w image: seen as
    # dark, so that where the skull between it and the cortex is too thin to see (2 mm voxels,
    # a shaded vertex) the surface stops at it instead of wrapping the scalp.
    sample = _Sampler(np.where(image > BRIGHT * tm, t2, image).astype(np.float32), zooms)
    inward = np.arange(0.0, INWARD_MM + 0.01, min(zooms))  # sample depths along -normal
    half = inward <= INWARD_MM / 2.0
    e_curv = 0.5 * (1.0 / R_MIN + 1.0 / R_MAX)
    f_curv = 6.0 / (1.0 / R_MIN - 1.0 / R_MAX)
    for _ in range(iterations):
        points = centre + radii[:, None] * dirs
        normals = _normals(points, faces)
        mean_nb = points[table].sum(axis=1) - points * (6 - counts)[:, None]
        s_n = np.einsum("ij,ij->i", mean_nb / counts[:, None] - points, normals)
        length = np.linalg.norm(points[table[:, 0]] - points, axis=1).mean()
        f2 = 0.5 * (1.0 + np.tanh(f_curv * (2.0 * np.abs(s_n) / length**2 - e_curv)))
        profile = sample(points[:, None, :] - inward[None, :, None] * normals[:, None, :])
        i_min = np.maximum(t2, np.minimum(tm, profile.min(axis=1)))
        i_max = np.minimum(tm, np.maximum(t, profile[:, half].max(axis=1)))
        t_local = t2 + FRACTION * (i_max - t2)
        f3 = 2.0 * (i_min - t_local) / np.maximum(i_max - t2, 1e-6)
        move = ((f2 + SMOOTHING) * s_n + 0.05 * f3 * length) * np.einsum("ij,ij->i", normals, dirs)
        radii = np.maximum(radii + move, 1.0)
    return replace(surface, radii=radii)


def flatten_shading(image: np.ndarray, head: np.ndarray, zooms) -> np.ndarray:
    """The image divided by its local mean over the head (a Gaussian of ``SHADING_MM`` sigma,
    normalised by the head's share of the kernel): a receive coil's shading, which makes
    the skull near the coil brighter than the brain's centre, is gone; contrast within a few
    centimetres is kept."""
    sigma = [SHADING_MM / float(z) for z in zooms[:3]]
    inside = head.astype(np.float32)
    local = ndi.gaussian_filter(image * inside, sigma) / np.maximum(ndi.gaussian_filter(inside, sigma), 1e-3)
    positive = local[head]
    floor = 0.05 * float(np.median(positive)) if positive.size else 1.0
    return np.where(head, image / np.maximum(local, floor), 0.0).astype(np.float32)


def surface_brain_mask(image: np.ndarray, zooms, head: np.ndarray, *, flatten: bool = True,
                       start: Surface | None = None) -> tuple[np.ndarray, Surface]:
    """The brain (with its CSF) inside the fitted surface, within the head, and the surface.
    The surface is fitted on a copy of about 2 mm voxels (with the shading flattened unless
    ``flatten`` is False, for an image already corrected), from ``start`` if given (then with
    fewer iterations: it only has to settle); the mask is on the full grid."""
    zooms = tuple(float(z) for z in zooms[:3])
    step = tuple(max(1, int(round(FIT_VOXEL_MM / z))) for z in zooms)
    coarse = tuple(slice(None, None, k) for k in step)
    coarse_zooms = tuple(z * k for z, k in zip(zooms, step))
    fit_image = np.ascontiguousarray(image[coarse], dtype=np.float32)
    if flatten:
        fit_image = flatten_shading(fit_image, head[coarse], coarse_zooms)
    iterations = ITERATIONS if start is None else ITERATIONS // 3
    surface = fit_surface(fit_image, coarse_zooms, head[coarse], start, iterations)
    return surface.mask(image.shape, zooms) & head, surface
