"""One dynamic partition per session; the key is the session label."""

import dagster as dg

SESSIONS = dg.DynamicPartitionsDefinition(name="sessions")
