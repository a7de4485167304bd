"""Lab configuration: the tag registry and one YAML file per study, validated with file:line errors."""

from datman_flow.config.errors import ConfigError, ConfigIssue
from datman_flow.config.load import check_config, load_config
from datman_flow.config.models import LabConfig, QcOutliers, SiteConfig, StudyConfig, TagInfo, TagRule, XnatConfig

__all__ = [
    "load_config",
    "check_config",
    "LabConfig",
    "StudyConfig",
    "SiteConfig",
    "TagRule",
    "TagInfo",
    "XnatConfig",
    "QcOutliers",
    "ConfigError",
    "ConfigIssue",
]
