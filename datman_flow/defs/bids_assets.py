"""A session's place in its study's BIDS release as an asset of its partition: materialized at
the end of each ingest and after each review change, it writes (or removes) the session's visit
in <data>/bids/<STUDY> (phantoms: <STUDY>_phantoms); the work is pipeline/bids.py's."""

import dagster as dg

from datman_flow.defs.metadata import metadata
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline.bids import export_metadata, export_study


@dg.asset(partitions_def=SESSIONS, group_name="session", deps=["session_review"], kinds={"bids"})
def bids_export(context: dg.AssetExecutionContext, datman: DatmanSettings) -> dg.MaterializeResult:
    """The session's visit (every repeat of the subject's timepoint) in the study's BIDS dataset,
    with its structural derivatives: written when it passed review (signed off, unless the study's
    bids: block says otherwise) and its content changed, removed when it may no longer be released;
    every series left out with the reason."""
    label = context.partition_key
    target = datman.session(label)
    done = export_study(datman.load_config(), datman.layout(), target.study.code, labels=[label])
    shown = export_metadata(done, label)
    context.log.info(f"{label}: BIDS visit {shown['visit']} in {shown['dataset']}, {shown['left_out']} left out")
    return dg.MaterializeResult(metadata=metadata(shown))
