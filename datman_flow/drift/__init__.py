"""Header drift: a series' scanner parameters against its site's gold standard (or, until
one is promoted, a provisional reference from the site's previous sessions). Pure core: no
Dagster, no store; callers pass paths and mappings and get findings back."""

from datman_flow.drift.compare import Finding, compare_parameters, format_value
from datman_flow.drift.gold import (
    GoldStandard,
    GoldStandardError,
    find_gold,
    gold_path,
    list_gold,
    load_gold,
    promote,
    write_gold,
)
from datman_flow.drift.parameters import (
    DEFAULT_FIELDS,
    KNOWN_FIELDS,
    extract_parameters,
    normalise_parameters,
    sidecar_parameters,
)
from datman_flow.drift.reference import provisional_reference
from datman_flow.drift.settings import DEFAULT_TOLERANCES, HeaderCheckSettings, HeaderCheckYaml, Relative, merge

__all__ = [
    "DEFAULT_FIELDS", "KNOWN_FIELDS", "DEFAULT_TOLERANCES", "Finding", "GoldStandard", "GoldStandardError",
    "HeaderCheckSettings", "HeaderCheckYaml", "Relative", "compare_parameters", "extract_parameters", "find_gold",
    "format_value", "gold_path", "list_gold", "load_gold", "merge", "normalise_parameters",
    "promote", "provisional_reference", "sidecar_parameters", "write_gold",
]
