"""What an operator names on the command line, checked before anything is read: the data
folder (read-only commands never create one), an output folder, and a study code (unknown:
did-you-mean)."""

from __future__ import annotations

import sys
from pathlib import Path

from datman_flow.config import ConfigError, load_config
from datman_flow.layout import DataLayout, config_dir_from, data_dir_from
from datman_flow.store import MetricStore
from datman_flow.store.queries import recorded_studies
from datman_flow.suggest import did_you_mean

EXIT_USAGE = 2  # the command named something that is not there


def existing_data_dir(option: str | None) -> Path | None:
    """The data folder (option, env, default), or None after saying on stderr that there is none."""
    data_dir = data_dir_from(option)
    if data_dir.is_dir():
        return data_dir
    what = "a file, not a folder, is there" if data_dir.exists() else "nothing has been ingested there"
    print(f"no data folder at {data_dir}: {what}; set --data-dir or DATMAN_DATA_DIR", file=sys.stderr)
    return None


def existing_layout(option: str | None, nothing_yet: str) -> DataLayout | None:
    """The data folder's layout when it exists and holds a metric store (reading one would create
    it), or None after saying on stderr what is missing (`nothing_yet`: why there is no store)."""
    data_dir = existing_data_dir(option)
    if data_dir is None:
        return None
    layout = DataLayout(data_dir)
    if not layout.metric_store.exists:
        print(f"no metric store in {data_dir} yet: {nothing_yet}", file=sys.stderr)
        return None
    return layout


def output_folder(option: str) -> Path | None:
    """A folder to write into (made later if missing), or None after saying on stderr that a file
    is in its place."""
    folder = Path(option).expanduser()
    if folder.exists() and not folder.is_dir():
        print(f"{folder}: a file, not a folder, is there", file=sys.stderr)
        return None
    return folder


def configured_studies(config_dir: Path) -> tuple[list[str], str]:
    """The study codes of the configuration, and '' or why it could not be read."""
    try:
        return sorted(load_config(config_dir).studies), ""
    except ConfigError as exc:
        first = str(exc.issues[0]) if exc.issues else "invalid"
        return [], f"the configuration at {config_dir} could not be read ({first}; see `datman-flow config check`)"


def unknown_study(study: str, config_option: str | None, store: MetricStore) -> str | None:
    """None when `study` is configured or has sessions in the store; else what to say."""
    configured, problem = configured_studies(config_dir_from(config_option))
    stored = recorded_studies(store) if store.exists else []
    if study in configured or study in stored:
        return None
    known = f"configured: {', '.join(configured) or 'none'}; in the metric store: {', '.join(stored) or 'none'}"
    note = f"; {problem}" if problem else ""
    return f"unknown study {study!r}{did_you_mean(study, [*configured, *stored])} ({known}){note}"
