"""The Dagster layer, kept thin: partitions, resources, assets, checks, jobs, sensors, and the
in-process runner the CLI uses. Each asset body calls one pipeline step (pipeline/) and turns
its result into metadata; nothing here computes or stores anything itself."""
