"""The reviewers' web app (Starlette, no Dagster): for now the QC pictures at full size,
`GET /pictures/<session>/<file>` (app.py), linked from the Dagster UI's inline thumbnails
(urls.py builds the links). `datman-flow review` serves it; the UI demo starts it too.

Nothing is imported here, so that urls.py can be used without loading Starlette."""
