"""The one resource: where the configs and the data live (read when a run or tick starts)."""


import dagster as dg

from datman_flow.config import LabConfig, load_config
from datman_flow.layout import DataLayout, config_dir_from, data_dir_from
from datman_flow.pipeline.retry import DEFAULT_DELAYS_MINUTES


class DatmanSettings(dg.ConfigurableResource):
    """Empty values mean: env DATMAN_CONFIG_DIR / DATMAN_DATA_DIR, else ./configs and ./data."""

    config_dir: str = ""
    data_dir: str = ""
    retry_delays_minutes: list[int] = list(DEFAULT_DELAYS_MINUTES)  # the sensor's retries of failed transfers

    def load_config(self) -> LabConfig:
        return load_config(config_dir_from(self.config_dir or None))

    def layout(self) -> DataLayout:
        return DataLayout(data_dir_from(self.data_dir or None))
