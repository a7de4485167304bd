"""The resources: where the configs and the data live (the configuration read once per run
or sensor tick), and the credentials for the lab's XNAT servers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

import dagster as dg
from pydantic import PrivateAttr

from datman_flow.config import ConfigError, LabConfig, load_config
from datman_flow.layout import DataLayout, config_dir_from, data_dir_from
from datman_flow.pipeline.poll import settle_from_env
from datman_flow.pipeline.resolve import SessionRejected, SessionTarget, resolve_session
from datman_flow.pipeline.retry import DEFAULT_DELAYS_MINUTES
from datman_flow.pipeline.review_links import BadReviewUrl, review_url_from
from datman_flow.pipeline.watch import LISTING_RETRY_SECONDS
from datman_flow.review.urls import BadPicturesUrl, pictures_url_from
from datman_flow.xnat import XnatClient


class DatmanSettings(dg.ConfigurableResource):
    """Empty values mean: env DATMAN_CONFIG_DIR / DATMAN_DATA_DIR, else ./configs and ./data.

    The YAML is read when a run (or a sensor tick) starts, once: every asset of the run sees
    the same configuration, and an edited YAML takes effect on the next run."""

    config_dir: str = ""
    data_dir: str = ""
    retry_delays_minutes: list[int] = list(DEFAULT_DELAYS_MINUTES)  # retries of failed transfers
    stuck_after_minutes: int = 180  # a session `ingesting` this long with no run going on is run again
    # minutes a new or changed session must stay unchanged on XNAT before it is run;
    # -1: env DATMAN_SETTLE_MINUTES, else 10
    settle_minutes: int = -1
    # base URL of `datman-flow review`, which serves the full-size QC pictures the UI's thumbnails
    # link to; "": env DATMAN_PICTURES_URL, else no links (the thumbnail and the server path)
    pictures_url: str = ""

    def settle(self) -> timedelta:
        if self.settle_minutes >= 0:
            return timedelta(minutes=self.settle_minutes)
        return settle_from_env()
    _config: LabConfig | None = PrivateAttr(default=None)
    _config_error: ConfigError | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        try:
            self._config = load_config(config_dir_from(self.config_dir or None))
        except ConfigError as exc:  # said where the configuration is used, with every file:line
            self._config_error = exc

    def load_config(self) -> LabConfig:
        """This run's configuration (ConfigError when the YAML is invalid)."""
        if self._config_error is not None:
            raise self._config_error
        if self._config is None:  # not set up for a run: read now, and again next time
            return load_config(config_dir_from(self.config_dir or None))
        return self._config

    def session(self, label: str) -> SessionTarget:
        """The study and site rules for a session label; dg.Failure with the reason when refused."""
        try:
            return resolve_session(self.load_config(), label)
        except (SessionRejected, ConfigError) as exc:
            raise dg.Failure(description=str(exc)) from None

    def pictures_base_url(self) -> str:
        """The checked base URL of the picture server, or '' (dg.Failure when it is not an http(s) URL)."""
        try:
            return pictures_url_from(self.pictures_url or None)
        except BadPicturesUrl as exc:
            raise dg.Failure(description=str(exc)) from None

    def review_base_url(self) -> str:
        """The checked base URL of the review app (env DATMAN_REVIEW_URL, else its default address);
        dg.Failure when it is not a plain http(s) URL."""
        try:
            return review_url_from()
        except BadReviewUrl as exc:
            raise dg.Failure(description=str(exc)) from None

    def layout(self) -> DataLayout:
        return DataLayout(data_dir_from(self.data_dir or None))


class XnatResource(dg.ConfigurableResource):
    """Credentials for the lab's XNAT servers (each study names its server's URL in its YAML).

    In the code location they come from the environment (XNAT_USER, XNAT_PASS) through
    dg.EnvVar: read when a run starts, never shown in the UI."""

    user: str
    password: str
    listing_retry_seconds: float = LISTING_RETRY_SECONDS  # a sensor tick's listing waits out no longer outage

    def client(self, url: str) -> XnatClient:
        """A client for a run: requests retried through an XNAT restart of a few minutes."""
        return XnatClient(url, self.user, self.password)

    def lister(self, url: str) -> XnatClient:
        """A client for the sensor's listing, which must not hold the tick for minutes."""
        return XnatClient(url, self.user, self.password, retry_budget=self.listing_retry_seconds)


CREDENTIAL_VARS = ("XNAT_USER", "XNAT_PASS")



def xnat_from_env() -> XnatResource:
    return XnatResource(user=dg.EnvVar(CREDENTIAL_VARS[0]), password=dg.EnvVar(CREDENTIAL_VARS[1]))


def missing_credentials(env: Mapping[str, str] | None = None) -> str | None:
    """Why `xnat_from_env()` cannot start a run here, or None (Dagster itself would refuse the
    run's configuration with a stack trace)."""
    env = os.environ if env is None else env
    missing = [name for name in CREDENTIAL_VARS if not env.get(name)]
    if not missing:
        return None
    return (f"no credentials for XNAT: set the environment variables {' and '.join(CREDENTIAL_VARS)} "
            f"(missing: {', '.join(missing)})")
