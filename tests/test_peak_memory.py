"""The peak memory the anatomical and ANTs tests assert is the child's own, not its parent's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from peak_memory import PEAK_MB


def test_a_child_of_a_large_process_reports_its_own_peak():
    ballast = np.ones(400 * 1024 * 1024 // 8)  # 400 MB touched in this (the parent) process
    script = f"import resource; print({PEAK_MB}, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    own, inherited = (float(x) for x in done.stdout.split())
    assert own < 100 < 400 < inherited  # ru_maxrss would have blamed the child for the parent's ballast
    del ballast
