"""`datman-flow bids export --study CODE [--out DIR] [--since DATE]`: the study's sessions that
passed as a BIDS dataset (and its phantoms as a second one), with the structural derivatives;
re-running it rewrites only the visits whose content changed."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import date

SHOWN = 30  # series left out named one by one; the rest counted


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def add_bids_command(sub: argparse._SubParsersAction, add_dirs) -> None:
    bids = sub.add_parser("bids", help="BIDS releases of a study (and its structural derivatives)")
    bids_sub = bids.add_subparsers(dest="bids_command", required=True)
    export = bids_sub.add_parser(
        "export", help="write or update the study's BIDS dataset",
        description="Exports the sessions that passed (signed off by a reviewer unless the study's bids: block "
                    "says otherwise) to DIR (default <data>/bids/<STUDY>) and the study's phantoms to "
                    "DIR_phantoms, with derivatives/datman-flow. Says what it left out and why. Only visits "
                    "whose content changed are rewritten, each one whole.")
    export.add_argument("--study", metavar="CODE", required=True)
    export.add_argument("--out", metavar="DIR", help="the dataset's folder (default <data>/bids/<STUDY>)")
    export.add_argument("--since", metavar="DATE", type=_date,
                        help="only the visits with a session scanned on or after DATE (YYYY-MM-DD), each with all "
                             "its repeats; the other visits stay as they are")
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    add_dirs(export)
    export.set_defaults(func=bids_export)


def bids_export(args: argparse.Namespace) -> int:
    from datman_flow.cli.validate import EXIT_USAGE, existing_layout, output_folder
    from datman_flow.config import ConfigError, load_config
    from datman_flow.layout import config_dir_from
    from datman_flow.pipeline.bids import UnknownStudy, export_study

    layout = existing_layout(args.data_dir, "nothing has been ingested there")
    if layout is None:
        return EXIT_USAGE
    try:
        config = load_config(config_dir_from(args.config_dir))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    out = output_folder(args.out) if args.out else None
    if args.out and out is None:
        return EXIT_USAGE
    try:
        done = export_study(config, layout, args.study, out=out, since=args.since)
    except UnknownStudy as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps([r.as_json() for r in done.reports], indent=2))
        return 0
    for kind, report in zip(("participants", "phantoms"), done.reports):
        print(f"{kind}: {report.dataset}")
        print(f"  {len(report.written)} visit(s) written, {len(report.unchanged)} unchanged, "
              f"{len(report.removed)} removed; {report.derivatives} T1w with derivatives")
        for folder in report.removed:
            print(f"  removed {folder}: nothing of it may be released any more")
        sessions = [item for item in report.left_out if not item.series]
        series = [item for item in report.left_out if item.series]
        for item in sessions:
            print(f"  left out session {item.session}: {item.reason}")
        for item in series[:SHOWN]:
            print(f"  left out {item.session} series {item.series} ({item.tag or 'untagged'}): {item.reason}")
        if len(series) > SHOWN:
            counts = Counter(item.reason.split(":")[0] for item in series[SHOWN:])
            print(f"  ... and {len(series) - SHOWN} more series: " + ", ".join(f"{n} {r}" for r, n in counts.items()))
        for problem in report.derivative_problems:
            print(f"  derivatives not exported: {problem}")
    return 0
