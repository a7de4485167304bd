"""Checks of a session's content (pure; the Dagster layer turns them into asset checks)."""
