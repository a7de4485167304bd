"""The XNAT emulator: a test double and demo server, not part of the XNAT client.

An XNAT-compatible HTTP server over a folder of DICOM sessions (`DATA/<project>/<session
label>/**`), used by the tests, the benchmarks, `datman-flow demo` and `datman-flow
xnat-emulator`. The client in `datman_flow.xnat` never imports it. See server.py for the URLs,
auth and faults it serves.
"""
from .server import XnatEmulator, run_emulator, serve

__all__ = ["XnatEmulator", "run_emulator", "serve"]
