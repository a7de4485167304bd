"""datman-flow: MRI session ingestion on Dagster."""
