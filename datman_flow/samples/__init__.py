"""Synthetic sample MRI sessions for the demo: phantom images written as scanner-like DICOM.

Nothing here reads real scanner data; every file is generated from a seed, identically on
every run.
"""

from .sessions import SampleSession, sample_session_labels, sample_sessions, write_sample_sessions

__all__ = ["SampleSession", "sample_session_labels", "sample_sessions", "write_sample_sessions"]
