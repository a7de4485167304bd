"""`datman-flow demo`: the XNAT emulator with sample sessions arriving, and Dagster ingesting them.

Everything lives under one folder (./demo by default): xnat/ (what the emulator serves),
staging/ (generated sessions waiting to "arrive"), data/ (datman-flow's outputs and metric
store) and dagster_home/. With the UI, the review app runs on the port after the UI's, with a
reviewer `demo` (password `demo-review`) made in the data folder: it serves the full-size QC
pictures and the reviewers' pages (DATMAN_PICTURES_URL and DATMAN_REVIEW_URL tell the Dagster
process where, for the thumbnails' links and the board's). Sessions are moved
from staging/ into xnat/ one at a time, as a scanner would send them, so the sensor has
something new to notice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from datman_flow.atomic import write_text_atomic
from datman_flow.layout import DataLayout, config_dir_from
from datman_flow.pipeline.review_links import DEFAULT_REVIEW_URL, REVIEW_URL_VAR

DEMO_USER, DEMO_PASSWORD = "demo", "demo"
DEMO_REVIEWER, DEMO_REVIEWER_PASSWORD = "demo", "demo-review"  # the review app's (at least 8 characters)


def ensure_demo_reviewer(data_dir: Path) -> str:
    """The demo's reviewer account in the demo's data folder, made if missing (a password the
    demo's user changed is left alone); the login hint to print."""
    from datman_flow.review.accounts import AccountError, Accounts

    accounts = Accounts(data_dir)
    try:
        if not accounts.exists(DEMO_REVIEWER):
            accounts.add(DEMO_REVIEWER, DEMO_REVIEWER_PASSWORD)
    except AccountError as exc:  # a reviewers file someone broke: the demo goes on, without the login
        print(f"warning: no demo reviewer: {exc}", file=sys.stderr)
        return "no demo login: see the warning above"
    return f"login {DEMO_REVIEWER} / {DEMO_REVIEWER_PASSWORD}"


def stage_samples(root: Path):
    from datman_flow.samples import write_sample_sessions

    return write_sample_sessions(root / "staging")


def arrive(root: Path, sample) -> None:
    """Move one staged session into the emulator's folder (a rename: it appears whole)."""
    source = root / "staging" / sample.project / sample.label
    target = root / "xnat" / sample.project / sample.label
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.exists() and not target.exists():
        os.replace(source, target)


def demo_env(root: Path, xnat_url: str, config_dir: Path) -> dict[str, str]:
    return {
        "DATMAN_XNAT_URL": xnat_url,
        "XNAT_USER": DEMO_USER,
        "XNAT_PASS": DEMO_PASSWORD,
        "DATMAN_DATA_DIR": str(root / "data"),
        "DATMAN_CONFIG_DIR": str(config_dir),
        "DAGSTER_HOME": str(root / "dagster_home"),
        # the samples arrive whole, one every few seconds: no need to wait for XNAT to settle
        "DATMAN_SETTLE_MINUTES": "0",
    }


def run_demo(root: Path, *, headless: bool, ui_port: int = 3000, interval: float = 20.0) -> int:
    from datman_flow.xnat.emulator import XnatEmulator

    root = root.resolve()
    config_dir = config_dir_from(None)
    if not (config_dir / "tags.yml").exists():
        print(f"no configuration at {config_dir}: run the demo from the repository root, or set DATMAN_CONFIG_DIR",
              file=sys.stderr)
        return 2
    (root / "xnat").mkdir(parents=True, exist_ok=True)
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    samples = stage_samples(root)
    print(f"{len(samples)} sample sessions generated in {time.perf_counter() - started:.1f} s under {root / 'staging'}")
    with XnatEmulator(root / "xnat", host="127.0.0.1", port=0, user=DEMO_USER, password=DEMO_PASSWORD) as xnat:
        print(f"XNAT emulator at {xnat.url} (user {DEMO_USER}, password {DEMO_PASSWORD})")
        os.environ.update(demo_env(root, xnat.url, config_dir))
        if headless:
            return run_headless(root, samples, config_dir)
        return run_ui(root, samples, ui_port, interval)


def run_headless(root: Path, samples, config_dir: Path) -> int:
    """What `datman-flow ingest --new` does, once every sample session has arrived."""
    from datman_flow.cli.ingest import load_state, look_once, run_labels, state_path
    from datman_flow.config import load_config

    os.environ.pop("DAGSTER_HOME", None)  # headless: a throw-away Dagster instance
    for sample in samples:
        arrive(root, sample)
    layout = DataLayout(root / "data")
    config = load_config(config_dir)
    state = load_state(layout)
    found = look_once(config, layout, state)
    failed = run_labels(found.labels, dict(found.retries), config, config_dir, layout, state=state, timed=True).failed
    write_text_atomic(state_path(layout), state.to_json())
    print(f"\n{len(found.labels) - len(failed)} of {len(found.labels)} sessions ingested; outputs under "
          f"{layout.root}, metric store {layout.metric_store.db_path}")
    login = ensure_demo_reviewer(layout.root)
    print(f"review app on {DEFAULT_REVIEW_URL} once `datman-flow review --data-dir {layout.root}` runs ({login})")
    return 1 if failed else 0


def write_instance_yaml(home: Path) -> None:
    """The lab's run queue and QC pool (runs.yml) in the demo's instance, as a lab would run it;
    a dagster.yaml the demo's user wrote is left alone."""
    from datman_flow.config import ConfigError, load_config
    from datman_flow.instance_yaml import instance_yaml

    target = home / "dagster.yaml"
    if target.exists():
        return
    try:
        write_text_atomic(target, instance_yaml(load_config(config_dir_from(None)).runs))
    except ConfigError as exc:  # the sensor says the same on every tick; Dagster's defaults meanwhile
        print(f"warning: the configuration is invalid, Dagster's default run queue is used:\n{exc}", file=sys.stderr)


def run_ui(root: Path, samples, ui_port: int, interval: float) -> int:
    from datman_flow.review.server import ReviewServer
    from datman_flow.review.urls import PICTURES_URL_VAR

    workspace = root / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_module:\n      module_name: datman_flow.definitions\n"
                         "      location_name: datman_flow\n")
    from datman_flow.cli.render import arrival_line

    stop = threading.Event()
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def feed() -> None:
        for sample in samples:
            if stop.wait(interval if sample is not samples[0] else 1.0):
                return
            arrive(root, sample)
            print(arrival_line(sample.label, sample.note, datetime.now(), colour), flush=True)

    write_instance_yaml(root / "dagster_home")
    dagster = shutil.which("dagster") or str(Path(sys.executable).with_name("dagster"))
    # the review app (and the full-size QC pictures that the UI's thumbnails link to), on the next port
    login = ensure_demo_reviewer(root / "data")
    with ReviewServer(root / "data", host="127.0.0.1", port=ui_port + 1) as review:
        os.environ[PICTURES_URL_VAR] = review.url
        os.environ[REVIEW_URL_VAR] = review.url
        threading.Thread(target=feed, daemon=True).start()
        print(f"Dagster UI on http://127.0.0.1:{ui_port} : sessions arrive every {interval:.0f} s and the sensor "
              f"(every 30 s) ingests them. Ctrl-C stops everything.", flush=True)
        print(f"review app on {review.url} ({login})", flush=True)
        try:
            return subprocess.call([dagster, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(ui_port)])
        except KeyboardInterrupt:
            return 0
        finally:
            stop.set()
