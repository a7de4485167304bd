"""datman-flow: MRI sessions from XNAT to tagged, converted, checked NIfTI and a DuckDB metric store.

Every command reads the configs folder (--config-dir, env DATMAN_CONFIG_DIR, ./configs) and
writes under the data folder (--data-dir, env DATMAN_DATA_DIR, ./data)."""

# The argument parser is here; what each command does is in commands.py, ingest.py, status.py,
# gold.py, alerts.py, review.py, reviewer.py, ratings.py, webapi.py and demo.py (validate.py checks the data
# folder and study codes they are given), and everything printed for a person goes through render.py.

from __future__ import annotations

import argparse
import logging

from datman_flow.cli import commands
from datman_flow.cli import ingest as ingest_command
from datman_flow.cli import status as status_command
from datman_flow.cli.alerts import add_alerts_command
from datman_flow.cli.bids import add_bids_command
from datman_flow.cli.gold import add_gold_commands
from datman_flow.cli.instance import add_instance_command
from datman_flow.cli.ratings import add_ratings_command
from datman_flow.cli.review import add_review_command
from datman_flow.cli.reviewer import add_reviewer_commands
from datman_flow.cli.webapi import add_webapi_command
from datman_flow.pipeline.retry import DEFAULT_DELAYS_MINUTES
from datman_flow.qc.kinds import QC_KINDS
from datman_flow.qc.settings import ANAT_ENGINES, CONVENTIONS, DEFAULT_QC


def add_dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", help="configs folder (default: env DATMAN_CONFIG_DIR, else ./configs)")
    parser.add_argument("--data-dir", help="data folder (default: env DATMAN_DATA_DIR, else ./data)")


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data folder (default: env DATMAN_DATA_DIR, else ./data)")


def minutes_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: minutes separated by commas, e.g. 10,30,90") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: minutes cannot be negative")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datman-flow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress (downloads, conversions, Dagster events)")
    sub = parser.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="configuration commands")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate tags.yml and studies/*.yml; errors as file:line: message")
    check.add_argument("--config-dir", help="configs folder (default: env DATMAN_CONFIG_DIR, else ./configs)")
    check.set_defaults(func=commands.config_check)

    emulator = sub.add_parser("xnat-emulator", help="serve DIR/<project>/<session>/** as an XNAT server")
    emulator.add_argument("--data", required=True, help="folder of <XNAT project>/<session label>/ DICOM folders")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8080)
    emulator.add_argument("--user", default="admin")
    emulator.add_argument("--password", default="admin")
    emulator.set_defaults(func=commands.xnat_emulator)

    ingest = sub.add_parser("ingest", help="ingest sessions in-process through the Dagster assets and checks")
    which = ingest.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", action="append", metavar="LABEL", help="a session label (repeatable)")
    which.add_argument("--new", action="store_true", help="poll XNAT once and ingest what is new")
    ingest.add_argument("--dry-run", action="store_true",
                        help="say which sessions would be ingested (and which refused), change nothing")
    ingest.add_argument("--settle-minutes", type=float, metavar="M",
                        help="with --new: minutes a new or changed session must stay unchanged on XNAT before "
                             "it is ingested (default: env DATMAN_SETTLE_MINUTES, else 10)")
    ingest.add_argument("--retry-delays", type=minutes_list, default=list(DEFAULT_DELAYS_MINUTES), metavar="M,M,...",
                        help="with --new: minutes before each retry of a session whose transfer from XNAT "
                             "failed, as the sensor does (default: %(default)s)")
    add_dirs(ingest)
    ingest.set_defaults(func=ingest_command.ingest)

    samples = sub.add_parser("samples", help="write the demo's synthetic sample sessions as an XNAT data folder")
    samples.add_argument("--out", required=True, help="folder to write <project>/<session>/ into")
    samples.set_defaults(func=commands.samples)

    demo = sub.add_parser("demo", help="emulator with sample sessions + Dagster UI with the sensor running")
    demo.add_argument("--headless", action="store_true", help="no UI: ingest every sample session, print, exit")
    demo.add_argument("--dir", default="demo", help="folder for the demo's XNAT data, data and Dagster home")
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port")
    demo.add_argument("--interval", type=float, default=20.0, help="seconds between sample sessions arriving")
    demo.set_defaults(func=commands.demo)

    add_gold_commands(sub, add_dirs)
    compliance = sub.add_parser("compliance", help="protocol compliance per site and tag, from the metric store")
    compliance.add_argument("--study", required=True, help="study code (the STUDY part of scan IDs)")
    add_dirs(compliance)
    compliance.set_defaults(func=commands.compliance)

    qc = sub.add_parser("qc", help="image-quality metrics of one NIfTI, printed as JSON")
    qc.add_argument("nifti", help="a .nii or .nii.gz (diffusion: with its .bval and .bvec beside it)")
    qc.add_argument("--type", required=True, choices=list(QC_KINDS))
    qc.add_argument("--picture", help="also write the QC picture here (PNG)")
    qc.add_argument("--convention", choices=list(CONVENTIONS), default=DEFAULT_QC.convention,
                    help="which MRIQC release's metric definitions (default %(default)s)")
    qc.add_argument("--anat-engine", choices=list(ANAT_ENGINES), default=DEFAULT_QC.anat_engine,
                    help="T1w bias field and tissue classes: built-in, or ANTs N4 + Atropos (the [ants] extra)")
    qc.set_defaults(func=commands.qc)

    add_review_command(sub)
    add_ratings_command(sub, add_dirs)
    add_bids_command(sub, add_dirs)
    add_instance_command(sub)
    add_webapi_command(sub, add_dirs)
    add_reviewer_commands(sub, add_data_dir)
    add_alerts_command(sub, add_dirs)

    status = sub.add_parser("status", help="each session's status, health and checks, from the metric store",
                            description=status_command.STATUS_HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    status.add_argument("--study", metavar="CODE", help="only this study's sessions (the STUDY part of labels)")
    status.add_argument("--attention", action="store_true",
                        help="only sessions whose health is attention or failed")
    status.add_argument("--table", action="store_true", help="an aligned table, newest scan first, instead of JSON")
    add_dirs(status)
    status.set_defaults(func=status_command.status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)

