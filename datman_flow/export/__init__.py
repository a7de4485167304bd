"""What leaves datman-flow for others' tools: the A2CPS derivative-QC kit's ratings tables
(ratings.py) and MRIQC Web-API records (webapi.py, webapi_submit.py). Pure core: no Dagster,
no SQL (the store writes the tables)."""
