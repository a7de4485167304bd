"""A world-to-world affine (RAS mm) as ITK's transform text format, which antsApplyTransforms,
antspyx (``ants.read_transform``) and nitransforms read.

ITK works in LPS: the RAS matrix ``M`` becomes ``F M F`` with ``F = diag(-1, -1, 1)``. ITK's
AffineTransform maps ``x`` to ``A (x - c) + c + t``; with the centre ``c`` at 0 its parameters are
the 9 entries of ``A`` row by row, then ``t``. As with ANTs' own output, the transform maps a point
of the fixed image (the template) to the moving image (the T1w): the one to pass to
antsApplyTransforms to bring the T1w into template space.
"""

from __future__ import annotations

import numpy as np

FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def itk_affine_text(matrix_ras: np.ndarray) -> str:
    lps = FLIP @ np.asarray(matrix_ras, dtype=np.float64) @ FLIP
    params = [*lps[:3, :3].ravel(), *lps[:3, 3]]
    return ("#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
            f"Parameters: {' '.join(repr(float(p)) for p in params)}\nFixedParameters: 0 0 0\n")


def read_itk_affine(text: str) -> np.ndarray:
    """The RAS 4x4 of an ITK affine text written by :func:`itk_affine_text` (or ANTs, any centre)."""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    params = np.array([float(v) for v in fields["Parameters"].split()])
    centre = np.array([float(v) for v in fields["FixedParameters"].split()])
    a, t = params[:9].reshape(3, 3), params[9:12]
    lps = np.eye(4)
    lps[:3, :3] = a
    lps[:3, 3] = t + centre - a @ centre
    return FLIP @ lps @ FLIP
