"""Session-level steps (pure of Dagster): resolve a label, pull, index, convert, record."""
