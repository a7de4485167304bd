"""QC trends over time: a study-wide view, unpartitioned, refreshed after session runs."""

import dagster as dg

from datman_flow.defs.metadata import log_all, metadata
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline.trends import trends_step


@dg.asset(group_name="study", kinds={"duckdb", "matplotlib"}, deps=["qc_metrics"])
def qc_trends(context: dg.AssetExecutionContext, datman: DatmanSettings) -> dg.MaterializeResult:
    """Per study, site and QC tag (phantoms apart): the key QC metrics over scan date with scanner
    software upgrades, outliers and MRIQC's typical ranges marked (figures in <data>/trends/, small
    copies inline), the latest values, and the latest key metrics as numbers for the Plots tab."""
    trends = trends_step(datman.load_config(), datman.layout())
    log_all(context.log, trends.warnings())
    return dg.MaterializeResult(metadata=metadata(trends.metadata()))
