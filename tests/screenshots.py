"""The README's pictures of the operator's view: every sample session ingested into a Dagster
instance, the study views refreshed, then the real UI photographed in headless Chromium.

    .venv/bin/python tests/screenshots.py docs/images

Needs Debian's chromium (`make system-packages`) and the dev extra (Playwright)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import dagster as dg
from PIL import Image

from datman_flow.cli.ingest import look_once
from datman_flow.config import load_config
from datman_flow.defs.resources import DatmanSettings
from datman_flow.defs.runner import run_session
from datman_flow.defs.study_assets import protocol_compliance, sessions_board
from datman_flow.defs.trend_assets import qc_trends
from datman_flow.layout import DataLayout
from datman_flow.pipeline import watch
from datman_flow.review.server import ReviewServer
from datman_flow.samples import write_sample_sessions
from datman_flow.xnat.emulator import XnatEmulator

sys.path.insert(0, str(Path(__file__).parent))
from ui_helpers import chromium_page, dagster_webserver, open_check_partition, open_markdown, open_page  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NO_DTI = "SPN01_CMH_0002_01_01"


def ingest_samples(root: Path, instance: dg.DagsterInstance, env: dict[str, str]) -> None:
    os.environ.update(env)
    layout, config = DataLayout(root / "data"), load_config(CONFIGS)
    found = look_once(config, layout, watch.WatchState())  # records the refused label
    for label in found.labels:
        run_session(instance, label, CONFIGS, layout.root)
    datman = DatmanSettings(config_dir=str(CONFIGS), data_dir=str(layout.root))
    dg.materialize([protocol_compliance, qc_trends, sessions_board], instance=instance, resources={"datman": datman})


def photograph(base: str, out: Path) -> list[Path]:
    shots = []
    with chromium_page(1400, 900) as page:
        def shot(name: str) -> None:
            path = out / f"{name}.png"
            page.screenshot(path=str(path))
            Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)  # a third of the size
            shots.append(path)

        open_page(page, f"{base}/assets/sessions_board")
        open_markdown(page, "board")
        shot("operator_board")
        open_check_partition(page, base, "series_index", "expected_series", NO_DTI)
        page.get_by_placeholder("Filter by partition").fill("")  # every session again, the one chosen kept
        page.mouse.move(5, 5)
        page.wait_for_timeout(800)
        shot("operator_session_check")
        open_page(page, f"{base}/assets/qc_metrics?view=partitions&partition={NO_DTI}")
        open_markdown(page, "pictures")
        shot("operator_qc_pictures")
        open_page(page, f"{base}/assets/qc_trends")
        open_markdown(page, "figures")
        shot("operator_trends")
        open_page(page, f"{base}/runs")
        shot("operator_runs")
    return shots


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_sample_sessions(root / "xnat")
        (root / "dagster_home").mkdir()
        with XnatEmulator(root / "xnat", port=0, user="u", password="p") as xnat, \
                ReviewServer(root / "data") as review, \
                dg.instance_for_test(temp_dir=str(root / "dagster_home"), set_dagster_home=False) as instance:
            env = {"DATMAN_XNAT_URL": xnat.url, "XNAT_USER": "u", "XNAT_PASS": "p", "DATMAN_SETTLE_MINUTES": "0",
                   "DATMAN_CONFIG_DIR": str(CONFIGS), "DATMAN_DATA_DIR": str(root / "data"),
                   "DATMAN_PICTURES_URL": review.url}
            ingest_samples(root, instance, env)
            with dagster_webserver(root / "dagster_home", env) as base:
                for path in photograph(base, out):
                    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")))
