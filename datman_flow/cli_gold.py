"""`datman-flow gold ...`: gold standards as reviewed files under configs/gold/<STUDY>/<SITE>/<TAG>.json."""

from __future__ import annotations

import argparse
import json
import sys

from datman_flow.drift import find_gold, gold_path, list_gold, load_gold, promote
from datman_flow.drift.gold import GoldStandardError
from datman_flow.layout import DataLayout, config_dir_from, data_dir_from
from datman_flow.naming import InvalidLabel, parse_session_label
from datman_flow.store import query


def add_gold_commands(sub: argparse._SubParsersAction, add_dirs) -> None:
    gold = sub.add_parser("gold", help="gold standards of acquisition parameters (header drift)")
    gold_sub = gold.add_subparsers(dest="gold_command", required=True)
    prom = gold_sub.add_parser("promote", help="make a converted series the gold standard of its site and tag")
    prom.add_argument("--session", required=True, help="session label")
    prom.add_argument("--tag", required=True)
    prom.add_argument("--series", help="series number, when the session has several series of the tag")
    add_dirs(prom)
    prom.set_defaults(func=gold_promote)
    lst = gold_sub.add_parser("list", help="every gold standard, and files that cannot be used")
    lst.add_argument("--config-dir", help="configs folder (default: env DATMAN_CONFIG_DIR, else ./configs)")
    lst.set_defaults(func=gold_list)
    show = gold_sub.add_parser("show", help="print one gold standard")
    for name in ("study", "site", "tag"):
        show.add_argument(name)
    show.add_argument("--config-dir", help="configs folder (default: env DATMAN_CONFIG_DIR, else ./configs)")
    show.set_defaults(func=gold_show)


def gold_promote(args: argparse.Namespace) -> int:
    config_dir, layout = config_dir_from(args.config_dir), DataLayout(data_dir_from(args.data_dir))
    try:
        scan_id = parse_session_label(args.session)
    except InvalidLabel as exc:
        print(exc, file=sys.stderr)
        return 2
    if scan_id.is_phantom:
        print(f"{args.session} is a phantom session: gold standards are promoted from participants' sessions "
              "(phantoms are compared with the site's earlier phantoms)", file=sys.stderr)
        return 2
    rows = query(layout.metrics_db, layout.store,
                 "SELECT series_number, nifti_path, dicom_kept, dcm2niix_version FROM series "
                 "WHERE session = ? AND tag = ? AND conversion_status = 'converted' ORDER BY series_number",
                 [args.session, args.tag])
    if args.series:
        rows = [r for r in rows if r["series_number"] == args.series]
    if not rows:
        print(f"no converted {args.tag} series{' ' + args.series if args.series else ''} of {args.session} "
              f"in {layout.metrics_db}", file=sys.stderr)
        return 1
    if len(rows) > 1:
        numbers = ", ".join(str(r["series_number"]) for r in rows)
        print(f"{args.session} has several {args.tag} series ({numbers}): choose one with --series", file=sys.stderr)
        return 1
    row = rows[0]
    replaced = find_gold(config_dir, scan_id.study, scan_id.site, args.tag) is not None
    path = promote(config_dir, scan_id.study, scan_id.site, args.tag, row["nifti_path"], row["dicom_kept"],
                   args.session, str(row["series_number"]), str(row["dcm2niix_version"]))
    print(f"{'replaced' if replaced else 'wrote'} {path}: review it and commit it with the other configs")
    return 0


def gold_list(args: argparse.Namespace) -> int:
    golds, errors = list_gold(config_dir_from(args.config_dir))
    for gold in golds:
        source = gold.source
        print(f"{gold.study}/{gold.site}/{gold.tag}: from {source.get('session', '?')} series "
              f"{source.get('series', '?')}, promoted {source.get('promoted_at', '?')}, {len(gold.parameters)} parameters")
    for error in errors:
        print(f"unusable: {error}", file=sys.stderr)
    if not golds and not errors:
        print("no gold standards yet: `datman-flow gold promote --session LABEL --tag TAG`")
    return 1 if errors else 0


def gold_show(args: argparse.Namespace) -> int:
    path = gold_path(config_dir_from(args.config_dir), args.study, args.site, args.tag)
    try:
        gold = load_gold(path)
    except GoldStandardError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(gold.as_json(), indent=2, sort_keys=True))
    return 0
