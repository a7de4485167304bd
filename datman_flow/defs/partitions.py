"""One dynamic partition per session; the key is the session label."""

import warnings

import dagster as dg

SESSIONS = dg.DynamicPartitionsDefinition(name="sessions")


def session_check(name: str, asset: str, description: str, blocking: bool = False) -> dg.AssetCheckSpec:
    """A check of one session's asset, partitioned like it. (Partitioned checks are a preview
    feature of Dagster 1.13, pinned and tested through the instance API: declared here,
    knowingly, without a warning at every import.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec")
        return dg.AssetCheckSpec(name, asset=asset, partitions_def=SESSIONS, blocking=blocking,
                                 description=description)
